//! Behavioural tests of the AccessPolicy engines (`edge_authorizer::policy`): allow, matcho,
//! json-schema, complex; links and applicability; evaluate(); compile errors naming the field.

use edge_authorizer::policy::{evaluate, CompiledPolicy, Link, LinkKind, PolicyError};
use serde_json::{json, Value};

/// A policy request as the authorizer builds it: GET /Patient/pt-1?_count=10 by client "basic"
/// on behalf of user "u-1".
fn request() -> Value {
    json!({
        "request-method": "get",
        "scheme": "https",
        "uri": "/Patient/pt-1",
        "query-string": "_count=10",
        "params": {"_count": "10", "resource/type": "Patient", "resource/id": "pt-1"},
        "body": null,
        "headers": {"content-type": "application/json", "x-tenant": "t1"},
        "remote-addr": "10.0.0.1",
        "user": {
            "id": "u-1",
            "resourceType": "User",
            "data": {"patient": "pt-1", "roles": ["doctor", "admin"]},
            "email": "doc@example.com"
        },
        "client": {"id": "basic", "resourceType": "Client", "grant_types": ["basic"]},
        "jwt": {"sub": "u-1", "iss": "https://issuer", "scope": "openid", "n": 3}
    })
}

/// `request()` with `f` applied.
fn request_with(f: impl FnOnce(&mut Value)) -> Value {
    let mut r = request();
    f(&mut r);
    r
}

fn compile(policy: Value) -> CompiledPolicy {
    match CompiledPolicy::compile(&policy) {
        Ok(p) => p,
        Err(e) => panic!("policy should compile, got {e}: {policy}"),
    }
}

fn compile_err(policy: Value) -> PolicyError {
    match CompiledPolicy::compile(&policy) {
        Ok(p) => panic!("policy should not compile: {policy} -> {p:?}"),
        Err(e) => e,
    }
}

fn matcho(pattern: Value) -> CompiledPolicy {
    compile(json!({"engine": "matcho", "matcho": pattern}))
}

fn schema(schema: Value) -> CompiledPolicy {
    compile(json!({"engine": "json-schema", "schema": schema}))
}

/// Does the matcho pattern match the request `r`?
fn m(pattern: Value, r: &Value) -> bool {
    matcho(pattern).allows(r)
}

/// Does the schema accept the request `r`?
fn s(schema_json: Value, r: &Value) -> bool {
    schema(schema_json).allows(r)
}

// ------------------------------------------------------------------------------------------------
// allow

#[test]
fn allow_engine_allows_everything() {
    let p = compile(json!({"resourceType": "AccessPolicy", "id": "root", "engine": "allow"}));
    assert_eq!(p.engine(), "allow");
    assert!(p.links().is_empty());
    assert!(p.allows(&request()));
    assert!(p.allows(&json!({})));
    assert!(p.allows(&Value::Null));
}

#[test]
fn top_level_metadata_is_ignored() {
    let p = compile(json!({
        "resourceType": "AccessPolicy", "id": "x", "meta": {"versionId": "3"},
        "description": "everything", "engine": "allow", "somethingElse": {"a": 1}
    }));
    assert!(p.allows(&request()));
}

// ------------------------------------------------------------------------------------------------
// matcho: the Aidbox tutorial example and each rule

fn tutorial_policy() -> CompiledPolicy {
    compile(json!({
        "resourceType": "AccessPolicy",
        "id": "policy-for-basic-client",
        "engine": "matcho",
        "matcho": {"uri": "#/Patient.*", "request-method": "get", "client": {"id": "basic"}}
    }))
}

#[test]
fn matcho_tutorial_example_allows_its_client() {
    let p = tutorial_policy();
    assert_eq!(p.engine(), "matcho");
    assert!(p.allows(&request()));
    assert!(p.allows(&request_with(|r| r["uri"] = json!("/Patient"))));
}

#[test]
fn matcho_tutorial_example_denies_other_client_method_or_uri() {
    let p = tutorial_policy();
    assert!(!p.allows(&request_with(|r| r["client"]["id"] = json!("other"))));
    assert!(!p.allows(&request_with(|r| r["client"] = Value::Null)));
    assert!(!p.allows(&request_with(|r| r["request-method"] = json!("post"))));
    assert!(!p.allows(&request_with(|r| r["uri"] = json!("/Observation/1"))));
}

#[test]
fn matcho_regex_is_a_partial_match_unless_anchored() {
    let r = request_with(|r| r["uri"] = json!("/fhir/Patient/1"));
    assert!(m(json!({"uri": "#/Patient"}), &r));
    assert!(!m(json!({"uri": "#^/Patient"}), &r));
    assert!(m(json!({"uri": "#^/Patient/[^/]+$"}), &request()));
    assert!(!m(json!({"uri": "#^/Patient$"}), &request()));
}

#[test]
fn matcho_regex_applies_to_numbers_and_booleans_as_text() {
    let r = json!({"n": 42, "b": true, "o": {"x": 1}, "z": null});
    assert!(m(json!({"n": "#^4\\d$"}), &r));
    assert!(m(json!({"b": "#^true$"}), &r));
    assert!(!m(json!({"o": "#.*"}), &r));
    assert!(!m(json!({"z": "#.*"}), &r));
    assert!(!m(json!({"missing": "#.*"}), &r));
}

#[test]
fn matcho_map_is_recursive_inclusion() {
    let r = request();
    assert!(m(json!({"user": {"data": {"patient": "pt-1"}}}), &r));
    assert!(m(json!({"user": {}}), &r), "{{}} matches any map");
    assert!(!m(json!({"body": {}}), &r), "{{}} does not match null");
    assert!(!m(json!({"user": {"data": {"patient": "pt-2"}}}), &r));
    assert!(
        !m(json!({"user": "u-1"}), &r),
        "a string pattern does not match a map"
    );
    assert!(
        !m(json!({"uri": {"a": 1}}), &r),
        "a map pattern does not match a string"
    );
}

#[test]
fn matcho_missing_key_fails_unless_nil() {
    let r = request();
    assert!(!m(json!({"params": {"patient": "pt-1"}}), &r));
    assert!(m(json!({"params": {"patient": "nil?"}}), &r));
    assert!(m(json!({"nope": {"deeper": "nil?"}}), &json!({"nope": {}})));
    assert!(
        !m(json!({"nope": {"deeper": "nil?"}}), &r),
        "the map itself must be there"
    );
}

#[test]
fn matcho_nil_matches_null_and_missing_only() {
    let r = request();
    assert!(m(json!({"body": "nil?"}), &r));
    assert!(m(json!({"absent": "nil?"}), &r));
    assert!(!m(json!({"uri": "nil?"}), &r));
    assert!(!m(json!({"params": {"_count": "nil?"}}), &r));
    // A null pattern means the same as "nil?".
    assert!(m(json!({"body": null}), &r));
    assert!(!m(json!({"uri": null}), &r));
}

#[test]
fn matcho_present_matches_any_non_null() {
    let r = json!({"a": 0, "b": false, "c": "", "d": [], "e": null});
    for key in ["a", "b", "c", "d"] {
        assert!(m(json!({ key: "present?" }), &r), "{key} is present");
    }
    assert!(!m(json!({"e": "present?"}), &r));
    assert!(!m(json!({"f": "present?"}), &r));
}

// Aidbox docs, docs/reference/matcho-dsl-reference.md: "not-blank? — matches a non-empty
// string." Only strings: an array, map, number or boolean is not a string.
#[test]
fn matcho_not_blank() {
    let r = json!({"s": " x ", "ws": "  \t", "e": "", "arr": [1], "earr": [], "map": {"a": 1},
                   "emap": {}, "n": 0, "f": false, "z": null});
    assert!(m(json!({"s": "not-blank?"}), &r), "s is not blank");
    for key in [
        "ws", "e", "earr", "emap", "z", "missing", "arr", "map", "n", "f",
    ] {
        assert!(!m(json!({ key: "not-blank?" }), &r), "{key} is blank");
    }
}

#[test]
fn matcho_array_is_an_ordered_prefix() {
    let r = json!({"a": ["x", "y", "z"], "s": "x"});
    assert!(m(json!({"a": ["x"]}), &r));
    assert!(m(json!({"a": ["x", "y"]}), &r));
    assert!(m(json!({"a": ["x", "#^y$", "present?"]}), &r));
    assert!(m(json!({"a": []}), &r));
    assert!(!m(json!({"a": ["y", "x"]}), &r));
    assert!(
        !m(json!({"a": ["x", "y", "z", "w"]}), &r),
        "longer than the value"
    );
    assert!(!m(json!({"s": ["x"]}), &r), "not an array");
    assert!(
        m(json!({"a": ["x", "y", "z", "nil?"]}), &r),
        "past the end is null"
    );
}

#[test]
fn matcho_array_of_maps() {
    let r = json!({"body": {"entry": [{"resource": {"resourceType": "Patient", "id": "1"}}]}});
    assert!(m(
        json!({"body": {"entry": [{"resource": {"resourceType": "Patient"}}]}}),
        &r
    ));
    assert!(!m(
        json!({"body": {"entry": [{"resource": {"resourceType": "Practitioner"}}]}}),
        &r
    ));
}

#[test]
fn matcho_request_path_refs() {
    let r = request();
    // Aidbox docs: a user may read only their own patient.
    assert!(m(
        json!({"params": {"resource/id": ".user.data.patient"}}),
        &r
    ));
    assert!(m(json!({"jwt": {"sub": ".user.id"}}), &r));
    assert!(m(json!({"client": {"id": ".client.id"}}), &r));
    let other = request_with(|r| r["params"]["resource/id"] = json!("pt-2"));
    assert!(!m(
        json!({"params": {"resource/id": ".user.data.patient"}}),
        &other
    ));
}

