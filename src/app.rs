//! The router: [`ROUTES`], the one list of every endpoint (method, path, who may call it), and
//! [`App::handle`], which finds a request's route in it, answers a wrong method with the
//! route's `Allow`, and calls the route's handler (DESIGN.md "The path of one request").
//!
//! This module sits on top: it imports the handlers, and they import the context they need from
//! [`crate::context`], never from here, so no handler depends on the router. Only the Worker
//! adapter (src/worker/), the test doubles (src/testing.rs) and the tests call [`App::handle`].
//! docs/reference.md "Endpoints" lists the same routes; tests/routes.rs keeps the two equal.

use crate::context::{admin_route, is_fhir_path, never_cached};
use crate::error::{Error, Result};
use crate::http_util::Request;
use crate::model::ResourceType;
use crate::oauth::discovery::Document;

/// The context types, re-exported for the public API (`edge_authorizer::app::App`). Modules
/// below the router import them from [`crate::context`].
pub use crate::context::{App, Log, NoLog, Outcome, Platform};

/// Who may call a route: what its handler checks before it acts for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Anyone: public documents and pages, and the sign-in steps (which check their input).
    Anyone,
    /// An OAuth client, by client authentication (a secret, `private_key_jwt`, or a public
    /// client's `client_id`).
    Client,
    /// The user signed in here, by the session cookie (plus a CSRF token for changes).
    SignedInUser,
    /// The holder of an access token this server issued (Bearer or DPoP).
    AccessToken,
    /// An admin ([`crate::authz::authorize`]): root Basic (`ADMIN_SECRET`), or a client or user
    /// an AccessPolicy allows.
    Admin,
    /// Whoever an AccessPolicy allows, anonymous callers included: the protected API.
    AccessPolicy,
}

/// When a route exists; otherwise its path goes on to the next route that matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Always,
    /// `DYNAMIC_REGISTRATION=on`.
    DynamicRegistration,
}

impl When {
    /// The setting that turns the route on, as docs/reference.md names it.
    pub fn setting(self) -> Option<&'static str> {
        match self {
            When::Always => None,
            When::DynamicRegistration => Some("DYNAMIC_REGISTRATION=on"),
        }
    }

    fn holds(self, app: &App) -> bool {
        match self {
            When::Always => true,
            When::DynamicRegistration => app.config.registration.dynamic,
        }
    }
}

/// Why a path that belongs to one of our prefixes has no endpoint (the 404's message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// `no endpoint at <path>`.
    Endpoint,
    /// `no file at <path>`.
    File,
    /// `no such discovery document`.
    Document,
}

/// What answers a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    Discovery(Document),
    ProtectedResourceMetadata,
    Token,
    Register,
    Authorize,
    Par,
    Interaction,
    Login,
    Consent,
    Logout,
    AuthSession,
    Grants,
    Patient,
    Launch,
    Revoke,
    TestPolicy,
    InspectToken,
    Introspect,
    Userinfo,
    SignInPage,
    Spa,
    Console,
    Sessions,
    AdminGrant,
    AdminApi,
    ProtectedApi,
    NotFound(Missing),
}

/// One endpoint.
///
/// `path` is a pattern of `/`-separated segments: a literal; `{file}` (a file name: letters,
/// digits, `-`, `_`, `.`, not starting with `.`, at most 64); `{id}` (any non-empty segment);
/// `{ResourceType}` (a type of the admin API); `{name...}` (the rest: zero or more segments,
/// last only). A leading `[base]` is the root or any FHIR base (`FHIR_BASE_PATHS`, e.g.
/// `/fhir`); a leading `{base}` is a FHIR base other than the root. A trailing `[/]` allows one
/// trailing slash.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The methods it answers, as its 405's `Allow` says them; `*`: any.
    pub methods: &'static str,
    pub path: &'static str,
    pub who: Who,
    pub when: When,
    /// The handler authorizes the caller before the method is checked (the admin API and
    /// `/Session`): a caller it refuses gets 401/403 whatever the method.
    pub caller_first: bool,
    pub handler: Handler,
}

const fn route(methods: &'static str, path: &'static str, who: Who, handler: Handler) -> Route {
    Route {
        methods,
        path,
        who,
        when: When::Always,
        caller_first: false,
        handler,
    }
}

