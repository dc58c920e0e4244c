// Issue 17, native apps (RFC 8252) and pushed authorization requests (RFC 9126), against the
// built Worker: private-use scheme and loopback redirects (any port on 127.0.0.1 and [::1]),
// several redirect URIs per client, PKCE required for native redirects, POST /auth/par and the
// authorization endpoint's request_uri (single use, bound to its client), and the attacks on
// each (docs/attack-corpus.md, "Native apps and PAR").
//
//   node --test --test-concurrency=1 tests/e2e/native-apps.test.mjs      (after the Worker build)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign as nodeSign, randomUUID } from "node:crypto";
import { startWorker, basicAuth, json, FORM, form } from "./harness.mjs";
import { assertError, put, pkce, cookies, interaction, postLogin, postConsent, authorizeQuery, tokenPost } from "./attacks-lib.mjs";

const APP_CB = "com.example.app:/callback";
const APP_CB2 = "com.example.app:/oauth2redirect";
const LOOP_CB = "http://127.0.0.1/callback";
const LOOP6_CB = "http://[::1]/callback";
const CONF_CB = "https://conf.example/cb";
const LOCAL_CB = "http://localhost:8000/cb";
const CONF = basicAuth("conf", "conf-secret");

const ecKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
let w;

before(async () => {
  w = await startWorker();
  const pub = (redirect_uri, extra = {}) => ({
    grant_types: ["authorization_code"],
    first_party: true,
    scope: ["openid", "profile"],
    auth: { authorization_code: { redirect_uri } },
    ...extra,
  });
  await put(w, "/Client/native", pub([APP_CB, APP_CB2, LOOP_CB, LOOP6_CB]));
  await put(w, "/Client/single", pub("com.example.single:/cb"));
  await put(w, "/Client/local", pub(LOCAL_CB));
  await put(w, "/Client/third-native", pub("com.example.third:/cb", { first_party: false, name: "Third" }));
  await put(w, "/Client/par-only", pub("com.example.par:/cb", { require_pushed_authorization_requests: true }));
  await put(w, "/Client/conf", { ...pub(CONF_CB), secret: "conf-secret" });
  await put(w, "/Client/conf-loop", { ...pub("http://127.0.0.1/cb"), secret: "loop-secret" });
  await put(w, "/Client/conf-loop-port", { ...pub("http://127.0.0.1:6001/cb"), secret: "loop-secret" });
  await put(w, "/Client/native-imp", {
    grant_types: ["implicit"],
    first_party: true,
    auth: { implicit: { redirect_uri: "com.example.imp:/cb" } },
  });
  await put(w, "/Client/jwt-app", {
    ...pub("https://jwt.example/cb"),
    jwks: { keys: [{ ...ecKey.publicKey.export({ format: "jwk" }), kid: "k1", alg: "ES256" }] },
  });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
});

