// The `x-edge-stats` header (src/worker/stats.rs) and object classes, shared by run.mjs and
// model.mjs (kept apart so the model and its test load without Miniflare).

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
