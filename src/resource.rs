//! The protected API as an OAuth resource server: RFC 9728 protected-resource metadata, the
//! `resource_metadata` parameter of our `WWW-Authenticate` challenges (RFC 9728 5.1), and RFC
//! 8707 resource indicators (validation, canonical form, which resources a client may ask for).
//!
//! `PROTECTED_RESOURCES` (comma-separated path prefixes, e.g. `/mcp,/fhir`) names parts of the
//! protected API that are resources of their own: the resource identifier of a prefix `P` is
//! `{issuer}{P}`. The rest of the API (and all of it when the setting is unset) is the issuer.
//! A token whose `aud` is the plain default audience (`AUDIENCE`, else the issuer) is accepted
//! everywhere, as before; a token minted for one of the prefixes is accepted only under it.

use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{json_response, Request, Response};
use serde_json::{Map, Value};

/// The well-known name of RFC 9728 3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Longest `resource` value looked at (RFC 8707 sets none; a URL this long is no resource of
/// anyone's, and it would be copied into tokens).
pub const MAX_RESOURCE_LEN: usize = 2048;

/// First path segments the server owns: never a protected-resource prefix.
const RESERVED: [&str; 4] = ["auth", ".well-known", "app", "console"];

/// Reads `PROTECTED_RESOURCES`: `/`-rooted paths of plain segments (letters, digits, `-`, `_`,
/// `.`; no empty, `.` or `..` segment, no query or fragment), not `/` itself (the issuer is
/// already the resource of the whole API), not under a path the server owns; at most 16.
/// Stored without a trailing `/`, longest first (the longest prefix decides).
pub fn parse_setting(v: Option<String>) -> std::result::Result<Vec<String>, String> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = Vec::new();
    for raw in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let bad = |why: &str| Err(format!("PROTECTED_RESOURCES: {raw:?} {why}"));
        if !raw.starts_with('/') {
            return bad("must start with /");
        }
        let prefix = raw.trim_end_matches('/');
        if prefix.is_empty() {
            return bad("is the root, which is the issuer's resource already");
        }
        let segments = match crate::config::plain_segments(prefix) {
            Ok(s) => s,
            Err(why) => return bad(why),
        };
        if segments.first().is_some_and(|s| RESERVED.contains(s)) {
            return bad("is under /auth, /.well-known, /app or /console, which the server owns");
        }
        if !out.iter().any(|p| p == prefix) {
            out.push(prefix.to_string());
        }
    }
    if out.len() > 16 {
        return Err("PROTECTED_RESOURCES may list at most 16 paths".into());
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.len()));
    Ok(out)
}

