// Issue 7 item 6 in workerd: no-store on every response that carries a token or a secret, the
// security headers of every HTML page (static under www/ and generated), CORS only for
// registered origins (also on answers forwarded from the origin), and logout that a bare GET
// cannot trigger.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { startWorker, startOrigin, basicAuth, form, json, FORM, ROOT } from "./harness.mjs";

const CB = "https://spa.example/callback";
const SPA = "https://spa.example";
const EVIL = "https://evil.example";
let w, origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  const put = async (p, b) => {
    const r = await w.admin("PUT", p, b);
    assert.ok([200, 201].includes(r.status), `${p}: ${r.status} ${await r.text()}`);
  };
  // A public SPA (its redirect origin is registered for CORS) and a confidential client.
  await put("/Client/spa", {
    grant_types: ["authorization_code", "implicit"], first_party: true,
    auth: { authorization_code: { redirect_uri: CB }, implicit: { redirect_uri: CB } },
  });
  await put("/Client/web", {
    secret: "web-secret-e2e", grant_types: ["password", "client_credentials", "basic"],
    auth: { password: { refresh_token: true } },
  });
  await put("/User/john", { email: "john@example.com", password: "john-pass-e2e" });
  await put("/AccessPolicy/john", { engine: "allow", link: [{ id: "john", resourceType: "User" }] });
  await put("/AccessPolicy/web", { engine: "allow", link: [{ id: "web", resourceType: "Client" }] });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

const web = basicAuth("web", "web-secret-e2e");

function assertNoStore(name, res) {
  const cc = res.headers.get("cache-control") ?? "";
  assert.ok(cc.split(",").some((d) => d.trim() === "no-store"), `${name}: ${res.status} Cache-Control ${cc}`);
  assert.equal(res.headers.get("pragma"), "no-cache", `${name}: ${res.status} Pragma`);
}

async function passwordTokens() {
  const r = await w.fetch("/auth/token", {
    method: "POST",
    headers: { ...FORM, authorization: web },
    body: form({ grant_type: "password", username: "john", password: "john-pass-e2e", scope: "openid" }),
  });
  const body = await json(r);
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}

/** Signs in like the login page and returns the session cookie header and the redirect. */
async function signIn(query) {
  const ctx = await w.fetch(`/auth/interaction?${query}`);
  assert.equal(ctx.status, 200);
  assertNoStore("interaction", ctx);
  const { csrf } = await ctx.json();
  const csrfCookie = ctx.headers.get("set-cookie").split(";")[0];
  const login = await w.fetch("/auth/login", {
    method: "POST",
    headers: { ...FORM, cookie: csrfCookie },
    body: form({ username: "john", password: "john-pass-e2e", csrf, query }),
  });
  assert.equal(login.status, 303);
  assertNoStore("login", login);
  const session = login.headers.getSetCookie().find((c) => c.startsWith("edge_session=")).split(";")[0];
  return { cookie: `${csrfCookie}; ${session}`, location: login.headers.get("location") };
}

