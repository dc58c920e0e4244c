// Aidbox's TokenIntrospector examples (issue 13) against the built Worker in workerd: `jwt.keys`
// with PEM public keys and OCT secrets (RS256, RS384, ES256, HS256), `cache_ttl`, the short
// `jwt.secret` refusal, and an opaque introspection answer seen by policies as `token`.
//
// Aidbox docs: docs/tutorials/security-access-control-tutorials/set-up-token-introspection.md
// Aidbox docs: docs/access-control/authentication/token-introspector.md
// Aidbox docs: docs/reference/system-resources-reference/core-module-resources.md (TokenIntrospector)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { generateKeyPairSync, sign as nodeSign, createHmac } from "node:crypto";
import { startWorker, json } from "./harness.mjs";

const ISS = "https://auth.example.com";
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsa2 = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const RSA_PUBLIC_KEY = rsa.publicKey.export({ type: "spki", format: "pem" });
const RSA2_PUBLIC_KEY = rsa2.publicKey.export({ type: "spki", format: "pem" });
const EC_PUBLIC_KEY = ec.publicKey.export({ type: "spki", format: "pem" });
const OCT_SECRET = "an-oct-secret-that-is-at-least-32-bytes-long";

let w, introspection, answers = {}, introspected = 0, jwksHits = 0;

const b64 = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
function jwt(header, claims, signer) {
  const input = `${b64({ typ: "JWT", ...header })}.${b64(claims)}`;
  return `${input}.${signer(Buffer.from(input)).toString("base64url")}`;
}
const now = () => Math.floor(Date.now() / 1000);
const claims = (extra = {}) => ({ iss: ISS, sub: "basic", aud: "my-api", iat: now(), exp: now() + 300, ...extra });
const rs256 = (k) => (d) => nodeSign("sha256", d, k.privateKey);
const rs384 = (k) => (d) => nodeSign("sha384", d, k.privateKey);
const es256 = (d) => nodeSign("sha256", d, { key: ec.privateKey, dsaEncoding: "ieee-p1363" });
const hs256 = (secret) => (d) => createHmac("sha256", secret).update(d).digest();
const call = (token, path = "/Patient") => w.fetch(path, { headers: { authorization: `Bearer ${token}` } });
const put = async (p, b) => {
  const r = await w.admin("PUT", p, b);
  assert.ok([200, 201].includes(r.status), `${p}: ${r.status} ${await r.text()}`);
};

before(async () => {
  introspection = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (req.url === "/jwks") {
        jwksHits++;
        const jwk = { ...rsa.publicKey.export({ format: "jwk" }), kid: "k1", alg: "RS256", use: "sig" };
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
        return;
      }
      introspected++;
      const token = new URLSearchParams(body).get("token");
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answers[token] ?? { active: false }));
    });
  });
  await new Promise((r) => introspection.listen(0, "127.0.0.1", r));
  w = await startWorker();
  // Aidbox docs (set-up-token-introspection.md, "3. Cryptographic keys"), the shape verbatim,
  // with real PEM keys for <RSA_PUBLIC_KEY>/<EC_PUBLIC_KEY>/<OCT_SECRET> and our audience.
  await put("/TokenIntrospector/with-keys", {
    resourceType: "TokenIntrospector",
    id: "with-keys",
    type: "jwt",
    jwt: {
      iss: ISS,
      aud: "my-api",
      keys: [
        { pub: RSA_PUBLIC_KEY, kty: "RSA", alg: "RS256", format: "PEM" },
        { pub: RSA2_PUBLIC_KEY, kty: "RSA", alg: "RS384", format: "PEM" },
        { pub: EC_PUBLIC_KEY, kty: "EC", alg: "ES256", format: "PEM" },
        { k: OCT_SECRET, kty: "OCT", alg: "HS256", format: "plain" },
      ],
    },
  });
  // Aidbox docs (set-up-token-introspection.md, "Define AccessPolicy"), but `const` for the
  // doc's `constant`, which is no JSON Schema keyword: Aidbox ignores it (the policy then allows
  // any JWT), here an unknown keyword is a 422 (fail closed), asserted below.
  const policy = {
    resourceType: "AccessPolicy",
    id: "external-auth-server",
    engine: "json-schema",
    schema: { required: ["jwt"], properties: { jwt: { required: ["iss"], properties: { iss: { constant: "https://auth.example.com" } } } } },
  };
  assert.equal((await w.admin("PUT", "/AccessPolicy/external-auth-server", policy)).status, 422);
  policy.schema.properties.jwt.properties.iss = { const: "https://auth.example.com" };
  await put("/AccessPolicy/external-auth-server", policy);
});
after(async () => {
  await w?.dispose();
  await new Promise((r) => introspection?.close(r));
});

