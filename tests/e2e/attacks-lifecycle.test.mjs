// Attack corpus, issue 12: "Changes that must end what depended on them" and "Introspection
// endpoints of other issuers". A password or secret change, a deactivation, or a delete and
// re-create under the same id ends the sessions, refresh families and access tokens the old
// credentials vouched for (a per-resource credential generation, docs/reference.md "Changes that end what depended on them"); an
// opaque token goes to the one introspector configuration names; a TokenIntrospector moved to
// another URL, type or issuer loses its stored credentials. Each case runs against the built
// Worker in workerd; refused protected-path requests also check that the origin never saw them.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-lifecycle.test.mjs      (after the build)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startWorker, startOrigin, basicAuth, json, decodeJwt } from "./harness.mjs";
import { assertError, assertInvalidTokenChallenge, put, interaction, postLogin, authorizeQuery, tokenPost } from "./attacks-lib.mjs";

const CB = "https://app.example/cb";
const APP = basicAuth("app", "app-secret");
let w;
let origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  await put(w, "/Client/app", {
    secret: "app-secret",
    grant_types: ["password", "authorization_code"],
    first_party: true,
    auth: { password: { refresh_token: true }, authorization_code: { redirect_uri: CB } },
  });
  await put(w, "/Client/svc", { secret: "svc-secret", grant_types: ["client_credentials"] });
  await put(w, "/AccessPolicy/users", { engine: "matcho", matcho: { user: { data: { staff: true } } } });
  await put(w, "/AccessPolicy/svc", { engine: "matcho", matcho: { client: { id: "svc" } } });
  await put(w, "/AccessPolicy/external", { engine: "matcho", matcho: { jwt: { sub: "ext-user" } } });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

const userBody = (email, password, extra = {}) => ({ email, ...(password ? { password } : {}), data: { staff: true }, ...extra });

/** Password grant: access and refresh token of `username`. */
async function signIn(username, password, auth = APP) {
  const res = await tokenPost(w, { grant_type: "password", username, password }, { auth });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.ok(body.refresh_token, JSON.stringify(body));
  return body;
}

/** A browser session of `username`: the cookie jar after the login form. */
async function browserSession(username, password) {
  const query = authorizeQuery({ response_type: "code", client_id: "app", redirect_uri: CB, state: "s" });
  const { csrf, jar } = await interaction(w, query);
  const res = await postLogin(w, { query, csrf, jar, username, password });
  assert.equal(res.status, 303, await res.text());
  const session = res.headers.getSetCookie().find((c) => c.startsWith("edge_session="));
  assert.ok(session, "no session cookie");
  const jar2 = { ...jar, edge_session: session.split(";")[0].slice("edge_session=".length) };
  return { query, jar: jar2 };
}

/** The signed-in user the login page sees for this jar (null: no live session). */
async function sessionUser({ query, jar }) {
  const { body } = await interaction(w, query, jar);
  return body.user?.id ?? null;
}

async function api(token) {
  return w.fetch("/Patient", { headers: { authorization: `Bearer ${token}` } });
}

async function apiOk(token) {
  const res = await api(token);
  const text = await res.text();
  assert.equal(res.status, 200, text);
}

/** The token is refused 401 invalid_token and the origin never saw the request. */
async function apiRefused(token) {
  origin.reset();
  const res = await api(token);
  assertInvalidTokenChallenge(res);
  await assertError(res, 401, "invalid_token");
  assert.equal(origin.requests.length, 0, "the refused request reached the origin");
}

/** `/auth/introspect` as client app: is the token active? */
async function introspectActive(token) {
  const res = await w.fetch("/auth/introspect", {
    method: "POST",
    headers: { authorization: APP, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }).toString(),
  });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.active;
}

async function refreshRefused(rt, auth = APP) {
  await assertError(await tokenPost(w, { grant_type: "refresh_token", refresh_token: rt }, { auth }), 400, "invalid_grant");
}

