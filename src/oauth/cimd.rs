//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document-03; MCP
//! 2025-11-25 "Client ID Metadata Documents"), with `CLIENT_ID_METADATA_DOCUMENTS=on`: a
//! `client_id` that is an https URL names a JSON document of the client's metadata, which we
//! fetch, check and turn into an in-memory Client (never stored; see [`super::register`] for
//! what such a client may be).
//!
//! The URL (draft 3): `https`, a host, a path other than `/`, no userinfo, no fragment, no `.` or
//! `..` segments (nor their percent-encoded forms), at most 2048 characters. The host must not
//! be a special-use address (draft 8.6, RFC 6890): IPv4 literals in any of the forms a WHATWG URL
//! parser reads as IPv4 (`127.1`, `0x7f.1`, `2130706433`, octal) are decoded and refused when
//! private, loopback, link-local, CGNAT, multicast, reserved or documentation ranges; IPv6
//! literals outside global unicast (`::1`, `fe80::/10`, `fc00::/7`, `::ffff:0:0/96`, ...) are
//! refused; names `localhost`, `*.localhost`, `*.local`, `*.internal`, `*.localdomain`,
//! `*.home.arpa` and single-label names are refused. Workers' `fetch` resolves names itself and
//! cannot be pinned to an address, so a public name that resolves to a private address is not
//! caught here (docs/registration.md).
//!
//! The fetch: GET, `Accept: application/json`, redirects not followed (draft 5: a 3xx is an
//! error like every status but 200), at most [`MAX_DOCUMENT_BYTES`] read (draft 8.7 recommends
//! 5 KB), within `OUTBOUND_TIMEOUT_MS`. The answer must be `application/json` (or `+json`), a
//! JSON object whose `client_id` is the URL exactly (draft 4), with valid metadata.
//!
//! Cache: per isolate, keyed by the URL, for the document's `Cache-Control: max-age` bounded
//! to [`MIN_TTL`]..[`MAX_TTL`] seconds ([`DEFAULT_TTL`] without one, [`MIN_TTL`] for `no-store`
//! / `no-cache`), at most [`MAX_CACHED`] documents. Errors and invalid documents are never cached
//! (draft 5.2): the next request fetches again.
//!
//! Tests only: `TEST_ONLY_CIMD_LOOPBACK=on` also admits `http(s)://127.0.0.1|localhost|[::1]`
//! URLs while the request came to a loopback host (and refuses to load next to a non-loopback
//! `ISSUER`), so the e2e suite can serve documents from a local server.

use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::Request;
use crate::jwt::keys::KeySet;
use crate::model::client::Client;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

/// Most bytes of a metadata document read (draft 8.7: 5 kilobytes).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Most bytes of a self-registered client's JWKS read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Cache lifetime bounds (seconds).
pub const MIN_TTL: i64 = 60;
pub const MAX_TTL: i64 = 3600;
pub const DEFAULT_TTL: i64 = 300;
/// Most documents cached per isolate; past it expired ones go, then all.
pub const MAX_CACHED: usize = 1000;
/// A self-registered client's JWKS: reused this long, refetched on an unknown `kid` at most
/// this often.
const JWKS_TTL: i64 = 300;
const JWKS_MIN_REFETCH: i64 = 30;

type Entries<T> = RefCell<HashMap<String, (i64, Rc<T>)>>;

/// Per-isolate cache of valid documents (as Client documents) and of fetched JWKS.
#[derive(Default)]
pub struct CimdCache {
    /// URL -> (valid until, the Client document).
    clients: Entries<Value>,
    /// `jwks_uri` -> (fetched at, keys).
    jwks: Entries<KeySet>,
}

impl std::fmt::Debug for CimdCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CimdCache")
            .field("clients", &self.clients.borrow().len())
            .finish_non_exhaustive()
    }
}

fn insert<T>(map: &Entries<T>, key: &str, until: i64, value: Rc<T>, now: i64, by_expiry: bool) {
    let mut m = map.borrow_mut();
    if m.len() >= MAX_CACHED {
        if by_expiry {
            m.retain(|_, (u, _)| *u > now);
        }
        if m.len() >= MAX_CACHED {
            m.clear();
        }
    }
    m.insert(key.to_string(), (until, value));
}

