// SMART Backend Services in workerd: a client signs its own assertion (ES384 and RS384, the
// algorithms SMART requires) and gets a system token by client_credentials; a replayed jti
// and an assertion signed by another key are refused. Verified with WebCrypto in the Worker.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign as nodeSign, randomUUID } from "node:crypto";
import { startWorker, form, FORM } from "./harness.mjs";

const ec = generateKeyPairSync("ec", { namedCurve: "P-384" });
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
let w;

before(async () => {
  w = await startWorker();
  const jwk = (k, kid, alg) => ({ ...k.publicKey.export({ format: "jwk" }), kid, alg });
  const r = await w.admin("PUT", "/Client/bulk", {
    grant_types: ["client_credentials"], "allowed-scopes": ["system/*.rs"],
    jwks: { keys: [jwk(ec, "ec-1", "ES384"), jwk(rsa, "rsa-1", "RS384")] },
  });
  assert.equal(r.status, 201, await r.text());
  await w.admin("PUT", "/AccessPolicy/bulk", { engine: "allow", link: [{ id: "bulk", resourceType: "Client" }] });
});
after(() => w?.dispose());

const b64 = (x) => Buffer.from(JSON.stringify(x)).toString("base64url");
function assertion(alg, kid, key, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: "bulk", sub: "bulk", aud: `${w.url}/auth/token`, exp: now + 240, jti: randomUUID(), ...extra };
  const input = `${b64({ alg, kid, typ: "JWT" })}.${b64(claims)}`;
  const sig = alg === "ES384"
    ? nodeSign("sha384", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" })
    : nodeSign("sha384", Buffer.from(input), key);
  return `${input}.${sig.toString("base64url")}`;
}
const token = (a) =>
  w.fetch("/auth/token", {
    method: "POST",
    headers: FORM,
    body: form({
      grant_type: "client_credentials", scope: "system/*.rs",
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion: a,
    }),
  });

for (const [alg, kid, key] of [["ES384", "ec-1", () => ec.privateKey], ["RS384", "rsa-1", () => rsa.privateKey]]) {
  test(`${alg}: an assertion signed with the client's key gets a system token, once`, async () => {
    const a = assertion(alg, kid, key());
    const r = await token(a);
    assert.equal(r.status, 200, await r.clone().text());
    const body = await r.json();
    assert.equal(body.scope, "system/*.rs");
    const api = await w.fetch("/Patient", { headers: { authorization: `Bearer ${body.access_token}` } });
    assert.equal(api.status, 200);
    const replay = await token(a);
    assert.equal(replay.status, 401);
    assert.equal((await replay.json()).error, "invalid_client");
  });
}

test("an assertion signed by another key, or too long-lived, is refused", async () => {
  const other = generateKeyPairSync("ec", { namedCurve: "P-384" });
  assert.equal((await token(assertion("ES384", "ec-1", other.privateKey))).status, 401);
  const far = assertion("ES384", "ec-1", ec.privateKey, { exp: Math.floor(Date.now() / 1000) + 3600 });
  assert.equal((await token(far)).status, 401);
});

test("the smart-on-fhir engine enforces a system scope on FHIR requests", async () => {
  const jwk = { ...ec.publicKey.export({ format: "jwk" }), kid: "ec-1", alg: "ES384" };
  assert.equal((await w.admin("PUT", "/Client/reader", { grant_types: ["client_credentials"], scope: ["system/Patient.rs"], jwks: { keys: [jwk] } })).status, 201);
  assert.equal((await w.admin("PUT", "/AccessPolicy/smart", { engine: "smart-on-fhir", link: [{ id: "reader", resourceType: "Client" }] })).status, 201);
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: "reader", sub: "reader", aud: `${w.url}/auth/token`, exp: now + 240, jti: randomUUID() };
  const input = `${b64({ alg: "ES384", kid: "ec-1" })}.${b64(claims)}`;
  const sig = nodeSign("sha384", Buffer.from(input), { key: ec.privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url");
  const r = await w.fetch("/auth/token", {
    method: "POST", headers: FORM,
    body: form({ grant_type: "client_credentials", scope: "system/Patient.rs", client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion: `${input}.${sig}` }),
  });
  assert.equal(r.status, 200);
  const { access_token } = await r.json();
  const call = (method, path) => w.fetch(path, { method, headers: { authorization: `Bearer ${access_token}` } });
  assert.equal((await call("GET", "/Patient")).status, 200, "search: s");
  assert.equal((await call("GET", "/Patient/pt-1")).status, 200, "read: r");
  assert.equal((await call("DELETE", "/Patient/pt-1")).status, 403, "delete needs d");
  assert.equal((await call("GET", "/Observation")).status, 403, "another type");
});
