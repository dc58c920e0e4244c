// Attack corpus, issue 11 part 2: scopes have a ceiling. A client is granted only the scopes it
// is registered for (Client.scope / allowed-scopes), system/ only through client_credentials,
// user/ only for users allowed to hold them, a patient user only their own patient; refresh
// never widens; the password grant's userinfo and the ID token carry only what the scopes allow;
// EHR launches are bound to their client, single-use, and need the launch scope.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-scopes.test.mjs   (after scripts/build-worker.sh)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json, decodeJwt } from "./harness.mjs";
import { assertError, put, pkce, cookies, interaction, postLogin, postConsent, authorizeQuery, tokenPost } from "./attacks-lib.mjs";

const FHIR = "https://fhir.example/r4";
const CB = "https://app.example/cb";
const SECRET_DATA = "ssn-123-45-6789";
let w, origin;

const smartApp = (extra = {}) => ({
  type: "smart-app", "fhir-base-url": FHIR, first_party: true, grant_types: ["authorization_code"],
  auth: { authorization_code: { redirect_uri: CB } }, ...extra,
});

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  // SMART apps: one registered for patient/ and user/ reads, one for user/*.cruds, one with no list.
  await put(w, "/Client/chart", smartApp({ scope: ["launch", "launch/patient", "openid", "fhirUser", "patient/*.rs", "user/*.rs"] }));
  await put(w, "/Client/chart-b", smartApp({ scope: ["launch", "openid", "patient/*.rs"] }));
  await put(w, "/Client/admin-app", smartApp({ scope: ["openid", "launch/patient", "user/*.cruds"] }));
  await put(w, "/Client/bare", smartApp());
  // Token-endpoint clients.
  await put(w, "/Client/svc-bare", { secret: "s1", grant_types: ["client_credentials"] });
  await put(w, "/Client/svc", { secret: "s2", grant_types: ["client_credentials", "password"], scope: ["system/*.rs", "patient/*.rs", "user/*.rs", "read"] });
  await put(w, "/Client/pw", { secret: "s3", grant_types: ["password"] });
  await put(w, "/Client/pw-reg", {
    secret: "s4", grant_types: ["password"], scope: ["openid", "read", "write", "user/*.rs", "patient/*.rs"],
    auth: { password: { refresh_token: true } },
  });
  await put(w, "/Client/third", {
    secret: "s5", grant_types: ["authorization_code"], name: "Third Party",
    auth: { authorization_code: { redirect_uri: CB } },
  });
  // Users: a practitioner, a patient, a user without fhirUser.
  await put(w, "/User/dr", { password: "pass123", fhirUser: "Practitioner/pr-1" });
  await put(w, "/User/anna", { password: "pass123", fhirUser: "Patient/pt-2" });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123", name: { givenName: "John" }, data: { ssn: SECRET_DATA } });
  // The SMART engine decides every FHIR request of these clients' tokens.
  for (const c of ["chart", "chart-b", "admin-app", "svc", "pw-reg"]) {
    await put(w, `/AccessPolicy/smart-${c}`, { engine: "smart-on-fhir", link: [{ id: c, resourceType: "Client" }] });
  }
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

/** A SMART authorize query for `client_id` (PKCE S256, aud = FHIR). */
function smartQuery(over = {}) {
  const { verifier, challenge } = pkce();
  const q = authorizeQuery({
    response_type: "code", client_id: "chart", redirect_uri: CB, scope: "launch openid patient/*.rs",
    state: "st", aud: FHIR, code_challenge: challenge, code_challenge_method: "S256", ...over,
  });
  return { q, verifier };
}

/**
 * Runs an authorization request as `username`: a refusal found before sign-in is redirected at
 * once; otherwise the user signs in. Returns the Location URL of the last redirect.
 */
async function authorizeAs(q, username) {
  const first = await w.fetch(`/auth/authorize?${q}`);
  await first.arrayBuffer();
  assert.equal(first.status, 303, `authorize answered ${first.status}`);
  const loc = new URL(first.headers.get("location"), w.url);
  if (loc.pathname !== "/auth/ui/login.html") return { location: loc };
  const { csrf, jar } = await interaction(w, q);
  const res = await postLogin(w, { query: q, csrf, jar, username });
  await res.arrayBuffer();
  assert.equal(res.status, 303, `login answered ${res.status}`);
  return { location: new URL(res.headers.get("location"), w.url), jar: { ...jar, ...cookies(res) } };
}

