//! The SMART App Launch 2.x scope grammar
//! (<https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html>).
//!
//! A scope string is a space-separated list of scopes (RFC 6749 3.3). [`parse`] keeps every
//! scope it understands and drops malformed clinical scopes; [`parse_strict`] refuses them.
//!
//! Clinical scopes ("Scopes for requesting FHIR resources"):
//! `(patient|user|system)/(ResourceType|*).(permissions)[?param=value&...]`
//! - SMART v1 permissions: `read` (= v2 `rs`), `write` (= v2 `cud`), `*` (= `cruds`).
//! - SMART v2 permissions: a non-empty subset of `c r u d s`, in that order and without
//!   repeats (`rs`, `cud`, `cruds`); anything else is malformed.
//! - Query restrictions ("Finer-grained resource constraints using search parameters"): v2
//!   only, one or more `name=value` pairs joined by `&`; names and values are percent-decoded.
//!
//! Launch context and identity scopes ("Scopes for requesting context data", "Scopes for
//! requesting identity data", "Scopes for requesting a refresh token") are recognised by name.
//! The resource type of a clinical scope is a FHIR type: a type of this server's admin API
//! (`Client`, `User`, `AccessPolicy`, `TokenIntrospector`, ..., see
//! [`crate::model::is_server_type`]) makes the scope malformed, and `*` does not cover them.
//!
//! Any other scope is kept as [`Scope::Other`]: servers ignore scopes they do not know, except
//! that a scope that starts like a clinical one (`patient/`, `user/`, `system/`) and does not
//! parse is malformed.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Characters percent-encoded when a restriction name or value is written back: those that
/// would end the scope (space), or split the query (`&`, `=`, `#`), plus `%` itself.
/// `|`, `:` and `/` stay readable (`category=http://loinc.org|1234`).
const RESTRICTION_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'&')
    .add(b'=')
    .add(b'#')
    .add(b'?');

/// The level of a clinical scope: whose data it grants ("Scopes for requesting FHIR
/// resources": `patient/`, `user/`, `system/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// `patient/`: resources in the compartment of the patient in context.
    Patient,
    /// `user/`: resources the user may see.
    User,
    /// `system/`: backend services without a user (SMART Backend Services).
    System,
}

impl Level {
    /// The prefix as written in a scope, without the slash.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Patient => "patient",
            Level::User => "user",
            Level::System => "system",
        }
    }
}

/// A set of SMART v2 permissions (`c r u d s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// `c`: create.
    pub const CREATE: Permissions = Permissions(1);
    /// `r`: read, vread, history.
    pub const READ: Permissions = Permissions(2);
    /// `u`: update, patch.
    pub const UPDATE: Permissions = Permissions(4);
    /// `d`: delete.
    pub const DELETE: Permissions = Permissions(8);
    /// `s`: search.
    pub const SEARCH: Permissions = Permissions(16);
    /// No permission.
    pub const NONE: Permissions = Permissions(0);
    /// SMART v1 `read` = v2 `rs`.
    pub const V1_READ: Permissions = Permissions(2 | 16);
    /// SMART v1 `write` = v2 `cud`.
    pub const V1_WRITE: Permissions = Permissions(1 | 4 | 8);
    /// SMART v1 `*` = v2 `cruds`.
    pub const ALL: Permissions = Permissions(31);

    /// The letters in grammar order, with their bits.
    const LETTERS: [(char, Permissions); 5] = [
        ('c', Permissions::CREATE),
        ('r', Permissions::READ),
        ('u', Permissions::UPDATE),
        ('d', Permissions::DELETE),
        ('s', Permissions::SEARCH),
    ];

    /// Parses SMART v2 permissions: a non-empty subset of `cruds` in that order, no repeats.
    pub fn parse_v2(s: &str) -> Option<Permissions> {
        if s.is_empty() {
            return None;
        }
        let mut bits = 0u8;
        let mut next = 0usize; // index in LETTERS the next letter may start from
        for ch in s.chars() {
            let pos = Self::LETTERS[next..].iter().position(|(c, _)| *c == ch)?;
            bits |= Self::LETTERS[next + pos].1 .0;
            next += pos + 1;
        }
        Some(Permissions(bits))
    }

    /// True when every permission of `other` is in `self`.
    pub fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The union of two sets.
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }
}

impl fmt::Display for Permissions {
    /// The v2 letters, in grammar order (`rs`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (c, p) in Self::LETTERS {
            if self.contains(p) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// How the permissions of a clinical scope were written, so it is formatted back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// SMART v1: `read`, `write` or `*`.
    V1,
    /// SMART v2: `cruds` letters.
    V2,
}

