// Trusting an external issuer in workerd: a TokenIntrospector whose jwks_uri points at a JWKS
// served by a test server on loopback; RS256 and EdDSA tokens signed here in node, verified by
// the Worker (WebCrypto), with the refusals that matter and a JWKS host that goes away.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { generateKeyPairSync, sign as nodeSign } from "node:crypto";
import { startWorker } from "./harness.mjs";

const IDP = "https://idp.example";
let w, server, jwksUrl, served, hits = 0;
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ed = generateKeyPairSync("ed25519");
const pub = (k, kid, alg) => ({ ...k.publicKey.export({ format: "jwk" }), kid, alg, use: "sig" });

before(async () => {
  served = { keys: [pub(rsa, "rsa-1", "RS256"), pub(ed, "ed-1", "EdDSA")] };
  server = http.createServer((req, res) => {
    hits++;
    if (served === null) {
      res.writeHead(503).end("down");
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(served));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  jwksUrl = `http://127.0.0.1:${server.address().port}/jwks`;
  w = await startWorker();
  const put = async (p, b) => assert.ok([200, 201].includes((await w.admin("PUT", p, b)).status), p);
  // The policy names the local user john: the introspector must opt in to mapping `sub`.
  await put("/TokenIntrospector/idp", { type: "jwt", jwt: { iss: IDP, aud: "my-api" }, jwks_uri: jwksUrl, map_user: { claims: ["sub"] } });
  await put("/User/john", { email: "john@example.com" });
  await put("/AccessPolicy/idp", { engine: "matcho", matcho: { jwt: { iss: IDP }, user: { id: "john" } } });
});
after(async () => {
  await w?.dispose();
  await new Promise((r) => server?.close(r));
});

const b64 = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
function jwt(header, claims, signer) {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${signer ? signer(Buffer.from(input)).toString("base64url") : ""}`;
}
const now = () => Math.floor(Date.now() / 1000);
const claims = (extra = {}) => ({ iss: IDP, sub: "john", aud: "my-api", iat: now(), exp: now() + 300, ...extra });
const rs256 = (data) => nodeSign("sha256", data, rsa.privateKey);
const eddsa = (data) => nodeSign(null, data, ed.privateKey);
const call = (token) => w.fetch("/Patient", { headers: { authorization: `Bearer ${token}` } });

test("RS256 and EdDSA tokens of the trusted issuer are accepted; the JWKS is fetched once", async () => {
  assert.equal((await call(jwt({ alg: "RS256", kid: "rsa-1" }, claims(), rs256))).status, 200);
  assert.equal((await call(jwt({ alg: "EdDSA", kid: "ed-1" }, claims(), eddsa))).status, 200);
  assert.equal((await call(jwt({ alg: "RS256", kid: "rsa-1" }, claims(), rs256))).status, 200);
  assert.equal(hits, 1, "the JWKS is cached");
});

test("refusals: wrong aud, expired, alg swap, none, jku, crit, unknown issuer, tampered", async () => {
  const cases = {
    "wrong aud": jwt({ alg: "RS256", kid: "rsa-1" }, claims({ aud: "other" }), rs256),
    expired: jwt({ alg: "RS256", kid: "rsa-1" }, claims({ exp: now() - 120 }), rs256),
    "alg swap (EdDSA header, RSA key)": jwt({ alg: "EdDSA", kid: "rsa-1" }, claims(), eddsa),
    "alg none": jwt({ alg: "none", kid: "rsa-1" }, claims()),
    jku: jwt({ alg: "RS256", kid: "rsa-1", jku: "https://evil.example/jwks" }, claims(), rs256),
    crit: jwt({ alg: "RS256", kid: "rsa-1", crit: ["exp"] }, claims(), rs256),
    "unknown issuer": jwt({ alg: "RS256", kid: "rsa-1" }, claims({ iss: "https://evil.example" }), rs256),
    tampered: jwt({ alg: "RS256", kid: "rsa-1" }, claims(), rs256).replace(/\.([^.]+)\./, (m, p) => `.${b64({ ...claims(), sub: "admin" })}.`),
  };
  for (const [name, token] of Object.entries(cases)) {
    const r = await call(token);
    assert.equal(r.status, 401, name);
    assert.match(r.headers.get("www-authenticate") ?? "", /invalid_token/, name);
  }
});

test("a JWKS host that is down gives 503 while no copy is cached", async () => {
  const w2 = await startWorker();
  try {
    await w2.admin("PUT", "/TokenIntrospector/idp", { type: "jwt", jwt: { iss: IDP }, jwks_uri: jwksUrl });
    await w2.admin("PUT", "/AccessPolicy/all", { engine: "allow" });
    served = null;
    const r = await w2.fetch("/Patient", { headers: { authorization: `Bearer ${jwt({ alg: "RS256", kid: "rsa-1" }, claims(), rs256)}` } });
    assert.equal(r.status, 503);
    assert.ok(r.headers.get("retry-after"));
  } finally {
    served = { keys: [pub(rsa, "rsa-1", "RS256"), pub(ed, "ed-1", "EdDSA")] };
    await w2.dispose();
  }
});
