//! Fuzz regressions on stable: every input kept in `fuzz/regressions/<target>/` (the seed corpus
//! and each crash the fuzzers found) goes through the same property functions the cargo-fuzz
//! targets call (`fuzz/src/lib.rs`), plus hand-written edge cases: deep nesting, huge inputs,
//! invalid UTF-8, percent-encoding corners. See docs/development.md, "Fuzzing".

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

use edge_authorizer::http_util::{self, Authorization};
use edge_authorizer::policy::CompiledPolicy;
use edge_authorizer::smart::scopes;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Replays every file of `fuzz/regressions/<target>/` through `check`; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("read regression input");
        let started = Instant::now();
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            panic!("{}: {panic:?}", f.display());
        }
        // libFuzzer's default timeout is far longer; a kept input should be quick.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} took {:?}",
            f.display(),
            started.elapsed()
        );
    }
    files.len()
}

#[test]
fn jwt_regressions() {
    assert!(replay("jwt", checks::jwt) >= 5);
}

#[test]
fn form_regressions() {
    assert!(replay("form", checks::form) >= 5);
}

#[test]
fn basic_regressions() {
    assert!(replay("basic", checks::basic) >= 5);
}

#[test]
fn policy_regressions() {
    assert!(replay("policy", checks::policy) >= 5);
}

#[test]
fn smart_scopes_regressions() {
    assert!(replay("smart_scopes", checks::smart_scopes) >= 5);
}

// --- hand-written edge cases --------------------------------------------------------------------

fn nested(depth: usize, leaf: Value, wrap: impl Fn(Value) -> Value) -> Value {
    (0..depth).fold(leaf, |v, _| wrap(v))
}

/// `{key: v}` without copying `v` (`json!` would serialize it again: quadratic when nesting).
fn obj(key: &str, v: Value) -> Value {
    Value::Object(std::iter::once((key.to_owned(), v)).collect())
}