/// An admin route whose handler authorizes the caller before the method check.
const fn admin(methods: &'static str, path: &'static str, handler: Handler) -> Route {
    Route {
        caller_first: true,
        ..route(methods, path, Who::Admin, handler)
    }
}

const GET: &str = "GET, HEAD";
const POST: &str = "POST";
const EITHER: &str = "GET, HEAD, POST";

/// Every route, in the order they are tried: the first whose path matches (and whose `when`
/// holds) takes the request.
pub static ROUTES: &[Route] = {
    use Handler as H;
    use Who::*;
    &[
        // Discovery (public, cacheable).
        route(
            GET,
            "/.well-known/oauth-authorization-server",
            Anyone,
            H::Discovery(Document::AuthorizationServer),
        ),
        route(
            GET,
            "/.well-known/openid-configuration",
            Anyone,
            H::Discovery(Document::OpenidConfiguration),
        ),
        route(
            GET,
            "/.well-known/smart-configuration",
            Anyone,
            H::Discovery(Document::SmartConfiguration),
        ),
        route(
            GET,
            "/.well-known/oauth-protected-resource/{resource...}",
            Anyone,
            H::ProtectedResourceMetadata,
        ),
        route(
            GET,
            "/.well-known/jwks.json",
            Anyone,
            H::Discovery(Document::Jwks),
        ),
        route(
            GET,
            "/.well-known/{other...}",
            Anyone,
            H::NotFound(Missing::Document),
        ),
        // OAuth 2.0 and OpenID Connect.
        route(POST, "/auth/token", Client, H::Token),
        Route {
            when: When::DynamicRegistration,
            ..route(POST, "/auth/register", Anyone, H::Register)
        },
        route(GET, "/auth/authorize", Anyone, H::Authorize),
        route(POST, "/auth/par", Client, H::Par),
        route(GET, "/auth/interaction", Anyone, H::Interaction),
        route(POST, "/auth/login", Anyone, H::Login),
        route(POST, "/auth/consent", SignedInUser, H::Consent),
        route(EITHER, "/auth/logout", Anyone, H::Logout),
        route(GET, "/auth/session", Anyone, H::AuthSession),
        route(EITHER, "/auth/grants", SignedInUser, H::Grants),
        route(POST, "/auth/patient", SignedInUser, H::Patient),
        route(POST, "/auth/launch", Admin, H::Launch),
        route(POST, "/auth/revoke", Client, H::Revoke),
        route(POST, "/auth/test-policy", Admin, H::TestPolicy),
        route(POST, "/auth/inspect-token", Admin, H::InspectToken),
        route(POST, "/auth/introspect", Client, H::Introspect),
        route(EITHER, "/auth/userinfo", AccessToken, H::Userinfo),
        route(GET, "/auth/ui/{file}", Anyone, H::SignInPage),
        route(
            "*",
            "/auth/{other...}",
            Anyone,
            H::NotFound(Missing::Endpoint),
        ),
        // Static pages.
        route(GET, "/app[/]", Anyone, H::Spa),
        route(GET, "/app/{file}", Anyone, H::Spa),
        route(GET, "/app/pkg/{file}", Anyone, H::Spa),
        route(GET, "/app/{other...}", Anyone, H::NotFound(Missing::File)),
        // Sessions and the admin API.
        admin("GET, DELETE", "/Session[/]", H::Sessions),
        admin("GET, DELETE", "/Session/{id}", H::Sessions),
        route(GET, "/console[/]", Anyone, H::Console),
        route(GET, "/console/{file}", Anyone, H::Console),
        route(
            GET,
            "/console/{other...}",
            Anyone,
            H::NotFound(Missing::File),
        ),
        admin("GET", "[base]/Grant[/]", H::AdminGrant),
        admin("GET, DELETE", "[base]/Grant/{id}", H::AdminGrant),
        admin("GET, POST", "[base]/{ResourceType}[/]", H::AdminApi),
        admin(
            "GET, PUT, PATCH, DELETE",
            "[base]/{ResourceType}/{id}",
            H::AdminApi,
        ),
        // SMART App Launch 2.x: discovery under each FHIR base too.
        route(
            GET,
            "{base}/.well-known/smart-configuration",
            Anyone,
            H::Discovery(Document::SmartConfiguration),
        ),
        // Everything else: the protected API, forwarded to the origin when a policy allows.
        route("*", "/{path...}", AccessPolicy, H::ProtectedApi),
    ]
};

