//! Deployment settings, read from Worker vars and secrets (docs/configuration.md "Settings").

use crate::jwt::keys::KeySet;
use crate::secret::{Secret, DEFAULT_ITERATIONS};

/// Debug (by hand below) names the secrets' presence and the signing key's `kid`, never them.
#[derive(Clone)]
pub struct Config {
    /// `ISSUER`: our `iss`. Unset: the origin of each request (fine for dev; set it in production).
    pub issuer: Option<String>,
    /// `AUDIENCE`: the `aud` of tokens for the protected API. Unset: the issuer.
    pub audience: Option<String>,
    /// `ADMIN_SECRET`: the secret of the built-in `root` client. Unset: no root.
    pub admin_secret: Option<Secret>,
    /// `SIGNING_KEY` + `PUBLISHED_KEYS`.
    pub keys: KeySet,
    /// `ORIGIN_URL`: where allowed requests go. Unset: the built-in demo FHIR origin.
    pub origin_url: Option<String>,
    /// `PBKDF2_ITERATIONS` for new hashes (default 100,000, the most deployed Workers allow).
    pub pbkdf2_iterations: u32,
    /// `CACHE_TTL`: seconds a KV read is reused within an isolate (default 10).
    pub cache_ttl: i64,
    /// `MAX_BODY_BYTES`: largest request body buffered (default 1 MiB); larger gets 413.
    pub max_body_bytes: usize,
    /// Seconds of clock skew tolerated on `exp`/`nbf` (default 30).
    pub leeway: i64,
    /// Login throttling (docs/configuration.md "Settings", `LOGIN_*`).
    pub throttle: Throttle,
    /// `OUTBOUND_TIMEOUT_MS`: how long an outbound fetch (JWKS, introspection, origin) may take
    /// before it is given up (default 10,000).
    pub outbound_timeout_ms: u32,
    /// `STORE_TIMEOUT_MS`: how long a KV or Durable Object call may take (default 10,000).
    pub store_timeout_ms: u32,
    /// `SMART_USER_SCOPE_TYPES`: the `fhirUser` resource types whose users may be granted SMART
    /// `user/` scopes (comma-separated; default [`DEFAULT_USER_SCOPE_TYPES`]). `Patient` may
    /// never be listed: a patient user gets `patient/` scopes for their own patient only.
    pub user_scope_types: Vec<String>,
    /// `FHIR_BASE_PATHS`: where the FHIR API is served (comma-separated paths, `/` for the
    /// root; default [`DEFAULT_FHIR_BASES`], as Aidbox). Stored without a trailing `/`, the
    /// root as `""`, longest first. Drives route params, operation ids, the `/fhir/Client`
    /// aliases of the admin API, the smart-on-fhir engine's default base and
    /// `<base>/.well-known/smart-configuration`.
    pub fhir_bases: Vec<String>,
    /// `REVOCATION_FEEDS`: how many objects (`feed-0` .. `feed-{n-1}`) every access-token
    /// revocation is written to; each isolate polls one (default 16, 1 to 256; docs/scale.md).
    pub revocation_feeds: u16,
    /// `PROTECTED_RESOURCES`: path prefixes of the protected API that are resources of their
    /// own (RFC 8707, RFC 9728), `{issuer}{prefix}`; empty: one resource, the issuer
    /// ([`crate::resource::parse_setting`]).
    pub protected_resources: Vec<String>,
    /// Registration without an administrator (src/oauth/register.rs, src/oauth/cimd.rs).
    pub registration: Registration,
    /// `DPOP_NONCE` = `on`|`off` (default off): DPoP proofs must carry a server nonce
    /// (RFC 9449 8; src/oauth/dpop.rs).
    pub dpop_nonce: bool,
}

