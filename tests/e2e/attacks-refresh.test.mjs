// Issue 12, "Refresh tokens": reuse detection that never forgets, family revocation that
// reaches every access token, an absolute family lifetime, and a refresh that re-checks the
// client and the user as they are now. Against the built Worker in workerd, with the password
// grant as the quickest way to a family; the API behind the authorizer is an echo origin that
// records what reached it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth } from "./harness.mjs";
import { assertError, put, tokenPost } from "./attacks-lib.mjs";

let w, origin;
const APP = basicAuth("app", "s");
const REG = {
  secret: "s", grant_types: ["password"], scope: ["read", "write", "offline_access"],
  auth: { password: { refresh_token: true } },
};

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  await put(w, "/Client/app", REG);
  await put(w, "/Client/short", {
    ...REG, auth: { password: { refresh_token: true, refresh_token_absolute_expiration: 3 } },
  });
  for (const u of ["john", "mary", "zoe", "ann", "bob", "eve"]) {
    await put(w, `/User/${u}`, { email: `${u}@example.com`, password: "pass123" });
  }
  await put(w, "/AccessPolicy/all", { engine: "allow" });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

async function login(user, { client = "app", secret = "s", scope = "read" } = {}) {
  const r = await tokenPost(w, { grant_type: "password", username: user, password: "pass123", scope },
    { auth: basicAuth(client, secret) });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.ok(body.refresh_token, "a refresh token");
  return body;
}
const refresh = (rt, auth = APP, extra = {}) => tokenPost(w, { grant_type: "refresh_token", refresh_token: rt, ...extra }, { auth });
async function refreshOk(rt, auth = APP) {
  const r = await refresh(rt, auth);
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}
/** Status of an API call with this access token; asserts a refused call never reached the origin. */
async function api(at) {
  const tag = `/Patient/p-${Math.random().toString(36).slice(2)}`;
  const r = await w.fetch(tag, { headers: { authorization: `Bearer ${at}` } });
  await r.arrayBuffer();
  const reached = origin.requests.some((q) => q.url.includes(tag));
  if (r.status === 401) assert.ok(!reached, "a refused request reached the origin");
  return r.status;
}

test("normal rotation works: each refresh gives a new pair, the new access token is accepted", async () => {
  let { refresh_token: rt } = await login("john");
  for (let i = 0; i < 3; i++) {
    const b = await refreshOk(rt);
    assert.notEqual(b.refresh_token, rt);
    assert.equal(await api(b.access_token), 200);
    rt = b.refresh_token;
  }
});

test("thief refreshes 33 times, then the victim's original token revokes the family", async () => {
  const first = await login("mary");
  const stolen = first.refresh_token;
  let rt = stolen;
  let at;
  for (let i = 0; i < 33; i++) ({ refresh_token: rt, access_token: at } = await refreshOk(rt));
  assert.equal(await api(at), 200, "the thief's access token works before detection");
  // The victim uses the original (generation 0) token: a reuse, however old.
  await assertError(await refresh(stolen), 400, "invalid_grant");
  // The whole family is revoked: the thief's newest refresh token and access token.
  await assertError(await refresh(rt), 400, "invalid_grant");
  assert.equal(await api(at), 401, "the thief's access token is revoked with the family");
  assert.equal(await api(first.access_token), 401);
});

test("forged or malformed refresh tokens are refused without touching the family", async () => {
  const { refresh_token: rt0 } = await login("zoe");
  const { refresh_token: rt1 } = await refreshOk(rt0);
  const [fam, gen, secret, tag] = rt1.split(".");
  assert.equal(gen, "1");
  const forged = [
    `${fam}.2.${secret}.${tag}`, // a generation above the current one
    `${fam}.0.${secret}.${tag}`, // an older generation with a tag that does not match
    `${fam}.1.${secret}.${"A".repeat(43)}`, // a wrong tag
    `${fam}.01.${secret}.${tag}`, // a non-canonical generation
    `${fam}.${secret}`, // the old format with a secret of the new
    `${fam}.1.${secret}`, `${fam}..${secret}.${tag}`, `${fam}.-1.${secret}.${tag}`, `${rt1}.x`,
  ];
  for (const f of forged) await assertError(await refresh(f), 400, "invalid_grant");
  // The family is intact: the real current token still rotates.
  const b = await refreshOk(rt1);
  assert.equal(await api(b.access_token), 200);
});

test("family revocation revokes the 20th access token of the family", async () => {
  const first = await login("ann");
  let rt = first.refresh_token;
  const ats = [first.access_token];
  for (let i = 0; i < 20; i++) {
    const b = await refreshOk(rt);
    rt = b.refresh_token;
    ats.push(b.access_token);
  }
  for (const at of [ats[0], ats[1], ats[20]]) assert.equal(await api(at), 200);
  const rv = await w.fetch("/auth/revoke", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: APP },
    body: new URLSearchParams({ token: rt }).toString(),
  });
  assert.equal(rv.status, 200);
  for (const [i, at] of ats.entries()) assert.equal(await api(at), 401, `access token #${i} of the family`);
  await assertError(await refresh(rt), 400, "invalid_grant");
});

test("family past its absolute lifetime is refused", async () => {
  const short = basicAuth("short", "s");
  const first = await login("bob", { client: "short" });
  // Within its lifetime, refresh works (and does not extend the absolute end).
  const b = await refreshOk(first.refresh_token, short);
  await new Promise((r) => setTimeout(r, 3500));
  await assertError(await refresh(b.refresh_token, short), 400, "invalid_grant");
});

test("refresh_token_absolute_expiration must be a positive integer", async () => {
  for (const bad of [0, -5, "30d", 1.5]) {
    const r = await w.admin("PUT", "/Client/bad-abs", {
      ...REG, auth: { password: { refresh_token: true, refresh_token_absolute_expiration: bad } },
    });
    assert.equal(r.status, 422, `${JSON.stringify(bad)}: ${r.status} ${await r.text()}`);
  }
});

test("refresh after the user was deactivated is refused", async () => {
  const { refresh_token } = await login("eve");
  await put(w, "/User/eve", { email: "eve@example.com", password: "pass123", active: false });
  await assertError(await refresh(refresh_token), 400, "invalid_grant");
  await put(w, "/User/eve", { email: "eve@example.com", password: "pass123" });
});

test("refresh after the client lost the password grant, was narrowed, or was deactivated is refused", async () => {
  await put(w, "/Client/app2", { ...REG });
  const auth = basicAuth("app2", "s");
  const rt = (await login("john", { client: "app2", scope: "read write" })).refresh_token;
  // The edits below leave `secret` out (the stored hash is kept): sending a secret is a
  // credential change, which ends the client's refresh families by itself
  // (attacks-lifecycle.test.mjs).
  const { secret: _kept, ...noSecret } = REG;
  // Narrowed scope list: the family's `read write` is refused.
  await put(w, "/Client/app2", { ...noSecret, scope: ["read", "offline_access"] });
  await assertError(await refresh(rt, auth), 400, "invalid_scope");
  // Lost grant type.
  await put(w, "/Client/app2", { ...noSecret, grant_types: ["client_credentials"] });
  await assertError(await refresh(rt, auth), 400, "invalid_grant");
  // Deactivated client.
  await put(w, "/Client/app2", { ...noSecret, active: false });
  await assertError(await refresh(rt, auth), 401, "invalid_client");
});
