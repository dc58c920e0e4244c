// Attack corpus, issue 11 part 4 and the introspection/revocation bullet of part 5: tokens of
// other issuers are access tokens only when they are meant for us, and map to local users only
// where a TokenIntrospector says so; /auth/introspect and /auth/revoke work for our tokens of
// every audience we issue. Each case runs against the built Worker in workerd; protected-path
// refusals also check that the origin (a loopback server) never saw the request.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-foreign.test.mjs      (after the build)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { startWorker, startOrigin, basicAuth, form, json, FORM } from "./harness.mjs";
import { b64url, nowSecs, assertError, assertInvalidTokenChallenge, put, tokenPost } from "./attacks-lib.mjs";

/** Does not map users (the default). */
const IDP = "https://idp.example";
/** Opted in: `map_user: {claims: ["box_user", "sub"], match: {data: {idp: "corp"}}}`. */
const CORP = "https://corp-idp.example";
const OTHER = "https://other.example";

let w;
let origin;
let introspection;
/** Our audience: ISSUER and AUDIENCE are unset, so the Worker's own URL. */
let us;
/** RFC 7662 answers of the opaque introspection endpoint, by token. */
const answers = new Map();
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const pubJwk = { ...rsa.publicKey.export({ format: "jwk" }), kid: "idp-1", alg: "RS256", use: "sig" };

before(async () => {
  origin = await startOrigin();
  introspection = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const token = new URLSearchParams(body).get("token");
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answers.get(token) ?? { active: false }));
    });
  });
  await new Promise((r) => introspection.listen(0, "127.0.0.1", r));
  w = await startWorker({ originUrl: origin.url });
  us = w.url;
  await put(w, "/TokenIntrospector/idp", { type: "jwt", jwt: { iss: IDP }, jwks: { keys: [pubJwk] } });
  await put(w, "/TokenIntrospector/corp", {
    type: "jwt", jwt: { iss: CORP }, jwks: { keys: [pubJwk] },
    map_user: { claims: ["box_user", "sub"], match: { data: { idp: "corp" } } },
  });
  await put(w, "/TokenIntrospector/opaque", {
    type: "opaque", introspection_endpoint: { url: `http://127.0.0.1:${introspection.address().port}/introspect` },
  });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123", data: { idp: "corp" } });
  // A local user the corporate IdP was never given (no `data.idp` mark).
  await put(w, "/User/ops", { email: "ops@example.com", password: "ops-pass-123" });
  // What an attacker is after: the local users' own access.
  await put(w, "/AccessPolicy/john", { engine: "matcho", matcho: { user: { id: "john" } } });
  await put(w, "/AccessPolicy/ops", { engine: "matcho", matcho: { user: { id: "ops" } } });
  // External callers as such: policies see their claims as `jwt`.
  await put(w, "/AccessPolicy/idp-readers", { engine: "matcho", matcho: { jwt: { iss: IDP, role: "reader" } } });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
  await new Promise((r) => introspection?.close(r));
});

