// Issue 11, section 1 and the json-schema item of section 5: the admin API against the
// smart-on-fhir engine, and json-schema keywords the engine does not implement.
//
// The built Worker in workerd over real HTTP, with a recording origin. Every refused request is
// checked to have reached neither the origin nor the store; positive controls show that the
// same tokens still reach FHIR resources and that root and the documented admin policy
// (docs/reference.md, "Who may call it") still manage the admin API.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-admin.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startWorker, startOrigin, basicAuth, json, JSON_CT, ROOT } from "./harness.mjs";
import { put, pkce, interaction, postLogin, authorizeQuery, tokenPost } from "./attacks-lib.mjs";

const FHIR = "https://fhir.example/r4";
const CB = "https://smart.example/cb";
const READER = basicAuth("reader", "reader-secret");
const OPS = basicAuth("ops-console", "ops-secret");

let w;
let origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  // The client of the issue: client credentials, governed by a smart-on-fhir policy only.
  // Registered for the scopes it asks for (Aidbox `scope`, and `allowed-scopes`), so that only
  // the policy decides what the tokens reach.
  const readerScopes = ["system/*.rs", "system/*.cruds"];
  await put(w, "/Client/reader", {
    secret: "reader-secret",
    grant_types: ["client_credentials"],
    "allowed-scopes": readerScopes,
    scope: readerScopes,
  });
  await put(w, "/AccessPolicy/reader", { engine: "smart-on-fhir", link: [{ id: "reader", resourceType: "Client" }] });
  // The same client behind a FHIR base path: /fhir/Client must not become a FHIR type either.
  await put(w, "/AccessPolicy/reader-fhir", {
    engine: "smart-on-fhir",
    "fhir-base-path": "/fhir",
    link: [{ id: "reader", resourceType: "Client" }],
  });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
  // A SMART app and a patient user for patient/ tokens (standalone launch, patient pt-2).
  const scopes = ["launch/patient", "openid", "fhirUser", "patient/*.rs", "patient/*.c"];
  await put(w, "/Client/pt-app", {
    type: "smart-app",
    "fhir-base-url": FHIR,
    first_party: true,
    grant_types: ["authorization_code"],
    auth: { authorization_code: { redirect_uri: CB } },
    "allowed-scopes": scopes,
    scope: scopes,
  });
  await put(w, "/User/anna", { password: "anna-pass", fhirUser: "Patient/pt-2" });
  await put(w, "/AccessPolicy/pt-app", { engine: "smart-on-fhir", link: [{ id: "pt-app", resourceType: "Client" }] });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

// --- helpers --------------------------------------------------------------------------------------

