//! DPoP: sender-constrained tokens (RFC 9449).
//!
//! A client proves possession of a key pair with a `DPoP` header: a JWT (`typ: dpop+jwt`)
//! signed by the private key whose public half is in its `jwk` header. At the token endpoint a
//! valid proof binds the new access token to the key (`cnf.jkt`, the RFC 7638 thumbprint,
//! RFC 9449 6.1) and answers `token_type: DPoP`; a refresh token issued to a public client is
//! bound to the key too (RFC 9449 5). On the protected API a bound token comes with the `DPoP`
//! scheme and a proof for that request (`htm`, `htu`, `ath`) signed by the bound key (7.1).
//!
//! Every proof is checked as RFC 9449 4.3 says: one header, a compact JWS, `typ`, an asymmetric
//! `alg` of [`ALGS`] pinned by the key type of the embedded public `jwk` (private members
//! refused), the signature (WebCrypto in the Worker), `htm`, `htu` (normalised, query and
//! fragment ignored, against the issuer-based URL and the URL the request came to), `iat`
//! within [`MAX_AGE`] in the past and the clock leeway ahead, `ath` on the API, the server
//! nonce when `DPOP_NONCE=on` (8), and a `jti` seen once: recorded in the atomic store (the
//! state shard of its key, as client-assertion `jti`s) for as long as the proof could pass.

use crate::authn::Identity;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{b64url, b64url_decode, Request};
use crate::platform::Crypto;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The proof algorithms we verify (`dpop_signing_alg_values_supported`): each is pinned by the
/// key type of the proof's `jwk` (Ed25519, P-256, P-384, RSA of at least 2048 bits). `Ed25519`
/// is RFC 9864's fully-specified name for EdDSA over Ed25519 (what oauth4webapi sends).
pub const ALGS: [&str; 5] = ["ES256", "ES384", "EdDSA", "Ed25519", "RS256"];

/// RFC 9449 4.2: the `typ` of a proof.
pub const TYP: &str = "dpop+jwt";

/// Longest `DPoP` header we look at (an RSA-4096 key with its signature is about 2.5 KB).
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// Longest `jti` we accept (RFC 9449 11.1 asks for 96 bits of randomness, not more).
pub const MAX_JTI_LEN: usize = 256;

/// How old a proof may be (its `iat`), seconds, on top of the clock leeway (RFC 9449 11.1:
/// "a relatively brief period"). Also how long its `jti` is remembered.
pub const MAX_AGE: i64 = 300;

/// The length of one server nonce window, seconds: a nonce is good in its window and the next.
pub const NONCE_WINDOW: i64 = 120;

/// JWK members of private (or symmetric) keys: a proof must carry a public key only (4.3).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Where a proof is checked: the token endpoint answers 400 (RFC 9449 5), the API 401 with a
/// `DPoP` challenge (7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Token,
    Api,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

/// What one proof must satisfy.
pub struct Expect<'a> {
    pub method: &'a str,
    /// The URLs the request may name in `htu`, already normalised ([`normalize_htu`]).
    pub urls: &'a [String],
    /// On the API: the access token, whose hash must be the proof's `ath`.
    pub access_token: Option<&'a str>,
    pub now: i64,
    pub leeway: i64,
}

/// The refusal of a proof at `place`.
pub fn refuse(place: Place, why: impl Into<String>) -> Error {
    Error::Dpop {
        api: place == Place::Api,
        error: "invalid_dpop_proof",
        description: why.into(),
        nonce: None,
    }
}

/// The `DPoP` header, if there is one: exactly one, of a sane size. Two headers arrive joined
/// by a comma (the Fetch API combines them), which no compact JWS contains.
pub fn single_header(req: &Request) -> std::result::Result<Option<&str>, String> {
    let mut all = req.headers().get_all("dpop").iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err("exactly one DPoP header is allowed".into());
    }
    if first.len() > MAX_PROOF_LEN {
        return Err(format!(
            "the DPoP proof is longer than {MAX_PROOF_LEN} bytes"
        ));
    }
    let v = first
        .to_str()
        .map_err(|_| "the DPoP header is not ASCII".to_string())?
        .trim();
    if v.contains(',') {
        return Err("exactly one DPoP header is allowed".into());
    }
    if v.is_empty() {
        return Err("the DPoP header is empty".into());
    }
    Ok(Some(v))
}

