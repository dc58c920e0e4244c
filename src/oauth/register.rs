//! Clients that register themselves: RFC 7591 dynamic registration at `POST /auth/register`
//! (`DYNAMIC_REGISTRATION=on`), and the client metadata rules it shares with Client ID Metadata
//! Documents ([`super::cimd`], `CLIENT_ID_METADATA_DOCUMENTS=on`).
//!
//! What a self-registered client may be (docs/registration.md):
//! - public (`token_endpoint_auth_method: none`, the default here; a registration asking for a
//!   `client_secret_*` method gets `none` too, RFC 7591 3.2.1: we issue no secrets) or
//!   `private_key_jwt` with its public keys inline (`jwks`) or at an https `jwks_uri`;
//! - the authorization code flow with PKCE, and refresh tokens when it lists `refresh_token`;
//!   never password, client_credentials, implicit or Basic ([`Client::allows_grant`]);
//! - scopes: OpenID Connect (`openid profile email fhirUser offline_access online_access`),
//!   SMART launch (`launch launch/patient launch/encounter`) and SMART `patient/` and `user/`
//!   clinical scopes (still cut to what the signed-in user may have). Never `system/` nor a
//!   custom scope: an AccessPolicy written for an administrator's client may match those.
//! - never first party: the consent page every time ([`Client::is_self_registered`]).
//!
//! Unknown metadata is ignored (RFC 7591 2) and never stored: the stored Client is built from
//! the fields above only, so nothing in a request reaches `first_party`, `secret`, `auth.*` or
//! any other field of ours. Registrations are stored through the admin API's own write path as
//! `Client/dcr-<random>`, marked `dynamic_registration`, so an administrator lists them with
//! `GET /Client` and removes one with `DELETE /Client/{id}`. Each client address may register
//! `DYNAMIC_REGISTRATION_LIMIT` clients an hour (the login throttle's store and counters).

use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{json_response, media_type, no_store, Request, Response};
use crate::model::client::Client;
use serde_json::{json, Map, Value};

/// Marker field of a Client stored by `POST /auth/register`.
pub const DCR_FIELD: &str = "dynamic_registration";
/// Marker field of a Client built from a Client ID Metadata Document (never stored).
pub const CIMD_FIELD: &str = "client_id_metadata_document";

/// Shared-secret client authentication methods (RFC 7591 2, OpenID Connect Core 9).
const SECRET_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
];

/// Largest registration request read (bytes): a few keys and redirect URIs fit.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Most redirect URIs one client registers.
const MAX_REDIRECT_URIS: usize = 10;
/// Longest `client_name` (characters).
const MAX_NAME_CHARS: usize = 100;

/// An RFC 7591 3.2.2 error (`invalid_redirect_uri`, `invalid_client_metadata`,
/// `invalid_software_statement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataError {
    pub code: &'static str,
    pub description: String,
}

impl MetadataError {
    fn meta(d: impl Into<String>) -> Self {
        MetadataError {
            code: "invalid_client_metadata",
            description: d.into(),
        }
    }

    fn redirect(d: impl Into<String>) -> Self {
        MetadataError {
            code: "invalid_redirect_uri",
            description: d.into(),
        }
    }

    /// RFC 7591 3.2.2: 400 with `error` and `error_description`, never cached.
    pub fn to_response(&self) -> Response {
        no_store(json_response(
            400,
            &json!({"error": self.code, "error_description": self.description}),
        ))
    }
}

/// May a self-registered client hold this scope? See the module docs.
pub fn scope_allowed(t: &str) -> bool {
    use crate::smart::{Level, Scope};
    if !super::valid_scope_token(t) {
        return false;
    }
    match t.parse::<Scope>() {
        Ok(Scope::OpenId | Scope::Profile | Scope::FhirUser) => true,
        Ok(Scope::OfflineAccess | Scope::OnlineAccess) => true,
        Ok(Scope::Launch | Scope::LaunchPatient | Scope::LaunchEncounter) => true,
        Ok(Scope::Clinical(c)) => matches!(c.level, Level::Patient | Level::User),
        Ok(Scope::Other(s)) => s == "email",
        Err(_) => false,
    }
}

