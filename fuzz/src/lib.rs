//! The properties the fuzz targets check, one function per target.
//!
//! Each `fuzz_targets/<name>.rs` calls the function of the same name on libFuzzer's bytes, and
//! `tests/fuzz_regressions.rs` (stable `cargo test`) includes this file with `#[path]` and replays
//! the kept inputs in `fuzz/regressions/<name>/` through the very same functions. A property
//! that does not hold panics, which is what both libFuzzer and the test harness report.
//!
//! Only `edge_authorizer`, `futures`, `http` and `serde_json` are used, so the file compiles in
//! both crates. No crate-level attributes here for the same reason.

use edge_authorizer::crypto::RustCrypto;
use edge_authorizer::http_util::{self, Authorization};
use edge_authorizer::jwt::{self, keys::KeySet, Expectations, VerifyError};
use edge_authorizer::policy::{self, CompiledPolicy};
use edge_authorizer::smart::scopes::{self, ClinicalScope};
use serde_json::{json, Map, Value};

/// The fixed clock of every target: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;
pub const ISSUER: &str = "https://auth.example.test";
pub const AUDIENCE: &str = "https://api.example.test";
pub const KID: &str = "fuzz-key";

/// Splits `data` at the first `sep` byte: (before, after). No separator: (all, empty).
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

// ---------------------------------------------------------------------------------------------
// jwt

pub fn ed25519_keys() -> KeySet {
    let jwk = edge_authorizer::testing::ed25519_jwk([7u8; 32], KID);
    KeySet::from_config(Some(&jwk), None).expect("fixed Ed25519 key")
}

pub fn expectations() -> Expectations<'static> {
    Expectations {
        issuer: ISSUER,
        audience: Some(AUDIENCE),
        typ: Some(jwt::ACCESS_TOKEN_TYP),
        leeway: 60,
        now: NOW,
    }
}

/// Claims a verified token must carry: what `verify` promises its callers.
fn assert_verified_claims(claims: &Map<String, Value>) {
    assert_eq!(claims.get("iss"), Some(&json!(ISSUER)), "iss not checked");
    assert!(
        claims.get("exp").and_then(Value::as_i64).is_some(),
        "verified token without exp"
    );
}

/// Bytes -> token, `jwt::verify` against a fixed Ed25519 key set and an HMAC key set, with a
/// fixed clock. Layout: first byte = mode.
/// - mode even: the rest is a token (UTF-8), verified as is. It must never panic, and whatever
///   it accepts must carry `iss` = ISSUER and `exp`.
/// - mode odd: the rest, up to a 0xFF byte, is JSON; when it is an object its members become
///   claims (minus the registered time/iss/aud claims, which we set valid). The token is signed
///   with the fixed key and must verify, giving back the claims. Then one character of the
///   token, chosen by the bytes after 0xFF, is replaced by another base64url character (or `.`):
///   the changed token must be refused.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let crypto = RustCrypto;
    let keys = ed25519_keys();
    let expect = expectations();
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        for set in [&keys, &KeySet::hmac(b"fuzz-shared-secret")] {
            if let Ok(claims) =
                futures::executor::block_on(jwt::verify(&crypto, set, token, &expect))
            {
                assert_verified_claims(&claims);
            }
        }
        return;
    }
    let (json_part, tamper) = split(rest, 0xFF);
    let mut claims = match serde_json::from_slice::<Value>(json_part) {
        Ok(Value::Object(m)) => m,
        Ok(other) => {
            let mut m = Map::new();
            m.insert("x".into(), other);
            m
        }
        Err(_) => {
            let mut m = Map::new();
            m.insert(
                "sub".into(),
                Value::String(String::from_utf8_lossy(json_part).into_owned()),
            );
            m
        }
    };
    for k in ["exp", "nbf", "iat", "iss", "aud"] {
        claims.remove(k);
    }
    let custom = claims.clone();
    claims.insert("iss".into(), json!(ISSUER));
    claims.insert("aud".into(), json!(AUDIENCE));
    claims.insert("exp".into(), json!(NOW + 300));
    claims.insert("iat".into(), json!(NOW));
    let signing = keys.signing.as_ref().expect("signing key");
    let Ok(token) = futures::executor::block_on(jwt::sign(
        &crypto,
        signing,
        jwt::ACCESS_TOKEN_TYP,
        &Value::Object(claims),
    )) else {
        panic!("signing with the fixed key failed");
    };
    let result = futures::executor::block_on(jwt::verify(&crypto, &keys, &token, &expect));
    if token.len() > jwt::MAX_TOKEN_LEN {
        assert!(
            matches!(result, Err(VerifyError::Malformed(_))),
            "an over-long token must be refused as malformed"
        );
        return;
    }
    let verified = match result {
        Ok(v) => v,
        Err(e) => panic!("a token we signed did not verify: {e}"),
    };
    assert_verified_claims(&verified);
    // What was signed is JSON text: compare with the claims as read back from that text.
    // (serde_json without `float_roundtrip` may read a long number like 111...1 (45 digits)
    // one ulp off, and print/parse again one ulp elsewhere; that is not verify's doing.)
    let as_signed: Map<String, Value> =
        serde_json::from_str(&Value::Object(custom.clone()).to_string()).expect("JSON");
    for (k, v) in &as_signed {
        assert_eq!(verified.get(k), Some(v), "claim {k} changed in verify");
    }
    // Tamper with one character: the token must no longer verify.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let (pos, pick) = match tamper {
        [a, b, c, ..] => (usize::from(*a) << 8 | usize::from(*b), usize::from(*c)),
        [a, b] => (usize::from(*a), usize::from(*b)),
        [a] => (usize::from(*a), 0),
        [] => (token.len() - 1, 0),
    };
    let pos = pos % token.len();
    let mut bytes = token.into_bytes();
    let old = bytes[pos];
    let mut new = ALPHABET[pick % ALPHABET.len()];
    if new == old {
        new = ALPHABET[(pick + 1) % ALPHABET.len()];
    }
    bytes[pos] = new;
    let tampered = String::from_utf8(bytes).expect("ASCII token");
    let result = futures::executor::block_on(jwt::verify(&crypto, &keys, &tampered, &expect));
    assert!(
        result.is_err(),
        "a token with byte {pos} changed from {:?} to {:?} still verified",
        old as char,
        new as char
    );
}

