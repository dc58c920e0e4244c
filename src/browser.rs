//! The browser verifier package: [`crate::jwt::verify`] (the same code the Worker runs) behind a
//! small wasm-bindgen API for SPAs, with WebCrypto doing the signature checks.
//!
//! ```js
//! import init, { Verifier, createPkce, authorizeUrl } from "@edge-authorizer/verifier";
//! await init();
//! const v = await Verifier.fromIssuer("https://auth.example.com", { audience: "my-app" });
//! const claims = await v.verify(idToken); // rejects with an Error whose `code` says why
//! ```
//!
//! Built by `scripts/build-browser.sh` (`--features browser`, wasm-bindgen `--target web`).

use crate::http_util::b64url;
use crate::jwt::keys::KeySet;
use crate::jwt::{self, Expectations, VerifyError};
use crate::oauth::pkce;
use crate::platform::{BackendError, Crypto, PrivateKey, PublicKey, SigAlg};
use crate::webcrypto::WebCrypto;
use js_sys::{Function, Object, Promise, Reflect, JSON};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Why `verify` refused a token (`Error.code`). `unavailable`: discovery or JWKS could not be fetched. */
export type VerifyErrorCode =
  | "expired" | "not_yet_valid" | "bad_signature" | "wrong_issuer" | "wrong_audience"
  | "unknown_key" | "malformed" | "alg_not_allowed" | "wrong_type" | "unavailable" | "invalid_options";

/** The error `verify` rejects with (and `fromJwks`/`fromIssuer` throw). */
export interface VerifyError extends Error {
  name: "VerifyError";
  code: VerifyErrorCode;
}

/** Options of `Verifier.fromJwks` and `Verifier.fromIssuer`. */
export interface VerifierOptions {
  /** Required `iss` (fromJwks only: fromIssuer uses its `issuer` argument). */
  issuer?: string;
  /** Required `aud` (a string, or one element of an array `aud`). */
  audience: string;
  /** Seconds of clock skew tolerated on `exp` and `nbf`. Default 30. */
  clockSkew?: number;
  /** Required `typ` header, e.g. `"at+jwt"` for RFC 9068 access tokens. Default: not checked. */
  typ?: string;
  /** A fixed clock (seconds since the epoch), for tests. Default: `Date.now()`. */
  now?: number;
  /** fromIssuer: least seconds between two JWKS fetches on an unknown `kid`. Default 30. */
  refetchCooldown?: number;
}

/** Per-call overrides of `verify`. */
export interface VerifyOptions {
  audience?: string;
  typ?: string;
  now?: number;
}

/** Verified claims. Time claims are seconds since the epoch. */
export interface JwtClaims {
  iss: string;
  aud: string | string[];
  exp: number;
  sub?: string;
  iat?: number;
  nbf?: number;
  jti?: string;
  scope?: string;
  client_id?: string;
  nonce?: string;
  [claim: string]: unknown;
}

/** A JWK set: `{ keys: [...] }` (Ed25519 OKP and P-256 EC keys are used, others skipped). */
export interface Jwks {
  keys: Array<Record<string, unknown>>;
}

/** RFC 7636: a code verifier and its S256 challenge. */
export interface Pkce {
  verifier: string;
  challenge: string;
  method: "S256";
}

/** Parameters of `authorizeUrl`. */
export interface AuthorizeUrlParams {
  /** The authorization endpoint; or give `issuer` and get `<issuer>/auth/authorize`. */
  authorizationEndpoint?: string;
  issuer?: string;
  clientId: string;
  redirectUri: string;
  scope?: string;
  state?: string;
  nonce?: string;
  codeChallenge?: string;
  /** Default `"code"`. */
  responseType?: string;
  /** More query parameters (e.g. `prompt`, `audience`). */
  extra?: Record<string, string>;
}

