//! The Cloudflare Worker adapter: the only module that imports `worker::`. It converts between
//! `worker::Request`/`Response` and `http` types, gives the core its platform (KV, WebCrypto,
//! clock, randomness, console log), and performs the origin fetch for allowed requests.

mod catalog;
mod durable;
mod kv;
mod outbound;
pub mod stats;

use crate::app::{App, Log, Outcome, Platform};
use crate::config::Config;
use crate::crypto::OsRandom;
use crate::error::Error;
use crate::platform::Clock;
use crate::store::Cache;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use worker::{console_error, console_log, event, Context, Env, Headers, Response, Result};

/// What lives as long as the isolate: the parsed configuration and the caches.
struct Isolate {
    config: std::result::Result<Rc<Config>, String>,
    cache: Rc<Cache>,
    /// The signing key pair's probe (`KeySet::check_signing_pair`), once it has run.
    key_check: RefCell<Option<std::result::Result<(), String>>>,
}

thread_local! {
    static ISOLATE: RefCell<Option<Rc<Isolate>>> = const { RefCell::new(None) };
}

fn isolate(env: &Env) -> Rc<Isolate> {
    ISOLATE.with(|cell| {
        if let Some(i) = cell.borrow().as_ref() {
            return i.clone();
        }
        let var = |name: &str| {
            env.secret(name)
                .map(|s| s.to_string())
                .or_else(|_| env.var(name).map(|v| v.to_string()))
                .ok()
        };
        let i = Rc::new(Isolate {
            config: Config::from_vars(var).map(Rc::new),
            cache: Rc::new(Cache::default()),
            key_check: RefCell::new(None),
        });
        *cell.borrow_mut() = Some(i.clone());
        i
    })
}

struct JsClock;
impl Clock for JsClock {
    fn now(&self) -> i64 {
        (js_sys::Date::now() / 1000.0) as i64
    }
}

struct ConsoleLog;
impl Log for ConsoleLog {
    fn log(&self, line: &str) {
        console_log!("{line}");
    }
}

fn respond(resp: crate::http_util::Response) -> Result<Response> {
    let (parts, body) = resp.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            headers.append(name.as_str(), v)?;
        }
    }
    let r = if body.is_empty() {
        Response::empty()?
    } else {
        Response::from_bytes(body)?
    };
    Ok(r.with_status(parts.status.as_u16()).with_headers(headers))
}

fn error(e: Error) -> Result<Response> {
    if let Some(reason) = e.internal_reason() {
        console_error!("{}: {reason}", e.code());
    }
    respond(crate::http_util::no_store(e.to_response()))
}

/// Reads the request into `http` types, refusing bodies over `max` bytes before buffering them.
///
/// It takes the runtime's `Request` as it is: `worker::Request` would read `request.cf` (a
/// getter that builds an object per request, 4 % of a protected request's CPU in a profile) and
/// parse the URL again, none of which the core needs.
async fn to_http(
    req: &web_sys::Request,
    max: usize,
    original: &mut Vec<(String, String)>,
) -> std::result::Result<crate::http_util::Request, Error> {
    let headers = Headers(req.headers());
    let declared = headers
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(Error::PayloadTooLarge(max));
    }
    let method = req.method();
    let mut b = http::Request::builder()
        .method(method.as_str())
        .uri(req.url());
    for (name, value) in headers.entries() {
        b = b.header(name.as_str(), value.as_str());
        original.push((name, value));
    }
    let body = match method.as_str() {
        "GET" | "HEAD" | "OPTIONS" => Vec::new(),
        _ => {
            let read = |e: wasm_bindgen::JsValue| {
                Error::InvalidRequest(format!(
                    "cannot read body: {}",
                    e.as_string().unwrap_or_else(|| format!("{e:?}"))
                ))
            };
            let promise = req.array_buffer().map_err(read)?;
            let buf = wasm_bindgen_futures::JsFuture::from(promise)
                .await
                .map_err(read)?;
            js_sys::Uint8Array::new(&buf).to_vec()
        }
    };
    if body.len() > max {
        return Err(Error::PayloadTooLarge(max));
    }
    b.body(body)
        .map_err(|e| Error::InvalidRequest(format!("malformed request: {e}")))
}