/// RFC 3986 6.2.2 and 6.2.3 normalisation of an `htu` or request URL, query and fragment
/// dropped (RFC 9449 4.3 step 9): scheme and host lowercased, the default port and dot
/// segments removed, percent-encodings of unreserved characters decoded and the others
/// uppercased, an empty path as `/`. None: not an absolute http(s) URL.
pub fn normalize_htu(u: &str) -> Option<String> {
    let u = u.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = u.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let mut host = authority.to_ascii_lowercase();
    if let Some(h) = host.strip_suffix(default_port) {
        host = h.to_string();
    }
    Some(format!(
        "{scheme}://{host}{}",
        remove_dot_segments(&normalize_percent(path))
    ))
}

fn normalize_percent(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c as char);
                } else {
                    out.push('%');
                    out.push((b[i + 1] as char).to_ascii_uppercase());
                    out.push((b[i + 2] as char).to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// RFC 3986 5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match *s {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// `ath` (RFC 9449 4.2): base64url of the SHA-256 of the access token.
pub fn ath(token: &str) -> String {
    b64url(&Sha256::digest(token.as_bytes()))
}

fn decode_json(part: &str, what: &str) -> std::result::Result<Map<String, Value>, String> {
    let bytes =
        b64url_decode(part).ok_or_else(|| format!("the proof's {what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("the proof's {what} is not a JSON object")),
    }
}

/// RFC 9449 4.3 steps 2 to 12 but the nonce and the `jti` record (see [`verify_request`]).
/// `Err(Ok(why))`: refused; `Err(Err(e))`: the crypto backend failed.
pub async fn check(
    crypto: &dyn Crypto,
    jwt: &str,
    expect: &Expect<'_>,
) -> std::result::Result<Proof, std::result::Result<String, Error>> {
    let bad = |why: String| Err(Ok(why));
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return bad("the DPoP proof is not a compact JWS".into());
    }
    let header = decode_json(parts[0], "header").map_err(Ok)?;
    let claims = decode_json(parts[1], "payload").map_err(Ok)?;
    if header.get("typ").and_then(Value::as_str) != Some(TYP) {
        return bad(format!("the proof's typ must be {TYP}"));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !ALGS.contains(&alg) {
        let shown: String = alg
            .chars()
            .take(16)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '?' })
            .collect();
        return bad(format!(
            "the proof's alg \"{shown}\" is not accepted; accepted: {}",
            ALGS.join(", ")
        ));
    }
    if header.contains_key("crit") {
        return bad("the proof has a crit header, which we do not understand".into());
    }
    let Some(jwk) = header.get("jwk").and_then(Value::as_object) else {
        return bad("the proof has no jwk header".into());
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return bad("the proof's jwk holds private key material".into());
    }
    let (pinned, public, jkt) = crate::jwt::keys::public_jwk(&Value::Object(jwk.clone()))
        .map_err(|e| Ok(format!("the proof's jwk is not usable: {e}")))?;
    // The key decides the algorithm (RFC 8725 3.1): the header must name the key's own.
    if !pinned.named(alg) {
        return bad(format!(
            "the proof's alg {alg} does not match its jwk, which signs {}",
            pinned.jws_name()
        ));
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| Ok("the proof has no jti".to_string()))?;
    if jti.len() > MAX_JTI_LEN {
        return bad(format!(
            "the proof's jti is longer than {MAX_JTI_LEN} characters"
        ));
    }
    if text("htm") != Some(expect.method) {
        return bad(format!("the proof's htm is not {}", expect.method));
    }
    let htu = text("htu").ok_or_else(|| Ok("the proof has no htu".to_string()))?;
    match normalize_htu(htu) {
        Some(u) if expect.urls.contains(&u) => {}
        _ => return bad("the proof's htu is not the URL of this request".into()),
    }
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(i64::MIN),
        _ => return bad("the proof has no numeric iat".into()),
    };
    if iat > expect.now + expect.leeway {
        return bad("the proof's iat is in the future".into());
    }
    if iat < expect.now - MAX_AGE - expect.leeway {
        return bad(format!("the proof is older than {MAX_AGE} seconds"));
    }
    if let Some(token) = expect.access_token {
        match text("ath") {
            Some(a) if crate::secret::ct_eq(a.as_bytes(), ath(token).as_bytes()) => {}
            Some(_) => return bad("the proof's ath is not the hash of this access token".into()),
            None => return bad("the proof has no ath (the access token's hash)".into()),
        }
    }
    let sig = b64url_decode(parts[2])
        .ok_or_else(|| Ok("the proof's signature is not base64url".to_string()))?;
    let signed = &jwt[..parts[0].len() + 1 + parts[1].len()];
    match crypto
        .verify(
            pinned,
            &format!("dpop/{jkt}"),
            &public,
            signed.as_bytes(),
            &sig,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return bad("the proof's signature is invalid".into()),
        Err(e) => return Err(Err(Error::Unavailable(e.0))),
    }
    Ok(Proof {
        jkt,
        jti: jti.to_string(),
        iat,
        nonce: text("nonce").map(str::to_string),
    })
}

