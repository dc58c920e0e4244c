// The Worker driven by someone else's strict client: panva's oauth4webapi (pinned in
// package.json). Discovery (OIDC and RFC 8414), authorization code + PKCE with RFC 9207 `iss`
// checking, refresh, revocation, introspection, client_credentials with client_secret_basic,
// client_secret_post and private_key_jwt, and RFC 9068 validation of our access tokens from the
// resource-server side (validateJwtAccessToken). The login step runs over plain HTTP the way the
// login page posts it (tests/e2e/attacks-lib.mjs). DPoP and PAR are in
// oauth4webapi-dpop-par.test.mjs.
//
//   node --test tests/e2e/oauth4webapi.test.mjs      (after `make build`)
//
// oauth4webapi refuses http:// unless told: `allowInsecureRequests` is set only because the Worker
// under test listens on http://127.0.0.1.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, webcrypto } from "node:crypto";
import * as oauth from "oauth4webapi";
import { startWorker, startOrigin, decodeJwt } from "./harness.mjs";
import { put, interaction, postLogin, authorizeQuery } from "./attacks-lib.mjs";

const CB = "https://app.example/cb";
const insecure = { [oauth.allowInsecureRequests]: true };

let w;
let origin;
let issuer;
/** Authorization server metadata as oauth4webapi validated it. */
let as;

const spa = { client_id: "o4w-spa", token_endpoint_auth_method: "none" };
const api = { client_id: "o4w-api" };
const API_SECRET = "o4w-api-secret-123";
const jwtClient = { client_id: "o4w-jwt" };
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwtKey = { kid: "o4w-ec-1", key: await webcrypto.subtle.importKey("jwk", ec.privateKey.export({ format: "jwk" }), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]) };

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  issuer = new URL(w.url);
  await put(w, `/Client/${spa.client_id}`, {
    grant_types: ["authorization_code"],
    first_party: true,
    auth: { authorization_code: { redirect_uri: CB, pkce: true, refresh_token: true } },
  });
  await put(w, `/Client/${api.client_id}`, { secret: API_SECRET, grant_types: ["client_credentials"] });
  await put(w, `/Client/${jwtClient.client_id}`, {
    grant_types: ["client_credentials"],
    jwks: { keys: [{ ...ec.publicKey.export({ format: "jwk" }), kid: jwtKey.kid, alg: "ES256" }] },
  });
  await put(w, "/User/alice", { email: "alice@example.com", password: "alice-pass-1" });
  await put(w, "/AccessPolicy/alice", { engine: "allow", link: [{ id: "alice", resourceType: "User" }] });
  await put(w, "/AccessPolicy/o4w-clients", {
    engine: "allow",
    link: [
      { id: api.client_id, resourceType: "Client" },
      { id: jwtClient.client_id, resourceType: "Client" },
    ],
  });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

/** Signs alice in over HTTP for `query`; returns the URL the Worker redirected to. */
async function signIn(query) {
  const { csrf, jar } = await interaction(w, query);
  const res = await postLogin(w, { query, csrf, jar, username: "alice", password: "alice-pass-1" });
  assert.equal(res.status, 303, `login answered ${res.status}: ${await res.text()}`);
  return new URL(res.headers.get("location"), w.url);
}

/** The resource-server view: oauth4webapi validates the bearer token of a request for our API. */
function validateAtResourceServer(accessToken) {
  const request = new Request(`${w.url}/Patient`, { headers: { authorization: `Bearer ${accessToken}` } });
  return oauth.validateJwtAccessToken(as, request, w.url, insecure);
}

/** An oauth4webapi WWWAuthenticateChallengeError with this status and scheme (and RFC 6750 `error`). */
function challenged(e, status, scheme, error) {
  if (!(e instanceof oauth.WWWAuthenticateChallengeError)) return false;
  const c = e.cause.find((x) => x.scheme === scheme);
  return e.status === status && !!c && (!error || c.parameters.error === error);
}

/** The OAuth error body of a rejected token request (oauth4webapi's error, whichever class). */
async function errorBody(promise) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof oauth.WWWAuthenticateChallengeError) return { status: e.status, ...(await e.response.json()) };
    if (e instanceof oauth.ResponseBodyError) return { status: e.status, ...e.cause };
    throw e;
  }
  assert.fail("expected the request to be refused");
}