/// Could this `client_id` be a Client Identifier URL? Stored Client ids never hold `:`.
pub fn is_url_client_id(id: &str) -> bool {
    id.contains(':')
}

/// Is the request to a loopback host (the condition of the test-only escape)?
fn request_on_loopback(req: &Request) -> bool {
    let host = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            crate::http_util::header(req, "host")
                .map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h).to_string())
        })
        .unwrap_or_default();
    matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]")
}

/// May loopback URLs be fetched for this request (`TEST_ONLY_CIMD_LOOPBACK`)? Without a
/// request (the authorizer, for a token issued earlier), the setting alone decides.
pub fn loopback_ok(app: &App, req: Option<&Request>) -> bool {
    app.config.registration.test_only_loopback && req.is_none_or(request_on_loopback)
}

/// [`check_fetchable`] with this request's loopback allowance.
pub fn check_url(app: &App, url: &str, loopback: bool) -> std::result::Result<(), String> {
    check_fetchable(url, loopback && app.config.registration.test_only_loopback)
}

/// Checks a URL we would fetch for a self-registered client (its Client Identifier URL or its
/// `jwks_uri`); `Err` says why not. See the module docs.
pub fn check_fetchable(url: &str, loopback: bool) -> std::result::Result<(), String> {
    if url.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    if url
        .bytes()
        .any(|b| b <= 0x20 || b >= 0x7f || b == b'\\' || b == b'"')
    {
        return Err("has spaces, quotes, backslashes, control or non-ASCII characters".into());
    }
    if url.contains('#') {
        return Err("must not have a fragment".into());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "must be an absolute https URL".to_string())?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(end);
    if authority.contains('@') {
        return Err("must not have userinfo (user@)".into());
    }
    let (host, port) = split_host_port(authority)?;
    let loopback_host = matches!(
        host.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "[::1]"
    );
    let loopback = loopback && loopback_host;
    match scheme {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must use https".into()),
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
            return Err("has an invalid port".into());
        }
        if !(1..=65535).contains(&p.parse::<u32>().unwrap_or(0)) {
            return Err("has an invalid port".into());
        }
    }
    let path = path_query.split('?').next().unwrap_or("");
    if path.is_empty() || path == "/" {
        return Err("must have a path (draft 3; / alone is not accepted)".into());
    }
    for seg in path.split('/') {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        if s == "." || s == ".." {
            return Err("must not have . or .. path segments".into());
        }
    }
    if loopback {
        return Ok(());
    }
    match host_refused(host) {
        Some(why) => Err(format!("names a host we do not fetch from: {why}")),
        None => Ok(()),
    }
}

fn split_host_port(authority: &str) -> std::result::Result<(&str, Option<&str>), String> {
    if authority.is_empty() {
        return Err("has no host".into());
    }
    if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or_else(|| "has an invalid IPv6 host".to_string())?;
        let (h, rest) = authority.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Ok((h, Some(p))),
            None if rest.is_empty() => Ok((h, None)),
            None => Err("has an invalid host".into()),
        };
    }
    match authority.split_once(':') {
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((authority, None)),
    }
}

/// Why a host is refused as a fetch target (special-use addresses and local names), or None.
pub fn host_refused(host: &str) -> Option<String> {
    let h = host.to_ascii_lowercase();
    let h = h.strip_suffix('.').unwrap_or(&h);
    if h.is_empty() {
        return Some("empty host".into());
    }
    if let Some(inner) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(a) => v6_refused(a).map(|w| format!("{host} is {w}")),
            Err(_) => Some(format!("{host} is not a valid IPv6 address")),
        };
    }
    if ends_in_number(h) {
        return match whatwg_ipv4(h) {
            Some(a) => v4_refused(a).map(|w| format!("{host} is {a}, {w}")),
            None => Some(format!("{host} is not a valid IPv4 address")),
        };
    }
    if !h
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        || h.split('.').any(str::is_empty)
    {
        return Some(format!("{host} is not a plain DNS name"));
    }
    if !h.contains('.') {
        return Some(format!("{host} is a single-label (local) name"));
    }
    const LOCAL: [&str; 5] = ["localhost", "local", "internal", "localdomain", "home.arpa"];
    if LOCAL
        .iter()
        .any(|s| h == *s || h.ends_with(&format!(".{s}")))
    {
        return Some(format!("{host} is a local name"));
    }
    None
}