/// Sends an allowed request to the origin and streams its answer back. Redirects are passed
/// through to the caller, not followed here.
///
/// The outbound headers start as a native copy of the incoming ones (one call, instead of one
/// call and one string crossing per header; a bearer token alone is ~700 bytes), and only what
/// the core changed is deleted or set (`authz::forward_request`): every incoming header the
/// core dropped (identity headers in any spelling, hop-by-hop ones and those named in
/// `Connection`, `Proxy-Authorization`, routing headers, Basic credentials) is deleted from the
/// copy, and every header the core set or rewrote (`Cookie` without our cookies, our identity
/// and forwarding headers) replaces the caller's. `tests/e2e/attacks-request.test.mjs` checks
/// what the origin receives.
/// The request goes to the global `fetch` directly: `worker::Fetch` would convert it into a
/// `worker::Request`, which reads `request.cf` again.
async fn forward(
    incoming: &web_sys::Request,
    original: &[(String, String)],
    req: crate::http_util::Request,
    timeout_ms: u32,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let cors = parts.extensions.get::<crate::cors::ForwardCors>().cloned();
    let headers = web_sys::Headers::new_with_headers(&incoming.headers())?;
    for name in ["host", "content-length"] {
        headers.delete(name)?;
    }
    for (name, _) in original {
        if !parts.headers.contains_key(name.as_str()) {
            headers.delete(name)?;
        }
    }
    for name in parts.headers.keys() {
        if name == "host" || name == "content-length" {
            continue;
        }
        let ours: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let theirs: Vec<&str> = original
            .iter()
            .filter(|(n, _)| n == name.as_str())
            .map(|(_, v)| v.as_str())
            .collect();
        if ours != theirs {
            headers.delete(name.as_str())?;
            for v in ours {
                headers.append(name.as_str(), v)?;
            }
        }
    }
    let controller = web_sys::AbortController::new()?;
    let init = web_sys::RequestInit::new();
    init.set_method(parts.method.as_str());
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    init.set_signal(Some(&controller.signal()));
    if !body.is_empty() {
        init.set_body(&js_sys::Uint8Array::from(body.as_slice()));
    }
    let out = web_sys::Request::new_with_str_and_init(&parts.uri.to_string(), &init)?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let sent = wasm_bindgen_futures::JsFuture::from(global.fetch_with_request(&out));
    // The deadline covers the origin's status and headers; the body then streams through.
    // Unreachable origin: 502; no answer in time: 504 (RFC 9110 15.6.3, 15.6.5).
    match outbound::with_timeout(timeout_ms, sent).await {
        Some(Ok(r)) => {
            let r = Response::from(r.unchecked_into::<web_sys::Response>());
            match cors {
                Some(c) => with_cors(r, &c),
                None => Ok(r),
            }
        }
        Some(Err(e)) => error(Error::BadGateway(format!(
            "origin fetch failed: {}",
            e.as_string().unwrap_or_else(|| format!("{e:?}"))
        ))),
        None => {
            controller.abort();
            error(Error::GatewayTimeout(format!(
                "origin did not answer within {timeout_ms} ms"
            )))
        }
    }
}

fn with_cors(resp: Response, cors: &crate::cors::ForwardCors) -> Result<Response> {
    let headers = Headers::new();
    let mut vary: Vec<String> = Vec::new();
    for (name, value) in resp.headers().entries() {
        if name.starts_with("access-control-") {
            continue;
        }
        if name == "vary" {
            vary.extend(value.split(',').map(|v| v.trim().to_string()));
            continue;
        }
        headers.append(&name, &value)?;
    }
    for (name, value) in crate::cors::forward_headers(cors) {
        if name == "vary" {
            if !vary.iter().any(|v| v.eq_ignore_ascii_case("origin")) {
                vary.push(value);
            }
        } else {
            headers.set(name, &value)?;
        }
    }
    vary.retain(|v| !v.is_empty());
    headers.set("vary", &vary.join(", "))?;
    Ok(resp.with_headers(headers))
}

