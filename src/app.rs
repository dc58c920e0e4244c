//! `App::handle`: the routing table of the whole service (DESIGN.md "The path of one request").

use crate::config::Config;
use crate::error::{Error, Result};
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

    /// Handles one request. Never panics on input; every error becomes its wire response.
    pub async fn handle(&self, req: Request) -> Outcome {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let cors_kind = crate::cors::kind(&path, &self.config.fhir_bases);
        let fhir_error = is_fhir_path(&path);
        let fhir_json = crate::http_util::header(&req, "accept")
            .is_some_and(|a| a.to_ascii_lowercase().contains("application/fhir+json"));
        let preflight = cors_kind.is_some() && crate::cors::is_preflight(&req);
        // RFC 9728 5.1: a Bearer challenge on the protected API names the metadata of the
        // resource the path belongs to; kept here for an error (the request moves on).
        let origin_of = fhir_error.then(|| (req.uri().clone(), req.headers().get("host").cloned()));
        // The CORS grant is decided before routing (the request moves into the handler). Only a
        // cross-origin `Origin` costs a lookup, and that is cached per isolate.
        let allowed = match cors_kind {
            Some(kind) if !preflight => match crate::cors::allowed_origin(self, &req, kind).await {
                Ok(a) => a,
                Err(e) => {
                    self.log(&format!("{method} {path}: CORS origins unavailable ({e})"));
                    None
                }
            },
            _ => None,
        };
        let result = match cors_kind {
            Some(kind) if preflight => crate::cors::preflight(self, &req, kind)
                .await
                .map(Outcome::Respond),
            _ => self.route(req).await,
        };
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                if let Some(reason) = e.internal_reason() {
                    self.log(&format!("{method} {path}: {} ({reason})", e.code()));
                }
                Outcome::Respond(if let Some((uri, host)) = &origin_of {
                    let mut r = e.to_fhir_response(fhir_json);
                    let issuer = self.issuer_of(uri, host.as_ref());
                    let resource = crate::resource::of_path(self, &issuer, &path);
                    crate::resource::add_metadata_to_challenge(&mut r, &resource);
                    r
                } else {
                    e.to_response()
                })
            }
        };
        match outcome {
            Outcome::Respond(mut r) => {
                if !preflight {
                    if let Some(kind) = cors_kind {
                        crate::cors::decorate(&mut r, kind, allowed.as_deref());
                    }
                }
                if never_cached(&path)
                    || admin_route(&self.config.fhir_bases, &path).is_some()
                    || r.status().as_u16() >= 400
                    || crate::http_util::is_no_store(&r)
                {
                    r = crate::http_util::no_store(r);
                }
                Outcome::Respond(r)
            }
            Outcome::Forward(mut r) => {
                if let Some(crate::cors::Kind::Registered(_)) = cors_kind {
                    r.extensions_mut().insert(crate::cors::ForwardCors(allowed));
                }
                Outcome::Forward(r)
            }
            asset @ Outcome::Asset { .. } => asset,
        }
    }

    async fn route(&self, req: Request) -> Result<Outcome> {
        if req.body().len() > self.config.max_body_bytes {
            return Err(Error::PayloadTooLarge(self.config.max_body_bytes));
        }
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            [".well-known", rest @ ..] => {
                return crate::oauth::discovery::handle(self, &req, rest).map(Outcome::Respond)
            }
            ["auth", rest @ ..] => return self.auth_route(&req, rest).await,
            ["app", rest @ ..] => return spa_asset(&req, rest),
            ["Session", rest @ ..] if rest.len() <= 1 => {
                let id = rest.first().copied().filter(|s| !s.is_empty());
                return crate::sessions::handle(self, req, id)
                    .await
                    .map(Outcome::Respond);
            }
            ["console", rest @ ..] => return console_asset(&req, rest),
            _ => {}
        }
        if let Some((rt, id)) = admin_route(&self.config.fhir_bases, &path) {
            return crate::admin::handle(self, req, rt, id)
                .await
                .map(Outcome::Respond);
        }
        // SMART App Launch 2.x: discovery at `[base]/.well-known/smart-configuration` too.
        if let Some((base, "/.well-known/smart-configuration")) = self.config.fhir_base_of(&path) {
            if !base.is_empty() {
                return crate::oauth::discovery::handle(self, &req, &["smart-configuration"])
                    .map(Outcome::Respond);
            }
        }
        crate::authz::handle(self, req).await
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