#[test]
fn matcho_request_path_indexes_arrays_and_compares_deeply() {
    let r = json!({"user": {"roles": ["doctor", "admin"], "org": {"id": 1}},
                   "params": {"role": "admin"}, "body": {"org": {"id": 1.0}}});
    assert!(m(json!({"params": {"role": ".user.roles.1"}}), &r));
    assert!(!m(json!({"params": {"role": ".user.roles.0"}}), &r));
    assert!(!m(json!({"params": {"role": ".user.roles.7"}}), &r));
    assert!(
        m(json!({"body": {"org": ".user.org"}}), &r),
        "maps compare deeply, numbers by value"
    );
}

#[test]
fn matcho_request_path_to_nothing_never_matches() {
    // Both sides missing must not count as equal: that would let anonymous callers in.
    let anon = request_with(|r| {
        r["user"] = Value::Null;
        r["params"].as_object_mut().map(|p| p.remove("resource/id"));
    });
    assert!(!m(
        json!({"params": {"resource/id": ".user.data.patient"}}),
        &anon
    ));
    let null_param = request_with(|r| {
        r["user"] = Value::Null;
        r["params"]["resource/id"] = Value::Null;
    });
    assert!(!m(
        json!({"params": {"resource/id": ".user.data.patient"}}),
        &null_param
    ));
}

#[test]
fn matcho_scalars_compare_by_value_without_coercion() {
    let r = json!({"n": 1, "f": 2.5, "s": "10", "b": false});
    assert!(m(json!({"n": 1.0}), &r));
    assert!(m(json!({"f": 2.5}), &r));
    assert!(!m(json!({"n": 2}), &r));
    assert!(!m(json!({"s": 10}), &r), "query params are strings");
    assert!(m(json!({"s": "10"}), &r));
    assert!(m(json!({"b": false}), &r));
    assert!(!m(json!({"b": "false"}), &r));
    assert!(!m(json!({"missing": false}), &r));
}

#[test]
fn matcho_enum() {
    let p = matcho(json!({"request-method": {"$enum": ["get", "post"]}}));
    assert!(p.allows(&request()));
    assert!(p.allows(&request_with(|r| r["request-method"] = json!("post"))));
    assert!(!p.allows(&request_with(|r| r["request-method"] = json!("put"))));
    assert!(!p.allows(&request_with(|r| r["request-method"] = Value::Null)));
    assert!(m(json!({"jwt": {"n": {"$enum": [1, 2, 3.0]}}}), &request()));
    assert!(
        !m(json!({"uri": {"$enum": ["#.*"]}}), &request()),
        "$enum values are literals"
    );
}

#[test]
fn matcho_one_of() {
    let p = matcho(json!({"user": {"$one-of": [{"email": "present?"}, {"phone": "present?"}]}}));
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["user"]["email"] = Value::Null)));
    // Aidbox docs example.
    let pat = json!({"a": {"$one-of": [{"b": "present?"}, {"c": "present?"}]}});
    assert!(m(pat.clone(), &json!({"a": {"c": 5}})));
    assert!(!m(pat.clone(), &json!({"a": {"d": 5}})));
    assert!(!m(pat, &json!({"a": {"b": null}})));
    assert!(m(
        json!({"uri": {"$one-of": ["#^/Patient", "#^/Observation"]}}),
        &request()
    ));
}

#[test]
fn matcho_contains() {
    let r = request();
    assert!(m(
        json!({"user": {"data": {"roles": {"$contains": "admin"}}}}),
        &r
    ));
    assert!(m(
        json!({"user": {"data": {"roles": {"$contains": "#^doc"}}}}),
        &r
    ));
    assert!(!m(
        json!({"user": {"data": {"roles": {"$contains": "nurse"}}}}),
        &r
    ));
    assert!(
        !m(json!({"uri": {"$contains": "/"}}), &r),
        "$contains needs an array"
    );
    let entries = json!({"body": {"entry": [{"type": "a"}, {"type": "b", "ok": true}]}});
    assert!(m(
        json!({"body": {"entry": {"$contains": {"type": "b", "ok": true}}}}),
        &entries
    ));
    assert!(!m(
        json!({"body": {"entry": {"$contains": {"type": "a", "ok": true}}}}),
        &entries
    ));
}

#[test]
fn matcho_every() {
    let r = json!({"ids": ["pt-1", "pt-2"], "none": [], "mixed": ["pt-1", 3], "s": "pt-1"});
    assert!(m(json!({"ids": {"$every": "#^pt-"}}), &r));
    assert!(!m(json!({"mixed": {"$every": "#^pt-"}}), &r));
    assert!(
        m(json!({"none": {"$every": "#^pt-"}}), &r),
        "vacuously true for []"
    );
    assert!(!m(json!({"missing": {"$every": "#^pt-"}}), &r));
    assert!(
        !m(json!({"s": {"$every": "#^pt-"}}), &r),
        "$every needs an array"
    );
}

#[test]
fn matcho_not() {
    let r = request();
    assert!(m(json!({"request-method": {"$not": "delete"}}), &r));
    assert!(!m(json!({"request-method": {"$not": "get"}}), &r));
    assert!(
        m(json!({"params": {"_elements": {"$not": "present?"}}}), &r),
        "missing passes $not"
    );
    assert!(m(
        json!({"user": {"data": {"roles": {"$not": {"$contains": "banned"}}}}}),
        &r
    ));
    assert!(!m(
        json!({"user": {"data": {"roles": {"$not": {"$contains": "admin"}}}}}),
        &r
    ));
}

// Aidbox docs, docs/reference/matcho-dsl-reference.md: "$present-all — checks that every
// element in $present-all is present in the original array, with no sort check. It can be
// combined with $length."
#[test]
fn matcho_present_all_is_aidboxs_all_values_in_an_array() {
    let r = request(); // user.data.roles = ["doctor", "admin"]
    let roles = |p: Value| json!({"user": {"data": {"roles": p}}});
    assert!(m(roles(json!({"$present-all": ["doctor", "admin"]})), &r));
    assert!(
        m(roles(json!({"$present-all": ["admin", "doctor"]})), &r),
        "no sort check"
    );
    assert!(m(roles(json!({"$present-all": ["admin"]})), &r));
    assert!(
        !m(roles(json!({"$present-all": ["admin", "nurse"]})), &r),
        "all, not any"
    );
    assert!(!m(roles(json!({"$present-all": ["nurse"]})), &r));
    // "It can be combined with $length": exactly these, in any order.
    assert!(m(
        roles(json!({"$present-all": ["admin", "doctor"], "$length": 2})),
        &r
    ));
    let three = request_with(|r| r["user"]["data"]["roles"] = json!(["nurse", "doctor", "admin"]));
    assert!(m(
        roles(json!({"$present-all": ["admin", "doctor"]})),
        &three
    ));
    assert!(!m(
        roles(json!({"$present-all": ["admin", "doctor"], "$length": 2})),
        &three
    ));
    // Only arrays: the old meaning (keys of a map) is gone; a map or a string never matches.
    assert!(!m(json!({"user": {"$present-all": ["id", "email"]}}), &r));
    assert!(!m(json!({"uri": {"$present-all": ["/Patient/pt-1"]}}), &r));
    assert!(!m(json!({"body": {"$present-all": ["x"]}}), &r));
    assert!(!m(json!({"missing": {"$present-all": ["x"]}}), &r));
    // Values compare by JSON equality (numbers by value, maps whole).
    let v = json!({"a": [1.0, {"system": "loinc", "code": "x"}, true]});
    assert!(m(json!({"a": {"$present-all": [1, true]}}), &v));
    assert!(m(
        json!({"a": {"$present-all": [{"code": "x", "system": "loinc"}]}}),
        &v
    ));
    assert!(
        !m(json!({"a": {"$present-all": [{"system": "loinc"}]}}), &v),
        "not a sub-map"
    );
    assert!(!m(json!({"a": {"$present-all": ["1"]}}), &v), "no coercion");
}

// Aidbox docs, docs/reference/matcho-dsl-reference.md: "$reference — parse Reference or
// string into aidbox format ... {reference: \"Patient/pid\"} => {id: \"pid\", resourceType:
// \"Patient\"}". Example: {resource: {patient: {$reference: {id: '.user.data.patient_id'}}}}
#[test]
fn matcho_reference_docs_example() {
    let p = json!({"resource": {"patient": {"$reference": {"id": ".user.data.patient_id"}}}});
    let r = |patient: Value| json!({"user": {"data": {"patient_id": "pid"}}, "resource": {"patient": patient}});
    assert!(m(p.clone(), &r(json!({"reference": "Patient/pid"}))));
    assert!(
        m(p.clone(), &r(json!("Patient/pid"))),
        "a string reference too"
    );
    assert!(
        m(
            p.clone(),
            &r(json!({"resourceType": "Patient", "id": "pid"}))
        ),
        "aidbox format"
    );
    assert!(!m(p.clone(), &r(json!({"reference": "Patient/other"}))));
    assert!(!m(p.clone(), &r(json!("Patient/other"))));
    assert!(!m(p.clone(), &r(Value::Null)));
    assert!(
        !m(
            p,
            &json!({"resource": {"patient": {"reference": "Patient/pid"}}})
        ),
        "no user"
    );
}

