// The `x-edge-stats` header (src/worker/stats.rs), object classes and the per-run aggregation,
// shared by run.mjs and model.mjs (kept apart so the model and its test load without Miniflare).

/**
 * `kv_get=1;kv_put=0;kv_delete=0;kv_list=0;do=shard-3,feed-0` -> { kv: {get, put, delete, list},
 * objects: ["shard-3", "feed-0"] }; null when absent. Unknown `kv_*` fields are kept.
 */
export function parseStats(value) {
  if (value == null) return null;
  const out = { kv: { get: 0, put: 0, delete: 0, list: 0 }, objects: [] };
  for (const part of String(value).split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k === "do") out.objects = v ? v.split(",").map((s) => s.trim()).filter(Boolean) : [];
    else if (k.startsWith("kv_")) out.kv[k.slice(3)] = Number(v) || 0;
  }
  return out;
}

/**
 * The class an object name belongs to, name-agnostic: a trailing number is an index in a
 * sharded set (`shard-12` -> `shard-*`, `feed-0` -> `feed-*`); any `catalog` prefix
 * (`catalog-AccessPolicy`) -> `catalog-*`; anything else is its own class (`auth-state`).
 */
export function objectClass(name) {
  const m = /^(.*?)[-_:/]?\d+$/.exec(name);
  if (m && m[1]) return `${m[1]}-*`;
  if (/^catalog([-_:/]|$)/i.test(name)) return "catalog-*";
  return name;
}

// --- aggregation -----------------------------------------------------------------------------------

function newTypeStats() {
  return { count: 0, kv: { get: 0, put: 0, delete: 0, list: 0 }, doCalls: 0, classes: {}, distinct: {}, maxKvOps: 0, maxOps: 0, statuses: {} };
}

/** Adds one response's counts to a request type's totals and to the per-object totals. */
export function record(agg, type, status, stats) {
  const t = (agg.types[type] ??= newTypeStats());
  t.count++;
  t.statuses[status] = (t.statuses[status] ?? 0) + 1;
  if (!stats) return;
  let ops = 0;
  for (const [k, v] of Object.entries(stats.kv)) {
    t.kv[k] = (t.kv[k] ?? 0) + v;
    ops += v;
  }
  t.maxKvOps = Math.max(t.maxKvOps, ops);
  // KV operations and Durable Object calls both count against 1,000 external operations per invocation.
  t.maxOps = Math.max(t.maxOps, ops + stats.objects.length);
  t.doCalls += stats.objects.length;
  const distinct = {};
  for (const name of stats.objects) {
    agg.objects[name] = (agg.objects[name] ?? 0) + 1;
    const c = objectClass(name);
    t.classes[c] = (t.classes[c] ?? 0) + 1;
    (distinct[c] ??= new Set()).add(name);
  }
  // Distinct objects of a class one request touched (the model tells fan-out from this).
  for (const [c, s] of Object.entries(distinct)) t.distinct[c] = (t.distinct[c] ?? 0) + s.size;
}

/** The report of one run from its aggregate. */
export function summarize(agg, seconds) {
  const types = {};
  for (const [name, t] of Object.entries(agg.types).sort()) {
    const per = (x) => (t.count ? x / t.count : 0);
    types[name] = {
      count: t.count,
      rps: +(t.count / seconds).toFixed(1),
      statuses: t.statuses,
      do_per_req: +per(t.doCalls).toFixed(4),
      kv_get_per_req: +per(t.kv.get).toFixed(4),
      kv_put_per_req: +per(t.kv.put).toFixed(4),
      kv_delete_per_req: +per(t.kv.delete).toFixed(4),
      kv_list_per_req: +per(t.kv.list).toFixed(4),
      max_kv_ops: t.maxKvOps,
      max_ops: t.maxOps,
      class_calls_per_req: Object.fromEntries(Object.entries(t.classes).map(([c, n]) => [c, +per(n).toFixed(4)])),
      class_distinct_per_req: Object.fromEntries(Object.entries(t.distinct).map(([c, n]) => [c, +per(n).toFixed(4)])),
    };
  }
  const totalCalls = Object.values(agg.objects).reduce((s, n) => s + n, 0);
  const objects = Object.fromEntries(Object.entries(agg.objects).sort((a, b) => b[1] - a[1]));
  const [busiest, busiestCalls] = Object.entries(objects)[0] ?? [null, 0];
  const classes = {};
  for (const [name, n] of Object.entries(objects)) {
    const c = (classes[objectClass(name)] ??= { objects: 0, calls: 0, busiest: null, busiest_calls: 0 });
    c.objects++;
    c.calls += n;
    if (n > c.busiest_calls) Object.assign(c, { busiest: name, busiest_calls: n });
  }
  for (const c of Object.values(classes)) c.busiest_share_in_class = +(c.busiest_calls / c.calls).toFixed(4);
  const requests = Object.values(agg.types).reduce((s, t) => s + t.count, 0);
  return {
    requests,
    rps: +(requests / seconds).toFixed(1),
    do_calls: totalCalls,
    objects,
    classes,
    busiest,
    busiest_share: totalCalls ? +(busiestCalls / totalCalls).toFixed(4) : 0,
    types,
  };
}