/// `CLIENT_ID_METADATA_DOCUMENTS`, `DYNAMIC_REGISTRATION` and their limits (docs/registration.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    /// `CLIENT_ID_METADATA_DOCUMENTS` = `on`: an https `client_id` is resolved by fetching it.
    pub metadata_documents: bool,
    /// `DYNAMIC_REGISTRATION` = `on`: RFC 7591 `POST /auth/register`.
    pub dynamic: bool,
    /// `DYNAMIC_REGISTRATION_LIMIT`: registrations per client address per hour (default 20).
    pub limit: u32,
    /// `TEST_ONLY_CIMD_LOOPBACK` = `on`: TESTS ONLY. Metadata documents may also be fetched from
    /// `http(s)://127.0.0.1|localhost|[::1]:<port>` while this Worker itself is reached on a
    /// loopback host (draft-ietf-oauth-client-id-metadata-document, SSRF considerations).
    pub test_only_loopback: bool,
}

/// Reads an `on`/`off` switch (unset: off).
fn switch(name: &str, v: Option<String>) -> Result<bool, String> {
    match v.as_deref().map(str::trim) {
        None | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(other) => Err(format!("{name} must be on or off, got {other:?}")),
    }
}

/// Reads the registration settings; the loopback escape is refused next to an `ISSUER` that is
/// not itself on loopback (it could only be a production deployment).
fn registration(
    get: impl Fn(&str) -> Option<String>,
    issuer: Option<&str>,
) -> Result<Registration, String> {
    let limit: u32 = parse_num(
        "DYNAMIC_REGISTRATION_LIMIT",
        get("DYNAMIC_REGISTRATION_LIMIT"),
        20,
    )?;
    if limit == 0 {
        return Err("DYNAMIC_REGISTRATION_LIMIT must be at least 1".into());
    }
    let r = Registration {
        metadata_documents: switch(
            "CLIENT_ID_METADATA_DOCUMENTS",
            get("CLIENT_ID_METADATA_DOCUMENTS"),
        )?,
        dynamic: switch("DYNAMIC_REGISTRATION", get("DYNAMIC_REGISTRATION"))?,
        limit,
        test_only_loopback: switch("TEST_ONLY_CIMD_LOOPBACK", get("TEST_ONLY_CIMD_LOOPBACK"))?,
    };
    if r.test_only_loopback {
        if let Some(i) = issuer {
            let host = i
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_string));
            if !matches!(host.as_deref(), Some("127.0.0.1" | "localhost" | "[::1]")) {
                return Err(
                    "TEST_ONLY_CIMD_LOOPBACK is for tests on loopback only; ISSUER is not a \
                     loopback URL"
                        .into(),
                );
            }
        }
    }
    Ok(r)
}

/// The default of `FHIR_BASE_PATHS`: the root and `/fhir`, as Aidbox serves FHIR.
pub const DEFAULT_FHIR_BASES: [&str; 2] = ["/fhir", ""];

/// First path segments that belong to the server itself and can never be a FHIR base.
const RESERVED_FIRST_SEGMENTS: [&str; 3] = ["auth", ".well-known", "app"];

/// The segments of a `/`-rooted setting path (`/a/b` -> `a`, `b`): each non-empty, not `.` or
/// `..`, of letters, digits, `-`, `_` and `.` only (so no query or fragment either); the reason
/// otherwise. Shared by `FHIR_BASE_PATHS` and `PROTECTED_RESOURCES`.
pub fn plain_segments(path: &str) -> Result<Vec<&str>, &'static str> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for seg in &segments {
        if seg.is_empty() || *seg == "." || *seg == ".." {
            return Err("has an empty, '.' or '..' segment");
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err("may hold only letters, digits, '-', '_' and '.' (no query or fragment)");
        }
    }
    Ok(segments)
}