/** A private_key_jwt assertion of `jwt-app` (RFC 7523) with this `aud`. */
function assertion(aud, jti = randomUUID()) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: "ES256", kid: "k1", typ: "JWT" })}.${b64({ iss: "jwt-app", sub: "jwt-app", aud, exp: now + 120, jti })}`;
  const sig = nodeSign("sha256", Buffer.from(input), { key: ecKey.privateKey, dsaEncoding: "ieee-p1363" });
  return `${input}.${sig.toString("base64url")}`;
}
after(() => w?.dispose());

const q = (over = {}) =>
  authorizeQuery({ response_type: "code", client_id: "native", redirect_uri: APP_CB, scope: "openid", state: "st", ...over });

/** Signs john in for `query`; returns the Location of the login's 303 and the cookie jar. */
async function signIn(query, jar = {}) {
  const i = await interaction(w, query, jar);
  const res = await postLogin(w, { query, csrf: i.csrf, jar: i.jar });
  assert.equal(res.status, 303, `login answered ${res.status}: ${await res.text()}`);
  return { location: res.headers.get("location"), jar: { ...i.jar, ...cookies(res) }, csrf: i.csrf };
}

/** The code in a redirect Location to `base` (query form), checking `state`. */
function codeAt(location, base, state = "st") {
  assert.ok(location.startsWith(`${base}?`), `redirected to ${location}, expected ${base}?...`);
  const u = new URL(location);
  assert.equal(u.searchParams.get("state"), state);
  const code = u.searchParams.get("code");
  assert.ok(code, `no code in ${location}`);
  return code;
}

const redeem = (client_id, code, verifier, redirect_uri, auth) =>
  tokenPost(w, { grant_type: "authorization_code", code, code_verifier: verifier, redirect_uri, ...(auth ? {} : { client_id }) }, { auth });

/** The local 400 page of /auth/authorize: no redirect anywhere. */
async function assertLocalRefusal(res, error = "invalid_request") {
  const text = await res.text();
  assert.equal(res.status, 400, `expected a local 400 page, got ${res.status} ${res.headers.get("location")}: ${text.slice(0, 200)}`);
  assert.equal(res.headers.get("location"), null, "refused request was redirected");
  assert.match(text, new RegExp(error));
}

/** An error redirect to the (verified) client redirect. */
function assertErrorRedirect(res, base, error, fragment = false) {
  assert.equal(res.status, 303, `expected an error redirect, got ${res.status}`);
  const loc = res.headers.get("location");
  assert.ok(loc.startsWith(`${base}${fragment ? "#" : "?"}`), `redirected to ${loc}`);
  const params = new URLSearchParams(loc.slice(base.length + 1));
  assert.equal(params.get("error"), error, loc);
  assert.equal(params.get("code"), null);
}

const par = (params, { auth } = {}) =>
  w.fetch("/auth/par", { method: "POST", headers: { ...FORM, ...(auth ? { authorization: auth } : {}) }, body: form(params) });

async function pushed(params, opts) {
  const res = await par(params, opts);
  const body = await json(res);
  assert.equal(res.status, 201, JSON.stringify(body));
  assert.match(res.headers.get("cache-control") ?? "", /no-store/);
  assert.match(body.request_uri, /^urn:ietf:params:oauth:request_uri:[A-Za-z0-9_-]{43}$/);
  assert.equal(body.expires_in, 60);
  return body.request_uri;
}

describe("registration: private-use schemes, loopback, several redirect URIs", () => {
  test("com.example.app:/callback (string, Aidbox's shape) and a list register; the list reads back as stored", async () => {
    await put(w, "/Client/reg-string", { grant_types: ["authorization_code"], auth: { authorization_code: { redirect_uri: APP_CB } } });
    const list = [APP_CB, "http://127.0.0.1:8080/cb", "https://app.example/cb"];
    await put(w, "/Client/reg-list", { grant_types: ["authorization_code"], auth: { authorization_code: { redirect_uri: list }, implicit: { redirect_uri: ["https://app.example/i"] } } });
    const body = await json(await w.admin("GET", "/Client/reg-list"));
    assert.deepEqual(body.auth.authorization_code.redirect_uri, list);
  });

  for (const [name, uri] of [
    ["javascript:", "javascript:alert(1)"],
    ["data:", "data:text/html,<script>alert(1)</script>"],
    ["file:", "file:///etc/passwd"],
    ["vbscript:", "vbscript:msgbox(1)"],
    ["about:", "about:blank"],
    ["blob:", "blob:https://app.example/x"],
    ["a scheme without a dot", "myapp://callback"],
    ["an upper-case scheme", "Com.Example.App:/callback"],
    ["a scheme with nothing after it", "com.example.app:"],
    ["userinfo before a loopback host", "http://127.0.0.1:80@evil.com/cb"],
    ["plain http on a public host", "http://app.example/cb"],
    ["a fragment", "com.example.app:/cb#x"],
  ]) {
    test(`redirect_uri with ${name} -> 422 naming the field`, async () => {
      const res = await w.admin("PUT", "/Client/bad-reg", { grant_types: ["authorization_code"], auth: { authorization_code: { redirect_uri: uri } } });
      const body = await assertError(res, 422, "invalid_resource");
      assert.equal(body.field, "auth.authorization_code.redirect_uri");
    });
  }

  test("a list with one bad entry -> 422 naming that entry; an empty list and a non-string -> 422", async () => {
    let res = await w.admin("PUT", "/Client/bad-reg", { grant_types: ["implicit"], auth: { implicit: { redirect_uri: ["https://ok.example/cb", "javascript:alert(1)"] } } });
    assert.equal((await assertError(res, 422, "invalid_resource")).field, "auth.implicit.redirect_uri.1");
    res = await w.admin("PUT", "/Client/bad-reg", { grant_types: ["implicit"], auth: { implicit: { redirect_uri: [] } } });
    assert.equal((await assertError(res, 422, "invalid_resource")).field, "auth.implicit.redirect_uri");
    res = await w.admin("PUT", "/Client/bad-reg", { grant_types: ["implicit"], auth: { implicit: { redirect_uri: [7] } } });
    assert.equal((await assertError(res, 422, "invalid_resource")).field, "auth.implicit.redirect_uri.0");
    assert.equal((await w.admin("GET", "/Client/bad-reg")).status, 404);
  });
});

describe("native redirects: the code flow", () => {
  test("private-use scheme com.example.app:/callback: code + PKCE, redeemed with the same redirect_uri", async () => {
    const { verifier, challenge } = pkce();
    const query = q({ code_challenge: challenge, code_challenge_method: "S256" });
    const start = await w.fetch(`/auth/authorize?${query}`);
    assert.equal(start.status, 303);
    assert.ok(start.headers.get("location").startsWith("/auth/ui/login.html?"));
    // The login page lets its form end in a redirect to the app's scheme, and only that.
    const page = await w.fetch(`/auth/ui/login.html?${query}`);
    await page.arrayBuffer();
    assert.match(page.headers.get("content-security-policy") ?? "", /form-action 'self' com\.example\.app:;/);
    const { location } = await signIn(query);
    const code = codeAt(location, APP_CB);
    const res = await redeem("native", code, verifier, APP_CB);
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.ok(body.access_token);
  });

  test("the second registered redirect com.example.app:/oauth2redirect works too", async () => {
    const { verifier, challenge } = pkce();
    const { location } = await signIn(q({ redirect_uri: APP_CB2, code_challenge: challenge }));
    assert.equal((await redeem("native", codeAt(location, APP_CB2), verifier, APP_CB2)).status, 200);
  });

  test("loopback 127.0.0.1 registered without a port: the port the OS gave matches; the redirect goes there; the token request must repeat it", async () => {
    const used = "http://127.0.0.1:51234/callback";
    const { verifier, challenge } = pkce();
    const { location } = await signIn(q({ redirect_uri: used, code_challenge: challenge }));
    const code = codeAt(location, used);
    // The code is bound to the redirect actually used, not to the registered form.
    await assertError(await redeem("native", code, verifier, LOOP_CB), 400, "invalid_grant");
    await assertError(await redeem("native", code, verifier, "http://127.0.0.1:51235/callback"), 400, "invalid_grant");
    assert.equal((await redeem("native", code, verifier, used)).status, 200);
  });

  test("loopback [::1] on any port", async () => {
    const used = "http://[::1]:40001/callback";
    const { verifier, challenge } = pkce();
    const { location } = await signIn(q({ redirect_uri: used, code_challenge: challenge }));
    assert.equal((await redeem("native", codeAt(location, used), verifier, used)).status, 200);
  });

  test("localhost stays exact: the registered port works", async () => {
    const { verifier, challenge } = pkce();
    const { location } = await signIn(q({ client_id: "local", redirect_uri: LOCAL_CB, code_challenge: challenge }));
    assert.equal((await redeem("local", codeAt(location, LOCAL_CB), verifier, LOCAL_CB)).status, 200);
  });

  test("no redirect_uri: the single registered one; with several registered -> local 400", async () => {
    const { challenge } = pkce();
    const { location } = await signIn(q({ client_id: "single", redirect_uri: null, code_challenge: challenge }));
    codeAt(location, "com.example.single:/cb");
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${q({ redirect_uri: null, code_challenge: challenge })}`));
  });
});

