//! The scope ceiling: what a grant may give, whatever was asked for (docs/reference.md "Token endpoint",
//! docs/smart-on-fhir.md "The scope ceiling"). Applied at every grant: `/auth/authorize` (code, implicit), the token
//! endpoint (client_credentials, password, authorization_code) and refresh, which re-reads
//! the client's and the user's current standing, so a refresh never widens.
//!
//! - A client is granted only scopes it is registered for (RFC 6749 3.3 lets the server
//!   narrow or refuse a requested scope): Aidbox's `Client.scope` and our `allowed-scopes`,
//!   together. A clinical scope (SMART `patient/`, `user/`, `system/`) must be covered by a
//!   registered one (`patient/*.rs` covers `patient/Observation.rs` and
//!   `patient/Observation.read`, never `patient/*.cruds`); other scopes must be listed as they
//!   are.
//! - A client without either list gets no clinical scope and no custom scope (default deny);
//!   it may still ask for the OpenID Connect and SMART launch scopes of the flows it uses:
//!   `openid profile email fhirUser` with a user sign-in, `offline_access online_access` with a
//!   flow that issues refresh tokens, `launch launch/patient launch/encounter` with the
//!   authorization code flow.
//! - `system/` only through client_credentials (SMART Backend Services); `patient/` and
//!   `user/` only with a user, and `user/` only for a user whose `fhirUser` is of a type in
//!   `SMART_USER_SCOPE_TYPES` (never a Patient; a user without `fhirUser` gets none).

use super::GrantType;
use crate::context::App;
use crate::error::{Error, Result};
use crate::model::client::Client;
use crate::model::user::User;
use crate::smart::{ClinicalScope, Level, Scope};

/// RFC 6749 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn valid_scope_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Flows in which a user signs in.
fn has_user(grant: GrantType) -> bool {
    matches!(
        grant,
        GrantType::AuthorizationCode | GrantType::Implicit | GrantType::Password
    )
}

/// What a client without a registered list may still ask for in `grant`: the OpenID Connect
/// and SMART launch scopes of the flows it uses. `None`: allowed; `Some(why)`: refused.
fn unregistered(scope: &Scope, name: &str, grant: GrantType) -> Option<String> {
    let ok = match scope {
        Scope::OpenId | Scope::Profile | Scope::FhirUser => has_user(grant),
        Scope::Other(s) if s == "email" => has_user(grant),
        // Refresh tokens come with the code and password grants (never implicit, RFC 6749 4.2.2).
        Scope::OfflineAccess | Scope::OnlineAccess => {
            matches!(grant, GrantType::AuthorizationCode | GrantType::Password)
        }
        // SMART App Launch: launch context through the authorization code flow.
        Scope::Launch | Scope::LaunchPatient | Scope::LaunchEncounter => {
            grant == GrantType::AuthorizationCode
        }
        Scope::Clinical(_) => {
            return Some(format!(
                "scope \"{name}\" is not registered for this client: a client gets clinical \
                 scopes (patient/, user/, system/) only when its Client.scope (or allowed-scopes) \
                 covers them"
            ))
        }
        Scope::Other(_) => {
            return Some(format!(
                "scope \"{name}\" is not registered for this client: list it in Client.scope"
            ))
        }
    };
    (!ok).then(|| {
        format!(
            "scope \"{name}\" is not registered for this client and the {} flow does not carry it",
            grant.name()
        )
    })
}

/// The level rules of SMART clinical scopes by flow.
fn level_allowed(c: &ClinicalScope, name: &str, grant: GrantType) -> Result<()> {
    match c.level {
        Level::System if grant != GrantType::ClientCredentials => {
            Err(Error::InvalidScope(format!(
                "scope \"{name}\": system/ scopes are granted only through client_credentials \
             (SMART Backend Services)"
            )))
        }
        Level::Patient | Level::User if !has_user(grant) => Err(Error::InvalidScope(format!(
            "scope \"{name}\": patient/ and user/ scopes need a signed-in user; \
             client_credentials gets system/ scopes"
        ))),
        _ => Ok(()),
    }
}