/// Reads `FHIR_BASE_PATHS`: `/`-rooted paths of plain segments (letters, digits, `-`, `_`,
/// `.`), no `.`/`..`, not under `/auth`, `/.well-known` or `/app`, naming no admin type.
pub fn fhir_bases(v: Option<String>) -> Result<Vec<String>, String> {
    let Some(v) = v else {
        return Ok(DEFAULT_FHIR_BASES.map(str::to_string).to_vec());
    };
    let mut out: Vec<String> = Vec::new();
    for raw in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let bad = |why: &str| Err(format!("FHIR_BASE_PATHS: {raw:?} {why}"));
        if !raw.starts_with('/') {
            return bad("must start with /");
        }
        let base = raw.trim_end_matches('/');
        let segments =
            plain_segments(base).map_err(|why| format!("FHIR_BASE_PATHS: {raw:?} {why}"))?;
        for seg in &segments {
            if crate::model::is_server_type(seg) {
                return bad("names a resource type of the admin API");
            }
        }
        if segments
            .first()
            .is_some_and(|s| RESERVED_FIRST_SEGMENTS.contains(s))
        {
            return bad("is under /auth, /.well-known or /app, which the server owns");
        }
        if !out.iter().any(|b| b == base) {
            out.push(base.to_string());
        }
    }
    if out.is_empty() {
        return Err("FHIR_BASE_PATHS must list at least one path (/ for the root)".into());
    }
    if out.len() > 8 {
        return Err("FHIR_BASE_PATHS may list at most 8 paths".into());
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.len()));
    Ok(out)
}

/// The default of `SMART_USER_SCOPE_TYPES`.
pub const DEFAULT_USER_SCOPE_TYPES: [&str; 4] = [
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "Person",
];

/// Reads `SMART_USER_SCOPE_TYPES`: FHIR resource type names, comma-separated, never `Patient`.
fn user_scope_types(v: Option<String>) -> Result<Vec<String>, String> {
    let Some(v) = v else {
        return Ok(DEFAULT_USER_SCOPE_TYPES.map(str::to_string).to_vec());
    };
    let mut out = Vec::new();
    for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !crate::smart::is_resource_type(t) {
            return Err(format!(
                "SMART_USER_SCOPE_TYPES must list FHIR resource types, got {t:?}"
            ));
        }
        if t == "Patient" {
            return Err(
                "SMART_USER_SCOPE_TYPES may not list Patient: a patient user gets patient/ scopes only"
                    .into(),
            );
        }
        out.push(t.to_string());
    }
    Ok(out)
}

/// Limits of the login throttle (see [`crate::state::throttle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// `LOGIN_MAX_FAILURES`: failed sign-ins per user within `window` before a lockout (5).
    pub max_failures: u32,
    /// `LOGIN_ADDRESS_MAX_FAILURES`: failed sign-ins per client address within `window` (20).
    pub address_max_failures: u32,
    /// `LOGIN_WINDOW`: seconds over which failures are counted (900).
    pub window: i64,
    /// `LOGIN_LOCKOUT`: seconds of the first lockout; each further one doubles it (30).
    pub lockout: i64,
    /// `LOGIN_LOCKOUT_MAX`: the longest lockout, in seconds (900).
    pub lockout_max: i64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            max_failures: 5,
            address_max_failures: 20,
            window: 900,
            lockout: 30,
            lockout_max: 900,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: None,
            audience: None,
            admin_secret: None,
            keys: KeySet::default(),
            origin_url: None,
            pbkdf2_iterations: DEFAULT_ITERATIONS,
            cache_ttl: 10,
            max_body_bytes: 1024 * 1024,
            leeway: 30,
            throttle: Throttle::default(),
            outbound_timeout_ms: 10_000,
            store_timeout_ms: 10_000,
            user_scope_types: DEFAULT_USER_SCOPE_TYPES.map(str::to_string).to_vec(),
            fhir_bases: DEFAULT_FHIR_BASES.map(str::to_string).to_vec(),
            revocation_feeds: DEFAULT_REVOCATION_FEEDS,
            protected_resources: Vec::new(),
            registration: Registration {
                limit: 20,
                ..Registration::default()
            },
            dpop_nonce: false,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |b: bool| if b { "<redacted>" } else { "<unset>" };
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("admin_secret", &set(self.admin_secret.is_some()))
            .field(
                "signing_key",
                &self.keys.signing.as_ref().map(|k| format!("kid {}", k.kid)),
            )
            .field(
                "published_kids",
                &self
                    .keys
                    .verifying
                    .iter()
                    .map(|k| k.kid.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("origin_url", &self.origin_url)
            .field("pbkdf2_iterations", &self.pbkdf2_iterations)
            .field("cache_ttl", &self.cache_ttl)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("leeway", &self.leeway)
            .field("user_scope_types", &self.user_scope_types)
            .field("fhir_bases", &self.fhir_bases)
            .field("revocation_feeds", &self.revocation_feeds)
            .field("protected_resources", &self.protected_resources)
            .field("registration", &self.registration)
            .field("dpop_nonce", &self.dpop_nonce)
            .finish()
    }
}

