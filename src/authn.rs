//! Who is calling: Basic credentials (RFC 7617) or a bearer JWT of ours (RFC 6750, RFC 9068).
//! External issuers (TokenIntrospector) plug in at [`authenticate_bearer`].

use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{authorization, Authorization, BasicCredentials, Request};
use crate::jwt::{self, Expectations, VerifyError, ACCESS_TOKEN_TYP};
use crate::model::client::Client;
use crate::model::user::User;
use crate::model::{ResourceType, GENERATION_CLAIM, ROOT_CLIENT_ID};
use crate::secret::{ct_eq, verify_secret};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How long a successful secret check is remembered in the isolate (seconds). Rotating a
/// secret changes the stored hash, which misses this cache at once.
const VERIFIED_TTL: i64 = 300;

/// The authenticated caller.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The operator, by Basic `root:ADMIN_SECRET`: may do anything.
    pub root: bool,
    pub client: Option<Client>,
    pub user: Option<User>,
    /// Verified claims of the bearer token, if one was used.
    pub jwt: Option<Map<String, Value>>,
    /// An opaque token's RFC 7662 introspection answer (with `active: true`): the policy
    /// request's `token`, as in Aidbox.
    pub token: Option<Map<String, Value>>,
}

impl Identity {
    pub fn client_id(&self) -> Option<&str> {
        if self.root {
            return Some(ROOT_CLIENT_ID);
        }
        self.client.as_ref().map(|c| c.id.as_str())
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }

    pub fn scope(&self) -> Option<&str> {
        self.jwt.as_ref()?.get("scope")?.as_str()
    }
}

/// Authenticates the caller of a protected path or the admin API. `Ok(None)`: no credentials.
pub async fn authenticate(app: &App, req: &Request) -> Result<Option<Identity>> {
    use crate::oauth::dpop;
    // RFC 9449 7: `DPoP <token>` with a proof; a bound token is refused as `Bearer`.
    if let Some(token) = dpop::scheme_token(req) {
        let token = token.map_err(Error::InvalidToken)?;
        let who = authenticate_bearer(app, req, &token).await?;
        dpop::check_api(app, req, &token, true, &who).await?;
        return Ok(Some(who));
    }
    match authorization(req) {
        Ok(Authorization::None) => Ok(None),
        Ok(Authorization::Basic(creds)) => authenticate_basic(app, req, &creds).await.map(Some),
        Ok(Authorization::Bearer(token)) => {
            let who = authenticate_bearer(app, req, &token).await?;
            dpop::check_api(app, req, &token, false, &who).await?;
            Ok(Some(who))
        }
        Err(reason) => {
            // The scheme decides the challenge, also for `Basic` with nothing (or non-ASCII
            // bytes) after it.
            let basic = req.headers().get("authorization").is_some_and(|h| {
                let b = h.as_bytes();
                b.len() >= 5
                    && b[..5].eq_ignore_ascii_case(b"basic")
                    && b.get(5).is_none_or(|c| c.is_ascii_whitespace())
            });
            Err(if basic {
                Error::InvalidBasic(reason)
            } else {
                Error::InvalidToken(reason)
            })
        }
    }
}

