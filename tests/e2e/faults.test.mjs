// Faults in workerd (issue 7 item 4), with the real runtime's fetch and timers: a JWKS host that
// never answers is a 503 after OUTBOUND_TIMEOUT_MS, an origin that is not there is a 502, an
// origin that never answers is a 504; each with Retry-After and an RFC-shaped body. (KV and the
// Durable Object cannot be made to fail in local workerd; tests/faults.rs covers them natively.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { generateKeyPairSync, sign as nodeSign } from "node:crypto";
import { startWorker, basicAuth, json } from "./harness.mjs";

const IDP = "https://idp.example";
const TIMEOUT_MS = 700;
const workers = [];
let hanging, hangingUrl, freePort;
const held = new Set();

before(async () => {
  // Accepts connections and requests, and never answers.
  hanging = http.createServer((req) => held.add(req));
  await new Promise((r) => hanging.listen(0, "127.0.0.1", r));
  hangingUrl = `http://127.0.0.1:${hanging.address().port}`;
  // A port nothing listens on: bind one, note it, close it.
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, "127.0.0.1", r));
  freePort = probe.address().port;
  await new Promise((r) => probe.close(r));
});
after(async () => {
  for (const w of workers) await w.dispose();
  for (const req of held) req.socket.destroy();
  hanging.closeAllConnections?.();
  await new Promise((r) => hanging.close(r));
});

async function worker(originUrl) {
  const w = await startWorker({ originUrl, vars: { OUTBOUND_TIMEOUT_MS: String(TIMEOUT_MS) } });
  workers.push(w);
  const put = async (p, b) => assert.ok([200, 201].includes((await w.admin("PUT", p, b)).status), p);
  await put("/Client/basic", { secret: "s3cret", grant_types: ["basic"] });
  await put("/AccessPolicy/all", { engine: "allow" });
  return w;
}

async function assertError(res, status, error) {
  assert.equal(res.status, status);
  assert.equal(res.headers.get("retry-after"), "5");
  assert.equal(res.headers.get("cache-control"), "no-store");
  const body = await json(res);
  assert.equal(body.error, error);
  assert.equal(typeof body.error_description, "string");
  assert.doesNotMatch(body.error_description, /127\.0\.0\.1/, "no internal detail");
}

test("a JWKS host that never answers: 503 temporarily_unavailable after the timeout", async () => {
  const w = await worker();
  const put = await w.admin("PUT", "/TokenIntrospector/idp", {
    type: "jwt",
    jwt: { iss: IDP },
    jwks_uri: `${hangingUrl}/jwks`,
  });
  assert.ok([200, 201].includes(put.status));
  const ed = generateKeyPairSync("ed25519");
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: "EdDSA", kid: "k1" })}.${b64({ iss: IDP, sub: "x", iat: now, exp: now + 300 })}`;
  const token = `${input}.${nodeSign(null, Buffer.from(input), ed.privateKey).toString("base64url")}`;
  const started = Date.now();
  const res = await w.fetch("/Patient", { headers: { authorization: `Bearer ${token}` } });
  const took = Date.now() - started;
  await assertError(res, 503, "temporarily_unavailable");
  assert.ok(took >= TIMEOUT_MS - 50, `answered after ${took} ms, before the timeout`);
  assert.ok(took < TIMEOUT_MS + 5000, `answered after ${took} ms`);
  assert.ok(held.size >= 1, "the JWKS host was asked");
});

test("an origin that is not there: 502 bad_gateway", async () => {
  const w = await worker(`http://127.0.0.1:${freePort}`);
  const res = await w.fetch("/Patient", { headers: { authorization: basicAuth("basic", "s3cret") } });
  await assertError(res, 502, "bad_gateway");
});

test("an origin that never answers: 504 gateway_timeout after the timeout", async () => {
  const w = await worker(hangingUrl);
  const before = held.size;
  const started = Date.now();
  const res = await w.fetch("/Patient", { headers: { authorization: basicAuth("basic", "s3cret") } });
  const took = Date.now() - started;
  await assertError(res, 504, "gateway_timeout");
  assert.ok(took >= TIMEOUT_MS - 50 && took < TIMEOUT_MS + 5000, `answered after ${took} ms`);
  assert.ok(held.size > before, "the origin was asked");
});
