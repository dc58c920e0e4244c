// Attack corpus, part 2 (issue 7 item 1): OAuth flows (RFC 6749 10, RFC 9700). Codes, redirect
// URIs, PKCE, refresh tokens, CSRF on the login and consent forms, state, grants a client may
// not use. Each case asserts the exact status and error AND the side effect: a replayed code
// revokes what it issued, a failed check does not burn the code or the refresh token, an error
// never redirects to an unregistered URI.
//
//   node --test tests/e2e/attacks-oauth.test.mjs      (after `make build`)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, basicAuth, json } from "./harness.mjs";
import {
  assertError,
  assertInvalidTokenChallenge,
  put,
  pkce,
  cookies,
  interaction,
  postLogin,
  postConsent,
  authorizeQuery,
  tokenPost,
} from "./attacks-lib.mjs";

const CB = "https://app.example/cb";
const OTHER_CB = "https://other.example/cb";
const THIRD_CB = "https://third.example/cb";
const SPA_CB = "https://spa.example/cb";
const WEB = basicAuth("web", "web-secret");
const OTHER = basicAuth("other", "other-secret");

let w;

before(async () => {
  w = await startWorker();
  const codeClient = (secret, redirect_uri, extra = {}) => ({
    ...(secret ? { secret } : {}),
    grant_types: ["authorization_code"],
    first_party: true,
    auth: { authorization_code: { redirect_uri, refresh_token: true } },
    ...extra,
  });
  await put(w, "/Client/web", codeClient("web-secret", CB));
  await put(w, "/Client/other", codeClient("other-secret", OTHER_CB));
  await put(w, "/Client/spa", codeClient(null, SPA_CB));
  await put(w, "/Client/third", codeClient("third-secret", THIRD_CB, { first_party: false, name: "Third Party" }));
  await put(w, "/Client/pw", { secret: "pw-secret", grant_types: ["password"] });
  await put(w, "/Client/public-pw", { grant_types: ["password", "client_credentials"] });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
  await put(w, "/AccessPolicy/john", { engine: "allow", link: [{ id: "john", resourceType: "User" }] });
});
after(() => w?.dispose());

/** Authorize query for `web` (PKCE S256 unless `challenge: null`). */
function webQuery(over = {}) {
  return authorizeQuery({
    response_type: "code",
    client_id: "web",
    redirect_uri: CB,
    scope: "openid profile",
    state: "st-1",
    ...over,
  });
}

/** Signs john in over plain HTTP for a first-party client; returns the redirect Location URL. */
async function signIn(query) {
  const { csrf, jar } = await interaction(w, query);
  const res = await postLogin(w, { query, csrf, jar });
  assert.equal(res.status, 303, `login answered ${res.status}: ${await res.text()}`);
  assert.match(res.headers.get("cache-control") ?? "", /no-store/, "a redirect carrying a code may be cached");
  return { location: new URL(res.headers.get("location"), w.url), jar: { ...jar, ...cookies(res) } };
}

/** A fresh code for `web` with PKCE; returns { code, verifier }. */
async function webCode(over = {}) {
  const { verifier, challenge } = pkce();
  const { location } = await signIn(webQuery({ code_challenge: challenge, code_challenge_method: "S256", ...over }));
  assert.equal(location.origin + location.pathname, over.redirect_uri ?? CB, `redirected to ${location}`);
  const code = location.searchParams.get("code");
  assert.ok(code, `no code in ${location}`);
  return { code, verifier };
}

const redeem = (code, verifier, { auth = WEB, redirect_uri = CB, extra = {} } = {}) =>
  tokenPost(
    w,
    {
      grant_type: "authorization_code",
      code,
      ...(redirect_uri === null ? {} : { redirect_uri }),
      ...(verifier ? { code_verifier: verifier } : {}),
      ...extra,
    },
    { auth },
  );