test("every token- or secret-bearing response is no-store + Pragma: no-cache", async () => {
  const t = await passwordTokens();
  const bearer = { authorization: `Bearer ${t.access_token}` };
  const cases = [
    ["token", () => w.fetch("/auth/token", { method: "POST", headers: { ...FORM, authorization: web }, body: form({ grant_type: "client_credentials" }) }), 200],
    ["token error", () => w.fetch("/auth/token", { method: "POST", headers: { ...FORM, authorization: basicAuth("web", "nope") }, body: form({ grant_type: "client_credentials" }) }), 401],
    ["refresh", () => w.fetch("/auth/token", { method: "POST", headers: { ...FORM, authorization: web }, body: form({ grant_type: "refresh_token", refresh_token: t.refresh_token }) }), 200],
    ["introspect", () => w.fetch("/auth/introspect", { method: "POST", headers: { ...FORM, authorization: web }, body: form({ token: t.access_token }) }), 200],
    ["userinfo", () => w.fetch("/auth/userinfo", { headers: bearer }), 200],
    ["userinfo error", () => w.fetch("/auth/userinfo"), 401],
    ["admin read Client", () => w.admin("GET", "/Client/web"), 200],
    ["admin list User", () => w.admin("GET", "/User"), 200],
    ["admin write Client", () => w.admin("PUT", "/Client/tmp", { secret: "tmp-secret", grant_types: ["basic"] }), 201],
    ["admin delete Client", () => w.admin("DELETE", "/Client/tmp"), 200],
    ["admin error", () => w.fetch("/Client/web"), 401],
    ["unknown endpoint", () => w.fetch("/auth/nothing"), 404],
    ["session", () => w.fetch("/auth/session"), 200],
    ["logout", () => w.fetch("/auth/logout"), 303],
    ["revoke", () => w.fetch("/auth/revoke", { method: "POST", headers: { ...FORM, authorization: web }, body: form({ token: t.access_token }) }), 200],
    ["API error", () => w.fetch("/Patient", { headers: bearer }), 401],
  ];
  for (const [name, call, status] of cases) {
    const r = await call();
    await r.arrayBuffer();
    assert.equal(r.status, status, name);
    assertNoStore(name, r);
  }
  // The implicit redirect carries a token in its Location.
  const q = new URLSearchParams({ response_type: "token", client_id: "spa", redirect_uri: CB, state: "s" }).toString();
  const { cookie, location } = await signIn(q);
  assert.match(location, /#access_token=/);
  const again = await w.fetch(`/auth/authorize?${q}`, { headers: { cookie } });
  assert.match(again.headers.get("location"), /#access_token=/);
  assertNoStore("implicit authorize", again);
  // Discovery and JWKS are public and cacheable.
  const jwks = await w.fetch("/.well-known/jwks.json");
  assert.match(jwks.headers.get("cache-control"), /max-age=300/);
});

function htmlFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? htmlFiles(path.join(dir, e.name)) : e.name.endsWith(".html") ? [path.join(dir, e.name)] : [],
  );
}

