//! The `matcho` engine: Aidbox's Matcho DSL (see Aidbox docs, "Matcho DSL reference", and the
//! Clojure library `healthsamurai/matcho` it grew from). Field `matcho` holds a pattern that is
//! matched against the policy request:
//!
//! - A **map** matches a map value by recursive inclusion: every key of the pattern must match
//!   the value's key; extra keys in the value are fine. A key missing from the value is seen as
//!   `null`, so it only matches patterns that accept `null` (`"nil?"`, `{"$not": ...}`, ...).
//!   The empty map `{}` matches any map.
//! - An **array** matches an array value as an ordered prefix: element *i* matches element *i*;
//!   extra elements in the value are fine.
//! - A string starting with `#` is a **regex** (regex-lite syntax), found anywhere in the value
//!   like Clojure's `re-find`: anchor explicitly (`"#^/Patient$"`). It applies to strings, and to
//!   numbers and booleans through their JSON text; never to maps, arrays or `null`.
//! - A string starting with `.` is a **path into the request** (`".user.id"`,
//!   `".params.patient"`; split on `.`, decimal segments index arrays): the value must equal
//!   what is found there. A path that finds nothing (or `null`) matches nothing.
//! - `"present?"`: not `null`/missing. `"nil?"`: `null` or missing. `"not-blank?"`: a string
//!   that is non-empty after trimming (Aidbox: "matches a non-empty string"; nothing else).
//! - Other scalars match by equality; numbers by value (`1` equals `1.0`), no coercion between
//!   types (the pattern `10` does not match the query param `"10"`). A `null` pattern behaves as
//!   `"nil?"`.
//! - Operator maps (keys starting with `$`): `$enum` (a non-empty list of scalars the value must
//!   equal one of), `$one-of` (a non-empty list of patterns, any may match; must be the only key
//!   of its map), `$contains` (an array with some element matching), `$every` (an array whose
//!   elements all match; true for `[]`), `$not` (the pattern does not match), `$present-all`
//!   (an array containing every listed value, in any order — Aidbox's meaning), `$reference`
//!   (a FHIR reference — `"Patient/pid"` or `{"reference": "Patient/pid"}` — is read as
//!   `{"resourceType": "Patient", "id": "pid"}`, Aidbox's format, and matched against the
//!   pattern; a value already in that format is matched as it is; anything else, including
//!   absolute, versioned or contained references, matches nothing), `$length` (array, string —
//!   counted in characters — or map of exactly that length). Several operators, or operators
//!   next to plain keys, on one level must all hold. An unknown `$` key is a compile error.
//!
//! The top-level `matcho` must be a map (the request is a map; anything else is a mistake).

use std::sync::Arc;

use regex_lite::Regex;
use serde_json::{Map, Value};

use super::value::{deep_eq, resolve, scalar_eq, NULL};
use super::{compile_regex, join, Ctx, Engine, PolicyError, Rule, MAX_DEPTH};

const OPERATORS: &str =
    "$enum, $one-of, $contains, $every, $not, $present-all, $reference, $length";

/// A compiled Matcho pattern.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// `"present?"`
    Present,
    /// `"nil?"` (and a `null` pattern)
    Nil,
    /// `"not-blank?"`
    NotBlank,
    /// A string, number or boolean compared by equality.
    Literal(Value),
    /// `"#regex"`
    Regex(Regex),
    /// `".path.into.request"`, split into segments.
    RequestPath(Vec<String>),
    /// Ordered-prefix array pattern.
    Array(Vec<Pattern>),
    /// Map pattern: plain keys (the value must be a map containing them) and operators.
    Map {
        keys: Vec<(String, Pattern)>,
        ops: Vec<Op>,
    },
}

/// A `$operator` of a map pattern.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Enum(Vec<Value>),
    OneOf(Vec<Pattern>),
    Contains(Box<Pattern>),
    Every(Box<Pattern>),
    Not(Box<Pattern>),
    PresentAll(Vec<Value>),
    Reference(Box<Pattern>),
    Length(u64),
}

#[derive(Debug)]
struct Matcho {
    pattern: Pattern,
}

impl Engine for Matcho {
    fn allows(&self, request: &Value) -> bool {
        self.pattern.matches(request, request)
    }

    fn explain(&self, request: &Value) -> Value {
        if self.pattern.matches(request, request) {
            return serde_json::json!({"result": true});
        }
        let mut path = Vec::new();
        let (expected, actual) = self.pattern.first_mismatch(request, request, &mut path);
        serde_json::json!({"result": false, "mismatch": {
            "path": path.join("."), "expected": expected, "actual": actual,
        }})
    }
}

