// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/set-up-token-introspection.md
// ("Set-up token introspection"), docs/access-control/authentication/token-introspector.md
// ("Token Introspector") and accesspolicy-examples.md #11. Resources are the docs' YAML as JSON,
// with `<AUTH_SERVER_URL>`-style placeholders filled in (said where).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { generateKeyPairSync, sign } from "node:crypto";
import { boot, admin, adminRefused, call, assertForwarded, assertRefused, bearer, hs256, nowSecs } from "./lib.mjs";

const ISS = "https://auth.example.com";
const SECRET = "very-secret-but-32-bytes-long-for-hs256!";
let ctx;
let introspection; // a stand-in RFC 7662 endpoint: { url, requests, answer }
before(async () => {
  ctx = await boot();
  introspection = await startIntrospection();
});
after(async () => {
  await ctx?.dispose();
  await introspection?.close();
});

const claims = (extra = {}) => ({ iss: ISS, iat: nowSecs(), exp: nowSecs() + 600, aud: ctx.w.url, ...extra });
const dropPolicy = (id) => ctx.w.admin("DELETE", `/AccessPolicy/${id}`).then((r) => r.text());

async function startIntrospection() {
  const state = { requests: [], answer: { active: true, sub: "opaque-user", scope: "read" } };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      state.requests.push({ headers: req.headers, body });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(state.answer));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  state.url = `http://127.0.0.1:${server.address().port}/introspect`;
  state.close = () => new Promise((r) => server.close(() => r()));
  return state;
}

// set-up-token-introspection.md, "1. Token secret": jwt.secret very-secret.
// Difference: an HS256 secret shorter than 32 bytes is refused (422 naming jwt.secret), see
// rbac.test.mjs; the tests below use a 32+ byte secret.
test("set-up-token-introspection.md: jwt.secret very-secret is refused with 422", async () => {
  const refused = await adminRefused(ctx.w, "PUT", "/TokenIntrospector/external-auth-server", {
    resourceType: "TokenIntrospector",
    id: "external-auth-server",
    type: "jwt",
    jwt: { iss: ISS, secret: "very-secret" },
  });
  assert.match(refused.text, /jwt\.secret/);
});

// set-up-token-introspection.md, "Define AccessPolicy" (external-auth-server, json-schema on
// jwt.iss) and "Use the JWT to get the access": GET /fhir/Patient with the external JWT.
// Difference: the doc's schema says `constant` (not a JSON Schema keyword; Aidbox ignores it, so
// its policy admits any issuer's token that reaches it); refused here on write, `const` works.
test("set-up-token-introspection.md: HS256 JWT of auth.example.com reaches GET /fhir/Patient", async () => {
  await admin(ctx.w, "PUT", "/TokenIntrospector/external-auth-server", {
    resourceType: "TokenIntrospector",
    id: "external-auth-server",
    type: "jwt",
    jwt: { iss: ISS, secret: SECRET },
  });
  const policy = (c) => ({
    resourceType: "AccessPolicy",
    id: "external-auth-server",
    engine: "json-schema",
    schema: { required: ["jwt"], properties: { jwt: { required: ["iss"], properties: { iss: { [c]: ISS } } } } },
  });
  const refused = await adminRefused(ctx.w, "PUT", "/AccessPolicy/external-auth-server", policy("constant"));
  assert.match(refused.text, /constant/);
  await admin(ctx.w, "PUT", "/AccessPolicy/external-auth-server", policy("const"));
  try {
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(hs256(claims({ sub: "basic" }), SECRET)) }), "external JWT");
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(hs256(claims({ sub: "basic" }), "another-secret-another-secret-32!!")) }), "bad signature", 401);
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(hs256(claims({ exp: nowSecs() - 120 }), SECRET)) }), "expired", 401);
  } finally {
    await dropPolicy("external-auth-server");
  }
});