/** The error redirect of a refused authorization request: to the client, with `error`, no code. */
function assertRedirectError(location, error) {
  assert.equal(location.origin + location.pathname, CB, `not redirected to the client: ${location}`);
  assert.equal(location.searchParams.get("error"), error, `${location}`);
  assert.ok(location.searchParams.get("error_description"), `${location}`);
  assert.equal(location.searchParams.get("code"), null, "a code was issued");
}

async function redeem(code, verifier, client_id = "chart") {
  const res = await tokenPost(w, { grant_type: "authorization_code", client_id, code, redirect_uri: CB, code_verifier: verifier });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

async function launch(body) {
  const res = await w.admin("POST", "/auth/launch", body);
  const b = await json(res);
  assert.equal(res.status, 201, JSON.stringify(b));
  return b.launch;
}

const password = (auth, username, scope) =>
  tokenPost(w, { grant_type: "password", username, password: "pass123", ...(scope ? { scope } : {}) }, { auth });
const cc = (auth, scope) => tokenPost(w, { grant_type: "client_credentials", scope }, { auth });

async function api(token, path) {
  origin.reset();
  const res = await w.fetch(path, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

// --- the ceiling: registration ----------------------------------------------------------------------

describe("a client is granted only the scopes it is registered for", () => {
  test("client without Client.scope cannot get patient/*.rs (SMART app, authorize) -> invalid_scope, no code", async () => {
    const { location } = await authorizeAs(smartQuery({ client_id: "bare" }).q, "dr");
    assertRedirectError(location, "invalid_scope");
    assert.match(location.searchParams.get("error_description"), /patient\/\*\.rs.*not registered/);
  });

  test("client without Client.scope cannot get patient/*.rs through the password grant -> 400 invalid_scope", async () => {
    await assertError(await password(basicAuth("pw", "s3"), "dr", "patient/*.rs"), 400, "invalid_scope");
  });

  test("client without Client.scope cannot get system/*.rs by client_credentials -> 400 invalid_scope", async () => {
    await assertError(await cc(basicAuth("svc-bare", "s1"), "system/*.rs"), 400, "invalid_scope");
  });

  test("client without Client.scope cannot get the custom scope read -> 400 invalid_scope", async () => {
    await assertError(await cc(basicAuth("svc-bare", "s1"), "read"), 400, "invalid_scope");
  });

  test("client registered for patient/*.rs cannot get patient/*.cruds -> invalid_scope", async () => {
    const { location } = await authorizeAs(smartQuery({ scope: "openid patient/*.cruds" }).q, "dr");
    assertRedirectError(location, "invalid_scope");
  });

  test("client registered for system/*.rs cannot get system/*.cruds -> 400 invalid_scope", async () => {
    await assertError(await cc(basicAuth("svc", "s2"), "system/*.cruds"), 400, "invalid_scope");
  });

  test("Client.scope as a space-separated string is refused on write -> 422", async () => {
    const res = await w.admin("PUT", "/Client/stringy", { secret: "x", grant_types: ["client_credentials"], scope: "system/*.rs openid" });
    const body = await json(res);
    assert.equal(res.status, 422, JSON.stringify(body));
    assert.equal(body.field, "scope");
  });
});

// --- the ceiling: levels by flow and by user ------------------------------------------------------------

describe("system/ only by client_credentials; user/ only for users allowed to hold them", () => {
  test("system/*.rs through the password grant is refused -> 400 invalid_scope", async () => {
    const body = await assertError(await password(basicAuth("svc", "s2"), "dr", "system/*.rs"), 400, "invalid_scope");
    assert.match(body.error_description, /client_credentials/);
  });

  test("user/*.rs and patient/*.rs through client_credentials are refused -> 400 invalid_scope", async () => {
    await assertError(await cc(basicAuth("svc", "s2"), "user/*.rs"), 400, "invalid_scope");
    await assertError(await cc(basicAuth("svc", "s2"), "patient/*.rs"), 400, "invalid_scope");
  });

  test("patient user cannot get user/*.cruds (SMART app registered for it) -> invalid_scope, no code", async () => {
    const { location } = await authorizeAs(smartQuery({ client_id: "admin-app", scope: "openid user/*.cruds" }).q, "anna");
    assertRedirectError(location, "invalid_scope");
    assert.match(location.searchParams.get("error_description"), /user\//);
  });

  test("patient user cannot get user/*.rs through the password grant -> 400 invalid_scope", async () => {
    await assertError(await password(basicAuth("pw-reg", "s4"), "anna", "user/*.rs"), 400, "invalid_scope");
  });

  test("user without fhirUser cannot get user/*.rs -> 400 invalid_scope", async () => {
    await assertError(await password(basicAuth("pw-reg", "s4"), "john", "user/*.rs"), 400, "invalid_scope");
  });

  test("patient user's patient/*.rs reaches only their own patient (GET /Patient/pt-1 -> 403, origin not reached)", async () => {
    const res = await password(basicAuth("pw-reg", "s4"), "anna", "patient/*.rs");
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(decodeJwt(body.access_token).payload.patient, "pt-2");
    assert.equal(await api(body.access_token, "/Patient/pt-1"), 403);
    assert.equal(origin.requests.length, 0, "a refused request reached the origin");
    assert.equal(await api(body.access_token, "/Patient/pt-2"), 200);
    assert.equal(origin.requests.length, 1);
  });
});

// --- refresh ---------------------------------------------------------------------------------------------

describe("refresh never widens", () => {
  async function family(scope, username = "dr") {
    const res = await password(basicAuth("pw-reg", "s4"), username, scope);
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.ok(body.refresh_token, "no refresh token");
    return body.refresh_token;
  }
  const refresh = (rt, scope) =>
    tokenPost(w, { grant_type: "refresh_token", refresh_token: rt, ...(scope ? { scope } : {}) }, { auth: basicAuth("pw-reg", "s4") });
  const registration = (over) => ({
    grant_types: ["password"], scope: ["openid", "read", "write", "user/*.rs", "patient/*.rs"],
    auth: { password: { refresh_token: true } }, ...over,
  });
  after(async () => put(w, "/Client/pw-reg", registration({})));

  test("refresh after scope narrowed is refused -> 400 invalid_scope; a narrower refresh still works", async () => {
    const rt = await family("read write");
    await put(w, "/Client/pw-reg", registration({ scope: ["openid", "read", "user/*.rs", "patient/*.rs"] }));
    await assertError(await refresh(rt), 400, "invalid_scope");
    const ok = await refresh(rt, "read");
    const body = await json(ok);
    assert.equal(ok.status, 200, JSON.stringify(body));
    assert.equal(body.scope, "read");
    await put(w, "/Client/pw-reg", registration({}));
  });

  test("refresh after the client lost the password grant is refused -> 400 invalid_grant", async () => {
    const rt = await family("read");
    await put(w, "/Client/pw-reg", registration({ grant_types: ["client_credentials"] }));
    await assertError(await refresh(rt), 400, "invalid_grant");
    await put(w, "/Client/pw-reg", registration({}));
  });

  test("refresh of user/*.rs after the user became a patient is refused -> 400 invalid_grant", async () => {
    await put(w, "/User/dr2", { password: "pass123", fhirUser: "Practitioner/pr-2" });
    const rt = await family("user/*.rs", "dr2");
    await put(w, "/User/dr2", { fhirUser: "Patient/pt-9" });
    // A fhirUser change renews the user's credential generation: the family has ended (issue 12
    // red team), before the scope ceiling is even asked.
    await assertError(await refresh(rt), 400, "invalid_grant");
  });
});

// --- userinfo and the ID token -------------------------------------------------------------------------

describe("userinfo only with the password grant, and only what the scopes allow", () => {
  test("third-party authorization-code client granted openid gets no email and no data anywhere in its token response", async () => {
    const { verifier, challenge } = pkce();
    const q = authorizeQuery({
      response_type: "code", client_id: "third", redirect_uri: CB, scope: "openid", state: "s",
      code_challenge: challenge, code_challenge_method: "S256",
    });
    const { location, jar } = await authorizeAs(q, "john");
    assert.equal(location.pathname, "/auth/ui/consent.html");
    const { csrf, jar: jar2 } = await interaction(w, q, jar);
    const res = await postConsent(w, { query: q, csrf, jar: jar2 });
    await res.arrayBuffer();
    const cb = new URL(res.headers.get("location"));
    const code = cb.searchParams.get("code");
    assert.ok(code, `${cb}`);
    const tok = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier }, { auth: basicAuth("third", "s5") });
    const body = await json(tok);
    assert.equal(tok.status, 200, JSON.stringify(body));
    assert.equal(body.userinfo, undefined, "userinfo outside the password grant");
    const everything = JSON.stringify([body, decodeJwt(body.access_token).payload, decodeJwt(body.id_token).payload]);
    assert.ok(!everything.includes("john@example.com"), `email leaked: ${everything}`);
    assert.ok(!everything.includes(SECRET_DATA), `data leaked: ${everything}`);
  });

  test("password grant without scopes: userinfo is only who the user is (no email, no data)", async () => {
    const res = await password(basicAuth("pw", "s3"), "john");
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body.userinfo, { resourceType: "User", id: "john" });
  });

  test("password grant with openid email profile: email and name, never data (positive control)", async () => {
    const res = await password(basicAuth("pw", "s3"), "john", "openid email profile");
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.userinfo.email, "john@example.com");
    assert.equal(body.userinfo.name.givenName, "John");
    assert.ok(!JSON.stringify(body).includes(SECRET_DATA), "data leaked");
    assert.equal(decodeJwt(body.id_token).payload.email, "john@example.com");
  });
});

