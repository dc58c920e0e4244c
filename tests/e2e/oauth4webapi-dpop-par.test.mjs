// oauth4webapi (pinned in package.json) against the Worker's DPoP (RFC 9449) and pushed
// authorization requests (RFC 9126), written against the issue 17 contract (COMMON10.md):
// POST /auth/par answering 201 {request_uri: urn:ietf:params:oauth:request_uri:..., expires_in: 60},
// `pushed_authorization_request_endpoint` and `dpop_signing_alg_values_supported` in the
// metadata, `token_type: DPoP` and `cnf.jkt` in DPoP-bound access tokens.
//
// PENDING: named *.pending.mjs so that `make test` (tests/e2e/*.test.mjs) does not run it until
// the DPoP and PAR branches are merged; then rename it to oauth4webapi-dpop-par.test.mjs.
//
//   node --test tests/e2e/oauth4webapi-dpop-par.pending.mjs      (after `make build`)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";
import { calculateJwkThumbprint, exportJWK } from "jose";
import { startWorker, startOrigin, decodeJwt } from "./harness.mjs";
import { put, interaction, postLogin, authorizeQuery } from "./attacks-lib.mjs";

const CB = "https://app.example/cb";
const insecure = { [oauth.allowInsecureRequests]: true };

let w;
let origin;
let as;
const spa = { client_id: "dp-spa", token_endpoint_auth_method: "none" };
const web = { client_id: "dp-web" };
const WEB_SECRET = "dp-web-secret-1";

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  const codeClient = (extra = {}) => ({
    grant_types: ["authorization_code"],
    first_party: true,
    auth: { authorization_code: { redirect_uri: CB, pkce: true, refresh_token: true } },
    ...extra,
  });
  await put(w, `/Client/${spa.client_id}`, codeClient());
  await put(w, `/Client/${web.client_id}`, codeClient({ secret: WEB_SECRET }));
  await put(w, "/Client/dp-bound", codeClient({ dpop_bound_access_tokens: true }));
  await put(w, "/User/dana", { email: "dana@example.com", password: "dana-pass-1" });
  await put(w, "/AccessPolicy/dana", { engine: "allow", link: [{ id: "dana", resourceType: "User" }] });
  const issuer = new URL(w.url);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

/** Signs dana in over HTTP for an authorize query; returns the callback URL. */
async function signIn(query) {
  const { csrf, jar } = await interaction(w, query);
  const res = await postLogin(w, { query, csrf, jar, username: "dana", password: "dana-pass-1" });
  assert.equal(res.status, 303, `login answered ${res.status}: ${await res.text()}`);
  return new URL(res.headers.get("location"), w.url);
}

/** A fresh authorization request's parameters with PKCE, state and nonce. */
async function codeRequest(client, extra = {}) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const params = {
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: CB,
    scope: "openid offline_access",
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    ...extra,
  };
  return { verifier, state, params };
}

/** Authorize (query as given), sign in, validate the response, redeem; returns the token response. */
async function codeFlow(client, clientAuth, { query, state, verifier }, options = {}) {
  const callback = await signIn(query);
  const params = oauth.validateAuthResponse(as, client, callback, state);
  const res = await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, CB, verifier, { ...insecure, ...options });
  return oauth.processAuthorizationCodeResponse(as, client, res, options.DPoP ? {} : undefined);
}

describe("PAR (RFC 9126) with oauth4webapi", () => {
  test("metadata names the PAR endpoint", () => {
    assert.equal(as.pushed_authorization_request_endpoint, `${w.url}/auth/par`);
    assert.equal(as.require_pushed_authorization_requests, false);
  });

  for (const [name, client, clientAuth] of [
    ["public client (none)", spa, oauth.None()],
    ["confidential client (client_secret_basic)", web, oauth.ClientSecretBasic(WEB_SECRET)],
  ]) {
    test(`${name}: pushedAuthorizationRequest -> request_uri -> authorize with client_id + request_uri -> tokens`, async () => {
      const { verifier, state, params } = await codeRequest(client);
      const pushed = await oauth.processPushedAuthorizationResponse(
        as,
        client,
        await oauth.pushedAuthorizationRequest(as, client, clientAuth, params, insecure),
      );
      assert.match(pushed.request_uri, /^urn:ietf:params:oauth:request_uri:/);
      assert.equal(pushed.expires_in, 60);
      const query = authorizeQuery({ client_id: client.client_id, request_uri: pushed.request_uri });
      const tokens = await codeFlow(client, clientAuth, { query, state, verifier });
      assert.ok(tokens.access_token);
      // The request_uri was single use.
      const again = await w.fetch(`/auth/authorize?${query}`);
      await again.arrayBuffer();
      assert.equal(again.status, 400);
    });
  }

  test("a wrong client secret at the PAR endpoint is invalid_client", async () => {
    const { params } = await codeRequest(web);
    const res = await oauth.pushedAuthorizationRequest(as, web, oauth.ClientSecretBasic("wrong"), params, insecure);
    await assert.rejects(oauth.processPushedAuthorizationResponse(as, web, res), (e) => e.status === 401);
  });
});

