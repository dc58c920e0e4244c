//! Discovery: RFC 8414 authorization server metadata, OpenID Connect Discovery 1.0, and our
//! JWKS (RFC 7517). The metadata lists only what is implemented.

use crate::context::App;
use crate::http_util::{json_response, Request, Response};
use serde_json::{Map, Value};

// The documents are built from tables by one loop rather than `json!` (which unrolls every
// entry into its own code): smaller wasm, and the same JSON, since a `Value` object serialises
// its keys in sorted order whatever the insertion order.

/// An object: `issuer`, then each `(key, path)` as the URL `{issuer}{path}`, then each `(key,
/// strings)` as an array of strings.
fn document(iss: &str, urls: &[(&str, &str)], lists: &[(&str, &[&str])]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("issuer".into(), Value::String(iss.to_string()));
    for (key, path) in urls {
        m.insert((*key).into(), Value::String(format!("{iss}{path}")));
    }
    for (key, items) in lists {
        m.insert((*key).into(), strings(items));
    }
    m
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String((*s).into())).collect())
}

const AUTH_METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

fn metadata(app: &App, req: &Request) -> Map<String, Value> {
    let iss = app.issuer(req);
    let mut m = document(
        &iss,
        &[
            ("authorization_endpoint", "/auth/authorize"),
            ("token_endpoint", "/auth/token"),
            ("jwks_uri", "/.well-known/jwks.json"),
            ("revocation_endpoint", "/auth/revoke"),
            ("introspection_endpoint", "/auth/introspect"),
            ("pushed_authorization_request_endpoint", "/auth/par"),
        ],
        &[
            ("response_types_supported", &["code", "token"]),
            ("response_modes_supported", &["query", "fragment"]),
            (
                "grant_types_supported",
                &[
                    "authorization_code",
                    "implicit",
                    "client_credentials",
                    "password",
                    "refresh_token",
                ],
            ),
            ("code_challenge_methods_supported", &["S256"]),
            ("token_endpoint_auth_methods_supported", AUTH_METHODS),
            (
                "token_endpoint_auth_signing_alg_values_supported",
                &["RS256", "RS384", "ES256", "ES384", "EdDSA", "Ed25519"],
            ),
            (
                "revocation_endpoint_auth_methods_supported",
                &["client_secret_basic", "client_secret_post", "none"],
            ),
            (
                "introspection_endpoint_auth_methods_supported",
                &["client_secret_basic", "client_secret_post"],
            ),
            (
                "scopes_supported",
                &[
                    "openid",
                    "profile",
                    "email",
                    "offline_access",
                    "online_access",
                ],
            ),
            (
                "claims_supported",
                &[
                    "iss",
                    "sub",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "at_hash",
                    "azp",
                    "jti",
                    "client_id",
                    "scope",
                    "name",
                    "given_name",
                    "family_name",
                    "email",
                ],
            ),
            (
                "access_token_signing_alg_values_supported",
                &signing_algs(app),
            ),
        ],
    );
    m.insert(
        "authorization_response_iss_parameter_supported".into(),
        Value::Bool(true),
    );
    // RFC 9126 5: PAR is offered; only clients registered with it are held to it.
    m.insert(
        "require_pushed_authorization_requests".into(),
        Value::Bool(false),
    );
    // Registration without an administrator (src/oauth/register.rs, src/oauth/cimd.rs): each
    // key only while its setting is on.
    let reg = &app.config.registration;
    if reg.dynamic {
        m.insert(
            "registration_endpoint".into(),
            Value::String(format!("{iss}/auth/register")),
        );
    }
    if reg.metadata_documents {
        m.insert(
            "client_id_metadata_document_supported".into(),
            Value::Bool(true),
        );
    }
    // RFC 9449 5.1.
    m.insert(
        "dpop_signing_alg_values_supported".into(),
        strings(&super::dpop::ALGS),
    );
    m
}

