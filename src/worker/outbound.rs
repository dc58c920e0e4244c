//! [`HttpClient`] over the Workers `fetch`, with a deadline; and [`with_timeout`], the deadline
//! every call that leaves the isolate (KV, the Durable Object, outbound fetch) runs under.

use crate::platform::{BackendError, HttpClient, Limited};
use async_trait::async_trait;
use futures::future::{select, Either};
use std::future::Future;
use std::time::Duration;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
};

/// Runs `fut` for at most `ms` milliseconds; `None` when the time ran out first (the future is
/// dropped then, and with it the JS promise's continuation).
pub async fn with_timeout<T>(ms: u32, fut: impl Future<Output = T>) -> Option<T> {
    let fut = std::pin::pin!(fut);
    let delay = std::pin::pin!(Delay::from(Duration::from_millis(u64::from(ms))));
    match select(fut, delay).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}

/// Outbound fetch (JWKS, introspection) that gives up after `timeout_ms` (`OUTBOUND_TIMEOUT_MS`)
/// for the whole exchange, body included, and aborts the request then.
pub struct WorkerHttp {
    pub timeout_ms: u32,
}

#[async_trait(?Send)]
impl HttpClient for WorkerHttp {
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(u16, String), BackendError> {
        let err = |e: worker::Error| BackendError(format!("fetch {url}: {e}"));
        let h = Headers::new();
        for (k, v) in headers {
            h.set(k, v).map_err(err)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(method.to_string()))
            .with_headers(h);
        if let Some(b) = body {
            init.with_body(Some(b.into()));
        }
        let req = Request::new_with_init(url, &init).map_err(err)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut resp = Fetch::Request(req).send_with_signal(&signal).await?;
            let status = resp.status_code();
            let text = resp.text().await?;
            Ok::<_, worker::Error>((status, text))
        };
        match with_timeout(self.timeout_ms, exchange).await {
            Some(r) => r.map_err(err),
            None => {
                controller.abort();
                Err(BackendError(format!(
                    "fetch {url}: no answer within {} ms",
                    self.timeout_ms
                )))
            }
        }
    }

    /// `redirect: manual` (a 3xx comes back as it is), the body read chunk by chunk and given
    /// up past `max_bytes` (a `Content-Length` over it is refused before reading), all under
    /// the same deadline as [`WorkerHttp::send`]; the request is aborted when done either way.
    async fn get_limited(
        &self,
        url: &str,
        accept: &str,
        max_bytes: usize,
    ) -> Result<Limited, BackendError> {
        use futures::StreamExt;
        let err = |e: worker::Error| BackendError(format!("fetch {url}: {e}"));
        let h = Headers::new();
        h.set("accept", accept).map_err(err)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Get)
            .with_headers(h)
            .with_redirect(RequestRedirect::Manual);
        let req = Request::new_with_init(url, &init).map_err(err)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut resp = Fetch::Request(req).send_with_signal(&signal).await?;
            let status = resp.status_code();
            let mut headers = Vec::new();
            for name in ["content-type", "cache-control"] {
                if let Ok(Some(v)) = resp.headers().get(name) {
                    headers.push((name.to_string(), v));
                }
            }
            let declared = resp
                .headers()
                .get("content-length")
                .ok()
                .flatten()
                .and_then(|v| v.trim().parse::<usize>().ok());
            if status != 200 || declared.is_some_and(|n| n > max_bytes) {
                let body = (status != 200).then(Vec::new);
                return Ok::<_, worker::Error>(Limited {
                    status,
                    headers,
                    body,
                });
            }
            let mut body = Vec::new();
            if let Ok(mut stream) = resp.stream() {
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    if body.len() + chunk.len() > max_bytes {
                        return Ok(Limited {
                            status,
                            headers,
                            body: None,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
            }
            Ok(Limited {
                status,
                headers,
                body: Some(body),
            })
        };
        let out = with_timeout(self.timeout_ms, exchange).await;
        controller.abort();
        match out {
            Some(r) => r.map_err(err),
            None => Err(BackendError(format!(
                "fetch {url}: no answer within {} ms",
                self.timeout_ms
            ))),
        }
    }
}