describe("DPoP (RFC 9449) with oauth4webapi", () => {
  test("metadata lists the DPoP algorithms", () => {
    assert.ok(as.dpop_signing_alg_values_supported?.includes("ES256"), JSON.stringify(as.dpop_signing_alg_values_supported));
  });

  // oauth4webapi signs with an Ed25519 key as `alg: "Ed25519"` (RFC 9864, fully-specified
  // algorithms), not the polymorphic "EdDSA".
  for (const alg of ["ES256", "EdDSA"]) {
    test(`${alg}: the code grant with a DPoP proof gets a DPoP-bound token (token_type DPoP, cnf.jkt) that works only with a proof`, async () => {
      const keyPair = await oauth.generateKeyPair(alg);
      const dpop = oauth.DPoP(spa, keyPair);
      const { verifier, state, params } = await codeRequest(spa);
      const tokens = await codeFlow(spa, oauth.None(), { query: authorizeQuery(params), state, verifier }, { DPoP: dpop });
      assert.equal(tokens.token_type.toLowerCase(), "dpop");
      const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
      assert.equal(await dpop.calculateThumbprint(), jkt);
      assert.deepEqual(decodeJwt(tokens.access_token).payload.cnf, { jkt });

      // The resource server's view: oauth4webapi checks the proof and the binding.
      origin.reset();
      const url = new URL(`${w.url}/Patient`);
      const res = await oauth.protectedResourceRequest(tokens.access_token, "GET", url, undefined, undefined, { ...insecure, DPoP: dpop });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(origin.requests.length, 1);

      // Without the proof (as a Bearer token) the authorizer refuses it and the origin sees nothing.
      origin.reset();
      const bare = await w.fetch("/Patient", { headers: { authorization: `Bearer ${tokens.access_token}` } });
      await bare.arrayBuffer();
      assert.equal(bare.status, 401);
      assert.equal(origin.requests.length, 0);

      // Refresh with the same key: a new DPoP-bound token for the same key.
      const refreshed = await oauth.processRefreshTokenResponse(
        as,
        spa,
        await oauth.refreshTokenGrantRequest(as, spa, oauth.None(), tokens.refresh_token, { ...insecure, DPoP: dpop }),
      );
      assert.equal(refreshed.token_type.toLowerCase(), "dpop");
      assert.deepEqual(decodeJwt(refreshed.access_token).payload.cnf, { jkt });

      // The public client's refresh token is bound to the key: another key cannot use it.
      const other = oauth.DPoP(spa, await oauth.generateKeyPair(alg));
      const stolen = await oauth.refreshTokenGrantRequest(as, spa, oauth.None(), refreshed.refresh_token, { ...insecure, DPoP: other });
      await assert.rejects(oauth.processRefreshTokenResponse(as, spa, stolen), (e) => e.status === 400 || e.status === 401);
    });
  }

  test("validateJwtAccessToken with requireDPoP accepts the bound token with its proof", async () => {
    const keyPair = await oauth.generateKeyPair("ES256");
    const dpop = oauth.DPoP(spa, keyPair);
    const { verifier, state, params } = await codeRequest(spa);
    const tokens = await codeFlow(spa, oauth.None(), { query: authorizeQuery(params), state, verifier }, { DPoP: dpop });
    // Capture the request oauth4webapi sends (Authorization: DPoP ..., DPoP: <proof>) and hand it
    // to the resource-server validation.
    let sent;
    const capture = {
      ...insecure,
      DPoP: dpop,
      [oauth.customFetch]: (url, init) => {
        sent = new Request(url, init);
        return fetch(url, init);
      },
    };
    await oauth.protectedResourceRequest(tokens.access_token, "GET", new URL(`${w.url}/Patient`), undefined, undefined, capture);
    assert.match(sent.headers.get("authorization"), /^DPoP /);
    const claims = await oauth.validateJwtAccessToken(as, sent, w.url, { ...insecure, requireDPoP: true });
    assert.equal(claims.cnf.jkt, await dpop.calculateThumbprint());
  });

  test("dpop_bound_access_tokens: the token endpoint refuses the code grant without a proof", async () => {
    const bound = { client_id: "dp-bound", token_endpoint_auth_method: "none" };
    const { verifier, state, params } = await codeRequest(bound);
    const callback = await signIn(authorizeQuery(params));
    const cb = oauth.validateAuthResponse(as, bound, callback, state);
    const res = await oauth.authorizationCodeGrantRequest(as, bound, oauth.None(), cb, CB, verifier, insecure);
    await assert.rejects(oauth.processAuthorizationCodeResponse(as, bound, res), (e) => e.status === 400);
  });

  test("PAR and DPoP together: push, authorize, redeem with a proof", async () => {
    const dpop = oauth.DPoP(spa, await oauth.generateKeyPair("ES256"));
    const { verifier, state, params } = await codeRequest(spa);
    const pushed = await oauth.processPushedAuthorizationResponse(
      as,
      spa,
      await oauth.pushedAuthorizationRequest(as, spa, oauth.None(), params, { ...insecure, DPoP: dpop }),
    );
    const query = authorizeQuery({ client_id: spa.client_id, request_uri: pushed.request_uri });
    const tokens = await codeFlow(spa, oauth.None(), { query, state, verifier }, { DPoP: dpop });
    assert.equal(tokens.token_type.toLowerCase(), "dpop");
    assert.equal(decodeJwt(tokens.access_token).payload.cnf.jkt, await dpop.calculateThumbprint());
  });
});