// set-up-token-introspection.md, "Create User" (some-user-id) and "Using box_user claim"; and
// token-introspector.md, "User Resolution": the User's data reaches policies as `user`
// (user.data.department: cardiology), `sub` stays under `jwt.sub`.
// Difference: user resolution is opt-in per introspector (`map_user`: which claims name a User,
// and what that User must contain), so an issuer speaks only for the users it was given; the
// doc's introspector verbatim gives `user: null` (403 here), the same one with map_user resolves
// box_user, then sub, as Aidbox does.
test("token-introspector.md: box_user (then sub) names the User whose data policies see", async () => {
  await admin(ctx.w, "PUT", "/User/some-user-id", { resourceType: "User", id: "some-user-id", data: { id: "basic", sub: "basic", email: "basic@example.com" } });
  await admin(ctx.w, "PUT", "/User/my-user", { resourceType: "User", id: "my-user", email: "user@example.com", data: { practitioner_id: "pract-123", department: "cardiology" } });
  await admin(ctx.w, "PUT", "/AccessPolicy/cardiology", { resourceType: "AccessPolicy", engine: "matcho", matcho: { user: { data: { department: "cardiology" } } } });
  await admin(ctx.w, "PUT", "/TokenIntrospector/external-auth-server", {
    resourceType: "TokenIntrospector",
    id: "external-auth-server",
    type: "jwt",
    jwt: { iss: ISS, secret: SECRET },
  });
  try {
    const boxUser = hs256(claims({ sub: "keycloak-uuid-1234", box_user: "my-user" }), SECRET);
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(boxUser) }), "without map_user: user is null");

    await admin(ctx.w, "PUT", "/TokenIntrospector/external-auth-server", {
      resourceType: "TokenIntrospector",
      id: "external-auth-server",
      type: "jwt",
      jwt: { iss: ISS, secret: SECRET },
      map_user: { claims: ["box_user", "sub"] },
    });
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(boxUser) }), "box_user my-user (cardiology)");
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(hs256(claims({ sub: "my-user" }), SECRET)) }), "sub my-user");
    // box_user wins over sub: sub names my-user, box_user a user outside cardiology.
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(hs256(claims({ sub: "my-user", box_user: "some-user-id" }), SECRET)) }), "box_user first");

    // "The sub claim remains available under jwt.sub for AccessPolicy evaluation."
    await admin(ctx.w, "PUT", "/AccessPolicy/cardiology", {
      resourceType: "AccessPolicy",
      engine: "matcho",
      matcho: { user: { data: { department: "cardiology" } }, jwt: { sub: "keycloak-uuid-1234" } },
    });
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(boxUser) }), "jwt.sub kept");
  } finally {
    await dropPolicy("cardiology");
  }
});

// accesspolicy-examples.md, "11. Policy that allows all the requests with JWT issued by certain
// issuer" (jwt-issued-by-auth-example-com-allowed); GET /fhir/Patient with the JWT.
test("accesspolicy-examples.md #11: jwt-issued-by-auth-example-com-allowed", async () => {
  await admin(ctx.w, "PUT", "/TokenIntrospector/external-auth-server", { resourceType: "TokenIntrospector", type: "jwt", jwt: { iss: ISS, secret: SECRET } });
  await admin(ctx.w, "PUT", "/AccessPolicy/jwt-issued-by-auth-example-com-allowed", {
    id: "jwt-issued-by-auth-example-com-allowed",
    resourceType: "AccessPolicy",
    engine: "matcho",
    description: "Policy that allows all the requests with JWT issued by certain issuer",
    matcho: { jwt: { iss: ISS } },
  });
  try {
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(hs256(claims({ sub: "anyone" }), SECRET)) }), "auth.example.com JWT");
    // An issuer without a TokenIntrospector is not trusted at all.
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(hs256(claims({ iss: "https://evil.example" }), SECRET)) }), "unknown issuer", 401);
  } finally {
    await dropPolicy("jwt-issued-by-auth-example-com-allowed");
  }
});