test("jwt.keys: RS256, RS384, ES256 and HS256 tokens each verify with their key (Aidbox 2505 example)", async () => {
  assert.equal((await call(jwt({ alg: "RS256" }, claims(), rs256(rsa)))).status, 200, "RS256 with the first PEM");
  assert.equal((await call(jwt({ alg: "RS384" }, claims(), rs384(rsa2)))).status, 200, "RS384 with the second PEM");
  assert.equal((await call(jwt({ alg: "ES256" }, claims(), es256))).status, 200, "ES256 with the EC PEM");
  assert.equal((await call(jwt({ alg: "HS256" }, claims(), hs256(OCT_SECRET)))).status, 200, "HS256 with k");
  assert.equal((await call(jwt({ alg: "RS256", kid: "whatever" }, claims(), rs256(rsa)))).status, 200, "a kid is not needed, nor harmful");
});

test("jwt.keys: no HS/RS confusion, no key of another alg, tampering refused (401)", async () => {
  const cases = {
    // The classic: HS256 signed with the PEM text of the RSA public key as the HMAC secret.
    "HS256 signed with the RSA PEM text": jwt({ alg: "HS256" }, claims(), hs256(RSA_PUBLIC_KEY)),
    "HS256 signed with the EC PEM text": jwt({ alg: "HS256" }, claims(), hs256(EC_PUBLIC_KEY)),
    // RS384 is pinned to the second key: the first key's RS384 signature does not verify.
    "RS384 by the RS256-only key": jwt({ alg: "RS384" }, claims(), rs384(rsa)),
    "RS256 by the RS384-only key": jwt({ alg: "RS256" }, claims(), rs256(rsa2)),
    "ES384 (no such key)": jwt({ alg: "ES384" }, claims(), es256),
    "alg none": `${b64({ alg: "none" })}.${b64(claims())}.`,
    "wrong issuer": jwt({ alg: "RS256" }, claims({ iss: "https://evil.example" }), rs256(rsa)),
    "another audience": jwt({ alg: "RS256" }, claims({ aud: "other-api" }), rs256(rsa)),
    "an unknown RSA key": jwt({ alg: "RS256" }, claims(), rs256(generateKeyPairSync("rsa", { modulusLength: 2048 }))),
  };
  for (const [name, token] of Object.entries(cases)) {
    const r = await call(token);
    assert.equal(r.status, 401, name);
    assert.match(r.headers.get("www-authenticate") ?? "", /invalid_token/, name);
  }
});

test("jwt.keys with PEM keys only: an HS256 token keyed with the PEM text finds no key (401)", async () => {
  const PEM_ISS = "https://pem-only.example";
  await put("/TokenIntrospector/pem-only", { type: "jwt", jwt: { iss: PEM_ISS, aud: "my-api", keys: [{ pub: RSA_PUBLIC_KEY, kty: "RSA", alg: "RS256", format: "PEM" }] } });
  await put("/AccessPolicy/pem-only", { engine: "matcho", matcho: { jwt: { iss: PEM_ISS } } });
  const c = claims({ iss: PEM_ISS });
  for (const secret of [RSA_PUBLIC_KEY, RSA_PUBLIC_KEY.trim(), rsa.publicKey.export({ type: "pkcs1", format: "pem" })]) {
    const r = await call(jwt({ alg: "HS256" }, c, hs256(secret)));
    assert.equal(r.status, 401, "HS256 with the public key as secret");
    assert.match(r.headers.get("www-authenticate") ?? "", /invalid_token/);
  }
  assert.equal((await call(jwt({ alg: "RS256" }, c, rs256(rsa)))).status, 200, "control: RS256");
  assert.equal((await w.admin("DELETE", "/AccessPolicy/pem-only")).status, 200);
});