describe("attacks: native redirect matching", () => {
  const { challenge } = pkce();
  for (const [name, client_id, uri] of [
    ["port differs on a non-loopback https host", "conf", "https://conf.example:8443/cb"],
    ["port differs on localhost (exact)", "local", "http://localhost:8001/cb"],
    ["localhost for a registered 127.0.0.1", "native", "http://localhost:51234/callback"],
    ["127.0.0.1 for a registered localhost", "local", "http://127.0.0.1:8000/cb"],
    ["[::1] for a registered 127.0.0.1 path", "conf-loop", "http://[::1]:5000/cb"],
    ["loopback path with a trailing slash", "native", "http://127.0.0.1:5000/callback/"],
    ["loopback path in upper case", "native", "http://127.0.0.1:5000/CALLBACK"],
    ["loopback path percent-encoded", "native", "http://127.0.0.1:5000/%63allback"],
    ["loopback with an added query", "native", "http://127.0.0.1:5000/callback?next=https://evil.example"],
    ["loopback with dot segments", "native", "http://127.0.0.1:5000/callback/../evil"],
    ["loopback userinfo trick 127.0.0.1:80@evil.com", "native", "http://127.0.0.1:80@evil.com/callback"],
    ["loopback userinfo trick 127.0.0.1@evil.com", "native", "http://127.0.0.1@evil.com/callback"],
    ["loopback host as a subdomain", "native", "http://127.0.0.1.evil.com:5000/callback"],
    ["loopback with an empty port", "native", "http://127.0.0.1:/callback"],
    ["loopback port out of range", "native", "http://127.0.0.1:65536/callback"],
    ["loopback over https", "native", "https://127.0.0.1:5000/callback"],
    ["HTTP in upper case on loopback", "native", "HTTP://127.0.0.1:5000/callback"],
    ["private-use scheme in upper case", "native", "COM.EXAMPLE.APP:/callback"],
    ["private-use path percent-encoded", "native", "com.example.app:/%63allback"],
    ["private-use path with a trailing slash", "native", "com.example.app:/callback/"],
    ["private-use with an authority", "native", "com.example.app://callback"],
    ["another app's private-use scheme", "native", "com.example.single:/cb"],
  ]) {
    test(`authorize with ${name} -> local 400, no redirect`, async () => {
      await assertLocalRefusal(await w.fetch(`/auth/authorize?${q({ client_id, redirect_uri: uri, code_challenge: challenge })}`));
    });
  }

  test("private-use scheme without PKCE -> error redirect invalid_request (RFC 8252 8.1), no code", async () => {
    assertErrorRedirect(await w.fetch(`/auth/authorize?${q()}`), APP_CB, "invalid_request");
  });

  test("loopback redirect of a confidential client without PKCE -> error redirect invalid_request", async () => {
    const used = "http://127.0.0.1:6000/cb";
    assertErrorRedirect(await w.fetch(`/auth/authorize?${q({ client_id: "conf-loop", redirect_uri: used })}`), used, "invalid_request");
  });

  test("positive control: a confidential client's loopback redirect registered with its port goes without PKCE (the seed tutorial's web app in development)", async () => {
    const used = "http://127.0.0.1:6001/cb";
    const { location } = await signIn(q({ client_id: "conf-loop-port", redirect_uri: used }));
    const code = codeAt(location, used);
    const res = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: used }, { auth: basicAuth("conf-loop-port", "loop-secret") });
    assert.equal(res.status, 200);
    // The same client on another port (the any-port rule) is a native app's redirect: PKCE.
    const other = "http://127.0.0.1:6002/cb";
    assertErrorRedirect(await w.fetch(`/auth/authorize?${q({ client_id: "conf-loop-port", redirect_uri: other })}`), other, "invalid_request");
  });

  test("plain code_challenge_method on a private-use redirect -> invalid_request", async () => {
    assertErrorRedirect(await w.fetch(`/auth/authorize?${q({ code_challenge: "x".repeat(43), code_challenge_method: "plain" })}`), APP_CB, "invalid_request");
  });

  test("implicit (no PKCE possible) to a private-use scheme -> unsupported_response_type in the fragment", async () => {
    const query = authorizeQuery({ response_type: "token", client_id: "native-imp", redirect_uri: "com.example.imp:/cb", state: "st" });
    assertErrorRedirect(await w.fetch(`/auth/authorize?${query}`), "com.example.imp:/cb", "unsupported_response_type", true);
  });

  test("positive control: a confidential client's https redirect still goes without PKCE", async () => {
    const { location } = await signIn(q({ client_id: "conf", redirect_uri: CONF_CB }));
    const code = codeAt(location, CONF_CB);
    const res = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CONF_CB }, { auth: CONF });
    assert.equal(res.status, 200);
  });
});

