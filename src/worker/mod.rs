//! The Cloudflare Worker adapter: the only module that imports `worker::`. It converts between
//! `worker::Request`/`Response` and `http` types, gives the core its platform (KV, WebCrypto,
//! clock, randomness, console log), and performs the origin fetch for allowed requests.

mod catalog;
mod durable;
mod kv;
mod outbound;
pub mod stats;

use crate::config::Config;
use crate::context::{App, Log, Outcome, Platform};
use crate::crypto::OsRandom;
use crate::error::Error;
use crate::platform::Clock;
use crate::store::Cache;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use worker::{console_error, console_log, Env, Headers, Response, Result};

/// The few runtime calls of a request, each made in one crossing of the JS/wasm boundary
/// (the per-header calls they replace were about a third of a protected request's CPU in a
/// profile, `benches/profile-hot.mjs`). Header lists cross as one string, one `name:value` a
/// line: a runtime header name holds no `:` and no value holds a line break (`Headers` refuses
/// them, and so does `http::HeaderValue`).
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function request_head(req) {
  let s = req.method + "\n" + req.url;
  for (const [k, v] of req.headers) s += "\n" + k + ":" + v;
  return s;
}
export function response_of(status, headers, body) {
  const h = new Headers();
  if (headers) {
    for (const line of headers.split("\n")) {
      const i = line.indexOf(":");
      h.append(line.slice(0, i), line.slice(i + 1));
    }
  }
  return new Response(body.length ? body : null, { status, headers: h });
}
export function origin_fetch(req, url, method, edits, body, ms, cors) {
  const headers = new Headers(req.headers);
  for (const line of edits.split("\n")) {
    if (line[0] === "-") headers.delete(line.slice(1));
    else if (line[0] === "+") {
      const i = line.indexOf(":");
      headers.append(line.slice(1, i), line.slice(i + 1));
    }
  }
  const controller = new AbortController();
  const init = { method, headers, redirect: "manual", signal: controller.signal };
  if (body.length) init.body = body;
  const out = new Request(url, init);
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve(null);
    }, ms);
  });
  const sent = fetch(out);
  const stop = () => clearTimeout(timer);
  sent.then(stop, stop);
  return Promise.race([sent, late]).then((r) => (r === null ? null : origin_answer(r, cors)));
}
// Rust's str::trim for the characters a header value can hold.
const trim = (s) => s.replace(/^[\t-\r \u0085\u00a0]+|[\t-\r \u0085\u00a0]+$/g, "");
function origin_answer(r, cors) {
  // No CORS to apply: the origin's answer as it came (a new Response would cost a
  // construction per forwarded request and drop only the reason phrase).
  if (cors === undefined) return r;
  const headers = new Headers();
  const vary = [];
  for (const [k, v] of r.headers) {
    if (k.startsWith("access-control-")) continue;
    if (k === "vary") {
      for (const part of v.split(",")) vary.push(trim(part));
      continue;
    }
    headers.append(k, v);
  }
  for (const line of cors.split("\n")) {
    const i = line.indexOf(":");
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (k === "vary") {
      if (!vary.some((x) => x.toLowerCase() === "origin")) vary.push(v);
    } else headers.set(k, v);
  }
  headers.set("vary", vary.filter((x) => x !== "").join(", "));
  const init = { status: r.status, headers };
  if (r.cf !== undefined && r.cf !== null) init.cf = r.cf;
  if (r.webSocket !== undefined && r.webSocket !== null) init.webSocket = r.webSocket;
  return new Response(r.body, init);
}
"#)]
extern "C" {
    /// `METHOD\nURL` and then the headers, one `name:value` a line.
    fn request_head(req: &web_sys::Request) -> String;
    /// A `Response` with this status, these headers (`name:value` lines) and body (none when
    /// empty).
    #[wasm_bindgen(catch)]
    fn response_of(
        status: u16,
        headers: &str,
        body: Vec<u8>,
    ) -> std::result::Result<web_sys::Response, wasm_bindgen::JsValue>;
    /// Sends `req`'s headers, edited (`-name` lines delete, `+name:value` lines append, in
    /// order), with `method` and `body` (none when empty) to `url`, redirects not followed.
    /// Resolves to the origin's answer, or to `null` when it has not answered within `ms`
    /// (the request is aborted then); rejects when the fetch fails. Without `cors` the answer
    /// is the origin's `Response` itself; with `cors` (`name:value` lines,
    /// [`crate::cors::forward_headers`]) it is a new `Response` over the origin's body and
    /// status, the origin's `access-control-*` headers dropped, these set, and `Vary` listing
    /// the origin's values (trimmed, empty ones dropped) plus `Origin` if they lack it.
    #[wasm_bindgen(catch)]
    fn origin_fetch(
        req: &web_sys::Request,
        url: &str,
        method: &str,
        edits: &str,
        body: Vec<u8>,
        ms: u32,
        cors: Option<String>,
    ) -> std::result::Result<js_sys::Promise, wasm_bindgen::JsValue>;
}