// set-up-token-introspection.md, "3. Cryptographic keys": jwt.keys with an RSA PEM `pub`
// (RS256), an EC PEM `pub` (ES256) and an OCT `k` (HS256, format plain). `<AUTH_SERVER_URL>` is
// https://auth.example.com; the keys are made here. The doc's block also repeats
// `resourceType`/`id` (YAML keeps the last: id with-keys).
test("set-up-token-introspection.md: jwt.keys (RSA and EC PEM, OCT secret)", async () => {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = (k) => k.publicKey.export({ type: "spki", format: "pem" });
  await admin(ctx.w, "PUT", "/TokenIntrospector/with-keys", {
    resourceType: "TokenIntrospector",
    id: "with-keys",
    type: "jwt",
    jwt: {
      iss: "https://keys.example.com",
      keys: [
        { pub: pem(rsa), kty: "RSA", alg: "RS256", format: "PEM" },
        { pub: pem(ec), kty: "EC", alg: "ES256", format: "PEM" },
        { k: SECRET, kty: "OCT", alg: "HS256", format: "plain" },
      ],
    },
  });
  await admin(ctx.w, "PUT", "/AccessPolicy/keys-issuer", { engine: "matcho", matcho: { jwt: { iss: "https://keys.example.com" } } });
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const signed = (alg, key, opts) => {
    const input = `${b64({ typ: "JWT", alg })}.${b64(claims({ iss: "https://keys.example.com", sub: alg }))}`;
    const hash = alg === "ES256" || alg === "RS256" ? "sha256" : undefined;
    return `${input}.${sign(hash, Buffer.from(input), { key, ...opts }).toString("base64url")}`;
  };
  try {
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(signed("RS256", rsa.privateKey)) }), "RS256 PEM key");
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(signed("ES256", ec.privateKey, { dsaEncoding: "ieee-p1363" })) }), "ES256 PEM key");
    await assertForwarded(
      ctx,
      await call(ctx, "/fhir/Patient", { auth: bearer(hs256(claims({ iss: "https://keys.example.com", sub: "oct" }), SECRET)) }),
      "HS256 OCT key",
    );
    const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 });
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(signed("RS256", stranger.privateKey)) }), "another RSA key", 401);
  } finally {
    await dropPolicy("keys-issuer");
  }
});

// set-up-token-introspection.md, "Configure Cache TTL", "Example with JWKS URI": cache_ttl 3600.
test("set-up-token-introspection.md: cache_ttl 3600 with jwks_uri is accepted", async () => {
  const stored = await admin(ctx.w, "PUT", "/TokenIntrospector/external-auth-server-jwks", {
    resourceType: "TokenIntrospector",
    id: "external-auth-server-jwks",
    type: "jwt",
    cache_ttl: 3600,
    jwt: { iss: "https://jwks.auth.example.com" },
    jwks_uri: "https://auth.example.com/.well-known/jwks.json",
  });
  assert.equal(stored.cache_ttl, 3600);
  // "Valid range: 1-86400 seconds"
  await adminRefused(ctx.w, "PUT", "/TokenIntrospector/external-auth-server-jwks", {
    type: "jwt",
    cache_ttl: 86401,
    jwt: { iss: "https://jwks.auth.example.com" },
    jwks_uri: "https://auth.example.com/.well-known/jwks.json",
  });
});

// set-up-token-introspection.md, "Opaque Token": the introspector (`<token-introspection-endpoint>`
// is a local stand-in, `<authorization-header>` a Basic value; cache_ttl 7200 from "Example with
// Opaque Token") and the policy `matcho: {token: {active: true}}` ("Everything Aidbox retrieved
// from introspection_endpoint will be available under token").
test("set-up-token-introspection.md: opaque token, policy on token.active", async () => {
  await admin(ctx.w, "PUT", "/TokenIntrospector/external-auth-server-opaque", {
    resourceType: "TokenIntrospector",
    id: "external-auth-server-opaque",
    type: "opaque",
    cache_ttl: 7200,
    introspection_endpoint: { url: introspection.url, authorization: "Basic YmFzZTY0Y3JlZGVudGlhbHM=" },
  });
  await admin(ctx.w, "PUT", "/AccessPolicy/external-auth-server-opaque", {
    engine: "matcho",
    matcho: { token: { active: true } },
    resourceType: "AccessPolicy",
  });
  try {
    introspection.answer = { active: true, sub: "opaque-user", scope: "read" };
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer("opaque-token-1") }), "active opaque token");
    assert.equal(introspection.requests.at(-1).headers.authorization, "Basic YmFzZTY0Y3JlZGVudGlhbHM=");
    introspection.answer = { active: false };
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer("opaque-token-2") }), "inactive opaque token", 401);
  } finally {
    await dropPolicy("external-auth-server-opaque");
  }
});
