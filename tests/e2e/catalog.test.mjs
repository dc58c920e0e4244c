// Issue 15, catalog: AccessPolicies (and TokenIntrospectors, Roles, Scopes, Clients' CORS
// origins) are held by a Catalog Durable Object per type and loaded on the hot path from one KV
// bundle record per type, so a request costs a constant number of KV operations however many
// policies there are (x-edge-stats with SCALE_STATS=1 counts them). Writes go through the
// Catalog (compare-and-set: no lost write), the bundle is written at most once a second, and a
// deployment with records in the previous per-id layout is imported on first use.
//
// On the build before this change, the reload of 1,200 policies cost 1,200 KV gets (and a
// list), and there was no bundle record at all.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json } from "./harness.mjs";

const APP = { secret: "catalog-app-secret-1", grant_types: ["basic"] };
const AUTH = basicAuth("cat-app", APP.secret);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function policy(uri) {
  return { engine: "matcho", matcho: { uri }, link: [{ id: "cat-app", resourceType: "Client" }] };
}

function stats(res) {
  const h = res.headers.get("x-edge-stats");
  assert.ok(h, "no x-edge-stats header (SCALE_STATS=1)");
  return Object.fromEntries(h.split(";").map((kv) => kv.split("=")));
}

/** Runs `fn` over `items`, `n` at a time. */
async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