/// The configured prefix `path` is under (`path` equal to it or below it), if any.
pub fn prefix_of<'a>(prefixes: &'a [String], path: &str) -> Option<&'a str> {
    prefixes
        .iter()
        .find(|p| {
            path.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .map(String::as_str)
}

/// The resource identifier of the part of the API `path` belongs to: `{issuer}{prefix}`, or
/// the issuer.
pub fn of_path(app: &App, issuer: &str, path: &str) -> String {
    match prefix_of(&app.config.protected_resources, path) {
        Some(p) => format!("{issuer}{p}"),
        None => issuer.to_string(),
    }
}

/// A token minted for a prefix's resource is valid under that prefix only; `Some` names the
/// resource of `path` when it is a prefix's (then a token's `aud` may be it or the default
/// audience), `None` when the path is the issuer's (then only the default audience, as before).
pub fn prefix_resource(app: &App, issuer: &str, path: &str) -> Option<String> {
    prefix_of(&app.config.protected_resources, path).map(|p| format!("{issuer}{p}"))
}

/// Every resource of this Worker: the issuer and `{issuer}{prefix}` of each prefix.
pub fn ours(app: &App, issuer: &str) -> Vec<String> {
    let mut v = vec![issuer.to_string()];
    v.extend(
        app.config
            .protected_resources
            .iter()
            .map(|p| format!("{issuer}{p}")),
    );
    v
}

/// The URL of the protected-resource metadata of `resource` (RFC 9728 3.1: the well-known
/// segment between the host and the path).
pub fn metadata_url(resource: &str) -> String {
    match split_origin(resource) {
        Some((origin, path)) => format!("{origin}{WELL_KNOWN}{path}"),
        None => format!("{resource}{WELL_KNOWN}"),
    }
}

/// `scheme://authority` and the rest (path, query) of an absolute http(s) URL.
fn split_origin(url: &str) -> Option<(&str, &str)> {
    let after = url.find("://")? + 3;
    let end = url[after..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after + i);
    Some((&url[..end], &url[end..]))
}

/// The scopes listed in the metadata: those an authorization request may carry for the API
/// (SMART clinical scopes are patterns, `patient/Observation.rs`, and not listed).
const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// `GET /.well-known/oauth-protected-resource[/<path>]` (RFC 9728 3): the document of the
/// resource whose path is the suffix; an unknown suffix is 404 (3.1).
pub fn metadata(app: &App, req: &Request, suffix: &[&str]) -> Result<Response> {
    let issuer = app.issuer(req);
    let wanted = if suffix.is_empty() {
        String::new()
    } else {
        format!("/{}", suffix.join("/"))
    };
    let resource = ours(app, &issuer)
        .into_iter()
        .find(|r| split_origin(r).map_or("", |(_, p)| p).trim_end_matches('/') == wanted)
        .ok_or_else(|| Error::NotFound("no protected resource has this path".into()))?;
    let mut m = Map::new();
    m.insert("resource".into(), Value::String(resource));
    m.insert(
        "authorization_servers".into(),
        Value::Array(vec![Value::String(issuer)]),
    );
    let list =
        |items: &[&str]| Value::Array(items.iter().map(|s| Value::String((*s).into())).collect());
    m.insert("scopes_supported".into(), list(&SCOPES));
    m.insert("bearer_methods_supported".into(), list(&["header"]));
    // RFC 9728 2: the DPoP proof algorithms this resource accepts (RFC 9449 5.1).
    m.insert(
        "dpop_signing_alg_values_supported".into(),
        list(&crate::oauth::dpop::ALGS),
    );
    Ok(json_response(200, &Value::Object(m)))
}

/// Validates a `resource` parameter (RFC 8707 2: an absolute URI without a fragment) and
/// returns its canonical form: an http(s) URL gets its scheme and host lowercased, the default
/// port dropped and trailing slashes of the path removed (`HTTPS://Host:443/mcp/` is
/// `https://host/mcp`, and `https://host/` is `https://host`, the spelling of our issuer); the
/// path's case is kept. Other absolute URIs (`urn:...`) are kept as written. Refused
/// (`invalid_target`): a relative or empty value, a fragment, whitespace or control
/// characters, user info, a `.`/`..` path segment, more than [`MAX_RESOURCE_LEN`] bytes.
pub fn canonical(value: &str) -> Result<String> {
    let bad = |why: &str| Err(Error::InvalidTarget(format!("resource {why} (RFC 8707 2)")));
    if value.len() > MAX_RESOURCE_LEN {
        return bad(&format!("is longer than {MAX_RESOURCE_LEN} bytes"));
    }
    if value.is_empty() {
        return bad("is empty");
    }
    if value
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b >= 0x80 || b == b'"' || b == b'\\')
    {
        return bad("holds whitespace, control, quote or non-ASCII characters");
    }
    if value.contains('#') {
        return bad("must not have a fragment");
    }
    // RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':'.
    let Some((scheme, rest)) = value.split_once(':') else {
        return bad("must be an absolute URI");
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || rest.is_empty() {
        return bad("must be an absolute URI");
    }
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        if matches!(scheme.as_str(), "javascript" | "data" | "file" | "vbscript") {
            return bad("has a scheme that names no resource server");
        }
        return Ok(format!("{scheme}:{rest}"));
    }
    let Some(rest) = rest.strip_prefix("//") else {
        return bad("must be an absolute http(s) URL with a host");
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return bad("must not carry user info");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, after)) => (&authority[..h.len() + 2], after.strip_prefix(':')),
            None => return bad("has a malformed IPv6 host"),
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.len() == 2 && host.starts_with('[') {
        return bad("must be an absolute http(s) URL with a host");
    }
    if authority.starts_with('[') && port.is_none() && authority.len() != host.len() {
        return bad("has a malformed IPv6 host");
    }
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')),
        None => host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')),
    };
    if !host_ok {
        return bad("has a malformed host");
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u32>() {
                Ok(n) if n <= 65535 => Some(n),
                _ => return bad("has a malformed port"),
            }
        }
        Some(_) => return bad("has a malformed port"),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    if path.split('/').any(|seg| {
        seg == "."
            || seg == ".."
            || seg.eq_ignore_ascii_case("%2e")
            || seg.eq_ignore_ascii_case("%2e%2e")
    }) {
        return bad("must not have '.' or '..' path segments");
    }
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    if let Some(p) = port.filter(|p| *p != default_port) {
        out.push_str(&format!(":{p}"));
    }
    out.push_str(path.trim_end_matches('/'));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// A `resource` parameter (RFC 8707) a client asks for, at the authorization or the token
/// endpoint: its canonical form ([`canonical`]) when it is one of this Worker's resources
/// ([`ours`]), the API's audience (`AUDIENCE`), one of the client's `auth.<flow>.audience`, or
/// admitted by the client's `audience` pattern (as the `audience` parameter always was);
/// `invalid_target` otherwise. The issuer, the resource of the whole API, gives the API's
/// audience (`AUDIENCE` when set): the token any path accepts, as without a `resource`.
pub fn authorized(
    app: &App,
    req: &Request,
    client: &crate::model::client::Client,
    flow: &str,
    value: &str,
) -> Result<String> {
    let c = canonical(value)?;
    let issuer = app.issuer(req);
    let listed = client.flow_audiences(flow);
    let ok = ours(app, &issuer).contains(&c)
        || c == app.audience(req)
        || [value, c.as_str()]
            .iter()
            .any(|v| listed.contains(v) || client.audience_allows(v));
    if c == issuer {
        Ok(app.audience(req))
    } else if ok {
        Ok(c)
    } else {
        Err(Error::InvalidTarget(format!(
            "resource \"{c}\" is not a resource this client may ask for"
        )))
    }
}