fn string_list<'a>(
    m: &'a Map<String, Value>,
    key: &str,
) -> std::result::Result<Option<Vec<&'a str>>, MetadataError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    MetadataError::meta(format!("{key} must be an array of strings"))
                })
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(MetadataError::meta(format!(
            "{key} must be an array of strings"
        ))),
    }
}

/// Does a JWK carry private material (RFC 7517 / 7518 6: `d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`;
/// `k` of a symmetric key)?
fn has_private_parts(jwks: &Value) -> bool {
    jwks.get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| {
            keys.iter().any(|k| {
                ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
                    .iter()
                    .any(|f| k.get(*f).is_some())
            })
        })
}

/// The Client document built from metadata, and the metadata answered (RFC 7591 3.2.1).
pub type Registered = (Map<String, Value>, Map<String, Value>);

/// Validates RFC 7591 2 client metadata (from a registration request or a Client ID Metadata
/// Document) and builds the Client document we keep for it, with `id` and the marker
/// (`marker`, `marker_value`) of where it came from. `https_url_ok` checks a `jwks_uri`.
/// Returns the document and the metadata to answer with (RFC 7591 3.2.1).
pub fn client_doc(
    m: &Map<String, Value>,
    id: &str,
    marker: &str,
    marker_value: Value,
    https_url_ok: &dyn Fn(&str) -> std::result::Result<(), String>,
) -> std::result::Result<Registered, MetadataError> {
    // The draft's 4.1 and ours: no shared secrets at all.
    for f in ["client_secret", "client_secret_expires_at"] {
        if m.get(f).is_some_and(|v| !v.is_null()) {
            return Err(MetadataError::meta(format!(
                "{f} is not accepted: this server issues and accepts no client secrets for \
                 self-registered clients"
            )));
        }
    }
    // Redirect URIs: required, each checked as an administrator's would be.
    let uris = string_list(m, "redirect_uris")
        .map_err(|e| MetadataError::redirect(e.description))?
        .unwrap_or_default();
    if uris.is_empty() {
        return Err(MetadataError::redirect(
            "redirect_uris is required (a non-empty array of URIs)",
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(MetadataError::redirect(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris"
        )));
    }
    for u in &uris {
        if u.len() > 2000 {
            return Err(MetadataError::redirect(
                "a redirect URI is longer than 2000",
            ));
        }
        crate::model::client::validate_redirect_uri(u)
            .map_err(|why| MetadataError::redirect(format!("redirect URI {u:?} {why}")))?;
        // Schemes that run or embed content instead of reaching an application.
        let scheme = u.split(':').next().unwrap_or("").to_ascii_lowercase();
        if matches!(
            scheme.as_str(),
            "javascript" | "data" | "vbscript" | "file" | "blob" | "about"
        ) {
            return Err(MetadataError::redirect(format!(
                "redirect URI scheme {scheme}: is not accepted"
            )));
        }
    }
    // Grant and response types: the code flow, refresh tokens optionally.
    let grants = string_list(m, "grant_types")?.unwrap_or_else(|| vec!["authorization_code"]);
    for g in &grants {
        if !matches!(*g, "authorization_code" | "refresh_token") {
            return Err(MetadataError::meta(format!(
                "grant_types: \"{g}\" is not available to self-registered clients \
                 (authorization_code and refresh_token only)"
            )));
        }
    }
    if !grants.contains(&"authorization_code") {
        return Err(MetadataError::meta(
            "grant_types must include authorization_code",
        ));
    }
    if let Some(rt) = string_list(m, "response_types")? {
        if rt != ["code"] {
            return Err(MetadataError::meta("response_types may only be [\"code\"]"));
        }
    }
    // Client authentication: none (public) or private_key_jwt with public keys.
    let method = match m.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => "none",
        // RFC 7591 3.2.1 lets the server replace a requested value (the answer says which):
        // a registration asking for a secret gets a public client, as no secret is issued.
        // A metadata document may not name them at all (draft 4.1): refused below.
        Some(Value::String(s)) if marker == DCR_FIELD && SECRET_METHODS.contains(&s.as_str()) => {
            "none"
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(MetadataError::meta(
                "token_endpoint_auth_method must be a string",
            ))
        }
    };
    let jwks = m.get("jwks").filter(|v| !v.is_null());
    let jwks_uri = match m.get("jwks_uri") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(MetadataError::meta("jwks_uri must be a string")),
    };
    match method {
        "none" if jwks.is_some() || jwks_uri.is_some() => {
            return Err(MetadataError::meta(
                "jwks and jwks_uri go with token_endpoint_auth_method private_key_jwt only",
            ))
        }
        "none" => {}
        "private_key_jwt" => match (jwks, jwks_uri) {
            (Some(_), Some(_)) => {
                return Err(MetadataError::meta(
                    "give jwks or jwks_uri, not both (RFC 7591 2)",
                ))
            }
            (None, None) => {
                return Err(MetadataError::meta(
                    "private_key_jwt needs the client's public keys: jwks or jwks_uri",
                ))
            }
            (Some(j), None) => {
                if has_private_parts(j) {
                    return Err(MetadataError::meta(
                        "jwks holds private key material; publish public keys only",
                    ));
                }
                let set = crate::jwt::keys::KeySet::from_jwks(j)
                    .map_err(|e| MetadataError::meta(format!("jwks: {e}")))?;
                if set.verifying.is_empty() {
                    return Err(MetadataError::meta(
                        "jwks has no usable signing key (RSA, P-256, P-384, Ed25519)",
                    ));
                }
            }
            (None, Some(u)) => {
                https_url_ok(u).map_err(|why| MetadataError::meta(format!("jwks_uri {why}")))?
            }
        },
        other => {
            return Err(MetadataError::meta(format!(
                "token_endpoint_auth_method \"{other}\" is not available: use none (a public \
                 client with PKCE) or private_key_jwt"
            )))
        }
    }
    let name = match m.get("client_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if !s.trim().is_empty()
                && s.chars().count() <= MAX_NAME_CHARS
                && !s.chars().any(char::is_control) =>
        {
            Some(s.trim().to_string())
        }
        Some(_) => {
            return Err(MetadataError::meta(format!(
                "client_name must be a non-empty string of at most {MAX_NAME_CHARS} \
                 characters without control characters"
            )))
        }
    };
    let scope = match m.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let mut list: Vec<String> = Vec::new();
            for t in s.split(' ').filter(|t| !t.is_empty()) {
                if !scope_allowed(t) {
                    return Err(MetadataError::meta(format!(
                        "scope \"{t}\" is not available to self-registered clients (OpenID \
                         Connect, SMART launch, patient/ and user/ scopes only)"
                    )));
                }
                if !list.iter().any(|x| x == t) {
                    list.push(t.to_string());
                }
            }
            (!list.is_empty()).then_some(list)
        }
        Some(_) => {
            return Err(MetadataError::meta(
                "scope must be a string of space-separated scopes (RFC 7591 2)",
            ))
        }
    };

    // The stored (or in-memory) Client: only fields built here.
    let mut doc = Map::new();
    doc.insert("resourceType".into(), json!("Client"));
    doc.insert("id".into(), json!(id));
    if let Some(n) = &name {
        doc.insert("name".into(), json!(n));
    }
    doc.insert("grant_types".into(), json!(grants));
    // A single URI as Aidbox's string; several as the list (`native`'s array form).
    let redirect = if uris.len() == 1 {
        json!(uris[0])
    } else {
        json!(uris)
    };
    doc.insert(
        "auth".into(),
        json!({"authorization_code": {"redirect_uri": redirect, "pkce": true}}),
    );
    if let Some(s) = &scope {
        doc.insert("scope".into(), json!(s));
    }
    if let Some(j) = jwks {
        doc.insert("jwks".into(), j.clone());
    }
    if let Some(u) = jwks_uri {
        doc.insert("jwks_uri".into(), json!(u));
    }
    doc.insert(marker.into(), marker_value);

    // What was registered, in RFC 7591 names.
    let mut answer = Map::new();
    answer.insert("client_id".into(), json!(id));
    if let Some(n) = &name {
        answer.insert("client_name".into(), json!(n));
    }
    answer.insert("redirect_uris".into(), json!(uris));
    answer.insert("grant_types".into(), json!(grants));
    answer.insert("response_types".into(), json!(["code"]));
    answer.insert("token_endpoint_auth_method".into(), json!(method));
    if let Some(s) = &scope {
        answer.insert("scope".into(), json!(s.join(" ")));
    }
    if let Some(j) = jwks {
        answer.insert("jwks".into(), j.clone());
    }
    if let Some(u) = jwks_uri {
        answer.insert("jwks_uri".into(), json!(u));
    }
    Ok((doc, answer))
}