#[test]
fn matcho_reference_parses_only_relative_literal_references() {
    let r = |patient: Value| json!({"body": {"subject": patient}});
    let p = json!({"body": {"subject": {"$reference": {"resourceType": "Patient", "id": "pt-1"}}}});
    assert!(m(
        p.clone(),
        &r(json!({"reference": "Patient/pt-1", "display": "x"}))
    ));
    assert!(
        !m(p.clone(), &r(json!({"reference": "Group/pt-1"}))),
        "the type counts"
    );
    for bad in [
        json!({"reference": "https://other.example/fhir/Patient/pt-1"}),
        json!({"reference": "Patient/pt-1/_history/2"}),
        json!({"reference": "#pt-1"}),
        json!({"reference": "Patient/"}),
        json!({"reference": "/Patient/pt-1"}),
        json!({"reference": "patient/pt-1"}),
        json!({"reference": "Patient/pt 1"}),
        json!({"reference": 7}),
        json!({"identifier": {"value": "pt-1"}}),
        json!("Patient"),
        json!(["Patient/pt-1"]),
        json!(42),
    ] {
        assert!(!m(p.clone(), &r(bad.clone())), "{bad} is not parsed");
    }
    // Nothing parsed means no match, even under a pattern that would accept null.
    let nil = json!({"body": {"subject": {"$reference": {"id": "nil?"}}}});
    assert!(!m(nil, &r(json!({"reference": "#x"}))));
    // Inside $not, an unparseable reference makes the inner match fail, so $not holds: the
    // usual $not caveat of the docs ("it is possible to create policies that are too permissive").
    let other = json!({"body": {"subject": {"$not": {"$reference": {"id": "pt-1"}}}}});
    assert!(!m(other.clone(), &r(json!({"reference": "Patient/pt-1"}))));
    assert!(m(other, &r(json!({"reference": "Patient/pt-2"}))));
    // Combined with $contains over an array of references.
    let c = json!({"body": {"performer": {"$contains": {"$reference": {"resourceType": "Practitioner"}}}}});
    assert!(m(
        c.clone(),
        &json!({"body": {"performer": [{"reference": "Organization/o"}, {"reference": "Practitioner/p"}]}})
    ));
    assert!(!m(
        c,
        &json!({"body": {"performer": [{"reference": "Organization/o"}]}})
    ));
}

#[test]
fn matcho_length() {
    let r = json!({"a": [1, 2], "s": "héllo", "o": {"x": 1}, "n": 5});
    assert!(m(json!({"a": {"$length": 2}}), &r));
    assert!(!m(json!({"a": {"$length": 3}}), &r));
    assert!(m(json!({"s": {"$length": 5}}), &r), "characters, not bytes");
    assert!(m(json!({"o": {"$length": 1}}), &r));
    assert!(!m(json!({"n": {"$length": 1}}), &r));
    assert!(!m(json!({"missing": {"$length": 0}}), &r));
}

#[test]
fn matcho_operators_and_keys_on_one_level_all_hold() {
    let r = request();
    assert!(m(
        json!({"user": {"data": {"roles": {"$present-all": ["admin"]}}, "id": "u-1"}}),
        &r
    ));
    assert!(!m(
        json!({"user": {"data": {"roles": {"$present-all": ["admin"]}}, "id": "u-2"}}),
        &r
    ));
    assert!(m(
        json!({"user": {"data": {"roles": {"$contains": "admin", "$length": 2}}}}),
        &r
    ));
}

#[test]
fn matcho_route_params_and_headers() {
    let r = request();
    let p = json!({
        "params": {"resource/type": {"$enum": ["Patient", "Encounter"]}},
        "headers": {"x-tenant": ".jwt.missing-claim"}
    });
    assert!(!m(p, &r));
    let p = json!({"params": {"resource/type": "Patient"}, "headers": {"x-tenant": "t1"}});
    assert!(m(p, &r));
}

#[test]
fn matcho_compile_errors_name_the_field() {
    let e = compile_err(json!({"engine": "matcho", "matcho": {"uri": "#/Patient("}}));
    assert_eq!(e.path, "matcho.uri");
    assert!(e.message.contains("regular expression"), "{e}");

    let e = compile_err(json!({"engine": "matcho", "matcho": {"params": {"$foo": 1}}}));
    assert_eq!(e.path, "matcho.params.$foo");
    assert!(
        e.message.contains("$enum"),
        "lists the known operators: {e}"
    );

    let e = compile_err(json!({"engine": "matcho", "matcho": {"m": {"$enum": "get"}}}));
    assert_eq!(e.path, "matcho.m.$enum");
    let e = compile_err(json!({"engine": "matcho", "matcho": {"m": {"$enum": []}}}));
    assert_eq!(e.path, "matcho.m.$enum");
    let e = compile_err(json!({"engine": "matcho", "matcho": {"m": {"$enum": ["a", {"b": 1}]}}}));
    assert_eq!(e.path, "matcho.m.$enum.1");

    let e = compile_err(json!({"engine": "matcho",
        "matcho": {"user": {"$one-of": [{"a": 1}], "id": "x"}}}));
    assert_eq!(e.path, "matcho.user.$one-of");
    let e = compile_err(json!({"engine": "matcho", "matcho": {"a": {"$one-of": []}}}));
    assert_eq!(e.path, "matcho.a.$one-of");
    let e = compile_err(json!({"engine": "matcho", "matcho": {"a": {"$one-of": ["#("]}}}));
    assert_eq!(e.path, "matcho.a.$one-of.0");

    let e = compile_err(json!({"engine": "matcho", "matcho": {"a": {"$length": -1}}}));
    assert_eq!(e.path, "matcho.a.$length");
    for bad in [json!("x"), json!([]), json!({"a": 1}), json!(null)] {
        let e = compile_err(json!({"engine": "matcho", "matcho": {"a": {"$present-all": bad}}}));
        assert_eq!(e.path, "matcho.a.$present-all");
    }
    for bad in ["#^x", ".user.id", "present?", "nil?"] {
        let e =
            compile_err(json!({"engine": "matcho", "matcho": {"a": {"$present-all": ["x", bad]}}}));
        assert_eq!(e.path, "matcho.a.$present-all.1", "{bad}");
    }
    let e =
        compile_err(json!({"engine": "matcho", "matcho": {"a": {"$present-all": ["x", null]}}}));
    assert_eq!(e.path, "matcho.a.$present-all.1");
    for bad in [
        json!("Patient/x"),
        json!(["Patient"]),
        json!(null),
        json!(1),
    ] {
        let e = compile_err(json!({"engine": "matcho", "matcho": {"a": {"$reference": bad}}}));
        assert_eq!(e.path, "matcho.a.$reference");
        assert!(e.message.contains("resourceType"), "{e}");
    }
    let e = compile_err(json!({"engine": "matcho", "matcho": {"a": {"$reference": {"id": "#("}}}}));
    assert_eq!(e.path, "matcho.a.$reference.id");
    let e = compile_err(json!({"engine": "matcho", "matcho": {"a": {"$references": {"id": "x"}}}}));
    assert_eq!(e.path, "matcho.a.$references");
    assert!(e.message.contains("$reference"), "{e}");
    let e = compile_err(json!({"engine": "matcho", "matcho": {"a": [1, "#["]}}));
    assert_eq!(e.path, "matcho.a.1");
    let e = compile_err(json!({"engine": "matcho", "matcho": {"a": ".user..id"}}));
    assert_eq!(e.path, "matcho.a");
}

#[test]
fn matcho_must_be_a_map() {
    for bad in [json!("present?"), json!([1]), json!(true)] {
        let e = compile_err(json!({"engine": "matcho", "matcho": bad}));
        assert_eq!(e.path, "matcho");
    }
    let e = compile_err(json!({"engine": "matcho"}));
    assert_eq!(e.path, "matcho");
    // The empty map matches every request (it is a map).
    assert!(m(json!({}), &request()));
    assert!(!m(json!({}), &Value::Null));
}

// ------------------------------------------------------------------------------------------------
// json-schema

#[test]
fn schema_aidbox_style_policy() {
    let p = schema(json!({
        "type": "object",
        "required": ["client", "uri", "request-method"],
        "properties": {
            "uri": {"type": "string", "pattern": "^/Patient"},
            "request-method": {"enum": ["get", "head"]},
            "client": {"type": "object", "required": ["id"], "properties": {"id": {"const": "basic"}}}
        }
    }));
    assert_eq!(p.engine(), "json-schema");
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["client"]["id"] = json!("x"))));
    assert!(!p.allows(&request_with(|r| r["request-method"] = json!("delete"))));
    assert!(!p.allows(&request_with(|r| r["uri"] = json!("/Observation"))));
    assert!(!p.allows(&request_with(|r| r["client"] = Value::Null)));
}

#[test]
fn schema_strips_empty_values_before_required() {
    let p = schema(json!({"required": ["body"]}));
    assert!(!p.allows(&request()), "body is null");
    assert!(!p.allows(&request_with(|r| r["body"] = json!({}))));
    assert!(!p.allows(&request_with(|r| r["body"] = json!(""))));
    assert!(!p.allows(&request_with(|r| r["body"] = json!([]))));
    assert!(!p.allows(&request_with(
        |r| r["body"] = json!({"a": "", "b": [null, {}], "c": {"d": []}})
    )));
    assert!(p.allows(&request_with(|r| r["body"] = json!({"a": 0}))));
    assert!(p.allows(&request_with(|r| r["body"] = json!(false))));
}

#[test]
fn schema_stripping_affects_counts_and_additional_properties() {
    let r = json!({"list": [null, "", "x", {}, [], "y"], "obj": {"a": 1, "b": null, "c": ""}});
    assert!(s(
        json!({"properties": {"list": {"minItems": 2, "maxItems": 2}}}),
        &r
    ));
    assert!(s(
        json!({"properties": {"list": {"items": {"type": "string", "minLength": 1}}}}),
        &r
    ));
    assert!(s(
        json!({"properties": {"list": {"items": [{"const": "x"}, {"const": "y"}]}}}),
        &r
    ));
    assert!(s(json!({"properties": {"obj": {"maxProperties": 1}}}), &r));
    assert!(s(
        json!({"properties": {"obj": {"additionalProperties": false, "properties": {"a": {}}}}}),
        &r
    ));
    assert!(s(json!({"properties": {"obj": {"const": {"a": 1}}}}), &r));
    // null never survives stripping, so a type: null property cannot be required.
    assert!(!s(
        json!({"required": ["z"], "properties": {"z": {"type": "null"}}}),
        &json!({"z": null})
    ));
}

