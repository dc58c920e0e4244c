//! The `complex` engine (Aidbox): combines sub-policies with `and` or `or`.
//!
//! `{"engine": "complex", "and": [p1, p2, ...]}` allows when every sub-policy allows;
//! `{"engine": "complex", "or": [p1, p2, ...]}` when any does. Each sub-policy is an object with
//! its own `engine` (any engine, including `complex` again, up to [`MAX_DEPTH`] levels).
//! One level takes either `and` or `or`, never both, and the list must not be empty.
//! Evaluation short-circuits, left to right. Sub-policies take no `link` and no `roleName`:
//! applicability and the role are decided by the top-level policy only.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{compile_engine, join, Ctx, Engine, PolicyError, Rule, MAX_DEPTH};

#[derive(Debug)]
enum Complex {
    And(Vec<Rule>),
    Or(Vec<Rule>),
}

impl Engine for Complex {
    fn allows(&self, request: &Value) -> bool {
        match self {
            Complex::And(rules) => rules.iter().all(|r| r.allows(request)),
            Complex::Or(rules) => rules.iter().any(|r| r.allows(request)),
        }
    }

    /// The branches evaluated, left to right, stopping where `allows` stops: for `and` the
    /// first that denies (`failed-branch`), for `or` the first that allows (`allowed-branch`).
    fn explain(&self, request: &Value) -> Value {
        let (field, rules, stop_on) = match self {
            Complex::And(rules) => ("and", rules, false),
            Complex::Or(rules) => ("or", rules, true),
        };
        let mut branches = Vec::new();
        let mut stopped = None;
        for (i, r) in rules.iter().enumerate() {
            let e = r.explain(request);
            let result = e.get("result").and_then(Value::as_bool) == Some(true);
            branches.push(e);
            if result == stop_on {
                stopped = Some(format!("{field}.{i}"));
                break;
            }
        }
        let result = if stop_on {
            stopped.is_some()
        } else {
            stopped.is_none()
        };
        let mut out = serde_json::json!({ "result": result, field: branches });
        if let Some(at) = stopped {
            let key = if stop_on {
                "allowed-branch"
            } else {
                "failed-branch"
            };
            out[key] = Value::String(at);
        }
        out
    }
}

/// Compiles a `complex` policy: exactly one of `and`, `or`, a non-empty array of sub-policies.
pub(crate) fn compile(body: &Map<String, Value>, ctx: Ctx<'_>) -> Result<Rule, PolicyError> {
    let and = body.get("and").filter(|v| !v.is_null());
    let or = body.get("or").filter(|v| !v.is_null());
    let (field, list) =
        match (and, or) {
            (Some(_), Some(_)) => return Err(PolicyError::new(
                ctx.path("and/or"),
                "a complex policy takes either `and` or `or` on one level, not both; nest another \
                 complex policy to combine them",
            )),
            (Some(v), None) => ("and", v),
            (None, Some(v)) => ("or", v),
            (None, None) => {
                return Err(PolicyError::new(
                    ctx.path("and/or"),
                    "a complex policy needs an `and` or an `or` list of sub-policies",
                ))
            }
        };
    let list_path = ctx.path(field);
    let Some(items) = list.as_array() else {
        return Err(PolicyError::new(
            list_path,
            format!("`{field}` must be an array of policies"),
        ));
    };
    if items.is_empty() {
        return Err(PolicyError::new(
            list_path,
            format!("`{field}` must not be empty"),
        ));
    }
    if ctx.depth >= MAX_DEPTH {
        return Err(PolicyError::new(
            list_path,
            format!("complex policies nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = join(&list_path, &i.to_string());
        let Some(sub) = item.as_object() else {
            return Err(PolicyError::new(
                at,
                "a sub-policy must be an object with an `engine`",
            ));
        };
        if sub.get("link").is_some_and(|v| !v.is_null()) {
            return Err(PolicyError::new(
                join(&at, "link"),
                "link is only allowed on the top-level policy",
            ));
        }
        // Only the top-level policy's `roleName` is enforced (`CompiledPolicy::allows`);
        // ignored here it would turn "allow this role" into "allow everyone".
        if sub.get("roleName").is_some_and(|v| !v.is_null()) {
            return Err(PolicyError::new(
                join(&at, "roleName"),
                "roleName is only allowed on the top-level policy; match on the role \
                 (session.role) inside a sub-policy, or split the policy",
            ));
        }
        let (_, rule) = compile_engine(
            sub,
            Ctx {
                prefix: &at,
                depth: ctx.depth + 1,
            },
        )?;
        rules.push(rule);
    }
    Ok(Arc::new(if field == "and" {
        Complex::And(rules)
    } else {
        Complex::Or(rules)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An engine that records how often it ran.
    #[derive(Debug)]
    struct Counting {
        answer: bool,
        calls: AtomicUsize,
    }

    impl Engine for Counting {
        fn allows(&self, _request: &Value) -> bool {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answer
        }
    }

    fn counting(answer: bool) -> Arc<Counting> {
        Arc::new(Counting {
            answer,
            calls: AtomicUsize::new(0),
        })
    }

    #[test]
    fn or_stops_at_first_allow_and_at_first_deny() {
        let (yes, never) = (counting(true), counting(true));
        let or = Complex::Or(vec![yes.clone(), never.clone()]);
        assert!(or.allows(&Value::Null));
        assert_eq!(yes.calls.load(Ordering::SeqCst), 1);
        assert_eq!(never.calls.load(Ordering::SeqCst), 0);

        let (no, never) = (counting(false), counting(true));
        let and = Complex::And(vec![no.clone(), never.clone()]);
        assert!(!and.allows(&Value::Null));
        assert_eq!(no.calls.load(Ordering::SeqCst), 1);
        assert_eq!(never.calls.load(Ordering::SeqCst), 0);

        let (a, b) = (counting(false), counting(true));
        assert!(Complex::Or(vec![a.clone(), b.clone()]).allows(&Value::Null));
        assert_eq!(
            (
                a.calls.load(Ordering::SeqCst),
                b.calls.load(Ordering::SeqCst)
            ),
            (1, 1)
        );
    }
}