describe("oauth4webapi against the Worker", () => {
  /** Tokens of the code flow, handed from test to test. */
  let tokens;

  test("discovery: OIDC and RFC 8414 metadata pass processDiscoveryResponse", async () => {
    const oauth2 = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...insecure }));
    as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: "oidc", ...insecure }));
    for (const m of [as, oauth2]) {
      assert.equal(m.issuer, w.url);
      assert.equal(m.token_endpoint, `${w.url}/auth/token`);
      assert.ok(m.code_challenge_methods_supported.includes("S256"));
      assert.equal(m.authorization_response_iss_parameter_supported, true);
    }
  });

  test("authorization code + PKCE: validateAuthResponse checks state and iss, the code redeems with an ID token", async () => {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const query = authorizeQuery({
      response_type: "code",
      client_id: spa.client_id,
      redirect_uri: CB,
      scope: "openid profile offline_access",
      state,
      nonce,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    });
    assert.equal(as.authorization_endpoint, `${w.url}/auth/authorize`);
    const callback = await signIn(query);
    assert.equal(callback.searchParams.get("iss"), w.url, `RFC 9207 iss in ${callback}`);

    // Negative controls: a wrong iss, a missing iss (the server says it always sends one) and
    // a wrong state are each refused by the library before any code is redeemed.
    const tampered = new URL(callback);
    tampered.searchParams.set("iss", "https://evil.example");
    const refused = (what) => (e) => e.code === oauth.INVALID_RESPONSE && e.message.includes(what);
    assert.throws(() => oauth.validateAuthResponse(as, spa, tampered, state), refused('unexpected "iss"'));
    const noIss = new URL(callback);
    noIss.searchParams.delete("iss");
    assert.throws(() => oauth.validateAuthResponse(as, spa, noIss, state), refused('"iss" (issuer) missing'));
    assert.throws(() => oauth.validateAuthResponse(as, spa, callback, "another-state"), refused('unexpected "state"'));

    const params = oauth.validateAuthResponse(as, spa, callback, state);
    const res = await oauth.authorizationCodeGrantRequest(as, spa, oauth.None(), params, CB, verifier, insecure);
    tokens = await oauth.processAuthorizationCodeResponse(as, spa, res, { expectedNonce: nonce, requireIdToken: true });
    assert.equal(tokens.token_type.toLowerCase(), "bearer");
    assert.ok(tokens.refresh_token, "refresh token (offline_access)");
    const idClaims = oauth.getValidatedIdTokenClaims(tokens);
    assert.equal(idClaims.iss, w.url);
    assert.equal(idClaims.aud, spa.client_id);
    assert.equal(idClaims.nonce, nonce);
  });

  test("RFC 9068: validateJwtAccessToken accepts the access token at the resource server", async () => {
    const claims = await validateAtResourceServer(tokens.access_token);
    assert.equal(decodeJwt(tokens.access_token).header.typ, "at+jwt");
    assert.equal(claims.iss, w.url);
    assert.equal(claims.client_id, spa.client_id);
    assert.ok(claims.sub && claims.jti && claims.iat && claims.exp, JSON.stringify(claims));
    // Negative control: the same token for another audience is refused.
    const request = new Request(`${w.url}/Patient`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    await assert.rejects(oauth.validateJwtAccessToken(as, request, "https://other-api.example", insecure), (e) => e.code === oauth.JWT_CLAIM_COMPARISON);
  });

  test("protectedResourceRequest: the bearer token reaches the origin through the authorizer", async () => {
    origin.reset();
    const res = await oauth.protectedResourceRequest(tokens.access_token, "GET", new URL(`${w.url}/Patient`), undefined, undefined, insecure);
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { origin: true, method: "GET", url: "/Patient" });
    assert.equal(origin.requests.length, 1);
  });

  test("refresh: refreshTokenGrantRequest rotates the refresh token", async () => {
    const res = await oauth.refreshTokenGrantRequest(as, spa, oauth.None(), tokens.refresh_token, insecure);
    const next = await oauth.processRefreshTokenResponse(as, spa, res);
    assert.ok(next.access_token);
    assert.ok(next.refresh_token && next.refresh_token !== tokens.refresh_token, "rotated refresh token");
    await validateAtResourceServer(next.access_token);
    tokens = { ...next, first: tokens };
  });

  test("introspection: a confidential client sees the access token active, with RFC 7662 members", async () => {
    const res = await oauth.introspectionRequest(as, api, oauth.ClientSecretBasic(API_SECRET), tokens.access_token, insecure);
    const body = await oauth.processIntrospectionResponse(as, api, res);
    assert.equal(body.active, true, JSON.stringify(body));
    assert.equal(body.client_id, spa.client_id);
    assert.equal(body.iss, w.url);
    assert.ok(body.sub && body.exp && body.iat && body.jti, JSON.stringify(body));
  });

  test("revocation: the public client revokes its refresh token and the access token; both are dead after", async () => {
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, spa, oauth.None(), tokens.refresh_token, insecure));
    const refreshed = await oauth.refreshTokenGrantRequest(as, spa, oauth.None(), tokens.refresh_token, insecure);
    await assert.rejects(oauth.processRefreshTokenResponse(as, spa, refreshed), (e) => e instanceof oauth.ResponseBodyError && e.error === "invalid_grant");

    await oauth.processRevocationResponse(await oauth.revocationRequest(as, spa, oauth.None(), tokens.access_token, insecure));
    const res = await oauth.introspectionRequest(as, api, oauth.ClientSecretBasic(API_SECRET), tokens.access_token, insecure);
    assert.equal((await oauth.processIntrospectionResponse(as, api, res)).active, false);
    // The authorizer's RFC 6750 challenge surfaces as oauth4webapi's WWWAuthenticateChallengeError.
    await assert.rejects(
      oauth.protectedResourceRequest(tokens.access_token, "GET", new URL(`${w.url}/Patient`), undefined, undefined, insecure),
      (e) => challenged(e, 401, "bearer", "invalid_token"),
    );
  });

  test("client_credentials with client_secret_basic and client_secret_post", async () => {
    for (const auth of [oauth.ClientSecretBasic(API_SECRET), oauth.ClientSecretPost(API_SECRET)]) {
      const res = await oauth.clientCredentialsGrantRequest(as, api, auth, {}, insecure);
      const body = await oauth.processClientCredentialsResponse(as, api, res);
      const claims = await validateAtResourceServer(body.access_token);
      assert.equal(claims.client_id, api.client_id);
    }
    // Negative controls: a wrong secret is invalid_client, over Basic with its RFC 6749 5.2 challenge.
    const bad = await oauth.clientCredentialsGrantRequest(as, api, oauth.ClientSecretBasic("wrong"), {}, insecure);
    await assert.rejects(oauth.processClientCredentialsResponse(as, api, bad), (e) => challenged(e, 401, "basic"));
    const badPost = await oauth.clientCredentialsGrantRequest(as, api, oauth.ClientSecretPost("wrong"), {}, insecure);
    const postRefusal = await errorBody(oauth.processClientCredentialsResponse(as, api, badPost));
    assert.equal(postRefusal.status, 401);
    assert.equal(postRefusal.error, "invalid_client");
  });

  test("private_key_jwt: oauth4webapi's PrivateKeyJwt assertion authenticates client_credentials", async () => {
    let assertionSent;
    const spy = {
      ...insecure,
      [oauth.customFetch]: (url, init) => {
        assertionSent = decodeJwt(new URLSearchParams(init.body.toString()).get("client_assertion")).payload;
        return fetch(url, init);
      },
    };
    const res = await oauth.clientCredentialsGrantRequest(as, jwtClient, oauth.PrivateKeyJwt(jwtKey), {}, spy);
    const body = await oauth.processClientCredentialsResponse(as, jwtClient, res);
    const claims = await validateAtResourceServer(body.access_token);
    assert.equal(claims.client_id, jwtClient.client_id);
    origin.reset();
    const call = await oauth.protectedResourceRequest(body.access_token, "GET", new URL(`${w.url}/Patient`), undefined, undefined, insecure);
    assert.equal(call.status, 200, await call.clone().text());
    assert.equal(origin.requests.length, 1);
    // The assertion's aud is our issuer identifier (draft-ietf-oauth-rfc7523bis); the token
    // endpoint URL (SMART, OIDC Core 9) is accepted as well.
    assert.equal(assertionSent.aud, w.url);
    const viaEndpoint = oauth.PrivateKeyJwt(jwtKey, { [oauth.modifyAssertion]: (_h, p) => void (p.aud = as.token_endpoint) });
    await oauth.processClientCredentialsResponse(as, jwtClient, await oauth.clientCredentialsGrantRequest(as, jwtClient, viaEndpoint, {}, insecure));

    // Negative controls: another audience, and an assertion signed by another key, are refused.
    const elsewhere = oauth.PrivateKeyJwt(jwtKey, { [oauth.modifyAssertion]: (_h, p) => void (p.aud = "https://other-as.example") });
    const res2 = await oauth.clientCredentialsGrantRequest(as, jwtClient, elsewhere, {}, insecure);
    const refusal = await errorBody(oauth.processClientCredentialsResponse(as, jwtClient, res2));
    assert.equal(refusal.error, "invalid_client");
    assert.match(refusal.error_description, /another audience/);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const otherKey = { kid: jwtKey.kid, key: await webcrypto.subtle.importKey("jwk", other.privateKey.export({ format: "jwk" }), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]) };
    const bad = await oauth.clientCredentialsGrantRequest(as, jwtClient, oauth.PrivateKeyJwt(otherKey), {}, insecure);
    await assert.rejects(oauth.processClientCredentialsResponse(as, jwtClient, bad), (e) => challenged(e, 401, "basic"));
  });
});