#[test]
fn schema_type_keyword() {
    let r = json!({"i": 3, "f": 3.5, "fi": 3.0, "s": "x", "b": true, "a": [1], "o": {"k": 1}});
    let t = |key: &str, ty: Value| s(json!({"properties": { key: {"type": ty} }}), &r);
    assert!(t("i", json!("integer")));
    assert!(t("fi", json!("integer")), "3.0 is an integer in draft-07");
    assert!(!t("f", json!("integer")));
    assert!(t("f", json!("number")));
    assert!(t("i", json!("number")));
    assert!(t("s", json!("string")));
    assert!(!t("s", json!("number")));
    assert!(t("b", json!("boolean")));
    assert!(t("a", json!("array")));
    assert!(t("o", json!("object")));
    assert!(t("s", json!(["number", "string"])));
    assert!(!t("b", json!(["number", "string"])));
}

#[test]
fn schema_enum_and_const() {
    let r = json!({"n": 2, "s": "get", "o": {"a": [1, 2]}});
    assert!(s(json!({"properties": {"n": {"enum": [1, 2.0]}}}), &r));
    assert!(!s(json!({"properties": {"n": {"enum": ["2"]}}}), &r));
    assert!(s(json!({"properties": {"s": {"const": "get"}}}), &r));
    assert!(s(
        json!({"properties": {"o": {"const": {"a": [1, 2]}}}}),
        &r
    ));
    assert!(!s(
        json!({"properties": {"o": {"const": {"a": [2, 1]}}}}),
        &r
    ));
    assert!(!s(json!({"properties": {"o": {"enum": []}}}), &r));
}

#[test]
fn schema_numeric_keywords() {
    let t = |kw: Value, n: Value| s(json!({"properties": {"n": kw}}), &json!({"n": n}));
    assert!(t(json!({"minimum": 5}), json!(5)));
    assert!(!t(json!({"minimum": 5}), json!(4.99)));
    assert!(t(json!({"maximum": 5}), json!(5.0)));
    assert!(!t(json!({"maximum": 5}), json!(6)));
    assert!(!t(json!({"exclusiveMinimum": 5}), json!(5)));
    assert!(t(json!({"exclusiveMinimum": 5}), json!(5.01)));
    assert!(!t(json!({"exclusiveMaximum": 5}), json!(5)));
    assert!(t(json!({"exclusiveMaximum": 5}), json!(-5)));
    assert!(t(json!({"multipleOf": 5}), json!(15)));
    assert!(!t(json!({"multipleOf": 5}), json!(16)));
    assert!(t(json!({"multipleOf": 0.01}), json!(19.99)));
    assert!(
        t(json!({"minimum": 5}), json!("abc")),
        "numeric keywords ignore non-numbers"
    );
}

#[test]
fn schema_string_keywords() {
    let t = |kw: Value, v: Value| s(json!({"properties": {"v": kw}}), &json!({"v": v}));
    assert!(
        t(json!({"minLength": 3}), json!("héé")),
        "characters, not bytes"
    );
    assert!(!t(json!({"maxLength": 2}), json!("héé")));
    assert!(t(json!({"maxLength": 3}), json!("héé")));
    assert!(
        t(json!({"pattern": "Pat"}), json!("/Patient/1")),
        "partial match"
    );
    assert!(!t(json!({"pattern": "^Pat"}), json!("/Patient/1")));
    assert!(
        t(json!({"pattern": "^x$"}), json!(5)),
        "string keywords ignore non-strings"
    );
}

#[test]
fn schema_object_keywords() {
    let r = json!({"o": {"a": 1, "x-1": "s", "x-2": "t"}});
    let t = |kw: Value| s(json!({"properties": {"o": kw}}), &r);
    assert!(t(json!({"required": ["a", "x-1"]})));
    assert!(!t(json!({"required": ["b"]})));
    assert!(t(json!({"minProperties": 3, "maxProperties": 3})));
    assert!(!t(json!({"minProperties": 4})));
    assert!(!t(
        json!({"properties": {"a": {}}, "additionalProperties": false})
    ));
    assert!(t(
        json!({"properties": {"a": {}}, "patternProperties": {"^x-": {"type": "string"}},
                     "additionalProperties": false})
    ));
    assert!(!t(
        json!({"patternProperties": {"^x-": {"type": "number"}}})
    ));
    assert!(t(
        json!({"properties": {"a": {}}, "additionalProperties": {"type": "string"}})
    ));
    assert!(!t(json!({"additionalProperties": {"type": "string"}})));
    assert!(t(json!({"propertyNames": {"pattern": "^[a-z0-9-]+$"}})));
    assert!(!t(json!({"propertyNames": {"maxLength": 1}})));
}

#[test]
fn schema_dependencies() {
    let t = |v: Value| {
        s(
            json!({"dependencies": {"card": ["billing"], "vip": {"required": ["level"]}}}),
            &v,
        )
    };
    assert!(t(json!({"name": "x"})));
    assert!(t(json!({"card": 1, "billing": "b"})));
    assert!(!t(json!({"card": 1})));
    assert!(
        !t(json!({"card": 1, "billing": ""})),
        "stripped value is absent"
    );
    assert!(!t(json!({"vip": true})));
    assert!(t(json!({"vip": true, "level": 1})));
}

#[test]
fn schema_array_keywords() {
    let t = |kw: Value, v: Value| s(json!({"properties": {"v": kw}}), &json!({"v": v}));
    assert!(t(json!({"items": {"type": "integer"}}), json!([1, 2])));
    assert!(!t(json!({"items": {"type": "integer"}}), json!([1, "2"])));
    let tuple =
        json!({"items": [{"type": "string"}, {"type": "number"}], "additionalItems": false});
    assert!(t(tuple.clone(), json!(["a", 1])));
    assert!(t(tuple.clone(), json!(["a"])));
    assert!(!t(tuple.clone(), json!(["a", 1, 2])));
    assert!(!t(tuple, json!([1, "a"])));
    let tuple_more = json!({"items": [{"type": "string"}], "additionalItems": {"type": "boolean"}});
    assert!(t(tuple_more.clone(), json!(["a", true, false])));
    assert!(!t(tuple_more, json!(["a", true, 3])));
    assert!(
        t(json!({"additionalItems": false}), json!([1, 2])),
        "ignored without tuple items"
    );
    assert!(t(
        json!({"contains": {"const": "admin"}}),
        json!(["doc", "admin"])
    ));
    assert!(!t(json!({"contains": {"const": "admin"}}), json!(["doc"])));
    assert!(t(
        json!({"uniqueItems": true}),
        json!([1, "1", {"a": 1}, {"a": 2}])
    ));
    assert!(!t(json!({"uniqueItems": true}), json!([1, 1.0])));
    assert!(!t(
        json!({"uniqueItems": true}),
        json!([{"a": 1, "b": null}, {"a": 1}])
    ));
    assert!(t(json!({"uniqueItems": false}), json!([1, 1])));
}

#[test]
fn schema_combinators() {
    let r = json!({"n": 6});
    let t = |kw: Value| s(json!({"properties": {"n": kw}}), &r);
    assert!(t(json!({"allOf": [{"minimum": 1}, {"multipleOf": 3}]})));
    assert!(!t(json!({"allOf": [{"minimum": 1}, {"multipleOf": 4}]})));
    assert!(t(json!({"anyOf": [{"maximum": 1}, {"multipleOf": 3}]})));
    assert!(!t(json!({"anyOf": [{"maximum": 1}, {"multipleOf": 4}]})));
    assert!(t(json!({"oneOf": [{"multipleOf": 2}, {"multipleOf": 5}]})));
    assert!(
        !t(json!({"oneOf": [{"multipleOf": 2}, {"multipleOf": 3}]})),
        "both pass"
    );
    assert!(
        !t(json!({"oneOf": [{"multipleOf": 4}, {"multipleOf": 5}]})),
        "none passes"
    );
    assert!(t(json!({"not": {"type": "string"}})));
    assert!(!t(json!({"not": {"type": "number"}})));
}

#[test]
fn schema_if_then_else() {
    // Writes need a body; reads must not carry one.
    let p = schema(json!({
        "if": {"properties": {"request-method": {"enum": ["post", "put"]}}},
        "then": {"required": ["body"]},
        "else": {"not": {"required": ["body"]}}
    }));
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["body"] = json!({"a": 1}))));
    assert!(!p.allows(&request_with(|r| r["request-method"] = json!("post"))));
    assert!(p.allows(&request_with(|r| {
        r["request-method"] = json!("post");
        r["body"] = json!({"resourceType": "Patient"});
    })));
    assert!(
        s(json!({"then": false}), &request()),
        "then without if is ignored"
    );
}

#[test]
fn schema_definitions_and_refs() {
    let p = schema(json!({
        "definitions": {
            "id": {"type": "string", "pattern": "^[a-z0-9-]+$"},
            "ref": {"type": "object", "properties": {"id": {"$ref": "#/definitions/id"}}}
        },
        "properties": {"user": {"$ref": "#/definitions/ref"}, "client": {"$ref": "#/definitions/ref"}}
    }));
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["user"]["id"] = json!("Bad Id"))));
}