/// `POST /auth/register` (RFC 7591 3). Routed only when `DYNAMIC_REGISTRATION=on`; otherwise
/// the path is a 404 like any other unknown endpoint, and discovery names no
/// `registration_endpoint`.
pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    if !media_type(req).is_some_and(|m| crate::http_util::is_json(&m)) {
        return Ok(
            MetadataError::meta("send the client metadata as application/json").to_response(),
        );
    }
    if req.body().len() > MAX_REQUEST_BYTES {
        return Ok(MetadataError::meta(format!(
            "the registration request is larger than {MAX_REQUEST_BYTES} bytes"
        ))
        .to_response());
    }
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(req.body()) else {
        return Ok(MetadataError::meta("the body must be a JSON object").to_response());
    };
    // RFC 7591 2.3 / 3.2.2: software statements are not supported here.
    if m.get("software_statement").is_some() {
        return Ok(MetadataError {
            code: "invalid_software_statement",
            description: "software statements are not supported by this server".into(),
        }
        .to_response());
    }
    let id = format!("dcr-{}", hex_id(app));
    let issued_at = app.now();
    let (doc, mut answer) = match client_doc(
        &m,
        &id,
        DCR_FIELD,
        json!({"client_id_issued_at": issued_at}),
        &|u| super::cimd::check_url(app, u, false),
    ) {
        Ok(x) => x,
        Err(e) => return Ok(e.to_response()),
    };
    // One registration counted against the address before anything is stored.
    let reservation = match reserve(app, req).await {
        Ok(r) => r,
        Err(Error::TooManyRequests { retry_after }) => {
            let mut resp = no_store(json_response(
                429,
                &json!({"error": "temporarily_unavailable",
                        "error_description": format!(
                            "too many registrations from this address; retry in {retry_after} seconds")}),
            ));
            resp.headers_mut()
                .insert("retry-after", http::HeaderValue::from(retry_after));
            return Ok(resp);
        }
        Err(e) => return Err(e),
    };
    let stored = crate::admin::create_registered_client(app, &id, Value::Object(doc)).await;
    match stored {
        Ok(()) => {
            // A stored registration counts (the throttle's "failure").
            reservation.failed(app).await;
        }
        Err(e) => {
            reservation.cancel(app).await;
            return match e {
                Error::Validation { field, message } => {
                    Ok(MetadataError::meta(format!("{field}: {message}")).to_response())
                }
                other => Err(other),
            };
        }
    }
    answer.insert("client_id_issued_at".into(), json!(issued_at));
    // RFC 7591 3.2.1: 0 = the client id does not expire; no secret was issued.
    Ok(no_store(json_response(201, &Value::Object(answer))))
}

