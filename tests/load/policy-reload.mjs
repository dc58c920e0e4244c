#!/usr/bin/env node
// Measures the finding of the first soak run (docs/performance.md "Load and soak"): with many AccessPolicies
// stored, one policy write followed by a burst of concurrent protected requests makes each of
// those requests reload the whole policy set from KV itself (one list plus one get per policy, all
// at once, nothing shared between the requests). The burst's latency grows with the number of
// policies; on this 2-core machine under heavy load from other builds (load average 10+), the
// same burst with 300 policies also ended in dropped connections (ECONNRESET, and 503s for origin
// fetches that lost their connection), which did not happen at load average 5.
//
//   node tests/load/policy-reload.mjs [policies=300] [concurrency=64] [rounds=3]
//
// Prints one line per round (statuses of the burst, latencies) and exits 1 when any request of a
// burst was not a 200.

import http from "node:http";
import { performance } from "node:perf_hooks";
import { startWorker, startOrigin, basicAuth } from "../e2e/harness.mjs";

const [policies = 300, concurrency = 64, rounds = 3] = process.argv.slice(2).map(Number);

const origin = await startOrigin();
const w = await startWorker({ originUrl: origin.url, vars: { PBKDF2_ITERATIONS: "1000" } });
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const base = new URL(w.url);

/** One request; resolves to { status, ms } where status is the HTTP status or the network error code. */
const send = (method, path, headers, body) =>
  new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request({ agent, host: base.hostname, port: base.port, method, path, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode, ms: performance.now() - t0 }));
    });
    req.on("error", (e) => resolve({ status: e.code ?? e.message, ms: performance.now() - t0 }));
    if (body) req.write(body);
    req.end();
  });

const root = basicAuth("root", w.adminSecret);
const put = (path, doc) => send("PUT", path, { authorization: root, "content-type": "application/json" }, JSON.stringify(doc));
const must = async (p) => {
  const r = await p;
  if (r.status !== 200 && r.status !== 201) throw new Error(`setup write answered ${r.status}`);
};

let failed = false;
try {
  await must(put("/Client/caller", { secret: "caller-secret", grant_types: ["basic"] }));
  await must(put("/AccessPolicy/caller", { engine: "matcho", matcho: { uri: "#^/Patient" }, link: [{ id: "caller", resourceType: "Client" }] }));
  // Policies that never allow anything; only their number matters.
  for (let i = 0; i < policies; i += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, policies - i) }, (_, j) =>
      must(put(`/AccessPolicy/filler-${i + j}`, { engine: "matcho", matcho: { uri: `#^/nothing/${i + j}$` } })),
    );
    await Promise.all(batch);
  }
  console.log(`${policies} extra policies; each round: one policy write, then ${concurrency} concurrent protected GETs`);
  const caller = basicAuth("caller", "caller-secret");
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const write = await put("/AccessPolicy/filler-0", { engine: "matcho", matcho: { uri: `#^/nothing/round-${r}$` } });
    const burst = await Promise.all(Array.from({ length: concurrency }, () => send("GET", "/Patient/1", { authorization: caller })));
    const statuses = {};
    for (const b of burst) statuses[b.status] = (statuses[b.status] ?? 0) + 1;
    const ms = burst.map((b) => b.ms).sort((a, b) => a - b);
    if (burst.some((b) => b.status !== 200)) failed = true;
    console.log(
      `round ${r}: write ${write.status}, burst ${JSON.stringify(statuses)}, ` +
        `p50 ${ms[ms.length >> 1].toFixed(0)} ms, max ${ms.at(-1).toFixed(0)} ms, wall ${(performance.now() - t0).toFixed(0)} ms`,
    );
  }
} finally {
  agent.destroy();
  await w.dispose();
  await origin.dispose();
}
process.exit(failed ? 1 : 0);