test("jwt.keys is validated on write: alg must fit the key, k >= 32 bytes, no private keys (422)", async () => {
  const priv = rsa.privateKey.export({ type: "pkcs8", format: "pem" });
  const bad = {
    "HS256 on an RSA PEM": [{ pub: RSA_PUBLIC_KEY, kty: "RSA", alg: "HS256", format: "PEM" }],
    "RS256 on an EC PEM": [{ pub: EC_PUBLIC_KEY, kty: "EC", alg: "RS256", format: "PEM" }],
    "kty EC on an RSA PEM": [{ pub: RSA_PUBLIC_KEY, kty: "EC", alg: "ES256", format: "PEM" }],
    "a private key": [{ pub: priv, kty: "RSA", alg: "RS256", format: "PEM" }],
    "short k": [{ k: "very-secret", kty: "OCT", alg: "HS256", format: "plain" }],
    "RS256 on a k": [{ k: OCT_SECRET, kty: "OCT", alg: "RS256", format: "plain" }],
    "not PEM": [{ pub: "hello", kty: "RSA", alg: "RS256", format: "PEM" }],
  };
  for (const [name, keys] of Object.entries(bad)) {
    const r = await w.admin("PUT", "/TokenIntrospector/bad", { type: "jwt", jwt: { iss: "https://bad.example", keys } });
    assert.equal(r.status, 422, name);
    assert.match(JSON.stringify(await json(r)), /jwt\.keys/, name);
  }
});

test("GET never returns a jwt.keys k secret; the pub keys are shown", async () => {
  const r = await w.admin("GET", "/TokenIntrospector/with-keys");
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.ok(!text.includes(OCT_SECRET), "k is not returned");
  assert.ok(text.includes("BEGIN PUBLIC KEY"), "pub is returned");
});

test("jwt.secret shorter than 32 bytes: 422 saying it is stricter than Aidbox, and why", async () => {
  // Aidbox docs (set-up-token-introspection.md, "1. Token secret"), verbatim.
  const r = await w.admin("PUT", "/TokenIntrospector/external-auth-server", {
    resourceType: "TokenIntrospector", id: "external-auth-server", type: "jwt",
    jwt: { iss: "https://auth.example.com", secret: "very-secret" },
  });
  assert.equal(r.status, 422);
  const text = JSON.stringify(await json(r));
  assert.match(text, /jwt\.secret/);
  assert.match(text, /Stricter than Aidbox/);
  assert.match(text, /RFC 7518 3\.2/);
});

test("cache_ttl: Aidbox's examples are accepted; out of range is 422", async () => {
  // Aidbox docs (set-up-token-introspection.md, "Configure Cache TTL"), verbatim but for the
  // issuer (one introspector per issuer) and the URL (loopback only here).
  await put("/TokenIntrospector/external-auth-server", {
    resourceType: "TokenIntrospector", id: "external-auth-server", type: "jwt", cache_ttl: 3600,
    jwt: { iss: "https://auth2.example.com" }, jwks_uri: "https://auth2.example.com/.well-known/jwks.json",
  });
  for (const ttl of [0, 86401, "300", 1.5]) {
    const r = await w.admin("PUT", "/TokenIntrospector/ttl", { type: "jwt", cache_ttl: ttl, jwt: { iss: "https://ttl.example", secret: OCT_SECRET } });
    assert.equal(r.status, 422, `cache_ttl ${ttl}`);
  }
  assert.equal((await w.admin("DELETE", "/TokenIntrospector/external-auth-server")).status, 200);
});