/// Reads `DPOP_NONCE`: `on` or `off` (default).
fn dpop_nonce_setting(v: Option<String>) -> Result<bool, String> {
    match v.as_deref().map(str::trim) {
        None | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(other) => Err(format!("DPOP_NONCE must be on or off, got {other:?}")),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: Option<String>, default: T) -> Result<T, String> {
    match v {
        None => Ok(default),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number, got {s:?}")),
    }
}

impl Config {
    /// The FHIR base `path` is under (the longest that matches; `""` is the root) and the
    /// rest of the path after it (`""` or starting with `/`). `None`: not under any base.
    pub fn fhir_base_of<'a>(&'a self, path: &'a str) -> Option<(&'a str, &'a str)> {
        split_fhir_base(&self.fhir_bases, path)
    }

    /// `STORE_TIMEOUT_MS` in whole seconds (rounded up): how old an isolate-wide "load in
    /// flight" mark may get before it counts as dead (its request never resumed).
    pub fn store_timeout_secs(&self) -> i64 {
        (i64::from(self.store_timeout_ms) + 999) / 1000
    }

    /// Reads the configuration through `var` (a Worker var or secret by name). Empty values
    /// count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let get = |n: &str| var(n).filter(|s| !s.trim().is_empty());
        let trim_slash = |s: String| s.trim().trim_end_matches('/').to_string();
        let keys = KeySet::from_config(
            get("SIGNING_KEY").as_deref(),
            get("PUBLISHED_KEYS").as_deref(),
        )?;
        let iterations: u32 = parse_num(
            "PBKDF2_ITERATIONS",
            get("PBKDF2_ITERATIONS"),
            DEFAULT_ITERATIONS,
        )?;
        if !(1_000..=100_000).contains(&iterations) {
            return Err(
                "PBKDF2_ITERATIONS must be between 1000 and 100000 (the Workers limit)".into(),
            );
        }
        let origin_url = get("ORIGIN_URL").map(trim_slash);
        if let Some(o) = &origin_url {
            if !(o.starts_with("https://") || o.starts_with("http://")) {
                return Err("ORIGIN_URL must be an http(s) URL".into());
            }
        }
        let d = Throttle::default();
        let throttle = Throttle {
            max_failures: parse_num(
                "LOGIN_MAX_FAILURES",
                get("LOGIN_MAX_FAILURES"),
                d.max_failures,
            )?,
            address_max_failures: parse_num(
                "LOGIN_ADDRESS_MAX_FAILURES",
                get("LOGIN_ADDRESS_MAX_FAILURES"),
                d.address_max_failures,
            )?,
            window: parse_num("LOGIN_WINDOW", get("LOGIN_WINDOW"), d.window)?,
            lockout: parse_num("LOGIN_LOCKOUT", get("LOGIN_LOCKOUT"), d.lockout)?,
            lockout_max: parse_num("LOGIN_LOCKOUT_MAX", get("LOGIN_LOCKOUT_MAX"), d.lockout_max)?,
        };
        if throttle.max_failures == 0
            || throttle.address_max_failures == 0
            || throttle.window < 1
            || throttle.lockout < 1
            || throttle.lockout_max < throttle.lockout
        {
            return Err(
                "LOGIN_* limits must be positive, and LOGIN_LOCKOUT_MAX at least LOGIN_LOCKOUT"
                    .into(),
            );
        }
        let timeout = |name: &str| -> Result<u32, String> {
            let ms: u32 = parse_num(name, get(name), 10_000)?;
            if !(100..=60_000).contains(&ms) {
                return Err(format!("{name} must be between 100 and 60000"));
            }
            Ok(ms)
        };
        // Read again by the Worker (src/worker/durable.rs); refused here at load.
        state_layout(get("STATE_SHARDS"), get("STATE_SHARDS_PREVIOUS"))?;
        let issuer = get("ISSUER").map(trim_slash);
        let registration = registration(get, issuer.as_deref())?;
        Ok(Config {
            issuer,
            audience: get("AUDIENCE").map(|s| s.trim().to_string()),
            admin_secret: get("ADMIN_SECRET").map(Secret::new),
            keys,
            origin_url,
            pbkdf2_iterations: iterations,
            cache_ttl: parse_num("CACHE_TTL", get("CACHE_TTL"), 10)?,
            max_body_bytes: parse_num("MAX_BODY_BYTES", get("MAX_BODY_BYTES"), 1024 * 1024)?,
            leeway: parse_num("CLOCK_LEEWAY", get("CLOCK_LEEWAY"), 30)?,
            throttle,
            outbound_timeout_ms: timeout("OUTBOUND_TIMEOUT_MS")?,
            store_timeout_ms: timeout("STORE_TIMEOUT_MS")?,
            user_scope_types: user_scope_types(get("SMART_USER_SCOPE_TYPES"))?,
            fhir_bases: fhir_bases(get("FHIR_BASE_PATHS"))?,
            revocation_feeds: revocation_feeds(get("REVOCATION_FEEDS"))?,
            protected_resources: crate::resource::parse_setting(get("PROTECTED_RESOURCES"))?,
            registration,
            dpop_nonce: dpop_nonce_setting(get("DPOP_NONCE"))?,
        })
    }
}