/// A clinical scope: `patient/Observation.rs?category=laboratory`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClinicalScope {
    /// `patient`, `user` or `system`.
    pub level: Level,
    /// The FHIR resource type, or `None` for `*` (every type).
    pub resource_type: Option<String>,
    /// The granted permissions (v1 scopes are expanded to their v2 equivalent).
    pub permissions: Permissions,
    /// v1 or v2 spelling.
    pub syntax: Syntax,
    /// Query restrictions `(name, value)`, percent-decoded, in the order written (v2 only).
    pub restrictions: Vec<(String, String)>,
}

impl ClinicalScope {
    /// True when the scope names `resource_type` or is `*`. Never for a type of this server's
    /// admin API ([`crate::model::is_server_type`]: `Client`, `User`, `AccessPolicy`, ...):
    /// SMART scopes are about FHIR resources, and `*` means every FHIR type, not those.
    pub fn covers_type(&self, resource_type: &str) -> bool {
        !crate::model::is_server_type(resource_type)
            && self
                .resource_type
                .as_deref()
                .is_none_or(|t| t == resource_type)
    }

    /// True when the scope grants every permission in `needed`.
    pub fn grants(&self, needed: Permissions) -> bool {
        self.permissions.contains(needed)
    }

    /// True when this (registered) scope covers `requested`: the same level, this type or
    /// `*`, every requested permission, and each of this scope's query restrictions also in
    /// the request (a restricted scope never covers an unrestricted one). v1 and v2 spellings
    /// compare by their permissions: `patient/*.read` covers `patient/Observation.rs`.
    pub fn covers(&self, requested: &ClinicalScope) -> bool {
        self.level == requested.level
            && match &requested.resource_type {
                Some(t) => self.covers_type(t),
                None => self.resource_type.is_none(),
            }
            && self.permissions.contains(requested.permissions)
            && self
                .restrictions
                .iter()
                .all(|r| requested.restrictions.contains(r))
    }

    /// Parses one clinical scope (without surrounding whitespace).
    pub fn parse(s: &str) -> Result<ClinicalScope, ScopeError> {
        let err = |reason: &'static str| ScopeError {
            scope: s.to_owned(),
            reason,
        };
        let (level, rest) = if let Some(r) = s.strip_prefix("patient/") {
            (Level::Patient, r)
        } else if let Some(r) = s.strip_prefix("user/") {
            (Level::User, r)
        } else if let Some(r) = s.strip_prefix("system/") {
            (Level::System, r)
        } else {
            return Err(err(
                "a clinical scope starts with patient/, user/ or system/",
            ));
        };
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let Some((ty, perms)) = main.split_once('.') else {
            return Err(err("expected ResourceType.permissions"));
        };
        let resource_type = if ty == "*" {
            None
        } else if crate::model::is_server_type(ty) {
            return Err(err(
                "the resource type names a resource of this server's admin API (Client, User, \
                 AccessPolicy, ...), not a FHIR type; SMART scopes cannot grant it",
            ));
        } else if is_resource_type(ty) {
            Some(ty.to_owned())
        } else {
            return Err(err(
                "the resource type must be * or a FHIR type name ([A-Z][A-Za-z]*)",
            ));
        };
        let (permissions, syntax) = match perms {
            "read" => (Permissions::V1_READ, Syntax::V1),
            "write" => (Permissions::V1_WRITE, Syntax::V1),
            "*" => (Permissions::ALL, Syntax::V1),
            "" => return Err(err("empty permissions")),
            p => match Permissions::parse_v2(p) {
                Some(p) => (p, Syntax::V2),
                None => {
                    return Err(err(
                        "permissions must be read, write, * or letters of cruds in that order",
                    ))
                }
            },
        };
        let restrictions = match query {
            None => Vec::new(),
            Some(_) if syntax == Syntax::V1 => {
                return Err(err("query restrictions need SMART v2 permissions (cruds)"))
            }
            Some("") => return Err(err("? must be followed by name=value parameters")),
            Some(q) => {
                let mut out = Vec::new();
                for pair in q.split('&') {
                    let Some((name, value)) = pair.split_once('=') else {
                        return Err(err("a query restriction is name=value"));
                    };
                    let (Some(name), Some(value)) = (decode(name), decode(value)) else {
                        return Err(err("invalid percent-encoding in a query restriction"));
                    };
                    if name.is_empty() || value.is_empty() {
                        return Err(err("a query restriction needs a name and a value"));
                    }
                    out.push((name, value));
                }
                out
            }
        };
        Ok(ClinicalScope {
            level,
            resource_type,
            permissions,
            syntax,
            restrictions,
        })
    }
}

