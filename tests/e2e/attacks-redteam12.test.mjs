// Red-teaming issue 12 (token lifecycle and abuse resistance) against the built Worker in
// workerd: holes found in its fixes, each with the case that showed it and a positive control.
// docs/attack-corpus.md, "Found by red-teaming issue 12".
//
//   node --test --test-concurrency=1 tests/e2e/attacks-redteam12.test.mjs      (after the build)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { randomBytes } from "node:crypto";
import { startWorker, startOrigin, basicAuth, decodeJwt, json } from "./harness.mjs";
import { assertError, assertInvalidTokenChallenge, put, tokenPost } from "./attacks-lib.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const PW = basicAuth("pw", "pw-secret");
let origin, w;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  await put(w, "/Client/pw", {
    secret: "pw-secret", grant_types: ["password"], scope: ["openid", "patient/*.rs", "user/*.rs"],
    auth: { password: { refresh_token: true } },
  });
  await put(w, "/AccessPolicy/smart-pw", { engine: "smart-on-fhir", link: [{ id: "pw", resourceType: "Client" }] });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

async function signIn(username, scope) {
  const res = await tokenPost(w, { grant_type: "password", username, password: "pass123", scope }, { auth: PW });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

async function apiStatus(token, path) {
  origin.reset();
  const res = await w.fetch(path, { headers: { authorization: `Bearer ${token}` } });
  if (res.status === 401) {
    assertInvalidTokenChallenge(res);
    await assertError(res, 401, "invalid_token");
    assert.equal(origin.requests.length, 0, "a refused request reached the origin");
  } else {
    await res.arrayBuffer();
  }
  return res.status;
}

test("a new isolate reads every revocation page when the first one holds an expired, not yet swept, revocation", async () => {
  // The Durable Object left expired rows out of a page: 4,999 of 5,000 looked like the end of
  // the feed, the isolate thought itself caught up and answered "not revoked" for every
  // revocation on the pages it had not read (200, the origin reached) until it polled them.
  const wr = await startWorker({ originUrl: origin.url });
  try {
    await put(wr, "/Client/svc", { secret: "svc-secret", grant_types: ["client_credentials"] });
    await put(wr, "/AccessPolicy/all", { engine: "allow" });
    const cc = async () =>
      (await json(await tokenPost(wr, { grant_type: "client_credentials" }, { auth: basicAuth("svc", "svc-secret") }))).access_token;
    const revoked = await cc();
    const live = await cc();
    const ns = await wr.miniflare.getDurableObjectNamespace("STATE");
    const stub = ns.get(ns.idFromName("auth-state"));
    const now = Math.floor(Date.now() / 1000);
    // First in the feed: one revocation that ends in 2 s; then 5,100 live ones, the stolen
    // token's on the second page. Nothing is revoked after the first one expires, so no sweep
    // removes it.
    const items = [[randomBytes(16).toString("base64url"), now + 2]];
    for (let i = 0; i < 5_100; i++) {
      items.push([i === 5_050 ? decodeJwt(revoked).payload.jti : randomBytes(16).toString("base64url"), now + 3600]);
    }
    const seeded = await stub.fetch("https://auth-state.internal/op", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ op: "revoke_many", items }),
    });
    assert.equal(seeded.status, 200, await seeded.text());
    await sleep(3_500);
    origin.reset();
    const res = await wr.fetch("/Patient", { headers: { authorization: `Bearer ${revoked}` } });
    assertInvalidTokenChallenge(res);
    await assertError(res, 401, "invalid_token");
    assert.equal(origin.requests.length, 0, "the revoked token reached the origin");
    // Control: a live token passes, and the revoked one stays refused while the rest is read.
    const ok = await wr.fetch("/Patient", { headers: { authorization: `Bearer ${live}` } });
    assert.equal(ok.status, 200, await ok.text());
    for (let i = 0; i < 3; i++) {
      const again = await wr.fetch("/Patient", { headers: { authorization: `Bearer ${revoked}` } });
      assert.equal(again.status, 401);
      await again.arrayBuffer();
    }
  } finally {
    await wr.dispose();
  }
});

test("relinking a patient user to another Patient ends their tokens (the old patient is no longer reached)", async () => {
  await put(w, "/User/anna", { password: "pass123", fhirUser: "Patient/pt-2" });
  const t = await signIn("anna", "patient/*.rs");
  assert.equal(decodeJwt(t.access_token).payload.patient, "pt-2");
  assert.equal(await apiStatus(t.access_token, "/Patient/pt-2"), 200);
  // The admin fixes a wrong link: anna is Patient/pt-9, not pt-2.
  await put(w, "/User/anna", { fhirUser: "Patient/pt-9" });
  assert.equal(await apiStatus(t.access_token, "/Patient/pt-2"), 401, "the old link's token still reads pt-2");
  await assertError(
    await tokenPost(w, { grant_type: "refresh_token", refresh_token: t.refresh_token }, { auth: PW }),
    400, "invalid_grant",
  );
  // Control: her new token is for her new patient.
  const fresh = await signIn("anna", "patient/*.rs");
  assert.equal(decodeJwt(fresh.access_token).payload.patient, "pt-9");
  assert.equal(await apiStatus(fresh.access_token, "/Patient/pt-9"), 200);
});