async function refreshOk(rt, auth = APP) {
  const res = await tokenPost(w, { grant_type: "refresh_token", refresh_token: rt }, { auth });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

describe("changes that must end what depended on them", () => {
  test("password change ends the user's session, refresh family and access token", async () => {
    await put(w, "/User/alice", userBody("alice@example.com", "old-pass-1"));
    const t = await signIn("alice@example.com", "old-pass-1");
    const browser = await browserSession("alice@example.com", "old-pass-1");
    await apiOk(t.access_token);
    assert.equal(await sessionUser(browser), "alice");
    assert.equal(await introspectActive(t.access_token), true);
    assert.equal(await introspectActive(t.refresh_token), true);

    await put(w, "/User/alice", userBody("alice@example.com", "new-pass-2"));

    assert.equal(await introspectActive(t.access_token), false);
    assert.equal(await introspectActive(t.refresh_token), false);
    await apiRefused(t.access_token);
    await refreshRefused(t.refresh_token);
    assert.equal(await sessionUser(browser), null, "the old session still signs the user in");
    // Control: the new password works, and its tokens do.
    const fresh = await signIn("alice@example.com", "new-pass-2");
    await apiOk(fresh.access_token);
    await refreshOk(fresh.refresh_token);
  });

  test("an authorization code issued before a password change is refused", async () => {
    await put(w, "/User/erin", userBody("erin@example.com", "erin-pass-1"));
    const signInCode = async () => {
      const query = authorizeQuery({ response_type: "code", client_id: "app", redirect_uri: CB, state: "s" });
      const { csrf, jar } = await interaction(w, query);
      const res = await postLogin(w, { query, csrf, jar, username: "erin@example.com", password: "erin-pass-1" });
      const code = new URL(res.headers.get("location")).searchParams.get("code");
      assert.ok(code, res.headers.get("location"));
      return code;
    };
    const redeem = (code) => tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB }, { auth: APP });
    // Control: redeemed at once, it works.
    const ok = await redeem(await signInCode());
    assert.equal(ok.status, 200, await ok.text());
    const code = await signInCode();
    await put(w, "/User/erin", userBody("erin@example.com", "erin-pass-2"));
    await assertError(await redeem(code), 400, "invalid_grant");
  });

  test("inactive user's access token is refused, and reactivation does not revive it", async () => {
    await put(w, "/User/ina", userBody("ina@example.com", "ina-pass-1"));
    const t = await signIn("ina@example.com", "ina-pass-1");
    const browser = await browserSession("ina@example.com", "ina-pass-1");
    await apiOk(t.access_token);

    await put(w, "/User/ina", userBody("ina@example.com", null, { inactive: true }));
    await apiRefused(t.access_token);
    await assertError(await tokenPost(w, { grant_type: "password", username: "ina@example.com", password: "ina-pass-1" }, { auth: APP }), 400, "invalid_grant");

    await put(w, "/User/ina", userBody("ina@example.com", null, { inactive: false }));
    await apiRefused(t.access_token);
    await refreshRefused(t.refresh_token);
    assert.equal(await sessionUser(browser), null);
    // Control: signing in again after reactivation works.
    await apiOk((await signIn("ina@example.com", "ina-pass-1")).access_token);
  });

  test("active: false ends the user's tokens for good", async () => {
    await put(w, "/User/ada", userBody("ada@example.com", "ada-pass-1"));
    const t = await signIn("ada@example.com", "ada-pass-1");
    await put(w, "/User/ada", userBody("ada@example.com", null, { active: false }));
    await apiRefused(t.access_token);
    await put(w, "/User/ada", userBody("ada@example.com", null, { active: true }));
    await apiRefused(t.access_token);
    await refreshRefused(t.refresh_token);
  });

  test("client secret rotation ends client_credentials tokens", async () => {
    const get = async (secret) => {
      const res = await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("svc", secret) });
      const body = await json(res);
      assert.equal(res.status, 200, JSON.stringify(body));
      return body.access_token;
    };
    const old = await get("svc-secret");
    await apiOk(old);
    await put(w, "/Client/svc", { secret: "svc-secret-2", grant_types: ["client_credentials"] });
    await apiRefused(old);
    await apiOk(await get("svc-secret-2"));
  });

  test("client secret rotation ends the user tokens and refresh families issued to the client", async () => {
    await put(w, "/Client/app2", {
      secret: "app2-secret", grant_types: ["password"], auth: { password: { refresh_token: true } },
    });
    await put(w, "/User/bea", userBody("bea@example.com", "bea-pass-1"));
    const t = await signIn("bea@example.com", "bea-pass-1", basicAuth("app2", "app2-secret"));
    await apiOk(t.access_token);
    await put(w, "/Client/app2", {
      secret: "app2-secret-new", grant_types: ["password"], auth: { password: { refresh_token: true } },
    });
    await apiRefused(t.access_token);
    await refreshRefused(t.refresh_token, basicAuth("app2", "app2-secret-new"));
  });

  test("deactivated client's tokens stay refused after it is reactivated", async () => {
    await put(w, "/Client/svc3", { secret: "svc3-secret", grant_types: ["client_credentials"] });
    await put(w, "/AccessPolicy/svc3", { engine: "matcho", matcho: { client: { id: "svc3" } } });
    const res = await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("svc3", "svc3-secret") });
    const token = (await json(res)).access_token;
    await apiOk(token);
    await put(w, "/Client/svc3", { grant_types: ["client_credentials"], active: false });
    await apiRefused(token);
    await put(w, "/Client/svc3", { grant_types: ["client_credentials"], active: true });
    await apiRefused(token);
  });

  test("recreated user does not inherit the old user's session, refresh family or token", async () => {
    await put(w, "/User/bob", userBody("bob@example.com", "bob-pass-1"));
    const t = await signIn("bob@example.com", "bob-pass-1");
    const browser = await browserSession("bob@example.com", "bob-pass-1");
    assert.equal(await sessionUser(browser), "bob");
    assert.equal((await w.admin("DELETE", "/User/bob")).status, 200);
    // Someone else gets the id, even with the same password.
    await put(w, "/User/bob", userBody("bob.new@example.com", "bob-pass-1"));
    await apiRefused(t.access_token);
    await refreshRefused(t.refresh_token);
    assert.equal(await sessionUser(browser), null, "the new bob was handed the old bob's session");
  });

  test("recreated client does not inherit the old client's tokens", async () => {
    await put(w, "/Client/svc4", { secret: "svc4-secret", grant_types: ["client_credentials"] });
    await put(w, "/AccessPolicy/svc4", { engine: "matcho", matcho: { client: { id: "svc4" } } });
    const res = await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("svc4", "svc4-secret") });
    const token = (await json(res)).access_token;
    await apiOk(token);
    assert.equal((await w.admin("DELETE", "/Client/svc4")).status, 200);
    await put(w, "/Client/svc4", { secret: "svc4-secret", grant_types: ["client_credentials"] });
    await apiRefused(token);
  });

  test("control: a profile change (new name, GET-edit-PUT) keeps sessions, families and tokens", async () => {
    await put(w, "/User/carol", userBody("carol@example.com", "carol-pass-1", { name: { givenName: "Carol" } }));
    const t = await signIn("carol@example.com", "carol-pass-1");
    const browser = await browserSession("carol@example.com", "carol-pass-1");
    const got = await json(await w.admin("GET", "/User/carol"));
    got.name = { givenName: "Caroline" };
    await put(w, "/User/carol", got);
    await put(w, "/Client/app", {
      ...(await json(await w.admin("GET", "/Client/app"))),
      name: "The App, renamed",
    });
    await apiOk(t.access_token);
    assert.equal(await sessionUser(browser), "carol");
    const next = await refreshOk(t.refresh_token);
    await apiOk(next.access_token);
  });

  test("the generation is neither writable nor shown, and policies do not see its claim", async () => {
    const res = await w.admin("PUT", "/User/dan", { email: "dan@example.com", credential_generation: "x" });
    await assertError(res, 422, "invalid_resource");
    await put(w, "/User/dan", userBody("dan@example.com", "dan-pass-1"));
    const doc = await json(await w.admin("GET", "/User/dan"));
    assert.equal(doc.credential_generation, undefined, JSON.stringify(doc));
    const t = await signIn("dan@example.com", "dan-pass-1");
    assert.equal(typeof decodeJwt(t.access_token).payload.edge_gen, "string");
    const intro = await json(await w.fetch("/auth/introspect", {
      method: "POST",
      headers: { authorization: APP, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: t.access_token }).toString(),
    }));
    assert.equal(intro.active, true, JSON.stringify(intro));
    assert.equal(intro.edge_gen, undefined, JSON.stringify(intro));
  });
});