impl App {
    /// `/auth/*`: the OAuth and OIDC endpoints, the interaction API and the static UI.
    async fn auth_route(&self, req: &Request, rest: &[&str]) -> Result<Outcome> {
        use crate::oauth::{authorize, interaction, introspect, revoke, token, userinfo};
        use http::Method;
        let get = &[Method::GET, Method::HEAD];
        let post = &[Method::POST];
        let either = &[Method::GET, Method::HEAD, Method::POST];
        let r = match rest {
            ["token"] => {
                only(req, post, "POST")?;
                token::handle(self, req).await?
            }
            // RFC 7591; without `DYNAMIC_REGISTRATION=on` a 404 like any unknown endpoint.
            ["register"] if self.config.registration.dynamic => {
                only(req, post, "POST")?;
                crate::oauth::register::handle(self, req).await?
            }
            ["authorize"] => {
                only(req, get, "GET, HEAD")?;
                authorize::handle(self, req).await?
            }
            ["par"] => {
                only(req, post, "POST")?;
                crate::oauth::par::handle(self, req).await?
            }
            ["interaction"] => {
                only(req, get, "GET, HEAD")?;
                interaction::context(self, req).await?
            }
            ["login"] => {
                only(req, post, "POST")?;
                interaction::login(self, req).await?
            }
            ["consent"] => {
                only(req, post, "POST")?;
                interaction::consent(self, req).await?
            }
            ["logout"] => {
                only(req, either, "GET, HEAD, POST")?;
                crate::oauth::logout::handle(self, req).await?
            }
            ["session"] => {
                only(req, get, "GET, HEAD")?;
                crate::oauth::logout::session(self, req).await?
            }
            ["grants"] => {
                only(req, either, "GET, HEAD, POST")?;
                if req.method() == Method::POST {
                    interaction::revoke_my_grant(self, req).await?
                } else {
                    interaction::my_grants(self, req).await?
                }
            }
            ["patient"] => {
                only(req, post, "POST")?;
                interaction::pick_patient(self, req).await?
            }
            ["launch"] => {
                only(req, post, "POST")?;
                crate::oauth::launch::create(self, req).await?
            }
            ["revoke"] => {
                only(req, post, "POST")?;
                revoke::handle(self, req).await?
            }
            ["test-policy"] => {
                only(req, post, "POST")?;
                crate::debug::test_policy(self, req).await?
            }
            ["inspect-token"] => {
                only(req, post, "POST")?;
                crate::debug::inspect_token(self, req).await?
            }
            ["introspect"] => {
                only(req, post, "POST")?;
                introspect::handle(self, req).await?
            }
            ["userinfo"] => {
                only(req, either, "GET, HEAD, POST")?;
                userinfo::handle(self, req).await?
            }
            ["ui", file] if is_asset_name(file) => {
                only(req, get, "GET, HEAD")?;
                return Ok(asset(self, req, file).await);
            }
            _ => {
                return Err(Error::NotFound(format!(
                    "no endpoint at {}",
                    req.uri().path()
                )))
            }
        };
        Ok(Outcome::Respond(r))
    }
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

/// Names of files under `www/auth/ui/`: no paths, no dot files.
fn is_asset_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A static UI file with the security headers of our pages. The login, consent and patient
/// pages post forms that end in a redirect to the client, which CSP `form-action` must allow:
/// exactly the origin of the redirect URI the server will use, resolved from the authorization
/// request in the page's query as `/auth/authorize` resolves it (the registered URI when the
/// request names none, RFC 6749 3.1.2.3). A request that does not check out gets `'self'`
/// only; its page shows the error.
async fn asset(app: &App, req: &Request, file: &str) -> Outcome {
    let redirect_origin = match file {
        "login.html" | "consent.html" | "patient.html" => {
            match crate::oauth::authorize::parse(app, req, req.uri().query().unwrap_or("")).await {
                Ok(areq) => web_origin(&areq.redirect_uri),
                Err(_) => None,
            }
        }
        _ => None,
    };
    Outcome::Asset {
        path: format!("/auth/ui/{file}"),
        headers: crate::html::security_headers(crate::html::page_csp(redirect_origin.as_deref())),
    }
}

/// `scheme://authority` of an http(s) URI, for a CSP source expression.
fn web_origin(uri: &str) -> Option<String> {
    // A native app's private-use scheme (RFC 8252 7.1): the scheme source `com.example.app:`.
    if crate::model::client::is_private_use(uri) {
        return uri.split_once(':').map(|(s, _)| format!("{s}:"));
    }
    let u = uri.parse::<http::Uri>().ok()?;
    match (u.scheme_str(), u.authority()) {
        (Some(s @ ("http" | "https")), Some(a)) => Some(format!("{s}://{a}")),
        _ => None,
    }
}

/// The demo SPA and the verifier package it loads: `www/app/` (index at `/app/`). Its CSP allows
/// our own scripts, WebAssembly compilation, and fetches to this origin only.
fn spa_asset(req: &Request, rest: &[&str]) -> Result<Outcome> {
    only(req, &[http::Method::GET, http::Method::HEAD], "GET, HEAD")?;
    let path = match rest {
        [] | [""] => "/app/index.html".to_string(),
        [file] if is_asset_name(file) => format!("/app/{file}"),
        ["pkg", file] if is_asset_name(file) => format!("/app/pkg/{file}"),
        _ => return Err(Error::NotFound(format!("no file at {}", req.uri().path()))),
    };
    let csp = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
               img-src 'self' data:; connect-src 'self'; form-action 'self'; \
               frame-ancestors 'none'; base-uri 'none'"
        .to_string();
    Ok(Outcome::Asset {
        path,
        headers: crate::html::security_headers(csp),
    })
}

/// The admin console: `www/console/` (index at `/console/`), static files only. Its pages get
/// the CSP of the sign-in pages (own scripts and styles, fetches to this origin only); every
/// action goes through the admin API with the signed-in user's bearer token.
fn console_asset(req: &Request, rest: &[&str]) -> Result<Outcome> {
    only(req, &[http::Method::GET, http::Method::HEAD], "GET, HEAD")?;
    let path = match rest {
        [] | [""] => "/console/index.html".to_string(),
        [file] if is_asset_name(file) => format!("/console/{file}"),
        _ => return Err(Error::NotFound(format!("no file at {}", req.uri().path()))),
    };
    Ok(Outcome::Asset {
        path,
        headers: crate::html::security_headers(crate::html::page_csp(None)),
    })
}

/// 405 unless the method is one of `allowed`.
pub fn only(req: &Request, allowed: &[http::Method], allow_header: &'static str) -> Result<()> {
    if allowed.contains(req.method()) {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed(allow_header))
    }
}
