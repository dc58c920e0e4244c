//! SMART on FHIR: the scope grammar ([`scopes`]) and the mapping of a FHIR REST request to the
//! SMART permission it needs ([`classify`]). The `smart-on-fhir` AccessPolicy engine
//! (`policy/smart.rs`) combines the two.
//!
//! Interactions (FHIR RESTful API, <https://hl7.org/fhir/http.html>) and the SMART v2
//! permission each needs (SMART App Launch 2.x, "Scopes for requesting FHIR resources",
//! <https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html>):
//!
//! | request | interaction | needs |
//! |---|---|---|
//! | `GET /T/id` | read | `r` |
//! | `GET /T/id/_history/vid` | vread | `r` |
//! | `GET /T/id/_history` | history (instance) | `r` |
//! | `GET /T/_history` | history (type) | `r` |
//! | `GET /T[?…]`, `POST /T/_search` | search (type) | `s` |
//! | `POST /T` | create | `c` |
//! | `PUT /T/id`, `PUT /T?…` (conditional) | update | `u` |
//! | `PATCH /T/id`, `PATCH /T?…` (conditional) | patch | `u` |
//! | `DELETE /T/id`, `DELETE /T?…` (conditional) | delete | `d` |
//! | `GET /metadata` | capabilities | nothing |
//!
//! The resource types of this server's admin API (`Client`, `User`, `AccessPolicy`,
//! `TokenIntrospector` and the names reserved for later ones, [`crate::model::is_server_type`])
//! are not FHIR types: [`classify`] returns `None` for every request on them, whatever the
//! interaction (`_history`, `_search`, `$operation` included).
//!
//! `HEAD` is treated as `GET`. Everything else (system-level `/` and `/_history`, `$operations`,
//! compartment searches `/Patient/id/Observation`, batches) is not covered by SMART scopes:
//! [`classify`] returns `None`, and the engine denies it (another policy may allow it).

pub mod scopes;

pub use scopes::{
    format, is_resource_type, parse, parse_strict, ClinicalScope, Level, Permissions, Scope,
    ScopeError, Syntax,
};

/// A FHIR RESTful interaction (<https://hl7.org/fhir/http.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `GET /T/id`.
    Read,
    /// `GET /T/id/_history/vid`.
    Vread,
    /// `GET /T/id/_history`.
    HistoryInstance,
    /// `GET /T/_history`.
    HistoryType,
    /// `GET /T?…` or `POST /T/_search`.
    Search,
    /// `POST /T`.
    Create,
    /// `PUT /T/id`.
    Update,
    /// `PUT /T?criteria`.
    ConditionalUpdate,
    /// `PATCH /T/id`.
    Patch,
    /// `PATCH /T?criteria`.
    ConditionalPatch,
    /// `DELETE /T/id`.
    Delete,
    /// `DELETE /T?criteria`.
    ConditionalDelete,
    /// `GET /metadata`.
    Capabilities,
}

impl Interaction {
    /// The SMART permission the interaction needs; [`Permissions::NONE`] for `capabilities`.
    pub fn permission(self) -> Permissions {
        match self {
            Interaction::Read
            | Interaction::Vread
            | Interaction::HistoryInstance
            | Interaction::HistoryType => Permissions::READ,
            Interaction::Search => Permissions::SEARCH,
            Interaction::Create => Permissions::CREATE,
            Interaction::Update
            | Interaction::ConditionalUpdate
            | Interaction::Patch
            | Interaction::ConditionalPatch => Permissions::UPDATE,
            Interaction::Delete | Interaction::ConditionalDelete => Permissions::DELETE,
            Interaction::Capabilities => Permissions::NONE,
        }
    }
}

/// A classified FHIR REST request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestRequest<'a> {
    /// What the request does.
    pub interaction: Interaction,
    /// The resource type (first path segment); empty for `capabilities`.
    pub resource_type: &'a str,
    /// The logical id for instance-level interactions.
    pub id: Option<&'a str>,
    /// True for `POST /T/_search` (its parameters are in the body).
    pub post_search: bool,
}

/// Maps a request to its FHIR interaction: `method` is case-insensitive, `path` is relative to
/// the FHIR base (no query), `has_query` says whether the request carries query parameters
/// (it turns `PUT`/`PATCH`/`DELETE /T` into their conditional forms). `None` when the request
/// is not a type- or instance-level interaction SMART scopes can cover, and for every request
/// on a type of this server's admin API.
pub fn classify<'a>(method: &str, path: &'a str, has_query: bool) -> Option<RestRequest<'a>> {
    let method = method.to_ascii_lowercase();
    let method = if method == "head" { "get" } else { &method };
    let path = path.strip_prefix('/').unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    if segs.as_slice() == ["metadata"] && method == "get" {
        return Some(RestRequest {
            interaction: Interaction::Capabilities,
            resource_type: "",
            id: None,
            post_search: false,
        });
    }
    let (&ty, rest) = segs.split_first()?;
    if !is_resource_type(ty) || crate::model::is_server_type(ty) {
        return None;
    }
    let at = |interaction, id| {
        Some(RestRequest {
            interaction,
            resource_type: ty,
            id,
            post_search: false,
        })
    };
    match (method, rest) {
        ("get", []) => at(Interaction::Search, None),
        ("post", []) => at(Interaction::Create, None),
        ("put", []) if has_query => at(Interaction::ConditionalUpdate, None),
        ("patch", []) if has_query => at(Interaction::ConditionalPatch, None),
        ("delete", []) if has_query => at(Interaction::ConditionalDelete, None),
        ("post", ["_search"]) => Some(RestRequest {
            interaction: Interaction::Search,
            resource_type: ty,
            id: None,
            post_search: true,
        }),
        ("get", ["_history"]) => at(Interaction::HistoryType, None),
        (_, [id, ..]) if !is_fhir_id(id) => None,
        ("get", [id]) => at(Interaction::Read, Some(id)),
        ("put", [id]) => at(Interaction::Update, Some(id)),
        ("patch", [id]) => at(Interaction::Patch, Some(id)),
        ("delete", [id]) => at(Interaction::Delete, Some(id)),
        ("get", [id, "_history"]) => at(Interaction::HistoryInstance, Some(id)),
        ("get", [id, "_history", vid]) if is_fhir_id(vid) => at(Interaction::Vread, Some(id)),
        _ => None,
    }
}

/// A FHIR logical id: `[A-Za-z0-9\-\.]{1,64}` (<https://hl7.org/fhir/datatypes.html#id>).
pub fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}