/// The key of the server nonce: an HMAC of a label under the signing key (else `ADMIN_SECRET`).
fn nonce_key(app: &App) -> Option<Vec<u8>> {
    use hmac::{Hmac, Mac};
    let secret = crate::state::worker_secret(app)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).ok()?;
    mac.update(b"edge-authorizer dpop-nonce key");
    Some(mac.finalize().into_bytes().to_vec())
}

fn nonce_for(key: &[u8], window: i64) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(&window.to_be_bytes());
    b64url(&mac.finalize().into_bytes()[..18])
}

/// The current server nonce (RFC 9449 8): stateless, an HMAC of the time window, so any
/// isolate issues and accepts the same ones without storage. None: no key to derive it from.
pub fn current_nonce(app: &App) -> Option<String> {
    let key = nonce_key(app)?;
    Some(nonce_for(&key, app.now().div_euclid(NONCE_WINDOW)))
}

/// Is `nonce` one we issued in this window or the previous one?
fn nonce_fresh(app: &App, nonce: &str) -> bool {
    let Some(key) = nonce_key(app) else {
        return false;
    };
    let w = app.now().div_euclid(NONCE_WINDOW);
    [w, w - 1]
        .iter()
        .any(|w| crate::secret::ct_eq(nonce.as_bytes(), nonce_for(&key, *w).as_bytes()))
}

/// The URL this request came to (query dropped), if the request knows its authority.
fn request_url(req: &Request) -> Option<String> {
    let uri = req.uri();
    let authority = uri.authority()?;
    Some(format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("https"),
        authority.as_str(),
        uri.path()
    ))
}

/// The `htu` values a proof for this request may name, normalised: our issuer plus the path
/// (the token endpoint at [`Place::Token`]), and the URL the request itself came to.
fn expected_urls(app: &App, req: &Request, place: Place) -> Vec<String> {
    let path = match place {
        // The PAR endpoint takes proofs too (RFC 9449 10.1), for its own URL.
        Place::Token if req.uri().path().ends_with("/auth/par") => "/auth/par",
        Place::Token => "/auth/token",
        Place::Api => req.uri().path(),
    };
    let mut urls: Vec<String> = [Some(format!("{}{path}", app.issuer(req))), request_url(req)]
        .into_iter()
        .flatten()
        .filter_map(|u| normalize_htu(&u))
        .collect();
    urls.dedup();
    urls
}

