//! Client: an application that calls the API or asks for tokens (Aidbox's `Client`).

use super::{join, opt_bool, opt_object, opt_positive_int, opt_str, opt_str_list};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Grant types a Client may list (Aidbox names; `code` is Aidbox's alias of `authorization_code`;
/// `refresh_token` turns refresh tokens on for every flow that does not set
/// `auth.<flow>.refresh_token` itself, see [`Client::refresh_enabled`]).
pub const GRANT_TYPES: [&str; 7] = [
    "basic",
    "client_credentials",
    "password",
    "authorization_code",
    "code",
    "implicit",
    "refresh_token",
];

/// Flows where Aidbox's `auth.<flow>.secret_required: false` lets a client with a secret call
/// the token endpoint without it (a public client for that flow). Never `client_credentials`.
pub const SECRET_OPTIONAL_FLOWS: [&str; 2] = ["authorization_code", "password"];

/// Flows that take per-flow settings under `auth.<flow>`.
pub const FLOWS: [&str; 5] = [
    "basic",
    "client_credentials",
    "password",
    "authorization_code",
    "implicit",
];

/// Default access token lifetime when `auth.<flow>.access_token_expiration` is absent.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: i64 = 3600;

/// Validates the fields of a Client we interpret (the secret is already taken out).
pub fn validate(m: &Map<String, Value>) -> Result<()> {
    if let Some(list) = opt_str_list(m, "grant_types", "")? {
        for (i, g) in list.iter().enumerate() {
            if !GRANT_TYPES.contains(&g.as_str()) {
                return Err(Error::validation(
                    format!("grant_types.{i}"),
                    format!(
                        "unknown grant type \"{g}\"; known: {}",
                        GRANT_TYPES.join(", ")
                    ),
                ));
            }
        }
    }
    opt_bool(m, "first_party", "")?;
    // RFC 9126 6: the authorization endpoint then takes only pushed requests.
    opt_bool(m, "require_pushed_authorization_requests", "")?;
    opt_bool(m, "active", "")?;
    // RFC 9449 5.2: the token endpoint then requires a DPoP proof.
    opt_bool(m, "dpop_bound_access_tokens", "")?;
    opt_str(m, "type", "")?;
    for key in SCOPE_LISTS {
        validate_scope_list(m, key)?;
    }
    // Absolute, or a path resolved against the issuer (Aidbox's SMART examples leave it out:
    // then the issuer's FHIR base).
    if let Some(b) = opt_str(m, "fhir-base-url", "")? {
        let absolute = b.starts_with("https://") || b.starts_with("http://");
        let path = b.starts_with('/') && !b.starts_with("//");
        if !(absolute || path) || b.contains(['#', '?', ' ']) || b.contains("..") {
            return Err(Error::validation(
                "fhir-base-url",
                "must be an http(s) URL or a path starting with / (resolved against the issuer)",
            ));
        }
    }
    // SMART Backend Services / RFC 7523: the client's public keys for private_key_jwt.
    if let Some(jwks) = m.get("jwks") {
        let set =
            crate::jwt::keys::KeySet::from_jwks(jwks).map_err(|e| Error::validation("jwks", e))?;
        if set.verifying.is_empty() {
            return Err(Error::validation(
                "jwks",
                "has no usable signing key (RSA, P-256, P-384, Ed25519)",
            ));
        }
    }
    if let Some(u) = opt_str(m, "jwks_uri", "")? {
        if !super::introspector::fetchable_url(u) {
            return Err(Error::validation(
                "jwks_uri",
                "must be an https URL (http only for localhost)",
            ));
        }
    }
    if let Some(origins) = opt_str_list(m, "allowed_origins", "")? {
        for (i, o) in origins.iter().enumerate() {
            if !crate::cors::valid_origin(o) {
                return Err(Error::validation(
                    format!("allowed_origins.{i}"),
                    "must be an origin: https://host[:port] (http only for localhost), no path",
                ));
            }
        }
    }
    if let Some(smart) = opt_object(m, "smart", "")? {
        if let Some(u) = opt_str(smart, "launch_uri", "smart")? {
            validate_redirect_uri(u).map_err(|e| Error::validation("smart.launch_uri", e))?;
        }
    }
    if let Some(a) = opt_str(m, "audience", "")? {
        if let Some(re) = a.strip_prefix('#') {
            regex_lite::Regex::new(re).map_err(|e| {
                Error::validation(
                    "audience",
                    format!("is not a valid regular expression: {e}"),
                )
            })?;
        }
    }
    if let Some(auth) = opt_object(m, "auth", "")? {
        for (flow, settings) in auth {
            let path = join("auth", flow);
            if !FLOWS.contains(&flow.as_str()) {
                return Err(Error::validation(
                    path,
                    format!("unknown flow; known: {}", FLOWS.join(", ")),
                ));
            }
            let Value::Object(s) = settings else {
                return Err(Error::validation(path, "must be an object"));
            };
            opt_positive_int(s, "access_token_expiration", &path)?;
            opt_positive_int(s, "refresh_token_expiration", &path)?;
            // Absolute family lifetime (seconds; default 30 days), beside Aidbox's sliding one.
            opt_positive_int(s, "refresh_token_absolute_expiration", &path)?;
            opt_bool(s, "refresh_token", &path)?;
            // Refresh tokens rotate on every use unless this is false (confidential clients
            // only, RFC 9700 2.2.2; checked by [`validate_confidential`]).
            opt_bool(s, "refresh_token_rotation", &path)?;
            if opt_bool(s, "secret_required", &path)? == Some(false)
                && !SECRET_OPTIONAL_FLOWS.contains(&flow.as_str())
            {
                return Err(Error::validation(
                    join(&path, "secret_required"),
                    format!(
                        "may be false only for {}: {flow} always needs client authentication",
                        SECRET_OPTIONAL_FLOWS.join(" and ")
                    ),
                ));
            }
            match s.get("audience") {
                None | Some(Value::Null) => {}
                Some(Value::String(a)) if !a.is_empty() => {}
                Some(Value::Array(list))
                    if !list.is_empty()
                        && list
                            .iter()
                            .all(|v| v.as_str().is_some_and(|a| !a.is_empty())) => {}
                Some(_) => {
                    return Err(Error::validation(
                        join(&path, "audience"),
                        "must be a non-empty string or a non-empty list of them",
                    ))
                }
            }
            opt_bool(s, "pkce", &path)?;
            if let Some(f) = opt_str(s, "token_format", &path)? {
                if f != "jwt" {
                    return Err(Error::validation(
                        join(&path, "token_format"),
                        "only \"jwt\" is supported",
                    ));
                }
            }
            validate_redirect_uris(s, &path)?;
        }
    }
    Ok(())
}

/// Checks what depends on the client being confidential, on the document as it will be stored
/// (with `secret_hash`): `auth.<flow>.refresh_token_rotation: false` is refused for a public
/// client (RFC 9700 2.2.2 allows unrotated refresh tokens only for confidential clients).
pub fn validate_confidential(m: &Map<String, Value>) -> Result<()> {
    let client = Client::from_doc(Value::Object(m.clone()));
    for flow in FLOWS {
        if client.flow_setting(flow, "refresh_token_rotation") == Some(&Value::Bool(false)) {
            let why = if !client.is_confidential() {
                "may be false only for a confidential client (with a secret or jwks): a public \
                 client's refresh tokens always rotate (RFC 9700 2.2.2)"
            } else if !client.requires_secret(flow) {
                "may be false only when the flow requires client authentication \
                 (secret_required is false here)"
            } else {
                continue;
            };
            return Err(Error::validation(
                format!("auth.{flow}.refresh_token_rotation"),
                why,
            ));
        }
    }
    Ok(())
}

/// The fields that register a client's scopes: Aidbox's `scope` (a list of strings) and
/// `allowed-scopes` (Aidbox: references to Scope resources); the client may be granted the
/// union of both. Either list may hold scope strings and Scope references.
pub const SCOPE_LISTS: [&str; 2] = ["scope", "allowed-scopes"];

/// `scope` / `allowed-scopes`: a list of scope strings (RFC 6749 3.3 `scope-token`s; SMART
/// clinical scopes must parse) and references to Scope resources (`{"id": ...,
/// "resourceType": "Scope"}` or `{"reference": "Scope/<id>"}`, see [`super::scope`]). A
/// space-separated string and references to anything else are refused. A reference to a
/// Scope that does not exist is accepted and grants nothing.
fn validate_scope_list(m: &Map<String, Value>, key: &str) -> Result<()> {
    match m.get(key) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                let path = format!("{key}.{i}");
                match v {
                    Value::String(s) => super::scope::check_scope_value(s, &path)?,
                    Value::Object(_) => {
                        super::check_reference(v, &path, &["Scope"])?;
                    }
                    _ => {
                        return Err(Error::validation(
                            path,
                            "must be a scope string or a reference to a Scope resource",
                        ))
                    }
                }
            }
        }
        Some(_) => {
            return Err(Error::validation(
                key,
                "must be an array of scope strings (one scope per string) or Scope references",
            ))
        }
    }
    Ok(())
}

