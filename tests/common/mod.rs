//! A minimal browser for native tests of the interactive flows: a cookie jar, manual
//! redirects, and the login/consent form posts the pages make.
#![allow(dead_code)]

use edge_authorizer::context::Outcome;
use edge_authorizer::testing::{TestApp, TestResponse, ISSUER};
use serde_json::Value;
use std::collections::HashMap;

/// Our cookies' names over https (the native tests' issuer): `__Host-` prefixed.
pub const SESSION_COOKIE: &str = "__Host-edge_session";
pub const CSRF_COOKIE: &str = "__Host-edge_csrf";

/// A minimal browser: a cookie jar and manual redirects.
pub struct Browser<'a> {
    pub t: &'a TestApp,
    pub cookies: HashMap<String, String>,
}

pub enum Page {
    Redirect(String),
    Asset(String, Vec<(&'static str, String)>),
    Response(TestResponse),
}

impl<'a> Browser<'a> {
    pub fn new(t: &'a TestApp) -> Self {
        Browser {
            t,
            cookies: HashMap::new(),
        }
    }

    pub fn send(&mut self, b: http::request::Builder, body: Vec<u8>) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let b = if cookie.is_empty() {
            b
        } else {
            b.header("cookie", cookie.join("; "))
        };
        match self.t.send(b.body(body).unwrap()) {
            Outcome::Respond(r) => {
                for v in r.headers().get_all("set-cookie") {
                    let s = v.to_str().unwrap();
                    let (kv, _) = s.split_once(';').unwrap_or((s, ""));
                    let (k, v) = kv.split_once('=').unwrap();
                    if v.is_empty() || s.contains("Max-Age=0") {
                        self.cookies.remove(k);
                    } else {
                        self.cookies.insert(k.to_string(), v.to_string());
                    }
                }
                if r.status() == 303 {
                    Page::Redirect(r.headers()["location"].to_str().unwrap().to_string())
                } else {
                    Page::Response(TestResponse(r))
                }
            }
            Outcome::Asset { path, headers } => Page::Asset(path, headers),
            Outcome::Forward(_) => panic!("forwarded"),
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        self.send(TestApp::req("GET", path), vec![])
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(
            TestApp::req("POST", path)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", ISSUER),
            body.into_bytes(),
        )
    }

    /// Loads the interaction context as the login/consent page's script does.
    pub fn context(&mut self, query: &str) -> Value {
        match self.get(&format!("/auth/interaction?{query}")) {
            Page::Response(r) => r.json(),
            _ => panic!("no context"),
        }
    }

    pub fn login(&mut self, query: &str, user: &str, password: &str) -> Page {
        let csrf = self.context(query)["csrf"].as_str().unwrap().to_string();
        self.post(
            "/auth/login",
            &[
                ("username", user),
                ("password", password),
                ("csrf", &csrf),
                ("query", query),
            ],
        )
    }

    pub fn consent(&mut self, query: &str, decision: &str) -> Page {
        let csrf = self.context(query)["csrf"].as_str().unwrap().to_string();
        self.post(
            "/auth/consent",
            &[("decision", decision), ("csrf", &csrf), ("query", query)],
        )
    }
}

impl Browser<'_> {
    /// Signs out as the confirmation page does: a CSRF token from `GET /auth/session`, then
    /// `POST /auth/logout` with it.
    pub fn logout(&mut self) -> Page {
        let csrf = match self.get("/auth/session") {
            Page::Response(r) => r.json()["csrf"].as_str().unwrap().to_string(),
            _ => panic!("no session context"),
        };
        self.post("/auth/logout", &[("csrf", &csrf)])
    }
}

pub fn redirect(p: Page) -> String {
    match p {
        Page::Redirect(l) => l,
        Page::Response(r) => panic!("expected a redirect, got {}: {}", r.status(), r.text()),
        Page::Asset(p, _) => panic!("expected a redirect, got asset {p}"),
    }
}

pub fn params(url: &str) -> HashMap<String, String> {
    let q = url.split_once(['?', '#']).map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// An authorize query string: `base` with `extra` replacing same-named parameters (an empty
/// value removes the parameter).
pub fn query_with<'a>(mut base: Vec<(&'a str, &'a str)>, extra: &[(&'a str, &'a str)]) -> String {
    for (k, v) in extra {
        base.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            base.push((k, v));
        }
    }
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(base)
        .finish()
}

/// The form body the login page posts.
pub fn login_body(username: &str, password: &str, csrf: &str, query: &str) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("username", username),
            ("password", password),
            ("csrf", csrf),
            ("query", query),
        ])
        .finish()
        .into_bytes()
}

/// Gives `t` a memory Catalog (src/store/memory.rs `MemoryCatalog`): AccessPolicy,
/// TokenIntrospector, Role, Scope and Client are then written through it and loaded from their
/// KV bundles, as in the Worker. Without it the native tests use the per-id KV layout.
pub fn with_catalog(t: &mut TestApp) -> std::rc::Rc<edge_authorizer::store::memory::MemoryCatalog> {
    let c = std::rc::Rc::new(edge_authorizer::store::memory::MemoryCatalog::new(
        t.kv.clone(),
    ));
    t.app.platform.catalog = Some(c.clone());
    c
}