/// Compiles a `matcho` policy: field `matcho` must be a map pattern.
pub(crate) fn compile(body: &Map<String, Value>, ctx: Ctx<'_>) -> Result<Rule, PolicyError> {
    let path = ctx.path("matcho");
    match body.get("matcho") {
        Some(v @ Value::Object(_)) => {
            let pattern = Pattern::compile(v, &path)?;
            Ok(Arc::new(Matcho { pattern }))
        }
        None | Some(Value::Null) => Err(PolicyError::new(
            path,
            "a matcho policy needs a `matcho` pattern (a map)",
        )),
        Some(_) => Err(PolicyError::new(
            path,
            "matcho must be a map pattern, matched against the request map",
        )),
    }
}

impl Pattern {
    /// Compiles any pattern value; `path` is the dotted path of `v` in the policy body.
    pub(crate) fn compile(v: &Value, path: &str) -> Result<Pattern, PolicyError> {
        compile_at(v, path, 0)
    }

    /// Matches `value` (a missing value is passed as `null`); `request` is the whole policy
    /// request that `.path` strings look into.
    pub(crate) fn matches(&self, value: &Value, request: &Value) -> bool {
        match self {
            Pattern::Present => !value.is_null(),
            Pattern::Nil => value.is_null(),
            Pattern::NotBlank => value.as_str().is_some_and(|s| !s.trim().is_empty()),
            Pattern::Literal(lit) => scalar_eq(lit, value),
            Pattern::Regex(re) => match value {
                Value::String(s) => re.is_match(s),
                Value::Number(n) => re.is_match(&n.to_string()),
                Value::Bool(b) => re.is_match(if *b { "true" } else { "false" }),
                _ => false,
            },
            Pattern::RequestPath(segments) => match resolve(request, segments) {
                Some(expected) if !expected.is_null() => deep_eq(expected, value),
                _ => false,
            },
            Pattern::Array(items) => match value {
                Value::Array(values) => items
                    .iter()
                    .enumerate()
                    .all(|(i, p)| p.matches(values.get(i).unwrap_or(&NULL), request)),
                _ => false,
            },
            Pattern::Map { keys, ops } => {
                let keys_ok = if keys.is_empty() && !ops.is_empty() {
                    true
                } else {
                    match value {
                        Value::Object(map) => keys
                            .iter()
                            .all(|(k, p)| p.matches(map.get(k).unwrap_or(&NULL), request)),
                        _ => false,
                    }
                };
                keys_ok && ops.iter().all(|op| op.matches(value, request))
            }
        }
    }
}

// ---- explanations (the policy tester; never on the hot path) ----

impl Pattern {
    /// For a pattern that does not match `value`: the path (pushed onto `path`) of the first
    /// part that does not, what it expected and what it found. Descends with [`Pattern::matches`]
    /// itself, so it names exactly what made the match fail.
    fn first_mismatch(
        &self,
        value: &Value,
        request: &Value,
        path: &mut Vec<String>,
    ) -> (Value, Value) {
        match self {
            Pattern::Array(items) => {
                if let Value::Array(values) = value {
                    for (i, p) in items.iter().enumerate() {
                        let v = values.get(i).unwrap_or(&NULL);
                        if !p.matches(v, request) {
                            path.push(i.to_string());
                            return p.first_mismatch(v, request, path);
                        }
                    }
                }
                (self.describe(request), value.clone())
            }
            Pattern::Map { keys, ops } => {
                if let Value::Object(map) = value {
                    for (k, p) in keys {
                        let v = map.get(k).unwrap_or(&NULL);
                        if !p.matches(v, request) {
                            path.push(k.clone());
                            return p.first_mismatch(v, request, path);
                        }
                    }
                } else if !keys.is_empty() {
                    return (self.describe(request), value.clone());
                }
                for op in ops {
                    if !op.matches(value, request) {
                        return (op.describe(), value.clone());
                    }
                }
                (self.describe(request), value.clone())
            }
            _ => (self.describe(request), value.clone()),
        }
    }

    /// The pattern as the policy wrote it (maps and arrays in short).
    fn describe(&self, request: &Value) -> Value {
        match self {
            Pattern::Present => "present?".into(),
            Pattern::Nil => "nil?".into(),
            Pattern::NotBlank => "not-blank?".into(),
            Pattern::Literal(v) => v.clone(),
            Pattern::Regex(re) => format!("#{}", re.as_str()).into(),
            Pattern::RequestPath(segments) => serde_json::json!({
                "path": format!(".{}", segments.join(".")),
                "value": resolve(request, segments).cloned().unwrap_or(Value::Null),
            }),
            Pattern::Array(_) => "an array".into(),
            Pattern::Map { .. } => "a map".into(),
        }
    }
}