/// Verifies the request's `DPoP` header at `place`, if it has one (None: no header). With
/// `bound_to`, the proof's key must be that thumbprint (checked before anything is stored).
/// The nonce (when `DPOP_NONCE=on`) and the single use of `jti` (the atomic store) come last.
pub async fn verify_request(
    app: &App,
    req: &Request,
    place: Place,
    access_token: Option<&str>,
    bound_to: Option<&str>,
) -> Result<Option<Proof>> {
    let Some(jwt) = single_header(req).map_err(|why| refuse(place, why))? else {
        return Ok(None);
    };
    let urls = expected_urls(app, req, place);
    let expect = Expect {
        method: req.method().as_str(),
        urls: &urls,
        access_token,
        now: app.now(),
        leeway: app.config.leeway,
    };
    let proof = match check(app.platform.crypto.as_ref(), jwt, &expect).await {
        Ok(p) => p,
        Err(Ok(why)) => return Err(refuse(place, why)),
        Err(Err(e)) => return Err(e),
    };
    if let Some(jkt) = bound_to {
        if !crate::secret::ct_eq(jkt.as_bytes(), proof.jkt.as_bytes()) {
            return Err(refuse(
                place,
                "the proof is signed by another key than the one the token is bound to",
            ));
        }
    }
    if app.config.dpop_nonce && !proof.nonce.as_deref().is_some_and(|n| nonce_fresh(app, n)) {
        let nonce = current_nonce(app).ok_or_else(|| {
            Error::Internal("DPOP_NONCE needs SIGNING_KEY or ADMIN_SECRET".into())
        })?;
        return Err(Error::Dpop {
            api: place == Place::Api,
            error: "use_dpop_nonce",
            description: match proof.nonce {
                Some(_) => "the proof's nonce has expired; use the one in DPoP-Nonce".into(),
                None => "a DPoP nonce is required; use the one in DPoP-Nonce".into(),
            },
            nonce: Some(nonce),
        });
    }
    // RFC 9449 11.1: a proof is accepted once. The record lives as long as the proof could.
    let key = format!(
        "dpop/{}/{}",
        crate::state::hash(&proof.jkt),
        crate::state::hash(&proof.jti)
    );
    let until = proof.iat + MAX_AGE + app.config.leeway + 1;
    match app.platform.state.cas(&key, None, Some("1"), until).await? {
        crate::platform::Cas::Swapped => Ok(Some(proof)),
        crate::platform::Cas::Conflict(_) => Err(refuse(
            place,
            "the proof's jti was already used (a replayed proof)",
        )),
    }
}