async function tokens(res) {
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

async function apiStatus(token) {
  const res = await w.fetch("/Patient", { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res;
}

/** The local error page of /auth/authorize: 400 HTML naming the error, never a redirect. */
async function assertLocalRefusal(res, error = "invalid_request") {
  const text = await res.text();
  assert.equal(res.status, 400, `expected a local 400 page, got ${res.status} ${res.headers.get("location")}: ${text.slice(0, 200)}`);
  assert.equal(res.headers.get("location"), null, "an untrusted redirect_uri was redirected to");
  assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(text, new RegExp(error));
}

// --- redirect URIs --------------------------------------------------------------------------------

/** [name, redirect_uri] that must not match the registered https://app.example/cb. */
export const REDIRECT_VARIANTS = [
  ["trailing slash", "https://app.example/cb/"],
  ["upper-case host", "https://APP.EXAMPLE/cb"],
  ["upper-case path", "https://app.example/CB"],
  ["extra query", "https://app.example/cb?next=https://evil.example"],
  ["empty query", "https://app.example/cb?"],
  ["userinfo", "https://attacker@app.example/cb"],
  ["host as userinfo of another host", "https://app.example@evil.example/cb"],
  ["other port", "https://app.example:8443/cb"],
  ["explicit default port", "https://app.example:443/cb"],
  ["fragment", "https://app.example/cb#frag"],
  ["http instead of https", "http://app.example/cb"],
  ["dot segments", "https://app.example/cb/../evil"],
  ["percent-encoded path", "https://app.example/%63b"],
  ["subdomain", "https://evil.app.example/cb"],
  ["suffix domain", "https://app.example.evil.example/cb"],
  ["another client's registered URI", OTHER_CB],
  ["javascript: scheme", "javascript:alert(1)//https://app.example/cb"],
  ["protocol-relative", "//evil.example/cb"],
  ["trailing whitespace", "https://app.example/cb "],
];

describe("attacks: redirect URI variants and open redirects", () => {
  for (const [name, uri] of REDIRECT_VARIANTS) {
    test(`authorize with redirect_uri ${name} -> 400 page, no redirect`, async () => {
      const { challenge } = pkce();
      await assertLocalRefusal(await w.fetch(`/auth/authorize?${webQuery({ redirect_uri: uri, code_challenge: challenge })}`));
    });
  }

  test("a signed-in user with a variant redirect_uri is not redirected either -> 400 page", async () => {
    const { jar } = await signIn(webQuery({ code_challenge: pkce().challenge }));
    const res = await w.fetch(`/auth/authorize?${webQuery({ redirect_uri: "https://app.example/cb/" })}`, {
      headers: { cookie: `edge_session=${jar.edge_session}` },
    });
    await assertLocalRefusal(res);
  });

  const OPEN_REDIRECTS = [
    ["unknown client_id", { client_id: "ghost", redirect_uri: "https://evil.example/" }],
    ["no client_id", { client_id: null, redirect_uri: "https://evil.example/" }],
    ["bad response_type with an unregistered redirect_uri", { response_type: "bogus", redirect_uri: "https://evil.example/" }],
    ["bad scope with an unregistered redirect_uri", { scope: "a\"b", redirect_uri: "https://evil.example/" }],
    ["plain PKCE with an unregistered redirect_uri", { code_challenge: "x".repeat(43), code_challenge_method: "plain", redirect_uri: "https://evil.example/" }],
  ];
  for (const [name, over] of OPEN_REDIRECTS) {
    test(`error path: ${name} -> 400 page, no redirect`, async () => {
      await assertLocalRefusal(await w.fetch(`/auth/authorize?${webQuery(over)}`));
    });
  }

  test("error path: redirect_uri sent twice (registered, then evil) -> 400 page, no redirect", async () => {
    const q = `${webQuery()}&redirect_uri=${encodeURIComponent("https://evil.example/")}`;
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${q}`));
  });

  test("error path: bad response_type with the registered URI redirects only there, with state and iss", async () => {
    const res = await w.fetch(`/auth/authorize?${webQuery({ response_type: "bogus" })}`);
    assert.equal(res.status, 303);
    const to = new URL(res.headers.get("location"));
    assert.equal(to.origin + to.pathname, CB);
    assert.equal(to.searchParams.get("error"), "unsupported_response_type");
    assert.equal(to.searchParams.get("state"), "st-1");
    assert.equal(to.searchParams.get("iss"), w.url);
    assert.equal(to.searchParams.get("code"), null);
  });

  test("login form posted with a query naming an evil redirect_uri -> 400 page, no session", async () => {
    const good = webQuery({ code_challenge: pkce().challenge });
    const { csrf, jar } = await interaction(w, good);
    const res = await postLogin(w, { query: webQuery({ redirect_uri: "https://evil.example/cb" }), csrf, jar });
    assert.equal(cookies(res).edge_session, undefined, "a session was created");
    await assertLocalRefusal(res);
  });

  test("consent form posted with a query naming an evil redirect_uri -> 400 page", async () => {
    const q = authorizeQuery({ response_type: "code", client_id: "third", redirect_uri: THIRD_CB, state: "s" });
    const { csrf, jar } = await interaction(w, q);
    const login = await postLogin(w, { query: q, csrf, jar });
    assert.equal(login.status, 303);
    const session = { ...jar, ...cookies(login) };
    const evil = authorizeQuery({ response_type: "code", client_id: "third", redirect_uri: "https://evil.example/cb", state: "s" });
    await assertLocalRefusal(await postConsent(w, { query: evil, csrf, jar: session, decision: "deny" }));
  });

  test("interaction API with an evil redirect_uri -> 400 invalid_request JSON", async () => {
    const res = await w.fetch(`/auth/interaction?${webQuery({ redirect_uri: "https://evil.example/cb" })}`);
    await assertError(res, 400, "invalid_request");
  });

  test("logout ignores post_logout_redirect_uri -> 303 to our own confirmation page", async () => {
    const res = await w.fetch("/auth/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F");
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), "/auth/ui/logout.html");
  });

  test("token endpoint: redirect_uri with a trailing slash -> 400 invalid_grant, code not burned", async () => {
    const { code, verifier } = await webCode();
    await assertError(await redeem(code, verifier, { redirect_uri: `${CB}/` }), 400, "invalid_grant");
    await tokens(await redeem(code, verifier));
  });

  test("token endpoint: redirect_uri left out when the request named it -> 400 invalid_request", async () => {
    const { code, verifier } = await webCode();
    await assertError(await redeem(code, verifier, { redirect_uri: null }), 400, "invalid_request");
    await tokens(await redeem(code, verifier));
  });
});

// --- authorization codes --------------------------------------------------------------------------

describe("attacks: authorization codes", () => {
  test("code replay -> 400 invalid_grant; the first redemption's access and refresh tokens are revoked", async () => {
    const { code, verifier } = await webCode({ scope: "openid offline_access" });
    const first = await tokens(await redeem(code, verifier));
    assert.ok(first.refresh_token);
    assert.equal((await apiStatus(first.access_token)).status, 200);
    await assertError(await redeem(code, verifier), 400, "invalid_grant");
    const api = await apiStatus(first.access_token);
    assertInvalidTokenChallenge(api);
    assert.equal(api.status, 401);
    await assertError(await tokenPost(w, { grant_type: "refresh_token", refresh_token: first.refresh_token }, { auth: WEB }), 400, "invalid_grant");
  });

  test("code from another client -> 400 invalid_grant; the code still works for its own client", async () => {
    const { code, verifier } = await webCode();
    await assertError(await redeem(code, verifier, { auth: OTHER, redirect_uri: CB }), 400, "invalid_grant");
    await assertError(await redeem(code, verifier, { auth: OTHER, redirect_uri: OTHER_CB }), 400, "invalid_grant");
    await tokens(await redeem(code, verifier));
  });

  test("code with the right client id but a wrong secret -> 401 invalid_client, code not burned", async () => {
    const { code, verifier } = await webCode();
    const res = await redeem(code, verifier, { auth: basicAuth("web", "guess") });
    assert.match(res.headers.get("www-authenticate") ?? "", /^Basic/);
    await assertError(res, 401, "invalid_client");
    await tokens(await redeem(code, verifier));
  });

  test("a made-up code -> 400 invalid_grant", async () => {
    await assertError(await redeem("A".repeat(43), pkce().verifier), 400, "invalid_grant");
  });

  test("a code with injection characters -> 400 invalid_grant", async () => {
    await assertError(await redeem("../../rt/x' OR '1'='1\u0000", pkce().verifier), 400, "invalid_grant");
  });
});

// --- PKCE -----------------------------------------------------------------------------------------

describe("attacks: PKCE downgrade and mismatch (RFC 7636, RFC 9700 2.1.1)", () => {
  test("wrong code_verifier -> 400 invalid_grant; the code is not burned", async () => {
    const { code, verifier } = await webCode();
    await assertError(await redeem(code, pkce().verifier), 400, "invalid_grant");
    await tokens(await redeem(code, verifier));
  });

  test("the code_challenge sent back as the verifier -> 400 invalid_grant", async () => {
    const { verifier, challenge } = pkce();
    const { location } = await signIn(webQuery({ code_challenge: challenge, code_challenge_method: "S256" }));
    const code = location.searchParams.get("code");
    await assertError(await redeem(code, challenge), 400, "invalid_grant");
    await tokens(await redeem(code, verifier));
  });

  test("code_verifier left out -> 400 invalid_request; the code is not burned", async () => {
    const { code, verifier } = await webCode();
    await assertError(await redeem(code, null), 400, "invalid_request");
    await tokens(await redeem(code, verifier));
  });

  test("downgrade: a verifier for a code issued without a challenge -> 400 invalid_grant", async () => {
    const { location } = await signIn(webQuery());
    const code = location.searchParams.get("code");
    assert.ok(code);
    await assertError(await redeem(code, pkce().verifier), 400, "invalid_grant");
  });

  const SPA = (over) =>
    authorizeQuery({ response_type: "code", client_id: "spa", redirect_uri: SPA_CB, state: "s", ...over });

  const PKCE_REFUSALS = [
    ["public client without code_challenge", {}],
    ["code_challenge_method plain", { code_challenge: pkce().verifier, code_challenge_method: "plain" }],
    ["code_challenge_method S512", { code_challenge: pkce().challenge, code_challenge_method: "S512" }],
    ["code_challenge_method s256 (lower case)", { code_challenge: pkce().challenge, code_challenge_method: "s256" }],
    ["code_challenge too short", { code_challenge: "abc", code_challenge_method: "S256" }],
    ["code_challenge with invalid characters", { code_challenge: `${"a".repeat(42)}+`, code_challenge_method: "S256" }],
    ["code_challenge_method without a challenge", { code_challenge_method: "S256" }],
  ];
  for (const [name, over] of PKCE_REFUSALS) {
    test(`authorize: ${name} -> redirect to the registered URI with invalid_request, no code`, async () => {
      const res = await w.fetch(`/auth/authorize?${SPA(over)}`);
      await res.arrayBuffer();
      assert.equal(res.status, 303);
      const to = new URL(res.headers.get("location"));
      assert.equal(to.origin + to.pathname, SPA_CB);
      assert.equal(to.searchParams.get("error"), "invalid_request");
      assert.equal(to.searchParams.get("state"), "s");
      assert.equal(to.searchParams.get("code"), null);
    });
  }

  test("public client redeeming without a verifier (PKCE code) -> 400 invalid_request", async () => {
    const { verifier, challenge } = pkce();
    const { location } = await signIn(SPA({ code_challenge: challenge, code_challenge_method: "S256" }));
    const code = location.searchParams.get("code");
    await assertError(await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: SPA_CB, client_id: "spa" }), 400, "invalid_request");
    await tokens(await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: SPA_CB, client_id: "spa", code_verifier: verifier }));
  });
});

// --- refresh tokens -------------------------------------------------------------------------------

describe("attacks: refresh tokens (RFC 9700 4.14)", () => {
  async function family(scope = "openid profile offline_access") {
    const { code, verifier } = await webCode({ scope });
    return tokens(await redeem(code, verifier));
  }
  const refresh = (rt, { auth = WEB, scope } = {}) =>
    tokenPost(w, { grant_type: "refresh_token", refresh_token: rt, ...(scope ? { scope } : {}) }, { auth });

  test("reuse of a rotated refresh token -> 400 invalid_grant; the family and its access tokens are revoked", async () => {
    const t1 = await family();
    const t2 = await tokens(await refresh(t1.refresh_token));
    assert.notEqual(t2.refresh_token, t1.refresh_token);
    assert.equal((await apiStatus(t2.access_token)).status, 200);
    await assertError(await refresh(t1.refresh_token), 400, "invalid_grant");
    await assertError(await refresh(t2.refresh_token), 400, "invalid_grant");
    assert.equal((await apiStatus(t2.access_token)).status, 401);
    assert.equal((await apiStatus(t1.access_token)).status, 401);
  });

  test("refresh token of another client -> 400 invalid_grant; it still works for its own client", async () => {
    const t1 = await family();
    await assertError(await refresh(t1.refresh_token, { auth: OTHER }), 400, "invalid_grant");
    await tokens(await refresh(t1.refresh_token));
  });

  test("scope escalation on refresh -> 400 invalid_scope; the refresh token is not burned", async () => {
    const t1 = await family("openid offline_access");
    await assertError(await refresh(t1.refresh_token, { scope: "openid offline_access admin" }), 400, "invalid_scope");
    await assertError(await refresh(t1.refresh_token, { scope: "profile" }), 400, "invalid_scope");
    const t2 = await tokens(await refresh(t1.refresh_token, { scope: "openid" }));
    assert.equal(t2.scope, "openid");
  });

  const MALFORMED_RT = [
    ["three parts", "a.b.c"],
    ["path characters", "../rt.x"],
    ["no dot", "abcdef"],
    ["empty secret", "abcdef."],
    ["oversized (8 KB)", `${"a".repeat(4096)}.${"b".repeat(4096)}`],
    ["an access token", null],
  ];
  for (const [name, rt] of MALFORMED_RT) {
    test(`refresh with a malformed token (${name}) -> 400 invalid_grant`, async () => {
      const token = rt ?? (await family()).access_token;
      await assertError(await refresh(token), 400, "invalid_grant");
    });
  }
});

// --- CSRF, state ----------------------------------------------------------------------------------

describe("attacks: CSRF on login and consent, state tampering", () => {
  const q = () => webQuery({ code_challenge: pkce().challenge, code_challenge_method: "S256" });

  async function assertCsrfRefusedLogin(res, query) {
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), `/auth/ui/login.html?${query}#error=csrf`);
    assert.equal(cookies(res).edge_session, undefined, "a session was created");
  }

  test("login without the CSRF cookie -> back to the login page with error=csrf, no session", async () => {
    const query = q();
    const { csrf } = await interaction(w, query);
    await assertCsrfRefusedLogin(await postLogin(w, { query, csrf, jar: {} }), query);
  });

  test("login with a CSRF token that differs from the cookie -> refused, no session", async () => {
    const query = q();
    const { jar } = await interaction(w, query);
    await assertCsrfRefusedLogin(await postLogin(w, { query, csrf: "A".repeat(43), jar }), query);
  });

  test("login with an empty CSRF cookie and token -> refused, no session", async () => {
    const query = q();
    await assertCsrfRefusedLogin(await postLogin(w, { query, csrf: "", jar: { edge_csrf: "" }, headers: { cookie: "edge_csrf=" } }), query);
  });

  test("login posted from another origin (right token) -> refused, no session", async () => {
    const query = q();
    const { csrf, jar } = await interaction(w, query);
    await assertCsrfRefusedLogin(await postLogin(w, { query, csrf, jar, headers: { origin: "https://evil.example" } }), query);
  });

  test("login posted as text/plain (a cross-site simple form) -> 400 invalid_request", async () => {
    const res = await w.fetch("/auth/login", {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: `username=john&password=pass123&query=${encodeURIComponent(q())}`,
    });
    await assertError(res, 400, "invalid_request");
  });

  async function thirdSession() {
    const query = authorizeQuery({ response_type: "code", client_id: "third", redirect_uri: THIRD_CB, state: "s3" });
    const { csrf, jar } = await interaction(w, query);
    const login = await postLogin(w, { query, csrf, jar });
    assert.equal(login.status, 303);
    assert.match(login.headers.get("location"), /^\/auth\/ui\/consent\.html\?/);
    return { query, csrf, jar: { ...jar, ...cookies(login) } };
  }

  test("consent without the CSRF token -> back to consent with error=csrf, no code", async () => {
    const { query, jar } = await thirdSession();
    const res = await postConsent(w, { query, csrf: "", jar });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), `/auth/ui/consent.html?${query}#error=csrf`);
  });

  test("consent with only the session cookie (cross-site post: no SameSite=Strict CSRF cookie) -> no code", async () => {
    const { query, csrf, jar } = await thirdSession();
    const res = await postConsent(w, { query, csrf, jar: { edge_session: jar.edge_session } });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), `/auth/ui/consent.html?${query}#error=csrf`);
  });

  test("consent posted from another origin -> no code", async () => {
    const { query, csrf, jar } = await thirdSession();
    const res = await postConsent(w, { query, csrf, jar, headers: { origin: "https://evil.example" } });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), `/auth/ui/consent.html?${query}#error=csrf`);
  });

  test("consent without a session -> to the login page, no code", async () => {
    const { query, csrf, jar } = await thirdSession();
    const res = await postConsent(w, { query, csrf, jar: { edge_csrf: jar.edge_csrf } });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), `/auth/ui/login.html?${query}`);
  });

  test("control: consent with session and token -> a code at the registered URI", async () => {
    const { query, csrf, jar } = await thirdSession();
    const res = await postConsent(w, { query, csrf, jar });
    assert.equal(res.status, 303);
    const to = new URL(res.headers.get("location"));
    assert.equal(to.origin + to.pathname, THIRD_CB);
    assert.ok(to.searchParams.get("code"));
  });

  const EVIL_STATE = "x&code=attacker-code&iss=https%3A%2F%2Fevil.example#frag\r\nLocation: https://evil.example";

  test("state with injected parameters comes back as one opaque value: one code, our iss", async () => {
    const { location } = await signIn(webQuery({ state: EVIL_STATE, code_challenge: pkce().challenge }));
    assert.equal(location.origin + location.pathname, CB);
    assert.equal(location.searchParams.getAll("code").length, 1);
    assert.notEqual(location.searchParams.get("code"), "attacker-code");
    assert.equal(location.searchParams.getAll("iss").length, 1);
    assert.equal(location.searchParams.get("iss"), w.url);
    assert.equal(location.searchParams.get("state"), EVIL_STATE);
    assert.equal(location.hash, "");
  });

  test("state with injected parameters on an error redirect (deny) stays one value", async () => {
    const query = authorizeQuery({ response_type: "code", client_id: "third", redirect_uri: THIRD_CB, state: EVIL_STATE });
    const { csrf, jar } = await interaction(w, query);
    const login = await postLogin(w, { query, csrf, jar });
    const res = await postConsent(w, { query, csrf, jar: { ...jar, ...cookies(login) }, decision: "deny" });
    assert.equal(res.status, 303);
    const to = new URL(res.headers.get("location"));
    assert.equal(to.origin + to.pathname, THIRD_CB);
    assert.equal(to.searchParams.get("error"), "access_denied");
    assert.equal(to.searchParams.get("state"), EVIL_STATE);
    assert.equal(to.searchParams.get("code"), null);
    assert.equal(to.searchParams.getAll("iss").length, 1);
  });

  test("login form posted with a tampered query (scope widened past allowed-scopes) -> error redirect, no code", async () => {
    await put(w, "/Client/narrow", {
      secret: "narrow-secret",
      grant_types: ["authorization_code"],
      first_party: true,
      "allowed-scopes": ["openid"],
      auth: { authorization_code: { redirect_uri: "https://narrow.example/cb" } },
    });
    const good = authorizeQuery({ response_type: "code", client_id: "narrow", redirect_uri: "https://narrow.example/cb", scope: "openid", state: "n" });
    const { csrf, jar } = await interaction(w, good);
    const tampered = good.replace("scope=openid", "scope=openid+admin");
    const res = await postLogin(w, { query: tampered, csrf, jar });
    assert.equal(res.status, 303);
    const to = new URL(res.headers.get("location"));
    assert.equal(to.origin + to.pathname, "https://narrow.example/cb");
    assert.equal(to.searchParams.get("error"), "invalid_scope");
    assert.equal(to.searchParams.get("code"), null);
  });
});