// --- EHR launch -----------------------------------------------------------------------------------------

describe("EHR launch contexts are bound, single-use and need the launch scope", () => {
  test("launch made for app A is refused to app B -> invalid_request, no code", async () => {
    const id = await launch({ client_id: "chart", patient: "pt-1" });
    const { location } = await authorizeAs(smartQuery({ client_id: "chart-b", launch: id }).q, "dr");
    assertRedirectError(location, "invalid_request");
  });

  test("a launch is single-use: the second authorization with it is refused", async () => {
    const id = await launch({ client_id: "chart", patient: "pt-1" });
    const first = smartQuery({ launch: id });
    const { location } = await authorizeAs(first.q, "dr");
    const body = await redeem(location.searchParams.get("code"), first.verifier);
    assert.equal(body.patient, "pt-1");
    const { location: again } = await authorizeAs(smartQuery({ launch: id }).q, "dr");
    assertRedirectError(again, "invalid_request");
  });

  test("a launch without the launch scope is refused -> invalid_scope", async () => {
    const id = await launch({ client_id: "chart", patient: "pt-1" });
    const { location } = await authorizeAs(smartQuery({ scope: "openid patient/*.rs", launch: id }).q, "dr");
    assertRedirectError(location, "invalid_scope");
  });

  test("a launch naming another patient cannot replace a patient user's own -> access_denied", async () => {
    const id = await launch({ client_id: "chart", patient: "pt-1" });
    const { location } = await authorizeAs(smartQuery({ launch: id }).q, "anna");
    assertRedirectError(location, "access_denied");
  });

  test("a launch without client_id is refused on creation -> 422", async () => {
    const res = await w.admin("POST", "/auth/launch", { patient: "pt-1" });
    const body = await json(res);
    assert.equal(res.status, 422, JSON.stringify(body));
    assert.equal(body.field, "client_id");
  });
});

