// Issue 14, red team: the built-in `console` client, the policy tester, the token inspector and
// /Session attacked as a hostile caller would (docs/attack-corpus.md "Issue 14 — red team").
// Holes found and closed here: a `Client/console` stored before the upgrade (its policies would
// apply to every console sign-in), `/Session` answering CORS to registered origins, a session
// hidden from `/Session` by 200 newer sign-ins. The other
// cases were already refused; their tests keep them so.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-redteam14.test.mjs
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, json, basicAuth } from "./harness.mjs";
import { put, pkce, interaction, postLogin, cookies, authorizeQuery, tokenPost } from "./attacks-lib.mjs";

async function consoleSignIn(w, username, password) {
  const CB = `${w.url}/console/callback.html`;
  const { verifier, challenge } = pkce();
  const query = authorizeQuery({ response_type: "code", client_id: "console", redirect_uri: CB, scope: "openid profile", state: "st", code_challenge: challenge, code_challenge_method: "S256" });
  const { csrf, jar } = await interaction(w, query);
  const res = await postLogin(w, { query, csrf, jar, username, password });
  assert.equal(res.status, 303, `login answered ${res.status}: ${await res.text()}`);
  const location = new URL(res.headers.get("location"), w.url);
  assert.equal(location.origin + location.pathname, CB, `redirected to ${location}`);
  return { code: location.searchParams.get("code"), verifier, CB, jar: { ...jar, ...cookies(res) } };
}

describe("a Client/console stored before the upgrade", () => {
  let w;
  before(async () => {
    w = await startWorker();
    // Before the console existed, `console` was an ordinary confidential client (an ops
    // script), and a policy linked to it let it do anything.
    const kv = await w.miniflare.getKVNamespace("RESOURCES");
    await kv.put("Client/console", JSON.stringify({ resourceType: "Client", id: "console", grant_types: ["basic"], secret_hash: "pbkdf2$legacy" }));
    await put(w, "/AccessPolicy/legacy-console", { engine: "allow", link: [{ id: "console", resourceType: "Client" }] });
    await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
  });
  after(() => w?.dispose());

  test("HOLE (closed): the console is off while it exists; john cannot become admin through the old policy", async () => {
    const CB = `${w.url}/console/callback.html`;
    const { challenge } = pkce();
    const q = authorizeQuery({ response_type: "code", client_id: "console", redirect_uri: CB, scope: "openid", state: "s", code_challenge: challenge, code_challenge_method: "S256" });
    const res = await w.fetch(`/auth/authorize?${q}`);
    assert.equal(res.status, 400, `authorize answered ${res.status} ${res.headers.get("location")}`);
    assert.match(await res.text(), /DELETE \/Client\/console/);
    const tok = await tokenPost(w, { grant_type: "authorization_code", code: "x", redirect_uri: CB, client_id: "console", code_verifier: "a".repeat(43) });
    assert.equal(tok.status, 401, "the token endpoint does not know the console either");
  });

  test("the administrator can read and delete the leftover (never write it); then the console works", async () => {
    const got = await w.admin("GET", "/Client/console");
    const shown = await json(got);
    assert.equal(got.status, 200, JSON.stringify(shown));
    assert.equal(shown.secret_hash, undefined);
    const putRes = await w.admin("PUT", "/Client/console", { grant_types: ["basic"] });
    assert.equal(putRes.status, 422);
    const del = await w.admin("DELETE", "/Client/console");
    assert.equal(del.status, 200, await del.text());
    await w.admin("DELETE", "/AccessPolicy/legacy-console");
    const { code, verifier, CB } = await consoleSignIn(w, "john", "pass123");
    const res = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, client_id: "console", code_verifier: verifier });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    const list = await w.fetch("/Client", { headers: { authorization: `Bearer ${body.access_token}` } });
    assert.equal(list.status, 403, "john has no policy: the console grants nothing by itself");
  });
});

