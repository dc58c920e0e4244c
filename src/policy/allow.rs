//! The `allow` engine (Aidbox): the policy allows every request it applies to. Combined with
//! `link` it grants a client or user full access: `{"engine": "allow", "link": [...]}`.

use serde_json::{Map, Value};

use super::{Ctx, Engine, PolicyError, Rule};

/// Always allows.
#[derive(Debug)]
struct Allow;

impl Engine for Allow {
    fn allows(&self, _request: &Value) -> bool {
        true
    }
}

/// Compiles an `allow` policy; it has no fields of its own.
pub(crate) fn compile(_body: &Map<String, Value>, _ctx: Ctx<'_>) -> Result<Rule, PolicyError> {
    Ok(std::sync::Arc::new(Allow))
}
