// Remembered consent (Aidbox's Grant resource, issue 13) against the built Worker in workerd: a
// user who approved a client's scopes is not asked again for them (or fewer) until the grant is
// revoked; a wider request asks again. Admin `GET /Grant?user=`, `GET`/`DELETE /Grant/{id}`, the
// user's own `GET`/`POST /auth/grants`, and the attack cases.
//
// Aidbox docs: docs/reference/system-resources-reference/core-module-resources.md (Grant: user,
// client, scope, provided-scope, requested-scope, start; references as {resourceType, id}).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, json, basicAuth, form, FORM } from "./harness.mjs";
import { put, interaction, postLogin, postConsent, authorizeQuery, cookies, cookieHeader } from "./attacks-lib.mjs";

const A_CB = "https://a.example/cb";
const B_CB = "https://b.example/cb";
let w;

const client = (secret, redirect_uri, extra = {}) => ({
  secret,
  grant_types: ["authorization_code"],
  auth: { authorization_code: { redirect_uri } },
  scope: ["openid", "profile", "patient/*.rs", "user/*.cruds"],
  ...extra,
});

before(async () => {
  w = await startWorker();
  await put(w, "/Client/app-a", client("a-secret", A_CB, { name: "App A" }));
  await put(w, "/Client/app-b", client("b-secret", B_CB, { name: "App B" }));
  await put(w, "/Client/first", client("f-secret", A_CB, { first_party: true }));
  await put(w, "/User/john", { email: "john@example.com", password: "pass123", fhirUser: "Practitioner/pr-1" });
  await put(w, "/User/jane", { email: "jane@example.com", password: "pass456", fhirUser: "Practitioner/pr-2" });
  // A SMART app's token with every patient and user scope (the smart-on-fhir engine).
  await put(w, "/AccessPolicy/smart", { engine: "smart-on-fhir" });
});
after(async () => w?.dispose());

const query = (client_id, scope, redirect_uri = client_id === "app-b" ? B_CB : A_CB) =>
  authorizeQuery({ response_type: "code", client_id, redirect_uri, scope, state: "st" });

/** A fresh browser: interaction, login; the answer to the login form and the cookie jar. */
async function login(q, username = "john", password = "pass123") {
  const { csrf, jar } = await interaction(w, q);
  const res = await postLogin(w, { query: q, csrf, jar, username, password });
  assert.equal(res.status, 303);
  return { res, csrf, jar: { ...jar, ...cookies(res) } };
}
const where = (res) => res.headers.get("location");
const askedConsent = (res) => where(res).startsWith("/auth/ui/consent.html?");
const gotCode = (res, cb = A_CB) => where(res).startsWith(`${cb}?`) && new URL(where(res)).searchParams.has("code");

/** Login and approve on the consent page. */
async function approve(q, username, password) {
  const s = await login(q, username, password);
  assert.ok(askedConsent(s.res), `consent expected, got ${where(s.res)}`);
  const res = await postConsent(w, { query: q, csrf: s.csrf, jar: s.jar });
  assert.equal(res.status, 303);
  return { ...s, res };
}

const grantsOf = async (user) => {
  const r = await w.admin("GET", `/Grant?user=${user}`);
  assert.equal(r.status, 200);
  return (await json(r)).entry.map((e) => e.resource);
};

test("an approved consent is remembered: same scopes and fewer skip the page; client A only", async () => {
  const q = query("app-a", "openid patient/*.rs");
  const first = await approve(q);
  assert.ok(gotCode(first.res), "a code after Allow");
  // A new browser, same user, same client, same scopes: straight to the client.
  assert.ok(gotCode((await login(q)).res), "same scopes: no consent page");
  assert.ok(gotCode((await login(query("app-a", "openid"))).res), "a subset: no consent page");
  assert.ok(gotCode((await login(query("app-a", ""))).res), "no scope: no consent page");
  // Attack: the grant for client A does not skip consent for client B.
  assert.ok(askedConsent((await login(query("app-b", "openid patient/*.rs"))).res), "client B asks");
  // Attack: the grant for user john does not apply to user jane.
  assert.ok(askedConsent((await login(q, "jane", "pass456")).res), "user jane is asked");
});

test("a wider request asks again, marking the scopes approved before; Allow widens the grant", async () => {
  // Attack: a grant for patient/*.rs does not cover user/*.cruds.
  const q = query("app-a", "openid patient/*.rs user/*.cruds");
  const s = await login(q);
  assert.ok(askedConsent(s.res), "user/*.cruds is new: asked");
  const page = await interaction(w, q, s.jar);
  const marks = Object.fromEntries(page.body.scopes.map((x) => [x.scope, x.approved]));
  assert.deepEqual(marks, { openid: true, "patient/*.rs": true, "user/*.cruds": false });
  const res = await postConsent(w, { query: q, csrf: page.csrf, jar: page.jar });
  assert.ok(gotCode(res));
  assert.ok(gotCode((await login(query("app-a", "user/*.cruds"))).res), "now remembered");
  const [g] = await grantsOf("john");
  assert.deepEqual(g["provided-scope"], ["openid", "patient/*.rs", "user/*.cruds"]);
});