/// Where the keyed records (codes, refresh families, sessions, launches, grants, `jti` records,
/// throttle counters) live: `STATE_SHARDS` (docs/scale.md "Keyed state (shards)").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateLayout {
    /// `STATE_SHARDS = "single"`: everything in the one object `auth-state`, as before shards.
    Single,
    /// `count` objects `shard-{i}`, and where records may still be from an earlier layout.
    Shards { count: u32, previous: Previous },
}

/// The layout before this one, consulted on a miss until it is known to be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    /// The single object `auth-state` (a deployment from before shards): the default.
    Single,
    /// `STATE_SHARDS_PREVIOUS = N`: N objects `shard-{i}`.
    Shards(u32),
}

/// Default of `STATE_SHARDS`.
pub const DEFAULT_STATE_SHARDS: u32 = 64;
/// Largest `STATE_SHARDS` / `STATE_SHARDS_PREVIOUS`.
pub const MAX_STATE_SHARDS: u32 = 1024;

/// Reads `STATE_SHARDS` (`single` or 1..=1024, default 64) and `STATE_SHARDS_PREVIOUS`
/// (1..=1024, different from `STATE_SHARDS`; unset: the single object `auth-state`).
pub fn state_layout(
    shards: Option<String>,
    previous: Option<String>,
) -> Result<StateLayout, String> {
    let parse = |name: &str, v: &str| -> Result<u32, String> {
        match v.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_STATE_SHARDS).contains(&n) => Ok(n),
            _ => Err(format!(
                "{name} must be a whole number from 1 to {MAX_STATE_SHARDS}{}, got {v:?}",
                if name == "STATE_SHARDS" {
                    " or \"single\""
                } else {
                    ""
                }
            )),
        }
    };
    let shards = shards.filter(|s| !s.trim().is_empty());
    let previous = previous.filter(|s| !s.trim().is_empty());
    match shards.as_deref().map(str::trim) {
        Some("single") => match previous {
            Some(_) => Err("STATE_SHARDS_PREVIOUS needs STATE_SHARDS to be a number".into()),
            None => Ok(StateLayout::Single),
        },
        s => {
            let count = match s {
                None => DEFAULT_STATE_SHARDS,
                Some(v) => parse("STATE_SHARDS", v)?,
            };
            let previous = match previous {
                None => Previous::Single,
                Some(p) => {
                    let n = parse("STATE_SHARDS_PREVIOUS", &p)?;
                    if n == count {
                        return Err("STATE_SHARDS_PREVIOUS must differ from STATE_SHARDS".into());
                    }
                    Previous::Shards(n)
                }
            };
            Ok(StateLayout::Shards { count, previous })
        }
    }
}