test("opaque: the answer is `token` with active: true, as Aidbox's {token: {active: true}} policy expects", async () => {
  const url = `http://127.0.0.1:${introspection.address().port}/introspect`;
  // Aidbox docs (set-up-token-introspection.md, "Opaque Token"), verbatim but for the URL and
  // cache_ttl (from "Example with Opaque Token").
  await put("/TokenIntrospector/opaque-server", {
    resourceType: "TokenIntrospector", id: "opaque-server", type: "opaque", cache_ttl: 7200,
    introspection_endpoint: { url, authorization: "Basic base64credentials" },
  });
  // Without the policy: an active opaque token alone is not allowed (no policy matches).
  answers["opaque-1"] = { active: true, sub: "someone", scope: "read" };
  assert.equal((await call("opaque-1")).status, 403, "no policy yet");
  // Aidbox docs (set-up-token-introspection.md, "Create AccessPolicy" for opaque), verbatim.
  await put("/AccessPolicy/external-auth-server-opaque", {
    engine: "matcho",
    matcho: { token: { active: true } },
    resourceType: "AccessPolicy",
  });
  answers["opaque-2"] = { active: true, sub: "someone" };
  assert.equal((await call("opaque-2")).status, 200, "token.active matches");
  // Attack: an inactive token never reaches the policy; a JWT never has `token`.
  answers["opaque-3"] = { active: false };
  assert.equal((await call("opaque-3")).status, 401, "inactive");
  assert.equal((await call("unknown-opaque")).status, 401, "unknown");
  const other = jwt({ alg: "RS256" }, claims({ iss: "https://unknown.example" }), rs256(rsa));
  assert.equal((await call(other)).status, 401, "a JWT of an unknown issuer");
  // cache_ttl: the active answer is reused (the endpoint is asked once per token).
  const before = introspected;
  assert.equal((await call("opaque-2")).status, 200);
  assert.equal(introspected, before, "the answer came from the cache");
  assert.equal((await w.admin("DELETE", "/AccessPolicy/external-auth-server-opaque")).status, 200);
});

test("cache_ttl has Aidbox's meaning: a JWKS and an opaque answer are fetched again once it passed", async () => {
  const base = `http://127.0.0.1:${introspection.address().port}`;
  const JWKS_ISS = "https://jwks-ttl.example";
  await put("/TokenIntrospector/jwks-ttl", { type: "jwt", cache_ttl: 1, jwt: { iss: JWKS_ISS, aud: "my-api" }, jwks_uri: `${base}/jwks` });
  await put("/AccessPolicy/jwks-ttl", { engine: "matcho", matcho: { jwt: { iss: JWKS_ISS } } });
  await put("/TokenIntrospector/opaque-server", { type: "opaque", cache_ttl: 1, introspection_endpoint: { url: `${base}/introspect` } });
  await put("/AccessPolicy/opaque-ttl", { engine: "matcho", matcho: { token: { active: true } } });
  const token = jwt({ alg: "RS256", kid: "k1" }, claims({ iss: JWKS_ISS }), rs256(rsa));
  answers["opaque-ttl"] = { active: true };
  assert.equal((await call(token)).status, 200);
  assert.equal((await call("opaque-ttl")).status, 200);
  const [j0, i0] = [jwksHits, introspected];
  assert.equal((await call(token)).status, 200);
  assert.equal((await call("opaque-ttl")).status, 200);
  assert.deepEqual([jwksHits, introspected], [j0, i0], "within cache_ttl: cached");
  await new Promise((r) => setTimeout(r, 2100));
  // The issuer revoked the opaque token meanwhile: after cache_ttl the Worker asks again.
  answers["opaque-ttl"] = { active: false };
  assert.equal((await call(token)).status, 200);
  assert.equal((await call("opaque-ttl")).status, 401, "revoked at the issuer, cache_ttl passed");
  assert.deepEqual([jwksHits, introspected], [j0 + 1, i0 + 1], "after cache_ttl: fetched again");
});