test("admin GET /Grant?user= gives Aidbox's Grant shape; GET /Grant/{id}; DELETE revokes: asked again", async () => {
  const list = await grantsOf("john");
  assert.equal(list.length, 1, JSON.stringify(list));
  const g = list[0];
  assert.equal(g.resourceType, "Grant");
  assert.match(g.id, /^[A-Za-z0-9\-.]{1,64}$/, "a FHIR id");
  assert.deepEqual(g.user, { resourceType: "User", id: "john" });
  assert.deepEqual(g.client, { resourceType: "Client", id: "app-a" });
  assert.equal(g.scope, "openid patient/*.rs user/*.cruds");
  assert.ok(Array.isArray(g["requested-scope"]));
  assert.match(g.start, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const one = await w.admin("GET", `/Grant/${g.id}`);
  assert.equal(one.status, 200);
  assert.deepEqual(await json(one), g);
  assert.equal((await grantsOf("jane")).length, 0, "jane approved nothing");
  // Revoke: the next authorize asks again.
  const del = await w.admin("DELETE", `/Grant/${g.id}`);
  assert.equal(del.status, 200);
  assert.equal((await json(del)).id, g.id);
  assert.equal((await w.admin("GET", `/Grant/${g.id}`)).status, 404);
  assert.equal((await w.admin("DELETE", `/Grant/${g.id}`)).status, 404);
  assert.ok(askedConsent((await login(query("app-a", "openid"))).res), "revoked: asked again");
  // Grants are made by consent only; the list needs a user.
  assert.equal((await w.admin("PUT", `/Grant/x`, { user: { id: "jane" } })).status, 405);
  assert.equal((await w.admin("POST", `/Grant`, { user: { id: "jane" } })).status, 405);
  assert.equal((await w.admin("GET", `/Grant`)).status, 400);
  assert.equal((await w.admin("GET", `/Grant/no-such-grant`)).status, 404);
});

test("first-party clients still skip consent, and record no grant", async () => {
  const { res } = await login(query("first", "openid"), "jane", "pass456");
  assert.ok(gotCode(res), where(res));
  assert.equal((await grantsOf("jane")).length, 0);
});

test("the signed-in user lists and revokes their own grants at /auth/grants; nobody else's", async () => {
  await approve(query("app-b", "openid profile"), "jane", "pass456");
  const john = await approve(query("app-a", "openid"));
  // john's browser sees john's grants only.
  const mine = await w.fetch("/auth/grants", { headers: { cookie: cookieHeader(john.jar) } });
  assert.equal(mine.status, 200);
  const body = await json(mine);
  assert.deepEqual(body.grants.map((g) => [g.user.id, g.client.id]), [["john", "app-a"]]);
  const jar = { ...john.jar, ...cookies(mine) };
  // Attack: no way to name another user; revoking jane's client from john's session finds
  // nothing of john's, and jane's grant stays.
  const post = (params, j = jar, headers = {}) =>
    w.fetch("/auth/grants", { method: "POST", headers: { ...FORM, cookie: cookieHeader(j), ...headers }, body: form(params) });
  assert.equal((await post({ client: "app-b", csrf: body.csrf, user: "jane" })).status, 404);
  assert.equal((await grantsOf("jane")).length, 1, "jane's grant is untouched");
  // Attack: no session -> 401; CSRF token missing or from another site -> 403.
  assert.equal((await w.fetch("/auth/grants")).status, 401);
  assert.equal((await post({ client: "app-a", csrf: body.csrf }, { edge_csrf: jar.edge_csrf })).status, 401);
  assert.equal((await post({ client: "app-a", csrf: "" })).status, 403);
  assert.equal((await post({ client: "app-a", csrf: body.csrf }, jar, { origin: "https://evil.example" })).status, 403);
  assert.equal((await grantsOf("john")).length, 1, "still there");
  // Control: john revokes his own grant; the next authorize asks again.
  const ok = await post({ client: "app-a", csrf: body.csrf });
  assert.equal(ok.status, 200);
  assert.equal((await json(ok)).client.id, "app-a");
  assert.equal((await grantsOf("john")).length, 0);
  assert.ok(askedConsent((await login(query("app-a", "openid"))).res), "asked again");
});

test("a SMART token cannot read or delete /Grant (a server type, never a FHIR type)", async () => {
  const [g] = await grantsOf("jane");
  assert.ok(g, "jane's grant from the test before");
  await put(w, "/Client/svc", { secret: "svc-secret", grant_types: ["client_credentials"], scope: ["system/*.cruds", "system/*.*"] });
  const tok = await w.fetch("/auth/token", {
    method: "POST",
    headers: { ...FORM, authorization: basicAuth("svc", "svc-secret") },
    body: form({ grant_type: "client_credentials", scope: "system/*.cruds" }),
  });
  assert.equal(tok.status, 200, await tok.clone().text());
  const { access_token } = await json(tok);
  const bearer = { authorization: `Bearer ${access_token}` };
  assert.equal((await w.fetch("/Patient", { headers: bearer })).status, 200, "control: the token reads FHIR");
  for (const [method, path] of [["GET", `/Grant?user=jane`], ["GET", `/Grant/${g.id}`], ["DELETE", `/Grant/${g.id}`]]) {
    assert.equal((await w.fetch(path, { method, headers: bearer })).status, 403, `${method} ${path}`);
  }
  assert.equal((await grantsOf("jane")).length, 1, "the grant survived");
});

test("a user deleted and created again under the same id inherits no grant", async () => {
  assert.equal((await grantsOf("jane")).length, 1);
  assert.equal((await w.admin("DELETE", "/User/jane")).status, 200);
  await put(w, "/User/jane", { email: "jane@example.com", password: "pass456", fhirUser: "Practitioner/pr-2" });
  assert.equal((await grantsOf("jane")).length, 0);
  assert.ok(askedConsent((await login(query("app-b", "openid"), "jane", "pass456")).res), "asked again");
});