#[test]
fn schema_recursive_ref_to_root() {
    // A tree of {"name": string, "children": [tree]}.
    let p = schema(json!({
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "children": {"items": {"$ref": "#"}}}
    }));
    let tree = json!({"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]});
    assert!(p.allows(&tree));
    let bad = json!({"name": "a", "children": [{"name": "b", "children": [{"name": 3}]}]});
    assert!(!p.allows(&bad));
}

#[test]
fn schema_ref_json_pointer_escapes_and_siblings() {
    let p = schema(json!({
        "definitions": {"a/b": {"const": "x"}, "t~n": {"const": "y"}, "sp ace": {"const": "z"}},
        "properties": {
            "p": {"$ref": "#/definitions/a~1b"},
            "q": {"$ref": "#/definitions/t~0n"},
            "r": {"$ref": "#/definitions/sp%20ace"},
            // draft-07: annotations next to $ref are fine (assertions there are refused, see
            // schema_assertions_next_to_ref_are_refused).
            "s": {"$ref": "#/definitions/a~1b", "description": "same as p"}
        }
    }));
    assert!(p.allows(&json!({"p": "x", "q": "y", "r": "z", "s": "x"})));
    assert!(!p.allows(&json!({"p": "y"})));
    assert!(!p.allows(&json!({"q": "x"})));
    assert!(!p.allows(&json!({"r": "x"})));
}

#[test]
fn schema_boolean_schemas() {
    assert!(s(json!(true), &request()));
    assert!(!s(json!(false), &request()));
    assert!(!s(json!({"properties": {"uri": false}}), &request()));
    assert!(s(
        json!({"properties": {"nothing-here": false}}),
        &request()
    ));
    assert!(!s(
        json!({"properties": {"body": true}, "required": ["body"]}),
        &request()
    ));
}

#[test]
fn schema_compile_errors_name_the_field() {
    let e = compile_err(json!({"engine": "json-schema",
        "schema": {"properties": {"uri": {"type": "string", "pattern": "^/Patient("}}}}));
    assert_eq!(e.path, "schema.properties.uri.pattern");

    let e = compile_err(json!({"engine": "json-schema", "schema": {"minLength": "3"}}));
    assert_eq!(e.path, "schema.minLength");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"maxItems": -1}}));
    assert_eq!(e.path, "schema.maxItems");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"type": "text"}}));
    assert_eq!(e.path, "schema.type");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"type": ["string", 1]}}));
    assert_eq!(e.path, "schema.type.1");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"required": "uri"}}));
    assert_eq!(e.path, "schema.required");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"properties": {"a": 5}}}));
    assert_eq!(e.path, "schema.properties.a");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"anyOf": []}}));
    assert_eq!(e.path, "schema.anyOf");
    let e =
        compile_err(json!({"engine": "json-schema", "schema": {"items": [{}, {"pattern": "("}]}}));
    assert_eq!(e.path, "schema.items.1.pattern");
    let e =
        compile_err(json!({"engine": "json-schema", "schema": {"patternProperties": {"(": {}}}}));
    assert_eq!(e.path, "schema.patternProperties.(");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"multipleOf": 0}}));
    assert_eq!(e.path, "schema.multipleOf");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"exclusiveMinimum": true}}));
    assert_eq!(e.path, "schema.exclusiveMinimum");
    assert!(e.message.contains("draft-04"), "{e}");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"uniqueItems": "yes"}}));
    assert_eq!(e.path, "schema.uniqueItems");
    let e = compile_err(json!({"engine": "json-schema",
        "schema": {"dependencies": {"a": ["b", 2]}}}));
    assert_eq!(e.path, "schema.dependencies.a.1");
    let e = compile_err(json!({"engine": "json-schema", "schema": "string"}));
    assert_eq!(e.path, "schema");
    let e = compile_err(json!({"engine": "json-schema"}));
    assert_eq!(e.path, "schema");
}

#[test]
fn schema_errors_inside_definitions_and_refs() {
    let e = compile_err(json!({"engine": "json-schema",
        "schema": {"definitions": {"x": {"pattern": "[a-"}}}}));
    assert_eq!(e.path, "schema.definitions.x.pattern");
    let e = compile_err(json!({"engine": "json-schema",
        "schema": {"properties": {"a": {"$ref": "https://example.com/s.json"}}}}));
    assert_eq!(e.path, "schema.properties.a.$ref");
    assert!(e.message.contains("local"), "{e}");
    let e = compile_err(json!({"engine": "json-schema",
        "schema": {"properties": {"a": {"$ref": "#/definitions/nope"}}}}));
    assert_eq!(e.path, "schema.properties.a.$ref");
    let e = compile_err(json!({"engine": "json-schema",
        "schema": {"properties": {"a": {"$ref": "#anchor"}}}}));
    assert_eq!(e.path, "schema.properties.a.$ref");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"$ref": 5}}));
    assert_eq!(e.path, "schema.$ref");
    let e = compile_err(json!({"engine": "json-schema",
        "schema": {"definitions": {"a": {"$ref": "#/definitions/a"}}}}));
    assert!(e.message.contains("cycle"), "{e}");
}

/// Issue 11: a keyword the engine does not implement (a typo such as `requird`) used to be
/// ignored, silently dropping the restriction. It is now a compile error naming its path.
#[test]
fn schema_unknown_keywords_are_refused_with_their_path() {
    let e = compile_err(json!({"engine": "json-schema", "schema": {
        "properties": {"user": {"requird": ["id"]}}}}));
    assert_eq!(e.path, "schema.properties.user.requird");
    assert!(e.message.contains("unknown JSON Schema keyword"), "{e}");
    for (schema, path) in [
        (json!({"requird": ["user"]}), "schema.requird"),
        (json!({"Required": ["user"]}), "schema.Required"),
        (
            json!({"properties": {"uri": {"patern": "^/Patient"}}}),
            "schema.properties.uri.patern",
        ),
        (
            json!({"definitions": {"d": {"minimun": 1}}}),
            "schema.definitions.d.minimun",
        ),
        (
            json!({"$defs": {"d": {"enumm": [1]}}}),
            "schema.$defs.d.enumm",
        ),
        (json!({"anyOf": [{}, {"nott": {}}]}), "schema.anyOf.1.nott"),
        (json!({"items": [{"maxItem": 1}]}), "schema.items.0.maxItem"),
        (
            json!({"dependencies": {"a": {"requires": ["b"]}}}),
            "schema.dependencies.a.requires",
        ),
        // Later drafts' keywords are not draft-07 and are refused, not ignored.
        (
            json!({"dependentRequired": {"a": ["b"]}}),
            "schema.dependentRequired",
        ),
        (
            json!({"unevaluatedProperties": false}),
            "schema.unevaluatedProperties",
        ),
        (json!({"prefixItems": [{}]}), "schema.prefixItems"),
        (
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema"}),
            "schema.$schema",
        ),
        (json!({"$schema": 7}), "schema.$schema"),
        // Unsupported assertions.
        (
            json!({"properties": {"user": {"properties": {"email": {"format": "email"}}}}}),
            "schema.properties.user.properties.email.format",
        ),
        (
            json!({"contentMediaType": "application/json"}),
            "schema.contentMediaType",
        ),
        (
            json!({"contentEncoding": "base64"}),
            "schema.contentEncoding",
        ),
    ] {
        let policy = json!({"engine": "json-schema", "schema": schema});
        let e = compile_err(policy.clone());
        assert_eq!(e.path, path, "{policy}: {e}");
    }
    // Inside complex, the path is prefixed.
    let e = compile_err(json!({"engine": "complex", "or": [
        {"engine": "json-schema", "schema": {"properties": {"user": {"requird": ["id"]}}}}]}));
    assert_eq!(e.path, "or.0.schema.properties.user.requird");
    let e = compile_err(json!({"engine": "json-schema", "schema": {"format": "uri"}}));
    assert!(e.message.contains("pattern"), "{e}");
}

#[test]
fn schema_annotations_are_accepted() {
    let p = schema(json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://example.com/policies/read-own-patient",
        "$comment": "read your own patient",
        "title": "own patient", "description": "d", "default": {}, "examples": [{}],
        "readOnly": false, "writeOnly": false,
        "definitions": {"id": {"type": "string", "title": "an id"}},
        "$defs": {"method": {"const": "get"}},
        "required": ["user"],
        "properties": {
            "request-method": {"$ref": "#/$defs/method", "$comment": "ok beside $ref"},
            "user": {"properties": {"id": {"$ref": "#/definitions/id"}}}
        }
    }));
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["request-method"] = json!("post"))));
    assert!(!p.allows(&request_with(|r| r["user"] = Value::Null)));
}

/// draft-07 8.3 ignores every keyword beside `$ref`: a restriction written there would not
/// apply, so it is refused; `allOf` is the way to combine them.
#[test]
fn schema_assertions_next_to_ref_are_refused() {
    let e = compile_err(json!({"engine": "json-schema", "schema": {
        "definitions": {"s": {"type": "string"}},
        "properties": {"uri": {"$ref": "#/definitions/s", "pattern": "^/Patient/"}}}}));
    assert_eq!(e.path, "schema.properties.uri.pattern");
    assert!(e.message.contains("allOf"), "{e}");
    let e = compile_err(json!({"engine": "json-schema", "schema": {
        "definitions": {"s": {}}, "$ref": "#/definitions/s", "requird": ["user"]}}));
    assert_eq!(e.path, "schema.requird");
    let p = schema(json!({
        "definitions": {"s": {"type": "string"}},
        "properties": {"uri": {"allOf": [{"$ref": "#/definitions/s"}, {"pattern": "^/Patient/"}]}}}));
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["uri"] = json!("/User"))));
}

// ------------------------------------------------------------------------------------------------
// complex

#[test]
fn complex_and_requires_all() {
    let p = compile(json!({"engine": "complex", "and": [
        {"engine": "matcho", "matcho": {"client": {"id": "basic"}}},
        {"engine": "json-schema", "schema": {"properties": {"request-method": {"const": "get"}}}}
    ]}));
    assert_eq!(p.engine(), "complex");
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["request-method"] = json!("post"))));
    assert!(!p.allows(&request_with(|r| r["client"]["id"] = json!("x"))));
}

#[test]
fn complex_or_requires_any() {
    let p = compile(json!({"engine": "complex", "or": [
        {"engine": "matcho", "matcho": {"client": {"id": "admin-app"}}},
        {"engine": "matcho", "matcho": {"user": {"data": {"roles": {"$contains": "admin"}}}}}
    ]}));
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["user"] = Value::Null)));
    assert!(p.allows(&request_with(|r| {
        r["user"] = Value::Null;
        r["client"]["id"] = json!("admin-app");
    })));
}

