// Issue 14 (backend): the admin debugging operations the console and scripts call.
//   POST /auth/test-policy   the policy tester ("why was this denied?"), Aidbox's name and shape
//   POST /auth/inspect-token the token inspector
// The built Worker in workerd over real HTTP, with a recording origin. The tester's decision is
// checked against the same request sent for real; nothing it tests reaches the origin.
//
//   node --test --test-concurrency=1 tests/e2e/console-api.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json, decodeJwt } from "./harness.mjs";
import { put, tokenPost, forge, otherEd25519Jwk, nowSecs, authorizeQuery, interaction, postLogin } from "./attacks-lib.mjs";

const CB = "https://app.example/cb";

const BASIC = basicAuth("basic", "s3cret-basic");
const OPS = basicAuth("ops", "s3cret-ops");
const APP = basicAuth("app", "s3cret-app");
const READER = basicAuth("reader", "s3cret-reader");
const SECRETS = ["s3cret-basic", "s3cret-ops", "s3cret-app", "s3cret-reader", "pass-john-1", "secret_hash", "password_hash", "pbkdf2"];

let w;
let origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  await put(w, "/Client/basic", { secret: "s3cret-basic", grant_types: ["basic"] });
  await put(w, "/AccessPolicy/basic-patients", {
    engine: "matcho",
    link: [{ id: "basic", resourceType: "Client" }],
    matcho: { uri: "#^/Patient", "request-method": "get" },
  });
  // The administrator of the debugging operations: docs/reference.md "Debugging: policy tester, token inspector, sessions".
  await put(w, "/Client/ops", { secret: "s3cret-ops", grant_types: ["basic"] });
  await put(w, "/AccessPolicy/ops-debug", {
    engine: "matcho",
    link: [{ id: "ops", resourceType: "Client" }],
    matcho: { uri: "#^/auth/(test-policy|inspect-token)$", "request-method": "post" },
  });
  await put(w, "/Client/app", {
    secret: "s3cret-app",
    grant_types: ["password", "authorization_code"],
    first_party: true,
    auth: { password: { refresh_token: true }, authorization_code: { redirect_uri: CB } },
  });
  await put(w, "/User/mary", { email: "mary@example.com", password: "pass-mary-1" });
  await put(w, "/User/john", { email: "john@example.com", password: "pass-john-1" });
  await put(w, "/AccessPolicy/john-obs", {
    engine: "json-schema",
    link: [{ id: "john", resourceType: "User" }],
    schema: { required: ["user"], properties: { uri: { pattern: "^/Observation" } } },
  });
  const scopes = ["system/*.cruds"];
  await put(w, "/Client/reader", { secret: "s3cret-reader", grant_types: ["client_credentials"], "allowed-scopes": scopes, scope: scopes });
  await put(w, "/AccessPolicy/reader", { engine: "smart-on-fhir", link: [{ id: "reader", resourceType: "Client" }] });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

const post = (p, body, auth = OPS) =>
  w.fetch(p, { method: "POST", headers: { authorization: auth, "content-type": "application/json" }, body: JSON.stringify(body) });

