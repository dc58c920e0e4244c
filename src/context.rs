//! The context every handler needs: [`App`] (configuration, platform, caches), [`Platform`],
//! [`Log`], [`Outcome`], and the shared facts about our URL space ([`admin_route`],
//! [`never_cached`], [`is_fhir_path`]). It sits below the handlers; the router (src/app.rs)
//! sits above them, so imports run one way: router -> handlers -> context and the shared pieces.

use crate::config::Config;
use crate::http_util::{Request, Response};
use crate::model::ResourceType;
use crate::platform::{CatalogStore, Clock, Crypto, HttpClient, KvStore, Random, StateStore};
use crate::store::{Cache, Repo};
use std::rc::Rc;

/// Where log lines go (the Worker: `console.log`, which `wrangler tail` shows).
pub trait Log {
    fn log(&self, line: &str);
}

/// A logger that drops everything.
#[derive(Debug, Default)]
pub struct NoLog;
impl Log for NoLog {
    fn log(&self, _line: &str) {}
}

/// Everything the core needs from outside.
#[derive(Clone)]
pub struct Platform {
    pub kv: Rc<dyn KvStore>,
    pub state: Rc<dyn StateStore>,
    /// The authority for AccessPolicy, TokenIntrospector, Role, Scope and Client, which
    /// publishes one KV bundle per type (src/store/mod.rs). `None`: those types are read and
    /// written as per-id KV records only (the native tests and tools).
    pub catalog: Option<Rc<dyn CatalogStore>>,
    /// Outbound HTTP: external JWKS and introspection endpoints.
    pub http: Rc<dyn HttpClient>,
    pub crypto: Rc<dyn Crypto>,
    pub clock: Rc<dyn Clock>,
    pub random: Rc<dyn Random>,
    pub log: Rc<dyn Log>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Answer it.
    Respond(Response),
    /// Send it to the origin (the adapter does the fetch, so bodies stream).
    Forward(Request),
    /// Serve a static file from `www/` (the `ASSETS` binding) with these security headers.
    Asset {
        path: String,
        headers: Vec<(&'static str, String)>,
    },
}

impl Outcome {
    /// The response, for callers that know no forward can happen (tests of our endpoints).
    pub fn into_response(self) -> Option<Response> {
        match self {
            Outcome::Respond(r) => Some(r),
            Outcome::Forward(_) | Outcome::Asset { .. } => None,
        }
    }
}

/// The service. Cheap to build per request; `cache` is what lives for the isolate.
pub struct App {
    pub config: Rc<Config>,
    pub platform: Platform,
    pub cache: Rc<Cache>,
}

impl App {
    pub fn new(config: Rc<Config>, platform: Platform, cache: Rc<Cache>) -> App {
        App {
            config,
            platform,
            cache,
        }
    }

    pub fn repo(&self) -> Repo<'_> {
        Repo {
            kv: self.platform.kv.as_ref(),
            catalog: self.platform.catalog.as_deref(),
            cache: self.cache.as_ref(),
            clock: self.platform.clock.as_ref(),
            ttl: self.config.cache_ttl,
            stale_after: self.config.store_timeout_secs(),
        }
    }

    pub fn now(&self) -> i64 {
        self.platform.clock.now()
    }

    pub fn log(&self, line: &str) {
        self.platform.log.log(line);
    }

    /// Our issuer: `ISSUER`, or the origin this request came to.
    pub fn issuer(&self, req: &Request) -> String {
        self.issuer_of(req.uri(), req.headers().get("host"))
    }

    /// [`App::issuer`] from a request's URI and `Host` header.
    pub fn issuer_of(&self, uri: &http::Uri, host: Option<&http::HeaderValue>) -> String {
        if let Some(i) = &self.config.issuer {
            return i.clone();
        }
        let scheme = uri.scheme_str().unwrap_or("https");
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| host.and_then(|h| h.to_str().ok()).map(str::to_string))
            .unwrap_or_else(|| "localhost".into());
        format!("{scheme}://{authority}")
    }

    /// The `aud` of access tokens for the protected API.
    pub fn audience(&self, req: &Request) -> String {
        self.config
            .audience
            .clone()
            .unwrap_or_else(|| self.issuer(req))
    }
}

/// The admin API's route of `path`, if it is one: `/{Type}` or `/{Type}/{id}` of a
/// [`ResourceType`], at the root or under any FHIR base (`bases`, `FHIR_BASE_PATHS`:
/// `/fhir/Client/x` is `/Client/x`, as in Aidbox).
pub fn admin_route<'a>(bases: &[String], path: &'a str) -> Option<(ResourceType, Option<&'a str>)> {
    let parse = |rel: &'a str| {
        let segments: Vec<&'a str> = rel.strip_prefix('/')?.split('/').collect();
        match segments.as_slice() {
            [rt, rest @ ..] if rest.len() <= 1 => {
                let rt = ResourceType::parse(rt)?;
                Some((rt, rest.first().copied().filter(|s| !s.is_empty())))
            }
            _ => None,
        }
    };
    parse(path).or_else(|| {
        bases
            .iter()
            .filter(|b| !b.is_empty())
            .find_map(|b| path.strip_prefix(b.as_str()).and_then(parse))
    })
}

/// Paths whose every answer is `Cache-Control: no-store` + `Pragma: no-cache`: the OAuth and
/// OIDC endpoints (tokens, codes in redirects, userinfo, introspection, CSRF tokens, session
/// cookies) and the admin API (resources that may carry secrets). Discovery and JWKS are public
/// and cacheable; the protected API's caching is the origin's business (our own errors there are
/// never cached, like every error).
pub fn never_cached(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    first == "auth" || ResourceType::parse(first).is_some()
}

/// Is `path` a FHIR path, whose errors are `OperationOutcome`s: everything the authorizer and
/// the admin API answer, i.e. not `/auth/*` (the OAuth endpoints keep RFC 6749 errors),
/// `/.well-known/*`, `/app/*` or `/console/*`.
pub fn is_fhir_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    !matches!(first, "auth" | ".well-known" | "app" | "console")
}