#[test]
fn complex_nested_evaluation() {
    let p = compile(json!({"engine": "complex", "or": [
        {"engine": "complex", "and": [
            {"engine": "matcho", "matcho": {"request-method": "get"}},
            {"engine": "matcho", "matcho": {"uri": "#^/Patient"}}
        ]},
        {"engine": "complex", "and": [
            {"engine": "matcho", "matcho": {"request-method": "post"}},
            {"engine": "json-schema", "schema": {"required": ["body"]}}
        ]}
    ]}));
    assert!(p.allows(&request()));
    assert!(!p.allows(&request_with(|r| r["uri"] = json!("/Observation"))));
    assert!(!p.allows(&request_with(|r| r["request-method"] = json!("post"))));
    assert!(p.allows(&request_with(|r| {
        r["request-method"] = json!("post");
        r["body"] = json!({"resourceType": "Observation"});
    })));
}

#[test]
fn complex_short_circuit_semantics() {
    // `or` stops at the first allow, `and` at the first deny; the outcome is the same either
    // way, so this checks the results with an allow / a false schema on each side.
    let allow = json!({"engine": "allow"});
    let deny = json!({"engine": "json-schema", "schema": false});
    let r = request();
    let c =
        |k: &str, a: &Value, b: &Value| compile(json!({"engine": "complex", k: [a, b]})).allows(&r);
    assert!(c("or", &allow, &deny));
    assert!(c("or", &deny, &allow));
    assert!(!c("or", &deny, &deny));
    assert!(!c("and", &deny, &allow));
    assert!(!c("and", &allow, &deny));
    assert!(c("and", &allow, &allow));
}

#[test]
fn complex_compile_errors() {
    let e = compile_err(json!({"engine": "complex",
        "and": [{"engine": "allow"}], "or": [{"engine": "allow"}]}));
    assert_eq!(e.path, "and/or");
    let e = compile_err(json!({"engine": "complex"}));
    assert_eq!(e.path, "and/or");
    let e = compile_err(json!({"engine": "complex", "and": []}));
    assert_eq!(e.path, "and");
    let e = compile_err(json!({"engine": "complex", "or": {"engine": "allow"}}));
    assert_eq!(e.path, "or");
    let e = compile_err(
        json!({"engine": "complex", "and": [{"engine": "allow"}, {"engine": "magic"}]}),
    );
    assert_eq!(e.path, "and.1.engine");
    let e = compile_err(json!({"engine": "complex", "and": [{"engine": "allow"}, "allow"]}));
    assert_eq!(e.path, "and.1");
    let e = compile_err(json!({"engine": "complex", "or": [
        {"engine": "complex", "and": [{"engine": "allow"}, {"engine": "matcho", "matcho": {"uri": "#("}}]}
    ]}));
    assert_eq!(e.path, "or.0.and.1.matcho.uri");
    let e = compile_err(json!({"engine": "complex", "or": [
        {"engine": "complex", "and": [{"engine": "allow"}], "or": [{"engine": "allow"}]}
    ]}));
    assert_eq!(e.path, "or.0.and/or");
    let e = compile_err(json!({"engine": "complex", "or": [
        {"engine": "allow", "link": [{"id": "c", "resourceType": "Client"}]}
    ]}));
    assert_eq!(e.path, "or.0.link");
    // A nested roleName would be ignored (only the top level's is enforced): the sub-policy
    // would allow everyone.
    let e = compile_err(json!({"engine": "complex", "and": [
        {"engine": "complex", "or": [{"engine": "allow", "roleName": "admin"}]}
    ]}));
    assert_eq!(e.path, "and.0.or.0.roleName");
    let p = compile(json!({"engine": "complex", "or": [{"engine": "allow", "roleName": null}]}));
    assert!(p.allows(&request()), "a null roleName counts as absent");
    let e =
        compile_err(json!({"engine": "complex", "or": [{"engine": "sql", "sql": "select true"}]}));
    assert_eq!(e.path, "or.0.engine");
    let e = compile_err(json!({"engine": "complex", "or": [
        {"engine": "complex", "and": [{"engine": "allow"}]},
        {"engine": "allow-not-really"}
    ]}));
    assert_eq!(e.path, "or.1.engine");
}

#[test]
fn complex_nesting_is_bounded() {
    let mut p = json!({"engine": "allow"});
    for _ in 0..100 {
        p = json!({"engine": "complex", "and": [p]});
    }
    let e = compile_err(p);
    assert!(e.path.starts_with("and.0.and.0"), "{e}");
    let mut ok = json!({"engine": "allow"});
    for _ in 0..10 {
        ok = json!({"engine": "complex", "and": [ok]});
    }
    assert!(compile(ok).allows(&request()));
}

// ------------------------------------------------------------------------------------------------
// engines and top-level validation

#[test]
fn unknown_or_missing_engine() {
    let e = compile_err(json!({"engine": "magic"}));
    assert_eq!(e.path, "engine");
    for name in ["allow", "matcho", "json-schema", "complex"] {
        assert!(e.message.contains(name), "lists {name}: {e}");
    }
    let e = compile_err(json!({"matcho": {"uri": "/x"}}));
    assert_eq!(e.path, "engine");
    let e = compile_err(json!({"engine": ["allow"]}));
    assert_eq!(e.path, "engine");
}

#[test]
fn sql_is_rejected_and_smart_on_fhir_compiles() {
    let e = compile_err(json!({"engine": "sql", "sql": {"query": "select true"}}));
    assert_eq!(e.path, "engine");
    assert!(e.message.contains("not supported at the edge"), "{e}");
    assert!(CompiledPolicy::compile(&json!({"engine": "smart-on-fhir"})).is_ok());
}

#[test]
fn body_must_be_an_object() {
    for bad in [json!(null), json!([]), json!("allow"), json!(1)] {
        let e = compile_err(bad);
        assert_eq!(e.path, "");
    }
}

#[test]
fn fields_of_another_engine_are_rejected() {
    let e = compile_err(json!({"engine": "allow", "matcho": {"uri": "/x"}}));
    assert_eq!(e.path, "matcho");
    let e = compile_err(json!({"engine": "matcho", "matcho": {}, "schema": {}}));
    assert_eq!(e.path, "schema");
    let e = compile_err(json!({"engine": "json-schema", "schema": {}, "and": []}));
    assert_eq!(e.path, "and");
    // null counts as absent.
    assert!(compile(json!({"engine": "allow", "matcho": null})).allows(&request()));
}

/// `request()` with the user's Roles as the authorizer attaches them.
fn with_roles(roles: Value) -> Value {
    let mut r = request();
    let list: Vec<Value> = roles.as_array().cloned().unwrap_or_default();
    edge_authorizer::model::role::attach(&mut r, &list);
    r
}

#[test]
fn role_name_must_be_a_non_empty_string() {
    for bad in [json!(""), json!(" "), json!(3), json!(["admin"]), json!({})] {
        let e = compile_err(json!({"engine": "allow", "roleName": bad}));
        assert_eq!(e.path, "roleName", "{bad}");
    }
    let p = compile(json!({"engine": "allow", "roleName": null}));
    assert_eq!(p.role_name(), None);
    assert!(p.allows(&request()), "null roleName counts as absent");
}

#[test]
fn role_name_policy_allows_only_users_with_that_role() {
    let p = compile(json!({"engine": "allow", "roleName": "practitioner"}));
    assert_eq!(p.role_name(), Some("practitioner"));
    let practitioner = with_roles(json!([
        {"resourceType": "Role", "id": "r1", "name": "practitioner",
         "user": {"reference": "User/u-1", "id": "u-1", "resourceType": "User"}}
    ]));
    assert!(p.allows(&practitioner));
    assert_eq!(
        evaluate(
            std::slice::from_ref(&p),
            &practitioner,
            Some("basic"),
            Some("u-1"),
            None
        ),
        Some(0)
    );
    // Another role, no role, no user, a request built without roles: never.
    let other = with_roles(json!([{"name": "nurse", "resourceType": "Role"}]));
    assert!(!p.allows(&other));
    assert!(!p.allows(&with_roles(json!([]))));
    assert!(!p.allows(&request()), "a request without session.role");
    let no_user = request_with(|r| {
        r["user"] = Value::Null;
        edge_authorizer::model::role::attach(r, &[]);
    });
    assert!(!p.allows(&no_user));
    // Case matters, and a name in user.data is not a Role.
    assert!(!p.allows(&with_roles(json!([{"name": "Practitioner"}]))));
    assert!(!compile(json!({"engine": "allow", "roleName": "doctor"})).allows(&request()));
    // Any of several roles.
    assert!(p.allows(&with_roles(
        json!([{"name": "nurse"}, {"name": "practitioner"}])
    )));
}

#[test]
fn role_name_and_link_must_both_hold() {
    let p = compile(json!({
        "engine": "allow",
        "roleName": "practitioner",
        "link": [{"reference": "Client/web"}]
    }));
    let r = with_roles(json!([{"name": "practitioner"}]));
    assert_eq!(
        evaluate(std::slice::from_ref(&p), &r, Some("web"), Some("u-1"), None),
        Some(0)
    );
    assert_eq!(
        evaluate(
            std::slice::from_ref(&p),
            &r,
            Some("other"),
            Some("u-1"),
            None
        ),
        None
    );
    let nurse = with_roles(json!([{"name": "nurse"}]));
    assert_eq!(
        evaluate(
            std::slice::from_ref(&p),
            &nurse,
            Some("web"),
            Some("u-1"),
            None
        ),
        None
    );
}

