//! JSON value helpers shared by the engines: numeric comparison that ignores the integer/float
//! representation, depth-limited deep equality, and dotted request paths.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::MAX_DEPTH;

/// Stand-in for a missing value: both engines treat "absent" and `null` alike.
pub(crate) static NULL: Value = Value::Null;

/// Compares two JSON numbers by value (`1`, `1.0` and `1e0` are equal), exactly for integers.
pub(crate) fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => return Some(x.cmp(&y)),
        // One fits i64 and the other does not: the other is a u64 above i64::MAX.
        (Some(_), None) if b.is_u64() => return Some(Ordering::Less),
        (None, Some(_)) if a.is_u64() => return Some(Ordering::Greater),
        _ => {}
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Numeric equality by value.
pub(crate) fn num_eq(a: &Number, b: &Number) -> bool {
    num_cmp(a, b) == Some(Ordering::Equal)
}

/// Equality of two scalars (string, number, bool, null); numbers by value. Containers: false.
pub(crate) fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => num_eq(x, y),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

/// Deep equality, numbers by value; values nested deeper than [`MAX_DEPTH`] compare unequal.
pub(crate) fn deep_eq(a: &Value, b: &Value) -> bool {
    deep_eq_at(a, b, 0)
}

fn deep_eq_at(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| deep_eq_at(x, y, depth + 1))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, xv)| y.get(k).is_some_and(|yv| deep_eq_at(xv, yv, depth + 1)))
        }
        _ => scalar_eq(a, b),
    }
}

/// Follows a path of segments from `root`: object keys by name, array elements by a decimal
/// index. `None` when any step is missing.
pub(crate) fn resolve<'v>(root: &'v Value, segments: &[String]) -> Option<&'v Value> {
    let mut cur = root;
    for seg in segments {
        cur = match cur {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(v: Value) -> Number {
        match v {
            Value::Number(n) => n,
            _ => unreachable!("test helper takes numbers"),
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(num_eq(&n(json!(1)), &n(json!(1.0))));
        assert!(!num_eq(&n(json!(1)), &n(json!(1.5))));
        assert_eq!(
            num_cmp(&n(json!(-1)), &n(json!(u64::MAX))),
            Some(Ordering::Less)
        );
        assert_eq!(
            num_cmp(&n(json!(u64::MAX)), &n(json!(-1))),
            Some(Ordering::Greater)
        );
        assert_eq!(
            num_cmp(&n(json!(u64::MAX)), &n(json!(u64::MAX - 1))),
            Some(Ordering::Greater)
        );
        assert_eq!(
            num_cmp(&n(json!(2.5)), &n(json!(2))),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn deep_equality_and_paths() {
        assert!(deep_eq(
            &json!({"a": [1, {"b": 2.0}]}),
            &json!({"a": [1.0, {"b": 2}]})
        ));
        assert!(!deep_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        let root = json!({"user": {"roles": ["a", "b"]}});
        let segs = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(resolve(&root, &segs("user.roles.1")), Some(&json!("b")));
        assert_eq!(resolve(&root, &segs("user.roles.2")), None);
        assert_eq!(resolve(&root, &segs("user.roles.x")), None);
        assert_eq!(resolve(&root, &segs("user.nope.x")), None);
    }

    #[test]
    fn deep_values_never_overflow() {
        let mut a = json!(1);
        for _ in 0..200 {
            a = json!([a]);
        }
        assert!(!deep_eq(&a, &a.clone()));
    }
}
