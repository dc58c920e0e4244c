// Configuration checks that only the real runtime can make: the wasm key parser leaves the
// Ed25519/P-256 curve maths out, so each isolate signs and verifies a probe through WebCrypto
// before serving. A SIGNING_KEY whose private half belongs to another key must not issue tokens.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startWorker, json } from "./harness.mjs";
import { generateSigningJwk } from "../../scripts/keys.mjs";

test("a SIGNING_KEY whose d does not belong to its x is refused before anything is served", async () => {
  const a = await generateSigningJwk();
  const b = await generateSigningJwk();
  const w = await startWorker({ signingKey: { ...a, x: b.x } });
  try {
    for (const path of ["/.well-known/openid-configuration", "/auth/token"]) {
      const res = await w.fetch(path, { method: path === "/auth/token" ? "POST" : "GET" });
      assert.equal(res.status, 500, path);
      const body = await json(res);
      assert.equal(body.error, "server_error");
      // The operator's detail goes to the log, not to the client.
      assert.ok(!JSON.stringify(body).includes("SIGNING_KEY"), JSON.stringify(body));
    }
  } finally {
    await w.dispose();
  }
});

test("a matching SIGNING_KEY passes the probe and signs tokens", async () => {
  const w = await startWorker();
  try {
    const res = await w.fetch("/.well-known/openid-configuration");
    assert.equal(res.status, 200);
  } finally {
    await w.dispose();
  }
});