async function written(res, what) {
  const text = await res.text();
  assert.ok([200, 201].includes(res.status), `${what}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function bundle(w, type) {
  const kv = await w.miniflare.getKVNamespace("RESOURCES");
  const raw = await kv.get(`bundle/${type}`);
  return raw ? JSON.parse(raw) : null;
}

async function untilBundle(w, type, pred, what) {
  for (let i = 0; i < 100; i++) {
    const b = await bundle(w, type);
    if (b && pred(b)) return b;
    await sleep(100);
  }
  assert.fail(`bundle/${type} never ${what}`);
}

describe("1,200 AccessPolicies", () => {
  let w, origin;
  before(async () => {
    origin = await startOrigin();
    w = await startWorker({ originUrl: origin.url, vars: { SCALE_STATS: "1", CACHE_TTL: "2" } });
    await written(await w.admin("PUT", "/Client/cat-app", APP), "client");
    const ids = Array.from({ length: 1200 }, (_, i) => i);
    await pool(ids, 40, async (i) =>
      written(await w.admin("POST", "/AccessPolicy", { id: `p-${i}`, ...policy(`/Patient/pol-${i}`) }), `policy ${i}`),
    );
  });
  after(async () => {
    await w?.dispose();
    await origin?.dispose();
  });

  test("the bundle in KV carries all of them, and the admin list shows all", async () => {
    await untilBundle(w, "AccessPolicy", (b) => b.docs.length === 1200, "held 1,200 policies");
    const list = await json(await w.admin("GET", "/AccessPolicy"));
    assert.equal(list.total, 1200);
  });

  test("a request on an aged cache reloads them with a constant number of KV operations", async () => {
    await sleep(2500); // CACHE_TTL=2: every cached set and record has aged
    const res = await w.fetch("/Patient/pol-1137", { headers: { authorization: AUTH } });
    const s = stats(res);
    await res.arrayBuffer();
    assert.equal(res.status, 200, "allowed by p-1137 and forwarded");
    assert.ok(Number(s.kv_get) <= 4, `kv_get=${s.kv_get}`);
    assert.equal(s.kv_list, "0");
    assert.equal(s.kv_put, "0");
    // Decided by the policies: one that none allows is refused, at no more KV cost.
    const denied = await w.fetch("/Patient/pol-1200", { headers: { authorization: AUTH } });
    assert.equal(denied.status, 403);
    assert.equal(stats(denied).kv_list, "0");
    await denied.arrayBuffer();
  });
});

describe("bursts of admin writes", () => {
  let w, origin;
  before(async () => {
    origin = await startOrigin();
    w = await startWorker({ originUrl: origin.url, vars: { SCALE_STATS: "1" } });
    await written(await w.admin("PUT", "/Client/cat-app", APP), "client");
  });
  after(async () => {
    await w?.dispose();
    await origin?.dispose();
  });

  test("50 concurrent POSTs and 20 concurrent PUTs of one id lose nothing; the bundle is written at most once a second", async () => {
    // Watch the bundle while the burst runs.
    const seen = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const b = await bundle(w, "AccessPolicy");
        if (b && (seen.length === 0 || seen.at(-1).version !== b.version)) seen.push({ version: b.version, at: Date.now() });
        await sleep(20);
      }
    })();
    const started = Date.now();
    const posts = Array.from({ length: 50 }, (_, i) =>
      w.admin("POST", "/AccessPolicy", { id: `burst-${i}`, ...policy(`/Patient/burst-${i}`) }),
    );
    const puts = Array.from({ length: 20 }, (_, k) => w.admin("PUT", "/AccessPolicy/shared", policy(`/Patient/shared-${k}`)));
    const postBodies = await Promise.all(posts.map(async (r, i) => written(await r, `POST ${i}`)));
    const putBodies = await Promise.all(puts.map(async (r, k) => written(await r, `PUT ${k}`)));
    assert.equal(new Set(postBodies.map((b) => b.id)).size, 50);
    // Each PUT was applied on top of the one before: versions 1..20, none twice.
    const versions = putBodies.map((b) => Number(b.meta.versionId)).sort((a, b) => a - b);
    assert.deepEqual(versions, Array.from({ length: 20 }, (_, i) => i + 1));
    const last = putBodies.find((b) => b.meta.versionId === "20");

    const list = await json(await w.admin("GET", "/AccessPolicy"));
    const ids = new Set(list.entry.map((e) => e.resource.id));
    for (let i = 0; i < 50; i++) assert.ok(ids.has(`burst-${i}`), `burst-${i} missing from the list`);
    const shared = await json(await w.admin("GET", "/AccessPolicy/shared"));
    assert.deepEqual(shared.matcho, last.matcho, "the last acknowledged PUT is what is stored");

    // Enforcement agrees with the list, at once in this isolate.
    for (const i of [0, 17, 49]) {
      const r = await w.fetch(`/Patient/burst-${i}`, { headers: { authorization: AUTH } });
      assert.equal(r.status, 200, `burst-${i}`);
      await r.arrayBuffer();
    }
    const lastUri = last.matcho.uri;
    const r = await w.fetch(lastUri, { headers: { authorization: AUTH } });
    assert.equal(r.status, 200, lastUri);
    await r.arrayBuffer();
    const other = putBodies.find((b) => b.meta.versionId === "1").matcho.uri;
    const o = await w.fetch(other, { headers: { authorization: AUTH } });
    assert.equal(o.status, 403, `${other}: overwritten, no longer allowed`);
    await o.arrayBuffer();

    // The bundle catches up with everything, and was never rewritten within a second.
    const final = await untilBundle(w, "AccessPolicy", (b) => b.docs.length === 51, "caught up");
    await sleep(1500);
    watching = false;
    await watcher;
    assert.deepEqual(
      final.docs.find((d) => d.id === "shared").matcho,
      last.matcho,
      "the bundle holds the last write",
    );
    for (let i = 1; i < seen.length; i++) {
      const gap = seen[i].at - seen[i - 1].at;
      // Seen by polling KV from a loaded machine: a version can be seen a few hundred ms late,
      // which shortens the gap after it (707 ms was seen in a make test run); without the
      // throttle the gaps would be tens of ms, and the count below bounds the rate.
      assert.ok(gap >= 500, `bundle versions ${seen[i - 1].version} -> ${seen[i].version} ${gap} ms apart`);
    }
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seen.length <= seconds + 2, `${seen.length} bundle writes in ${seconds} s`);
    // The per-id record follows too (the layout the previous version reads).
    const kv = await w.miniflare.getKVNamespace("RESOURCES");
    assert.deepEqual(JSON.parse(await kv.get("AccessPolicy/shared")).matcho, last.matcho);
  });

  test("20 concurrent PATCHes of one id compose: each applies to the record the one before left", async () => {
    await written(await w.admin("PUT", "/AccessPolicy/patched", policy("/Patient/patched")), "patched");
    const patches = Array.from({ length: 20 }, (_, i) =>
      w.admin("PATCH", "/AccessPolicy/patched", { matcho: { params: { [`k${i}`]: `v${i}` } } }),
    );
    const bodies = await Promise.all(patches.map(async (r, i) => written(await r, `PATCH ${i}`)));
    const versions = bodies.map((b) => Number(b.meta.versionId)).sort((a, b) => a - b);
    assert.deepEqual(versions, Array.from({ length: 20 }, (_, i) => i + 2));
    const stored = await json(await w.admin("GET", "/AccessPolicy/patched"));
    assert.equal(Object.keys(stored.matcho.params).length, 20, JSON.stringify(stored.matcho));
    assert.equal(stored.matcho.uri, "/Patient/patched");
  });

  test("a write through the admin API applies at once, though the bundle lags", async () => {
    await written(await w.admin("PUT", "/AccessPolicy/quick", policy("/Patient/quick")), "quick");
    // A single write's per-id record is in KV when it is acknowledged (the previous layout).
    const kv = await w.miniflare.getKVNamespace("RESOURCES");
    assert.equal(JSON.parse(await kv.get("AccessPolicy/quick")).matcho.uri, "/Patient/quick");
    const r = await w.fetch("/Patient/quick", { headers: { authorization: AUTH } });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    await written(await w.admin("DELETE", "/AccessPolicy/quick"), "delete quick");
    const d = await w.fetch("/Patient/quick", { headers: { authorization: AUTH } });
    assert.equal(d.status, 403, "deleted: no longer allowed");
    await d.arrayBuffer();
    const gone = await w.admin("GET", "/AccessPolicy/quick");
    assert.equal(gone.status, 404);
    await gone.arrayBuffer();
  });
});

describe("upgrade from the per-id layout", () => {
  let w, origin;
  const N = 1600; // four import pages of 400: the first inline, three by alarm
  before(async () => {
    origin = await startOrigin();
    w = await startWorker({ originUrl: origin.url, vars: { SCALE_STATS: "1" } });
    // Records as the previous version stored them, written straight into KV before any request.
    const kv = await w.miniflare.getKVNamespace("RESOURCES");
    const meta = { versionId: "1", lastUpdated: "2026-01-01T00:00:00Z" };
    await pool(Array.from({ length: N }, (_, i) => i), 25, (i) =>
      kv.put(
        `AccessPolicy/legacy-${i}`,
        JSON.stringify({ id: `legacy-${i}`, resourceType: "AccessPolicy", ...policy(`/Patient/legacy-${i}`), meta }),
      ),
    );
    await kv.put(
      "Client/legacy-spa",
      JSON.stringify({ id: "legacy-spa", resourceType: "Client", allowed_origins: ["https://spa.example"], meta }),
    );
  });
  after(async () => {
    await w?.dispose();
    await origin?.dispose();
  });

  test("they are enforced, listed, and imported into the catalog and its bundle", async () => {
    await written(await w.admin("PUT", "/Client/cat-app", APP), "client");
    // The first use of AccessPolicy imports one page inline; the second comes by alarm. A write
    // in between is refused (503, Retry-After) and stores nothing; once imported it works.
    let first = await w.admin("PUT", "/AccessPolicy/legacy-new", policy("/Patient/legacy-new"));
    assert.equal(first.status, 503, "a write while the import runs");
    assert.ok(first.headers.get("retry-after"), "503 without Retry-After");
    await first.arrayBuffer();
    // Meanwhile (or once done) a policy the first page did not hold (keys sort as text:
    // legacy-999 comes last) is enforced: from the per-id records while importing.
    const during = await w.fetch("/Patient/legacy-999", { headers: { authorization: AUTH } });
    assert.equal(during.status, 200, "a policy past the first import page");
    await during.arrayBuffer();
    {
      for (let i = 0; i < 50 && first.status === 503; i++) {
        await sleep(100);
        first = await w.admin("PUT", "/AccessPolicy/legacy-new", policy("/Patient/legacy-new"));
        if (first.status === 503) await first.arrayBuffer();
      }
    }
    const created = await written(first, "PUT legacy-new");
    assert.equal(created.meta.versionId, "1", "stored once");
    await written(await w.admin("DELETE", "/AccessPolicy/legacy-new"), "DELETE legacy-new");
    for (const i of [0, 223, N - 1]) {
      const r = await w.fetch(`/Patient/legacy-${i}`, { headers: { authorization: AUTH } });
      assert.equal(r.status, 200, `legacy-${i}`);
      await r.arrayBuffer();
    }
    const denied = await w.fetch(`/Patient/legacy-${N}`, { headers: { authorization: AUTH } });
    assert.equal(denied.status, 403);
    await denied.arrayBuffer();
    const list = await json(await w.admin("GET", "/AccessPolicy"));
    assert.equal(list.total, N, "every legacy policy listed");
    // The import completes (by alarm) and publishes every record once.
    await untilBundle(w, "AccessPolicy", (b) => b.docs.length === N, `held ${N} policies`);
    // The legacy Client's CORS origin is registered through bundle/Client.
    const pre = await w.fetch("/Patient", {
      method: "OPTIONS",
      headers: { origin: "https://spa.example", "access-control-request-method": "GET" },
    });
    assert.equal(pre.status, 204);
    await pre.arrayBuffer();
    await untilBundle(w, "Client", (b) => b.origins["legacy-spa"]?.[0] === "https://spa.example", "held the origin");
    // Writes work after the import, and on top of the imported record.
    const put = await written(await w.admin("PUT", "/AccessPolicy/legacy-5", policy("/Patient/renamed-5")), "PUT legacy-5");
    assert.equal(put.meta.versionId, "2");
    const r = await w.fetch("/Patient/renamed-5", { headers: { authorization: AUTH } });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  });
});