/// `auth.<flow>.redirect_uri`: a string (Aidbox) or a non-empty array of strings (several
/// registered redirect URIs, RFC 6749 3.1.2.2), each one valid.
fn validate_redirect_uris(s: &Map<String, Value>, path: &str) -> Result<()> {
    let field = join(path, "redirect_uri");
    match s.get("redirect_uri") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(uri)) => {
            validate_redirect_uri(uri).map_err(|m| Error::validation(field, m))
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, v) in list.iter().enumerate() {
                let at = format!("{field}.{i}");
                let uri = v
                    .as_str()
                    .ok_or_else(|| Error::validation(at.clone(), "must be a string"))?;
                validate_redirect_uri(uri).map_err(|m| Error::validation(at, m))?;
            }
            Ok(())
        }
        Some(_) => Err(Error::validation(
            field,
            "must be a redirect URI or a non-empty array of them",
        )),
    }
}

/// The redirect URIs registered in one `redirect_uri` value (a string or an array of them).
pub fn redirect_uris(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Schemes that are never a redirect target, whatever their spelling: they run script, read
/// local files or name browser-internal documents.
const FORBIDDEN_SCHEMES: [&str; 8] = [
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "filesystem",
    "view-source",
];

/// The scheme of `uri` (RFC 3986 3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`), when it
/// has one.
fn scheme_of(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(scheme)
}

/// Is `uri` a private-use URI scheme redirect (RFC 8252 7.1: a reverse-domain scheme such as
/// `com.example.app:/callback`)? Only the scheme is looked at; see [`validate_redirect_uri`].
pub fn is_private_use(uri: &str) -> bool {
    scheme_of(uri).is_some_and(|s| s.contains('.'))
}

/// The loopback IP literals of RFC 8252 7.3, whose port is the app's (any port matches).
const LOOPBACK_IPS: [&str; 2] = ["127.0.0.1", "[::1]"];

/// `http://{host}[:port]{rest}` split into host, port and the rest (path and query), for a
/// loopback IP host only; `None` for anything else (another host, userinfo, a bad port).
fn split_loopback(uri: &str) -> Option<(&str, Option<&str>, &str)> {
    let after = uri.strip_prefix("http://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (host, port) = match authority.strip_prefix("[::1]") {
        Some(p) => ("[::1]", p),
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    if !LOOPBACK_IPS.contains(&host) {
        return None;
    }
    let port = match port {
        "" => None,
        p => {
            let digits = p.strip_prefix(':')?;
            let n: u32 = (!digits.is_empty()
                && digits.len() <= 5
                && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()?;
            if n == 0 || n > 65535 {
                return None;
            }
            Some(digits)
        }
    };
    Some((host, port, rest))
}

/// Is `uri` a loopback redirect (`http` on `127.0.0.1`, `[::1]` or `localhost`), the native
/// app's own listener (RFC 8252 7.3, 8.3)?
pub fn is_loopback(uri: &str) -> bool {
    split_loopback(uri).is_some()
        || uri
            .strip_prefix("http://localhost")
            .is_some_and(|r| r.is_empty() || r.starts_with([':', '/', '?']))
}

/// Does the requested `redirect_uri` match the registered one? RFC 6749 3.1.2.3 / RFC 9700
/// 4.1.3: exact string comparison, except that a loopback IP redirect (`http://127.0.0.1` or
/// `http://[::1]`, registered with or without a port) matches on any port (RFC 8252 7.3): the
/// scheme, host, path and query must still be byte-for-byte the registered ones. `localhost`
/// is compared exactly (RFC 8252 8.3 says it is NOT RECOMMENDED: the name may resolve
/// elsewhere); so is everything else, private-use schemes (7.1) and claimed https URIs (7.2).
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (split_loopback(registered), split_loopback(requested)) {
        (Some((rh, _, rr)), Some((qh, _, qr))) => rh == qh && rr == qr,
        _ => false,
    }
}

/// RFC 6749 3.1.2: an absolute URI without a fragment, of one of these kinds:
/// - https (a web client, or a claimed https redirect of a native app, RFC 8252 7.2);
/// - http only on a loopback host (`127.0.0.1`, `[::1]`, `localhost`; RFC 8252 7.3);
/// - a private-use scheme (RFC 8252 7.1): a reverse-domain name with a dot
///   (`com.example.app:/callback`), never a scheme that runs script or reads local content.
///
/// No userinfo (`user@host`) anywhere: it only ever serves to disguise the host.
pub fn validate_redirect_uri(uri: &str) -> std::result::Result<(), String> {
    if uri.contains('#') {
        return Err("must not contain a fragment".into());
    }
    if uri.bytes().any(|b| b <= b' ' || b >= 0x7f || b == b'\\') {
        return Err("must not contain spaces, control characters, backslashes or non-ASCII".into());
    }
    let scheme = scheme_of(uri).ok_or_else(|| "must be an absolute URI".to_string())?;
    if scheme != scheme.to_ascii_lowercase() {
        return Err("the scheme must be lower case".into());
    }
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(format!("the {scheme}: scheme is not allowed"));
    }
    if scheme == "http" || scheme == "https" {
        let parsed: http::Uri = uri
            .parse()
            .map_err(|_| "must be an absolute URI".to_string())?;
        let authority = parsed
            .authority()
            .map(|a| a.as_str())
            .ok_or_else(|| "must be an absolute URI".to_string())?;
        if authority.contains('@') {
            return Err("must not contain userinfo (user@host)".into());
        }
        if scheme == "http" {
            let host = parsed.host().unwrap_or("");
            if !(host == "localhost" || LOOPBACK_IPS.contains(&host)) {
                return Err("must use https (http only for localhost)".into());
            }
        }
        return Ok(());
    }
    if !scheme.contains('.') {
        return Err(format!(
            "the {scheme}: scheme is not a private-use scheme: native apps use a reverse-domain \
             scheme such as com.example.app:/callback (RFC 8252 7.1), web apps https"
        ));
    }
    let rest = &uri[scheme.len() + 1..];
    if rest.is_empty() {
        return Err("must have a path after the scheme (com.example.app:/callback)".into());
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?']).unwrap_or(after.len());
        if after[..end].contains('@') {
            return Err("must not contain userinfo (user@host)".into());
        }
    }
    Ok(())
}

/// A stored Client, read for authentication and token issuance. Debug shows neither the
/// secret's hash nor the stored document (which holds it).
#[derive(Clone)]
pub struct Client {
    pub id: String,
    pub secret_hash: Option<String>,
    pub grant_types: Vec<String>,
    pub active: bool,
    /// Did this request prove the client's identity (secret or assertion)? False for a public
    /// client and for one that used `secret_required: false`; set by `oauth::client_auth`.
    pub authenticated: bool,
    /// The stored document (with its hash); see [`super::public_view`].
    pub doc: Value,
    /// The values of the Scope resources its scope lists refer to, as loaded
    /// ([`super::scope::resolve`]); empty until then, so an unresolved reference grants nothing.
    pub referenced_scopes: Vec<String>,
    /// The RFC 7638 thumbprint of this token request's verified DPoP proof key (RFC 9449 5):
    /// request-scoped like `authenticated`; set by the token endpoint (src/oauth/dpop.rs).
    pub dpop_jkt: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field(
                "secret_hash",
                &self.secret_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("grant_types", &self.grant_types)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn from_doc(doc: Value) -> Client {
        let get_str = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
        Client {
            id: get_str("id").unwrap_or_default(),
            secret_hash: get_str("secret_hash"),
            grant_types: doc
                .get("grant_types")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            active: doc.get("active").and_then(Value::as_bool).unwrap_or(true),
            authenticated: false,
            doc,
            referenced_scopes: Vec::new(),
            dpop_jkt: None,
        }
    }

    /// Does `grant_types` list this grant? `authorization_code` and `code` are one grant.
    pub fn allows_grant(&self, grant: &str) -> bool {
        // A self-registered client (RFC 7591, CIMD) has the code flow and refresh only, whatever
        // its document came to say (src/oauth/register.rs).
        if crate::oauth::register::is_self_registered(self)
            && !matches!(grant, "authorization_code" | "code" | "refresh_token")
        {
            return false;
        }
        self.grant_types.iter().any(|g| {
            g == grant
                || (grant == "authorization_code" && g == "code")
                || (grant == "code" && g == "authorization_code")
        })
    }

    /// `auth.<flow>.<key>`.
    pub fn flow_setting(&self, flow: &str, key: &str) -> Option<&Value> {
        self.doc.get("auth")?.get(flow)?.get(key)
    }

    /// Can this client authenticate at all (a secret, or keys for `private_key_jwt`)?
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
            || self.doc.get("jwks").is_some()
            || self.doc.get("jwks_uri").is_some()
    }

    /// Must the client authenticate at the token endpoint for `flow`? Yes for a confidential
    /// client unless `auth.<flow>.secret_required` is false for a flow that allows it.
    pub fn requires_secret(&self, flow: &str) -> bool {
        self.is_confidential()
            && !(SECRET_OPTIONAL_FLOWS.contains(&flow)
                && self.flow_setting(flow, "secret_required") == Some(&Value::Bool(false)))
    }

    /// Does the client get refresh tokens for `flow` by its registration? `auth.<flow>.refresh_token`
    /// when set (true or false: the flow's own setting wins), else whether `grant_types` lists
    /// `refresh_token`.
    pub fn refresh_enabled(&self, flow: &str) -> bool {
        match self
            .flow_setting(flow, "refresh_token")
            .and_then(Value::as_bool)
        {
            Some(b) => b,
            None => self.grant_types.iter().any(|g| g == "refresh_token"),
        }
    }

    /// Do refresh tokens of `flow` rotate on use? Always, except for a confidential client that
    /// sets `auth.<flow>.refresh_token_rotation: false` and must authenticate for that flow.
    pub fn rotates_refresh_tokens(&self, flow: &str) -> bool {
        !(self.flow_setting(flow, "refresh_token_rotation") == Some(&Value::Bool(false))
            && self.requires_secret(flow))
    }

    /// `auth.<flow>.audience`: the audiences of tokens issued in that flow (the first is the
    /// default `aud`); empty when unset.
    pub fn flow_audiences(&self, flow: &str) -> Vec<&str> {
        match self.flow_setting(flow, "audience") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Access token lifetime for a flow, in seconds.
    pub fn access_token_lifetime(&self, flow: &str) -> i64 {
        self.flow_setting(flow, "access_token_expiration")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME)
    }

    /// The scopes the client is registered for: the strings of `scope` (Aidbox) and
    /// `allowed-scopes` together, plus the values of the Scopes they refer to
    /// ([`Client::referenced_scopes`]); `None` when it has neither list (then it is registered
    /// for none). A list of references to missing Scopes is `Some` and registers nothing.
    pub fn registered_scopes(&self) -> Option<Vec<&str>> {
        let mut out: Option<Vec<&str>> = None;
        for key in SCOPE_LISTS {
            if let Some(a) = self.doc.get(key).and_then(Value::as_array) {
                let list = out.get_or_insert_with(Vec::new);
                list.extend(a.iter().filter_map(Value::as_str));
            }
        }
        if let Some(list) = &mut out {
            list.extend(self.referenced_scopes.iter().map(String::as_str));
        }
        out
    }

    /// The ids of the Scope resources its scope lists refer to.
    pub fn scope_reference_ids(&self) -> Vec<&str> {
        SCOPE_LISTS
            .iter()
            .filter_map(|k| self.doc.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(super::scope::reference_id)
            .collect()
    }

    /// A SMART app (`type: smart-app`)?
    pub fn is_smart_app(&self) -> bool {
        self.doc.get("type").and_then(Value::as_str) == Some("smart-app")
    }

    /// `fhir-base-url` as registered (absolute or a path).
    pub fn fhir_base_url(&self) -> Option<&str> {
        self.doc.get("fhir-base-url").and_then(Value::as_str)
    }

    /// The client's FHIR base URLs, the one for `fhirUser` first: `fhir-base-url` when
    /// absolute, resolved against `issuer` when a path; when absent the issuer's FHIR bases
    /// (`<issuer>/fhir` as Aidbox, and the issuer itself).
    pub fn fhir_bases(&self, issuer: &str) -> Vec<String> {
        let issuer = issuer.trim_end_matches('/');
        match self.fhir_base_url() {
            Some(b) if b.starts_with('/') => vec![format!("{issuer}{b}")],
            Some(b) => vec![b.to_string()],
            None => vec![format!("{issuer}/fhir"), issuer.to_string()],
        }
    }

    /// SMART `fhirUser` for the reference `r` (`Patient/x`): absolute against the client's FHIR
    /// base when it has one (a SMART app always has one), else `r` as it is.
    pub fn fhir_user_url(&self, issuer: &str, r: String) -> String {
        if self.fhir_base_url().is_none() && !self.is_smart_app() {
            return r;
        }
        let bases = self.fhir_bases(issuer);
        format!("{}/{r}", bases[0].trim_end_matches('/'))
    }

    /// Does the client's `audience` (a string, or a regex when it starts with `#`) admit `aud`?
    pub fn audience_allows(&self, aud: &str) -> bool {
        match self.doc.get("audience").and_then(Value::as_str) {
            Some(pattern) => match pattern.strip_prefix('#') {
                Some(re) => regex_lite::Regex::new(re)
                    .map(|r| r.is_match(aud))
                    .unwrap_or(false),
                None => pattern == aud,
            },
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_use_schemes_register() {
        for ok in [
            "com.example.app:/callback",
            "com.example.app:/oauth2redirect",
            "com.example.app://callback",
            "https://app.example/cb",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:8080/callback",
            "http://[::1]/cb",
            "http://localhost:3449/auth.html",
        ] {
            assert_eq!(validate_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "vbscript:x",
            "about:blank",
            "blob:https://a.example/x",
            "myapp:/callback",
            "myapp://callback",
            "Com.Example.App:/cb",
            "com.example.app:",
            "com.example.app:/cb#frag",
            "com.example.app://user@host/cb",
            "com.example.app:/c b",
            "http://app.example/cb",
            "http://127.0.0.1:80@evil.com/cb",
            "https://user@app.example/cb",
            "/relative/cb",
            "//evil.example/cb",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_ip_matches_any_port_only() {
        let reg = "http://127.0.0.1/callback";
        assert!(redirect_matches(reg, "http://127.0.0.1/callback"));
        assert!(redirect_matches(reg, "http://127.0.0.1:51234/callback"));
        assert!(redirect_matches(
            "http://127.0.0.1:8080/callback",
            "http://127.0.0.1:51234/callback"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1:8080/callback",
            "http://127.0.0.1/callback"
        ));
        assert!(redirect_matches(
            "http://[::1]/cb?x=1",
            "http://[::1]:4000/cb?x=1"
        ));
        for bad in [
            "http://127.0.0.1:51234/callback/",
            "http://127.0.0.1:51234/Callback",
            "http://127.0.0.1:51234/%63allback",
            "http://127.0.0.1:51234/callback?x=1",
            "http://127.0.0.1:51234/callback#f",
            "http://127.0.0.1:80@evil.com/callback",
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:+80/callback",
            "http://localhost:51234/callback",
            "http://[::1]:51234/callback",
            "https://127.0.0.1:51234/callback",
            "HTTP://127.0.0.1:51234/callback",
            "http://127.0.0.2:51234/callback",
            "http://127.0.0.1.evil.com/callback",
        ] {
            assert!(!redirect_matches(reg, bad), "{bad}");
        }
    }

    #[test]
    fn everything_else_is_exact() {
        // localhost: exact (RFC 8252 8.3), ports included.
        assert!(redirect_matches(
            "http://localhost:3000/cb",
            "http://localhost:3000/cb"
        ));
        assert!(!redirect_matches(
            "http://localhost:3000/cb",
            "http://localhost:3001/cb"
        ));
        assert!(!redirect_matches(
            "http://localhost/cb",
            "http://127.0.0.1/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://localhost/cb"
        ));
        // https: no port freedom.
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
        // Private-use schemes: exact.
        assert!(redirect_matches(
            "com.example.app:/callback",
            "com.example.app:/callback"
        ));
        for bad in [
            "com.example.app:/callback/",
            "COM.EXAMPLE.APP:/callback",
            "com.example.app:/%63allback",
            "com.example.app://callback",
            "com.example.app:/callback?x",
            "com.example.ap:/callback",
        ] {
            assert!(!redirect_matches("com.example.app:/callback", bad), "{bad}");
        }
    }

    #[test]
    fn kinds() {
        assert!(is_private_use("com.example.app:/cb"));
        assert!(!is_private_use("https://a.example/cb"));
        assert!(!is_private_use("myapp:/cb"));
        assert!(is_loopback("http://127.0.0.1:5/cb"));
        assert!(is_loopback("http://[::1]/cb"));
        assert!(is_loopback("http://localhost:9/cb"));
        assert!(!is_loopback("http://localhost.evil.example/cb"));
        assert!(!is_loopback("https://127.0.0.1/cb"));
    }

    #[test]
    fn redirect_uri_lists() {
        let ok = serde_json::json!({"auth": {"authorization_code": {
            "redirect_uri": ["com.example.app:/cb", "http://127.0.0.1/cb"]}}});
        assert!(validate(ok.as_object().unwrap()).is_ok());
        for bad in [
            serde_json::json!([]),
            serde_json::json!(["https://a.example/cb", 3]),
            serde_json::json!(["https://a.example/cb", "javascript:alert(1)"]),
            serde_json::json!({"uri": "https://a.example/cb"}),
        ] {
            let doc = serde_json::json!({"auth": {"implicit": {"redirect_uri": bad}}});
            assert!(validate(doc.as_object().unwrap()).is_err(), "{bad}");
        }
        let doc = serde_json::json!({"redirect_uri": ["a", "b"]});
        assert_eq!(redirect_uris(doc.get("redirect_uri")), vec!["a", "b"]);
        assert_eq!(redirect_uris(Some(&serde_json::json!("x"))), vec!["x"]);
    }
}
