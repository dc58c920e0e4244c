// Issue 15, red team (docs/attack-corpus.md "Issue 15 — red team"): while a migration is under
// way every miss in a shard is looked up in the previous layout, and forged refresh tokens,
// codes or session cookies all miss. An isolate makes at most STATE_PREVIOUS_LOOKUPS (default
// 200; 20 here) such look-ups a second (src/worker/durable.rs); past that the request is a 503
// with Retry-After, so an unauthenticated caller cannot drive the old object at their own rate.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, basicAuth, form, FORM } from "./harness.mjs";
import { put } from "./attacks-lib.mjs";

const dirs = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The objects a response says its request reached (x-edge-stats, SCALE_STATS=1). */
const objects = (res) => {
  const h = res.headers.get("x-edge-stats");
  assert.ok(h, "x-edge-stats (SCALE_STATS=1)");
  const d = /do=(.*)$/.exec(h)[1];
  return d ? d.split(",") : [];
};

test("during a migration, forged refresh tokens reach the old object at most STATE_PREVIOUS_LOOKUPS times a second per isolate", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "redteam15-"));
  dirs.push(dir);
  const base = { persistDir: dir, adminSecret: "root-secret-0123456789", vars: { PBKDF2_ITERATIONS: "1000", SCALE_STATS: "1" } };
  // Before the upgrade: the single object holds many live records, so its drain takes a while.
  let w = await startWorker({ ...base, vars: { ...base.vars, STATE_SHARDS: "single" } });
  try {
    await put(w, "/Client/web", { secret: "websecret", grant_types: ["password"], first_party: true, auth: { password: { refresh_token: true } } });
    const ns = await w.miniflare.getDurableObjectNamespace("STATE");
    const stub = ns.get(ns.idFromName("auth-state"));
    const exp = Math.floor(Date.now() / 1000) + 3600;
    for (let i = 0; i < 4000; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) =>
        stub.fetch("https://state.internal/op", {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ op: "cas", key: `grants/old-${i + j}`, expected: null, new: "{}", expires_at: exp }),
        }).then((r) => r.json())));
    }
  } finally {
    await w.dispose();
  }
  w = await startWorker({ ...base, vars: { ...base.vars, STATE_PREVIOUS_LOOKUPS: "20" } });
  try {
    const forged = () => `${randomBytes(16).toString("base64url")}.1.${randomBytes(32).toString("base64url")}.${randomBytes(32).toString("base64url")}`;
    const refresh = () => w.fetch("/auth/token", {
      method: "POST", headers: { ...FORM, authorization: basicAuth("web", "websecret") },
      body: form({ grant_type: "refresh_token", refresh_token: forged() }),
    });
    // Control, and the client's secret check (its throttle keys) out of the way.
    const first = await refresh();
    assert.equal(first.status, 400, await first.text());
    await sleep(1100);
    const burst = await Promise.all(Array.from({ length: 150 }, refresh));
    const reached = burst.filter((r) => objects(r).includes("auth-state")).length;
    const statuses = {};
    for (const r of burst) {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 503) assert.ok(r.headers.get("retry-after"), "a 503 says when to retry");
      await r.arrayBuffer();
    }
    assert.deepEqual(Object.keys(statuses).filter((s) => s !== "400" && s !== "503"), [], JSON.stringify(statuses));
    assert.ok(statuses[400] > 0, `some forged tokens are refused as such: ${JSON.stringify(statuses)}`);
    // At most two seconds' budgets (the burst may straddle a second boundary).
    assert.ok(reached <= 40, `${reached} of 150 forged refreshes reached auth-state ${JSON.stringify(statuses)}`);
  } finally {
    await w.dispose();
  }
});

test("STATE_PREVIOUS_LOOKUPS that is not a whole number of at least 1 is a configuration error, never ignored", async () => {
  for (const bad of ["0", "-5", "many", "1.5"]) {
    const w = await startWorker({ vars: { STATE_PREVIOUS_LOOKUPS: bad } });
    try {
      const r = await w.fetch("/auth/token", { method: "POST", headers: FORM, body: form({ grant_type: "refresh_token", refresh_token: "x.0.y.z" }) });
      assert.equal(r.status, 500, `STATE_PREVIOUS_LOOKUPS=${bad}`);
      await r.arrayBuffer();
    } finally {
      await w.dispose();
    }
  }
  const w = await startWorker({ vars: { STATE_PREVIOUS_LOOKUPS: "1000" } });
  try {
    const r = await w.fetch("/auth/token", { method: "POST", headers: FORM, body: form({ grant_type: "refresh_token", refresh_token: "x.0.y.z" }) });
    assert.notEqual(r.status, 500, "a valid value serves");
    await r.arrayBuffer();
  } finally {
    await w.dispose();
  }
});

test("an AccessPolicy set larger than one KV bundle holds is refused (409), and the bundle keeps being published", async () => {
  // 20 MiB of documents per bundled type (KV's values stop at 25 MiB). Before the cap the
  // Catalog stored the write and then failed to publish the bundle again and again: every
  // other isolate kept the old policy set for good, silently.
  const w = await startWorker({ vars: { PBKDF2_ITERATIONS: "1000" } });
  try {
    const big = (i) => ({ engine: "matcho", matcho: { uri: `#^/nothing-${i}$` }, description: "x".repeat(1_000_000) });
    for (let i = 0; i < 20; i++) {
      const r = await w.admin("PUT", `/AccessPolicy/big-${i}`, big(i));
      assert.equal(r.status, 201, `big-${i}: ${r.status}`);
      await r.arrayBuffer();
    }
    const over = await w.admin("PUT", "/AccessPolicy/big-20", big(20));
    const body = await over.json();
    assert.equal(over.status, 409, JSON.stringify(body).slice(0, 300));
    assert.match(JSON.stringify(body), /bundle/);
    assert.equal((await w.admin("GET", "/AccessPolicy/big-20")).status, 404, "nothing was written");
    // Replacing one counts the new size instead of the old, not both (a full set still edits).
    const edit = await w.admin("PUT", "/AccessPolicy/big-0", { ...big(0), description: "y".repeat(1_000_000) });
    assert.equal(edit.status, 200);
    await edit.arrayBuffer();
    const small = await w.admin("PUT", "/AccessPolicy/small", { engine: "allow", link: [{ id: "nobody", resourceType: "Client" }] });
    assert.equal(small.status, 201);
    await small.arrayBuffer();
    // The bundle in KV follows within about a second and holds the small one.
    const kv = await w.miniflare.getKVNamespace("RESOURCES");
    let ids = [];
    for (let i = 0; i < 20 && !ids.includes("small"); i++) {
      await sleep(300);
      const b = JSON.parse((await kv.get("bundle/AccessPolicy")) ?? "{\"docs\":[]}");
      ids = b.docs.map((d) => d.id);
    }
    assert.ok(ids.includes("small") && ids.includes("big-19") && !ids.includes("big-20"), `bundle ids: ${ids}`);
  } finally {
    await w.dispose();
  }
});