async function johnTokens() {
  const res = await tokenPost(w, { grant_type: "password", username: "john", password: "pass-john-1" }, { auth: APP });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

async function readerToken() {
  const res = await tokenPost(w, { grant_type: "client_credentials", scope: "system/*.cruds" }, { auth: READER });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

function noSecrets(text) {
  for (const s of SECRETS) assert.ok(!text.includes(s), `answer echoes ${s}: ${text.slice(0, 300)}`);
}

/** The tester's answer for `request`, and the real status of the same request. */
async function testAndSend(request, extra = {}) {
  origin.reset();
  const res = await post("/auth/test-policy", { request, ...extra });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  noSecrets(text);
  assert.equal(origin.requests.length, 0, "the tester forwarded something to the origin");
  const report = JSON.parse(text);
  const headers = { ...(request.headers ?? {}) };
  const init = { method: (request["request-method"] ?? "get").toUpperCase(), headers };
  const real = await w.fetch(request.uri, init);
  await real.arrayBuffer();
  return { report, real: real.status };
}

test("tester agrees with the real decision: 200 forward, 403, 401, 400", async () => {
  const ok = await testAndSend({ "request-method": "get", uri: "/Patient/1", headers: { authorization: BASIC } });
  assert.equal(ok.report.decision.status, 200);
  assert.equal(ok.real, 200);
  assert.equal(ok.report["allowed-by"], "basic-patients");
  assert.equal(ok.report.identity.client, "basic");
  assert.equal(ok.report.request.uri, "/Patient/1");
  assert.equal(ok.report.request.params["resource/type"], "Patient");
  assert.equal(ok.report.request.headers.authorization, undefined, "credentials reach the policy document");

  const denied = await testAndSend({ "request-method": "get", uri: "/Observation", headers: { authorization: BASIC } });
  assert.equal(denied.report.decision.status, 403);
  assert.equal(denied.real, 403);
  assert.equal(denied.report["allowed-by"], null);
  const row = denied.report.policies.find((p) => p.id === "basic-patients");
  assert.equal(row.applies, true);
  assert.equal(row.result, false);
  assert.deepEqual(row.explanation.mismatch, { path: "uri", expected: "#^/Patient", actual: "/Observation" });
  const other = denied.report.policies.find((p) => p.id === "john-obs");
  assert.equal(other.applies, false, "a policy linked to another caller is reported as not applying");

  const unauth = await testAndSend({ "request-method": "get", uri: "/Patient", headers: { authorization: "Bearer not.a.token" } });
  assert.equal(unauth.report.decision.status, 401);
  assert.equal(unauth.real, 401);
  assert.equal(unauth.report.decision.error, "invalid_token");

  const bad = await testAndSend({ "request-method": "get", uri: "/Patient?_method=DELETE", headers: { authorization: BASIC } });
  assert.equal(bad.report.decision.status, 400);
  assert.equal(bad.real, 400);
  assert.equal(bad.report.request, null);

  const none = await testAndSend({ "request-method": "get", uri: "/Patient" });
  assert.equal(none.report.decision.status, 401);
  assert.equal(none.real, 401);
});

test("tester: a user's token, client-id/user-id, json-schema and smart explanations", async () => {
  const { access_token } = await johnTokens();
  const allowed = await testAndSend({ "request-method": "get", uri: "/Observation", headers: { authorization: `Bearer ${access_token}` } });
  assert.equal(allowed.report.decision.status, 200);
  assert.equal(allowed.real, 200);
  assert.equal(allowed.report.request.jwt.sub, "john");
  const denied = await testAndSend({ "request-method": "get", uri: "/Patient", headers: { authorization: `Bearer ${access_token}` } });
  assert.equal(denied.report.decision.status, 403);
  assert.equal(denied.real, 403);
  const row = denied.report.policies.find((p) => p.id === "john-obs");
  assert.equal(row.explanation.error.path, "uri");
  assert.equal(row.explanation.error.actual, "/Patient");

  // The pasted token field, verified like a header (never trusted).
  origin.reset();
  let res = await post("/auth/test-policy", { token: access_token, request: { "request-method": "get", uri: "/Observation" } });
  let body = await json(res);
  assert.equal(body.decision.status, 200);
  const forged = forge({ alg: "EdDSA", typ: "at+jwt" }, { ...decodeJwt(access_token).payload, sub: "basic" }, { ed25519: otherEd25519Jwk() });
  res = await post("/auth/test-policy", { token: forged, request: { "request-method": "get", uri: "/Observation" } });
  body = await json(res);
  assert.equal(body.decision.status, 401);
  assert.equal(origin.requests.length, 0);

  // Aidbox's shape: a simulated request with user-id/client-id and a policy not stored yet.
  // Aidbox docs: docs/tutorials/security-access-control-tutorials/debug-access-control.md
  // ("/auth/test-policy Operation": request with user-id / client-id, policy attribute).
  res = await post("/auth/test-policy", {
    request: { uri: "/fhir/Patient", "request-method": "get", "user-id": "john", "client-id": "app" },
    policy: { engine: "matcho", matcho: { uri: "#^/fhir/Patient", user: { id: "john" } } },
  });
  body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.identity.source, "client-id/user-id");
  assert.equal(body.request.user.id, "john");
  assert.equal(body.result["eval-result"], true);
  assert.equal(body.decision.status, 403, "the stored policies alone still deny");
  noSecrets(JSON.stringify(body));
  res = await post("/auth/test-policy", {
    request: { uri: "/fhir/Patient", "request-method": "get", "user-id": "john" },
    policy: { engine: "matcho", matcho: { uri: "#^/Observation" } },
  });
  body = await json(res);
  assert.equal(body.result["eval-result"], false);
  assert.equal(body.result.explanation.mismatch.path, "uri");

  // smart-on-fhir says why.
  const rt = await readerToken();
  const smart = await testAndSend({ "request-method": "get", uri: "/Client", headers: { authorization: `Bearer ${rt}` } });
  assert.equal(smart.report.decision.status, 403);
  assert.equal(smart.real, 403);
  assert.match(smart.report.policies.find((p) => p.id === "reader").explanation.reason, /admin type/);

  // An invalid policy is a 422 naming its field; a missing request is a 422.
  res = await post("/auth/test-policy", { request: { uri: "/Patient" }, policy: { engine: "matcho", matcho: 1 } });
  assert.equal(res.status, 422);
  assert.match(await res.text(), /policy\.matcho/);
  res = await post("/auth/test-policy", {});
  assert.equal(res.status, 422);
  await res.arrayBuffer();
});

test("only administrators may call the tester and the inspector", async () => {
  const { access_token } = await johnTokens();
  const rt = await readerToken();
  const callers = [
    ["a Basic client without an admin policy", BASIC],
    ["a user's token", `Bearer ${access_token}`],
    ["a SMART system/*.cruds token", `Bearer ${rt}`],
  ];
  for (const path of ["/auth/test-policy", "/auth/inspect-token"]) {
    const body = path.endsWith("policy") ? { request: { uri: "/Patient", headers: { authorization: BASIC } } } : { token: access_token };
    origin.reset();
    for (const [who, auth] of callers) {
      const res = await post(path, body, auth);
      const text = await res.text();
      assert.equal(res.status, 403, `${who} on ${path}: ${text}`);
      noSecrets(text);
    }
    const res = await w.fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
    const get = await w.fetch(path, { headers: { authorization: OPS } });
    assert.equal(get.status, 405);
    await get.arrayBuffer();
    // Root and the documented admin policy (docs/reference.md) may.
    for (const auth of [OPS, basicAuth("root", w.adminSecret)]) {
      const ok = await post(path, body, auth);
      assert.equal(ok.status, 200, await ok.text());
    }
    assert.equal(origin.requests.length, 0);
  }
});

test("inspector: valid, expired, foreign-signed, revoked, refresh and garbage tokens", async () => {
  const tokens = await johnTokens();
  const inspect = async (token) => {
    const res = await post("/auth/inspect-token", { token });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    noSecrets(text);
    return JSON.parse(text);
  };
  let r = await inspect(tokens.access_token);
  assert.equal(r.format, "jwt");
  assert.equal(r.claims.sub, "john");
  assert.equal(r.header.alg, "EdDSA");
  assert.deepEqual(r.verification, { active: true, by: "this server", client: "app", user: "john" });
  assert.deepEqual(r.revocation, { jti: false, family: false, "credentials-changed": false });

  const { header, payload } = decodeJwt(tokens.access_token);
  const expired = forge(header, { ...payload, exp: nowSecs() - 3600, iat: nowSecs() - 7200 }, { ed25519: w.signingKey });
  r = await inspect(expired);
  assert.equal(r.verification.active, false);
  assert.match(r.verification.reason, /expired/i);
  assert.equal(r.claims.sub, "john", "claims are decoded even when the token is invalid");
  assert.deepEqual(r.revocation, { jti: false, family: false, "credentials-changed": false }, "signed by us, expired: marks shown");

  r = await inspect(forge(header, payload, { ed25519: otherEd25519Jwk() }));
  assert.equal(r.verification.active, false);
  assert.equal(r.verification.error, "invalid_token");
  assert.match(r.verification.reason, /signature|unknown key/);
  // Forged claims with our `iss`: no revocation marks, or the inspector would be an oracle on
  // which jti, family, client or user exists (red team, issue 14).
  assert.equal(r.revocation, undefined);

  // Our key, but an ID token's type; our key, another audience.
  r = await inspect(forge({ ...header, typ: "JWT" }, payload, { ed25519: w.signingKey }));
  assert.equal(r.verification.active, false);
  assert.match(r.verification.reason, /not an access token/);
  r = await inspect(forge(header, { ...payload, aud: "https://other.example" }, { ed25519: w.signingKey }));
  assert.equal(r.verification.active, false);
  assert.match(r.verification.reason, /another audience/);
  assert.match(r.verification.note, /another audience/);

  r = await inspect(tokens.refresh_token);
  assert.equal(r.format, "refresh-token");
  assert.equal(r.refresh.found, true);
  assert.equal(r.refresh.active, true);
  assert.equal(r.refresh.presented, "current");
  assert.equal(r.refresh.user, "john");

  const rev = await w.fetch("/auth/revoke", {
    method: "POST",
    headers: { authorization: APP, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: tokens.refresh_token }).toString(),
  });
  assert.equal(rev.status, 200);
  await rev.arrayBuffer();
  r = await inspect(tokens.access_token);
  assert.equal(r.verification.active, false);
  assert.match(r.verification.reason, /revoked/);
  assert.equal(r.revocation.family, true);
  r = await inspect(tokens.refresh_token);
  assert.equal(r.refresh.revoked, true);
  assert.equal(r.refresh.active, false);

  r = await inspect("garbage");
  assert.equal(r.format, "opaque");
  assert.equal(r.verification.active, false);
  r = await inspect("a.b.c");
  assert.equal(r.format, "jwt");
  assert.equal(r.header, null);
  assert.equal(r.verification.active, false);

  const res = await post("/auth/inspect-token", {});
  assert.equal(res.status, 422);
  await res.arrayBuffer();
});

