// Issue 14, the admin console: the built-in public client `console` and the pages at /console/.
// The console adds no new way in: its token is judged by AccessPolicies like any caller's, the
// admin API ignores cookies (no CSRF), the client id cannot be borrowed or stored, and the pages
// carry the strict CSP.
//
//   node --test --test-concurrency=1 tests/e2e/console.test.mjs
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, json, basicAuth } from "./harness.mjs";
import { put, pkce, interaction, postLogin, cookies, cookieHeader, authorizeQuery, tokenPost } from "./attacks-lib.mjs";

describe("admin console: the built-in client and its pages", () => {
  let w;
  let CB;
  before(async () => {
    w = await startWorker();
    CB = `${w.url}/console/callback.html`;
    await put(w, "/User/admin", { email: "admin@example.com", password: "adminpass1" });
    await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
    // The policy docs/console.md documents: admin may use the API through the console.
    await put(w, "/AccessPolicy/admin-console", {
      engine: "matcho",
      matcho: { client: { id: "console" } },
      link: [{ reference: "User/admin" }],
    });
    await put(w, "/Client/other", {
      grant_types: ["authorization_code"],
      first_party: true,
      auth: { authorization_code: { redirect_uri: "http://localhost:9/cb" } },
    });
  });
  after(() => w?.dispose());

  const consoleQuery = (over = {}) =>
    authorizeQuery({ response_type: "code", client_id: "console", redirect_uri: CB, scope: "openid profile", state: "st", ...over });

  /** Signs `username` in for `query`; returns the 303's Location and the session jar. */
  async function login(query, username, password) {
    const { csrf, jar } = await interaction(w, query);
    const res = await postLogin(w, { query, csrf, jar, username, password });
    assert.equal(res.status, 303, `login answered ${res.status}: ${await res.text()}`);
    return { location: new URL(res.headers.get("location"), w.url), jar: { ...jar, ...cookies(res) } };
  }

  /** A console access token for `username` (code + PKCE, no secret). */
  async function consoleToken(username, password) {
    const { verifier, challenge } = pkce();
    const { location, jar } = await login(consoleQuery({ code_challenge: challenge, code_challenge_method: "S256" }), username, password);
    assert.equal(location.origin + location.pathname, CB, `redirected to ${location}`);
    const res = await tokenPost(w, { grant_type: "authorization_code", code: location.searchParams.get("code"), redirect_uri: CB, client_id: "console", code_verifier: verifier });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    return { body, jar };
  }

  const adminGet = (path, headers) => w.fetch(path, { headers: { accept: "application/json", ...headers } });

  test("positive control: the admin's console token lists clients (200), short-lived, no refresh token", async () => {
    const { body } = await consoleToken("admin", "adminpass1");
    assert.ok(body.expires_in <= 900, `expires_in ${body.expires_in}`);
    assert.equal(body.refresh_token, undefined, "the console must get no refresh token");
    const res = await adminGet("/Client", { authorization: `Bearer ${body.access_token}` });
    assert.equal(res.status, 200, await res.text());
  });

  test("a non-admin user's console token -> 403 on every admin call", async () => {
    const { body } = await consoleToken("john", "pass123");
    for (const [method, path, payload] of [
      ["GET", "/Client"],
      ["GET", "/AccessPolicy"],
      ["POST", "/Client", { id: "x1", grant_types: ["basic"], secret: "s" }],
      ["PUT", "/AccessPolicy/mine", { engine: "allow", link: [{ reference: "User/john" }] }],
      ["DELETE", "/AccessPolicy/admin-console"],
    ]) {
      const res = await w.fetch(path, {
        method,
        headers: { authorization: `Bearer ${body.access_token}`, "content-type": "application/json", accept: "application/json" },
        body: payload ? JSON.stringify(payload) : undefined,
      });
      const b = await json(res);
      assert.equal(res.status, 403, `${method} ${path}: ${JSON.stringify(b)}`);
      assert.equal(b.error, "forbidden", JSON.stringify(b));
    }
    assert.equal((await w.admin("GET", "/AccessPolicy/admin-console")).status, 200, "the admin policy is still there");
  });

  test("CSRF: the admin API ignores cookies — a signed-in admin's session cookie alone -> 401", async () => {
    const { jar } = await consoleToken("admin", "adminpass1");
    assert.ok(jar.edge_session, "expected a login session cookie");
    const res = await w.fetch("/Client", {
      method: "POST",
      headers: { cookie: cookieHeader(jar), "content-type": "application/json", origin: "https://evil.example", "sec-fetch-site": "cross-site" },
      body: JSON.stringify({ id: "csrf-made", grant_types: ["basic"], secret: "s" }),
    });
    assert.equal(res.status, 401, await res.text());
    assert.equal((await w.admin("GET", "/Client/csrf-made")).status, 404, "the cross-site post created a client");
  });

  test("the console client id cannot be stored, replaced or given a secret -> 422", async () => {
    for (const [method, path] of [["PUT", "/Client/console"], ["POST", "/Client"]]) {
      const res = await w.admin(method, path, { id: "console", grant_types: ["basic", "client_credentials"], secret: "mine" });
      const b = await json(res);
      assert.equal(res.status, 422, `${method} ${path}: ${JSON.stringify(b)}`);
      assert.equal(b.field, "id");
    }
  });

  test("client_credentials / Basic as console (no secret exists) -> 401", async () => {
    const cc = await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("console", "anything") });
    assert.equal(cc.status, 401, await cc.text());
    const basic = await adminGet("/Client", { authorization: basicAuth("console", "") });
    assert.equal(basic.status, 401, await basic.text());
  });

  test("console with another redirect_uri -> local 400, no redirect; without PKCE -> error to the callback", async () => {
    const evil = await w.fetch(`/auth/authorize?${consoleQuery({ redirect_uri: "https://evil.example/console/callback.html" })}`, { redirect: "manual" });
    assert.equal(evil.status, 400);
    assert.equal(evil.headers.get("location"), null);
    const noPkce = await w.fetch(`/auth/authorize?${consoleQuery()}`, { redirect: "manual" });
    assert.equal(noPkce.status, 303);
    const to = new URL(noPkce.headers.get("location"));
    assert.equal(to.origin + to.pathname, CB);
    assert.equal(to.searchParams.get("error"), "invalid_request");
  });

  test("console: implicit (response_type=token) -> local 400; offline_access, clinical scopes -> invalid_scope", async () => {
    // The console registers no implicit redirect URI: refused on our own page, nothing redirected.
    const implicit = await w.fetch(`/auth/authorize?${consoleQuery({ response_type: "token" })}`, { redirect: "manual" });
    assert.equal(implicit.status, 400);
    assert.equal(implicit.headers.get("location"), null);
    for (const [over, error] of [
      [{ scope: "openid offline_access", code_challenge: pkce().challenge, code_challenge_method: "S256" }, "invalid_scope"],
      [{ scope: "openid patient/*.cruds", code_challenge: pkce().challenge, code_challenge_method: "S256" }, "invalid_scope"],
    ]) {
      const res = await w.fetch(`/auth/authorize?${consoleQuery(over)}`, { redirect: "manual" });
      assert.equal(res.status, 303, JSON.stringify(over));
      const to = new URL(res.headers.get("location"));
      assert.equal(to.origin + to.pathname, CB);
      const params = to.searchParams;
      assert.equal(params.get("error"), error, `${JSON.stringify(over)} -> ${to}`);
      assert.equal(params.get("code"), null);
    }
  });

  test("another client's code cannot be redeemed as console (client id trick) -> invalid_grant", async () => {
    const { verifier, challenge } = pkce();
    const { location } = await login(
      authorizeQuery({ response_type: "code", client_id: "other", redirect_uri: "http://localhost:9/cb", state: "s", code_challenge: challenge, code_challenge_method: "S256" }),
      "admin",
      "adminpass1",
    );
    const code = location.searchParams.get("code");
    assert.ok(code, `no code in ${location}`);
    const asConsole = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, client_id: "console", code_verifier: verifier });
    const b = await json(asConsole);
    assert.equal(asConsole.status, 400, JSON.stringify(b));
    assert.equal(b.error, "invalid_grant");
  });

  test("another client's token for the admin user is not a console token -> 403", async () => {
    const { verifier, challenge } = pkce();
    const { location } = await login(
      authorizeQuery({ response_type: "code", client_id: "other", redirect_uri: "http://localhost:9/cb", state: "s", code_challenge: challenge, code_challenge_method: "S256" }),
      "admin",
      "adminpass1",
    );
    const res = await tokenPost(w, { grant_type: "authorization_code", code: location.searchParams.get("code"), redirect_uri: "http://localhost:9/cb", client_id: "other", code_verifier: verifier });
    const { access_token } = await json(res);
    assert.ok(access_token);
    const api = await adminGet("/Client", { authorization: `Bearer ${access_token}` });
    assert.equal(api.status, 403, await api.text());
  });

  test("a revoked console token -> 401", async () => {
    const { body } = await consoleToken("admin", "adminpass1");
    const r = await w.fetch("/auth/revoke", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: body.access_token, client_id: "console" }),
    });
    assert.equal(r.status, 200, await r.text());
    const api = await adminGet("/Client", { authorization: `Bearer ${body.access_token}` });
    assert.equal(api.status, 401, await api.text());
  });

  test("/console/ pages carry the strict CSP and the security headers; no other paths", async () => {
    for (const path of ["/console/", "/console/index.html", "/console/callback.html", "/console/console.js", "/console/debug.js", "/console/console.css"]) {
      const res = await w.fetch(path);
      await res.arrayBuffer();
      assert.equal(res.status, 200, path);
      const csp = res.headers.get("content-security-policy") ?? "";
      for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'self'"]) {
        assert.ok(csp.includes(d), `${path}: CSP lacks ${d}: ${csp}`);
      }
      assert.ok(!csp.includes("unsafe-inline"), `${path}: ${csp}`);
      assert.equal(res.headers.get("x-frame-options"), "DENY", path);
      assert.equal(res.headers.get("referrer-policy"), "no-referrer", path);
    }
    for (const path of ["/console/nope.js", "/console/%2e%2e%2fwrangler.toml", "/console/a/b.js", "/console/.hidden"]) {
      const res = await w.fetch(path);
      await res.arrayBuffer();
      assert.ok([404, 400].includes(res.status), `${path}: ${res.status}`);
    }
    const post = await w.fetch("/console/", { method: "POST" });
    assert.equal(post.status, 405);
  });
});