/// The default of `REVOCATION_FEEDS`.
pub const DEFAULT_REVOCATION_FEEDS: u16 = 32;

/// Reads `REVOCATION_FEEDS`: a whole number from 1 to 256 (unset: [`DEFAULT_REVOCATION_FEEDS`]).
pub fn revocation_feeds(v: Option<String>) -> Result<u16, String> {
    let n: u32 = parse_num("REVOCATION_FEEDS", v, u32::from(DEFAULT_REVOCATION_FEEDS))?;
    match u16::try_from(n) {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!(
            "REVOCATION_FEEDS must be between 1 and 256, got {n}"
        )),
    }
}

/// [`Config::fhir_base_of`] over a list of bases (longest first).
pub fn split_fhir_base<'a>(bases: &'a [String], path: &'a str) -> Option<(&'a str, &'a str)> {
    bases.iter().find_map(|b| {
        let rest = path.strip_prefix(b.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some((b.as_str(), rest))
    })
}

/// The shard of `key` among `count`: the first 8 bytes of SHA-256(key), big-endian, mod `count`.
pub fn shard_index(key: &str, count: u32) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) % u64::from(count.max(1))) as u32
}

/// The name of shard `i`'s object.
pub fn shard_name(i: u32) -> String {
    format!("shard-{i}")
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn state_shards_parse_and_refuse() {
        let s = |v: Option<&str>, p: Option<&str>| {
            state_layout(v.map(str::to_string), p.map(str::to_string))
        };
        assert_eq!(
            s(None, None),
            Ok(StateLayout::Shards {
                count: 64,
                previous: Previous::Single
            })
        );
        assert_eq!(s(Some("single"), None), Ok(StateLayout::Single));
        assert_eq!(
            s(Some("16"), Some("4")),
            Ok(StateLayout::Shards {
                count: 16,
                previous: Previous::Shards(4)
            })
        );
        for bad in ["0", "1025", "-1", "x", "1.5"] {
            assert!(s(Some(bad), None).is_err(), "{bad}");
            assert!(s(Some("8"), Some(bad)).is_err(), "{bad}");
        }
        assert!(s(Some("8"), Some("8")).is_err());
        assert!(s(Some("single"), Some("8")).is_err());
        assert_eq!(s(Some("1024"), None).map(|_| ()), Ok(()));
    }

    #[test]
    fn shard_index_spreads_and_is_stable() {
        assert_eq!(shard_index("code/x", 1), 0);
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            let k = format!("code/{i}");
            let s = shard_index(&k, 64);
            assert!(s < 64);
            assert_eq!(s, shard_index(&k, 64));
            seen.insert(s);
        }
        assert_eq!(seen.len(), 64);
    }
}