impl fmt::Display for ClinicalScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}.",
            self.level.as_str(),
            self.resource_type.as_deref().unwrap_or("*")
        )?;
        match self.syntax {
            Syntax::V1 if self.permissions == Permissions::V1_READ => f.write_str("read")?,
            Syntax::V1 if self.permissions == Permissions::V1_WRITE => f.write_str("write")?,
            Syntax::V1 if self.permissions == Permissions::ALL => f.write_str("*")?,
            _ => write!(f, "{}", self.permissions)?,
        }
        for (i, (name, value)) in self.restrictions.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write!(
                f,
                "{}={}",
                utf8_percent_encode(name, RESTRICTION_ENCODE),
                utf8_percent_encode(value, RESTRICTION_ENCODE)
            )?;
        }
        Ok(())
    }
}

/// One scope of a scope string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `patient/…`, `user/…`, `system/…`.
    Clinical(ClinicalScope),
    /// `launch`: EHR launch, the `launch` parameter is to be resolved to a context.
    Launch,
    /// `launch/patient`: standalone launch, a patient is to be picked.
    LaunchPatient,
    /// `launch/encounter`: standalone launch, an encounter is to be picked.
    LaunchEncounter,
    /// `openid`: an id_token (OpenID Connect).
    OpenId,
    /// `fhirUser`: the id_token names the user's FHIR resource.
    FhirUser,
    /// `profile`: the OpenID Connect profile claims (SMART v1 used it like `fhirUser`).
    Profile,
    /// `offline_access`: a refresh token usable after the user's session ends.
    OfflineAccess,
    /// `online_access`: a refresh token usable while the user is online.
    OnlineAccess,
    /// Any other scope, kept verbatim; it grants nothing here.
    Other(String),
}

impl FromStr for Scope {
    type Err = ScopeError;

    /// Parses one scope. Errors only for malformed clinical scopes and for empty or
    /// whitespace-containing input.
    fn from_str(s: &str) -> Result<Scope, ScopeError> {
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(ScopeError {
                scope: s.to_owned(),
                reason: "a scope is a non-empty token without spaces",
            });
        }
        Ok(match s {
            "launch" => Scope::Launch,
            "launch/patient" => Scope::LaunchPatient,
            "launch/encounter" => Scope::LaunchEncounter,
            "openid" => Scope::OpenId,
            "fhirUser" => Scope::FhirUser,
            "profile" => Scope::Profile,
            "offline_access" => Scope::OfflineAccess,
            "online_access" => Scope::OnlineAccess,
            _ if is_clinical_like(s) => Scope::Clinical(ClinicalScope::parse(s)?),
            _ => Scope::Other(s.to_owned()),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Clinical(c) => return c.fmt(f),
            Scope::Launch => "launch",
            Scope::LaunchPatient => "launch/patient",
            Scope::LaunchEncounter => "launch/encounter",
            Scope::OpenId => "openid",
            Scope::FhirUser => "fhirUser",
            Scope::Profile => "profile",
            Scope::OfflineAccess => "offline_access",
            Scope::OnlineAccess => "online_access",
            Scope::Other(s) => s,
        })
    }
}

/// A malformed scope and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError {
    /// The scope as written.
    pub scope: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid scope {:?}: {}", self.scope, self.reason)
    }
}

impl std::error::Error for ScopeError {}

/// Parses a space-separated scope string, dropping malformed clinical scopes (lenient: what a
/// resource server does with the `scope` of a token it has already accepted).
pub fn parse(scopes: &str) -> Vec<Scope> {
    scopes
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Parses a space-separated scope string; the first malformed clinical scope is an error
/// (strict: what an authorization server does with a requested or configured scope).
pub fn parse_strict(scopes: &str) -> Result<Vec<Scope>, ScopeError> {
    scopes.split_whitespace().map(str::parse).collect()
}

/// Formats scopes back into a space-separated string.
pub fn format(scopes: &[Scope]) -> String {
    let mut out = String::new();
    for (i, s) in scopes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&s.to_string());
    }
    out
}

/// True when `s` starts like a clinical scope (`patient/`, `user/`, `system/`).
pub fn is_clinical_like(s: &str) -> bool {
    s.starts_with("patient/") || s.starts_with("user/") || s.starts_with("system/")
}

/// True when `s` looks like a FHIR resource type name: `[A-Z][A-Za-z]*`.
pub fn is_resource_type(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphabetic())
}

/// Percent-decodes `s` (no `+` to space: scopes are not form-encoded); `None` for invalid UTF-8.
fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}