// --- grants a client may not use ------------------------------------------------------------------

describe("attacks: grants a client may not use", () => {
  test("password grant for a client without it -> 400 unauthorized_client", async () => {
    const res = await tokenPost(w, { grant_type: "password", username: "john", password: "pass123" }, { auth: WEB });
    await assertError(res, 400, "unauthorized_client");
  });

  test("password grant with a wrong password and with an unknown user: the same 400 invalid_grant", async () => {
    const a = await assertError(await tokenPost(w, { grant_type: "password", username: "john", password: "nope" }, { auth: basicAuth("pw", "pw-secret") }), 400, "invalid_grant");
    const b = await assertError(await tokenPost(w, { grant_type: "password", username: "nobody", password: "nope" }, { auth: basicAuth("pw", "pw-secret") }), 400, "invalid_grant");
    assert.equal(a.error_description, b.error_description, "the answer tells which one was wrong");
  });

  test("client_credentials for a public client -> 401 invalid_client", async () => {
    await assertError(await tokenPost(w, { grant_type: "client_credentials", client_id: "public-pw" }), 401, "invalid_client");
  });

  test("a confidential client posing as public (client_id, no secret) -> 401 invalid_client", async () => {
    await assertError(await tokenPost(w, { grant_type: "password", client_id: "pw", username: "john", password: "pass123" }), 401, "invalid_client");
  });

  test("implicit for a client that does not list it (no implicit redirect URI) -> 400 page, no token", async () => {
    await assertLocalRefusal(await w.fetch(`/auth/authorize?${webQuery({ response_type: "token" })}`));
  });

  test("implicit for a client that registered an implicit URI but does not list the grant -> error redirect, no token", async () => {
    await put(w, "/Client/noimplicit", {
      secret: "ni-secret",
      grant_types: ["authorization_code"],
      first_party: true,
      auth: { implicit: { redirect_uri: "https://ni.example/cb" } },
    });
    const q = authorizeQuery({ response_type: "token", client_id: "noimplicit", redirect_uri: "https://ni.example/cb", state: "i" });
    const res = await w.fetch(`/auth/authorize?${q}`);
    assert.equal(res.status, 303);
    const loc = res.headers.get("location");
    assert.ok(!loc.includes("access_token"), loc);
    const to = new URL(loc.replace("#", "?"));
    assert.equal(to.origin + to.pathname, "https://ni.example/cb");
    assert.equal(to.searchParams.get("error"), "unauthorized_client");
    assert.equal(to.searchParams.get("state"), "i");
  });

  test("grant_type implicit at the token endpoint -> 400 unsupported_grant_type", async () => {
    await assertError(await tokenPost(w, { grant_type: "implicit" }, { auth: WEB }), 400, "unsupported_grant_type");
  });
});
