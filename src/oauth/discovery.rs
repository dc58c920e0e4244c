//! Discovery: RFC 8414 authorization server metadata, OpenID Connect Discovery 1.0, and our
//! JWKS (RFC 7517). The metadata lists only what is implemented.

use crate::app::App;
use crate::error::{Error, Result};
use crate::http_util::{json_response, Request, Response};
use serde_json::{json, Value};

fn metadata(app: &App, req: &Request) -> Value {
    let iss = app.issuer(req);
    json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/auth/authorize"),
        "token_endpoint": format!("{iss}/auth/token"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{iss}/auth/revoke"),
        "introspection_endpoint": format!("{iss}/auth/introspect"),
        "response_types_supported": ["code", "token"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": ["authorization_code", "implicit", "client_credentials", "password", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "ES256", "ES384", "EdDSA"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile", "email", "offline_access", "online_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "jti", "client_id", "scope", "name", "given_name", "family_name", "email"],
        "authorization_response_iss_parameter_supported": true,
        "access_token_signing_alg_values_supported": signing_algs(app),
    })
}

/// SMART App Launch 2.x `/.well-known/smart-configuration`: the capabilities implemented.
fn smart(app: &App, req: &Request) -> Value {
    let iss = app.issuer(req);
    json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{iss}/auth/authorize"),
        "token_endpoint": format!("{iss}/auth/token"),
        "introspection_endpoint": format!("{iss}/auth/introspect"),
        "revocation_endpoint": format!("{iss}/auth/revoke"),
        "userinfo_endpoint": format!("{iss}/auth/userinfo"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384", "RS256", "ES256", "EdDSA"],
        "scopes_supported": ["openid", "fhirUser", "profile", "email", "launch", "launch/patient",
                             "offline_access", "online_access"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-ehr", "launch-standalone",
            "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
            "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
            "sso-openid-connect", "permission-offline", "permission-online",
            "permission-patient", "permission-user", "permission-v1", "permission-v2"
        ],
    })
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

fn cacheable(mut r: Response) -> Response {
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

pub fn handle(app: &App, req: &Request, rest: &[&str]) -> Result<Response> {
    crate::app::only(req, &[http::Method::GET, http::Method::HEAD], "GET, HEAD")?;
    match rest {
        ["oauth-authorization-server"] => Ok(cacheable(json_response(200, &metadata(app, req)))),
        ["openid-configuration"] => {
            let mut m = metadata(app, req);
            m["subject_types_supported"] = json!(["public"]);
            m["userinfo_endpoint"] = json!(format!("{}/auth/userinfo", app.issuer(req)));
            m["end_session_endpoint"] = json!(format!("{}/auth/logout", app.issuer(req)));
            m["id_token_signing_alg_values_supported"] = json!(signing_algs(app));
            Ok(cacheable(json_response(200, &m)))
        }
        ["smart-configuration"] => Ok(cacheable(json_response(200, &smart(app, req)))),
        ["jwks.json"] => Ok(cacheable(json_response(200, &app.config.keys.jwks()))),
        _ => Err(Error::NotFound("no such discovery document".into())),
    }
}