#[test]
fn role_name_applies_to_every_engine_and_roles_are_matchable() {
    // Aidbox docs: tutorials/security-access-control-tutorials/rbac/flexible-rbac-built-in-to-aidbox.md
    let p = compile(json!({
        "engine": "matcho",
        "roleName": "practitioner",
        "matcho": {"params": {"resource/id": ".session.role.0.links.practitioner.id"}}
    }));
    let role = |pr: &str| {
        json!([{"name": "practitioner",
                "links": {"practitioner": {"reference": format!("Practitioner/{pr}"),
                                           "id": pr, "resourceType": "Practitioner"}}}])
    };
    assert!(p.allows(&with_roles(role("pt-1"))));
    assert!(!p.allows(&with_roles(role("pt-2"))));
    // Aidbox docs: tutorials/security-access-control-tutorials/accesspolicy-examples.md (3.)
    let q = matcho(
        json!({"session": {"role": {"$contains": {"links": {"practitioner": "present?"}}}}}),
    );
    assert!(q.allows(&with_roles(role("x"))));
    assert!(!q.allows(&with_roles(json!([{"name": "practitioner"}]))));
    assert!(!q.allows(&with_roles(json!([]))));
    // The whole list is `role` too.
    assert!(
        matcho(json!({"role": {"$contains": {"name": "practitioner"}}}))
            .allows(&with_roles(role("x")))
    );
}

#[test]
fn policy_error_display_and_traits() {
    let e = compile_err(json!({"engine": "matcho", "matcho": {"uri": "#("}}));
    let text = e.to_string();
    assert!(text.contains("matcho.uri"), "{text}");
    assert_eq!(e.clone(), e);
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(!boxed.to_string().is_empty());
}

// ------------------------------------------------------------------------------------------------
// link and applicability

#[test]
fn links_parse_in_both_forms() {
    let p = compile(json!({"engine": "allow", "link": [
        {"id": "basic", "resourceType": "Client"},
        {"reference": "User/u-1"},
        {"id": "FhirRead", "resourceType": "Operation"}
    ]}));
    assert_eq!(
        p.links(),
        &[
            Link {
                kind: LinkKind::Client,
                id: "basic".into()
            },
            Link {
                kind: LinkKind::User,
                id: "u-1".into()
            },
            Link {
                kind: LinkKind::Operation,
                id: "FhirRead".into()
            },
        ]
    );
}

#[test]
fn applies_to_follows_links() {
    let global = compile(json!({"engine": "allow"}));
    assert!(global.applies_to(None, None, None));
    assert!(global.applies_to(Some("x"), Some("y"), Some("z")));

    let client =
        compile(json!({"engine": "allow", "link": [{"id": "basic", "resourceType": "Client"}]}));
    assert!(client.applies_to(Some("basic"), None, None));
    assert!(client.applies_to(Some("basic"), Some("u-9"), None));
    assert!(!client.applies_to(Some("other"), None, None));
    assert!(
        !client.applies_to(None, Some("basic"), None),
        "a user id is not a client id"
    );
    assert!(!client.applies_to(None, None, None));

    let user = compile(json!({"engine": "allow", "link": [{"reference": "User/u-1"}]}));
    assert!(user.applies_to(Some("any"), Some("u-1"), None));
    assert!(!user.applies_to(Some("u-1"), None, None));

    let op = compile(json!({"engine": "allow", "link": [{"reference": "Operation/FhirRead"}]}));
    assert!(op.applies_to(None, None, Some("FhirRead")));
    assert!(!op.applies_to(Some("FhirRead"), Some("FhirRead"), Some("FhirCreate")));

    let either = compile(json!({"engine": "allow", "link": [
        {"id": "c1", "resourceType": "Client"}, {"id": "u1", "resourceType": "User"}]}));
    assert!(either.applies_to(Some("c1"), None, None));
    assert!(either.applies_to(Some("c2"), Some("u1"), None));
    assert!(!either.applies_to(Some("c2"), Some("u2"), None));
}

#[test]
fn empty_or_null_link_is_global() {
    assert!(compile(json!({"engine": "allow", "link": []})).applies_to(None, None, None));
    assert!(compile(json!({"engine": "allow", "link": null})).applies_to(None, None, None));
}

#[test]
fn link_errors_name_the_entry() {
    let e = compile_err(json!({"engine": "allow", "link": {"id": "x", "resourceType": "Client"}}));
    assert_eq!(e.path, "link");
    let e = compile_err(json!({"engine": "allow", "link": ["Client/x"]}));
    assert_eq!(e.path, "link.0");
    let e =
        compile_err(json!({"engine": "allow", "link": [{"id": "x", "resourceType": "Patient"}]}));
    assert_eq!(e.path, "link.0.resourceType");
    let e = compile_err(json!({"engine": "allow", "link": [{"id": "x"}]}));
    assert_eq!(e.path, "link.0.resourceType");
    let e = compile_err(json!({"engine": "allow", "link": [
        {"id": "ok", "resourceType": "User"}, {"resourceType": "Client"}]}));
    assert_eq!(e.path, "link.1.id");
    let e = compile_err(json!({"engine": "allow", "link": [{"id": 5, "resourceType": "User"}]}));
    assert_eq!(e.path, "link.0.id");
    let e = compile_err(json!({"engine": "allow", "link": [{"id": "", "resourceType": "User"}]}));
    assert_eq!(e.path, "link.0.id");
    let e = compile_err(json!({"engine": "allow", "link": [{"reference": "Clientx"}]}));
    assert_eq!(e.path, "link.0.reference");
    let e = compile_err(json!({"engine": "allow", "link": [{"reference": "Patient/1"}]}));
    assert_eq!(e.path, "link.0.reference");
    let e = compile_err(json!({"engine": "allow", "link": [{"reference": "Client/"}]}));
    assert_eq!(e.path, "link.0.reference");
    let e = compile_err(json!({"engine": "allow", "link": [
        {"reference": "Client/a", "id": "a", "resourceType": "Client"}]}));
    assert_eq!(e.path, "link.0");
}

// ------------------------------------------------------------------------------------------------
// evaluate

#[test]
fn evaluate_empty_list_denies() {
    assert_eq!(
        evaluate(&[], &request(), Some("basic"), Some("u-1"), None),
        None
    );
}

#[test]
fn evaluate_returns_first_applicable_policy_that_allows() {
    let policies = vec![
        // 0: applies only to another client.
        compile(json!({"engine": "allow", "link": [{"id": "other", "resourceType": "Client"}]})),
        // 1: global, but denies this request.
        compile(json!({"engine": "matcho", "matcho": {"request-method": "delete"}})),
        // 2: linked to our client, allows.
        compile(json!({"engine": "matcho", "matcho": {"uri": "#^/Patient"},
                       "link": [{"reference": "Client/basic"}]})),
        // 3: global allow.
        compile(json!({"engine": "allow"})),
    ];
    let r = request();
    assert_eq!(
        evaluate(&policies, &r, Some("basic"), Some("u-1"), None),
        Some(2)
    );
    assert_eq!(evaluate(&policies, &r, Some("other"), None, None), Some(0));
    assert_eq!(evaluate(&policies, &r, Some("third"), None, None), Some(3));
    assert_eq!(
        evaluate(&policies[..3], &r, Some("third"), None, None),
        None
    );
    let obs = request_with(|r| r["uri"] = json!("/Observation"));
    assert_eq!(
        evaluate(&policies[..3], &obs, Some("basic"), None, None),
        None
    );
}

#[test]
fn evaluate_uses_operation_links() {
    let policies = vec![compile(
        json!({"engine": "allow", "link": [{"reference": "Operation/Metadata"}]}),
    )];
    assert_eq!(
        evaluate(&policies, &request(), None, None, Some("Metadata")),
        Some(0)
    );
    assert_eq!(
        evaluate(&policies, &request(), None, None, Some("FhirRead")),
        None
    );
    assert_eq!(evaluate(&policies, &request(), None, None, None), None);
}

// ------------------------------------------------------------------------------------------------
// robustness

#[test]
fn compiled_policies_clone_and_debug() {
    let p = tutorial_policy();
    let q = p.clone();
    assert!(q.allows(&request()));
    assert!(format!("{p:?}").contains("matcho"));
    let s = schema(json!({"properties": {"a": {"$ref": "#"}}}));
    assert!(!format!("{:?}", s.clone()).is_empty());
}

#[test]
fn never_panics_on_odd_requests() {
    let policies = vec![
        tutorial_policy(),
        matcho(
            json!({"a": {"$every": {"$not": "nil?"}}, "b": [".c.0.d", {"$length": 2}],
                      "user": {"id": ".user.id"}}),
        ),
        schema(json!({"type": "object", "properties": {"a": {"$ref": "#"}},
                      "additionalProperties": {"uniqueItems": true, "items": {"$ref": "#"}}})),
        compile(
            json!({"engine": "complex", "or": [{"engine": "json-schema", "schema": {"minimum": 1}}]}),
        ),
    ];
    let mut deep = json!({"a": 1});
    for _ in 0..120 {
        deep = json!({"a": deep, "b": [deep.clone()]});
        if deep.to_string().len() > 100_000 {
            break;
        }
    }
    let mut deep_array = json!(1);
    for _ in 0..500 {
        deep_array = json!([deep_array]);
    }
    let odd = [
        Value::Null,
        json!([]),
        json!("x"),
        json!(1e308),
        json!({"a": [null, {}, []], "b": "x", "c": {"0": {"d": 1}}}),
        json!({"user": null, "client": 5, "uri": ["/Patient"]}),
        json!({"a": u64::MAX, "b": i64::MIN}),
        deep,
        json!({"x": deep_array.clone(), "a": deep_array}),
    ];
    for r in &odd {
        for p in &policies {
            let _ = p.allows(r);
        }
        let _ = evaluate(&policies, r, Some("basic"), Some("u-1"), Some("op"));
    }
}

