//! The admin API, Aidbox-shaped: `GET /Client`, `POST /Client`, `GET|PUT|PATCH|DELETE
//! /Client/{id}`, and the same for every admin type. `POST` uses the body's `id` when it has one
//! (409 if taken, as FHIR create); `PATCH` is a JSON merge patch (RFC 7396) applied to what GET
//! shows, then stored exactly as a PUT of the result.
//!
//! Callers authenticate like anywhere else; `root` (Basic `root:ADMIN_SECRET`) may do anything,
//! any other caller only what an AccessPolicy allows, as in Aidbox. Every write is validated
//! before anything is stored; a refused write changes nothing.

use crate::authz::authorize;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{is_json, json_response, media_type, Request, Response};
use crate::model::{
    check_envelope, client, introspector, new_generation, public_view, role, scope, take_secret,
    user, valid_id, ResourceType, GENERATION_FIELD, KEPT_SECRETS, ROOT_CLIENT_ID,
};
use crate::policy::CompiledPolicy;
use crate::secret::hash_secret;
use serde_json::{json, Map, Value};

/// The admin API: `[base]/{ResourceType}[/{id}]`. `method` is the router's method check (its
/// route in `ROUTES`), applied once the caller is authorized: a caller we refuse gets 401/403
/// whatever the method, and learns nothing of the API's shape.
pub async fn handle(
    app: &App,
    req: Request,
    rt: ResourceType,
    id: Option<&str>,
    method: Result<()>,
) -> Result<Response> {
    authorize(app, &req).await?;
    method?;
    if rt == ResourceType::Grant {
        let query = req.uri().query().unwrap_or("");
        let body = crate::model::grant::admin(app, req.method(), query, id).await?;
        return Ok(json_response(200, &body));
    }
    let m = req.method().clone();
    match (m, id) {
        (http::Method::GET, None) => list(app, rt).await,
        (http::Method::POST, None) => create(app, &req, rt).await,
        (http::Method::GET, Some(id)) => read(app, rt, id).await,
        (http::Method::PUT, Some(id)) => {
            let body = parse_body(&req)?;
            store(app, rt, id, &body, false).await
        }
        (http::Method::PATCH, Some(id)) => patch(app, &req, rt, id).await,
        (http::Method::DELETE, Some(id)) => delete(app, rt, id).await,
        (_, None) => Err(Error::MethodNotAllowed("GET, POST")),
        (_, Some(_)) => Err(Error::MethodNotAllowed("GET, PUT, PATCH, DELETE")),
    }
}