describe("pushed authorization requests (RFC 9126)", () => {
  test("discovery names the PAR endpoint and does not require PAR globally", async () => {
    for (const p of ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]) {
      const body = await json(await w.fetch(p));
      assert.equal(body.pushed_authorization_request_endpoint, `${w.url}/auth/par`, p);
      assert.equal(body.require_pushed_authorization_requests, false, p);
    }
  });

  test("public client: push, authorize with client_id + request_uri only (other parameters ignored), sign in, redeem", async () => {
    const { verifier, challenge } = pkce();
    const request_uri = await pushed({ client_id: "native", response_type: "code", redirect_uri: APP_CB, scope: "openid", state: "pushed", code_challenge: challenge, code_challenge_method: "S256" });
    // RFC 9126 4: everything but client_id and request_uri is ignored; an attacker's redirect too.
    const query = authorizeQuery({ client_id: "native", request_uri, redirect_uri: "https://evil.example/cb", state: "evil" });
    const start = await w.fetch(`/auth/authorize?${query}`);
    assert.equal(start.status, 303);
    assert.ok(start.headers.get("location").startsWith("/auth/ui/login.html?"));
    const { location, jar } = await signIn(query);
    const code = codeAt(location, APP_CB, "pushed");
    assert.equal((await redeem("native", code, verifier, APP_CB)).status, 200);

    // Replay of the used request_uri, with the signed-in session or without: refused.
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${query}`, { headers: { cookie: Object.entries(jar).map(([k, v]) => `${k}=${v}`).join("; ") } }), "invalid_request_uri");
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${query}`), "invalid_request_uri");
  });

  test("request_uri replay with a signed-in session: the first authorize gets the code, the second is refused", async () => {
    const { challenge } = pkce();
    const first = await signIn(q({ code_challenge: challenge }));
    codeAt(first.location, APP_CB);
    const cookie = Object.entries(first.jar).map(([k, v]) => `${k}=${v}`).join("; ");
    const request_uri = await pushed({ client_id: "native", response_type: "code", redirect_uri: APP_CB, state: "st", code_challenge: challenge });
    const query = authorizeQuery({ client_id: "native", request_uri });
    const one = await w.fetch(`/auth/authorize?${query}`, { headers: { cookie } });
    codeAt(one.headers.get("location"), APP_CB);
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${query}`, { headers: { cookie } }), "invalid_request_uri");
  });

  test("through the consent page (third-party client): login, consent, one code", async () => {
    const { verifier, challenge } = pkce();
    const request_uri = await pushed({ client_id: "third-native", response_type: "code", redirect_uri: "com.example.third:/cb", scope: "openid profile", state: "st", code_challenge: challenge });
    const query = authorizeQuery({ client_id: "third-native", request_uri });
    const { location, jar, csrf } = await signIn(query);
    assert.ok(location.startsWith("/auth/ui/consent.html?"), location);
    const ctx = await interaction(w, query, jar);
    assert.deepEqual(ctx.body.scopes.map((s) => s.scope), ["openid", "profile"]);
    const res = await postConsent(w, { query, csrf: ctx.csrf ?? csrf, jar: ctx.jar });
    assert.equal(res.status, 303);
    const code = codeAt(res.headers.get("location"), "com.example.third:/cb");
    assert.equal((await redeem("third-native", code, verifier, "com.example.third:/cb")).status, 200);
    // Consent again with the same request_uri: refused, no second code.
    const again = await postConsent(w, { query, csrf: ctx.csrf, jar: ctx.jar });
    assert.equal(again.status, 400);
    assert.equal(again.headers.get("location"), null);
  });

  test("another client's request_uri -> local 400; the owner can still use it", async () => {
    const { challenge } = pkce();
    const request_uri = await pushed({ client_id: "native", response_type: "code", redirect_uri: APP_CB, state: "st", code_challenge: challenge });
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${authorizeQuery({ client_id: "single", request_uri })}`), "invalid_request_uri");
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${authorizeQuery({ request_uri })}`));
    const ok = await w.fetch(`/auth/authorize?${authorizeQuery({ client_id: "native", request_uri })}`);
    assert.equal(ok.status, 303);
  });

  test("a request_uri we never issued -> local 400", async () => {
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${authorizeQuery({ client_id: "native", request_uri: "urn:ietf:params:oauth:request_uri:made-up" })}`), "invalid_request_uri");
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${authorizeQuery({ client_id: "native", request_uri: "https://evil.example/req" })}`), "invalid_request_uri");
  });

  test("confidential client: Basic auth pushes; wrong secret, no secret, unknown client -> 401 invalid_client", async () => {
    const params = { response_type: "code", redirect_uri: CONF_CB, state: "st" };
    await pushed(params, { auth: CONF });
    await pushed({ ...params, client_id: "conf", client_secret: "conf-secret" });
    await assertError(await par(params, { auth: basicAuth("conf", "wrong") }), 401, "invalid_client");
    await assertError(await par({ ...params, client_id: "conf", client_secret: "wrong" }), 401, "invalid_client");
    await assertError(await par({ ...params, client_id: "conf" }), 401, "invalid_client");
    await assertError(await par({ ...params, client_id: "nobody" }), 401, "invalid_client");
    await assertError(await par(params), 401, "invalid_client");
    await assertError(await par({ ...params, client_id: "native" }, { auth: CONF }), 400, "invalid_request");
  });

  test("private_key_jwt at the PAR endpoint: aud may be the issuer, the token endpoint or the PAR endpoint (RFC 9126 2); another aud or a replayed jti -> 401", async () => {
    const params = { response_type: "code", redirect_uri: "https://jwt.example/cb", state: "st", code_challenge: pkce().challenge, client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" };
    for (const aud of [w.url, `${w.url}/auth/token`, `${w.url}/auth/par`, [w.url, "https://other.example"]]) {
      await pushed({ ...params, client_assertion: assertion(aud) });
    }
    await assertError(await par({ ...params, client_assertion: assertion("https://evil.example") }), 401, "invalid_client");
    const once = assertion(w.url);
    await pushed({ ...params, client_assertion: once });
    await assertError(await par({ ...params, client_assertion: once }), 401, "invalid_client");
  });

  test("pushed parameters are validated now, with RFC 6749 errors", async () => {
    const { challenge } = pkce();
    const base = { client_id: "native", response_type: "code", redirect_uri: APP_CB, code_challenge: challenge };
    await assertError(await par({ ...base, redirect_uri: "com.evil.app:/cb" }), 400, "invalid_request");
    await assertError(await par({ ...base, redirect_uri: "http://localhost:51234/callback" }), 400, "invalid_request");
    await assertError(await par({ ...base, response_type: "bogus" }), 400, "unsupported_response_type");
    await assertError(await par({ ...base, response_type: "token" }), 400, "invalid_request");
    await assertError(await par({ ...base, scope: "system/*.write" }), 400, "invalid_scope");
    await assertError(await par({ ...base, code_challenge: null }), 400, "invalid_request");
    await assertError(await par({ ...base, code_challenge_method: "plain" }), 400, "invalid_request");
    await assertError(await par({ ...base, request: "eyJhbGciOiJub25lIn0.e30." }), 400, "request_not_supported");
    await assertError(await par({ ...base, request_uri: "urn:ietf:params:oauth:request_uri:x" }), 400, "invalid_request");
    await assertError(await par({ ...base, client_id: "nobody" }), 401, "invalid_client");
    const get = await w.fetch("/auth/par");
    assert.equal(get.status, 405);
    await get.arrayBuffer();
  });

  test("require_pushed_authorization_requests: a plain authorize -> local 400; the pushed one works", async () => {
    const { challenge } = pkce();
    const plain = authorizeQuery({ response_type: "code", client_id: "par-only", redirect_uri: "com.example.par:/cb", state: "st", code_challenge: challenge });
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${plain}`));
    const request_uri = await pushed({ client_id: "par-only", response_type: "code", redirect_uri: "com.example.par:/cb", state: "st", code_challenge: challenge });
    const { location } = await signIn(authorizeQuery({ client_id: "par-only", request_uri }));
    codeAt(location, "com.example.par:/cb");
  });

  test("an expired request_uri (never brought within 60 s) -> local 400", { timeout: 90_000 }, async () => {
    const { challenge } = pkce();
    const request_uri = await pushed({ client_id: "native", response_type: "code", redirect_uri: APP_CB, state: "st", code_challenge: challenge });
    await new Promise((r) => setTimeout(r, 61_500));
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${authorizeQuery({ client_id: "native", request_uri })}`), "invalid_request_uri");
  });
});