/** A loopback RFC 7662 endpoint that records who was asked what. */
async function introspectionEndpoint(name, calls) {
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const token = new URLSearchParams(body).get("token");
      calls.push({ endpoint: name, token, authorization: req.headers.authorization ?? null });
      res.writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ active: true, sub: "ext-user", exp: Math.floor(Date.now() / 1000) + 600 }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}/introspect`, close: () => new Promise((r) => server.close(r)) };
}

describe("introspection endpoints of other issuers", () => {
  const calls = [];
  let gh;
  let gl;
  let evil;
  before(async () => {
    gh = await introspectionEndpoint("gh", calls);
    gl = await introspectionEndpoint("gl", calls);
    evil = await introspectionEndpoint("evil", calls);
  });
  after(async () => {
    await gh?.close();
    await gl?.close();
    await evil?.close();
  });

  test("opaque token goes only to the introspector its prefix names", async () => {
    await put(w, "/TokenIntrospector/gh", {
      type: "opaque", token_prefix: "ghp_", introspection_endpoint: { url: gh.url, authorization: "Bearer gh-cred" },
    });
    await put(w, "/TokenIntrospector/gl", {
      type: "opaque", token_prefix: "glpat-", introspection_endpoint: { url: gl.url, authorization: "Bearer gl-cred" },
    });
    calls.length = 0;
    await apiOk("ghp_token1");
    assert.deepEqual(calls, [{ endpoint: "gh", token: "ghp_token1", authorization: "Bearer gh-cred" }]);
    calls.length = 0;
    await apiOk("glpat-token2");
    assert.deepEqual(calls.map((c) => c.endpoint), ["gl"]);
    // A token no prefix names goes nowhere (no default introspector is configured).
    calls.length = 0;
    await apiRefused("xyz_token3");
    assert.deepEqual(calls, [], "the token was shown to an introspector it was not meant for");
  });

  test("the single opaque introspector without token_prefix is the default; a second one is refused", async () => {
    const res = await w.admin("PUT", "/TokenIntrospector/default", { type: "opaque", introspection_endpoint: { url: evil.url } });
    assert.equal(res.status, 201, await res.text());
    calls.length = 0;
    await apiOk("other_token4");
    assert.deepEqual(calls.map((c) => c.endpoint), ["evil"]);
    calls.length = 0;
    await apiOk("ghp_token5");
    assert.deepEqual(calls.map((c) => c.endpoint), ["gh"], "a prefixed token went to the default too");
    await assertError(
      await w.admin("PUT", "/TokenIntrospector/default2", { type: "opaque", introspection_endpoint: { url: evil.url } }),
      409, "conflict",
    );
    const dup = await w.admin("PUT", "/TokenIntrospector/gh2", { type: "opaque", token_prefix: "ghp_", introspection_endpoint: { url: evil.url } });
    assert.equal(dup.status, 409, await dup.text());
    const jwtPrefix = await w.admin("PUT", "/TokenIntrospector/j", { type: "jwt", token_prefix: "x", jwt: { iss: "https://j.example", secret: "s".repeat(32) } });
    assert.equal(jwtPrefix.status, 422, await jwtPrefix.text());
    assert.equal((await w.admin("DELETE", "/TokenIntrospector/default")).status, 200);
  });

  test("PUT changing introspector URL drops the stored credential", async () => {
    // An admin (or an attacker with write access to this resource but not its secret) points
    // the introspector elsewhere, without the credential: the new endpoint never gets it.
    await put(w, "/TokenIntrospector/gh", { type: "opaque", token_prefix: "ghp_", introspection_endpoint: { url: evil.url } });
    calls.length = 0;
    await apiOk("ghp_token6");
    assert.deepEqual(calls, [{ endpoint: "evil", token: "ghp_token6", authorization: null }], "the stored credential followed the new URL");
    // Back to the real URL, still without the credential: it stays gone.
    await put(w, "/TokenIntrospector/gh", { type: "opaque", token_prefix: "ghp_", introspection_endpoint: { url: gh.url } });
    calls.length = 0;
    await apiOk("ghp_token7");
    assert.deepEqual(calls, [{ endpoint: "gh", token: "ghp_token7", authorization: null }]);
  });

  test("control: a PUT that keeps the URL keeps the stored credential (GET-edit-PUT)", async () => {
    await put(w, "/TokenIntrospector/gl", {
      type: "opaque", token_prefix: "glpat-", introspection_endpoint: { url: gl.url, authorization: "Bearer gl-cred" },
    });
    const doc = await json(await w.admin("GET", "/TokenIntrospector/gl"));
    assert.equal(doc.introspection_endpoint.authorization, undefined);
    doc.description = "edited";
    await put(w, "/TokenIntrospector/gl", doc);
    calls.length = 0;
    await apiOk("glpat-token8");
    assert.deepEqual(calls, [{ endpoint: "gl", token: "glpat-token8", authorization: "Bearer gl-cred" }]);
  });

  test("PUT changing a jwt introspector's issuer drops its HS256 secret", async () => {
    await put(w, "/TokenIntrospector/hs", { type: "jwt", jwt: { iss: "https://a.example", secret: "a".repeat(40) } });
    // Same issuer, no secret in the body: kept (control).
    await put(w, "/TokenIntrospector/hs", { type: "jwt", jwt: { iss: "https://a.example" } });
    // Another issuer without a secret: the old one does not follow; no key source is left.
    const res = await w.admin("PUT", "/TokenIntrospector/hs", { type: "jwt", jwt: { iss: "https://b.example" } });
    assert.equal(res.status, 422, await res.text());
  });
});