/** An RS256 token of an external issuer; `undefined` values drop a claim or header member. */
function external(claims = {}, header = {}) {
  const now = nowSecs();
  const c = { iss: IDP, sub: "john", aud: us, iat: now, exp: now + 600, ...claims };
  const h = { alg: "RS256", kid: "idp-1", ...header };
  for (const o of [c, h]) for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(c))}`;
  return `${input}.${b64url(cryptoSign("sha256", Buffer.from(input), rsa.privateKey))}`;
}

/** An OpenID Connect ID token the IdP issued to another relying party. */
const idTokenFor = (iss, aud, over = {}) =>
  external({ iss, aud, azp: aud, nonce: "n-0S6_WzA2Mj", auth_time: nowSecs() - 5, at_hash: "77QmUPtjPfzWtF2AnpK9RQ", ...over }, { typ: "JWT" });

const callApi = (token) => w.fetch("/Patient", { headers: { authorization: `Bearer ${token}` } });

/** 401 invalid_token with the RFC 6750 challenge; the origin saw nothing. Returns the body. */
async function assertRefused(token, says) {
  const seen = origin.requests.length;
  const res = await callApi(token);
  assertInvalidTokenChallenge(res);
  const body = await assertError(res, 401, "invalid_token");
  if (says) assert.match(body.error_description, says);
  assert.equal(origin.requests.length, seen, "the refused request reached the origin");
  return body;
}

/** 403: the token was good, but no policy lets this caller in; the origin saw nothing. */
async function assertForbidden(token) {
  const seen = origin.requests.length;
  const res = await callApi(token);
  await assertError(res, 403, "forbidden");
  assert.equal(origin.requests.length, seen, "the forbidden request reached the origin");
}

/** 200 through the origin; returns the headers the origin got. */
async function assertAllowed(token) {
  const res = await callApi(token);
  assert.equal(res.status, 200, await res.text());
  return origin.last().headers;
}

describe("attacks: foreign tokens are access tokens only when meant for us (TokenIntrospector)", () => {
  test("control: a proper external access token (aud us, typ at+jwt) with map_user opted in maps to john", async () => {
    const headers = await assertAllowed(external({ iss: CORP }, { typ: "at+jwt" }));
    assert.equal(headers["x-user-id"], "john");
  });

  test("control: box_user names the local user when the introspector maps it (Aidbox order)", async () => {
    const headers = await assertAllowed(external({ iss: CORP, sub: "ext-4711", box_user: "john" }));
    assert.equal(headers["x-user-id"], "john");
  });

  test("control: policies still see `jwt` for an unmapped external token (user stays null)", async () => {
    const headers = await assertAllowed(external({ role: "reader" }));
    assert.equal(headers["x-user-id"], undefined, "an unmapped token brought in a user");
  });

  test("foreign ID token for another RP is refused as access token (even where sub maps to john)", async () => {
    await assertRefused(idTokenFor(CORP, "some-other-rp"));
    await assertRefused(idTokenFor(IDP, "some-other-rp"));
  });

  test("foreign ID token with our aud is refused as access token (nonce, at_hash)", async () => {
    await assertRefused(idTokenFor(CORP, us), /ID-token claim nonce/);
    await assertRefused(idTokenFor(CORP, us, { nonce: undefined }), /ID-token claim at_hash/);
  });

  test("token with an ID-token typ header (id_token, id+jwt) is refused as access token", async () => {
    await assertRefused(external({ iss: CORP }, { typ: "id_token" }), /typ header/);
    await assertRefused(external({ iss: CORP }, { typ: "id+jwt" }), /typ header/);
  });

  test("token without aud for us is refused", async () => {
    await assertRefused(external({ iss: CORP, aud: undefined }), /no aud/);
  });

  test("token with the aud of another API is refused", async () => {
    await assertRefused(external({ iss: CORP, aud: "https://other-api.example" }), /another audience/);
    await assertRefused(external({ iss: CORP, aud: ["https://other-api.example", "some-rp"] }), /another audience/);
  });

  test("external sub does not become local user without mapping", async () => {
    await assertForbidden(external({ sub: "john" }));
  });

  test("external box_user does not become local user without mapping", async () => {
    await assertForbidden(external({ sub: "ext-1", box_user: "john" }));
  });

  test("a mapping issuer cannot speak for a local user it was not given (map_user.match)", async () => {
    await assertRefused(external({ iss: CORP, sub: "ops" }), /map_user\.match/);
    await assertRefused(external({ iss: CORP, sub: "ext-2", box_user: "ops" }), /map_user\.match/);
  });

  test("opaque: an active answer whose aud excludes us is refused", async () => {
    answers.set("op-other-aud", { active: true, sub: "john", role: "reader", iss: IDP, aud: "https://other-api.example", exp: nowSecs() + 600 });
    await assertRefused("op-other-aud", /another audience/);
  });

  test("opaque: an answer for a refresh token is refused as access token", async () => {
    answers.set("op-refresh", { active: true, token_type: "refresh_token", sub: "john", iss: IDP, role: "reader" });
    await assertRefused("op-refresh", /token_type/);
  });

  test("opaque: sub and username do not become a local user without mapping", async () => {
    answers.set("op-john", { active: true, sub: "john", username: "john", aud: us, exp: nowSecs() + 600 });
    await assertForbidden("op-john");
  });

  test("control: an opaque answer for us reaches policies as `jwt`", async () => {
    answers.set("op-reader", { active: true, sub: "ext-9", iss: IDP, role: "reader", aud: [us], token_type: "Bearer", exp: nowSecs() + 600 });
    const headers = await assertAllowed("op-reader");
    assert.equal(headers["x-user-id"], undefined);
  });

  test("introspector writes: an unknown map_user claim or field is refused (422)", async () => {
    for (const [body, field] of [
      [{ type: "jwt", jwt: { iss: "https://x.example" }, jwks: { keys: [pubJwk] }, map_user: { claims: ["email"] } }, "map_user.claims.0"],
      [{ type: "jwt", jwt: { iss: "https://x.example" }, jwks: { keys: [pubJwk] }, map_user: true }, "map_user"],
      [{ type: "jwt", jwt: { iss: "https://x.example" }, jwks: { keys: [pubJwk] }, map_user: { claims: ["sub"], only: "john" } }, "map_user.only"],
      [{ type: "jwt", jwt: { iss: "https://x.example", aud: [] }, jwks: { keys: [pubJwk] } }, "jwt.aud"],
    ]) {
      const res = await w.admin("PUT", "/TokenIntrospector/x", body);
      const got = await json(res);
      assert.equal(res.status, 422, JSON.stringify(got));
      assert.equal(got.field, field, JSON.stringify(got));
    }
    assert.equal((await w.admin("GET", "/TokenIntrospector/x")).status, 404);
  });
});

describe("attacks: /auth/introspect and /auth/revoke for our tokens of every audience", () => {
  const APP = basicAuth("app", "app-secret");
  const RS = basicAuth("rs", "rs-secret");
  before(async () => {
    await put(w, "/Client/app", {
      secret: "app-secret", grant_types: ["client_credentials", "password"], audience: OTHER,
      auth: { password: { refresh_token: true } },
    });
    await put(w, "/Client/rs", { secret: "rs-secret", grant_types: ["client_credentials"] });
    await put(w, "/AccessPolicy/app", { engine: "allow", link: [{ id: "app", resourceType: "Client" }] });
  });

  const introspect = async (token, auth = RS, extra = {}) => {
    const res = await w.fetch("/auth/introspect", { method: "POST", headers: { ...FORM, authorization: auth }, body: form({ token, ...extra }) });
    assert.equal(res.status, 200);
    return json(res);
  };
  const revoke = async (token, auth = APP) => {
    const res = await w.fetch("/auth/revoke", { method: "POST", headers: { ...FORM, authorization: auth }, body: form({ token }) });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  };
  const issue = async (params) => {
    const res = await tokenPost(w, params, { auth: APP });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    return body;
  };

  test("a live token for another audience is introspected active with that aud", async () => {
    const { access_token } = await issue({ grant_type: "client_credentials", audience: OTHER });
    const a = await introspect(access_token);
    assert.equal(a.active, true, JSON.stringify(a));
    assert.equal(a.aud, OTHER);
    assert.equal(a.client_id, "app");
    // A wrong token_type_hint does not make it inactive either (RFC 7662 2.1).
    assert.equal((await introspect(access_token, RS, { token_type_hint: "refresh_token" })).active, true);
  });

  test("revoking a token for another audience takes effect: introspection says inactive", async () => {
    const { access_token } = await issue({ grant_type: "client_credentials", audience: OTHER });
    await revoke(access_token, RS); // not its client: nothing happens (RFC 7009 2.1)
    assert.equal((await introspect(access_token)).active, true);
    await revoke(access_token);
    assert.deepEqual(await introspect(access_token), { active: false });
  });

  test("a refresh token for another audience: introspected with its aud; revoking it revokes its access tokens", async () => {
    const t = await issue({ grant_type: "password", username: "john", password: "pass123", resource: OTHER });
    assert.ok(t.refresh_token, JSON.stringify(t));
    const r = await introspect(t.refresh_token, APP);
    assert.equal(r.active, true, JSON.stringify(r));
    assert.equal(r.aud, OTHER);
    assert.equal((await introspect(t.access_token)).aud, OTHER);
    await revoke(t.refresh_token);
    assert.deepEqual(await introspect(t.refresh_token, APP), { active: false });
    assert.deepEqual(await introspect(t.access_token), { active: false });
    const again = await tokenPost(w, { grant_type: "refresh_token", refresh_token: t.refresh_token }, { auth: APP });
    await assertError(again, 400, "invalid_grant");
  });

  test("control: a revoked token of our own API's audience is refused by the API and inactive", async () => {
    const { access_token } = await issue({ grant_type: "client_credentials" });
    assert.equal((await callApi(access_token)).status, 200);
    assert.equal((await introspect(access_token)).aud, us);
    await revoke(access_token);
    await assertRefused(access_token, /revoked/);
    assert.deepEqual(await introspect(access_token), { active: false });
  });

  test("introspection does not vouch for another issuer's token, even one valid at our API", async () => {
    const token = external({ role: "reader" });
    assert.equal((await callApi(token)).status, 200);
    assert.deepEqual(await introspect(token), { active: false });
  });
});