/** The OpenID Provider metadata (discovery document) of `fromIssuer`. */
export interface IssuerMetadata {
  issuer: string;
  jwks_uri: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  userinfo_endpoint?: string;
  end_session_endpoint?: string;
  revocation_endpoint?: string;
  [member: string]: unknown;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "VerifierOptions")]
    pub type VerifierOptions;
    #[wasm_bindgen(typescript_type = "VerifyOptions")]
    pub type VerifyOptions;
    #[wasm_bindgen(typescript_type = "Jwks | string")]
    pub type JwksInput;
    #[wasm_bindgen(typescript_type = "Promise<JwtClaims>")]
    pub type ClaimsPromise;
    #[wasm_bindgen(typescript_type = "Promise<Verifier>")]
    pub type VerifierPromise;
    #[wasm_bindgen(typescript_type = "Pkce")]
    pub type PkceResult;
    #[wasm_bindgen(typescript_type = "AuthorizeUrlParams")]
    pub type AuthorizeUrlParams;
    #[wasm_bindgen(typescript_type = "IssuerMetadata | undefined")]
    pub type MetadataResult;
}

const DEFAULT_CLOCK_SKEW: i64 = 30;
const DEFAULT_REFETCH_COOLDOWN: f64 = 30.0;

/// An `Error` with a `code` (and `name` "VerifyError").
fn error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("VerifyError");
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

