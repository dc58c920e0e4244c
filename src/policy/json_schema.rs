//! The `json-schema` engine (Aidbox): field `schema` holds a JSON Schema (draft-07,
//! <https://json-schema.org/draft-07/json-schema-validation>) that the policy request must
//! validate against.
//!
//! As in Aidbox, empty values are stripped from the request first: `null`, `""`, `[]` and `{}`
//! are removed, recursively, and a map or array left empty by that is removed too. So
//! `{"required": ["user"]}` fails for a request whose `user` is `null` or `{}`. The request is
//! not copied: every keyword looks at the request through a *stripped view* (a key whose value
//! is blank is absent, blank array elements are skipped and do not count), which costs nothing
//! for the usual non-empty values. Constants in `enum` and `const` are compared through the same
//! view.
//!
//! Supported: boolean schemas; `type` (one or an array; `integer` = a number with no fractional
//! part), `enum`, `const`; `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers,
//! the draft-06+ form; the draft-04 boolean form is a compile error), `multipleOf`;
//! `minLength`, `maxLength` (in characters), `pattern` (regex-lite, found anywhere, anchor with
//! `^…$`); `items` (one schema or a tuple), `additionalItems`, `contains`, `minItems`,
//! `maxItems`, `uniqueItems`; `properties`, `patternProperties`, `additionalProperties`,
//! `propertyNames`, `required`, `minProperties`, `maxProperties`, `dependencies` (array and
//! schema forms); `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`; `definitions` and local
//! `$ref` (`#` or a JSON pointer `#/...`, resolved at compile time; per draft-07 other keywords
//! next to `$ref` are ignored, so an assertion keyword beside a `$ref` is a compile error; wrap
//! the two in `allOf`). `$defs` is compiled like `definitions`.
//!
//! Fail closed: every other keyword is a compile error naming its path
//! (`schema.properties.user.requird`), unless it is a draft-07 annotation (`title`,
//! `description`, `$comment`, `default`, `examples`, `readOnly`, `writeOnly`, `$id`,
//! `$schema`). `format`, `contentMediaType` and `contentEncoding` are refused as unsupported
//! (a validator may skip them per draft-07, which would silently drop the restriction they
//! express; use `pattern`). Remote refs, `$id`-relative refs and plain-name fragments are
//! compile errors; `$id` is ignored on the root schema and a compile error on subschemas
//! (where it would change how `$ref`s resolve); a `$schema` naming draft 2019-09 or 2020-12
//! (whose keywords differ) is a compile error.
//!
//! Limits: schemas nest at most [`MAX_DEPTH`] levels (a `$ref` hop counts as a level, at compile
//! and at evaluation time); a `$ref` cycle with no keyword in between is a compile error. One
//! validation applies at most [`MAX_STEPS`] subschemas; a request that runs into either limit at
//! evaluation time is denied (even below a `not`).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use regex_lite::Regex;
use serde_json::{Map, Number, Value};

use super::value::num_cmp;
use super::{compile_regex, join, Ctx, Engine, PolicyError, Rule, MAX_DEPTH};

/// A compiled schema: an arena of nodes, the root at index 0. `$ref`s are indices, so recursive
/// schemas are plain cycles in the arena.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Bool(bool),
    Ref(usize),
    Keywords(Box<Keywords>),
}

/// Bit flags for `type`.
mod ty {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    pub const OBJECT: u8 = 4;
    pub const ARRAY: u8 = 8;
    pub const NUMBER: u8 = 16;
    pub const STRING: u8 = 32;
    pub const INTEGER: u8 = 64;
}

#[derive(Debug, Clone)]
enum Items {
    All(usize),
    Tuple(Vec<usize>),
}

#[derive(Debug, Clone)]
enum Dependency {
    Properties(Vec<String>),
    Schema(usize),
}

#[derive(Debug, Clone, Default)]
struct Keywords {
    types: Option<u8>,
    enumeration: Option<Vec<Value>>,
    constant: Option<Value>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    exclusive_minimum: Option<Number>,
    exclusive_maximum: Option<Number>,
    multiple_of: Option<Number>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<Regex>,
    items: Option<Items>,
    additional_items: Option<usize>,
    contains: Option<usize>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    properties: BTreeMap<String, usize>,
    pattern_properties: Vec<(Regex, usize)>,
    additional_properties: Option<usize>,
    property_names: Option<usize>,
    required: Vec<String>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    dependencies: Vec<(String, Dependency)>,
    all_of: Vec<usize>,
    any_of: Vec<usize>,
    one_of: Vec<usize>,
    not: Option<usize>,
    if_: Option<usize>,
    then_: Option<usize>,
    else_: Option<usize>,
}

#[derive(Debug)]
struct JsonSchema {
    schema: Schema,
}

impl Engine for JsonSchema {
    fn allows(&self, request: &Value) -> bool {
        self.schema.validate(request)
    }

    fn explain(&self, request: &Value) -> Value {
        if self.schema.validate(request) {
            return serde_json::json!({"result": true});
        }
        let (path, message, actual) = self.schema.first_error(request);
        serde_json::json!({"result": false, "error": {
            "path": path.join("."), "message": message, "actual": actual,
        }})
    }
}