/// What lives as long as the isolate: the parsed configuration and the caches.
struct Isolate {
    config: std::result::Result<Rc<Config>, String>,
    cache: Rc<Cache>,
    /// The signing key pair's probe (`KeySet::check_signing_pair`), once it has run.
    key_check: RefCell<Option<std::result::Result<(), String>>>,
    /// The platform over this isolate's bindings, built by the first request (bindings and
    /// vars do not change for an isolate's life); `Err`: the message of the 500 every request
    /// then gets. Not kept with `SCALE_STATS=1`, whose counts are per request.
    platform: RefCell<Option<std::result::Result<Platform, String>>>,
    /// `SCALE_STATS=1` (`make scale` only).
    scale_stats: bool,
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
            platform: RefCell::new(None),
            scale_stats: env.var("SCALE_STATS").is_ok_and(|v| v.to_string() == "1"),
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

fn respond(resp: crate::http_util::Response) -> Result<web_sys::Response> {
    let (parts, body) = resp.into_parts();
    let mut headers = String::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            if !headers.is_empty() {
                headers.push('\n');
            }
            headers.push_str(name.as_str());
            headers.push(':');
            headers.push_str(v);
        }
    }
    Ok(response_of(parts.status.as_u16(), &headers, body)?)
}

fn error(e: Error) -> Result<web_sys::Response> {
    if let Some(reason) = e.internal_reason() {
        console_error!("{}: {reason}", e.code());
    }
    respond(crate::http_util::no_store(e.to_response()))
}

/// Reads the request into `http` types, refusing bodies over `max` bytes before buffering them.
///
/// It takes the runtime's `Request` as it is: `worker::Request` would read `request.cf` (a
/// getter that builds an object per request, 4 % of a protected request's CPU in a profile) and
/// parse the URL again, none of which the core needs. Method, URL and headers cross in one
/// string ([`request_head`]).
async fn to_http(
    req: &web_sys::Request,
    max: usize,
    original: &mut Vec<(String, String)>,
) -> std::result::Result<crate::http_util::Request, Error> {
    let head = request_head(req);
    let mut lines = head.split('\n');
    let method = lines.next().unwrap_or_default();
    let url = lines.next().unwrap_or_default();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            original.push((name.to_string(), value.to_string()));
        }
    }
    let declared = original
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(Error::PayloadTooLarge(max));
    }
    let mut b = http::Request::builder().method(method).uri(url);
    for (name, value) in original.iter() {
        b = b.header(name.as_str(), value.as_str());
    }
    let body = match method {
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
/// The outbound request is built and sent in one call ([`origin_fetch`]): the header edits
/// cross as one string, and the deadline is a JS timer, not a Rust future per request.
async fn forward(
    incoming: &web_sys::Request,
    original: &[(String, String)],
    req: crate::http_util::Request,
    timeout_ms: u32,
) -> Result<web_sys::Response> {
    let (parts, body) = req.into_parts();
    let cors = parts.extensions.get::<crate::cors::ForwardCors>().cloned();
    let mut edits = String::from("-host\n-content-length\n");
    for (name, _) in original {
        if !parts.headers.contains_key(name.as_str()) {
            edits.push('-');
            edits.push_str(name);
            edits.push('\n');
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
            edits.push('-');
            edits.push_str(name.as_str());
            edits.push('\n');
            for v in ours {
                edits.push('+');
                edits.push_str(name.as_str());
                edits.push(':');
                edits.push_str(v);
                edits.push('\n');
            }
        }
    }
    let sent = origin_fetch(
        incoming,
        &parts.uri.to_string(),
        parts.method.as_str(),
        &edits,
        body,
        timeout_ms,
        cors.map(|c| {
            crate::cors::forward_headers(&c)
                .iter()
                .map(|(n, v)| format!("{n}:{v}"))
                .collect::<Vec<_>>()
                .join("\n")
        }),
    )?;
    // The deadline covers the origin's status and headers; the body then streams through.
    // Unreachable origin: 502; no answer in time: 504 (RFC 9110 15.6.3, 15.6.5).
    match wasm_bindgen_futures::JsFuture::from(sent).await {
        Ok(r) if r.is_null() => error(Error::GatewayTimeout(format!(
            "origin did not answer within {timeout_ms} ms"
        ))),
        Ok(r) => Ok(r.unchecked_into::<web_sys::Response>()),
        Err(e) => error(Error::BadGateway(format!(
            "origin fetch failed: {}",
            e.as_string().unwrap_or_else(|| format!("{e:?}"))
        ))),
    }
}

/// Serves a file of `www/` through the ASSETS binding, with our security headers.
async fn asset(
    env: &Env,
    path: &str,
    extra: Vec<(&'static str, String)>,
) -> Result<web_sys::Response> {
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
        .with_headers(headers)
        .into())
}

/// The platform over the bindings; `Err`: the message of the 500 (a binding is missing, or
/// the state layout's vars are wrong).
fn platform(
    env: &Env,
    config: &Config,
    stats: Option<Rc<stats::Stats>>,
) -> std::result::Result<Platform, String> {
    let kv = env
        .kv("RESOURCES")
        .map_err(|e| format!("KV binding RESOURCES: {e}"))?;
    let state = env
        .durable_object("STATE")
        .map_err(|e| format!("Durable Object binding STATE: {e}"))?;
    let catalog = env
        .durable_object("CATALOG")
        .map_err(|e| format!("Durable Object binding CATALOG: {e}"))?;
    let keyed = durable::KeyedState::from_env(env, config.store_timeout_ms, stats.clone())
        .map_err(|e| format!("keyed state: {e}"))?;
    Ok(Platform {
        kv: Rc::new(kv::WorkerKv {
            kv,
            timeout_ms: config.store_timeout_ms,
            stats: stats.clone(),
        }),
        state: Rc::new(durable::DurableState {
            keyed,
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
            stats,
        })),
        http: Rc::new(outbound::WorkerHttp {
            timeout_ms: config.outbound_timeout_ms,
        }),
        crypto: Rc::new(crate::webcrypto::WebCrypto),
        clock: Rc::new(JsClock),
        random: Rc::new(OsRandom),
        log: Rc::new(ConsoleLog),
    })
}