/// A `resource` on a token request that continues an earlier grant (a code's redemption, a
/// refresh): absent, or naming the resource that grant is for (RFC 8707 2.2: a refresh may
/// narrow to the granted resources only; this server grants one per token).
pub fn check_same(
    app: &App,
    req: &Request,
    params: &std::collections::BTreeMap<String, String>,
    granted: &str,
) -> Result<()> {
    let same = |c: &str| c == granted || (c == app.issuer(req) && granted == app.audience(req));
    match params.get("resource") {
        None => Ok(()),
        Some(v) if same(&canonical(v)?) => Ok(()),
        Some(_) => Err(Error::InvalidTarget(
            "resource differs from the one this grant was authorized for".into(),
        )),
    }
}

/// `, resource_metadata="<url>"` appended to each Bearer and DPoP challenge of an error on the
/// protected API (RFC 9728 5.1): the metadata of the resource `path` belongs to. Every
/// `WWW-Authenticate` value is kept (a refused token carries a Bearer and a DPoP challenge).
pub fn add_metadata_to_challenge(resp: &mut Response, resource: &str) {
    let values: Vec<Vec<u8>> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
    if values.is_empty() {
        return;
    }
    let param = format!(", resource_metadata=\"{}\"", metadata_url(resource));
    let scheme = |c: &[u8], s: &[u8]| c.len() >= s.len() && c[..s.len()].eq_ignore_ascii_case(s);
    let mut out = Vec::with_capacity(values.len());
    for mut v in values {
        if scheme(&v, b"bearer") || scheme(&v, b"dpop ") {
            v.extend_from_slice(param.as_bytes());
        }
        match http::HeaderValue::from_bytes(&v) {
            Ok(h) => out.push(h),
            Err(_) => return,
        }
    }
    let headers = resp.headers_mut();
    headers.remove("www-authenticate");
    for h in out {
        headers.append("www-authenticate", h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            canonical("HTTPS://Host:443/mcp/").unwrap(),
            "https://host/mcp"
        );
        assert_eq!(canonical("https://host/").unwrap(), "https://host");
        assert_eq!(canonical("http://Host:80/A/b").unwrap(), "http://host/A/b");
        assert_eq!(
            canonical("https://host:8443/x").unwrap(),
            "https://host:8443/x"
        );
        assert_eq!(canonical("https://[::1]:443/x").unwrap(), "https://[::1]/x");
        assert_eq!(canonical("urn:example:api").unwrap(), "urn:example:api");
        for bad in [
            "",
            "/mcp",
            "mcp",
            "https://host/mcp#frag",
            "javascript:alert(1)",
            "https://user@host/x",
            "https://host/a/../b",
            "https:///x",
            "https://host:99999/x",
            "https://host/a b",
            "https://ho\"st/",
            "https://a:b:443/x",
            "https://[::1/x",
            "https://[::1]x/",
            "https://[zz]/",
        ] {
            assert!(
                matches!(canonical(bad), Err(Error::InvalidTarget(_))),
                "{bad:?}"
            );
        }
        assert!(canonical(&format!("https://h/{}", "a".repeat(10_000))).is_err());
    }

    #[test]
    fn setting() {
        assert_eq!(parse_setting(None).unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_setting(Some("/mcp, /fhir/r4/,/mcp".into())).unwrap(),
            vec!["/fhir/r4".to_string(), "/mcp".to_string()]
        );
        for bad in [
            "mcp",
            "/",
            "/a/../b",
            "/a?x=1",
            "/auth/x",
            "/.well-known",
            "/a#b",
            "/a//b",
        ] {
            assert!(parse_setting(Some(bad.into())).is_err(), "{bad}");
        }
        let p = parse_setting(Some("/mcp,/fhir".into())).unwrap();
        assert_eq!(prefix_of(&p, "/mcp"), Some("/mcp"));
        assert_eq!(prefix_of(&p, "/mcp/tools"), Some("/mcp"));
        assert_eq!(prefix_of(&p, "/mcpx"), None);
        assert_eq!(prefix_of(&p, "/Patient"), None);
    }

    #[test]
    fn metadata_urls() {
        assert_eq!(
            metadata_url("https://h"),
            "https://h/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            metadata_url("https://h:8787/mcp"),
            "https://h:8787/.well-known/oauth-protected-resource/mcp"
        );
    }
}
