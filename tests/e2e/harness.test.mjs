// Checks the harness itself: the built Worker starts in workerd and answers over real HTTP, and
// a Worker in workerd can reach startOrigin() on loopback (the path the forwarding tests rely on).
import { test } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin } from "./harness.mjs";

test("harness: the built Worker starts in workerd and answers over HTTP", async () => {
  const worker = await startWorker();
  try {
    assert.match(worker.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await worker.fetch("/");
    await res.arrayBuffer();
    assert.ok(res.status < 500, `GET / answered ${res.status}`);
  } finally {
    await worker.dispose();
  }
});

test("harness: a Worker in workerd reaches startOrigin() on loopback", async () => {
  const origin = await startOrigin();
  const worker = await startWorker({
    originUrl: origin.url,
    script: `export default {
      async fetch(request, env) {
        const url = new URL(request.url);
        return fetch(env.ORIGIN_URL + url.pathname + url.search, {
          method: request.method,
          headers: { "x-client-id": "selftest" },
          body: request.body,
        });
      },
    };`,
  });
  try {
    const res = await worker.fetch("/Patient?name=x", { method: "POST", body: "hello" });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { origin: true, method: "POST", url: "/Patient?name=x" });
    assert.equal(origin.requests.length, 1);
    assert.equal(origin.last().headers["x-client-id"], "selftest");
    assert.equal(origin.last().body, "hello");
  } finally {
    await worker.dispose();
    await origin.dispose();
  }
});