fn verify_error(e: &VerifyError) -> JsValue {
    error(e.code(), &e.to_string())
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    if obj.is_object() {
        Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

fn get_str(obj: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    let v = get(obj, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| error("invalid_options", &format!("{key} must be a string")))
}

fn get_num(obj: &JsValue, key: &str) -> Result<Option<f64>, JsValue> {
    let v = get(obj, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
        _ => Err(error(
            "invalid_options",
            &format!("{key} must be a non-negative number"),
        )),
    }
}

fn now_secs() -> f64 {
    js_sys::Date::now() / 1000.0
}

/// What every verification checks, from the options object.
#[derive(Debug, Clone)]
struct Settings {
    issuer: String,
    audience: String,
    clock_skew: i64,
    typ: Option<String>,
    now: Option<i64>,
    refetch_cooldown: f64,
}

impl Settings {
    fn from_options(options: &JsValue, issuer: Option<String>) -> Result<Settings, JsValue> {
        let issuer = match issuer {
            Some(i) => i,
            None => get_str(options, "issuer")?
                .ok_or_else(|| error("invalid_options", "issuer is required"))?,
        };
        let audience = get_str(options, "audience")?
            .ok_or_else(|| error("invalid_options", "audience is required"))?;
        Ok(Settings {
            issuer,
            audience,
            clock_skew: get_num(options, "clockSkew")?
                .map(|n| n as i64)
                .unwrap_or(DEFAULT_CLOCK_SKEW),
            typ: get_str(options, "typ")?,
            now: get_num(options, "now")?.map(|n| n as i64),
            refetch_cooldown: get_num(options, "refetchCooldown")?
                .unwrap_or(DEFAULT_REFETCH_COOLDOWN),
        })
    }
}

/// The verifying keys of a JWKS (`{"keys": [...]}` or a bare array), parsed by the same
/// `KeySet` code as the Worker's: Ed25519, P-256, P-384 and RSA signature keys; encryption keys
/// and unknown types are skipped so a foreign JWKS with more key types still works.
fn key_set(jwks: &str) -> Result<KeySet, JsValue> {
    let v: Value = serde_json::from_str(jwks)
        .map_err(|e| error("invalid_options", &format!("JWKS is not JSON: {e}")))?;
    KeySet::from_jwks(&v).map_err(|e| error("invalid_options", &e))
}

/// Signature checks through WebCrypto. Only `verify`: a browser never signs nor hashes
/// passwords, and leaving those out keeps their code out of the package.
struct VerifyOnly;

#[async_trait::async_trait(?Send)]
impl Crypto for VerifyOnly {
    async fn pbkdf2_sha256(&self, _: &[u8], _: &[u8], _: u32) -> Result<[u8; 32], BackendError> {
        Err(BackendError("not available in the browser package".into()))
    }

    async fn sign(
        &self,
        _: SigAlg,
        _: &str,
        _: &PrivateKey,
        _: &[u8],
    ) -> Result<Vec<u8>, BackendError> {
        Err(BackendError("not available in the browser package".into()))
    }

    async fn verify(
        &self,
        alg: SigAlg,
        key_id: &str,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, BackendError> {
        WebCrypto.verify(alg, key_id, key, message, signature).await
    }
}

/// `JSON.stringify` of an object, or the string itself.
fn json_text(v: &JsValue) -> Result<String, JsValue> {
    if let Some(s) = v.as_string() {
        return Ok(s);
    }
    JSON::stringify(v)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| error("invalid_options", "JWKS must be an object or a JSON string"))
}

/// GET `url` with the page's `fetch`, as text; `unavailable` on any failure.
async fn fetch_text(url: &str) -> Result<String, JsValue> {
    let unavailable = |what: &str| error("unavailable", &format!("GET {url}: {what}"));
    let fetch: Function = Reflect::get(&js_sys::global(), &"fetch".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| unavailable("no fetch in this runtime"))?;
    let init = Object::new();
    let _ = Reflect::set(&init, &"headers".into(), &{
        let h = Object::new();
        let _ = Reflect::set(&h, &"accept".into(), &"application/json".into());
        h.into()
    });
    let promise: Promise = fetch
        .call2(&JsValue::UNDEFINED, &url.into(), &init)
        .map_err(|_| unavailable("fetch threw"))?
        .dyn_into()
        .map_err(|_| unavailable("fetch returned no promise"))?;
    let response = JsFuture::from(promise)
        .await
        .map_err(|_| unavailable("network error"))?;
    if get(&response, "ok").as_bool() != Some(true) {
        let status = get(&response, "status").as_f64().unwrap_or(0.0) as u32;
        return Err(unavailable(&format!("HTTP {status}")));
    }
    let text: Function = get(&response, "text")
        .dyn_into()
        .map_err(|_| unavailable("not a Response"))?;
    let body: Promise = text
        .call0(&response)
        .map_err(|_| unavailable("body"))?
        .dyn_into()
        .map_err(|_| unavailable("body"))?;
    JsFuture::from(body)
        .await
        .map_err(|_| unavailable("body"))?
        .as_string()
        .ok_or_else(|| unavailable("body is not text"))
}

/// Discovery (OpenID Connect Discovery 1.0 section 4) and JWKS of one issuer, shared by every
/// Verifier of that issuer in this page.
struct Remote {
    metadata: String,
    jwks_uri: String,
    keys: RefCell<Rc<KeySet>>,
    fetched_at: Cell<f64>,
}

thread_local! {
    static ISSUERS: RefCell<HashMap<String, Rc<Remote>>> = RefCell::new(HashMap::new());
}

async fn discover(issuer: &str) -> Result<Rc<Remote>, JsValue> {
    if let Some(r) = ISSUERS.with(|m| m.borrow().get(issuer).cloned()) {
        return Ok(r);
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let metadata = fetch_text(&url).await?;
    let doc: Value = serde_json::from_str(&metadata)
        .map_err(|_| error("unavailable", "discovery document is not JSON"))?;
    // Section 4.3: the document's issuer must be exactly the one we asked.
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(error(
            "wrong_issuer",
            "discovery document names another issuer",
        ));
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| error("unavailable", "discovery document has no jwks_uri"))?
        .to_string();
    let keys = key_set(&fetch_text(&jwks_uri).await?)?;
    let remote = Rc::new(Remote {
        metadata,
        jwks_uri,
        keys: RefCell::new(Rc::new(keys)),
        fetched_at: Cell::new(now_secs()),
    });
    ISSUERS.with(|m| m.borrow_mut().insert(issuer.to_string(), remote.clone()));
    Ok(remote)
}

impl Remote {
    /// Fetches the JWKS again unless it was fetched less than `cooldown` seconds ago. True when
    /// new keys were loaded.
    async fn refetch(&self, cooldown: f64) -> Result<bool, JsValue> {
        if now_secs() - self.fetched_at.get() < cooldown {
            return Ok(false);
        }
        self.fetched_at.set(now_secs());
        let keys = key_set(&fetch_text(&self.jwks_uri).await?)?;
        *self.keys.borrow_mut() = Rc::new(keys);
        Ok(true)
    }
}

struct Inner {
    settings: Settings,
    keys: Option<Rc<KeySet>>,
    remote: Option<Rc<Remote>>,
}

impl Inner {
    fn keys(&self) -> Rc<KeySet> {
        match (&self.remote, &self.keys) {
            (Some(r), _) => r.keys.borrow().clone(),
            (None, Some(k)) => k.clone(),
            (None, None) => Rc::new(KeySet::default()),
        }
    }

    async fn verify(&self, token: &str, overrides: &JsValue) -> Result<JsValue, JsValue> {
        let s = &self.settings;
        let audience = get_str(overrides, "audience")?.unwrap_or_else(|| s.audience.clone());
        let typ = get_str(overrides, "typ")?.or_else(|| s.typ.clone());
        let now = get_num(overrides, "now")?
            .map(|n| n as i64)
            .or(s.now)
            .unwrap_or_else(|| now_secs() as i64);
        let expect = Expectations {
            issuer: &s.issuer,
            audience: Some(&audience),
            typ: typ.as_deref(),
            leeway: s.clock_skew,
            now,
        };
        let mut result = jwt::verify(&VerifyOnly, &self.keys(), token, &expect).await;
        // A kid we do not know may be a key the issuer has just rotated in: fetch once more.
        if matches!(result, Err(VerifyError::UnknownKey)) {
            if let Some(remote) = &self.remote {
                if remote.refetch(s.refetch_cooldown).await? {
                    result = jwt::verify(&VerifyOnly, &self.keys(), token, &expect).await;
                }
            }
        }
        let claims = result.map_err(|e| verify_error(&e))?;
        JSON::parse(&Value::Object(claims).to_string())
    }
}

/// Verifies JWTs (our access tokens, OpenID Connect ID tokens) against a JWKS, with WebCrypto.
#[wasm_bindgen]
pub struct Verifier {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl Verifier {
    /// A verifier for a fixed JWKS (object or JSON text). `options.issuer` and
    /// `options.audience` are required.
    #[wasm_bindgen(js_name = fromJwks)]
    pub fn from_jwks(jwks: JwksInput, options: VerifierOptions) -> Result<Verifier, JsValue> {
        let settings = Settings::from_options(&options, None)?;
        let keys = key_set(&json_text(&jwks)?)?;
        Ok(Verifier {
            inner: Rc::new(Inner {
                settings,
                keys: Some(Rc::new(keys)),
                remote: None,
            }),
        })
    }

    /// A verifier for an issuer: fetches `<issuer>/.well-known/openid-configuration` and its
    /// `jwks_uri` (cached per issuer in this page), and fetches the JWKS again, at most once per
    /// `refetchCooldown` seconds, when a token names an unknown `kid`.
    #[wasm_bindgen(js_name = fromIssuer)]
    pub fn from_issuer(issuer: String, options: VerifierOptions) -> VerifierPromise {
        let options: JsValue = options.into();
        future_to_promise(async move {
            let issuer = issuer.trim_end_matches('/').to_string();
            let settings = Settings::from_options(&options, Some(issuer.clone()))?;
            let remote = discover(&issuer).await?;
            Ok(Verifier {
                inner: Rc::new(Inner {
                    settings,
                    keys: None,
                    remote: Some(remote),
                }),
            }
            .into())
        })
        .unchecked_into()
    }

    /// Verifies `token`: resolves to its claims, or rejects with an `Error` whose `code` says
    /// why (`expired`, `not_yet_valid`, `bad_signature`, `wrong_issuer`, `wrong_audience`,
    /// `unknown_key`, `malformed`, `alg_not_allowed`, `wrong_type`).
    pub fn verify(&self, token: String, options: Option<VerifyOptions>) -> ClaimsPromise {
        let inner = self.inner.clone();
        let options: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        future_to_promise(async move { inner.verify(&token, &options).await }).unchecked_into()
    }

    /// The issuer tokens must come from.
    #[wasm_bindgen(getter)]
    pub fn issuer(&self) -> String {
        self.inner.settings.issuer.clone()
    }

    /// The issuer's discovery document (fromIssuer), or undefined.
    #[wasm_bindgen(getter)]
    pub fn metadata(&self) -> MetadataResult {
        self.inner
            .remote
            .as_ref()
            .and_then(|r| JSON::parse(&r.metadata).ok())
            .unwrap_or(JsValue::UNDEFINED)
            .unchecked_into()
    }

    /// The key ids currently known.
    #[wasm_bindgen(getter)]
    pub fn kids(&self) -> Vec<String> {
        self.inner
            .keys()
            .verifying
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }
}

/// RFC 7636: a fresh code verifier (32 random bytes from `crypto.getRandomValues`, base64url)
/// and its S256 challenge.
#[wasm_bindgen(js_name = createPkce)]
pub fn create_pkce() -> Result<PkceResult, JsValue> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| error("unavailable", &e.to_string()))?;
    let verifier = b64url(&bytes);
    let challenge = pkce::s256(&verifier);
    let o = Object::new();
    let _ = Reflect::set(&o, &"verifier".into(), &verifier.into());
    let _ = Reflect::set(&o, &"challenge".into(), &challenge.into());
    let _ = Reflect::set(&o, &"method".into(), &"S256".into());
    Ok(o.unchecked_into())
}

/// The S256 challenge of a code verifier (RFC 7636 4.2).
#[wasm_bindgen(js_name = pkceChallenge)]
pub fn pkce_challenge(verifier: &str) -> String {
    pkce::s256(verifier)
}

/// An authorization request URL (RFC 6749 4.1.1, RFC 7636 4.3, OpenID Connect `nonce`).
#[wasm_bindgen(js_name = authorizeUrl)]
pub fn authorize_url(params: AuthorizeUrlParams) -> Result<String, JsValue> {
    let p: JsValue = params.into();
    let endpoint = match get_str(&p, "authorizationEndpoint")? {
        Some(e) => e,
        None => match get_str(&p, "issuer")? {
            Some(i) => format!("{}/auth/authorize", i.trim_end_matches('/')),
            None => {
                return Err(error(
                    "invalid_options",
                    "authorizationEndpoint or issuer is required",
                ))
            }
        },
    };
    let required = |k: &str| {
        get_str(&p, k)?.ok_or_else(|| error("invalid_options", &format!("{k} is required")))
    };
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair(
        "response_type",
        &get_str(&p, "responseType")?.unwrap_or_else(|| "code".into()),
    );
    q.append_pair("client_id", &required("clientId")?);
    q.append_pair("redirect_uri", &required("redirectUri")?);
    for (key, name) in [("scope", "scope"), ("state", "state"), ("nonce", "nonce")] {
        if let Some(v) = get_str(&p, key)? {
            q.append_pair(name, &v);
        }
    }
    if let Some(c) = get_str(&p, "codeChallenge")? {
        q.append_pair("code_challenge", &c);
        q.append_pair("code_challenge_method", "S256");
    }
    let extra = get(&p, "extra");
    if extra.is_object() {
        for key in Object::keys(extra.unchecked_ref::<Object>()).iter() {
            if let Some(k) = key.as_string() {
                if let Some(v) = get_str(&extra, &k)? {
                    q.append_pair(&k, &v);
                }
            }
        }
    }
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Ok(format!("{endpoint}{sep}{}", q.finish()))
}