/// Compiles a `json-schema` policy: field `schema` must be a draft-07 schema.
pub(crate) fn compile(body: &Map<String, Value>, ctx: Ctx<'_>) -> Result<Rule, PolicyError> {
    let path = ctx.path("schema");
    match body.get("schema") {
        None | Some(Value::Null) => Err(PolicyError::new(
            path,
            "a json-schema policy needs a `schema` (JSON Schema draft-07)",
        )),
        Some(schema) => Ok(Arc::new(JsonSchema {
            schema: Schema::compile(schema, &path)?,
        })),
    }
}

// ---------------------------------------------------------------------------------------------
// Stripped view of the instance.

/// Is `v` empty once stripped (`null`, `""`, or a container holding only such values)?
/// Past [`MAX_DEPTH`] levels a value counts as non-empty (and fails validation further on).
fn is_blank(v: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(|x| is_blank(x, depth + 1)),
        Value::Object(o) => o.values().all(|x| is_blank(x, depth + 1)),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

fn present(v: &Value) -> bool {
    !is_blank(v, 0)
}

fn items_of(a: &[Value]) -> impl Iterator<Item = &Value> + '_ {
    a.iter().filter(|v| present(v))
}

fn entries_of(o: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> + '_ {
    o.iter().filter(|(_, v)| present(v))
}

fn get_present<'v>(o: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    o.get(key).filter(|v| present(v))
}