/// What a route's pattern picked out of a path.
#[derive(Default)]
struct Captures<'a> {
    rt: Option<ResourceType>,
    id: Option<&'a str>,
    file: Option<&'a str>,
    /// After the segments before a `{name...}`: `None` when nothing follows them.
    rest: Option<&'a str>,
}

impl Route {
    /// Does the route answer `method`?
    pub fn allows(&self, method: &http::Method) -> bool {
        self.methods == "*" || self.methods.split(", ").any(|m| m == method.as_str())
    }

    /// The captures when `path` matches the pattern (`bases`: `FHIR_BASE_PATHS`).
    fn matches<'a>(&self, path: &'a str, bases: &'a [String]) -> Option<Captures<'a>> {
        if let Some(p) = self.path.strip_prefix("[base]") {
            // As `admin_route`: the root, then each FHIR base the path starts with.
            return match_rel(p, path).or_else(|| {
                bases
                    .iter()
                    .filter(|b| !b.is_empty())
                    .find_map(|b| match_rel(p, path.strip_prefix(b.as_str())?))
            });
        }
        if let Some(p) = self.path.strip_prefix("{base}") {
            let (base, rel) = crate::config::split_fhir_base(bases, path)?;
            return if base.is_empty() {
                None
            } else {
                match_rel(p, rel)
            };
        }
        match_rel(self.path, path)
    }
}

/// Matches `path` (which must start with `/`) against a pattern without a base prefix.
fn match_rel<'a>(pattern: &str, path: &'a str) -> Option<Captures<'a>> {
    let (pattern, path) = match pattern.strip_suffix("[/]") {
        Some(p) => (
            p,
            path.strip_suffix('/')
                .filter(|s| !s.is_empty())
                .unwrap_or(path),
        ),
        None => (pattern, path),
    };
    let mut c = Captures::default();
    let mut remaining = Some(path.strip_prefix('/')?);
    for p in pattern.strip_prefix('/')?.split('/') {
        if p.ends_with("...}") {
            c.rest = remaining.take();
            break;
        }
        let (seg, after) = match remaining?.split_once('/') {
            Some((s, a)) => (s, Some(a)),
            None => (remaining?, None),
        };
        remaining = after;
        match p {
            "{file}" if is_asset_name(seg) => c.file = Some(seg),
            "{id}" if !seg.is_empty() => c.id = Some(seg),
            "{ResourceType}" => c.rt = Some(ResourceType::parse(seg)?),
            _ if p == seg => {}
            _ => return None,
        }
    }
    remaining.is_none().then_some(c)
}

/// The first route for `path` whose condition holds, with what its pattern captured. A route
/// whose pattern starts with `/` sees the path with its leading slashes made one, as the router
/// before the table did (`//auth/token` is the token endpoint, `//app/` the SPA); the `[base]`
/// and `{base}` routes (the admin API, discovery under a FHIR base) see it as it came.
fn find<'a>(app: &'a App, path: &'a str) -> Option<(&'static Route, Captures<'a>)> {
    let own = one_leading_slash(path);
    ROUTES.iter().filter(|r| r.when.holds(app)).find_map(|r| {
        let p = if r.path.starts_with('/') { own } else { path };
        Some((r, r.matches(p, &app.config.fhir_bases)?))
    })
}

/// `path` from its last leading `/` on: `//auth/token` is `/auth/token`.
fn one_leading_slash(path: &str) -> &str {
    let rest = path.trim_start_matches('/');
    if rest.len() < path.len() {
        &path[path.len() - rest.len() - 1..]
    } else {
        path
    }
}