/// SMART App Launch 2.x `/.well-known/smart-configuration`: the capabilities implemented.
fn smart(app: &App, req: &Request) -> Map<String, Value> {
    let iss = app.issuer(req);
    document(
        &iss,
        &[
            ("jwks_uri", "/.well-known/jwks.json"),
            ("authorization_endpoint", "/auth/authorize"),
            ("token_endpoint", "/auth/token"),
            ("introspection_endpoint", "/auth/introspect"),
            ("revocation_endpoint", "/auth/revoke"),
            ("userinfo_endpoint", "/auth/userinfo"),
        ],
        &[
            (
                "grant_types_supported",
                &["authorization_code", "client_credentials", "refresh_token"],
            ),
            ("token_endpoint_auth_methods_supported", AUTH_METHODS),
            (
                "token_endpoint_auth_signing_alg_values_supported",
                &["RS384", "ES384", "RS256", "ES256", "EdDSA", "Ed25519"],
            ),
            (
                "scopes_supported",
                &[
                    "openid",
                    "fhirUser",
                    "profile",
                    "email",
                    "launch",
                    "launch/patient",
                    "offline_access",
                    "online_access",
                ],
            ),
            ("response_types_supported", &["code"]),
            ("code_challenge_methods_supported", &["S256"]),
            (
                "capabilities",
                &[
                    "launch-ehr",
                    "launch-standalone",
                    "client-public",
                    "client-confidential-symmetric",
                    "client-confidential-asymmetric",
                    "context-ehr-patient",
                    "context-ehr-encounter",
                    "context-standalone-patient",
                    "sso-openid-connect",
                    "permission-offline",
                    "permission-online",
                    "permission-patient",
                    "permission-user",
                    "permission-v1",
                    "permission-v2",
                ],
            ),
        ],
    )
}

fn signing_algs(app: &App) -> Vec<&'static str> {
    let mut algs: Vec<&'static str> = Vec::new();
    for k in &app.config.keys.verifying {
        if !algs.contains(&k.alg.jws_name()) {
            algs.push(k.alg.jws_name());
        }
    }
    algs
}

/// Public, cacheable for five minutes, readable from any origin: discovery documents.
pub fn cacheable(mut r: Response) -> Response {
    r.headers_mut().insert(
        "cache-control",
        http::HeaderValue::from_static("public, max-age=300"),
    );
    r.headers_mut().insert(
        "access-control-allow-origin",
        http::HeaderValue::from_static("*"),
    );
    r
}

/// The discovery documents at `/.well-known/*` (the router, src/app.rs, lists their paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    /// RFC 8414 authorization server metadata.
    AuthorizationServer,
    /// OpenID Connect Discovery 1.0: the metadata plus the OIDC fields.
    OpenidConfiguration,
    /// SMART App Launch 2.x `smart-configuration` (also under each FHIR base).
    SmartConfiguration,
    /// Our public keys (RFC 7517).
    Jwks,
}

/// `GET /.well-known/<document>`: public and cacheable for five minutes.
pub fn serve(app: &App, req: &Request, which: Document) -> Response {
    let body = match which {
        Document::AuthorizationServer => Value::Object(metadata(app, req)),
        Document::OpenidConfiguration => {
            let mut m = metadata(app, req);
            let iss = app.issuer(req);
            m.insert("subject_types_supported".into(), strings(&["public"]));
            m.insert(
                "userinfo_endpoint".into(),
                Value::String(format!("{iss}/auth/userinfo")),
            );
            m.insert(
                "end_session_endpoint".into(),
                Value::String(format!("{iss}/auth/logout")),
            );
            m.insert(
                "id_token_signing_alg_values_supported".into(),
                strings(&signing_algs(app)),
            );
            Value::Object(m)
        }
        Document::SmartConfiguration => Value::Object(smart(app, req)),
        Document::Jwks => app.config.keys.jwks(),
    };
    cacheable(json_response(200, &body))
}