test("a practitioner whose fhirUser is removed loses the user/ tokens it was granted for", async () => {
  await put(w, "/User/dr", { password: "pass123", fhirUser: "Practitioner/pr-1" });
  const t = await signIn("dr", "user/*.rs");
  assert.equal(await apiStatus(t.access_token, "/Observation"), 200);
  await put(w, "/User/dr", {});
  assert.equal(await apiStatus(t.access_token, "/Observation"), 401, "user/ scopes outlived the fhirUser they need");
});

test("control: a PUT that keeps fhirUser (GET-edit-PUT) keeps the user's tokens", async () => {
  await put(w, "/User/eve", { password: "pass123", fhirUser: "Patient/pt-5" });
  const t = await signIn("eve", "patient/*.rs");
  const doc = await json(await w.admin("GET", "/User/eve"));
  doc.name = { givenName: "Eve" };
  await put(w, "/User/eve", doc);
  assert.equal(await apiStatus(t.access_token, "/Patient/pt-5"), 200);
  const res = await tokenPost(w, { grant_type: "refresh_token", refresh_token: t.refresh_token }, { auth: PW });
  assert.equal(res.status, 200, await res.text());
});

test("our refresh token sent as a bearer token is refused without being shown to the default opaque introspector", async () => {
  const calls = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      calls.push(new URLSearchParams(body).get("token"));
      res.writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ active: true, sub: "ext-user", exp: Math.floor(Date.now() / 1000) + 600 }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    await put(w, "/TokenIntrospector/default", { type: "opaque", introspection_endpoint: { url: `http://127.0.0.1:${server.address().port}/i` } });
    await put(w, "/AccessPolicy/ext", { engine: "matcho", matcho: { jwt: { sub: "ext-user" } } });
    await put(w, "/User/rt-user", { password: "pass123" });
    const t = await signIn("rt-user", "openid");
    calls.length = 0;
    assert.equal(await apiStatus(t.refresh_token, "/Patient"), 401);
    assert.deepEqual(calls, [], "our refresh token was sent to another issuer's introspection endpoint");
    // Control: the refresh token still refreshes, and a foreign opaque token is still introspected.
    const res = await tokenPost(w, { grant_type: "refresh_token", refresh_token: t.refresh_token }, { auth: PW });
    assert.equal(res.status, 200, await res.text());
    assert.equal(await apiStatus("foreign_opaque_token_1", "/Patient"), 200);
    assert.deepEqual(calls, ["foreign_opaque_token_1"]);
  } finally {
    await w.admin("DELETE", "/TokenIntrospector/default");
    server.close();
  }
});

test("two different client-secret guesses never share a throttle fingerprint (a secret holding the candidates' separator)", async () => {
  // One check in flight per distinct guess: with LOGIN_MAX_FAILURES=1, a second guess while
  // the first is being checked waits (429). Basic `x%0Ay` tries `x%0Ay` and `x\ny`; a
  // client_secret_post of `x%0Ay\nx\ny` is a third secret, but the candidates joined with
  // "\n" made it the same fingerprint: counted as the same guess, checked too.
  const wt = await startWorker({
    originUrl: origin.url,
    vars: { LOGIN_MAX_FAILURES: "1", LOGIN_ADDRESS_MAX_FAILURES: "1000", PBKDF2_ITERATIONS: "100000" },
  });
  try {
    const statuses = [];
    for (let round = 0; round < 6; round++) {
      const id = `c${round}`;
      await put(wt, `/Client/${id}`, { secret: "the-real-secret", grant_types: ["client_credentials"] });
      const basic = tokenPost(wt, { grant_type: "client_credentials" }, { auth: "Basic " + Buffer.from(`${id}:x%0Ay`).toString("base64") });
      const post = tokenPost(wt, { grant_type: "client_credentials", client_id: id, client_secret: "x%0Ay\nx\ny" });
      const [a, b] = await Promise.all([basic, post]);
      await a.arrayBuffer();
      await b.arrayBuffer();
      statuses.push([a.status, b.status]);
    }
    for (const [a, b] of statuses) {
      assert.ok([a, b].includes(429), `both different guesses were checked at once: ${JSON.stringify(statuses)}`);
      assert.ok([a, b].every((s) => s === 401 || s === 429), JSON.stringify(statuses));
    }
  } finally {
    await wt.dispose();
  }
});