fn hex_id(app: &App) -> String {
    let mut b = [0u8; 16];
    app.platform.random.fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reserves one registration for the caller's address (`CF-Connecting-IP`), or refuses with 429
/// once `DYNAMIC_REGISTRATION_LIMIT` registrations were stored in the last hour.
async fn reserve(app: &App, req: &Request) -> Result<crate::state::throttle::Reservation> {
    use crate::state::throttle;
    let addr = crate::http_util::header(req, "cf-connecting-ip")
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("unknown");
    let key = format!(
        "throttle/register/{}",
        crate::state::hash(&throttle::address_bucket(addr))
    );
    throttle::reserve_one(app, &key, app.config.registration.limit, 3600).await
}

/// How a self-registered client registered (`dynamic_registration` or
/// `client_id_metadata_document`), for the consent page; None for an administrator's client.
pub fn self_registration(client: &Client) -> Option<&'static str> {
    if client.doc.get(CIMD_FIELD).is_some() {
        Some(CIMD_FIELD)
    } else if client.doc.get(DCR_FIELD).is_some() {
        Some(DCR_FIELD)
    } else {
        None
    }
}

/// The host of an absolute URI, for display.
pub fn host_of(uri: &str) -> Option<String> {
    uri.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
}

/// Is this a client that registered itself (RFC 7591 or a Client ID Metadata Document)?
pub fn is_self_registered(client: &Client) -> bool {
    client.doc.get(DCR_FIELD).is_some() || client.doc.get(CIMD_FIELD).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> std::result::Result<Registered, MetadataError> {
        let Value::Object(m) = v else { panic!() };
        client_doc(&m, "dcr-1", DCR_FIELD, json!({}), &|u| {
            super::super::cimd::check_fetchable(u, false)
        })
    }

    fn code(v: Value) -> &'static str {
        doc(v).err().map_or("ok", |e| e.code)
    }

    #[test]
    fn builds_only_our_fields() {
        let (d, answer) = doc(json!({
            "redirect_uris": ["https://a.example/cb"],
            "client_name": " App ",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid patient/*.rs openid",
            "first_party": true, "secret": "x", "auth": {"password": {}}, "type": "smart-app",
            "allowed-scopes": ["admin"], "active": false
        }))
        .unwrap();
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "auth",
                "dynamic_registration",
                "grant_types",
                "id",
                "name",
                "resourceType",
                "scope"
            ]
        );
        assert_eq!(
            d["auth"],
            json!({"authorization_code": {"redirect_uri": "https://a.example/cb", "pkce": true}})
        );
        assert_eq!(d["scope"], json!(["openid", "patient/*.rs"]));
        assert_eq!(d["name"], json!("App"));
        assert_eq!(answer["token_endpoint_auth_method"], json!("none"));
        let two = doc(json!({"redirect_uris": ["https://a.example/cb", "https://b.example/cb"]}))
            .unwrap();
        assert_eq!(
            two.0["auth"]["authorization_code"]["redirect_uri"],
            json!(["https://a.example/cb", "https://b.example/cb"])
        );
        let client = Client::from_doc(Value::Object(d));
        assert!(is_self_registered(&client));
        for g in ["password", "client_credentials", "implicit", "basic"] {
            assert!(!client.allows_grant(g), "{g}");
        }
        assert!(client.allows_grant("authorization_code"));
    }

    #[test]
    fn refuses_what_a_self_registered_client_may_not_be() {
        let cb = json!(["https://a.example/cb"]);
        assert_eq!(code(json!({})), "invalid_redirect_uri");
        assert_eq!(code(json!({"redirect_uris": []})), "invalid_redirect_uri");
        assert_eq!(
            code(json!({"redirect_uris": "https://a.example/cb"})),
            "invalid_redirect_uri"
        );
        for u in [
            "http://evil.example/cb",
            "https://a.example/cb#f",
            "/cb",
            "javascript://x/%0aalert(1)",
            "data://x/y",
        ] {
            assert_eq!(
                code(json!({"redirect_uris": [u]})),
                "invalid_redirect_uri",
                "{u}"
            );
        }
        for bad in [
            json!({"redirect_uris": cb, "grant_types": ["password"]}),
            json!({"redirect_uris": cb, "grant_types": ["refresh_token"]}),
            json!({"redirect_uris": cb, "grant_types": ["authorization_code", "client_credentials"]}),
            json!({"redirect_uris": cb, "response_types": ["token"]}),
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "tls_client_auth"}),
            json!({"redirect_uris": cb, "client_secret": "s"}),
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"}),
            json!({"redirect_uris": cb, "jwks": {"keys": []}}),
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://10.0.0.1/k"}),
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://a.example/k"}),
            json!({"redirect_uris": cb, "scope": "system/*.rs"}),
            json!({"redirect_uris": cb, "scope": "openid admin"}),
            json!({"redirect_uris": cb, "scope": ["openid"]}),
            json!({"redirect_uris": cb, "client_name": "a\u{0}b"}),
            json!({"redirect_uris": cb, "client_name": "x".repeat(101)}),
        ] {
            assert_eq!(code(bad.clone()), "invalid_client_metadata", "{bad}");
        }
        // Registration: a secret method is replaced by none; a metadata document: refused.
        let (_, answer) =
            doc(json!({"redirect_uris": cb, "token_endpoint_auth_method": "client_secret_post"}))
                .unwrap();
        assert_eq!(answer["token_endpoint_auth_method"], json!("none"));
        let Value::Object(m) =
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "client_secret_basic"})
        else {
            panic!()
        };
        let cimd = client_doc(
            &m,
            "https://c.example/c",
            CIMD_FIELD,
            json!({}),
            &|_| Ok(()),
        );
        assert_eq!(cimd.err().map(|e| e.code), Some("invalid_client_metadata"));
        assert_eq!(
            code(
                json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://keys.example/k"})
            ),
            "ok"
        );
    }
}