// --- positive controls ------------------------------------------------------------------------------------

describe("legitimate use still works", () => {
  test("SMART EHR launch: a client registered for patient/*.rs gets patient/Observation.rs and reads its patient", async () => {
    const id = await launch({ client_id: "chart", patient: "pt-1" });
    const { q, verifier } = smartQuery({ launch: id, scope: "launch openid fhirUser patient/Patient.rs patient/Observation.read" });
    const { location } = await authorizeAs(q, "dr");
    const body = await redeem(location.searchParams.get("code"), verifier);
    assert.equal(body.scope, "launch openid fhirUser patient/Patient.rs patient/Observation.read");
    assert.equal(body.patient, "pt-1");
    assert.equal(decodeJwt(body.id_token).payload.fhirUser, `${FHIR}/Practitioner/pr-1`);
    assert.equal(await api(body.access_token, "/Patient/pt-1"), 200);
    assert.equal(origin.requests.length, 1);
  });

  test("SMART standalone launch of a patient user: launch/patient gives their own patient", async () => {
    const { q, verifier } = smartQuery({ scope: "launch/patient openid patient/*.rs" });
    const { location } = await authorizeAs(q, "anna");
    const body = await redeem(location.searchParams.get("code"), verifier);
    assert.equal(body.patient, "pt-2");
  });

  test("a practitioner gets user/*.rs from a client registered for it", async () => {
    const { q, verifier } = smartQuery({ scope: "openid user/*.rs" });
    const { location } = await authorizeAs(q, "dr");
    const body = await redeem(location.searchParams.get("code"), verifier);
    assert.equal(body.scope, "openid user/*.rs");
  });

  test("backend service registered for system/*.rs gets system/Patient.rs and the registered custom scope read", async () => {
    const res = await cc(basicAuth("svc", "s2"), "system/Patient.rs read");
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.scope, "system/Patient.rs read");
  });

  test("a client without a list still gets launch/patient openid fhirUser offline_access in the code flow", async () => {
    const { location } = await authorizeAs(smartQuery({ client_id: "bare", scope: "launch/patient openid fhirUser offline_access" }).q, "anna");
    assert.ok(location.searchParams.get("code"), `${location}`);
  });
});
