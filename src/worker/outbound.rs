//! [`HttpClient`] over the Workers `fetch`.

use crate::platform::{BackendError, HttpClient};
use async_trait::async_trait;
use worker::{Fetch, Headers, Method, Request, RequestInit};

pub struct WorkerHttp;

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
        let mut resp = Fetch::Request(req).send().await.map_err(err)?;
        let status = resp.status_code();
        let text = resp.text().await.map_err(err)?;
        Ok((status, text))
    }
}