#[test]
fn deep_patterns_and_schemas_fail_to_compile() {
    let mut pat = json!("present?");
    for _ in 0..100 {
        pat = json!({"a": pat});
    }
    let e = compile_err(json!({"engine": "matcho", "matcho": pat}));
    assert!(e.path.starts_with("matcho.a.a."), "{e}");
    let mut sch = json!({});
    for _ in 0..100 {
        sch = json!({"properties": {"a": sch}});
    }
    let e = compile_err(json!({"engine": "json-schema", "schema": sch}));
    assert!(e.path.starts_with("schema.properties.a.properties"), "{e}");
}

#[test]
fn recursive_schema_against_deep_data_denies() {
    let p = schema(json!({"type": "object", "properties": {"a": {"$ref": "#"}}}));
    let mut v = json!({"z": 1});
    for _ in 0..100 {
        v = json!({"a": v});
    }
    assert!(!p.allows(&v), "deeper than the limit fails to validate");
}

#[test]
fn public_types_are_shareable() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_traits::<CompiledPolicy>();
    assert_traits::<PolicyError>();
    assert_traits::<Link>();
    assert_traits::<LinkKind>();
}

// Every example of Aidbox's docs/reference/matcho-dsl-reference.md, verbatim (YAML-ish keys
// quoted as JSON), with the answer the page gives.
#[test]
fn matcho_aidbox_reference_page_examples() {
    // "Pattern: {x: 1} matches: {x: 1}, {x: 1, y: 2, ...} doesn't match: {z: 1}"
    assert!(m(json!({"x": 1}), &json!({"x": 1})));
    assert!(m(json!({"x": 1}), &json!({"x": 1, "y": 2})));
    assert!(!m(json!({"x": 1}), &json!({"z": 1})));
    // "Pattern {a: {b: 5}} matches: {a: {b: 5, c: 6, ...}, d: 7} doesn't match: {a: {c: 5}},
    // {b: {a: 5}}"
    assert!(m(
        json!({"a": {"b": 5}}),
        &json!({"a": {"b": 5, "c": 6}, "d": 7})
    ));
    assert!(!m(json!({"a": {"b": 5}}), &json!({"a": {"c": 5}})));
    assert!(!m(json!({"a": {"b": 5}}), &json!({"b": {"a": 5}})));
    // "Pattern [1, 2] matches [1, 2], [1, 2, 3, …] doesn't match: [2, 1]"
    assert!(m(json!({"v": [1, 2]}), &json!({"v": [1, 2]})));
    assert!(m(json!({"v": [1, 2]}), &json!({"v": [1, 2, 3]})));
    assert!(!m(json!({"v": [1, 2]}), &json!({"v": [2, 1]})));
    // "Pattern {a: "#\\d+"} matches: {a: "2345"} doesn't match: {a: "abc"}"
    assert!(m(json!({"a": "#\\d+"}), &json!({"a": "2345"})));
    assert!(!m(json!({"a": "#\\d+"}), &json!({"a": "abc"})));
    // "Pattern {a: "present?"} matches: {a: 5},{a: {b: 6}} doesn't match: {b: 5}"
    assert!(m(json!({"a": "present?"}), &json!({"a": 5})));
    assert!(m(json!({"a": "present?"}), &json!({"a": {"b": 6}})));
    assert!(!m(json!({"a": "present?"}), &json!({"b": 5})));
    // "Pattern: {params: {user_id: ".user.id"}} matches: {user: {id: 1}, params: {user_id: 1}}"
    let p = json!({"params": {"user_id": ".user.id"}});
    assert!(m(
        p.clone(),
        &json!({"user": {"id": 1}, "params": {"user_id": 1}})
    ));
    assert!(!m(p, &json!({"user": {"id": 1}, "params": {"user_id": 2}})));
    // "Pattern: {request-method: {$enum: ["get", "post"]}} matches: {request-method: "post"},
    // {request-method: "get"} doesn't match: {request-method: "put"}"
    let p = json!({"request-method": {"$enum": ["get", "post"]}});
    assert!(m(p.clone(), &json!({"request-method": "post"})));
    assert!(m(p.clone(), &json!({"request-method": "get"})));
    assert!(!m(p, &json!({"request-method": "put"})));
    // "Pattern {a: {$one-of: [{b: "present?"}, {c: "present?"}]}} matches {a: {c: 5}} doesn't
    // match: {a: {d: 5}, {a: {b: null}"
    let p = json!({"a": {"$one-of": [{"b": "present?"}, {"c": "present?"}]}});
    assert!(m(p.clone(), &json!({"a": {"c": 5}})));
    assert!(!m(p.clone(), &json!({"a": {"d": 5}})));
    assert!(!m(p, &json!({"a": {"b": null}})));
    // "Pattern: {type: {$contains: {system: "loinc"}} matches {type: [{system: "snomed"},
    // {system: "loinc"}]}"
    let p = json!({"type": {"$contains": {"system": "loinc"}}});
    assert!(m(
        p.clone(),
        &json!({"type": [{"system": "snomed"}, {"system": "loinc"}]})
    ));
    assert!(!m(p, &json!({"type": [{"system": "snomed"}]})));
    // "Pattern: {col: {"$every": {foo: "bar"}} matches: {col: [{foo: "bar"}, {foo: "bar", baz:
    // "quux"}]}"
    let p = json!({"col": {"$every": {"foo": "bar"}}});
    assert!(m(
        p.clone(),
        &json!({"col": [{"foo": "bar"}, {"foo": "bar", "baz": "quux"}]})
    ));
    assert!(!m(p, &json!({"col": [{"foo": "bar"}, {"foo": "baz"}]})));
    // "Pattern: {message: {$not: {status: private}} matches: {message: {status: public}} doesn't
    // match: {message: {status: private}}."
    let p = json!({"message": {"$not": {"status": "private"}}});
    assert!(m(p.clone(), &json!({"message": {"status": "public"}})));
    assert!(!m(p, &json!({"message": {"status": "private"}})));
}

// docs/reference/matcho-dsl-reference.md, "$one-of": the "Correct usage example" policy (its
// YAML as JSON) compiles and works; the "Incorrect usage example" is refused when written.
#[test]
fn matcho_aidbox_one_of_usage_examples() {
    let correct = compile(json!({
        "resourceType": "AccessPolicy", "engine": "matcho",
        "matcho": {"request-method": "get", "params": {"$one-of": [
            {"name": "present?", "resource/type": "Patient"},
            {"_id": "present?", "resource/type": "Patient"},
            {"id": "present?", "resource/type": "Patient"}
        ]}}
    }));
    let get = |params: Value| json!({"request-method": "get", "params": params});
    assert!(correct.allows(&get(json!({"name": "John", "resource/type": "Patient"}))));
    assert!(correct.allows(&get(json!({"_id": "p1", "resource/type": "Patient"}))));
    assert!(!correct.allows(&get(json!({"name": "John", "resource/type": "Encounter"}))));
    assert!(!correct.allows(&get(json!({"resource/type": "Patient"}))));
    let e = compile_err(json!({
        "resourceType": "AccessPolicy", "engine": "matcho",
        "matcho": {"request-method": "get", "params": {"resource/type": "Patient", "$one-of": [
            {"name": "present?"}, {"_id": "present?"}, {"id": "present?"}
        ]}}
    }));
    assert_eq!(e.path, "matcho.params.$one-of");
}

// docs/reference/matcho-dsl-reference.md, the $not warning: "this AccessPolicy allows them to
// perform DELETE /Patient/ for all other users, including unauthorized ones". The same holds
// here (a request with no user is not a guest), which is why the page recommends $enum.
#[test]
fn matcho_aidbox_not_warning_example() {
    let p = json!({"request-method": "delete", "uri": "#^/Patient.*$",
                   "user": {"$not": {"data": {"role": "guest"}}}});
    let del = |user: Value| json!({"request-method": "delete", "uri": "/Patient/p1", "user": user});
    assert!(!m(p.clone(), &del(json!({"data": {"role": "guest"}}))));
    assert!(m(p.clone(), &del(json!({"data": {"role": "doctor"}}))));
    assert!(
        m(p, &del(Value::Null)),
        "as the docs warn: no user passes $not too"
    );
}

/// The smart-on-fhir engine without `fhir-base-path` strips the deployment's FHIR base that the
/// authorizer names in `fhir-base` (issue 13); a path under no base (`null`) is denied; a
/// request that does not say is read at the root, as before.
#[test]
fn smart_engine_default_base_is_the_requests_fhir_base() {
    let p = CompiledPolicy::compile(&json!({"engine": "smart-on-fhir"})).unwrap();
    let req = |uri: &str, base: Option<Value>| {
        let mut r = json!({
            "request-method": "get", "uri": uri, "params": {}, "user": null,
            "jwt": {"scope": "system/*.rs", "sub_kind": "client"},
        });
        if let Some(b) = base {
            r["fhir-base"] = b;
        }
        r
    };
    assert!(p.allows(&req("/fhir/Patient/1", Some(json!("/fhir")))));
    assert!(p.allows(&req("/Patient/1", Some(json!("")))));
    assert!(p.allows(&req("/Patient/1", None)));
    assert!(!p.allows(&req("/fhir/Patient/1", None)));
    assert!(!p.allows(&req("/x/Patient/1", Some(Value::Null))));
    assert!(!p.allows(&req("/fhir/Patient/1", Some(json!("/r4")))));
    assert!(!p.allows(&req("/fhir/Client/1", Some(json!("/fhir")))));
    // An explicit fhir-base-path wins over the request's base.
    let q = CompiledPolicy::compile(&json!({"engine": "smart-on-fhir", "fhir-base-path": "/r4"}))
        .unwrap();
    assert!(!q.allows(&req("/fhir/Patient/1", Some(json!("/fhir")))));
    assert!(q.allows(&req("/r4/Patient/1", Some(json!("")))));
}
