//! Test fixtures: a fixed clock, seeded randomness, a log that can be read back, and a
//! [`TestApp`] that drives the real [`App::handle`] in process with a memory store.
//! Public so that `tests/` and benches can use them; not part of the Worker's behaviour.

use crate::config::Config;
use crate::context::{App, Log, Outcome, Platform};
use crate::crypto::{ed25519_public_from_seed, RustCrypto};
use crate::http_util::{b64url, Request, Response};
use crate::jwt::keys::KeySet;
use crate::platform::{Clock, Random};
use crate::secret::Secret;
use crate::store::memory::{MemoryHttp, MemoryKv, MemoryState};
use crate::store::Cache;
use base64::Engine;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// A clock that stands still until told to move.
#[derive(Debug)]
pub struct FixedClock(pub Cell<i64>);

impl FixedClock {
    pub fn new(t: i64) -> Self {
        FixedClock(Cell::new(t))
    }
    pub fn advance(&self, secs: i64) {
        self.0.set(self.0.get() + secs);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0.get()
    }
}

/// SplitMix64: deterministic bytes from a seed. For tests only.
#[derive(Debug)]
pub struct SeededRandom(Cell<u64>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(Cell::new(seed))
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut z = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            self.0.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// A log whose lines tests can read.
#[derive(Debug, Default)]
pub struct MemoryLog(pub RefCell<Vec<String>>);

impl Log for MemoryLog {
    fn log(&self, line: &str) {
        self.0.borrow_mut().push(line.to_string());
    }
}

/// A private Ed25519 JWK (the `SIGNING_KEY` format) from a 32-byte seed.
pub fn ed25519_jwk(seed: [u8; 32], kid: &str) -> String {
    let x = ed25519_public_from_seed(&seed);
    json!({"kty": "OKP", "crv": "Ed25519", "d": b64url(&seed), "x": b64url(&x), "kid": kid, "alg": "EdDSA"})
        .to_string()
}

pub const ADMIN_SECRET: &str = "test-admin-secret";
pub const ISSUER: &str = "https://auth.example.test";
/// Epoch of the fixed clock: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

/// The real service with a memory KV, fixed clock, seeded randomness and fast KDF settings.
pub struct TestApp {
    pub app: App,
    pub kv: Rc<MemoryKv>,
    pub state: Rc<MemoryState>,
    pub http: Rc<MemoryHttp>,
    pub clock: Rc<FixedClock>,
    pub log: Rc<MemoryLog>,
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A TestApp whose config is adjusted by `f` (starting from the test defaults).
    pub fn with_config(f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            issuer: Some(ISSUER.into()),
            admin_secret: Some(Secret::new(ADMIN_SECRET)),
            keys: KeySet::from_config(Some(&ed25519_jwk([7u8; 32], "test-key-1")), None)
                .unwrap_or_default(),
            pbkdf2_iterations: 1_000,
            ..Config::default()
        };
        f(&mut config);
        let kv = Rc::new(MemoryKv::new());
        let clock = Rc::new(FixedClock::new(T0));
        let log = Rc::new(MemoryLog::default());
        let state = Rc::new(MemoryState::new(clock.clone()));
        let http = Rc::new(MemoryHttp::default());
        let platform = Platform {
            kv: kv.clone(),
            state: state.clone(),
            catalog: None,
            http: http.clone(),
            crypto: Rc::new(RustCrypto),
            clock: clock.clone(),
            random: Rc::new(SeededRandom::new(42)),
            log: log.clone(),
        };
        TestApp {
            app: App::new(Rc::new(config), platform, Rc::new(Cache::default())),
            kv,
            state,
            http,
            clock,
            log,
        }
    }

    /// Sends a request through `App::handle`.
    pub fn send(&self, req: Request) -> Outcome {
        futures::executor::block_on(self.app.handle(req))
    }

    /// Sends a request that must be answered by us (not forwarded).
    pub fn call(&self, req: Request) -> TestResponse {
        match self.send(req) {
            Outcome::Respond(r) => TestResponse(r),
            Outcome::Forward(f) => panic!("expected a response, got a forward to {}", f.uri()),
            Outcome::Asset { path, .. } => panic!("expected a response, got the asset {path}"),
        }
    }

    /// A request builder for `method path` against the issuer's host.
    pub fn req(method: &str, path: &str) -> http::request::Builder {
        http::Request::builder()
            .method(method)
            .uri(format!("{ISSUER}{path}"))
    }

    pub fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    pub fn root() -> String {
        Self::basic("root", ADMIN_SECRET)
    }

    /// `PUT /{path}` as root with a JSON body.
    pub fn admin_put(&self, path: &str, body: Value) -> TestResponse {
        self.call(
            Self::req("PUT", path)
                .header("authorization", Self::root())
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap_or_default(),
        )
    }

    /// `POST /auth/token` with a form body and optional Authorization header.
    pub fn token(&self, auth: Option<&str>, form: &[(&str, &str)]) -> TestResponse {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut b = Self::req("POST", "/auth/token")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        self.call(b.body(body.into_bytes()).unwrap_or_default())
    }

    /// A client_credentials access token of the client `id` (Basic auth; asserts 200) and its
    /// claims.
    pub fn cc_token(&self, id: &str, secret: &str) -> (String, serde_json::Value) {
        let r = self.token(
            Some(&Self::basic(id, secret)),
            &[("grant_type", "client_credentials")],
        );
        assert_eq!(r.status(), 200, "{}", r.text());
        let token = r.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        let payload = token.split('.').nth(1).expect("a JWT");
        let claims = serde_json::from_slice(
            &crate::http_util::b64url_decode(payload).expect("base64url payload"),
        )
        .expect("JSON claims");
        (token, claims)
    }

    /// `GET path` with an Authorization header.
    pub fn get_with(&self, path: &str, auth: &str) -> Outcome {
        self.send(
            Self::req("GET", path)
                .header("authorization", auth)
                .body(Vec::new())
                .unwrap_or_default(),
        )
    }
}

/// A response with helpers for assertions.
#[derive(Debug)]
pub struct TestResponse(pub Response);

impl TestResponse {
    pub fn status(&self) -> u16 {
        self.0.status().as_u16()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(self.0.body()).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.headers().get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.0.body()).into_owned()
    }
}