impl Op {
    fn describe(&self) -> Value {
        let name = match self {
            Op::Enum(options) => return serde_json::json!({"$enum": options}),
            Op::PresentAll(values) => return serde_json::json!({"$present-all": values}),
            Op::Length(n) => return serde_json::json!({"$length": n}),
            Op::OneOf(_) => "$one-of",
            Op::Contains(_) => "$contains",
            Op::Every(_) => "$every",
            Op::Not(_) => "$not",
            Op::Reference(_) => "$reference",
        };
        name.into()
    }

    fn matches(&self, value: &Value, request: &Value) -> bool {
        match self {
            Op::Enum(options) => options.iter().any(|o| scalar_eq(o, value)),
            Op::OneOf(patterns) => patterns.iter().any(|p| p.matches(value, request)),
            Op::Contains(p) => value
                .as_array()
                .is_some_and(|a| a.iter().any(|v| p.matches(v, request))),
            Op::Every(p) => value
                .as_array()
                .is_some_and(|a| a.iter().all(|v| p.matches(v, request))),
            Op::Not(p) => !p.matches(value, request),
            Op::PresentAll(wanted) => value
                .as_array()
                .is_some_and(|a| wanted.iter().all(|w| a.iter().any(|v| deep_eq(w, v)))),
            Op::Reference(p) => as_aidbox_reference(value).is_some_and(|r| p.matches(&r, request)),
            Op::Length(n) => {
                let len = match value {
                    Value::Array(a) => a.len(),
                    Value::String(s) => s.chars().count(),
                    Value::Object(o) => o.len(),
                    _ => return false,
                };
                u64::try_from(len).is_ok_and(|len| len == *n)
            }
        }
    }
}

fn compile_at(v: &Value, path: &str, depth: usize) -> Result<Pattern, PolicyError> {
    if depth > MAX_DEPTH {
        return Err(PolicyError::new(
            path,
            format!("pattern nested more than {MAX_DEPTH} levels"),
        ));
    }
    Ok(match v {
        Value::Null => Pattern::Nil,
        Value::Bool(_) | Value::Number(_) => Pattern::Literal(v.clone()),
        Value::String(s) => compile_string(s, path)?,
        Value::Array(items) => Pattern::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| compile_at(item, &join(path, &i.to_string()), depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => compile_map(map, path, depth)?,
    })
}

fn compile_string(s: &str, path: &str) -> Result<Pattern, PolicyError> {
    Ok(match s {
        "present?" => Pattern::Present,
        "nil?" => Pattern::Nil,
        "not-blank?" => Pattern::NotBlank,
        _ => {
            if let Some(re) = s.strip_prefix('#') {
                Pattern::Regex(compile_regex(re, path)?)
            } else if let Some(p) = s.strip_prefix('.') {
                let segments: Vec<String> = p.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(PolicyError::new(
                        path,
                        format!("{s:?} is not a request path like \".user.id\" (empty segment)"),
                    ));
                }
                Pattern::RequestPath(segments)
            } else {
                Pattern::Literal(Value::String(s.to_owned()))
            }
        }
    })
}

fn compile_map(map: &Map<String, Value>, path: &str, depth: usize) -> Result<Pattern, PolicyError> {
    let mut keys = Vec::new();
    let mut ops = Vec::new();
    for (k, v) in map {
        let at = join(path, k);
        if !k.starts_with('$') {
            keys.push((k.clone(), compile_at(v, &at, depth + 1)?));
            continue;
        }
        let op = match k.as_str() {
            "$enum" => Op::Enum(compile_enum(v, &at)?),
            "$one-of" => {
                if map.len() > 1 {
                    return Err(PolicyError::new(
                        at,
                        "$one-of must be the only key of its map (move the other keys into each \
                         alternative)",
                    ));
                }
                let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
                    return Err(PolicyError::new(
                        at,
                        "$one-of takes a non-empty array of patterns",
                    ));
                };
                Op::OneOf(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, p)| compile_at(p, &join(&at, &i.to_string()), depth + 1))
                        .collect::<Result<_, _>>()?,
                )
            }
            "$contains" => Op::Contains(Box::new(compile_at(v, &at, depth + 1)?)),
            "$every" => Op::Every(Box::new(compile_at(v, &at, depth + 1)?)),
            "$not" => Op::Not(Box::new(compile_at(v, &at, depth + 1)?)),
            "$present-all" => Op::PresentAll(compile_present_all(v, &at)?),
            "$reference" => {
                if !v.is_object() {
                    return Err(PolicyError::new(
                        at,
                        "$reference takes a map pattern matched against \
                         {\"resourceType\": ..., \"id\": ...}",
                    ));
                }
                Op::Reference(Box::new(compile_at(v, &at, depth + 1)?))
            }
            "$length" => match v.as_u64() {
                Some(n) => Op::Length(n),
                None => {
                    return Err(PolicyError::new(at, "$length takes a non-negative integer"));
                }
            },
            other => {
                return Err(PolicyError::new(
                    at,
                    format!("unknown operator {other:?}; known operators: {OPERATORS}"),
                ))
            }
        };
        ops.push(op);
    }
    Ok(Pattern::Map { keys, ops })
}