/** A browser session of `username`: the cookie jar after the login form. */
async function browserSession(username, password) {
  const query = authorizeQuery({ response_type: "code", client_id: "app", redirect_uri: CB, state: "s" });
  const { csrf, jar } = await interaction(w, query);
  const res = await postLogin(w, { query, csrf, jar, username, password });
  assert.equal(res.status, 303, await res.text());
  const session = res.headers.getSetCookie().find((c) => c.startsWith("edge_session="));
  assert.ok(session, "no session cookie");
  return { query, jar: { ...jar, edge_session: session.split(";")[0].slice("edge_session=".length) } };
}

async function sessionUser({ query, jar }) {
  const { body } = await interaction(w, query, jar);
  return body.user?.id ?? null;
}

test("sessions of a user: list, end one, end all; administrators only", async () => {
  const a = await browserSession("john", "pass-john-1");
  const b = await browserSession("john@example.com", "pass-john-1");
  const m = await browserSession("mary", "pass-mary-1");
  assert.equal(await sessionUser(a), "john");

  let res = await w.admin("GET", "/Session?user=john");
  let text = await res.text();
  assert.equal(res.status, 200, text);
  assert.match(res.headers.get("cache-control") ?? "", /no-store/);
  for (const s of [a, b, m]) assert.ok(!text.includes(s.jar.edge_session), "a session cookie is echoed");
  noSecrets(text);
  let list = JSON.parse(text);
  assert.equal(list.resourceType, "Bundle");
  assert.equal(list.total, 2);
  for (const e of list.entry) {
    assert.equal(e.resource.resourceType, "Session");
    assert.deepEqual(e.resource.user, { id: "john", resourceType: "User" });
    assert.equal(e.resource.active, true);
    assert.ok(e.resource.exp > nowSecs());
  }

  // Not for a client without an admin policy, nor for a SMART token.
  for (const auth of [BASIC, `Bearer ${await readerToken()}`]) {
    for (const method of ["GET", "DELETE"]) {
      const r = await w.fetch("/Session?user=john", { method, headers: { authorization: auth } });
      assert.equal(r.status, 403, `${method} ${await r.text()}`);
    }
  }
  assert.equal(await sessionUser(a), "john", "a refused DELETE ended a session");

  // The id of the first session (which one is which: end one, see which jar lost it).
  const [first] = list.entry.map((e) => e.resource.id);
  res = await w.admin("GET", `/Session/${first}`);
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  res = await w.admin("DELETE", `/Session/${first}`);
  assert.equal(res.status, 200, await res.text());
  const alive = [await sessionUser(a), await sessionUser(b)];
  assert.deepEqual(alive.sort(), ["john", null].sort(), JSON.stringify(alive));
  res = await w.admin("DELETE", `/Session/${first}`);
  assert.equal(res.status, 404);
  await res.arrayBuffer();

  res = await w.admin("DELETE", "/Session?user=john");
  list = await json(res);
  assert.equal(res.status, 200);
  assert.equal(list.total, 1);
  assert.equal(await sessionUser(a), null);
  assert.equal(await sessionUser(b), null);
  assert.equal(await sessionUser(m), "mary", "another user's session ended");
  res = await w.admin("GET", "/Session?user=john");
  assert.equal((await json(res)).total, 0);

  for (const [p, status] of [["/Session", 400], ["/Session/not-a-session", 404], ["/Session?user=a&user=b", 400]]) {
    res = await w.admin("GET", p);
    assert.equal(res.status, status, p);
    await res.arrayBuffer();
  }
  res = await w.admin("PUT", "/Session/x", {});
  assert.equal(res.status, 405);
  await res.arrayBuffer();
});

