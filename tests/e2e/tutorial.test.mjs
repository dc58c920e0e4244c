// End-to-end tests of issue 2: the first half of the Aidbox authentication tutorial, replayed
// against the built Worker in workerd over real HTTP, plus the error cases the issue names.
//
// Tests inside one `describe` run in order and may build on each other (as the tutorial does);
// each `describe` sets up what it needs with idempotent PUTs, so any one of them can run alone
// (node --test --test-name-pattern=...).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startWorker,
  startOrigin,
  basicAuth,
  form,
  json,
  decodeJwt,
  verifyEdDsa,
  FORM,
  JSON_CT,
} from "./harness.mjs";

const TOKEN_HEADERS = ["access_token", "token_type", "expires_in"];

/** Asserts a 2xx-created-or-updated status for an admin write. */
async function assertWritten(res, what) {
  const text = await res.text();
  assert.ok([200, 201].includes(res.status), `${what}: expected 200/201, got ${res.status}: ${text}`);
  return text;
}

/** Asserts an RFC 6749 5.2 error body `{error, error_description?}` and returns it. */
async function assertOAuthError(res, status, error) {
  const body = await json(res);
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${JSON.stringify(body)}`);
  if (error !== undefined) assert.equal(body.error, error, JSON.stringify(body));
  else assert.equal(typeof body.error, "string", `error body without "error": ${JSON.stringify(body)}`);
  return body;
}

async function putClient(w, id, body) {
  await assertWritten(await w.admin("PUT", `/Client/${id}`, body), `PUT /Client/${id}`);
}
async function putUser(w, id, body) {
  await assertWritten(await w.admin("PUT", `/User/${id}`, body), `PUT /User/${id}`);
}
async function putPolicy(w, id, body) {
  await assertWritten(await w.admin("PUT", `/AccessPolicy/${id}`, body), `PUT /AccessPolicy/${id}`);
}

async function tokenRequest(w, { auth, body, headers = FORM }) {
  return w.fetch("/auth/token", {
    method: "POST",
    headers: { ...headers, ...(auth ? { authorization: auth } : {}) },
    body,
  });
}

/** Checks an RFC 6749 5.1 token response and returns its JSON. */
async function assertTokenResponse(res) {
  const body = await json(res);
  assert.equal(res.status, 200, `token endpoint answered ${res.status}: ${JSON.stringify(body)}`);
  for (const k of TOKEN_HEADERS) assert.ok(k in body, `token response lacks ${k}: ${JSON.stringify(body)}`);
  assert.equal(typeof body.access_token, "string");
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.expires_in, 3600);
  assert.match(res.headers.get("cache-control") ?? "", /no-store/);
  return body;
}

async function assertPatientBundle(res) {
  const body = await json(res);
  assert.equal(res.status, 200, `GET /Patient answered ${res.status}: ${JSON.stringify(body)}`);
  assert.equal(body.resourceType, "Bundle");
  return body;
}

const bearer = (token) => ({ authorization: `Bearer ${token}` });

// ------------------------------------------------------------------------------------------------
describe("tutorial: Basic auth", () => {
  let w;
  before(async () => {
    w = await startWorker();
  });
  after(() => w?.dispose());

  test("PUT /Client/basic as root creates the client (200/201) and does not echo the secret", async () => {
    const res = await w.admin("PUT", "/Client/basic", { secret: "s3cret", grant_types: ["basic"] });
    const text = await assertWritten(res, "PUT /Client/basic");
    assert.ok(!text.includes("s3cret"), `response echoes the secret: ${text}`);
    if (text) assert.equal(JSON.parse(text).secret, undefined);
  });

  test("GET /Client/basic returns the client without its secret", async () => {
    const res = await w.admin("GET", "/Client/basic");
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.id, "basic");
    assert.deepEqual(body.grant_types, ["basic"]);
    assert.equal(body.secret, undefined);
    assert.ok(!JSON.stringify(body).includes("s3cret"), "secret (or its plain text) returned");
  });

  test("GET /Patient with Basic basic:s3cret and no policy is 403", async () => {
    const res = await w.fetch("/Patient", { headers: { authorization: basicAuth("basic", "s3cret") } });
    await assertOAuthError(res, 403);
  });

  test("PUT /AccessPolicy/basic-policy (allow, linked to Client basic) is accepted", async () => {
    await putPolicy(w, "basic-policy", { engine: "allow", link: [{ id: "basic", resourceType: "Client" }] });
  });

  test("GET /Patient with Basic basic:s3cret and the policy is 200 with a FHIR Bundle (demo origin)", async () => {
    const res = await w.fetch("/Patient", { headers: { authorization: basicAuth("basic", "s3cret") } });
    await assertPatientBundle(res);
  });

  test("GET /Patient with a wrong secret is 401 with WWW-Authenticate", async () => {
    const res = await w.fetch("/Patient", { headers: { authorization: basicAuth("basic", "wrong") } });
    assert.equal(res.status, 401);
    assert.ok(res.headers.get("www-authenticate"), "no WWW-Authenticate header");
    await res.arrayBuffer();
  });

  test("GET /Patient without credentials is 401 with WWW-Authenticate: Bearer", async () => {
    const res = await w.fetch("/Patient");
    assert.equal(res.status, 401);
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer\b/);
    await res.arrayBuffer();
  });

  test("GET /Patient with bad base64 in the Basic header is 401", async () => {
    const res = await w.fetch("/Patient", { headers: { authorization: "Basic %%%not-base64%%%" } });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
  });

  test("GET /Patient with a garbage Bearer token is 401 with WWW-Authenticate", async () => {
    const res = await w.fetch("/Patient", { headers: bearer("not.a.jwt") });
    assert.equal(res.status, 401);
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer\b/);
    await res.arrayBuffer();
  });
});

// ------------------------------------------------------------------------------------------------
describe("tutorial: client credentials grant", () => {
  let w;
  before(async () => {
    w = await startWorker();
    await putClient(w, "api-client", { secret: "verysecret", grant_types: ["client_credentials"] });
    await putPolicy(w, "api-client-policy", {
      engine: "allow",
      link: [{ id: "api-client", resourceType: "Client" }],
    });
  });
  after(() => w?.dispose());

  let token;

  test("POST /auth/token client_credentials with Basic is 200, Bearer, expires_in 3600, no-store", async () => {
    const res = await tokenRequest(w, {
      auth: basicAuth("api-client", "verysecret"),
      body: form({ grant_type: "client_credentials" }),
    });
    token = (await assertTokenResponse(res)).access_token;
  });

  test("the access token is an RFC 9068 JWT: typ at+jwt, EdDSA, kid in the JWKS, valid signature", async () => {
    assert.ok(token, "no token from the previous test");
    const { header, payload } = decodeJwt(token);
    assert.equal(header.typ, "at+jwt");
    assert.equal(header.alg, "EdDSA");
    assert.equal(typeof header.kid, "string");

    const jwksRes = await w.fetch("/.well-known/jwks.json");
    const jwks = await json(jwksRes);
    assert.equal(jwksRes.status, 200);
    const key = jwks.keys.find((k) => k.kid === header.kid);
    assert.ok(key, `kid ${header.kid} not in JWKS ${JSON.stringify(jwks)}`);
    assert.equal(key.d, undefined, "JWKS publishes a private key");
    assert.equal(await verifyEdDsa(token, key), true, "signature does not verify with the JWKS key");

    for (const claim of ["iss", "sub", "aud", "client_id", "exp", "iat", "jti"]) {
      assert.ok(claim in payload, `claim ${claim} missing: ${JSON.stringify(payload)}`);
    }
    assert.equal(payload.client_id, "api-client");
    assert.equal(payload.exp - payload.iat, 3600);
  });

  test("GET /Patient with the client_credentials Bearer token is 200", async () => {
    assert.ok(token, "no token from the previous test");
    await assertPatientBundle(await w.fetch("/Patient", { headers: bearer(token) }));
  });

  test("POST /auth/token with client_id/client_secret in the form body is 200", async () => {
    const res = await tokenRequest(w, {
      body: form({ grant_type: "client_credentials", client_id: "api-client", client_secret: "verysecret" }),
    });
    const body = await assertTokenResponse(res);
    await assertPatientBundle(await w.fetch("/Patient", { headers: bearer(body.access_token) }));
  });

  test("POST /auth/token with a JSON body is 200", async () => {
    const res = await tokenRequest(w, {
      headers: JSON_CT,
      body: JSON.stringify({ grant_type: "client_credentials", client_id: "api-client", client_secret: "verysecret" }),
    });
    await assertTokenResponse(res);
  });

  test("POST /auth/token with a bad client secret is 401 invalid_client with WWW-Authenticate: Basic", async () => {
    const res = await tokenRequest(w, {
      auth: basicAuth("api-client", "wrong"),
      body: form({ grant_type: "client_credentials" }),
    });
    assert.match(res.headers.get("www-authenticate") ?? "", /^Basic\b/);
    await assertOAuthError(res, 401, "invalid_client");
  });

  test("POST /auth/token with an unknown grant_type is 400 unsupported_grant_type", async () => {
    const res = await tokenRequest(w, {
      auth: basicAuth("api-client", "verysecret"),
      body: form({ grant_type: "urn:example:no-such-grant" }),
    });
    await assertOAuthError(res, 400, "unsupported_grant_type");
  });

  test("POST /auth/token without grant_type is 400 invalid_request", async () => {
    const res = await tokenRequest(w, { auth: basicAuth("api-client", "verysecret"), body: form({}) });
    await assertOAuthError(res, 400, "invalid_request");
  });

  test("POST /auth/token with Content-Type text/plain is 400 or 415, never 500", async () => {
    const res = await tokenRequest(w, {
      auth: basicAuth("api-client", "verysecret"),
      headers: { "content-type": "text/plain" },
      body: "grant_type=client_credentials",
    });
    assert.ok([400, 415].includes(res.status), `got ${res.status}: ${await res.text()}`);
  });

  test("POST /auth/token with a broken JSON body is 400", async () => {
    const res = await tokenRequest(w, { auth: basicAuth("api-client", "verysecret"), headers: JSON_CT, body: "{" });
    await assertOAuthError(res, 400);
  });
});

// ------------------------------------------------------------------------------------------------
describe("tutorial: resource owner password grant", () => {
  let w;
  before(async () => {
    w = await startWorker();
    await putClient(w, "myapp", { secret: "appsecret", grant_types: ["password"] });
    await putClient(w, "api-client", { secret: "verysecret", grant_types: ["client_credentials"] });
    await putUser(w, "john", { email: "john@example.com", password: "pass123" });
    await putPolicy(w, "john-policy", { engine: "allow", link: [{ id: "john", resourceType: "User" }] });
  });
  after(() => w?.dispose());

  test("GET /User/john returns the user without its password", async () => {
    const res = await w.admin("GET", "/User/john");
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.id, "john");
    assert.equal(body.email, "john@example.com");
    assert.equal(body.password, undefined);
    assert.ok(!JSON.stringify(body).includes("pass123"));
  });

  for (const username of ["john", "john@example.com"]) {
    test(`password grant with username=${username} gives a token and userinfo; GET /Patient with it is 200`, async () => {
      const res = await tokenRequest(w, {
        auth: basicAuth("myapp", "appsecret"),
        body: form({ grant_type: "password", username, password: "pass123" }),
      });
      const body = await assertTokenResponse(res);
      assert.equal(typeof body.userinfo, "object", `no userinfo: ${JSON.stringify(body)}`);
      assert.equal(body.userinfo.id, "john");
      assert.equal(body.userinfo.password, undefined);
      assert.ok(!JSON.stringify(body.userinfo).includes("pass123"));

      const { payload } = decodeJwt(body.access_token);
      assert.equal(payload.sub, "john");
      assert.equal(payload.client_id, "myapp");

      await assertPatientBundle(await w.fetch("/Patient", { headers: bearer(body.access_token) }));
    });
  }

  test("password grant with a wrong password is 400 invalid_grant", async () => {
    const res = await tokenRequest(w, {
      auth: basicAuth("myapp", "appsecret"),
      body: form({ grant_type: "password", username: "john", password: "nope" }),
    });
    await assertOAuthError(res, 400, "invalid_grant");
  });

  test("password grant for an unknown user is 400 invalid_grant", async () => {
    const res = await tokenRequest(w, {
      auth: basicAuth("myapp", "appsecret"),
      body: form({ grant_type: "password", username: "nobody", password: "pass123" }),
    });
    await assertOAuthError(res, 400, "invalid_grant");
  });

  test("password grant for a client without the password grant is 400 unauthorized_client", async () => {
    const res = await tokenRequest(w, {
      auth: basicAuth("api-client", "verysecret"),
      body: form({ grant_type: "password", username: "john", password: "pass123" }),
    });
    await assertOAuthError(res, 400, "unauthorized_client");
  });

  test("password grant without a password is 400 invalid_request", async () => {
    const res = await tokenRequest(w, {
      auth: basicAuth("myapp", "appsecret"),
      body: form({ grant_type: "password", username: "john" }),
    });
    await assertOAuthError(res, 400, "invalid_request");
  });
});

// ------------------------------------------------------------------------------------------------
describe("admin API: validation and access", () => {
  let w;
  before(async () => {
    w = await startWorker();
  });
  after(() => w?.dispose());

  test("malformed JSON to PUT /Client/x is 400 and the stored record is unchanged", async () => {
    await putClient(w, "x", { secret: "xsecret", grant_types: ["basic"] });
    const before = await json(await w.admin("GET", "/Client/x"));

    const res = await w.admin("PUT", "/Client/x", '{"secret": "other", "grant_types": [', JSON_CT);
    await assertOAuthError(res, 400);

    const afterRes = await w.admin("GET", "/Client/x");
    assert.equal(afterRes.status, 200);
    assert.deepEqual(await json(afterRes), before);
    // The old secret still works, the new one never got stored.
    await putPolicy(w, "x-policy", { engine: "allow", link: [{ id: "x", resourceType: "Client" }] });
    const ok = await w.fetch("/Patient", { headers: { authorization: basicAuth("x", "xsecret") } });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
  });

  test("PUT /Client with a wrong type (grant_types not an array) is 4xx naming grant_types", async () => {
    const res = await w.admin("PUT", "/Client/typed", { secret: "s", grant_types: "basic" });
    const text = await res.text();
    assert.ok([400, 422].includes(res.status), `got ${res.status}: ${text}`);
    assert.match(text, /grant_types/);
  });

  test("PUT /AccessPolicy with an unknown engine is 400/422 naming engine", async () => {
    const res = await w.admin("PUT", "/AccessPolicy/bad-engine", { engine: "no-such-engine" });
    const text = await res.text();
    assert.ok([400, 422].includes(res.status), `got ${res.status}: ${text}`);
    assert.match(text, /engine/);
    const get = await w.admin("GET", "/AccessPolicy/bad-engine");
    assert.equal(get.status, 404, "a refused policy was stored");
    await get.arrayBuffer();
  });

  test("PUT /AccessPolicy with a bad regex in matcho is 4xx naming the field", async () => {
    const res = await w.admin("PUT", "/AccessPolicy/bad-regex", {
      engine: "matcho",
      matcho: { uri: "#/Patient/(unclosed" },
    });
    const text = await res.text();
    assert.ok(res.status >= 400 && res.status < 500, `got ${res.status}: ${text}`);
    assert.match(text, /uri/);
    const get = await w.admin("GET", "/AccessPolicy/bad-regex");
    assert.equal(get.status, 404, "a refused policy was stored");
    await get.arrayBuffer();
  });

  test("a body over 1 MiB is 413 (admin API)", async () => {
    const big = JSON.stringify({ secret: "s", grant_types: ["basic"], pad: "x".repeat(1024 * 1024 + 16) });
    const res = await w.admin("PUT", "/Client/huge", big, JSON_CT);
    assert.equal(res.status, 413, `got ${res.status}`);
    await res.arrayBuffer();
    // The server closes the connection after a 413 without reading the body; node's fetch
    // may reuse that socket for this GET ("fetch failed", nothing sent), so it is sent once more.
    const get = await w.admin("GET", "/Client/huge").catch((e) => {
      if (e instanceof TypeError && e.message === "fetch failed") return w.admin("GET", "/Client/huge");
      throw e;
    });
    assert.equal(get.status, 404, "an oversized record was stored");
    await get.arrayBuffer();
  });

  test("a body over 1 MiB is 413 (token endpoint)", async () => {
    const res = await w.fetch("/auth/token", {
      method: "POST",
      headers: FORM,
      body: form({ grant_type: "client_credentials", pad: "x".repeat(1024 * 1024 + 16) }),
    });
    assert.equal(res.status, 413, `got ${res.status}`);
    await res.arrayBuffer();
  });

  test("admin API without credentials is 401", async () => {
    const res = await w.fetch("/Client");
    assert.equal(res.status, 401);
    assert.ok(res.headers.get("www-authenticate"), "no WWW-Authenticate header");
    await res.arrayBuffer();
  });

  test("admin API with a wrong root secret is 401", async () => {
    const res = await w.fetch("/Client", { headers: { authorization: basicAuth("root", "wrong") } });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
  });

  test("admin API as a non-root client without a policy is 403", async () => {
    await putClient(w, "not-admin", { secret: "plain", grant_types: ["basic"] });
    const res = await w.fetch("/Client", { headers: { authorization: basicAuth("not-admin", "plain") } });
    await assertOAuthError(res, 403);
  });

  test("GET /Client as root lists clients without secrets", async () => {
    const res = await w.admin("GET", "/Client");
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.match(text, /not-admin/);
    assert.ok(!text.includes("plain"), `list returns a secret: ${text}`);
  });

  test("DELETE /Client/not-admin removes it (then GET is 404)", async () => {
    const del = await w.admin("DELETE", "/Client/not-admin");
    assert.ok(del.status >= 200 && del.status < 300, `DELETE answered ${del.status}`);
    await del.arrayBuffer();
    const get = await w.admin("GET", "/Client/not-admin");
    assert.equal(get.status, 404);
    await get.arrayBuffer();
  });
});

// ------------------------------------------------------------------------------------------------
describe("discovery", () => {
  let w;
  before(async () => {
    w = await startWorker();
  });
  after(() => w?.dispose());

  for (const doc of ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]) {
    test(`${doc} has issuer, token_endpoint and jwks_uri`, async () => {
      const res = await w.fetch(doc);
      const body = await json(res);
      assert.equal(res.status, 200);
      assert.equal(typeof body.issuer, "string");
      assert.match(body.token_endpoint, /\/auth\/token$/);
      assert.match(body.jwks_uri, /\/\.well-known\/jwks\.json$/);
    });
  }

  test("/.well-known/jwks.json publishes the signing key's public half only", async () => {
    const res = await w.fetch("/.well-known/jwks.json");
    const body = await json(res);
    assert.equal(res.status, 200);
    const key = body.keys.find((k) => k.kid === w.signingKey.kid);
    assert.ok(key, `signing key ${w.signingKey.kid} not published: ${JSON.stringify(body)}`);
    assert.equal(key.x, w.signingKey.x);
    assert.equal(key.d, undefined);
  });

  test("tokens carry the discovery issuer as iss", async () => {
    await putClient(w, "disco", { secret: "d1sco", grant_types: ["client_credentials"] });
    const conf = await json(await w.fetch("/.well-known/openid-configuration"));
    const res = await tokenRequest(w, {
      auth: basicAuth("disco", "d1sco"),
      body: form({ grant_type: "client_credentials" }),
    });
    const { payload } = decodeJwt((await assertTokenResponse(res)).access_token);
    assert.equal(payload.iss, conf.issuer);
  });
});

// ------------------------------------------------------------------------------------------------
describe("forwarding to ORIGIN_URL", () => {
  let w;
  let origin;
  before(async () => {
    origin = await startOrigin();
    w = await startWorker({ originUrl: origin.url });
    await putClient(w, "fwd", { secret: "fwdsecret", grant_types: ["basic", "password"] });
    await putPolicy(w, "fwd-policy", { engine: "allow", link: [{ id: "fwd", resourceType: "Client" }] });
    await putUser(w, "jane", { email: "jane@example.com", password: "janepass" });
    await putPolicy(w, "jane-policy", { engine: "allow", link: [{ id: "jane", resourceType: "User" }] });
  });
  after(async () => {
    await w?.dispose();
    await origin?.dispose();
  });

  test("an allowed Basic request reaches the origin with x-client-id; the origin's answer comes back", async () => {
    origin.reset();
    const res = await w.fetch("/Patient?name=smith", { headers: { authorization: basicAuth("fwd", "fwdsecret") } });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body, { origin: true, method: "GET", url: "/Patient?name=smith" });
    assert.equal(res.headers.get("x-from-origin"), "yes");
    assert.equal(origin.requests.length, 1);
    const seen = origin.last();
    assert.equal(seen.method, "GET");
    assert.equal(seen.url, "/Patient?name=smith");
    assert.equal(seen.headers["x-client-id"], "fwd");
    assert.equal(seen.headers["x-user-id"], undefined);
  });

  test("spoofed x-client-id, x-user-id and x-auth-* headers are stripped before forwarding", async () => {
    origin.reset();
    const res = await w.fetch("/Patient", {
      headers: {
        authorization: basicAuth("fwd", "fwdsecret"),
        "x-client-id": "evil-client",
        "x-user-id": "evil-user",
        "x-auth-roles": "admin",
        "x-auth-whatever": "evil",
      },
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(origin.requests.length, 1);
    const { headers } = origin.last();
    assert.equal(headers["x-client-id"], "fwd");
    assert.equal(headers["x-user-id"], undefined);
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith("x-auth-")) assert.notEqual(value, "evil", `${name} forwarded`);
      assert.ok(!String(value).includes("evil"), `spoofed value forwarded in ${name}: ${value}`);
    }
  });

  test("a user token's request reaches the origin with x-client-id and x-user-id", async () => {
    const tokenRes = await tokenRequest(w, {
      auth: basicAuth("fwd", "fwdsecret"),
      body: form({ grant_type: "password", username: "jane", password: "janepass" }),
    });
    const { access_token } = await assertTokenResponse(tokenRes);
    origin.reset();
    const res = await w.fetch("/Patient/42", { headers: { ...bearer(access_token), "x-user-id": "evil-user" } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(origin.requests.length, 1);
    assert.equal(origin.last().url, "/Patient/42");
    assert.equal(origin.last().headers["x-client-id"], "fwd");
    assert.equal(origin.last().headers["x-user-id"], "jane");
  });

  test("a request body is forwarded to the origin unchanged", async () => {
    origin.reset();
    const payload = JSON.stringify({ resourceType: "Patient", name: [{ family: "Smith" }] });
    const res = await w.fetch("/Patient", {
      method: "POST",
      headers: { authorization: basicAuth("fwd", "fwdsecret"), "content-type": "application/fhir+json" },
      body: payload,
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(origin.last().method, "POST");
    assert.equal(origin.last().body, payload);
    assert.equal(origin.last().headers["content-type"], "application/fhir+json");
  });

  test("a denied request never reaches the origin", async () => {
    origin.reset();
    const res = await w.fetch("/Patient", { headers: { authorization: basicAuth("fwd", "wrong") } });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
    assert.equal(origin.requests.length, 0);
  });
});