function assertPageHeaders(name, res) {
  const csp = res.headers.get("content-security-policy") ?? "";
  assert.match(csp, /frame-ancestors 'none'/, `${name}: ${csp}`);
  assert.match(csp, /default-src 'none'/, `${name}: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline/, `${name}: ${csp}`);
  assert.equal(res.headers.get("x-frame-options"), "DENY", name);
  assert.equal(res.headers.get("referrer-policy"), "no-referrer", name);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff", name);
  assert.match(res.headers.get("content-type") ?? "", /^text\/html/, name);
}

test("every page under www/ and every generated page has CSP, frame-ancestors, referrer, nosniff", async () => {
  const www = path.join(ROOT, "www");
  const files = htmlFiles(www);
  assert.ok(files.length >= 6, files.join(", "));
  for (const f of files) {
    const rel = path.relative(www, f).split(path.sep).join("/");
    const url = rel === "app/index.html" ? "/app/" : `/${rel}`;
    const r = await w.fetch(url);
    const body = await r.text();
    assert.equal(r.status, 200, url);
    assert.equal(body, readFileSync(f, "utf8"), `${url} is the file`);
    assertPageHeaders(url, r);
  }
  for (const url of ["/auth/authorize?response_type=code&client_id=nobody", `/auth/authorize?response_type=code&client_id=spa&redirect_uri=${encodeURIComponent(EVIL)}`]) {
    const r = await w.fetch(url);
    await r.text();
    assert.equal(r.status, 400, url);
    assertPageHeaders(url, r);
    assertNoStore(url, r);
  }
});

const preflight = (p, o) =>
  w.fetch(p, { method: "OPTIONS", headers: { origin: o, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" } });

test("CORS: preflights and answers only for registered origins, also on forwarded answers", async () => {
  for (const p of ["/auth/token", "/auth/userinfo", "/auth/revoke", "/Patient"]) {
    const ok = await preflight(p, SPA);
    assert.equal(ok.status, 204, p);
    assert.equal(ok.headers.get("access-control-allow-origin"), SPA, p);
    assert.match(ok.headers.get("access-control-allow-headers"), /authorization/);
    assert.equal(ok.headers.get("access-control-max-age"), "600");
    assert.match(ok.headers.get("vary"), /Origin/);
    assert.equal(ok.headers.get("access-control-allow-credentials"), null);
    const bad = await preflight(p, EVIL);
    assert.equal(bad.status, 403, p);
    assert.equal(bad.headers.get("access-control-allow-origin"), null, p);
    assert.equal((await bad.json()).error, "forbidden");
  }
  const tok = (o) => w.fetch("/auth/token", { method: "POST", headers: { ...FORM, origin: o, authorization: web }, body: form({ grant_type: "client_credentials" }) });
  const ok = await tok(SPA);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("access-control-allow-origin"), SPA);
  assert.match(ok.headers.get("vary"), /Origin/);
  const bad = await tok(EVIL);
  assert.equal(bad.headers.get("access-control-allow-origin"), null);
  // Forwarded to the origin: our CORS decision on its answer.
  origin.reset();
  const api = (o) => w.fetch("/Patient", { headers: { origin: o, authorization: web } });
  const fwd = await api(SPA);
  assert.equal(fwd.status, 200);
  assert.equal(fwd.headers.get("x-from-origin"), "yes");
  assert.equal(fwd.headers.get("access-control-allow-origin"), SPA);
  assert.match(fwd.headers.get("vary") ?? "", /Origin/);
  const fwdBad = await api(EVIL);
  assert.equal(fwdBad.status, 200);
  assert.equal(fwdBad.headers.get("access-control-allow-origin"), null);
  assert.equal(origin.requests.length, 2, "preflights never reach the origin");
  // Discovery is public.
  const disc = await w.fetch("/.well-known/openid-configuration", { headers: { origin: EVIL } });
  assert.equal(disc.headers.get("access-control-allow-origin"), "*");
});

test("logout: a bare GET only asks; POST with the CSRF token or a valid id_token_hint ends the session", async () => {
  const verifier = randomBytes(32).toString("base64url");
  const q = new URLSearchParams({
    response_type: "code", client_id: "spa", redirect_uri: CB,
    code_challenge: createHash("sha256").update(verifier).digest("base64url"), code_challenge_method: "S256",
  }).toString();
  const signedIn = async (cookie) => (await w.fetch(`/auth/authorize?${q}`, { headers: { cookie } })).headers.get("location").startsWith(CB);

  const { cookie } = await signIn(q);
  assert.ok(await signedIn(cookie));
  const get = await w.fetch("/auth/logout", { headers: { cookie } });
  assert.equal(get.status, 303);
  assert.equal(get.headers.get("location"), "/auth/ui/logout.html");
  assert.ok(await signedIn(cookie), "a GET ended the session");
  const noToken = await w.fetch("/auth/logout", { method: "POST", headers: { ...FORM, cookie }, body: "" });
  assert.equal(noToken.headers.get("location"), "/auth/ui/logout.html#error=csrf");
  assert.ok(await signedIn(cookie));
  const ctx = await json(await w.fetch("/auth/session", { headers: { cookie } }));
  assert.equal(ctx.user.id, "john");
  const post = await w.fetch("/auth/logout", { method: "POST", headers: { ...FORM, cookie }, body: form({ csrf: ctx.csrf }) });
  assert.equal(post.headers.get("location"), "/auth/ui/logged-out.html");
  assert.ok(!(await signedIn(cookie)), "the session survived the confirmed logout");

  const second = await signIn(q);
  const { id_token } = await passwordTokens();
  const hinted = await w.fetch(`/auth/logout?id_token_hint=${id_token}`, { headers: { cookie: second.cookie } });
  assert.equal(hinted.headers.get("location"), "/auth/ui/logged-out.html");
  assert.ok(!(await signedIn(second.cookie)));
});