/// The scope `client` may be granted in `grant` for `requested` (a space-separated list):
/// each scope is checked, duplicates are dropped, and the first one not allowed refuses the
/// whole request with `invalid_scope` (RFC 6749 5.2). The user's side is [`user_ceiling`].
pub fn client_ceiling(
    client: &Client,
    grant: GrantType,
    requested: Option<&str>,
) -> Result<Option<String>> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let registered = client.registered_scopes();
    let mut out: Vec<&str> = Vec::new();
    for t in requested.split(' ').filter(|t| !t.is_empty()) {
        if !valid_scope_token(t) {
            return Err(Error::InvalidScope(format!(
                "scope \"{t}\" has invalid characters"
            )));
        }
        let scope: Scope = t
            .parse()
            .map_err(|e: crate::smart::ScopeError| Error::InvalidScope(e.to_string()))?;
        if let Scope::Clinical(c) = &scope {
            level_allowed(c, t, grant)?;
        }
        match &registered {
            None => {
                if let Some(why) = unregistered(&scope, t, grant) {
                    return Err(Error::InvalidScope(why));
                }
            }
            Some(list) => {
                let covered = match &scope {
                    Scope::Clinical(c) => list.iter().any(|r| match r.parse::<Scope>() {
                        Ok(Scope::Clinical(reg)) => reg.covers(c),
                        _ => false,
                    }),
                    _ => list.contains(&t),
                };
                if !covered {
                    return Err(Error::InvalidScope(format!(
                        "scope \"{t}\" is not registered for this client \
                         (Client.scope / allowed-scopes)"
                    )));
                }
            }
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok((!out.is_empty()).then(|| out.join(" ")))
}

/// The `fhirUser` of a user as (resource type, id), read from `"Patient/x"`, an absolute URL
/// ending in `Patient/x`, `{"reference": "Patient/x"}` or Aidbox's
/// `{"resourceType": "Patient", "id": "x"}` ([`crate::model::user::fhir_user_parts`]). `None`
/// when absent or not understood (a malformed one names nobody: no patient, no `user/` scopes).
pub fn fhir_user_ref(user: &User) -> Option<(String, String)> {
    crate::model::user::fhir_user_parts(user.doc.get("fhirUser")?)
}

/// The patient a patient user is (`fhirUser` names a Patient).
pub fn own_patient(user: &User) -> Option<String> {
    fhir_user_ref(user)
        .filter(|(t, _)| t == "Patient")
        .map(|(_, id)| id)
}

/// The user's side of the ceiling: `user/` scopes only for a user whose `fhirUser` is of a
/// type in `SMART_USER_SCOPE_TYPES` (never a Patient, never a user without `fhirUser`).
pub fn user_ceiling(app: &App, user: &User, scope: Option<&str>) -> Result<()> {
    let wants_user_level = crate::smart::parse(scope.unwrap_or(""))
        .iter()
        .any(|s| matches!(s, Scope::Clinical(c) if c.level == Level::User));
    if !wants_user_level {
        return Ok(());
    }
    let allowed =
        fhir_user_ref(user).is_some_and(|(t, _)| app.config.user_scope_types.contains(&t));
    if allowed {
        return Ok(());
    }
    Err(Error::InvalidScope(format!(
        "user/ scopes are not allowed for this user: they need a fhirUser of type {} \
         (SMART_USER_SCOPE_TYPES); a patient user gets patient/ scopes",
        app.config.user_scope_types.join(", ")
    )))
}

/// Does `scope` hold a `patient/` scope?
pub fn has_patient_scope(scope: Option<&str>) -> bool {
    crate::smart::parse(scope.unwrap_or(""))
        .iter()
        .any(|s| matches!(s, Scope::Clinical(c) if c.level == Level::Patient))
}