fn verified_key(kind: &str, id: &str, secret: &str, stored: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [kind, id, secret, stored] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// Checks a secret against a stored hash, remembering successes for a few minutes so that
/// Basic auth on every request does not pay the slow KDF every time.
pub async fn check_secret(
    app: &App,
    kind: &str,
    id: &str,
    secret: &str,
    stored: &str,
) -> Result<bool> {
    let key = verified_key(kind, id, secret, stored);
    let now = app.now();
    if app.cache.was_verified(&key, now) {
        return Ok(true);
    }
    // An imported hash (Aidbox's `$s0$` / `$sha256$`) that a sign-in already re-hashed is
    // checked against our hash of it (src/store/mod.rs `rehash_key`): PBKDF2, not scrypt.
    let ours = if crate::secret::is_imported_hash(stored) {
        app.repo().rehashed(kind, id, stored).await?
    } else {
        None
    };
    let ok = verify_secret(
        app.platform.crypto.as_ref(),
        secret,
        ours.as_deref().unwrap_or(stored),
    )
    .await?;
    if ok {
        app.cache.remember_verified(key, now + VERIFIED_TTL);
    }
    Ok(ok)
}

/// Checks a client's secret (each of its candidate spellings) against its stored hash,
/// throttled per client id and per address like user sign-ins (docs/security.md "Login throttling"): the
/// attempt is reserved before the KDF runs, so parallel guesses get at most
/// `LOGIN_MAX_FAILURES` checked answers and the rest 429. A secret this isolate verified in the
/// last few minutes is known good and skips the throttle (no guess, no store call).
pub async fn check_client_secret(
    app: &App,
    req: &Request,
    client: &Client,
    stored: &str,
    secrets: &[String],
) -> Result<bool> {
    let now = app.now();
    if secrets.iter().any(|s| {
        app.cache
            .was_verified(&verified_key("Client", &client.id, s, stored), now)
    }) {
        return Ok(true);
    }
    let keys = crate::state::throttle::client_keys(req, &client.id);
    // The candidates as one unambiguous string (a JSON array): joined with a separator, a
    // secret holding it made two different guesses one fingerprint, counted once in flight.
    let tried = serde_json::to_string(secrets).unwrap_or_default();
    crate::state::throttle::checked(app, &keys, &tried, || async {
        for s in secrets {
            if check_secret(app, "Client", &client.id, s, stored).await? {
                return Ok(true);
            }
        }
        Ok(false)
    })
    .await
}

/// Is this `root:ADMIN_SECRET`?
pub fn is_root(app: &App, creds: &BasicCredentials) -> bool {
    creds.id == ROOT_CLIENT_ID
        && app
            .config
            .admin_secret
            .as_ref()
            .is_some_and(|s| ct_eq(s.expose().as_bytes(), creds.secret.expose().as_bytes()))
}

/// `root:secret`, throttled like a client secret (per the id `root` and per address), when
/// root exists; a secret verified in the last few minutes skips the throttle.
async fn check_root(app: &App, req: &Request, creds: &BasicCredentials) -> Result<bool> {
    let Some(admin) = &app.config.admin_secret else {
        return Ok(false);
    };
    let key = verified_key(ROOT_CLIENT_ID, "", creds.secret.expose(), admin.expose());
    let now = app.now();
    if app.cache.was_verified(&key, now) {
        return Ok(true);
    }
    let keys = crate::state::throttle::client_keys(req, ROOT_CLIENT_ID);
    let ok = crate::state::throttle::checked(app, &keys, creds.secret.expose(), || async {
        Ok(is_root(app, creds))
    })
    .await?;
    if ok {
        app.cache.remember_verified(key, now + VERIFIED_TTL);
    }
    Ok(ok)
}

/// Loads a Client by id, if it exists and is active.
pub async fn load_client(app: &App, id: &str) -> Result<Option<Client>> {
    if id == ROOT_CLIENT_ID {
        return Ok(None);
    }
    if id == crate::model::CONSOLE_CLIENT_ID {
        // A `Client/console` stored before the console existed: policies linked to it were
        // written for that client (its secret, its users), and would now apply to everyone
        // who signs in to the console. The console stays off until an administrator deletes it.
        if app.repo().get(ResourceType::Client, id).await?.is_some() {
            return Ok(None);
        }
        return Ok(Some(Client::from_doc(crate::model::console_client_doc())));
    }
    let client = app
        .repo()
        .get(ResourceType::Client, id)
        .await?
        .map(|d| Client::from_doc((*d).clone()))
        .filter(|c| c.active);
    match client {
        Some(mut c) => {
            crate::model::scope::resolve(app, &mut c).await?;
            Ok(Some(c))
        }
        None => Ok(None),
    }
}

pub async fn load_user(app: &App, id: &str) -> Result<Option<User>> {
    Ok(app
        .repo()
        .get(ResourceType::User, id)
        .await?
        .map(|d| User::from_doc((*d).clone()))
        .filter(|u| u.active))
}

/// Basic auth on the API: a Client whose `grant_types` include `basic` (Aidbox), or root.
/// Secret checks are throttled per client id and per address ([`check_client_secret`]). An
/// unknown client id is refused at once, without a KDF: client ids are not secrets (RFC 6749
/// 2.2), so answering it faster gives nothing away, and it costs a guesser's requests no hashing.
async fn authenticate_basic(
    app: &App,
    req: &Request,
    creds: &BasicCredentials,
) -> Result<Identity> {
    if creds.id == ROOT_CLIENT_ID && app.config.admin_secret.is_some() {
        if check_root(app, req, creds).await? {
            return Ok(Identity {
                root: true,
                ..Identity::default()
            });
        }
        return Err(Error::InvalidBasic("invalid client id or secret".into()));
    }
    let bad = || Error::InvalidBasic("invalid client id or secret".into());
    let Some(client) = load_client(app, &creds.id).await? else {
        return Err(bad());
    };
    let Some(hash) = client.secret_hash.clone() else {
        return Err(bad());
    };
    let secrets = [creds.secret.expose().to_string()];
    if !check_client_secret(app, req, &client, &hash, &secrets).await? {
        return Err(bad());
    }
    if crate::secret::is_imported_hash(&hash) {
        crate::oauth::password::upgrade_imported_hash(
            app,
            crate::model::ResourceType::Client,
            &client.id,
            &hash,
            &secrets[0],
        )
        .await;
    }
    if !client.allows_grant("basic") {
        return Err(Error::InvalidBasic(
            "this client may not use Basic auth on the API (grant_types lacks \"basic\")".into(),
        ));
    }
    Ok(Identity {
        client: Some(client),
        ..Identity::default()
    })
}

/// A bearer token: one of ours, one of a trusted external issuer (TokenIntrospector), or an
/// opaque token an introspection endpoint vouches for; else refused.
pub async fn authenticate_bearer(app: &App, req: &Request, token: &str) -> Result<Identity> {
    let issuer = app.issuer(req);
    if token.len() > crate::jwt::MAX_TOKEN_LEN {
        return Err(Error::InvalidToken("token is too long".into()));
    }
    // One of ours verified before: no issuer peek, no signature check. Revocation, the client
    // and the user are still checked below, on every request.
    let audience = app.audience(req);
    // RFC 8707 / RFC 9728: the resource this path belongs to (`PROTECTED_RESOURCES`); a token
    // minted for it passes here besides one for the default audience, and a token for another
    // of our resources does not (src/resource.rs).
    let resource =
        crate::resource::prefix_resource(app, &issuer, req.uri().path()).filter(|r| *r != audience);
    let cache_key = match &resource {
        Some(r) => std::borrow::Cow::Owned(format!("{audience} {r}")),
        None => std::borrow::Cow::Borrowed(audience.as_str()),
    };
    let now = app.now();
    let cached = app.cache.tokens.get(token, &issuer, &cache_key, now);
    if cached.is_none() {
        if token.matches('.').count() != 2 {
            // One of our refresh tokens sent as a bearer token (a client's mistake): never shown
            // to another issuer's introspection endpoint, where it could be kept and used.
            if let Some((_, crate::state::RefreshSecret::Generation { .. })) =
                crate::state::split_refresh_token(token)
            {
                return Err(Error::InvalidToken(
                    "a refresh token is not an access token".into(),
                ));
            }
            return match crate::external::introspect_opaque(app, token, &audience).await? {
                Some(who) => Ok(who),
                None => Err(Error::InvalidToken("token is not a JWT".into())),
            };
        }
        match crate::external::peek_issuer(token) {
            Some(iss) if iss != issuer => {
                return match crate::external::verify_jwt(app, token, &iss, &audience).await? {
                    Some(who) => Ok(who),
                    None => Err(Error::InvalidToken(
                        "token is from an issuer no TokenIntrospector trusts".into(),
                    )),
                };
            }
            _ => {}
        }
    }
    let claims = match cached {
        Some(claims) => claims,
        None => {
            let claims = match &resource {
                None => verify_own(app, token, &issuer, Some(&audience)).await?,
                Some(r) => {
                    let claims = verify_own(app, token, &issuer, None).await?;
                    let for_here = |a: &Value| a.as_str().is_some_and(|a| a == audience || a == r);
                    let ok = match claims.get("aud") {
                        Some(Value::Array(list)) => list.iter().any(for_here),
                        Some(a) => for_here(a),
                        None => false,
                    };
                    if !ok {
                        return Err(Error::InvalidToken(
                            "token was issued for another resource (aud)".into(),
                        ));
                    }
                    claims
                }
            };
            // `verify` requires `exp`; the entry lives exactly as long as the token would pass.
            let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
            let claims = std::rc::Rc::new(claims);
            app.cache.tokens.insert(
                token,
                &issuer,
                &cache_key,
                exp + app.config.leeway,
                now,
                claims.clone(),
            );
            claims
        }
    };
    own_identity(app, &claims).await
}

/// Verifies one of our access tokens whatever audience it was issued for (the token endpoint's
/// `audience`/`resource`): for introspection (RFC 7662) and revocation (RFC 7009), which answer
/// for every token we issue, not only those for our own API. Revocation, the client and the user
/// are checked as for the API.
pub async fn authenticate_own_any_audience(
    app: &App,
    req: &Request,
    token: &str,
) -> Result<Identity> {
    let claims = verify_own(app, token, &app.issuer(req), None).await?;
    own_identity(app, &claims).await
}

/// Verifies one of our access tokens (signature by our keys, `typ`, `iss`, `exp`, and `aud`
/// when `audience` is given): its claims, or `invalid_token` (503 when WebCrypto fails).
async fn verify_own(
    app: &App,
    token: &str,
    issuer: &str,
    audience: Option<&str>,
) -> Result<Map<String, Value>> {
    let expect = Expectations {
        issuer,
        audience,
        typ: Some(ACCESS_TOKEN_TYP),
        leeway: app.config.leeway,
        now: app.now(),
    };
    jwt::verify(
        app.platform.crypto.as_ref(),
        &app.config.keys,
        token,
        &expect,
    )
    .await
    .map_err(|e| match e {
        VerifyError::Backend(b) => Error::Unavailable(b.0),
        other => Error::InvalidToken(other.to_string()),
    })
}

/// The caller behind verified claims of one of our access tokens: not revoked, its client and
/// (for `sub_kind: user`) its user still there.
async fn own_identity(app: &App, claims: &Map<String, Value>) -> Result<Identity> {
    if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
        if crate::state::is_revoked(app, jti).await? {
            return Err(Error::InvalidToken("token has been revoked".into()));
        }
    }
    // Issued from a refresh-token family: revoked with the family.
    if let Some(f) = claims
        .get(crate::state::FAMILY_CLAIM)
        .and_then(Value::as_str)
    {
        if crate::state::is_revoked(app, &crate::state::family_revocation(f)).await? {
            return Err(Error::InvalidToken("token has been revoked".into()));
        }
    }
    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidToken("token has no client_id".into()))?;
    // A Client ID Metadata Document client is resolved again (cached) from its URL.
    let client = crate::oauth::cimd::load_client(app, None, client_id)
        .await
        .map_err(|e| match e {
            Error::InvalidClient(d) => Error::InvalidToken(format!("the token's client: {d}")),
            other => other,
        })?
        .ok_or_else(|| Error::InvalidToken("the token's client no longer exists".into()))?;
    let user =
        match claims
            .get(crate::oauth::SUB_KIND_CLAIM)
            .and_then(Value::as_str)
        {
            Some("user") => {
                let sub = claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Some(load_user(app, sub).await?.ok_or_else(|| {
                    Error::InvalidToken("the token's user no longer exists".into())
                })?)
            }
            _ => None,
        };
    // The token ends with the credentials it was issued under: a password or secret change,
    // a deactivation, or a delete and re-create renews the generation (src/admin.rs), and a
    // token without the claim (issued before generations existed) passes only while neither
    // its client nor its user has one. Checked on every request, the token cache included.
    let expected = crate::model::generation_tag(Some(&client.doc), user.as_ref().map(|u| &u.doc));
    let carried = claims.get(GENERATION_CLAIM).and_then(Value::as_str);
    if carried != expected.as_deref() {
        return Err(Error::InvalidToken(
            "the token's client or user credentials have changed since it was issued".into(),
        ));
    }
    let mut claims = claims.clone();
    claims.remove(GENERATION_CLAIM);
    Ok(Identity {
        root: false,
        client: Some(client),
        user,
        jwt: Some(claims),
        token: None,
    })
}