// The tester follows the authorizer where issue 13 changed it: a global policy makes a route
// public (anonymous requests are evaluated), an Operation-linked policy applies through
// `operation.id`, and the admin API stays 401 to anonymous callers whatever a policy says.
test("tester agrees with the real decision on public routes, Operation links and /fhir", async () => {
  await put(w, "/AccessPolicy/public-metadata", {
    engine: "matcho",
    matcho: { uri: "/fhir/metadata", "request-method": "get" },
  });
  await put(w, "/AccessPolicy/basic-fhirread", {
    engine: "allow",
    link: [{ reference: "Operation/FhirRead" }, { reference: "Client/basic" }],
  });
  try {
    const pub = await testAndSend({ "request-method": "get", uri: "/fhir/metadata" });
    assert.equal(pub.real, 200);
    assert.equal(pub.report.decision.status, 200, JSON.stringify(pub.report.decision));
    assert.equal(pub.report.identity.authenticated, false);
    const elsewhere = await testAndSend({ "request-method": "get", uri: "/fhir/Observation" });
    assert.equal(elsewhere.real, 401);
    assert.equal(elsewhere.report.decision.status, 401);
    const admin = await testAndSend({ "request-method": "get", uri: "/fhir/Client" });
    assert.equal(admin.real, 401);
    assert.equal(admin.report.decision.status, 401);

    const read = await testAndSend({ "request-method": "get", uri: "/fhir/Observation/o1", headers: { authorization: BASIC } });
    assert.equal(read.real, 200);
    assert.equal(read.report.decision.status, 200);
    assert.equal(read.report.request.operation.id, "FhirRead");
    assert.equal(read.report.request["fhir-base"], "/fhir");
    assert.equal(read.report.request.params["resource/type"], "Observation");
  } finally {
    for (const id of ["public-metadata", "basic-fhirread"]) {
      const res = await w.admin("DELETE", `/AccessPolicy/${id}`);
      assert.equal(res.status, 200, `cleanup of ${id}`);
    }
  }
});