fn new_id(app: &App) -> String {
    let mut b = [0u8; 16];
    app.platform.random.fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn list(app: &App, rt: ResourceType) -> Result<Response> {
    let docs = app.repo().list(rt).await?;
    let entries: Vec<Value> = docs
        .iter()
        .map(|d| json!({ "resource": public_view(d) }))
        .collect();
    Ok(json_response(
        200,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
    ))
}

fn check_id(rt: ResourceType, id: &str) -> Result<()> {
    if !valid_id(id) {
        return Err(Error::validation(
            "id",
            "must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
        ));
    }
    if rt == ResourceType::Client && id == ROOT_CLIENT_ID {
        return Err(Error::validation(
            "id",
            "\"root\" is the built-in admin client and cannot be stored",
        ));
    }
    if rt == ResourceType::Client && id == crate::model::CONSOLE_CLIENT_ID {
        return Err(Error::validation(
            "id",
            "\"console\" is the built-in client of the admin console and cannot be stored",
        ));
    }
    Ok(())
}

/// A `Client/console` stored before the console existed can be read and deleted (the console
/// is off while it exists, src/authn.rs `load_client`), never written.
fn check_id_to_read(rt: ResourceType, id: &str) -> Result<()> {
    if rt == ResourceType::Client && id == crate::model::CONSOLE_CLIENT_ID {
        return Ok(());
    }
    check_id(rt, id)
}

async fn read(app: &App, rt: ResourceType, id: &str) -> Result<Response> {
    check_id_to_read(rt, id).map_err(|_| Error::NotFound(format!("{rt}/{id} not found")))?;
    match app.repo().get_fresh(rt, id).await? {
        Some(doc) => Ok(json_response(200, &public_view(&doc))),
        None => Err(Error::NotFound(format!("{rt}/{id} not found"))),
    }
}

/// How often a write is retried when the resource changed between its read and its
/// compare-and-set (the Catalog, src/store/mod.rs): each round lets at least one writer through.
const WRITE_ATTEMPTS: usize = 64;

fn too_contended(rt: ResourceType, id: &str) -> Error {
    Error::Conflict(format!(
        "{rt}/{id} kept changing under concurrent writes; retry"
    ))
}

fn parse_stored(rt: ResourceType, id: &str, raw: Option<&str>) -> Result<Option<Value>> {
    raw.map(serde_json::from_str::<Value>)
        .transpose()
        .map_err(|e| Error::Internal(format!("stored record {rt}/{id} is not JSON: {e}")))
}

async fn delete(app: &App, rt: ResourceType, id: &str) -> Result<Response> {
    check_id_to_read(rt, id).map_err(|_| Error::NotFound(format!("{rt}/{id} not found")))?;
    for _ in 0..WRITE_ATTEMPTS {
        if let Some(r) = delete_once(app, rt, id).await? {
            return Ok(r);
        }
    }
    Err(too_contended(rt, id))
}

/// One attempt of a DELETE; `None` when the resource changed since it was read.
async fn delete_once(app: &App, rt: ResourceType, id: &str) -> Result<Option<Response>> {
    let repo = app.repo();
    let raw = repo.get_raw(rt, id).await?;
    let Some(doc) = parse_stored(rt, id, raw.as_deref())? else {
        return Err(Error::NotFound(format!("{rt}/{id} not found")));
    };
    // The email index goes first: a failure between the two steps leaves the User without
    // its index entry, which a retried DELETE finishes, rather than an index entry that no
    // retry would find (the User gone, DELETE answering 404).
    if rt == ResourceType::User {
        if let Some(email) = doc
            .get("email")
            .and_then(Value::as_str)
            .and_then(user::normalize_email)
        {
            if repo.user_id_by_email(&email).await?.as_deref() == Some(id) {
                repo.delete_email_index(&email).await?;
            }
        }
    }
    if matches!(rt, ResourceType::User | ResourceType::Client) {
        // Our hash of an imported credential goes with the resource.
        repo.delete_rehash(rt.name(), id).await?;
    }
    if !repo.write(rt, id, raw.as_deref(), None).await? {
        return Ok(None);
    }
    Ok(Some(json_response(200, &public_view(&doc))))
}

/// `POST /{Type}`: the body's `id` when it has one (checked like a PUT's URL id; 409 when a
/// resource has it already, as FHIR create), else a new random id.
async fn create(app: &App, req: &Request, rt: ResourceType) -> Result<Response> {
    let body = parse_body(req)?;
    let id = match body.get("id") {
        None | Some(Value::Null) => new_id(app),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Error::validation("id", "must be a string")),
    };
    store(app, rt, &id, &body, true).await
}

/// `PATCH /{Type}/{id}`: a JSON merge patch (RFC 7396) applied to the resource as GET shows
/// it, then stored through the same path as a PUT of the result. Hidden fields stay hidden:
/// a patch without `secret`/`password` keeps the stored hash (`null` too: there is no visible
/// secret to remove), and one naming a server-set field (`credential_generation`, hashes) is
/// refused by the same envelope check as a PUT.
async fn patch(app: &App, req: &Request, rt: ResourceType, id: &str) -> Result<Response> {
    check_id(rt, id).map_err(|_| Error::NotFound(format!("{rt}/{id} not found")))?;
    let patch = parse_body(req)?;
    if !patch.is_object() {
        return Err(Error::validation("", "a merge patch must be a JSON object"));
    }
    // Applied to the record each attempt reads, so concurrent patches compose.
    store_body(app, rt, id, Body::Patch(&patch), false).await
}

/// What a write stores: a whole resource, or a merge patch of the stored one.
#[derive(Clone, Copy)]
enum Body<'a> {
    Whole(&'a Value),
    Patch(&'a Value),
}

/// The merge patch applied to the stored resource as GET shows it (without `meta`).
fn patched(rt: ResourceType, id: &str, existing: Option<&Value>, patch: &Value) -> Result<Value> {
    let Some(doc) = existing else {
        return Err(Error::NotFound(format!("{rt}/{id} not found")));
    };
    let mut target = public_view(doc);
    if let Value::Object(m) = &mut target {
        m.remove("meta");
    }
    merge_patch(&mut target, patch);
    Ok(target)
}

/// RFC 7396 section 2, MergePatch(Target, Patch).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn parse_body(req: &Request) -> Result<Value> {
    match media_type(req) {
        Some(m) if is_json(&m) => {}
        Some(m)
            if matches!(
                m.as_str(),
                "text/yaml" | "application/yaml" | "application/x-yaml"
            ) =>
        {
            return Err(Error::UnsupportedMediaType(format!(
                "YAML bodies ({m}) are not accepted here; send the same resource as JSON \
                 (application/json)"
            )))
        }
        Some(m) => {
            return Err(Error::UnsupportedMediaType(format!(
                "content type {m} is not accepted; send application/json"
            )))
        }
        None => {
            return Err(Error::UnsupportedMediaType(
                "missing content type; send application/json".into(),
            ))
        }
    }
    serde_json::from_slice(req.body())
        .map_err(|e| Error::InvalidRequest(format!("body is not valid JSON: {e}")))
}