/// WHATWG URL "ends in a number": the host is parsed as IPv4 when its last label is one.
fn ends_in_number(h: &str) -> bool {
    let mut labels: Vec<&str> = h.split('.').collect();
    if labels.last() == Some(&"") && labels.len() > 1 {
        labels.pop();
    }
    let last = labels.last().copied().unwrap_or("");
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x")
        .is_some_and(|x| x.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The WHATWG URL IPv4 parser: 1 to 4 parts, each decimal, `0x` hex or `0`-prefixed octal;
/// the last fills the remaining bytes. None: not a valid IPv4 address (the URL is invalid).
pub fn whatwg_ipv4(h: &str) -> Option<Ipv4Addr> {
    let mut parts: Vec<&str> = h.split('.').collect();
    if parts.last() == Some(&"") && parts.len() > 1 {
        parts.pop();
    }
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let n = if let Some(x) = p.strip_prefix("0x") {
            if x.is_empty() {
                0
            } else {
                u64::from_str_radix(x, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            if p.is_empty() {
                return None;
            }
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let last = nums.pop()?;
    if nums.iter().any(|n| *n > 255) {
        return None;
    }
    let rest_bytes = 4 - nums.len() as u32;
    if last >= 1u64 << (8 * rest_bytes) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in nums.iter().enumerate() {
        v |= n << (8 * (3 - i as u32));
    }
    v |= last;
    Some(Ipv4Addr::from(v as u32))
}

/// RFC 6890 and later special-use IPv4 ranges.
fn v4_refused(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    let n = u32::from(a);
    let within = |net: u32, bits: u32| (n ^ net) >> (32 - bits) == 0;
    let why = if within(0x0000_0000, 8) {
        "in 0.0.0.0/8 (this network)"
    } else if within(0x0a00_0000, 8) || within(0xac10_0000, 12) || within(0xc0a8_0000, 16) {
        "private (RFC 1918)"
    } else if within(0x6440_0000, 10) {
        "shared address space (CGNAT, 100.64.0.0/10)"
    } else if o[0] == 127 {
        "loopback"
    } else if within(0xa9fe_0000, 16) {
        "link-local"
    } else if within(0xc000_0000, 24) || within(0xc058_6300, 24) {
        "IETF protocol assignments / relay"
    } else if within(0xc000_0200, 24) || within(0xc633_6400, 24) || within(0xcb00_7100, 24) {
        "documentation"
    } else if within(0xc612_0000, 15) {
        "benchmarking"
    } else if o[0] >= 224 {
        "multicast or reserved"
    } else {
        return None;
    };
    Some(why)
}

/// IPv6: only global unicast (2000::/3), without documentation, 6to4 and Teredo.
fn v6_refused(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    if let Some(v4) = a.to_ipv4_mapped() {
        return v4_refused(v4).or(Some("an IPv4-mapped address"));
    }
    if (s[0] & 0xe000) != 0x2000 {
        return Some(
            "not a global unicast IPv6 address (loopback, link-local, unique-local, multicast)",
        );
    }
    if (s[0] == 0x2001 && s[1] == 0x0db8) || s[0] == 0x2002 || (s[0] == 0x2001 && s[1] == 0) {
        return Some("a documentation, 6to4 or Teredo address");
    }
    None
}

/// The cache lifetime a `Cache-Control` header asks for, bounded (see the module docs).
pub fn ttl(cache_control: Option<&str>) -> i64 {
    let Some(cc) = cache_control else {
        return DEFAULT_TTL;
    };
    let mut ttl = None;
    for d in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if d == "no-store" || d == "no-cache" {
            return MIN_TTL;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            ttl = v.trim_matches('"').parse::<i64>().ok();
        }
    }
    ttl.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL)
}

fn refused(why: impl std::fmt::Display) -> Error {
    Error::InvalidClient(format!("client_id metadata document: {why}"))
}

/// Is a `Content-Type` JSON (`application/json` or `application/<x>+json`)?
fn json_media(ct: Option<&str>) -> bool {
    let Some(ct) = ct else { return false };
    let m = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
}

/// The Client a Client Identifier URL names: cached, or fetched and checked. `Err` is
/// `invalid_client` with the reason (never cached).
pub async fn resolve(app: &App, url: &str, loopback: bool) -> Result<Client> {
    let now = app.now();
    let hit = app.cache.cimd.clients.borrow().get(url).cloned();
    if let Some((until, doc)) = hit {
        if until > now {
            return Ok(Client::from_doc((*doc).clone()));
        }
    }
    check_url(app, url, loopback).map_err(|why| refused(format_args!("client_id {why}")))?;
    let got = app
        .platform
        .http
        .get_limited(url, "application/json", MAX_DOCUMENT_BYTES)
        .await
        .map_err(|e| refused(format_args!("could not be fetched ({e})")))?;
    if got.status != 200 {
        return Err(refused(format_args!(
            "{url} answered {} (it must answer 200; redirects are not followed)",
            got.status
        )));
    }
    let Some(body) = got.body.as_deref() else {
        return Err(refused(format_args!(
            "larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    };
    if !json_media(got.header("content-type")) {
        return Err(refused("not served as application/json"));
    }
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
        return Err(refused("not a JSON object"));
    };
    if m.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err(refused(
            "its client_id is not exactly the URL it was fetched from",
        ));
    }
    let (doc, _) = super::register::client_doc(
        &m,
        url,
        super::register::CIMD_FIELD,
        json!({"fetched_at": now}),
        &|u| check_url(app, u, loopback),
    )
    .map_err(|e| refused(format_args!("{}: {}", e.code, e.description)))?;
    let doc = Rc::new(Value::Object(doc));
    let until = now + ttl(got.header("cache-control"));
    insert(&app.cache.cimd.clients, url, until, doc.clone(), now, true);
    Ok(Client::from_doc((*doc).clone()))
}

/// The client `id` names at the OAuth endpoints (and for our own tokens): a Client Identifier
/// URL resolved with [`resolve`] when `CLIENT_ID_METADATA_DOCUMENTS=on`, else a stored Client
/// ([`crate::authn::load_client`]).
pub async fn load_client(app: &App, req: Option<&Request>, id: &str) -> Result<Option<Client>> {
    if app.config.registration.metadata_documents && is_url_client_id(id) {
        if req.is_some_and(|r| on_own_origin(app, r, id)) {
            return Err(refused(
                "client_id is on this server's own origin, which serves no \
                 client documents (a fetch of it would call this Worker again)",
            ));
        }
        return resolve(app, id, loopback_ok(app, req)).await.map(Some);
    }
    crate::authn::load_client(app, id).await
}

/// Is `url` on this Worker's own origin (the issuer's)? Never fetched for a client: our pages
/// are no client documents, and a nested `client_id` would make the Worker fetch itself again
/// and again.
fn on_own_origin(app: &App, req: &Request, url: &str) -> bool {
    let own = crate::cors::origin_of(&app.issuer(req));
    own.is_some() && crate::cors::origin_of(url) == own
}

/// The keys at a self-registered client's `jwks_uri`, fetched as its document is (no
/// redirects, a size limit, the SSRF checks); cached [`JWKS_TTL`] seconds, refetched on
/// `refresh` (an unknown `kid`) when older than [`JWKS_MIN_REFETCH`].
pub async fn jwks_keys(app: &App, req: &Request, url: &str, refresh: bool) -> Result<Rc<KeySet>> {
    let now = app.now();
    let hit = app.cache.cimd.jwks.borrow().get(url).cloned();
    if let Some((at, keys)) = hit {
        if now - at < JWKS_TTL && !(refresh && now - at >= JWKS_MIN_REFETCH) {
            return Ok(keys);
        }
    }
    let bad = |why: String| Error::InvalidClient(format!("client jwks_uri: {why}"));
    if on_own_origin(app, req, url) {
        return Err(bad(
            "is on this server's own origin, which serves no client keys".into(),
        ));
    }
    check_url(app, url, loopback_ok(app, Some(req))).map_err(bad)?;
    let got = app
        .platform
        .http
        .get_limited(url, "application/json", MAX_JWKS_BYTES)
        .await
        .map_err(|e| bad(format!("could not be fetched ({e})")))?;
    if got.status != 200 {
        return Err(bad(format!("answered {}", got.status)));
    }
    let body = got
        .body
        .ok_or_else(|| bad(format!("larger than {MAX_JWKS_BYTES} bytes")))?;
    let v: Value = serde_json::from_slice(&body).map_err(|_| bad("not JSON".into()))?;
    let keys = Rc::new(KeySet::from_jwks(&v).map_err(bad)?);
    insert(&app.cache.cimd.jwks, url, now, keys.clone(), now, false);
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_use_hosts_are_refused_in_every_spelling() {
        for h in [
            "127.0.0.1",
            "127.1",
            "0x7f.1",
            "0x7f000001",
            "2130706433",
            "017700000001",
            "0177.0.0.1",
            "0",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "[::1]",
            "[::]",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[fe80::1]",
            "[fd00::1]",
            "[fc00::1]",
            "[ff02::1]",
            "[64:ff9b::7f00:1]",
            "[2002:7f00:1::]",
            "[2001:db8::1]",
            "localhost",
            "LOCALHOST",
            "localhost.",
            "a.localhost",
            "printer.local",
            "metadata.google.internal",
            "intranet",
            "1.2.3.256",
            "1.2.3.4.5",
            "0x100.1",
            "ex%61mple.com",
            "exämple.com",
        ] {
            assert!(host_refused(h).is_some(), "{h} should be refused");
        }
        for h in [
            "example.com",
            "client.example.com",
            "93.184.216.34",
            "[2606:4700::1111]",
            "1.2.3.example.com",
        ] {
            assert_eq!(host_refused(h), None, "{h} should be allowed");
        }
    }

    #[test]
    fn whatwg_ipv4_forms() {
        let ip = |s| whatwg_ipv4(s).map(|a| a.to_string());
        assert_eq!(ip("127.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("0x7f.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("2130706433").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("0177.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("10.0x10.1").as_deref(), Some("10.16.0.1"));
        assert_eq!(ip("1.2.3.4.").as_deref(), Some("1.2.3.4"));
        assert_eq!(ip("4294967296"), None);
        assert_eq!(ip("08.1.1.1"), None);
    }

    #[test]
    fn client_id_urls_follow_the_draft() {
        let ok = |u| check_fetchable(u, false);
        assert_eq!(ok("https://client.example.com/oauth/client.json"), Ok(()));
        assert_eq!(ok("https://client.example.com:8443/c?x=1"), Ok(()));
        for bad in [
            "http://client.example.com/c",
            "https://client.example.com",
            "https://client.example.com/",
            "https://client.example.com/c#frag",
            "https://user:pw@client.example.com/c",
            "https://client.example.com/a/../c",
            "https://client.example.com/a/./c",
            "https://client.example.com/a/%2e%2E/c",
            "https://client.example.com:0/c",
            "https://client.example.com:99999/c",
            "https://client.example.com/a b",
            "https://127.0.0.1/c",
            "https://0x7f.1/c",
            "https://[::ffff:127.0.0.1]/c",
            "https://localhost:8443/c",
            "ftp://client.example.com/c",
            "client.example.com/c",
        ] {
            assert!(ok(bad).is_err(), "{bad} should be refused");
        }
        // The test-only escape: loopback only, http allowed there, nothing else widened.
        assert_eq!(check_fetchable("http://127.0.0.1:8080/c", true), Ok(()));
        assert_eq!(check_fetchable("http://localhost:8080/c", true), Ok(()));
        assert!(check_fetchable("http://10.0.0.1/c", true).is_err());
        assert!(check_fetchable("http://127.0.0.2/c", true).is_err());
        assert!(check_fetchable("http://example.com/c", true).is_err());
    }

    #[test]
    fn cache_lifetimes_are_bounded() {
        assert_eq!(ttl(None), DEFAULT_TTL);
        assert_eq!(ttl(Some("max-age=5")), MIN_TTL);
        assert_eq!(ttl(Some("public, max-age=600")), 600);
        assert_eq!(ttl(Some("max-age=999999")), MAX_TTL);
        assert_eq!(ttl(Some("no-store")), MIN_TTL);
        assert_eq!(ttl(Some("max-age=abc")), DEFAULT_TTL);
    }
}