/** A client_credentials token of `reader` for `scope`. */
async function readerToken(scope) {
  const res = await tokenPost(w, { grant_type: "client_credentials", scope }, { auth: READER });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

/** A patient/ token of `pt-app` for anna (patient pt-2), through the authorization code flow. */
async function patientToken(scope) {
  const { verifier, challenge } = pkce();
  const query = authorizeQuery({
    response_type: "code",
    client_id: "pt-app",
    redirect_uri: CB,
    scope: `launch/patient openid ${scope}`,
    state: "s-1",
    aud: FHIR,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  const { csrf, jar } = await interaction(w, query);
  const login = await postLogin(w, { query, csrf, jar, username: "anna", password: "anna-pass" });
  const location = new URL(login.headers.get("location") ?? "", w.url);
  const code = location.searchParams.get("code");
  assert.ok(code, `no code: ${login.status} ${location}`);
  const res = await tokenPost(w, {
    grant_type: "authorization_code",
    client_id: "pt-app",
    code,
    redirect_uri: CB,
    code_verifier: verifier,
  });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.patient, "pt-2");
  return body.access_token;
}

/** A request with a bearer token (or other authorization); a non-string body goes as JSON. */
async function call(auth, method, p, body) {
  const headers = { authorization: auth.startsWith("Basic ") ? auth : `Bearer ${auth}` };
  const init = { method, headers };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  // An absolute URL keeps a path such as `//Client` (relative, it would name a host).
  const res = await w.fetch(w.url + p, init);
  const text = await res.text();
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, text, body: parsed, headers: res.headers };
}

/** Refused with a `status` (403) error, and the origin saw nothing. */
async function assertRefused(auth, method, p, body, status = 403) {
  origin.reset();
  const r = await call(auth, method, p, body);
  assert.equal(r.status, status, `${method} ${p}: expected ${status}, got ${r.status} ${r.text.slice(0, 300)}`);
  assert.equal(typeof r.body?.error, "string", r.text);
  assert.equal(origin.requests.length, 0, `${method} ${p} reached the origin`);
}

/** As root: the stored resource, or null when absent. */
async function stored(p) {
  const res = await w.admin("GET", p);
  const body = await json(res);
  if (res.status === 404) return null;
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

// --- section 1: a SMART scope never opens the admin API ------------------------------------------

test("system/*.rs token cannot GET /User (list every user)", async () => {
  const token = await readerToken("system/*.rs");
  await assertRefused(token, "GET", "/User");
  await assertRefused(token, "GET", "/User/john");
  await assertRefused(token, "GET", "/Client");
  await assertRefused(token, "GET", "/Client/reader");
  await assertRefused(token, "GET", "/AccessPolicy");
  await assertRefused(token, "GET", "/TokenIntrospector");
});

test("system/*.cruds token cannot PUT /Client/evil", async () => {
  const token = await readerToken("system/*.cruds");
  await assertRefused(token, "PUT", "/Client/evil", { secret: "evil-secret", grant_types: ["basic"] });
  await assertRefused(token, "POST", "/Client", { secret: "evil-secret", grant_types: ["basic"] });
  assert.equal(await stored("/Client/evil"), null, "the evil client was stored");
  // It cannot authenticate either.
  const r = await call(basicAuth("evil", "evil-secret"), "GET", "/Patient");
  assert.equal(r.status, 401, r.text);
});

test("system/*.cruds token cannot PUT /AccessPolicy/evil (allow, linked to evil)", async () => {
  const token = await readerToken("system/*.cruds");
  const before = (await stored("/AccessPolicy")).total;
  const evil = { engine: "allow", link: [{ id: "evil", resourceType: "Client" }] };
  await assertRefused(token, "PUT", "/AccessPolicy/evil", evil);
  await assertRefused(token, "POST", "/AccessPolicy", evil);
  await assertRefused(token, "PUT", "/AccessPolicy/reader", { engine: "allow", link: [{ id: "reader", resourceType: "Client" }] });
  await assertRefused(token, "DELETE", "/AccessPolicy/reader-fhir");
  assert.equal(await stored("/AccessPolicy/evil"), null);
  assert.equal((await stored("/AccessPolicy")).total, before, "a policy was added or removed");
  assert.equal((await stored("/AccessPolicy/reader")).engine, "smart-on-fhir");
});

test("system/*.cruds token cannot PUT /User/john {password} (account takeover)", async () => {
  const token = await readerToken("system/*.cruds");
  const johnBefore = await stored("/User/john");
  await assertRefused(token, "PUT", "/User/john", { email: "john@example.com", password: "taken-over" });
  await assertRefused(token, "PUT", "/User/mallory", { password: "mallory-pass" });
  await assertRefused(token, "DELETE", "/User/john");
  await assertRefused(token, "PUT", "/TokenIntrospector/evil", { type: "jwt", jwt: { iss: "https://evil.example", secret: "x".repeat(32) } });
  assert.deepEqual(await stored("/User/john"), johnBefore, "john was changed");
  assert.equal(await stored("/User/mallory"), null);
  assert.equal(await stored("/TokenIntrospector/evil"), null);
});

test("patient/*.rs token cannot list users with GET /User?patient=<mine>", async () => {
  const token = await patientToken("patient/*.rs");
  await assertRefused(token, "GET", "/User?patient=pt-2");
  await assertRefused(token, "GET", "/User?patient=Patient/pt-2");
  await assertRefused(token, "GET", "/Client?patient=pt-2");
  await assertRefused(token, "GET", "/User/anna?patient=pt-2");
  // Control: its own compartment is still readable.
  origin.reset();
  const r = await call(token, "GET", "/Observation?patient=pt-2");
  assert.equal(r.status, 200, r.text);
  assert.equal(origin.requests.length, 1);
});

test("patient/*.c token cannot POST /AccessPolicy with subject pointing at its patient", async () => {
  const token = await patientToken("patient/*.c");
  const before = (await stored("/AccessPolicy")).total;
  const subject = { reference: "Patient/pt-2" };
  await assertRefused(token, "POST", "/AccessPolicy", { engine: "allow", subject });
  await assertRefused(token, "POST", "/AccessPolicy", { engine: "allow", patient: subject });
  await assertRefused(token, "POST", "/Client", { grant_types: ["basic"], secret: "s".repeat(12), subject });
  await assertRefused(token, "POST", "/User", { password: "x-pass-1234", subject });
  assert.equal((await stored("/AccessPolicy")).total, before, "a policy was created");
  // Control: a create in its own compartment still works.
  origin.reset();
  const r = await call(token, "POST", "/Observation", { resourceType: "Observation", subject });
  assert.equal(r.status, 200, r.text);
  assert.equal(origin.requests.length, 1);
});

test("explicit system/Client.cruds and user/AccessPolicy.c scopes grant nothing", async () => {
  // A client registered for exactly those scopes, under a smart-on-fhir policy. Refusing them at
  // registration (422), at the token endpoint (400 invalid_scope) or at the API (403) all hold.
  const explicit = ["system/Client.cruds", "system/User.cruds", "system/AccessPolicy.cruds", "user/AccessPolicy.c"];
  const reg = await w.admin("PUT", "/Client/explicit", {
    secret: "explicit-secret",
    grant_types: ["client_credentials"],
    "allowed-scopes": explicit,
    scope: explicit,
  });
  const regText = await reg.text();
  if (reg.status === 422) return;
  assert.ok([200, 201].includes(reg.status), regText);
  await put(w, "/AccessPolicy/explicit", { engine: "smart-on-fhir", link: [{ id: "explicit", resourceType: "Client" }] });
  const auth = basicAuth("explicit", "explicit-secret");
  for (const scope of ["system/Client.cruds", "system/User.cruds system/AccessPolicy.cruds", "user/AccessPolicy.c"]) {
    const res = await tokenPost(w, { grant_type: "client_credentials", scope }, { auth });
    const body = await json(res);
    if (res.status !== 200) {
      // Refusing the scope outright is fine too.
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.error, "invalid_scope", JSON.stringify(body));
      continue;
    }
    const token = body.access_token;
    await assertRefused(token, "GET", "/Client");
    await assertRefused(token, "GET", "/User");
    await assertRefused(token, "PUT", "/Client/evil", { secret: "evil-secret", grant_types: ["basic"] });
    await assertRefused(token, "POST", "/AccessPolicy", { engine: "allow" });
  }
  assert.equal(await stored("/Client/evil"), null);
});

test("admin types through _history, _search, $operation, a fhir-base-path, odd spellings and batches are refused", async () => {
  const token = await readerToken("system/*.cruds");
  const cases = [
    ["GET", "/Client/_history"],
    ["GET", "/User/_history"],
    ["GET", "/User/john/_history"],
    ["GET", "/User/john/_history/1"],
    ["POST", "/User/_search", ""],
    ["POST", "/AccessPolicy/_search", ""],
    ["GET", "/User/$export"],
    ["POST", "/User/john/$change-password", { password: "taken-over" }],
    ["GET", "/fhir/Client"],
    ["GET", "/fhir/User/john"],
    ["PUT", "/fhir/Client/evil", { secret: "evil-secret", grant_types: ["basic"] }],
    ["PUT", "/fhir/AccessPolicy/evil", { engine: "allow" }],
    ["POST", "/fhir/User/_search", ""],
    ["GET", "/fhir/TokenIntrospector/_history"],
    // An empty segment is refused before any policy (400, the request checks of section 3).
    ["GET", "//Client", undefined, 400],
    ["GET", "/%43lient"],
    ["GET", "/client"],
    ["GET", "/Role"],
    ["GET", "/Session"],
    ["GET", "/Patient/pt-1/User"],
    ["GET", "/Patient?_revinclude=User:patient"],
    ["GET", "/Patient?_has:User:link:id=john"],
    ["GET", "/Observation?_include=*"],
    ["GET", "/"],
    ["POST", "/", { resourceType: "Bundle", type: "transaction", entry: [{ request: { method: "PUT", url: "Client/evil" }, resource: { resourceType: "Client", secret: "evil-secret", grant_types: ["basic"] } }] }],
    ["POST", "/fhir", { resourceType: "Bundle", type: "batch", entry: [{ request: { method: "GET", url: "User" } }] }],
  ];
  for (const [method, p, body, status] of cases) await assertRefused(token, method, p, body, status);
  assert.equal(await stored("/Client/evil"), null);
});

test("control: the same tokens still read and write Patient and Observation through the policy", async () => {
  const read = await readerToken("system/*.rs");
  const write = await readerToken("system/*.cruds");
  for (const [token, method, p, body] of [
    [read, "GET", "/Patient"],
    [read, "GET", "/Patient/pt-1"],
    [read, "GET", "/Observation?code=1234-5"],
    [read, "GET", "/Observation?_include=Observation:subject"],
    [read, "GET", "/Patient/pt-1/_history"],
    [read, "GET", "/fhir/Patient/pt-1"],
    [read, "GET", "/metadata"],
    [write, "PUT", "/Observation/o1", { resourceType: "Observation", status: "final" }],
    [write, "POST", "/fhir/Observation", { resourceType: "Observation", status: "final" }],
    [write, "DELETE", "/Observation/o1"],
  ]) {
    origin.reset();
    const r = await call(token, method, p, body);
    assert.equal(r.status, 200, `${method} ${p}: ${r.status} ${r.text.slice(0, 300)}`);
    assert.equal(r.headers.get("x-from-origin"), "yes");
    assert.equal(origin.requests.length, 1);
    assert.equal(origin.last().method, method);
  }
  // A read token still cannot write FHIR resources (the engine still decides for FHIR).
  await assertRefused(read, "PUT", "/Observation/o1", { resourceType: "Observation" });
});

test("control: root still manages clients, users and policies", async () => {
  const c = await w.admin("PUT", "/Client/root-made", { secret: "root-made-secret", grant_types: ["basic"] });
  assert.equal(c.status, 201, await c.text());
  const u = await w.admin("GET", "/User");
  assert.equal(u.status, 200, await u.text());
  const d = await w.admin("DELETE", "/Client/root-made");
  assert.equal(d.status, 200, await d.text());
});

// --- section 1: the one documented way to make an administrator -----------------------------------

/** The admin policy example of docs/reference.md "Admin API" > "Who may call it", parsed from that page. */
function documentedAdminPolicy() {
  const page = readFileSync(path.join(ROOT, "docs", "reference.md"), "utf8");
  const at = page.indexOf("**Who may call it.**");
  assert.ok(at >= 0, "docs/reference.md has no 'Who may call it' paragraph");
  const start = page.indexOf("```json", at);
  const end = page.indexOf("```", start + 7);
  assert.ok(start > at && end > start, "no json example under 'Who may call it'");
  return JSON.parse(page.slice(start + 7, end));
}

test("the documented admin policy makes ops-console an administrator, and nothing else", async () => {
  const policy = documentedAdminPolicy();
  assert.equal(policy.engine, "matcho");
  assert.deepEqual(policy.link, [{ id: "ops-console", resourceType: "Client" }]);
  await put(w, "/Client/ops-console", { secret: "ops-secret", grant_types: ["basic", "client_credentials"] });
  const before = await call(OPS, "GET", "/User");
  assert.equal(before.status, 403, "ops-console is an administrator before the policy exists");
  await put(w, "/AccessPolicy/ops-admin", policy);

  // Basic and a client_credentials token of ops-console both manage the admin API.
  const tokenRes = await tokenPost(w, { grant_type: "client_credentials" }, { auth: OPS });
  const opsToken = (await json(tokenRes)).access_token;
  assert.ok(opsToken, "no token for ops-console");
  for (const auth of [OPS, opsToken]) {
    origin.reset();
    const users = await call(auth, "GET", "/User");
    assert.equal(users.status, 200, users.text);
    assert.ok(users.body.entry.some((e) => e.resource.id === "john"));
    const made = await call(auth, "PUT", "/Client/ops-made", { secret: "ops-made-secret", grant_types: ["basic"] });
    assert.ok([200, 201].includes(made.status), made.text);
    const pol = await call(auth, "PUT", "/AccessPolicy/ops-made", { engine: "allow", link: [{ id: "ops-made", resourceType: "Client" }] });
    assert.ok([200, 201].includes(pol.status), pol.text);
    const del = await call(auth, "DELETE", "/AccessPolicy/ops-made");
    assert.equal(del.status, 200, del.text);
    assert.equal(origin.requests.length, 0, "admin calls reached the origin");
    // The policy opens the admin API only: FHIR paths stay closed to it.
    await assertRefused(auth, "GET", "/Patient");
    await assertRefused(auth, "GET", "/Clientele");
  }

  // Nothing in the attack list gains from it: reader's tokens are still refused.
  const read = await readerToken("system/*.rs");
  const write = await readerToken("system/*.cruds");
  await assertRefused(read, "GET", "/User");
  await assertRefused(write, "PUT", "/Client/evil", { secret: "evil-secret", grant_types: ["basic"] });
  await assertRefused(write, "PUT", "/AccessPolicy/evil", { engine: "allow", link: [{ id: "evil", resourceType: "Client" }] });
  await assertRefused(write, "PUT", "/User/john", { password: "taken-over" });
  const pt = await patientToken("patient/*.rs patient/*.c");
  await assertRefused(pt, "GET", "/User?patient=pt-2");
  await assertRefused(pt, "POST", "/AccessPolicy", { engine: "allow", subject: { reference: "Patient/pt-2" } });
  // nor john, a user without policies.
  const john = await call(basicAuth("john", "pass123"), "GET", "/User");
  assert.equal(john.status, 401, john.text);
  await w.admin("DELETE", "/AccessPolicy/ops-admin");
  const after = await call(OPS, "GET", "/User");
  assert.equal(after.status, 403, "deleting the policy did not take admin access away");
});

// --- section 5: json-schema refuses keywords it does not implement ---------------------------------

test("json-schema policy with the typo requird is refused with 422 naming schema.properties.user.requird", async () => {
  const policy = {
    engine: "json-schema",
    link: [{ id: "reader", resourceType: "Client" }],
    schema: { required: ["user"], properties: { user: { requird: ["id"] } } },
  };
  const res = await w.admin("PUT", "/AccessPolicy/typo", policy);
  const body = await json(res);
  assert.equal(res.status, 422, JSON.stringify(body));
  assert.equal(body.error, "invalid_resource");
  assert.equal(body.field, "schema.properties.user.requird");
  assert.match(body.error_description, /schema\.properties\.user\.requird/);
  assert.equal(await stored("/AccessPolicy/typo"), null, "the policy was stored");

  // format is an assertion this engine does not implement: refused, not ignored.
  const fmt = await w.admin("PUT", "/AccessPolicy/typo", {
    engine: "json-schema",
    schema: { properties: { user: { properties: { email: { format: "email" } } } } },
  });
  const fbody = await json(fmt);
  assert.equal(fmt.status, 422, JSON.stringify(fbody));
  assert.equal(fbody.field, "schema.properties.user.properties.email.format");
  // Inside complex, the path says where.
  const cx = await w.admin("PUT", "/AccessPolicy/typo", {
    engine: "complex",
    or: [{ engine: "json-schema", schema: { requird: ["user"] } }],
  });
  const cbody = await json(cx);
  assert.equal(cx.status, 422, JSON.stringify(cbody));
  assert.equal(cbody.field, "or.0.schema.requird");
  assert.equal(await stored("/AccessPolicy/typo"), null);
});

test("json-schema policy with a real schema still works", async () => {
  await put(w, "/Client/schema-client", { secret: "schema-secret", grant_types: ["basic"] });
  await put(w, "/AccessPolicy/schema-client", {
    engine: "json-schema",
    link: [{ id: "schema-client", resourceType: "Client" }],
    schema: {
      $schema: "http://json-schema.org/draft-07/schema#",
      title: "read patients only",
      required: ["client", "request-method", "uri"],
      properties: {
        "request-method": { const: "get" },
        uri: { type: "string", pattern: "^/Patient(/|$)", description: "the Patient API" },
        client: { properties: { id: { const: "schema-client" } }, required: ["id"] },
      },
    },
  });
  const auth = basicAuth("schema-client", "schema-secret");
  origin.reset();
  const ok = await call(auth, "GET", "/Patient/pt-1");
  assert.equal(ok.status, 200, ok.text);
  assert.equal(origin.requests.length, 1);
  await assertRefused(auth, "POST", "/Patient", { resourceType: "Patient" });
  await assertRefused(auth, "GET", "/Observation");
  await assertRefused(auth, "GET", "/User");
});