impl App {
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
        use crate::oauth::{authorize, discovery, interaction, introspect, launch, logout};
        use crate::oauth::{par, register, revoke, token, userinfo};
        if req.body().len() > self.config.max_body_bytes {
            return Err(Error::PayloadTooLarge(self.config.max_body_bytes));
        }
        let path = req.uri().path().to_string();
        // The last route matches every path, so `None` cannot happen; a 404 all the same.
        let Some((route, c)) = find(self, &path) else {
            return Err(Error::NotFound(format!("no endpoint at {path}")));
        };
        let method = if route.allows(req.method()) {
            Ok(())
        } else {
            Err(Error::MethodNotAllowed(route.methods))
        };
        let method = match method {
            Err(e) if !route.caller_first => return Err(e),
            m => m,
        };
        let r = match route.handler {
            Handler::Discovery(which) => discovery::serve(self, &req, which),
            Handler::ProtectedResourceMetadata => {
                let suffix: Vec<&str> = c.rest.map(|r| r.split('/').collect()).unwrap_or_default();
                discovery::cacheable(crate::resource::metadata(self, &req, &suffix)?)
            }
            Handler::Token => token::handle(self, &req).await?,
            Handler::Register => register::handle(self, &req).await?,
            Handler::Authorize => authorize::handle(self, &req).await?,
            Handler::Par => par::handle(self, &req).await?,
            Handler::Interaction => interaction::context(self, &req).await?,
            Handler::Login => interaction::login(self, &req).await?,
            Handler::Consent => interaction::consent(self, &req).await?,
            Handler::Logout => logout::handle(self, &req).await?,
            Handler::AuthSession => logout::session(self, &req).await?,
            Handler::Grants if req.method() == http::Method::POST => {
                interaction::revoke_my_grant(self, &req).await?
            }
            Handler::Grants => interaction::my_grants(self, &req).await?,
            Handler::Patient => interaction::pick_patient(self, &req).await?,
            Handler::Launch => launch::create(self, &req).await?,
            Handler::Revoke => revoke::handle(self, &req).await?,
            Handler::TestPolicy => crate::debug::test_policy(self, &req).await?,
            Handler::InspectToken => crate::debug::inspect_token(self, &req).await?,
            Handler::Introspect => introspect::handle(self, &req).await?,
            Handler::Userinfo => userinfo::handle(self, &req).await?,
            Handler::SignInPage => return Ok(asset(self, &req, c.file.unwrap_or("")).await),
            Handler::Spa => return Ok(spa_page(one_leading_slash(&path), c.file)),
            Handler::Console => return Ok(console_page(one_leading_slash(&path), c.file)),
            Handler::Sessions => crate::sessions::handle(self, req, c.id, method).await?,
            Handler::AdminGrant => {
                crate::admin::handle(self, req, ResourceType::Grant, c.id, method).await?
            }
            Handler::AdminApi => {
                let rt =
                    c.rt.ok_or_else(|| Error::NotFound(format!("no endpoint at {path}")))?;
                crate::admin::handle(self, req, rt, c.id, method).await?
            }
            Handler::ProtectedApi => return crate::authz::handle(self, req).await,
            Handler::NotFound(Missing::Document) => {
                return Err(Error::NotFound("no such discovery document".into()))
            }
            Handler::NotFound(Missing::Endpoint) => {
                return Err(Error::NotFound(format!("no endpoint at {path}")))
            }
            Handler::NotFound(Missing::File) => {
                return Err(Error::NotFound(format!("no file at {path}")))
            }
        };
        Ok(Outcome::Respond(r))
    }
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

/// The demo SPA and the verifier package it loads: `www/app/` (index at `/app/`), `file` the
/// file the route named (`None`: the index). Its CSP allows our own scripts, WebAssembly
/// compilation, and fetches to this origin only.
fn spa_page(path: &str, file: Option<&str>) -> Outcome {
    let csp = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
               img-src 'self' data:; connect-src 'self'; form-action 'self'; \
               frame-ancestors 'none'; base-uri 'none'"
        .to_string();
    Outcome::Asset {
        path: file.map_or_else(|| "/app/index.html".to_string(), |_| path.to_string()),
        headers: crate::html::security_headers(csp),
    }
}

/// The admin console: `www/console/` (index at `/console/`), static files only. Its pages get
/// the CSP of the sign-in pages (own scripts and styles, fetches to this origin only); every
/// action goes through the admin API with the signed-in user's bearer token.
fn console_page(path: &str, file: Option<&str>) -> Outcome {
    Outcome::Asset {
        path: file.map_or_else(|| "/console/index.html".to_string(), |_| path.to_string()),
        headers: crate::html::security_headers(crate::html::page_csp(None)),
    }
}
