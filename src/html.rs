//! HTML the Worker renders itself (error pages), and the security headers of every HTML page.

use crate::http_util::Response;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers for every HTML page: no framing, no referrer, no sniffing, no caching. `csp` is the
/// page's Content-Security-Policy.
pub fn security_headers(csp: String) -> Vec<(&'static str, String)> {
    vec![
        ("content-security-policy", csp),
        ("x-frame-options", "DENY".into()),
        ("referrer-policy", "no-referrer".into()),
        ("x-content-type-options", "nosniff".into()),
        ("cache-control", "no-store".into()),
    ]
}

/// The CSP of our pages: our own scripts and styles only, no inline code, forms posting only to
/// us (and, after login, on to the client's redirect origin), no framing.
pub fn page_csp(extra_form_action: Option<&str>) -> String {
    let form_action = match extra_form_action {
        Some(o) => format!("'self' {o}"),
        None => "'self'".into(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// A small error page (no scripts): for authorization requests that cannot be redirected.
pub fn error_page(status: u16, title: &str, detail: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{t}</title><link rel=\"stylesheet\" href=\"/auth/ui/style.css\"></head>\
         <body><main class=\"card\"><h1>{t}</h1><p role=\"alert\">{d}</p>\
         <p class=\"hint\">Go back to the application and try again. If this keeps happening, \
         tell the application's developers.</p></main></body></html>\n",
        t = escape(title),
        d = escape(detail)
    );
    let mut r = http::Response::new(body.into_bytes());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    for (k, v) in security_headers(page_csp(None)) {
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}
