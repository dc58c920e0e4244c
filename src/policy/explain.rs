//! Explanations for the policy tester (`POST /auth/test-policy`, src/debug.rs): for each policy,
//! whether it applies to the caller and, when it does not allow, the first part that did not
//! match. A separate walk from [`super::CompiledPolicy::allows`], so the hot path never builds
//! explanations; every engine's `explain` decides with the same code as its `allows`.

use serde_json::{json, Value};

use super::{CompiledPolicy, LinkKind};

impl CompiledPolicy {
    /// `{"result": bool, ...}`: the engine's answer (always equal to [`CompiledPolicy::allows`])
    /// and, when it denies, the engine's reason (matcho: `mismatch`; json-schema: `error`;
    /// smart-on-fhir: `reason`; complex: the branches evaluated).
    pub fn explain(&self, request: &Value) -> Value {
        let mut e = self.rule.explain(request);
        // The explanation must never disagree with the decision: `allows` has the last word.
        let allows = self.allows(request);
        if let Value::Object(m) = &mut e {
            if m.get("result").and_then(Value::as_bool) != Some(allows) {
                m.insert("result".into(), json!(allows));
                m.insert("note".into(), json!("explanation incomplete"));
            }
        }
        e
    }

    /// The `link` entries as Aidbox writes them.
    pub fn links_json(&self) -> Value {
        Value::Array(
            self.links
                .iter()
                .map(|l| {
                    let kind = match l.kind {
                        LinkKind::Client => "Client",
                        LinkKind::User => "User",
                        LinkKind::Operation => "Operation",
                    };
                    json!({"id": l.id, "resourceType": kind})
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(policy: Value, request: Value) -> Value {
        CompiledPolicy::compile(&policy).unwrap().explain(&request)
    }

    #[test]
    fn matcho_names_the_first_mismatching_key() {
        let e = explain(
            json!({"engine": "matcho", "matcho": {"request-method": "get", "params": {"resource/type": "Patient"}}}),
            json!({"request-method": "get", "params": {"resource/type": "Observation"}}),
        );
        assert_eq!(e["result"], false);
        assert_eq!(e["mismatch"]["path"], "params.resource/type");
        assert_eq!(e["mismatch"]["expected"], "Patient");
        assert_eq!(e["mismatch"]["actual"], "Observation");
        let ok = explain(
            json!({"engine": "matcho", "matcho": {"uri": "#^/Patient"}}),
            json!({"uri": "/Patient/1"}),
        );
        assert_eq!(ok["result"], true);
        let e = explain(
            json!({"engine": "matcho", "matcho": {"request-method": {"$enum": ["get", "head"]}}}),
            json!({"request-method": "post"}),
        );
        assert_eq!(e["mismatch"]["path"], "request-method");
        assert_eq!(e["mismatch"]["expected"], json!({"$enum": ["get", "head"]}));
    }

    #[test]
    fn json_schema_names_the_first_error() {
        let e = explain(
            json!({"engine": "json-schema", "schema": {"required": ["user"], "properties": {"uri": {"pattern": "^/Patient"}}}}),
            json!({"uri": "/Patient", "user": null}),
        );
        assert_eq!(e["result"], false);
        assert_eq!(e["error"]["path"], "user");
        let e = explain(
            json!({"engine": "json-schema", "schema": {"properties": {"uri": {"pattern": "^/Patient"}}}}),
            json!({"uri": "/Observation"}),
        );
        assert_eq!(e["error"]["path"], "uri");
        assert_eq!(e["error"]["actual"], "/Observation");
    }

    #[test]
    fn complex_names_the_branch() {
        let e = explain(
            json!({"engine": "complex", "and": [{"engine": "allow"}, {"engine": "matcho", "matcho": {"uri": "/x"}}]}),
            json!({"uri": "/y"}),
        );
        assert_eq!(e["result"], false);
        assert_eq!(e["failed-branch"], "and.1");
        let e = explain(
            json!({"engine": "complex", "or": [{"engine": "matcho", "matcho": {"uri": "/x"}}, {"engine": "allow"}]}),
            json!({"uri": "/y"}),
        );
        assert_eq!(e["result"], true);
        assert_eq!(e["allowed-branch"], "or.1");
    }

    #[test]
    fn smart_gives_a_reason() {
        let policy = json!({"engine": "smart-on-fhir"});
        let e = explain(
            policy.clone(),
            json!({"request-method": "get", "uri": "/Client", "params": {}, "jwt": {"scope": "system/*.cruds"}}),
        );
        assert_eq!(e["result"], false);
        assert!(e["reason"].as_str().unwrap().contains("admin"), "{e}");
        // The tester and inspector live under /auth/: never a FHIR interaction.
        let e = explain(
            policy.clone(),
            json!({"request-method": "post", "uri": "/auth/test-policy", "params": {}, "jwt": {"scope": "system/*.cruds"}}),
        );
        assert_eq!(e["result"], false);
        let e = explain(
            policy,
            json!({"request-method": "get", "uri": "/Patient", "params": {}, "jwt": {"scope": "system/*.cruds"}}),
        );
        assert_eq!(e["result"], true);
    }
}