/// Serves a file of `www/` through the ASSETS binding, with our security headers.
async fn asset(env: &Env, path: &str, extra: Vec<(&'static str, String)>) -> Result<Response> {
    let assets = match env.assets("ASSETS") {
        Ok(a) => a,
        Err(e) => return error(Error::Internal(format!("ASSETS binding: {e}"))),
    };
    let mut resp = match assets
        .fetch(format!("https://assets.internal{path}"), None)
        .await
    {
        Ok(r) => r,
        Err(e) => return error(Error::Unavailable(format!("assets: {e}"))),
    };
    if resp.status_code() != 200 {
        return error(Error::NotFound(format!("no file at {path}")));
    }
    let content_type = resp.headers().get("content-type").ok().flatten();
    let body = resp.bytes().await?;
    let headers = Headers::new();
    if let Some(ct) = content_type {
        headers.set("content-type", &ct)?;
    }
    for (k, v) in extra {
        headers.set(k, &v)?;
    }
    Ok(Response::from_bytes(body)?
        .with_status(200)
        .with_headers(headers))
}

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let iso = isolate(&env);
    let config = match &iso.config {
        Ok(c) => c.clone(),
        Err(e) => return error(Error::Internal(format!("configuration: {e}"))),
    };
    // The wasm key parser skips the curve maths; one WebCrypto probe per isolate stands in.
    let checked = iso.key_check.borrow().clone();
    let checked = match checked {
        Some(r) => r,
        None => {
            let r = config
                .keys
                .check_signing_pair(&crate::webcrypto::WebCrypto)
                .await;
            *iso.key_check.borrow_mut() = Some(r.clone());
            r
        }
    };
    if let Err(e) = checked {
        return error(Error::Internal(format!("configuration: {e}")));
    }
    let mut original = Vec::new();
    let http_req = match to_http(&req, config.max_body_bytes, &mut original).await {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let kv = match env.kv("RESOURCES") {
        Ok(kv) => kv,
        Err(e) => return error(Error::Internal(format!("KV binding RESOURCES: {e}"))),
    };
    let state = match env.durable_object("STATE") {
        Ok(ns) => ns,
        Err(e) => {
            return error(Error::Internal(format!(
                "Durable Object binding STATE: {e}"
            )))
        }
    };
    let catalog = match env.durable_object("CATALOG") {
        Ok(ns) => ns,
        Err(e) => {
            return error(Error::Internal(format!(
                "Durable Object binding CATALOG: {e}"
            )))
        }
    };
    // `make scale` only (src/worker/stats.rs).
    let stats = env
        .var("SCALE_STATS")
        .is_ok_and(|v| v.to_string() == "1")
        .then(|| Rc::new(stats::Stats::default()));
    let platform = Platform {
        kv: Rc::new(kv::WorkerKv {
            kv,
            timeout_ms: config.store_timeout_ms,
            stats: stats.clone(),
        }),
        state: Rc::new(durable::DurableState {
            keyed: match durable::KeyedState::from_env(&env, config.store_timeout_ms, stats.clone())
            {
                Ok(k) => k,
                Err(e) => return error(Error::Internal(format!("keyed state: {e}"))),
            },
            feed: durable::RevocationFeed {
                client: durable::ObjectClient {
                    ns: state,
                    timeout_ms: config.store_timeout_ms,
                    stats: stats.clone(),
                },
                feeds: config.revocation_feeds,
            },
        }),
        catalog: Some(Rc::new(catalog::CatalogClient {
            ns: catalog,
            timeout_ms: config.store_timeout_ms,
            stats: stats.clone(),
        })),
        http: Rc::new(outbound::WorkerHttp {
            timeout_ms: config.outbound_timeout_ms,
        }),
        crypto: Rc::new(crate::webcrypto::WebCrypto),
        clock: Rc::new(JsClock),
        random: Rc::new(OsRandom),
        log: Rc::new(ConsoleLog),
    };
    let origin_timeout = config.outbound_timeout_ms;
    let app = App::new(config, platform, iso.cache.clone());
    let resp = match app.handle(http_req).await {
        Outcome::Respond(r) => respond(r),
        Outcome::Forward(r) => forward(&req, &original, r, origin_timeout).await,
        Outcome::Asset { path, headers } => asset(&env, &path, headers).await,
    };
    match (stats, resp) {
        (Some(s), Ok(r)) => with_stats(r, &s),
        (_, r) => r,
    }
}

/// The response with `make scale`'s counts added (a copy of the headers: a forwarded
/// response's own may be immutable).
fn with_stats(resp: Response, stats: &stats::Stats) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in resp.headers().entries() {
        headers.append(&name, &value)?;
    }
    headers.set(stats::HEADER, &stats.header())?;
    Ok(resp.with_headers(headers))
}
