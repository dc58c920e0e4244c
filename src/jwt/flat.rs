//! A flat JSON object (string, integer and pre-serialized members) written straight to text,
//! for what we issue on every token request: the JWT header, the access token's claims and the
//! token response. It prints exactly what `serde_json::to_vec` prints for the same object as a
//! `serde_json::Value` (members in key order, serde_json's escaping), without building the
//! `Value` tree first.

use std::fmt::Write;

enum Member<'a> {
    Str(&'a str),
    Int(i64),
    /// Already JSON (a nested object, say).
    Raw(String),
}

#[derive(Default)]
pub struct FlatJson<'a> {
    members: Vec<(&'a str, Member<'a>)>,
}

impl<'a> FlatJson<'a> {
    pub fn new() -> Self {
        FlatJson {
            members: Vec::with_capacity(16),
        }
    }

    pub fn str(&mut self, key: &'a str, value: &'a str) -> &mut Self {
        self.members.push((key, Member::Str(value)));
        self
    }

    pub fn int(&mut self, key: &'a str, value: i64) -> &mut Self {
        self.members.push((key, Member::Int(value)));
        self
    }

    /// A member whose value is already JSON text.
    pub fn raw(&mut self, key: &'a str, json: String) -> &mut Self {
        self.members.push((key, Member::Raw(json)));
        self
    }

    /// The object as compact JSON, members sorted by key like serde_json's map; a key given
    /// twice keeps its last value, as inserting into the map would.
    pub fn finish(mut self) -> String {
        // An insertion sort (a handful of members; less code than `sort_by`), stable: among
        // equal keys the last one given stays last.
        let m = &mut self.members;
        for i in 1..m.len() {
            let mut j = i;
            while j > 0 && m[j - 1].0 > m[j].0 {
                m.swap(j - 1, j);
                j -= 1;
            }
        }
        let mut out = String::with_capacity(256);
        out.push('{');
        let n = self.members.len();
        let mut first = true;
        for (i, (key, value)) in self.members.iter().enumerate() {
            if i + 1 < n && self.members[i + 1].0 == *key {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            push_str(&mut out, key);
            out.push(':');
            match value {
                Member::Str(s) => push_str(&mut out, s),
                Member::Int(v) => {
                    let _ = write!(out, "{v}");
                }
                Member::Raw(j) => out.push_str(j),
            }
        }
        out.push('}');
        out
    }
}

/// A JSON string as serde_json writes it: only `"`, `\` and control characters are escaped.
pub fn push_str(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_what_serde_json_prints() {
        let odd = "a\"b\\c\n\t\u{1}\u{7f}é😀</script>";
        let mut f = FlatJson::new();
        f.str("sub", "bench")
            .int("exp", 1_796_097_162)
            .str("aud", odd)
            .int("neg", -5)
            .str("", "")
            .raw(
                "userinfo",
                serde_json::to_string(&json!({"b": 1, "a": [odd]})).unwrap(),
            )
            .str("Zed", "upper sorts first")
            .str("sub", "last wins");
        let want = json!({
            "sub": "last wins",
            "exp": 1_796_097_162,
            "aud": odd,
            "neg": -5,
            "": "",
            "userinfo": {"b": 1, "a": [odd]},
            "Zed": "upper sorts first",
        });
        assert_eq!(f.finish(), serde_json::to_string(&want).unwrap());
        assert_eq!(FlatJson::new().finish(), "{}");
    }
}