/// The Worker's `fetch` handler (what `#[event(fetch)]` would export, without its promise for
/// answers that need no `await`). The request is polled once at once: when it completes
/// without waiting on the runtime (a refused request, an answer from the isolate's caches),
/// the `Response` itself is returned, which the runtime takes as it takes a promise of one;
/// only a request that does wait (the origin, KV, a Durable Object, WebCrypto) is handed to
/// `wasm-bindgen-futures` as before. Skipping its promise, task and microtask for the first
/// case is most of what a refused request cost to enter and leave the Worker (docs/perf.md
/// "Request entry and exit"). A future is polled again with its task's waker when spawned, so
/// nothing registered under the first poll's no-op waker is lost.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn fetch(
    req: web_sys::Request,
    env: Env,
    _ctx: wasm_bindgen::JsValue,
) -> wasm_bindgen::JsValue {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut served = Box::pin(async move { answer(serve(req, env).await) });
    match served
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(r) => r.into(),
        Poll::Pending => {
            wasm_bindgen_futures::future_to_promise(async move { Ok(served.await.into()) }).into()
        }
    }
}

/// The handler's result as `#[event(fetch)]` answers it: an error that escaped is logged and
/// becomes its bare 500.
fn answer(result: Result<web_sys::Response>) -> web_sys::Response {
    match result {
        Ok(r) => r,
        Err(e) => {
            console_error!("{}", e);
            // A 500 is in the range `Response::error` accepts: it cannot fail.
            Response::error("INTERNAL SERVER ERROR", 500)
                .expect("a 500 is an error status")
                .into()
        }
    }
}

async fn serve(req: web_sys::Request, env: Env) -> Result<web_sys::Response> {
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
    // `make scale` only (src/worker/stats.rs).
    let stats = iso.scale_stats.then(|| Rc::new(stats::Stats::default()));
    let platform = match &stats {
        Some(_) => platform(&env, &config, stats.clone()),
        None => {
            let cached = iso.platform.borrow().clone();
            match cached {
                Some(p) => p,
                None => {
                    let p = platform(&env, &config, None);
                    *iso.platform.borrow_mut() = Some(p.clone());
                    p
                }
            }
        }
    };
    let platform = match platform {
        Ok(p) => p,
        Err(msg) => return error(Error::Internal(msg)),
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
fn with_stats(resp: web_sys::Response, stats: &stats::Stats) -> Result<web_sys::Response> {
    let resp = Response::from(resp);
    let headers = Headers::new();
    for (name, value) in resp.headers().entries() {
        headers.append(&name, &value)?;
    }
    headers.set(stats::HEADER, &stats.header())?;
    Ok(resp.with_headers(headers).into())
}