/// Runs `f` on a thread with a large stack: building and dropping values thousands of levels
/// deep recurses in serde_json itself (not in the code under test).
fn with_big_stack(f: impl FnOnce() + Send + 'static) {
    let result = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .expect("thread")
        .join();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn deeply_nested_matcho_is_a_compile_error_not_a_stack_overflow() {
    with_big_stack(|| {
        for depth in [65, 1_000, 10_000] {
            let pattern = nested(depth, json!("present?"), |v| obj("a", v));
            let policy = json!({"engine": "matcho", "matcho": pattern});
            let err = CompiledPolicy::compile(&policy).expect_err("too deep");
            assert!(err.to_string().contains("nested"), "{err}");
            let arrays = nested(depth, json!(1), |v| Value::Array(vec![v]));
            let err =
                CompiledPolicy::compile(&json!({"engine": "matcho", "matcho": {"a": arrays}}))
                    .expect_err("too deep");
            assert!(err.to_string().contains("nested"), "{err}");
            let not = nested(depth, json!("x"), |v| obj("$not", v));
            assert!(
                CompiledPolicy::compile(&json!({"engine": "matcho", "matcho": {"a": not}}))
                    .is_err()
            );
        }
    });
}

#[test]
fn deeply_nested_complex_and_schema_are_compile_errors() {
    let complex = nested(
        100,
        json!({"engine": "allow"}),
        |v| json!({"engine": "complex", "or": [v]}),
    );
    assert!(CompiledPolicy::compile(&complex).is_err());
    let schema = nested(
        200,
        json!({"type": "object"}),
        |v| json!({"properties": {"a": v}}),
    );
    assert!(CompiledPolicy::compile(&json!({"engine": "json-schema", "schema": schema})).is_err());
}

#[test]
fn deep_request_values_do_not_overflow_evaluation() {
    with_big_stack(deep_request_values);
}

fn deep_request_values() {
    // serde_json refuses more than 128 levels when parsing; a request built in memory can be
    // deeper. Matching is bounded by the pattern's depth, not the request's.
    let deep = nested(5_000, json!("leaf"), |v| obj("a", v));
    let request = json!({"uri": "/Patient", "body": deep, "user": {"id": "john"}});
    for policy in [
        json!({"engine": "matcho", "matcho": {"body": "present?", "user": {"id": ".user.id"}}}),
        json!({"engine": "matcho", "matcho": {"body": {"a": {"a": {"$length": 1}}}}}),
        json!({"engine": "json-schema", "schema": {"properties": {"body": {"type": "object"}}}}),
    ] {
        let compiled = CompiledPolicy::compile(&policy).expect("compiles");
        assert!(compiled.allows(&request), "{policy}");
    }
    // `.body` compared with the request body: deep equality stops at MAX_DEPTH levels, so
    // values deeper than that compare unequal (and the comparison ends).
    let compiled =
        CompiledPolicy::compile(&json!({"engine": "matcho", "matcho": {"body": ".body"}}))
            .expect("compiles");
    assert!(!compiled.allows(&request));
    let shallow = json!({"body": {"a": {"a": 1}}});
    assert!(compiled.allows(&shallow));
}

#[test]
fn huge_inputs_are_refused_or_parsed_without_trouble() {
    // A 1 MB form body of one parameter, and one of 100k parameters.
    let big = format!("a={}", "x".repeat(1 << 20));
    assert_eq!(
        http_util::parse_form(big.as_bytes()).expect("form")["a"].len(),
        1 << 20
    );
    let many: String = (0..100_000).map(|i| format!("k{i}=v&")).collect();
    assert_eq!(
        http_util::parse_form(many.as_bytes()).expect("form").len(),
        100_000
    );
    // Over-long tokens and Authorization headers are refused before decoding.
    let token = format!("{}.{}.{}", "a".repeat(8 * 1024), "b", "c");
    let mut data = vec![0u8];
    data.extend_from_slice(token.as_bytes());
    checks::jwt(&data);
    let header = format!("Basic {}", "QUFB".repeat(5_000));
    let req = http::Request::builder()
        .header("authorization", header)
        .body(Vec::new())
        .expect("request");
    assert_eq!(
        http_util::authorization(&req),
        Err("authorization header is too long".to_string())
    );
    // Many scopes.
    let s = "patient/Observation.rs ".repeat(10_000);
    assert_eq!(scopes::parse_strict(&s).expect("scopes").len(), 10_000);
    checks::smart_scopes(s.as_bytes());
}

#[test]
fn invalid_utf8_is_a_clean_error() {
    // Raw bytes and percent-encoded bytes that are not UTF-8: form_urlencoded replaces them.
    let form = http_util::parse_form(b"a=\xff\xfe&b=%FF%C3").expect("form");
    assert_eq!(form["a"], "\u{fffd}\u{fffd}");
    assert_eq!(form["b"], "\u{fffd}\u{fffd}");
    // JSON bodies must be UTF-8: a 400 invalid_request.
    let req = http::Request::builder()
        .header("content-type", "application/json")
        .body(b"{\"a\":\"\xff\"}".to_vec())
        .expect("request");
    let err = http_util::parse_params(&req).expect_err("not UTF-8");
    assert_eq!((err.status(), err.code()), (400, "invalid_request"));
    // Basic credentials that decode to Latin-1 bytes.
    let req = http::Request::builder()
        .header("authorization", "Basic 6XTpOng=")
        .body(Vec::new())
        .expect("request");
    assert_eq!(
        http_util::authorization(&req),
        Err("basic credentials are not UTF-8".to_string())
    );
    // A header value with obs-text bytes is not ASCII.
    let req = http::Request::builder()
        .header(
            "authorization",
            http::HeaderValue::from_bytes(b"Bearer \xe9").expect("obs-text"),
        )
        .body(Vec::new())
        .expect("request");
    assert!(http_util::authorization(&req).is_err());
    // Scopes: a restriction whose percent-encoding is not UTF-8 is malformed.
    assert!(scopes::parse_strict("patient/Observation.rs?code=%FF").is_err());
    assert!(scopes::parse("patient/Observation.rs?code=%FF").is_empty());
}

#[test]
fn percent_encoding_edge_cases() {
    let form = http_util::parse_form(b"a=%&b=%2&c=%zz&d=%E2%82%AC&e=a+b&f=%2B&=skipped&g").unwrap();
    assert_eq!(form["a"], "%");
    assert_eq!(form["b"], "%2");
    assert_eq!(form["c"], "%zz");
    assert_eq!(form["d"], "\u{20ac}");
    assert_eq!(form["e"], "a b");
    assert_eq!(form["f"], "+");
    assert_eq!(form["g"], "");
    assert!(!form.contains_key(""));
    // An encoded name equal to a plain one is a repeat (RFC 6749 3.1).
    assert!(http_util::parse_form(b"scope=a&%73cope=b").is_err());
    // Query params keep every value of a repeated name, in order, an encoded name included
    // (issue 11: never last-wins for the policy while the origin may take the first).
    assert_eq!(
        http_util::query_params("a=1&%61=2&b=3&a=4"),
        *json!({"a": ["1", "2", "4"], "b": "3"}).as_object().unwrap()
    );
    // RFC 6749 2.3.1 form decoding of Basic credentials.
    assert_eq!(http_util::form_decoded("a%3Ab+c").as_deref(), Some("a:b c"));
    assert_eq!(http_util::form_decoded("plain"), None);
    assert_eq!(http_util::form_decoded("%FF"), None);
    // SMART restrictions: decoded, and written back encoded.
    let s = scopes::parse_strict("patient/Observation.rs?code=a%20b%26c%3Dd").unwrap();
    let scopes::Scope::Clinical(c) = &s[0] else {
        panic!("clinical")
    };
    assert_eq!(c.restrictions, vec![("code".into(), "a b&c=d".into())]);
    assert_eq!(
        scopes::format(&s),
        "patient/Observation.rs?code=a%20b%26c%3Dd"
    );
    for bad in [
        "patient/Observation.rs?",
        "patient/Observation.rs?code",
        "patient/Observation.rs?=x",
        "patient/Observation.rs?code=",
        "patient/Observation.read?code=x",
    ] {
        assert!(scopes::parse_strict(bad).is_err(), "{bad}");
        checks::smart_scopes(bad.as_bytes());
    }
}

#[test]
fn bearer_and_basic_shapes() {
    let auth = |v: &str| {
        let req = http::Request::builder()
            .header("authorization", v)
            .body(Vec::new())
            .expect("request");
        http_util::authorization(&req)
    };
    assert!(matches!(auth("Bearer abc"), Ok(Authorization::Bearer(t)) if t == "abc"));
    assert!(matches!(auth("bearer   abc  "), Ok(Authorization::Bearer(t)) if t == "abc"));
    assert!(auth("Bearer a b").is_err());
    assert!(auth("Bearer").is_err());
    assert!(auth("Basic").is_err());
    assert!(auth("Basic Og==").is_err()); // ":"
    assert!(auth("Basic YTo=").is_err()); // "a:"
    assert!(auth("Basic YQ==").is_err()); // "a"
    assert!(auth("Basic YTpi").is_ok()); // "a:b"
    assert!(auth("Basic YTpi===").is_err()); // bad padding
    assert!(auth("Negotiate abc").is_err());
    for v in ["Basic YTpi", "Bearer x", "Basic YTpiOmM=", "Basic !!!", "x"] {
        checks::basic(v.as_bytes());
    }
}

// --- json-schema evaluation limits (found reviewing the policy target's corpus) -----------------

fn schema_policy(schema: Value) -> CompiledPolicy {
    CompiledPolicy::compile(&json!({"engine": "json-schema", "schema": schema})).expect("compiles")
}

#[test]
fn json_schema_branching_refs_are_cut_short_and_denied() {
    // Two recursive branches per level: 2^32 subschema applications before MAX_DEPTH stops it.
    // It used to run for hours; now the step budget denies it at once.
    let started = Instant::now();
    let p = schema_policy(json!({"anyOf": [{"$ref": "#"}, {"$ref": "#"}]}));
    assert!(!p.allows(&json!({"uri": "/Patient"})));
    let p = schema_policy(json!({"not": {"oneOf": [{"$ref": "#"}, {"$ref": "#"}]}}));
    assert!(!p.allows(&json!({"uri": "/Patient"})));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn json_schema_not_cannot_be_escaped_by_nesting_past_max_depth() {
    // "Deny any request whose body holds an `evil` key at any depth."
    let p = schema_policy(json!({
        "not": {"properties": {"body": {"$ref": "#/definitions/evil"}}},
        "definitions": {"evil": {"anyOf": [
            {"type": "object", "required": ["evil"]},
            {"type": "object", "additionalProperties": {"$ref": "#/definitions/evil"}}
        ]}}
    }));
    let body_at = |levels: usize| json!({"uri": "/Patient", "body": nested(levels, json!({"evil": true}), |v| obj("a", v))});
    assert!(p.allows(&json!({"uri": "/Patient", "body": {"a": {"fine": 1}}})));
    assert!(!p.allows(&body_at(2)));
    // Deeper than the walk may go: the cut-off branch used to count as "no evil" under `not`,
    // so the request was allowed.
    assert!(!p.allows(&body_at(40)));
    assert!(!p.allows(&body_at(100)));
}

#[test]
fn json_schema_unique_items_on_a_huge_array_is_bounded() {
    let p = schema_policy(json!({"properties": {"body": {"uniqueItems": true}}}));
    assert!(p.allows(&json!({"body": [1, 2, 3]})));
    assert!(!p.allows(&json!({"body": [1, 2, 1]})));
    // 20k distinct items: 2*10^8 pairwise comparisons, past the step budget: denied, quickly.
    let started = Instant::now();
    let big: Vec<Value> = (0..20_000).map(Value::from).collect();
    assert!(!p.allows(&json!({ "body": big })));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

// --- jwt: signatures of the wrong length (found by the jwt target) ------------------------------

#[test]
fn eddsa_signature_of_the_wrong_length_is_a_bad_signature_not_a_panic() {
    use edge_authorizer::crypto::RustCrypto;
    use edge_authorizer::jwt::{self, VerifyError};
    let header = http_util::b64url(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"fuzz-key"}"#);
    let claims = json!({"iss": checks::ISSUER, "aud": checks::AUDIENCE, "exp": checks::NOW + 60});
    let payload = http_util::b64url(claims.to_string().as_bytes());
    for len in [0, 1, 32, 63, 65, 96, 128] {
        let token = format!("{header}.{payload}.{}", http_util::b64url(&vec![0u8; len]));
        let result = futures::executor::block_on(jwt::verify(
            &RustCrypto,
            &checks::ed25519_keys(),
            &token,
            &checks::expectations(),
        ));
        assert_eq!(
            result,
            Err(VerifyError::BadSignature),
            "signature of {len} bytes"
        );
    }
}
