//! Deployment settings, read from Worker vars and secrets (README "Configuration").

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
            .finish()
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
        Ok(Config {
            issuer: get("ISSUER").map(trim_slash),
            audience: get("AUDIENCE").map(|s| s.trim().to_string()),
            admin_secret: get("ADMIN_SECRET").map(Secret::new),
            keys,
            origin_url,
            pbkdf2_iterations: iterations,
            cache_ttl: parse_num("CACHE_TTL", get("CACHE_TTL"), 10)?,
            max_body_bytes: parse_num("MAX_BODY_BYTES", get("MAX_BODY_BYTES"), 1024 * 1024)?,
            leeway: parse_num("CLOCK_LEEWAY", get("CLOCK_LEEWAY"), 30)?,
        })
    }
}