/// Validates and stores a whole resource (PUT, POST, and PATCH after merging). With
/// `create_only`, an existing resource is a 409 and nothing changes.
///
/// Under a Catalog the write is a compare-and-set against what was read, retried from the read
/// when another write came in between: concurrent writes of one id are applied one after the
/// other, none lost, each acknowledged write built on the one before.
async fn store(
    app: &App,
    rt: ResourceType,
    id: &str,
    body: &Value,
    create_only: bool,
) -> Result<Response> {
    store_body(app, rt, id, Body::Whole(body), create_only).await
}

async fn store_body(
    app: &App,
    rt: ResourceType,
    id: &str,
    body: Body<'_>,
    create_only: bool,
) -> Result<Response> {
    check_id(rt, id)?;
    for _ in 0..WRITE_ATTEMPTS {
        if let Some(r) = store_once(app, rt, id, body, create_only).await? {
            return Ok(r);
        }
    }
    Err(too_contended(rt, id))
}

/// One attempt of [`store`]; `None` when the resource changed since it was read.
async fn store_once(
    app: &App,
    rt: ResourceType,
    id: &str,
    body: Body<'_>,
    create_only: bool,
) -> Result<Option<Response>> {
    if let Body::Whole(b) = body {
        check_envelope(rt, id, b)?;
    }
    let repo = app.repo();
    let existing_raw = repo.get_raw(rt, id).await?;
    let existing = parse_stored(rt, id, existing_raw.as_deref())?;
    let mut map = match body {
        Body::Whole(b) => check_envelope(rt, id, b)?,
        Body::Patch(p) => check_envelope(rt, id, &patched(rt, id, existing.as_ref(), p)?)?,
    };
    if create_only && existing.is_some() {
        return Err(Error::Conflict(format!(
            "{rt}/{id} already exists; use PUT or PATCH to change it"
        )));
    }
    let existing_field = |f: &str| existing.as_ref().and_then(|e| e.get(f)).cloned();
    let mut old_email = None;
    let mut new_email = None;
    // Does this write end what the resource's old credentials vouched for (sessions, refresh
    // families, access tokens)? See [`GENERATION_FIELD`].
    let mut credential_change = existing.is_none();
    match rt {
        ResourceType::Client => {
            let secret = take_secret(&mut map, "secret")?;
            client::validate(&map)?;
            let active = map.get("active").and_then(Value::as_bool) != Some(false);
            let keys_changed = ["jwks", "jwks_uri"]
                .iter()
                .any(|k| map.get(*k) != existing.as_ref().and_then(|e| e.get(*k)));
            credential_change |= secret.is_some() || !active || keys_changed;
            set_hash(
                app,
                &mut map,
                "secret_hash",
                secret,
                existing_field("secret_hash"),
            )
            .await?;
            client::validate_confidential(&map)?;
        }
        ResourceType::User => {
            let password = take_secret(&mut map, "password")?;
            user::validate(&map)?;
            // `fhirUser` is who the user is to SMART: tokens carry its patient (or its user/
            // scopes were granted for it), so a relink ends them as a refresh would refuse.
            let fhir_user_changed =
                existing.is_some() && map.get("fhirUser") != existing_field("fhirUser").as_ref();
            credential_change |= password.is_some()
                || !user::is_active(&Value::Object(map.clone()))
                || fhir_user_changed;
            new_email = map
                .get("email")
                .and_then(Value::as_str)
                .and_then(user::normalize_email);
            old_email = existing_field("email")
                .as_ref()
                .and_then(Value::as_str)
                .and_then(user::normalize_email);
            if let Some(e) = &new_email {
                if let Some(owner) = repo.user_id_by_email(e).await? {
                    // An index entry whose User no longer has this email is stale (a write
                    // cut short, see below) and does not block.
                    let holds = |d: &Value| {
                        d.get("email")
                            .and_then(Value::as_str)
                            .and_then(user::normalize_email)
                            .as_ref()
                            == Some(e)
                    };
                    if owner != id && repo.get_fresh(rt, &owner).await?.is_some_and(|d| holds(&d)) {
                        return Err(Error::Conflict(format!(
                            "email is already used by User/{owner}"
                        )));
                    }
                }
            }
            set_hash(
                app,
                &mut map,
                "password_hash",
                password,
                existing_field("password_hash"),
            )
            .await?;
        }
        ResourceType::TokenIntrospector => {
            // GET never shows these secrets; a PUT without them keeps the stored ones, unless
            // it changes where they go (type, issuer, URLs): then they are dropped.
            let same_place = existing.as_ref().is_some_and(|e| {
                introspector::secret_binding(e)
                    == introspector::secret_binding(&Value::Object(map.clone()))
            });
            for (outer, inner) in KEPT_SECRETS {
                let kept = existing
                    .as_ref()
                    .filter(|_| same_place)
                    .and_then(|e| e.get(outer)?.get(inner))
                    .cloned();
                if let (Some(Value::Object(o)), Some(k)) = (map.get_mut(outer), kept) {
                    o.entry(inner.to_string()).or_insert(k);
                }
            }
            introspector::validate(&map)?;
            let others = repo.list(rt).await?;
            introspector::check_unique_prefix(id, &Value::Object(map.clone()), &others)?;
        }
        ResourceType::AccessPolicy => {
            CompiledPolicy::compile(&Value::Object(map.clone()))
                .map_err(|e| Error::validation(e.path.clone(), e.message.clone()))?;
        }
        ResourceType::Role => role::validate(&map)?,
        ResourceType::Scope => scope::validate(&map)?,
        // Routed to src/model/grant.rs in `handle`; never stored in KV.
        ResourceType::Grant => return Err(Error::MethodNotAllowed("GET, DELETE")),
    }
    if matches!(rt, ResourceType::Client | ResourceType::User) {
        let generation = if credential_change {
            Some(Value::String(new_generation(app.platform.random.as_ref())))
        } else {
            existing_field(GENERATION_FIELD)
        };
        if let Some(g) = generation {
            map.insert(GENERATION_FIELD.into(), g);
        }
    }
    let version = existing_field("meta")
        .and_then(|m| {
            m.get("versionId")
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        + 1;
    let updated = chrono::DateTime::<chrono::Utc>::from_timestamp(app.now(), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    map.insert(
        "meta".into(),
        json!({"versionId": version.to_string(), "lastUpdated": updated}),
    );
    let doc = Value::Object(map);
    // Order of the writes (KV has no transactions): the resource, then the new email's index
    // entry, then the removal of the old one. Cut short after any step, the User is either as
    // before or as asked with its index not yet (or no longer) matching; a retried PUT writes
    // the same again and completes it, and a stale index entry is ignored on login (its User
    // must still have that email, src/oauth/password.rs) and on the email conflict check above.
    if !repo
        .write(rt, id, existing_raw.as_deref(), Some(&doc))
        .await?
    {
        return Ok(None);
    }
    if let Some(e) = &new_email {
        repo.put_email_index(e, id).await?;
    }
    if let Some(old) = old_email.filter(|o| Some(o) != new_email.as_ref()) {
        repo.delete_email_index(&old).await?;
    }
    let status = if existing.is_some() { 200 } else { 201 };
    let mut resp = json_response(status, &public_view(&doc));
    if let Ok(loc) = http::HeaderValue::from_str(&format!("/{rt}/{id}")) {
        resp.headers_mut().insert("location", loc);
    }
    Ok(Some(resp))
}

/// Stores a Client that registered itself (RFC 7591, src/oauth/register.rs) through the same
/// validated write path as `POST /Client`; its id is new, so one that exists is a 409.
pub async fn create_registered_client(app: &App, id: &str, doc: Value) -> Result<()> {
    store(app, ResourceType::Client, id, &doc, true)
        .await
        .map(|_| ())
}

/// Stores a new secret's hash, or keeps the existing hash when the body names no secret
/// (a GET-edit-PUT round trip must not wipe a secret that GET never shows).
async fn set_hash(
    app: &App,
    map: &mut Map<String, Value>,
    field: &str,
    secret: Option<String>,
    existing: Option<Value>,
) -> Result<()> {
    match secret {
        Some(s) => {
            // A hash exported from Aidbox (`$s0$...` scrypt, `$sha256$<hex>`) is stored as it
            // is and re-hashed to ours on its first good use (src/secret.rs).
            let h = match crate::secret::parse_import(&s) {
                Some(Ok(imported)) => imported,
                Some(Err(why)) => {
                    return Err(Error::validation(
                        field.trim_end_matches("_hash"),
                        format!("looks like an imported hash but is refused: {why}"),
                    ))
                }
                None => {
                    hash_secret(
                        app.platform.crypto.as_ref(),
                        app.platform.random.as_ref(),
                        &s,
                        app.config.pbkdf2_iterations,
                    )
                    .await?
                }
            };
            map.insert(field.into(), Value::String(h));
        }
        None => {
            if let Some(h) = existing {
                map.insert(field.into(), h);
            }
        }
    }
    Ok(())
}