/// Equality of two values as seen through the stripped view; numbers by value.
fn view_eq(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH || is_blank(a, depth) || is_blank(b, depth) {
        return false;
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            let (mut xs, mut ys) = (items_of(x), items_of(y));
            loop {
                match (xs.next(), ys.next()) {
                    (None, None) => return true,
                    (Some(x), Some(y)) if view_eq(x, y, depth + 1) => {}
                    _ => return false,
                }
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            entries_of(x).count() == entries_of(y).count()
                && entries_of(x)
                    .all(|(k, xv)| get_present(y, k).is_some_and(|yv| view_eq(xv, yv, depth + 1)))
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(std::cmp::Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => false,
    }
}

fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// draft-07 6.2.1: valid when `value / divisor` is an integer.
fn is_multiple_of(value: &Number, divisor: &Number) -> bool {
    if let (Some(v), Some(d)) = (value.as_i64(), divisor.as_i64()) {
        return d != 0 && v % d == 0;
    }
    if let (Some(v), Some(d)) = (value.as_u64(), divisor.as_u64()) {
        return d != 0 && v % d == 0;
    }
    match (value.as_f64(), divisor.as_f64()) {
        (Some(v), Some(d)) if d > 0.0 => {
            let q = v / d;
            if !q.is_finite() {
                // The quotient overflows (1e308 / 0.5): the remainder is still exact.
                return v.is_finite() && v % d == 0.0;
            }
            // Tolerate binary rounding (0.3 / 0.1 = 2.9999999999999996).
            (q - q.round()).abs() <= 1e-9 * q.abs().max(1.0)
        }
        _ => false,
    }
}

fn count_le(count: usize, limit: u64) -> bool {
    u64::try_from(count).is_ok_and(|c| c <= limit)
}

fn count_ge(count: usize, limit: u64) -> bool {
    u64::try_from(count).is_ok_and(|c| c >= limit)
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Most subschema applications (and `uniqueItems` comparisons) one validation may make. Recursive `$ref`s under `anyOf`/`oneOf`
/// branch, so a small schema can ask for 2^32 steps before [`MAX_DEPTH`] stops it; past this
/// budget the request is denied instead.
const MAX_STEPS: u32 = 1_000_000;

/// One validation: the schema, the steps left, and whether a limit was hit.
struct Run<'s> {
    schema: &'s Schema,
    steps_left: Cell<u32>,
    /// Set when [`MAX_DEPTH`] or [`MAX_STEPS`] cut the walk short. The answer is then "deny",
    /// whatever the cut-short branch returned: a `not` around it must not turn it into "allow".
    cut_short: Cell<bool>,
}

impl Schema {
    /// Validates the policy request (stripped of empty values) against the schema. A request
    /// that takes the schema past [`MAX_DEPTH`] or [`MAX_STEPS`] does not validate.
    pub(crate) fn validate(&self, request: &Value) -> bool {
        let run = Run {
            schema: self,
            steps_left: Cell::new(MAX_STEPS),
            cut_short: Cell::new(false),
        };
        let ok = if present(request) {
            run.valid(0, request, 0)
        } else {
            // Everything was stripped: validate the empty map the request became.
            run.valid(0, &Value::Object(Map::new()), 0)
        };
        ok && !run.cut_short.get()
    }
}

// ---- explanations (the policy tester; never on the hot path) ----

impl Schema {
    /// Validates `v` against node `node` alone, with a budget of its own.
    fn valid_alone(&self, node: usize, v: &Value) -> bool {
        let run = Run {
            schema: self,
            steps_left: Cell::new(MAX_STEPS),
            cut_short: Cell::new(false),
        };
        run.valid(node, v, 0) && !run.cut_short.get()
    }

    /// For a request that does not validate: the deepest property path whose value the
    /// schema rejects (following `properties` and `required` down from the root, with the same
    /// validation as [`Schema::validate`]), a message, and the value found there.
    fn first_error(&self, request: &Value) -> (Vec<String>, String, Value) {
        let empty = Value::Object(Map::new());
        let mut v = if present(request) { request } else { &empty };
        let mut node = 0;
        let mut path = Vec::new();
        'descend: for _ in 0..=MAX_DEPTH {
            match self.nodes.get(node) {
                Some(Node::Ref(target)) => {
                    node = *target;
                    continue;
                }
                Some(Node::Keywords(k)) => {
                    if let Value::Object(o) = v {
                        if let Some(missing) =
                            k.required.iter().find(|r| get_present(o, r).is_none())
                        {
                            path.push(missing.clone());
                            return (path, "required, but missing or empty".into(), Value::Null);
                        }
                        for (key, val) in entries_of(o) {
                            if let Some(s) = k.properties.get(key) {
                                if !self.valid_alone(*s, val) {
                                    path.push(key.clone());
                                    node = *s;
                                    v = val;
                                    continue 'descend;
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
            break;
        }
        let at = if path.is_empty() {
            "the request".to_string()
        } else {
            "this value".to_string()
        };
        (
            path,
            format!("{at} does not satisfy the schema here"),
            v.clone(),
        )
    }
}

impl Run<'_> {
    /// Takes one step of the budget; false (and the run is cut short) when none is left.
    fn spend(&self) -> bool {
        match self.steps_left.get() {
            0 => {
                self.cut_short.set(true);
                false
            }
            left => {
                self.steps_left.set(left - 1);
                true
            }
        }
    }

    /// `v` is present (non-blank) here.
    fn valid(&self, node: usize, v: &Value, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            self.cut_short.set(true);
            return false;
        }
        if self.cut_short.get() || !self.spend() {
            return false;
        }
        match self.schema.nodes.get(node) {
            Some(Node::Bool(b)) => *b,
            Some(Node::Ref(target)) => self.valid(*target, v, depth + 1),
            Some(Node::Keywords(k)) => self.keywords(k, v, depth),
            None => false,
        }
    }

    fn keywords(&self, k: &Keywords, v: &Value, depth: usize) -> bool {
        let d = depth + 1;
        if let Some(types) = k.types {
            let ok = match v {
                Value::Null => types & ty::NULL != 0,
                Value::Bool(_) => types & ty::BOOLEAN != 0,
                Value::Object(_) => types & ty::OBJECT != 0,
                Value::Array(_) => types & ty::ARRAY != 0,
                Value::String(_) => types & ty::STRING != 0,
                Value::Number(n) => {
                    types & ty::NUMBER != 0 || (types & ty::INTEGER != 0 && is_integer(n))
                }
            };
            if !ok {
                return false;
            }
        }
        if let Some(options) = &k.enumeration {
            if !options.iter().any(|o| view_eq(v, o, d)) {
                return false;
            }
        }
        if let Some(c) = &k.constant {
            if !view_eq(v, c, d) {
                return false;
            }
        }
        let ok = match v {
            Value::Number(n) => self.number(k, n),
            Value::String(s) => self.string(k, s),
            Value::Array(a) => self.array(k, a, d),
            Value::Object(o) => self.object(k, v, o, d),
            Value::Null | Value::Bool(_) => true,
        };
        ok && self.combinators(k, v, d)
    }

    fn number(&self, k: &Keywords, n: &Number) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let cmp = |limit: &Option<Number>, ok: &[std::cmp::Ordering]| {
            limit
                .as_ref()
                .is_none_or(|l| num_cmp(n, l).is_some_and(|o| ok.contains(&o)))
        };
        cmp(&k.minimum, &[Greater, Equal])
            && cmp(&k.maximum, &[Less, Equal])
            && cmp(&k.exclusive_minimum, &[Greater])
            && cmp(&k.exclusive_maximum, &[Less])
            && k.multiple_of.as_ref().is_none_or(|m| is_multiple_of(n, m))
    }

    fn string(&self, k: &Keywords, s: &str) -> bool {
        if k.min_length.is_some() || k.max_length.is_some() {
            let len = s.chars().count();
            if !k.min_length.is_none_or(|m| count_ge(len, m))
                || !k.max_length.is_none_or(|m| count_le(len, m))
            {
                return false;
            }
        }
        k.pattern.as_ref().is_none_or(|re| re.is_match(s))
    }

    fn array(&self, k: &Keywords, a: &[Value], d: usize) -> bool {
        if k.min_items.is_some() || k.max_items.is_some() {
            let len = items_of(a).count();
            if !k.min_items.is_none_or(|m| count_ge(len, m))
                || !k.max_items.is_none_or(|m| count_le(len, m))
            {
                return false;
            }
        }
        let items_ok = match &k.items {
            None => true,
            Some(Items::All(s)) => items_of(a).all(|x| self.valid(*s, x, d)),
            Some(Items::Tuple(list)) => {
                items_of(a)
                    .enumerate()
                    .all(|(i, x)| match (list.get(i), k.additional_items) {
                        (Some(s), _) => self.valid(*s, x, d),
                        (None, Some(s)) => self.valid(s, x, d),
                        (None, None) => true,
                    })
            }
        };
        if !items_ok {
            return false;
        }
        if let Some(s) = k.contains {
            if !items_of(a).any(|x| self.valid(s, x, d)) {
                return false;
            }
        }
        if k.unique_items {
            for (i, x) in items_of(a).enumerate() {
                // Pairwise: quadratic in the request's array, so each comparison is a step.
                if items_of(a)
                    .skip(i + 1)
                    .any(|y| !self.spend() || view_eq(x, y, d))
                {
                    return false;
                }
            }
        }
        true
    }

    fn object(&self, k: &Keywords, v: &Value, o: &Map<String, Value>, d: usize) -> bool {
        if !k.required.iter().all(|r| get_present(o, r).is_some()) {
            return false;
        }
        if k.min_properties.is_some() || k.max_properties.is_some() {
            let len = entries_of(o).count();
            if !k.min_properties.is_none_or(|m| count_ge(len, m))
                || !k.max_properties.is_none_or(|m| count_le(len, m))
            {
                return false;
            }
        }
        let per_key = !k.properties.is_empty()
            || !k.pattern_properties.is_empty()
            || k.additional_properties.is_some()
            || k.property_names.is_some();
        if per_key {
            for (key, val) in entries_of(o) {
                let mut matched = false;
                if let Some(s) = k.properties.get(key) {
                    matched = true;
                    if !self.valid(*s, val, d) {
                        return false;
                    }
                }
                for (re, s) in &k.pattern_properties {
                    if re.is_match(key) {
                        matched = true;
                        if !self.valid(*s, val, d) {
                            return false;
                        }
                    }
                }
                if let (false, Some(s)) = (matched, k.additional_properties) {
                    if !self.valid(s, val, d) {
                        return false;
                    }
                }
                if let Some(s) = k.property_names {
                    // Property names are strings; an empty name would be blank, so skip it.
                    if !key.is_empty() && !self.valid(s, &Value::String(key.clone()), d) {
                        return false;
                    }
                }
            }
        }
        k.dependencies.iter().all(|(key, dep)| {
            get_present(o, key).is_none()
                || match dep {
                    Dependency::Properties(names) => {
                        names.iter().all(|n| get_present(o, n).is_some())
                    }
                    Dependency::Schema(s) => self.valid(*s, v, d),
                }
        })
    }

    fn combinators(&self, k: &Keywords, v: &Value, d: usize) -> bool {
        if !k.all_of.iter().all(|s| self.valid(*s, v, d)) {
            return false;
        }
        if !k.any_of.is_empty() && !k.any_of.iter().any(|s| self.valid(*s, v, d)) {
            return false;
        }
        if !k.one_of.is_empty() {
            let mut passed = 0;
            for s in &k.one_of {
                if self.valid(*s, v, d) {
                    passed += 1;
                    if passed > 1 {
                        return false;
                    }
                }
            }
            if passed != 1 {
                return false;
            }
        }
        if let Some(s) = k.not {
            if self.valid(s, v, d) {
                return false;
            }
        }
        if let Some(cond) = k.if_ {
            let branch = if self.valid(cond, v, d) {
                k.then_
            } else {
                k.else_
            };
            if let Some(s) = branch {
                if !self.valid(s, v, d) {
                    return false;
                }
            }
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Compilation.

impl Schema {
    /// Compiles a draft-07 schema; `path` is its dotted path in the policy body (`"schema"`).
    pub(crate) fn compile(root: &Value, path: &str) -> Result<Schema, PolicyError> {
        let mut c = Compiler {
            root,
            base: path,
            nodes: Vec::new(),
            by_pointer: BTreeMap::new(),
        };
        let root_index = c.schema(root, &mut Vec::new(), 0)?;
        debug_assert_eq!(root_index, 0);
        c.check_ref_cycles()?;
        Ok(Schema { nodes: c.nodes })
    }
}

/// The draft-07 assertion and applicator keywords this engine implements (everything in
/// draft-07 validation sections 6 and the core applicators, except those in
/// [`UNSUPPORTED_KEYWORDS`]). `$ref` is handled on its own.
const ASSERTION_KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "items",
    "additionalItems",
    "maxItems",
    "minItems",
    "uniqueItems",
    "contains",
    "maxProperties",
    "minProperties",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
    "dependencies",
    "propertyNames",
    "if",
    "then",
    "else",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

/// draft-07 keywords that assert nothing (draft-07 core 8-9, validation 10): accepted and
/// ignored. `$schema` (checked: not a later draft), and the schema containers `definitions`
/// and `$defs` (compiled) are accepted too.
const ANNOTATION_KEYWORDS: &[&str] = &[
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "readOnly",
    "writeOnly",
];

/// draft-07 keywords that can assert but are not implemented here, and why: refused when a
/// policy is written rather than silently ignored (draft-07 7.2 and 8 let a validator skip
/// them, which would let a request through that the author meant to refuse).
const UNSUPPORTED_KEYWORDS: &[(&str, &str)] = &[
    (
        "format",
        "format values are not validated here; use `pattern` with a regular expression",
    ),
    (
        "contentMediaType",
        "string contents are not decoded or parsed here; use `pattern`",
    ),
    (
        "contentEncoding",
        "string contents are not decoded here; use `pattern`",
    ),
];

struct Compiler<'s> {
    root: &'s Value,
    /// Dotted path of the root schema in the policy body.
    base: &'s str,
    nodes: Vec<Node>,
    /// Compiled subschemas by JSON-pointer location (decoded segments), for `$ref`.
    by_pointer: BTreeMap<Vec<String>, usize>,
}

impl Compiler<'_> {
    fn path(&self, segments: &[String]) -> String {
        segments
            .iter()
            .fold(self.base.to_owned(), |acc, s| join(&acc, s))
    }

    fn err(&self, segments: &[String], message: impl Into<String>) -> PolicyError {
        PolicyError::new(self.path(segments), message)
    }

    /// Compiles the subschema `v` found at `at` (pointer segments from the root) and returns
    /// its node index. `depth` counts nesting plus `$ref` hops.
    fn schema(
        &mut self,
        v: &Value,
        at: &mut Vec<String>,
        depth: usize,
    ) -> Result<usize, PolicyError> {
        if let Some(&index) = self.by_pointer.get(at.as_slice()) {
            return Ok(index);
        }
        if depth > MAX_DEPTH {
            return Err(self.err(
                at,
                format!("schema nested more than {MAX_DEPTH} levels (counting $ref hops)"),
            ));
        }
        let index = self.nodes.len();
        self.nodes.push(Node::Bool(false)); // placeholder, filled below
        self.by_pointer.insert(at.clone(), index);
        let node = match v {
            Value::Bool(b) => Node::Bool(*b),
            Value::Object(obj) => {
                // A base-changing $id below the root would make "#/..." refs inside it resolve
                // against that subschema; rather than resolve them wrongly, refuse it.
                let rebases = obj
                    .get("$id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| !id.starts_with('#'));
                if rebases && !at.is_empty() {
                    at.push("$id".to_owned());
                    return Err(self.err(at, "$id is only supported on the root schema"));
                }
                if let Some(r) = obj.get("$ref") {
                    // draft-07 8.3: every other keyword next to `$ref` is ignored. A restriction
                    // written there would silently not apply, so only annotations may stand
                    // beside it.
                    for (key, v) in obj.iter().filter(|(k, _)| k.as_str() != "$ref") {
                        if ASSERTION_KEYWORDS.contains(&key.as_str()) {
                            at.push(key.clone());
                            return Err(self.err(
                                at,
                                format!(
                                    "`{key}` next to `$ref` would be ignored (draft-07 8.3); \
                                     combine them with allOf: [{{\"$ref\": ...}}, {{\"{key}\": ...}}]"
                                ),
                            ));
                        }
                        self.check_non_assertion(key, v, at)?;
                    }
                    at.push("$ref".to_owned());
                    let target = self.reference(r, at, depth)?;
                    at.pop();
                    // Compile definitions next to a $ref anyway, so errors in them surface.
                    self.definitions(obj, at, depth)?;
                    Node::Ref(target)
                } else {
                    Node::Keywords(Box::new(self.keywords(obj, at, depth)?))
                }
            }
            _ => return Err(self.err(at, "a schema must be an object or a boolean")),
        };
        if let Some(slot) = self.nodes.get_mut(index) {
            *slot = node;
        }
        Ok(index)
    }

    /// Resolves a local `$ref` (at is the path of the `$ref` keyword itself).
    fn reference(
        &mut self,
        r: &Value,
        at: &mut [String],
        depth: usize,
    ) -> Result<usize, PolicyError> {
        let Some(r) = r.as_str() else {
            return Err(self.err(at, "$ref must be a string"));
        };
        let Some(fragment) = r.strip_prefix('#') else {
            return Err(self.err(
                at,
                format!("$ref {r:?}: only local references (\"#\" or \"#/definitions/...\") are supported at the edge"),
            ));
        };
        let fragment = percent_decode(fragment)
            .ok_or_else(|| self.err(at, format!("$ref {r:?}: bad percent-encoding")))?;
        let mut target_at = Vec::new();
        if !fragment.is_empty() {
            let Some(pointer) = fragment.strip_prefix('/') else {
                return Err(self.err(
                    at,
                    format!("$ref {r:?}: plain-name fragments are not supported; use a JSON pointer like #/definitions/name"),
                ));
            };
            for seg in pointer.split('/') {
                target_at.push(seg.replace("~1", "/").replace("~0", "~"));
            }
        }
        let mut target = self.root;
        for seg in &target_at {
            let next = match target {
                Value::Object(o) => o.get(seg),
                Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            target = next.ok_or_else(|| self.err(at, format!("$ref {r:?} points at nothing")))?;
        }
        self.schema(target, &mut target_at, depth + 1)
    }

    /// A keyword that asserts nothing: a container of schemas (`definitions`, `$defs`,
    /// compiled by [`Compiler::definitions`]) or a draft-07 annotation. Anything else is
    /// refused: an unknown keyword (a typo such as `requird`) or one we do not implement would
    /// otherwise silently drop the restriction it was meant to add (fail closed).
    fn check_non_assertion(
        &self,
        key: &str,
        v: &Value,
        at: &mut Vec<String>,
    ) -> Result<(), PolicyError> {
        let refuse = |at: &mut Vec<String>, message: String| {
            at.push(key.to_owned());
            let e = self.err(at, message);
            at.pop();
            Err(e)
        };
        if let Some((_, why)) = UNSUPPORTED_KEYWORDS.iter().find(|(k, _)| *k == key) {
            return refuse(at, format!("`{key}` is not supported at the edge: {why}"));
        }
        if key == "$schema" {
            return match v.as_str() {
                Some(uri) if uri.contains("2019-09") || uri.contains("2020-12") => refuse(
                    at,
                    format!("$schema {uri:?}: only JSON Schema draft-07 is supported"),
                ),
                Some(_) => Ok(()),
                None => refuse(at, "$schema must be a string (a URI)".into()),
            };
        }
        if key == "definitions" || key == "$defs" || ANNOTATION_KEYWORDS.contains(&key) {
            return Ok(());
        }
        refuse(
            at,
            format!(
                "unknown JSON Schema keyword `{key}`; supported (draft-07): {}; annotations: {}",
                ASSERTION_KEYWORDS.join(", "),
                ANNOTATION_KEYWORDS.join(", ")
            ),
        )
    }

    fn definitions(
        &mut self,
        obj: &Map<String, Value>,
        at: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), PolicyError> {
        for container in ["definitions", "$defs"] {
            self.definitions_in(obj, container, at, depth)?;
        }
        Ok(())
    }

    /// Compiles the schemas of one container (`definitions` or `$defs`), so errors in them
    /// surface even when no `$ref` points at them.
    fn definitions_in(
        &mut self,
        obj: &Map<String, Value>,
        container: &str,
        at: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), PolicyError> {
        if let Some(defs) = obj.get(container) {
            at.push(container.to_owned());
            let Some(defs) = defs.as_object() else {
                return Err(self.err(at, format!("{container} must be an object of schemas")));
            };
            for (name, sub) in defs {
                at.push(name.clone());
                self.schema(sub, at, depth + 1)?;
                at.pop();
            }
            at.pop();
        }
        Ok(())
    }

    /// Compiles the subschema under keyword `key` of the current schema.
    fn sub(
        &mut self,
        v: &Value,
        at: &mut Vec<String>,
        key: &str,
        depth: usize,
    ) -> Result<usize, PolicyError> {
        at.push(key.to_owned());
        let r = self.schema(v, at, depth + 1);
        at.pop();
        r
    }

    /// A non-empty array of subschemas (allOf, anyOf, oneOf).
    fn sub_list(
        &mut self,
        v: &Value,
        at: &mut Vec<String>,
        key: &str,
        depth: usize,
    ) -> Result<Vec<usize>, PolicyError> {
        at.push(key.to_owned());
        let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
            return Err(self.err(at, format!("{key} must be a non-empty array of schemas")));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            at.push(i.to_string());
            out.push(self.schema(item, at, depth + 1)?);
            at.pop();
        }
        at.pop();
        Ok(out)
    }

    /// An object of subschemas (properties, patternProperties): `(key, node)` pairs.
    fn sub_map(
        &mut self,
        v: &Value,
        at: &mut Vec<String>,
        key: &str,
        depth: usize,
    ) -> Result<Vec<(String, usize)>, PolicyError> {
        at.push(key.to_owned());
        let Some(map) = v.as_object() else {
            return Err(self.err(at, format!("{key} must be an object of schemas")));
        };
        let mut out = Vec::with_capacity(map.len());
        for (name, sub) in map {
            at.push(name.clone());
            out.push((name.clone(), self.schema(sub, at, depth + 1)?));
            at.pop();
        }
        at.pop();
        Ok(out)
    }

    fn non_negative(&self, v: &Value, at: &mut Vec<String>, key: &str) -> Result<u64, PolicyError> {
        let n = v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        });
        n.ok_or_else(|| {
            at.push(key.to_owned());
            let e = self.err(at, format!("{key} must be a non-negative integer"));
            at.pop();
            e
        })
    }

    fn number(&self, v: &Value, at: &mut Vec<String>, key: &str) -> Result<Number, PolicyError> {
        match v {
            Value::Number(n) => Ok(n.clone()),
            Value::Bool(_) if key.starts_with("exclusive") => {
                at.push(key.to_owned());
                let e = self.err(at, format!("{key} must be a number (draft-07); the draft-04 boolean form is not supported"));
                at.pop();
                Err(e)
            }
            _ => {
                at.push(key.to_owned());
                let e = self.err(at, format!("{key} must be a number"));
                at.pop();
                Err(e)
            }
        }
    }

    fn strings(
        &self,
        v: &Value,
        at: &mut Vec<String>,
        key: &str,
    ) -> Result<Vec<String>, PolicyError> {
        at.push(key.to_owned());
        let Some(items) = v.as_array() else {
            return Err(self.err(at, format!("{key} must be an array of strings")));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(s) = item.as_str() else {
                at.push(i.to_string());
                return Err(self.err(at, format!("{key} must be an array of strings")));
            };
            out.push(s.to_owned());
        }
        at.pop();
        Ok(out)
    }

    fn types(&self, v: &Value, at: &mut Vec<String>) -> Result<u8, PolicyError> {
        at.push("type".to_owned());
        let one = |s: &Value, at: &[String]| -> Result<u8, PolicyError> {
            Ok(match s.as_str() {
                Some("null") => ty::NULL,
                Some("boolean") => ty::BOOLEAN,
                Some("object") => ty::OBJECT,
                Some("array") => ty::ARRAY,
                Some("number") => ty::NUMBER,
                Some("string") => ty::STRING,
                Some("integer") => ty::INTEGER,
                _ => {
                    return Err(self.err(
                        at,
                        format!("unknown type {s}; use null, boolean, object, array, number, string or integer"),
                    ))
                }
            })
        };
        let mask = match v {
            Value::Array(list) => {
                let mut mask = 0;
                for (i, s) in list.iter().enumerate() {
                    at.push(i.to_string());
                    mask |= one(s, at)?;
                    at.pop();
                }
                mask
            }
            other => one(other, at)?,
        };
        at.pop();
        Ok(mask)
    }

    fn regex(&self, v: &Value, at: &mut Vec<String>, key: &str) -> Result<Regex, PolicyError> {
        at.push(key.to_owned());
        let r = match v.as_str() {
            Some(src) => compile_regex(src, &self.path(at)),
            None => Err(self.err(at, format!("{key} must be a string (a regular expression)"))),
        };
        at.pop();
        r
    }

    fn keywords(
        &mut self,
        obj: &Map<String, Value>,
        at: &mut Vec<String>,
        depth: usize,
    ) -> Result<Keywords, PolicyError> {
        let mut k = Keywords::default();
        for (key, v) in obj {
            match key.as_str() {
                "type" => k.types = Some(self.types(v, at)?),
                "enum" => match v {
                    Value::Array(items) => k.enumeration = Some(items.clone()),
                    _ => {
                        at.push(key.clone());
                        return Err(self.err(at, "enum must be an array"));
                    }
                },
                "const" => k.constant = Some(v.clone()),
                "minimum" => k.minimum = Some(self.number(v, at, key)?),
                "maximum" => k.maximum = Some(self.number(v, at, key)?),
                "exclusiveMinimum" => k.exclusive_minimum = Some(self.number(v, at, key)?),
                "exclusiveMaximum" => k.exclusive_maximum = Some(self.number(v, at, key)?),
                "multipleOf" => {
                    let n = self.number(v, at, key)?;
                    if !n.as_f64().is_some_and(|f| f > 0.0) {
                        at.push(key.clone());
                        return Err(self.err(at, "multipleOf must be greater than 0"));
                    }
                    k.multiple_of = Some(n);
                }
                "minLength" => k.min_length = Some(self.non_negative(v, at, key)?),
                "maxLength" => k.max_length = Some(self.non_negative(v, at, key)?),
                "pattern" => k.pattern = Some(self.regex(v, at, key)?),
                "items" => {
                    k.items = Some(match v {
                        Value::Array(_) => {
                            Items::Tuple(self.sub_list_allow_empty(v, at, key, depth)?)
                        }
                        _ => Items::All(self.sub(v, at, key, depth)?),
                    })
                }
                "additionalItems" => k.additional_items = Some(self.sub(v, at, key, depth)?),
                "contains" => k.contains = Some(self.sub(v, at, key, depth)?),
                "minItems" => k.min_items = Some(self.non_negative(v, at, key)?),
                "maxItems" => k.max_items = Some(self.non_negative(v, at, key)?),
                "uniqueItems" => match v {
                    Value::Bool(b) => k.unique_items = *b,
                    _ => {
                        at.push(key.clone());
                        return Err(self.err(at, "uniqueItems must be a boolean"));
                    }
                },
                "properties" => {
                    k.properties = self.sub_map(v, at, key, depth)?.into_iter().collect()
                }
                "patternProperties" => {
                    let subs = self.sub_map(v, at, key, depth)?;
                    at.push(key.clone());
                    for (name, node) in subs {
                        at.push(name.clone());
                        let re = compile_regex(&name, &self.path(at))?;
                        at.pop();
                        k.pattern_properties.push((re, node));
                    }
                    at.pop();
                }
                "additionalProperties" => {
                    k.additional_properties = Some(self.sub(v, at, key, depth)?)
                }
                "propertyNames" => k.property_names = Some(self.sub(v, at, key, depth)?),
                "required" => k.required = self.strings(v, at, key)?,
                "minProperties" => k.min_properties = Some(self.non_negative(v, at, key)?),
                "maxProperties" => k.max_properties = Some(self.non_negative(v, at, key)?),
                "dependencies" => {
                    at.push(key.clone());
                    let Some(deps) = v.as_object() else {
                        return Err(self.err(at, "dependencies must be an object"));
                    };
                    for (name, dep) in deps {
                        let dep = match dep {
                            Value::Array(_) => Dependency::Properties(self.strings(dep, at, name)?),
                            _ => Dependency::Schema(self.sub(dep, at, name, depth)?),
                        };
                        k.dependencies.push((name.clone(), dep));
                    }
                    at.pop();
                }
                "allOf" => k.all_of = self.sub_list(v, at, key, depth)?,
                "anyOf" => k.any_of = self.sub_list(v, at, key, depth)?,
                "oneOf" => k.one_of = self.sub_list(v, at, key, depth)?,
                "not" => k.not = Some(self.sub(v, at, key, depth)?),
                "if" => k.if_ = Some(self.sub(v, at, key, depth)?),
                "then" => k.then_ = Some(self.sub(v, at, key, depth)?),
                "else" => k.else_ = Some(self.sub(v, at, key, depth)?),
                // Containers compiled below, and pure annotations.
                other => self.check_non_assertion(other, v, at)?,
            }
        }
        self.definitions(obj, at, depth)?;
        Ok(k)
    }

    /// `items` as a tuple may be empty (then every element is an additional item).
    fn sub_list_allow_empty(
        &mut self,
        v: &Value,
        at: &mut Vec<String>,
        key: &str,
        depth: usize,
    ) -> Result<Vec<usize>, PolicyError> {
        if v.as_array().is_some_and(|a| a.is_empty()) {
            return Ok(Vec::new());
        }
        self.sub_list(v, at, key, depth)
    }

    /// A `$ref` chain that comes back to itself without any keyword in between would loop
    /// forever at evaluation time; reject it.
    fn check_ref_cycles(&self) -> Result<(), PolicyError> {
        for start in 0..self.nodes.len() {
            let mut cur = start;
            let mut hops = 0;
            while let Some(Node::Ref(next)) = self.nodes.get(cur) {
                cur = *next;
                hops += 1;
                if cur == start || hops > self.nodes.len() {
                    let at = self
                        .by_pointer
                        .iter()
                        .find(|(_, &i)| i == start)
                        .map(|(p, _)| p.clone())
                        .unwrap_or_default();
                    return Err(self.err(&at, "$ref cycle: the reference resolves to itself"));
                }
            }
        }
        Ok(())
    }
}

/// Decodes `%XX` escapes in a URI fragment (RFC 3986); `None` on malformed escapes or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid(schema: Value, v: Value) -> bool {
        Schema::compile(&schema, "schema")
            .expect("schema compiles")
            .validate(&v)
    }

    #[test]
    fn blank_detection() {
        assert!(is_blank(&json!({"a": [null, "", {}], "b": {"c": []}}), 0));
        assert!(!is_blank(&json!({"a": [null, 0]}), 0));
        assert!(!is_blank(&json!(false), 0));
    }

    #[test]
    fn view_equality_ignores_blanks() {
        assert!(view_eq(&json!({"a": 1, "b": null}), &json!({"a": 1.0}), 0));
        assert!(view_eq(&json!([1, "", 2]), &json!([1, 2]), 0));
        assert!(!view_eq(&json!([1, 2]), &json!([2, 1]), 0));
        assert!(!view_eq(&json!(""), &json!(""), 0));
    }

    #[test]
    fn multiple_of_floats() {
        assert!(valid(json!({"multipleOf": 0.1}), json!(0.3)));
        assert!(!valid(json!({"multipleOf": 0.1}), json!(0.35)));
        assert!(valid(json!({"multipleOf": 3}), json!(-9)));
        assert!(valid(json!({"multipleOf": 0.5}), json!(1e308)));
        assert!(!valid(json!({"multipleOf": 3}), json!(10)));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/a%2").as_deref(), None);
        assert_eq!(percent_decode("/a%zz").as_deref(), None);
    }

    #[test]
    fn ref_cycle_rejected() {
        let s = json!({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}});
        assert!(Schema::compile(&s, "schema").is_err());
        let s = json!({"$ref": "#"});
        assert!(Schema::compile(&s, "schema").is_err());
    }

    #[test]
    fn recursive_schema_terminates_on_deep_data() {
        let s = json!({"type": "object", "properties": {"a": {"$ref": "#"}}});
        let mut v = json!({"z": 1});
        for _ in 0..100 {
            v = json!({"a": v});
        }
        assert!(!valid(s.clone(), v));
        assert!(valid(s, json!({"a": {"a": {"z": 1}}})));
    }
}