describe("console client, tester, inspector and /Session under attack", () => {
  let w;
  let origin;
  const OPS = basicAuth("ops", "s3cret-ops");
  before(async () => {
    origin = await startOrigin();
    w = await startWorker({ originUrl: origin.url });
    await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
    await put(w, "/User/mary", { email: "mary@example.com", password: "pass-mary-1" });
    await put(w, "/Client/spa", { grant_types: ["authorization_code"], auth: { authorization_code: { redirect_uri: "https://spa.example/cb" } } });
    await put(w, "/Client/basic", { secret: "s3cret-basic", grant_types: ["basic"] });
    await put(w, "/Client/app", { secret: "s3cret-app", grant_types: ["password", "authorization_code"], first_party: true, auth: { authorization_code: { redirect_uri: "https://app.example/cb" } } });
    await put(w, "/Client/ops", { secret: "s3cret-ops", grant_types: ["basic"] });
    await put(w, "/AccessPolicy/ops-debug", { engine: "matcho", link: [{ id: "ops", resourceType: "Client" }], matcho: { uri: "#^/auth/(test-policy|inspect-token)$", "request-method": "post" } });
    // john may see and end his own sessions, nobody else's.
    await put(w, "/AccessPolicy/own-sessions", { engine: "matcho", link: [{ id: "john", resourceType: "User" }], matcho: { uri: "/Session", params: { user: ".user.id" } } });
    await put(w, "/TokenIntrospector/hs", { type: "jwt", jwt: { iss: "https://hs.example", secret: "hs-secret-value-0123456789abcdef" } });
  });
  after(async () => {
    await w?.dispose();
    await origin?.dispose();
  });
  const tester = (body, auth = OPS) => w.fetch("/auth/test-policy", { method: "POST", headers: { authorization: auth, "content-type": "application/json" }, body: JSON.stringify(body) });

  test("HOLE (closed): /Session answers no CORS to a registered origin (admin API: same-origin only)", async () => {
    const pre = await w.fetch("/Session?user=john", { method: "OPTIONS", headers: { origin: "https://spa.example", "access-control-request-method": "DELETE", "access-control-request-headers": "authorization" } });
    assert.equal(pre.headers.get("access-control-allow-origin"), null, `preflight ${pre.status} allowed the origin`);
    const get = await w.fetch("/Session?user=john", { headers: { origin: "https://spa.example", authorization: basicAuth("root", w.adminSecret) } });
    assert.equal(get.status, 200);
    assert.equal(get.headers.get("access-control-allow-origin"), null);
    // Positive control: the protected API still answers CORS to it.
    const api = await w.fetch("/Patient", { method: "OPTIONS", headers: { origin: "https://spa.example", "access-control-request-method": "GET" } });
    assert.equal(api.headers.get("access-control-allow-origin"), "https://spa.example");
  });

  test("closed: a console code goes only to this origin's callback (X-Forwarded-Host, foreign redirect_uri)", async () => {
    const { challenge } = pkce();
    const evil = authorizeQuery({ response_type: "code", client_id: "console", redirect_uri: "https://evil.example/console/callback.html", state: "s", code_challenge: challenge, code_challenge_method: "S256" });
    const r1 = await w.fetch(`/auth/authorize?${evil}`, { headers: { "x-forwarded-host": "evil.example", forwarded: "host=evil.example" } });
    assert.equal(r1.status, 400, "a foreign callback is never registered for console");
    const noUri = authorizeQuery({ response_type: "code", client_id: "console", state: "s", code_challenge: challenge, code_challenge_method: "S256" });
    const r2 = await w.fetch(`/auth/authorize?${noUri}`, { headers: { "x-forwarded-host": "evil.example" } });
    const loc = r2.headers.get("location") ?? "";
    assert.ok(!loc.includes("evil.example"), `redirected to ${loc}`);
  });

  test("closed: a console code is not redeemable by another client, nor without its verifier", async () => {
    const { code, verifier, CB } = await consoleSignIn(w, "john", "pass123");
    const other = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier }, { auth: basicAuth("app", "s3cret-app") });
    assert.equal(other.status, 400);
    assert.equal((await json(other)).error, "invalid_grant");
    const wrong = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, client_id: "console", code_verifier: "b".repeat(43) });
    assert.equal((await json(wrong)).error, "invalid_grant");
    // A refused attempt does not burn the code: the console still redeems it, once.
    const ok = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, client_id: "console", code_verifier: verifier });
    assert.equal(ok.status, 200);
    const again = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, client_id: "console", code_verifier: verifier });
    assert.equal((await json(again)).error, "invalid_grant");
  });

  test("closed: password, client_credentials, refresh and implicit as console are refused", async () => {
    const pw = await tokenPost(w, { grant_type: "password", client_id: "console", username: "john", password: "pass123" });
    assert.ok([400, 401].includes(pw.status), `password: ${pw.status}`);
    const cc = await tokenPost(w, { grant_type: "client_credentials", client_id: "console" });
    assert.ok([400, 401].includes(cc.status), `client_credentials: ${cc.status}`);
    const basic = await w.fetch("/Patient", { headers: { authorization: basicAuth("console", "") } });
    assert.equal(basic.status, 401);
    const rt = await tokenPost(w, { grant_type: "refresh_token", client_id: "console", refresh_token: "x.y" });
    assert.ok([400, 401].includes(rt.status), `refresh: ${rt.status}`);
    const { challenge } = pkce();
    const imp = await w.fetch(`/auth/authorize?${authorizeQuery({ response_type: "token", client_id: "console", state: "s", code_challenge: challenge })}`);
    assert.equal(imp.status, 400, "no implicit redirect URI is registered for console");
  });

  test("closed: the tester's Basic guesses count against the same throttle as the API's", async () => {
    for (let i = 0; i < 5; i++) {
      const res = await tester({ request: { uri: "/Patient", headers: { authorization: basicAuth("basic", `wrong-${i}`) } } });
      const body = await json(res);
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.decision.outcome, "refuse");
    }
    const direct = await w.fetch("/Patient", { headers: { authorization: basicAuth("basic", "wrong-direct") } });
    assert.equal(direct.status, 429, "five tester guesses must count");
  });

  test("closed: simulating root or an admin through the tester leaks no secret and reaches nothing", async () => {
    const before = origin.requests.length;
    for (const request of [
      { uri: "/Client/app", "client-id": "root" },
      { uri: "/User/mary", "user-id": "mary" },
      { uri: "//evil.example/x", "client-id": "root" },
      { uri: "/%43lient/app", "client-id": "root" },
      { uri: "/TokenIntrospector/hs", "client-id": "root" },
    ]) {
      const res = await tester({ request });
      const text = await res.text();
      assert.ok([200, 400, 422].includes(res.status), `${request.uri}: ${res.status} ${text}`);
      for (const s of ["s3cret", "pass-mary-1", "hs-secret-value", "pbkdf2", "secret_hash", "password_hash"]) {
        assert.ok(!text.includes(s), `${request.uri}: the answer shows ${s}`);
      }
    }
    assert.equal(origin.requests.length, before, "the tester forwarded something");
    const absolute = await tester({ request: { uri: "https://evil.example/Patient", "client-id": "root" } });
    assert.equal(absolute.status, 422);
    const page = await tester({ request: { uri: "/console/index.html", "client-id": "root" } });
    assert.equal(page.status, 422, "the console's pages are served by the Worker: no policy decides them");
  });

  test("closed: the inspector shows no introspector secret and no refresh secret", async () => {
    const { code, verifier, CB } = await consoleSignIn(w, "john", "pass123");
    const tok = await json(await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, client_id: "console", code_verifier: verifier }));
    const res = await w.fetch("/auth/inspect-token", { method: "POST", headers: { authorization: OPS, "content-type": "application/json" }, body: JSON.stringify({ token: tok.access_token }) });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.verification.active, true);
    assert.equal(body.verification.client, "console");
    // The built-in console client has a credential generation of its own (none): a console token
    // is not reported as one whose client's credentials changed.
    assert.equal(body.revocation["credentials-changed"], false, JSON.stringify(body.revocation));
    const text = JSON.stringify(body);
    assert.ok(!text.includes("hs-secret-value"));
  });

  test("HOLE (closed): 200 more sign-ins cannot hide a session from DELETE /Session?user= (the oldest is signed out)", async () => {
    await put(w, "/User/many", { email: "many@example.com", password: "pass-many-1" });
    const first = await consoleSignIn(w, "many", "pass-many-1");
    const listed = await (await w.admin("GET", "/Session?user=many")).json();
    assert.equal(listed.total, 1);
    const firstId = listed.entry[0].resource.id;
    for (let i = 0; i < 200; i++) await consoleSignIn(w, "many", "pass-many-1");
    const after = await (await w.admin("GET", "/Session?user=many")).json();
    assert.equal(after.total, 200);
    assert.ok(!after.entry.some((e) => e.resource.id === firstId));
    const hidden = await w.admin("GET", `/Session/${firstId}`);
    assert.equal(hidden.status, 404, "a session missing from the list must not live on");
    // Its cookie no longer signs in: the login page is shown again.
    const { challenge } = pkce();
    const q = authorizeQuery({ response_type: "code", client_id: "console", redirect_uri: first.CB, state: "s", code_challenge: challenge, code_challenge_method: "S256" });
    const res = await w.fetch(`/auth/authorize?${q}`, { headers: { cookie: Object.entries(first.jar).map(([k, v]) => `${k}=${v}`).join("; ") } });
    assert.ok(!(res.headers.get("location") ?? "").includes("code="), `the old session still signs in: ${res.headers.get("location")}`);
    const ended = await (await w.admin("DELETE", "/Session?user=many")).json();
    assert.equal(ended.total, 200);
  });

  test("closed: /Session for another user by a user allowed only for himself", async () => {
    await consoleSignIn(w, "mary", "pass-mary-1");
    const { jar } = await consoleSignIn(w, "john", "pass123");
    assert.ok(jar);
    const john = await json(await tokenPost(w, { grant_type: "password", username: "john", password: "pass123" }, { auth: basicAuth("app", "s3cret-app") }));
    const auth = { authorization: `Bearer ${john.access_token}` };
    const own = await w.fetch("/Session?user=john", { headers: auth });
    assert.equal(own.status, 200, "positive control");
    const maryList = await (await w.admin("GET", "/Session?user=mary")).json();
    assert.ok(maryList.total >= 1);
    const maryId = maryList.entry[0].resource.id;
    for (const [method, path] of [
      ["GET", "/Session?user=mary"],
      ["DELETE", "/Session?user=mary"],
      ["DELETE", "/Session?user=john&user=mary"],
      ["DELETE", "/Session?user=john&%75ser=mary"],
      ["DELETE", `/Session/${maryId}`],
      ["DELETE", `/Session/${maryId}?user=john`],
      ["GET", `/Session/${maryId}?user=john`],
    ]) {
      const res = await w.fetch(path, { method, headers: auth });
      assert.ok([400, 403, 404].includes(res.status), `${method} ${path}: ${res.status}`);
    }
    const still = await (await w.admin("GET", "/Session?user=mary")).json();
    assert.equal(still.total, maryList.total, "mary's sessions must survive");
    // Cookies alone are no credential on /Session (no CSRF).
    const csrf = await w.fetch("/Session?user=mary", { method: "DELETE", headers: { cookie: Object.entries(jar).map(([k, v]) => `${k}=${v}`).join("; ") } });
    assert.equal(csrf.status, 401);
  });
});
