// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/client-credentials-grant.md
// ("How to configure Client Credentials Grant"). The resources are the docs' YAML as JSON; the
// requests are the docs' requests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, call, assertForwarded, assertRefused, token, bearer, basicAuth } from "./lib.mjs";
import { decodeJwt } from "../e2e/harness.mjs";

let ctx;
before(async () => {
  ctx = await boot();
  // "Configure Client": PUT /Client/api-client, secret: verysecret, grant_types: [client_credentials]
  await admin(ctx.w, "PUT", "/Client/api-client", { secret: "verysecret", grant_types: ["client_credentials"] });
  // "Since by default new client has no access ...": PUT /AccessPolicy/api-client
  await admin(ctx.w, "PUT", "/AccessPolicy/api-client", { engine: "allow", link: [{ id: "api-client", resourceType: "Client" }] });
});
after(async () => ctx?.dispose());

// "Get Access Token", tab "Request with Authorization header", verbatim (the header is
// base64("api-client:verysecret")); "Response with simple client": 200, token_type Bearer.
test("client-credentials-grant.md: token with the Authorization header, form body", async () => {
  const { res, body } = await token(ctx.w, { grant_type: "client_credentials" }, { auth: "Basic YXBpLWNsaWVudDp2ZXJ5c2VjcmV0" });
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.equal(typeof body.access_token, "string");
});

// "Get Access Token", tab "Request with credentials in body": a JSON body.
test("client-credentials-grant.md: token with client_id/client_secret in a JSON body", async () => {
  const { res, body } = await token(
    ctx.w,
    { grant_type: "client_credentials", client_id: "api-client", client_secret: "verysecret" },
    { asJson: true },
  );
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.equal(typeof body.access_token, "string");
});

// "Using Access Token": GET /fhir/Patient with the bearer token.
test("client-credentials-grant.md: GET /fhir/Patient with the access token", async () => {
  const { body } = await token(ctx.w, { grant_type: "client_credentials" }, { auth: "Basic YXBpLWNsaWVudDp2ZXJ5c2VjcmV0" });
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(body.access_token) }), "GET /fhir/Patient");
});

// "You can also configure token's format and expiration, as well refresh the token": the second
// PUT /Client/api-client, verbatim; "Response with JWT": expires_in and a refresh_token.
test("client-credentials-grant.md: auth.client_credentials with refresh_token: true gives a refresh token", async () => {
  await admin(ctx.w, "PUT", "/Client/api-client-jwt", {
    secret: "verysecret",
    grant_types: ["client_credentials"],
    auth: {
      client_credentials: {
        access_token_expiration: 600,
        token_format: "jwt",
        refresh_token: true,
        refresh_token_expiration: 86400,
      },
    },
  });
  const { res, body } = await token(ctx.w, { grant_type: "client_credentials" }, { auth: basicAuth("api-client-jwt", "verysecret") });
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.expires_in, 600);
  assert.equal(decodeJwt(body.access_token).payload.exp - decodeJwt(body.access_token).payload.iat, 600);
  assert.equal(typeof body.refresh_token, "string", `no refresh_token: ${JSON.stringify(body)}`);

  // "Refresh Access Token": {grant_type: refresh_token, client_id, refresh_token} as JSON; the
  // doc's client_id `webapp` is this client here. The doc sends no client_secret.
  // Difference: a confidential client authenticates at the token endpoint for every grant
  // (RFC 6749 6 and 3.2.1), so the secret goes with the refresh request; without it, 401.
  const noSecret = await token(
    ctx.w,
    { grant_type: "refresh_token", client_id: "api-client-jwt", refresh_token: body.refresh_token },
    { asJson: true },
  );
  assert.equal(noSecret.res.status, 401, JSON.stringify(noSecret.body));
  assert.equal(noSecret.body.error, "invalid_client");
  const refreshed = await token(
    ctx.w,
    { grant_type: "refresh_token", client_id: "api-client-jwt", client_secret: "verysecret", refresh_token: body.refresh_token },
    { asJson: true },
  );
  assert.equal(refreshed.res.status, 200, JSON.stringify(refreshed.body));
  assert.equal(typeof refreshed.body.access_token, "string");
});