/// `$present-all`: a non-empty array of values that must all be elements of the matched
/// array. A value that is itself a pattern string (`"#..."`, `".path"`, `"present?"`...) is
/// refused: here it would be compared literally, which is surely not what was meant.
fn compile_present_all(v: &Value, path: &str) -> Result<Vec<Value>, PolicyError> {
    let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
        return Err(PolicyError::new(
            path,
            "$present-all takes a non-empty array of the values that must all be in the array \
             (Aidbox's meaning; for keys of a map use {\"key\": \"present?\"})",
        ));
    };
    for (i, item) in items.iter().enumerate() {
        let literal = match item {
            Value::String(s) => !(s.starts_with('#') || s.starts_with('.') || s.ends_with('?')),
            Value::Null => false,
            _ => true,
        };
        if !literal {
            return Err(PolicyError::new(
                join(path, &i.to_string()),
                "$present-all compares values by equality: null, regexes (\"#...\"), request \
                 paths (\".x\") and \"present?\"-style predicates are not allowed here",
            ));
        }
    }
    Ok(items.clone())
}

/// Reads a FHIR reference as Aidbox's `{"resourceType", "id"}`: the string `"Type/id"`, a
/// `Reference` map whose `reference` is `"Type/id"`, or a map already carrying both
/// `resourceType` and `id` (strings). Only the relative literal form is understood; absolute
/// URLs, `_history` versions, `#contained` and malformed references give `None`.
fn as_aidbox_reference(value: &Value) -> Option<Value> {
    let parse = |s: &str| -> Option<Value> {
        let (ty, id) = s.split_once('/')?;
        let ty_ok = ty.starts_with(|c: char| c.is_ascii_uppercase())
            && ty.chars().all(|c| c.is_ascii_alphanumeric());
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        (ty_ok && id_ok).then(|| serde_json::json!({"resourceType": ty, "id": id}))
    };
    match value {
        Value::String(s) => parse(s),
        Value::Object(m) => match m.get("reference") {
            Some(Value::String(s)) => parse(s),
            Some(_) => None,
            None => match (m.get("resourceType"), m.get("id")) {
                (Some(Value::String(ty)), Some(Value::String(id))) => parse(&format!("{ty}/{id}")),
                _ => None,
            },
        },
        _ => None,
    }
}

fn compile_enum(v: &Value, path: &str) -> Result<Vec<Value>, PolicyError> {
    let Some(items) = v.as_array() else {
        return Err(PolicyError::new(
            path,
            "$enum takes an array of strings, numbers or booleans",
        ));
    };
    if items.is_empty() {
        return Err(PolicyError::new(path, "$enum must list at least one value"));
    }
    for (i, item) in items.iter().enumerate() {
        if !matches!(item, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err(PolicyError::new(
                join(path, &i.to_string()),
                "$enum values must be strings, numbers or booleans",
            ));
        }
    }
    Ok(items.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(pattern: Value, value: Value) -> bool {
        let p = Pattern::compile(&pattern, "matcho").expect("pattern compiles");
        p.matches(&value, &value)
    }

    #[test]
    fn scalars_and_missing() {
        assert!(m(json!({"a": 1}), json!({"a": 1.0})));
        assert!(!m(json!({"a": 1}), json!({"a": "1"})));
        assert!(m(json!({"a": null}), json!({})));
        assert!(!m(json!({"a": null}), json!({"a": 0})));
        assert!(m(json!({}), json!({"x": 1})));
        assert!(!m(json!({}), json!(null)));
    }

    #[test]
    fn regex_on_non_strings() {
        assert!(m(json!({"a": "#^\\d+$"}), json!({"a": 42})));
        assert!(m(json!({"a": "#^tr"}), json!({"a": true})));
        assert!(!m(json!({"a": "#.*"}), json!({"a": null})));
        assert!(!m(json!({"a": "#.*"}), json!({"a": {"b": 1}})));
    }

    #[test]
    fn operators_combine() {
        let p = json!({"roles": {"$contains": "admin", "$length": 2}});
        assert!(m(p.clone(), json!({"roles": ["x", "admin"]})));
        assert!(!m(p, json!({"roles": ["x", "admin", "y"]})));
        assert!(m(json!({"s": {"$length": 2}}), json!({"s": "é!"})));
    }

    #[test]
    fn depth_limit() {
        let mut p = json!(1);
        for _ in 0..100 {
            p = json!({"a": p});
        }
        let err = Pattern::compile(&p, "matcho").expect_err("too deep");
        assert!(err.path.starts_with("matcho.a.a"));
    }
}
