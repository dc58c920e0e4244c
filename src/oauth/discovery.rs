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
        "token_endpoint": format!("{iss}/auth/token"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "grant_types_supported": super::GrantType::SUPPORTED,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "scopes_supported": [],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"],
        "access_token_signing_alg_values_supported": signing_algs(app),
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
            Ok(cacheable(json_response(200, &m)))
        }
        ["jwks.json"] => Ok(cacheable(json_response(200, &app.config.keys.jwks()))),
        _ => Err(Error::NotFound("no such discovery document".into())),
    }
}