// ---------------------------------------------------------------------------------------------
// form / query

const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/json",
    "application/fhir+json;charset=utf-8",
    "text/plain",
];

/// Bytes -> `parse_form`, `query_params` and `parse_params` on a request. Layout: first byte
/// picks a content type (or none, or the bytes up to a 0x00 as the raw header value); the rest
/// is the body (and the query string). Properties: `parse_form` keys are never empty and a
/// name given twice is an error; `parse_params` on a form media type equals `parse_form`;
/// `query_params` keeps exactly the distinct names `parse_form` saw.
pub fn form(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body): (Option<Vec<u8>>, &[u8]) = match usize::from(sel) % 8 {
        n if n < CONTENT_TYPES.len() => (Some(CONTENT_TYPES[n].as_bytes().to_vec()), rest),
        6 => (None, rest),
        _ => {
            let (ct, body) = split(rest, 0);
            (Some(ct.to_vec()), body)
        }
    };

    let form = http_util::parse_form(body);
    if let Ok(map) = &form {
        assert!(
            map.keys().all(|k| !k.is_empty()),
            "empty parameter name kept"
        );
    }
    let query = String::from_utf8_lossy(body);
    let params = http_util::query_params(&query);
    // A single value is a string, a repeated name an array of two or more strings.
    assert!(
        params.values().all(|v| v.is_string()
            || v.as_array()
                .is_some_and(|a| a.len() >= 2 && a.iter().all(Value::is_string))),
        "query param neither a string nor an array of its values"
    );
    if let Ok(map) = http_util::parse_form(query.as_bytes()) {
        // Without repeats, the two parsers agree on every (non-empty) name and value.
        for (k, v) in &map {
            assert_eq!(params.get(k), Some(&Value::String(v.clone())), "query {k}");
        }
    }

    let mut builder = http::Request::builder().method("POST").uri("/auth/token");
    if let Some(ct) = &content_type {
        match http::HeaderValue::from_bytes(ct) {
            Ok(v) => builder = builder.header("content-type", v),
            Err(_) => return,
        }
    }
    let Ok(req) = builder.body(body.to_vec()) else {
        return;
    };
    let parsed = http_util::parse_params(&req);
    if http_util::media_type(&req).as_deref() == Some("application/x-www-form-urlencoded") {
        match (&parsed, &form) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "parse_params differs from parse_form"),
            (Err(_), Err(_)) => {}
            _ => panic!("parse_params and parse_form disagree on success"),
        }
    }
    if let Ok(map) = &parsed {
        assert!(map.keys().all(|k| !k.is_empty()) || content_type.is_some());
    }
    if let Err(e) = &parsed {
        // Every refusal is a client error with a message, never an internal one.
        assert_eq!(e.status(), 400, "parse_params error is not a 400: {e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// basic

/// Bytes -> an `Authorization` header -> `http_util::authorization`. Properties: Basic
/// credentials have a non-empty id without `:` and a non-empty secret, and encoding them again
/// gives the same credentials back; a Bearer token is non-empty without spaces; `form_decoded`
/// of the id never panics and never returns the input unchanged.
pub fn basic(data: &[u8]) {
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(req) = http::Request::builder()
        .uri("/Patient")
        .header("authorization", value)
        .body(Vec::new())
    else {
        return;
    };
    match http_util::authorization(&req) {
        Ok(Authorization::None) => panic!("a header was sent but None came back"),
        Ok(Authorization::Basic(creds)) => {
            assert!(!creds.id.is_empty() && !creds.id.contains(':'), "bad id");
            let secret = creds.secret.expose();
            assert!(!secret.is_empty(), "empty secret");
            let again = edge_authorizer::testing::TestApp::basic(&creds.id, secret);
            let req2 = http::Request::builder()
                .header("authorization", again)
                .body(Vec::new())
                .expect("re-encoded header");
            assert_eq!(
                http_util::authorization(&req2),
                Ok(Authorization::Basic(creds.clone())),
                "Basic credentials do not round-trip"
            );
            for s in [creds.id.as_str(), secret] {
                if let Some(d) = http_util::form_decoded(s) {
                    assert_ne!(d, s, "form_decoded returned its input");
                }
            }
        }
        Ok(Authorization::Bearer(token)) => {
            assert!(
                !token.is_empty() && !token.contains(' '),
                "bad bearer token"
            );
        }
        Err(msg) => assert!(!msg.is_empty()),
    }
}

// ---------------------------------------------------------------------------------------------
// policy

/// Bytes -> `policy JSON 0x00 request JSON`. The policy is compiled; when it compiles it is
/// evaluated against the request (and against a typical request when the second part is not
/// JSON). Properties: evaluation is deterministic; `complex` with `or: [p]` or `and: [p]` allows
/// exactly what `p` allows; `evaluate` agrees with `applies_to && allows`.
pub fn policy(data: &[u8]) {
    let (policy_part, request_part) = split(data, 0);
    let Ok(policy_json) = serde_json::from_slice::<Value>(policy_part) else {
        return;
    };
    let request = serde_json::from_slice::<Value>(request_part).unwrap_or_else(|_| {
        json!({
            "request-method": "get",
            "scheme": "https",
            "uri": "/Patient/pt-1",
            "query-string": "_count=10",
            "params": {"_count": "10", "resource/type": "Patient", "resource/id": "pt-1"},
            "body": null,
            "headers": {"accept": "application/fhir+json"},
            "remote-addr": "203.0.113.7",
            "user": {"id": "john", "email": "john@example.com"},
            "client": {"id": "app"},
            "jwt": {"sub": "john", "scope": "patient/*.rs openid", "patient": "pt-1"},
        })
    });
    let Ok(compiled) = CompiledPolicy::compile(&policy_json) else {
        return;
    };
    let allowed = compiled.allows(&request);
    assert_eq!(
        allowed,
        compiled.allows(&request),
        "evaluation is not deterministic"
    );
    let client = request.pointer("/client/id").and_then(Value::as_str);
    let user = request.pointer("/user/id").and_then(Value::as_str);
    let applies = compiled.applies_to(client, user, None);
    assert_eq!(
        policy::evaluate(
            std::slice::from_ref(&compiled),
            &request,
            client,
            user,
            None
        ),
        (applies && allowed).then_some(0),
        "evaluate disagrees with applies_to && allows"
    );
    let mut inner = policy_json.clone();
    if let Some(obj) = inner.as_object_mut() {
        obj.remove("link");
    }
    for op in ["or", "and"] {
        let wrapped = json!({"engine": "complex", op: [inner.clone()]});
        if let Ok(w) = CompiledPolicy::compile(&wrapped) {
            assert_eq!(
                w.allows(&request),
                allowed,
                "complex {op} [p] differs from p"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// smart scopes

/// Bytes (UTF-8) -> `scopes::parse`, `parse_strict`, `ClinicalScope::parse`. Properties:
/// formatting what was parsed and parsing it again (strictly) gives the same scopes; what
/// `parse_strict` accepts, `parse` reads the same; a clinical scope round-trips through Display.
pub fn smart_scopes(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let lenient = scopes::parse(s);
    let formatted = scopes::format(&lenient);
    match scopes::parse_strict(&formatted) {
        Ok(again) => assert_eq!(
            again, lenient,
            "format/parse round trip of {s:?} via {formatted:?}"
        ),
        Err(e) => panic!("formatted scopes {formatted:?} (from {s:?}) do not parse: {e}"),
    }
    if let Ok(strict) = scopes::parse_strict(s) {
        assert_eq!(strict, lenient, "parse_strict and parse differ on {s:?}");
    }
    if let Ok(c) = ClinicalScope::parse(s) {
        let text = c.to_string();
        assert_eq!(
            ClinicalScope::parse(&text).as_ref(),
            Ok(&c),
            "clinical scope {s:?} -> {text:?} does not round-trip"
        );
    }
}