/// Does the client's registration require DPoP (`dpop_bound_access_tokens: true`, RFC 9449 5.2)?
pub fn required_by(client: &crate::model::client::Client) -> bool {
    client
        .doc
        .get("dpop_bound_access_tokens")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The token endpoint (RFC 9449 5): the proof's thumbprint, which the grants bind the access
/// token to (and a public client's refresh token), or None without a proof; a client
/// registered with `dpop_bound_access_tokens: true` must send one.
pub async fn at_token_endpoint(
    app: &App,
    req: &Request,
    client: &crate::model::client::Client,
) -> Result<Option<String>> {
    let proof = verify_request(app, req, Place::Token, None, None).await?;
    if proof.is_none() && required_by(client) {
        return Err(refuse(
            Place::Token,
            "this client must send a DPoP proof (dpop_bound_access_tokens)",
        ));
    }
    Ok(proof.map(|p| p.jkt))
}

/// The key a token is bound to: `cnf.jkt` of our or an external issuer's JWT claims, or of an
/// introspection answer (RFC 9449 6). A `cnf` we cannot check (another confirmation method,
/// a `jkt` that is not a string) binds the token to something no request can prove: refused.
pub fn bound_jkt(who: &Identity) -> std::result::Result<Option<String>, Error> {
    let cnf = [who.jwt.as_ref(), who.token.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|m| m.get("cnf"));
    match cnf {
        None => Ok(None),
        Some(c) => match c.get("jkt").and_then(Value::as_str) {
            Some(j) if !j.is_empty() => Ok(Some(j.to_string())),
            _ => Err(Error::InvalidToken(
                "the token is bound (cnf) to a key we cannot check".into(),
            )),
        },
    }
}

/// The token of `Authorization: DPoP <token>` (RFC 9449 7.1), if that is the scheme.
pub fn scheme_token(req: &Request) -> Option<std::result::Result<String, String>> {
    let raw = req.headers().get("authorization")?;
    let b = raw.as_bytes();
    if b.len() < 5 || !b[..4].eq_ignore_ascii_case(b"dpop") || b[4] != b' ' {
        return None;
    }
    if raw.len() > crate::http_util::MAX_AUTHORIZATION_LEN {
        return Some(Err("authorization header is too long".into()));
    }
    let Ok(s) = raw.to_str() else {
        return Some(Err("authorization header is not ASCII".into()));
    };
    let token = s[5..].trim();
    if token.is_empty() || token.contains(' ') {
        return Some(Err("DPoP token is empty or has spaces".into()));
    }
    Some(Ok(token.to_string()))
}

/// The API side (RFC 9449 7): with the `DPoP` scheme the token must be bound and the request
/// carry a proof for it by the bound key; with `Bearer` a bound token is refused (7.1: no
/// downgrade). Runs after the token checks, whether its claims came from the token cache or
/// not, so a cached bound token never passes without its proof.
pub async fn check_api(
    app: &App,
    req: &Request,
    token: &str,
    dpop_scheme: bool,
    who: &Identity,
) -> Result<()> {
    let bound = bound_jkt(who)?;
    match (dpop_scheme, bound) {
        (false, None) => Ok(()),
        (false, Some(_)) => Err(Error::InvalidToken(
            "a DPoP-bound token must be sent with the DPoP scheme and a proof".into(),
        )),
        (true, None) => Err(Error::InvalidToken(
            "the token is not DPoP-bound; send it with the Bearer scheme".into(),
        )),
        (true, Some(jkt)) => {
            match verify_request(app, req, Place::Api, Some(token), Some(&jkt)).await? {
                Some(_) => Ok(()),
                None => Err(refuse(
                    Place::Api,
                    "a DPoP proof is required with the DPoP scheme",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_normalisation() {
        let n = |u: &str| normalize_htu(u);
        assert_eq!(
            n("HTTPS://Example.COM:443/auth/token?x=1#f").as_deref(),
            Some("https://example.com/auth/token")
        );
        assert_eq!(n("http://a.test:80").as_deref(), Some("http://a.test/"));
        assert_eq!(
            n("http://a.test:8080/x").as_deref(),
            Some("http://a.test:8080/x")
        );
        assert_eq!(
            n("https://a.test/%7euser/%2f%41").as_deref(),
            Some("https://a.test/~user/%2FA")
        );
        assert_eq!(
            n("https://a.test/a/./b/../c").as_deref(),
            Some("https://a.test/a/c")
        );
        assert_eq!(
            n("https://a.test/a/b/..").as_deref(),
            Some("https://a.test/a/")
        );
        assert_eq!(n("ftp://a.test/"), None);
        assert_eq!(n("https://u@a.test/"), None);
        assert_eq!(n("/auth/token"), None);
        assert_eq!(n("https://a.test/%"), Some("https://a.test/%".into()));
        assert_eq!(n("https://a.test/%4"), Some("https://a.test/%4".into()));
    }

    use crate::crypto::RustCrypto;
    use crate::platform::{PrivateKey, SigAlg};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const URL: &str = "https://as.test/auth/token";

    fn p256() -> (PrivateKey, Value) {
        let d = [9u8; 32];
        let (x, y) = crate::crypto::p256_public_from_scalar(&d).unwrap();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64url(&x), "y": b64url(&y)});
        (PrivateKey::P256 { d, x, y }, jwk)
    }

    fn sign(key: &PrivateKey, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let alg = match key {
            PrivateKey::P256 { .. } => SigAlg::Es256,
            PrivateKey::Ed25519 { .. } => SigAlg::EdDsa,
        };
        let sig =
            futures::executor::block_on(RustCrypto.sign(alg, "t", key, input.as_bytes())).unwrap();
        format!("{input}.{}", b64url(&sig))
    }

    fn claims() -> Value {
        json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": NOW})
    }

    fn run(jwt: &str, token: Option<&str>) -> std::result::Result<Proof, String> {
        let urls = vec![URL.to_string()];
        let expect = Expect {
            method: "POST",
            urls: &urls,
            access_token: token,
            now: NOW,
            leeway: 30,
        };
        futures::executor::block_on(check(&RustCrypto, jwt, &expect)).map_err(|e| match e {
            Ok(why) => why,
            Err(e) => format!("backend: {e}"),
        })
    }

    #[test]
    fn a_good_proof_gives_the_rfc7638_thumbprint() {
        let (key, jwk) = p256();
        let jwt = sign(
            &key,
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}),
            claims(),
        );
        let p = run(&jwt, None).unwrap();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(p.jkt, b64url(&Sha256::digest(canonical.as_bytes())));
        assert_eq!(p.jti, "j1");
        // The htu is compared normalised (RFC 9449 4.3 step 9).
        let mut c = claims();
        c["htu"] = json!("HTTPS://AS.test:443/auth/token?x#y");
        let jwt = sign(
            &key,
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}),
            c,
        );
        assert!(run(&jwt, None).is_ok());
    }

    #[test]
    fn refusals() {
        let (key, jwk) = p256();
        let h = || json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk.clone()});
        let refused = |header: Value, claims: Value, token: Option<&str>, why: &str| {
            let e = run(&sign(&key, header, claims), token).unwrap_err();
            assert!(e.contains(why), "{e} should say {why}");
        };
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            c
        };
        let hdr = |k: &str, v: Value| {
            let mut x = h();
            x[k] = v;
            x
        };
        refused(hdr("typ", json!("JWT")), claims(), None, "typ");
        refused(hdr("alg", json!("none")), claims(), None, "not accepted");
        refused(hdr("alg", json!("HS256")), claims(), None, "not accepted");
        refused(
            hdr("alg", json!("EdDSA")),
            claims(),
            None,
            "does not match its jwk",
        );
        refused(hdr("crit", json!(["x"])), claims(), None, "crit");
        let mut private = jwk.clone();
        private["d"] = json!(b64url(&[9u8; 32]));
        refused(hdr("jwk", private), claims(), None, "private");
        refused(
            hdr("jwk", json!({"kty": "oct", "k": "AAAA"})),
            claims(),
            None,
            "private",
        );
        let mut no_jwk = h();
        no_jwk.as_object_mut().unwrap().remove("jwk");
        refused(no_jwk, claims(), None, "no jwk");
        refused(h(), with("htm", json!("GET")), None, "htm");
        refused(
            h(),
            with("htu", json!("https://as.test/auth/other")),
            None,
            "htu",
        );
        refused(
            h(),
            with("htu", json!("https://evil.test/auth/token")),
            None,
            "htu",
        );
        refused(h(), with("iat", json!(NOW + 31)), None, "future");
        refused(h(), with("iat", json!(NOW - MAX_AGE - 31)), None, "older");
        refused(h(), with("iat", json!("now")), None, "iat");
        refused(h(), with("jti", json!("")), None, "jti");
        refused(
            h(),
            with("jti", json!("x".repeat(MAX_JTI_LEN + 1))),
            None,
            "jti",
        );
        refused(h(), claims(), Some("the-token"), "no ath");
        refused(
            h(),
            with("ath", json!(ath("another"))),
            Some("the-token"),
            "ath",
        );
        assert!(run(
            &sign(&key, h(), with("ath", json!(ath("the-token")))),
            Some("the-token")
        )
        .is_ok());
        // Signed by another key than the jwk names.
        let other = PrivateKey::P256 {
            d: [3u8; 32],
            x: [0; 32],
            y: [0; 32],
        };
        let forged = sign(&other, h(), claims());
        assert!(run(&forged, None).unwrap_err().contains("signature"));
        // Not a JWS at all.
        assert!(run("a.b", None).is_err());
        assert!(run("..", None).is_err());
    }

    #[test]
    fn nonces_are_good_for_their_window_and_the_next() {
        let t = crate::testing::TestApp::new();
        let n = current_nonce(&t.app).unwrap();
        assert!(nonce_fresh(&t.app, &n));
        assert!(!nonce_fresh(&t.app, "AAAAAAAAAAAAAAAAAAAAAAAA"));
        t.clock.advance(NONCE_WINDOW);
        assert!(nonce_fresh(&t.app, &n), "the previous window's nonce");
        assert_ne!(current_nonce(&t.app).unwrap(), n);
        t.clock.advance(NONCE_WINDOW);
        assert!(!nonce_fresh(&t.app, &n), "two windows later: expired");
        // Another signing key, another nonce: a nonce is not portable between deployments.
        let other = crate::testing::TestApp::with_config(|c| {
            c.keys = crate::jwt::keys::KeySet::from_config(
                Some(&crate::testing::ed25519_jwk([8u8; 32], "k2")),
                None,
            )
            .unwrap();
        });
        other.clock.advance(2 * NONCE_WINDOW);
        let now = current_nonce(&t.app).unwrap();
        assert!(nonce_fresh(&t.app, &now));
        assert!(!nonce_fresh(&other.app, &now));
    }

    #[test]
    fn ath_is_sha256_base64url() {
        // SHA-256("abc"), RFC 6234 test vector, base64url.
        assert_eq!(ath("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