// "SMART App client with scopes": PUT /Client/my-smart-client (type smart-app, scope
// [system/*.read]) and the token request "Request with scopes (SMART App)".
// Difference: the doc's response lists the wildcard expanded to every resource type
// ("system/Patient.read system/Observation.read ..."); here `scope` is the granted scope as asked
// (RFC 6749 5.1), `system/*.read`, enforced as a wildcard on every request.
test("client-credentials-grant.md: SMART backend client with scope system/*.read", async () => {
  await admin(ctx.w, "PUT", "/Client/my-smart-client", {
    secret: "verysecret",
    type: "smart-app",
    grant_types: ["client_credentials"],
    scope: ["system/*.read"],
  });
  const { res, body } = await token(
    ctx.w,
    { grant_type: "client_credentials", client_id: "my-smart-client", client_secret: "verysecret", scope: "system/*.read" },
    { asJson: true },
  );
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.match(body.scope, /system\/\*\.read|system\/Patient\.read/);
});

// "SMART App client with scopes", hint: "Only system/ scopes are allowed for client_credentials
// grant. Scopes with patient/ or user/ prefix will be rejected".
test("client-credentials-grant.md: patient/ and user/ scopes are rejected for client_credentials", async () => {
  await admin(ctx.w, "PUT", "/Client/my-smart-client-2", {
    secret: "verysecret",
    type: "smart-app",
    grant_types: ["client_credentials"],
    scope: ["system/*.read"],
  });
  for (const scope of ["patient/*.read", "user/*.read"]) {
    const { res, body } = await token(
      ctx.w,
      { grant_type: "client_credentials", client_id: "my-smart-client-2", client_secret: "verysecret", scope },
      { asJson: true },
    );
    assert.equal(res.status, 400, `${scope}: ${JSON.stringify(body)}`);
    assert.equal(body.error, "invalid_scope", scope);
  }
});

// "Audience": "If you use the JWT token format and provide in the token request additional
// parameter `audience`, resulting token will set `aud` claim into the value you've sent."
// Difference: a client may only name an audience it is registered for (`audience` on the Client, a
// string or `#regex`), else `invalid_target`: an open audience would let any client mint tokens
// for any API that trusts this issuer.
test("client-credentials-grant.md: audience parameter sets aud (for an audience the client is registered for)", async () => {
  await admin(ctx.w, "PUT", "/Client/aud-client", {
    secret: "verysecret",
    grant_types: ["client_credentials"],
    audience: "http://resource.server.com",
    auth: { client_credentials: { token_format: "jwt" } },
  });
  const { res, body } = await token(
    ctx.w,
    { grant_type: "client_credentials", audience: "http://resource.server.com" },
    { auth: basicAuth("aud-client", "verysecret") },
  );
  assert.equal(res.status, 200, JSON.stringify(body));
  const aud = decodeJwt(body.access_token).payload.aud;
  assert.ok(aud === "http://resource.server.com" || (Array.isArray(aud) && aud.includes("http://resource.server.com")), `aud: ${aud}`);
});

// "Revoke Access Token (Close Session)": `DELETE /fhir/Session` with the token.
// Difference: Aidbox-only endpoint. There is no Session resource here (`DELETE /fhir/Session` is
// just another path to authorize); a token is revoked with RFC 7009 `POST /auth/revoke`, after
// which it is refused (401).
test("client-credentials-grant.md: close the session (here: POST /auth/revoke)", async () => {
  const { body } = await token(ctx.w, { grant_type: "client_credentials" }, { auth: "Basic YXBpLWNsaWVudDp2ZXJ5c2VjcmV0" });
  const rev = await ctx.w.fetch("/auth/revoke", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: "Basic YXBpLWNsaWVudDp2ZXJ5c2VjcmV0" },
    body: new URLSearchParams({ token: body.access_token }).toString(),
  });
  assert.equal(rev.status, 200, await rev.text());
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(body.access_token) }), "revoked token", 401);
});
