// The scale model: extrapolates the per-request counts `make scale` measured (build/scale.json,
// tests/scale/run.mjs) to a deployment's traffic, and checks every Durable Object and KV against
// Cloudflare's limits. Runs after the measurement in `make scale`, or alone:
//
//   node tests/scale/model.mjs [build/scale.json] [--rate 100000] [--isolates 10000]
//        [--shards 64] [--feeds 32] [--cache-ttl 10] [--policies 5000] [--types 5] [--admin-writes 10]
//        [--mix protected=0.95,token.refresh=0.03,...] [--run 16] [--spread bound|measured]
//        [--delta 1e-6] [--object-limit 1000] [--kv-invocation-limit 1000] [--json]
//
// What it computes (docs/scale.md "make scale and the model" has the long form):
// - Request rate per type: rate x mix (weights normalised; DEFAULT_MIX below).
// - Per object class (`shard-*`, `feed-*`, `catalog-*`, the old `auth-state`, anything else the
//   run saw; tests/scale/run.mjs objectClass), from the measured calls per request of each type:
//     keyed calls (a request touches fewer objects of the class than there are): the class's rate
//       is sum(rate_t x calls_t), spread over the class's objects by uniform hashing; the busiest
//       object's rate is bounded by Bernstein's inequality for the max of k sums of independent
//       0/1 draws: mean + t, t = a/3 + sqrt(a^2/9 + 2 mean a), a = ln(k/delta) (exceeded in a given
//       second with probability at most delta), or with --spread measured the run's busiest share
//       within the class (only when the run had as many objects of the class as modelled);
//     fan-out calls (every request of the type touched every object of the class in the run):
//       every object gets rate_t x calls_t / k_run, whatever the number of objects;
//     the per-isolate revocation poll, which per-request counts miss: the run's poll probe names
//       the object(s) one poll calls; each isolate polls once a second, so a class of k poll
//       targets gets isolates x calls/s spread over k (each isolate on one, by hash: the same
//       bound on isolates per object), or, when one poll read every object of the class, every
//       object gets isolates/s. The run's own polls (one isolate, one a second) are taken
//       out of the `protected` counts first, so they are not counted twice.
//   Admin writes are outside the mix: the reload probe's AccessPolicy PUTs, at --admin-writes/s,
//   add their object calls (a catalog object's share) the same way.
//   Object counts: `shard-*` = --shards, `feed-*` = --feeds, others as many as the run saw
//   (`auth-state`: 1).
// - KV: operations in one invocation, KV and Durable Object calls together (Cloudflare counts
//   both as operations to external services; the largest single request of the mix, and a reload of
//   the resources after a change at --policies AccessPolicies, extrapolated linearly from the
//   run's two reload probes) against 1,000; writes on the request path (the one-write-per-second-
//   per-key limit cannot be checked from counts, so any write there fails the row); background
//   reads (isolates x --types bundle records / --cache-ttl) for information.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { objectClass } from "./stats.mjs";

/** Requests/s share per request type at the modelled rate (a protected-heavy API; see docs/scale.md). */
export const DEFAULT_MIX = {
  protected: 0.95,
  "token.refresh": 0.03,
  "token.code": 0.005,
  "login.form": 0.005,
  "login.submit": 0.005,
  "revoke.refresh": 0.004,
  "revoke.access": 0.001,
};

export const DEFAULTS = {
  rate: 100_000,
  isolates: 10_000,
  shards: 64,
  feeds: 32,
  cacheTtl: 10,
  policies: 5_000,
  types: 5, // AccessPolicy, TokenIntrospector, Role, Scope, client CORS origins
  pollPerSec: 1, // REVOCATION_POLL_SECS = 1
  delta: 1e-6,
  objectLimit: 1_000,
  kvInvocationLimit: 1_000,
  kvWritesPerKeyLimit: 1,
  adminWrites: 10, // AccessPolicy/Client/... writes per second through the admin API (a burst)
  spread: "bound",
  mix: DEFAULT_MIX,
  run: null, // the run (shard count) to read; default the one with the most shards
};

/**
 * Upper bound on the largest of k counts when `mean` is each one's expectation (a sum of
 * independent 0/1 draws; Bernstein plus a union bound over the k objects): exceeded with
 * probability at most `delta`. k = 1 is the mean itself (no hashing, a steady rate).
 */
export function maxBound(mean, k, delta = DEFAULTS.delta) {
  if (k <= 1 || mean <= 0) return mean;
  const a = Math.log(k / delta);
  return mean + a / 3 + Math.sqrt((a * a) / 9 + 2 * mean * a);
}

/** `a=1,b=2` -> { a: 1, b: 2 } (numbers). */
export function parseMix(s) {
  const out = {};
  for (const part of s.split(",").map((x) => x.trim()).filter(Boolean)) {
    const [k, v] = part.split("=");
    const n = Number(v);
    if (!k || !Number.isFinite(n) || n < 0) throw new Error(`bad mix entry ${JSON.stringify(part)} (want type=weight)`);
    out[k.trim()] = n;
  }
  return out;
}

/** The run the model reads: `--run` shard count, else the one with the most shards. */
export function pickRun(report, shards = null) {
  const runs = report.runs ?? [];
  if (!runs.length) throw new Error("the report has no runs");
  if (shards != null) {
    const r = runs.find((x) => x.shards === Number(shards));
    if (!r) throw new Error(`no run with ${shards} shards (have ${runs.map((x) => x.shards).join(", ")})`);
    return r;
  }
  return runs.reduce((a, b) => (b.shards > a.shards ? b : a));
}

/**
 * The model. `report` is build/scale.json's content; returns { inputs, classes, rows } where each
 * row is { check, value, limit, pass, how } and classes holds the per-class arithmetic.
 */
export function model(report, options = {}) {
  const o = { ...DEFAULTS, ...options };
  const run = pickRun(report, o.run);
  const mixTotal = Object.values(o.mix).reduce((s, x) => s + x, 0);
  if (!(mixTotal > 0)) throw new Error("the mix has no weight");
  for (const t of Object.keys(o.mix)) {
    if (o.mix[t] > 0 && !run.types[t]) throw new Error(`mix type ${t} was not measured (measured: ${Object.keys(run.types).join(", ")})`);
  }
  const rateOf = (t) => (o.rate * (o.mix[t] ?? 0)) / mixTotal;

  // Objects per class in the run and in the model.
  const runObjects = (c) => {
    if (c === "shard-*") return run.shards;
    if (c === "feed-*" && run.feeds) return run.feeds;
    return run.classes?.[c]?.objects ?? 1;
  };
  const modelObjects = (c) => (c === "shard-*" ? o.shards : c === "feed-*" ? o.feeds : runObjects(c));

  // The run's own polls: one isolate, one a second, each calling the probe's objects.
  const poll = run.probes?.poll ?? { objects: [] };
  const pollCalls = {};
  const pollDistinct = {};
  for (const name of poll.objects) {
    pollCalls[objectClass(name)] = (pollCalls[objectClass(name)] ?? 0) + 1;
    (pollDistinct[objectClass(name)] ??= new Set()).add(name);
  }

  const classes = {};
  const cls = (c) =>
    (classes[c] ??= { class: c, objects: modelObjects(c), run_objects: runObjects(c), keyed: 0, fanout_per_object: 0, poll: 0, total: 0, busiest: 0, how: [] });
  for (const [t, m] of Object.entries(run.types)) {
    const rate = rateOf(t);
    for (const [c, callsRaw] of Object.entries(m.class_calls_per_req ?? {})) {
      let calls = callsRaw;
      if (t === "protected" && pollCalls[c] && m.count) {
        // Take the run's own polls (run.seconds of them, each pollCalls[c] calls) out.
        calls = Math.max(0, calls - (Math.ceil(run.seconds * o.pollPerSec) * pollCalls[c]) / m.count);
      }
      const k = runObjects(c);
      const distinct = m.class_distinct_per_req?.[c] ?? 0;
      const x = cls(c);
      if (k > 1 && distinct >= k - 1e-9) x.fanout_per_object += (rate * calls) / k;
      else x.keyed += rate * calls;
    }
  }
  for (const c of Object.keys(pollCalls)) cls(c);
  // Admin writes (outside the mix): the reload probe's AccessPolicy PUTs, at --admin-writes/s.
  const adminPut = run.probes?.requests?.["probe.policy.put"];
  if (adminPut) {
    for (const [c, calls] of Object.entries(adminPut.class_calls_per_req ?? {})) {
      const k = runObjects(c);
      const x = cls(c);
      if (k > 1 && (adminPut.class_distinct_per_req?.[c] ?? 0) >= k - 1e-9) x.fanout_per_object += (o.adminWrites * calls) / k;
      else x.keyed += o.adminWrites * calls;
      x.admin = o.adminWrites * calls;
    }
  }

  const rows = [];
  for (const x of Object.values(classes)) {
    const k = x.objects;
    // Keyed calls spread over k objects.
    const mean = x.keyed / k;
    let keyedMax = maxBound(mean, k, o.delta);
    let spreadHow = k > 1 ? `Bernstein bound on the max of ${k} (delta ${o.delta.toExponential(0)})` : "one object";
    const runClass = run.classes?.[x.class];
    if (o.spread === "measured" && k > 1) {
      if (x.run_objects === k && runClass) {
        keyedMax = x.keyed * runClass.busiest_share_in_class;
        spreadHow = `measured busiest share in class ${(runClass.busiest_share_in_class * 100).toFixed(1)} %`;
      } else {
        spreadHow += ` (the run had ${x.run_objects} objects, not ${k}: measured share not usable)`;
      }
    }
    // Background polls: every isolate polls one object of the class once a second.
    let pollMax = 0;
    if (pollCalls[x.class]) {
      const perIsolate = o.pollPerSec * pollCalls[x.class];
      if (x.run_objects > 1 && pollDistinct[x.class].size >= x.run_objects) {
        // A poll that reads every object of the class: each object gets every isolate's poll.
        const perObject = (o.pollPerSec * pollCalls[x.class]) / x.run_objects;
        x.poll = o.isolates * perObject * k;
        pollMax = o.isolates * perObject;
        x.how.push("every isolate polls every object");
      } else {
        x.poll = o.isolates * perIsolate;
        pollMax = k > 1 ? maxBound(o.isolates / k, k, o.delta) * perIsolate : x.poll;
      }
    }
    x.total = x.keyed + x.fanout_per_object * k + x.poll;
    x.busiest = keyedMax + x.fanout_per_object + pollMax;
    x.how.push(spreadHow);
    if (x.fanout_per_object) x.how.push(`fan-out ${round(x.fanout_per_object)}/s to every object`);
    if (x.poll) x.how.push(`polls ${round(x.poll)}/s (${round(o.isolates)} isolates, ${k > 1 ? `busiest ${round(pollMax)}/s` : "all on it"})`);
    rows.push({
      check: `busiest \`${x.class}\` object (${k} object${k === 1 ? "" : "s"})`,
      value: x.busiest,
      limit: o.objectLimit,
      unit: "calls/s",
      pass: x.busiest <= o.objectLimit,
      how: `class ${round(x.total)}/s = requests ${round(x.keyed + x.fanout_per_object * k)}/s + polls ${round(x.poll)}/s; ${x.how.join("; ")}`,
    });
  }

  // KV: one invocation.
  let maxReq = 0;
  let maxReqType = "-";
  for (const [t, m] of Object.entries(run.types)) {
    const ops = m.max_ops ?? m.max_kv_ops ?? 0;
    if ((o.mix[t] ?? 0) > 0 && ops > maxReq) [maxReq, maxReqType] = [ops, t];
  }
  rows.push({
    check: "KV ops + DO calls in one request of the mix (measured max)",
    value: maxReq,
    limit: o.kvInvocationLimit,
    unit: "ops",
    pass: maxReq <= o.kvInvocationLimit,
    how: `largest: ${maxReqType} (KV's limit counts every operation to an external service in one invocation)`,
  });
  // A reload of the resources (after a change, and in every isolate once per CACHE_TTL) is one
  // invocation's KV work; extrapolated linearly in the number of AccessPolicies from the probes.
  const reload = run.probes?.reload ?? [];
  let reloadOps = null;
  if (reload.length >= 2) {
    const [a, b] = [reload[0], reload.at(-1)];
    // The slope from KV operations only; a probe's Durable Object calls (a revocation poll that
    // fell due during it) are added as the smaller of the two, not extrapolated.
    const doOf = (x) => Math.max(0, (x.ops ?? x.kv_ops) - x.kv_ops);
    const slope = b.policies > a.policies ? Math.max(0, (b.kv_ops - a.kv_ops) / (b.policies - a.policies)) : 0;
    reloadOps = b.kv_ops + slope * (o.policies - b.policies) + Math.min(doOf(a), doOf(b));
    const opsOf = (x) => x.ops ?? x.kv_ops;
    rows.push({
      check: `KV ops + DO calls in one reload of the resources, ${round(o.policies)} AccessPolicies`,
      value: reloadOps,
      limit: o.kvInvocationLimit,
      unit: "ops",
      pass: reloadOps <= o.kvInvocationLimit,
      how: `reload probes: ${opsOf(a)} ops at ${a.policies}, ${opsOf(b)} at ${b.policies} policies: ${round(slope, 3)} per policy; each isolate reloads once per CACHE_TTL and after a change`,
    });
  } else {
    rows.push({ check: "KV ops + DO calls in one reload of the resources", value: NaN, limit: o.kvInvocationLimit, unit: "ops", pass: false, how: "the run has no reload probes" });
  }
  if (adminPut) {
    const puts = (adminPut.kv_put_per_req ?? 0) + (adminPut.kv_delete_per_req ?? 0);
    rows.push({
      check: `KV writes of admin writes (${o.adminWrites}/s)`,
      value: o.adminWrites * puts,
      limit: null,
      unit: "writes/s",
      pass: null,
      how: `${round(puts, 2)} KV writes per AccessPolicy PUT (measured); whether one key gets more than ${o.kvWritesPerKeyLimit}/s depends on the keys (information)`,
    });
  }
  let writes = 0;
  let reads = 0;
  for (const [t, m] of Object.entries(run.types)) {
    writes += rateOf(t) * ((m.kv_put_per_req ?? 0) + (m.kv_delete_per_req ?? 0));
    reads += rateOf(t) * (m.kv_get_per_req ?? 0) + rateOf(t) * (m.kv_list_per_req ?? 0);
  }
  rows.push({
    check: "KV writes on the request path",
    value: writes,
    limit: 0,
    unit: "writes/s",
    pass: writes === 0,
    how: `KV allows ${o.kvWritesPerKeyLimit} write/s per key; counts do not name keys, so any write at this rate fails the row`,
  });
  // Background reads: every isolate reloads once per CACHE_TTL (the probe's KV ops; without
  // probes, one read per bundle type).
  const perReload = reloadOps ?? o.types;
  const background = (o.isolates * perReload) / o.cacheTtl;
  rows.push({
    check: "KV reads (requests + background reloads)",
    value: reads + background,
    limit: null,
    unit: "reads/s",
    pass: null,
    how: `requests ${round(reads)}/s + ${round(o.isolates)} isolates x ${round(perReload)} ops per reload / CACHE_TTL ${o.cacheTtl} s = ${round(background)}/s (KV has no per-namespace read limit: information)`,
  });

  return {
    inputs: {
      report: report.date,
      run_shards: run.shards,
      run_feeds: run.feeds,
      rate: o.rate,
      isolates: o.isolates,
      shards: o.shards,
      feeds: o.feeds,
      cache_ttl: o.cacheTtl,
      policies: o.policies,
      types: o.types,
      spread: o.spread,
      delta: o.delta,
      mix: Object.fromEntries(Object.entries(o.mix).map(([t, w]) => [t, w / mixTotal])),
      poll_probe: poll.objects,
    },
    classes,
    rows,
    pass: rows.every((r) => r.pass !== false),
  };
}

function round(x, d = 0) {
  if (!Number.isFinite(x)) return String(x);
  return x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: 0 });
}

/** The Markdown table of a model result. */
export function formatModel(m) {
  const i = m.inputs;
  const lines = [];
  lines.push(
    `Model: ${round(i.rate)} requests/s over ${round(i.isolates)} isolates, ${i.shards} state shards, ${i.feeds} revocation feeds, ` +
      `CACHE_TTL ${i.cache_ttl} s, ${round(i.policies)} AccessPolicies; per-request counts from the ${i.run_shards}-shard run of ${i.report}` +
      ` (poll probe: ${i.poll_probe.join(",") || "no object"}).`,
  );
  lines.push(`Mix: ${Object.entries(i.mix).map(([t, w]) => `${t} ${(w * 100).toFixed(1)} %`).join(", ")}.`);
  lines.push("");
  lines.push("| check | modelled | limit | pass | how |");
  lines.push("|---|---|---|---|---|");
  for (const r of m.rows) {
    const limit = r.limit == null ? "-" : `${round(r.limit)} ${r.unit}`;
    const pass = r.pass == null ? "-" : r.pass ? "pass" : "**FAIL**";
    lines.push(`| ${r.check} | ${round(r.value)} ${r.unit} | ${limit} | ${pass} | ${r.how} |`);
  }
  return lines.join("\n");
}

/** argv -> { file, options, json }. */
export function parseArgs(argv) {
  const options = {};
  let file = null;
  let json = false;
  const num = (flag, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} wants a positive number, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith("--") && a.includes("=") && !a.startsWith("--mix=") ? a.split(/=(.*)/s) : a.startsWith("--mix=") ? ["--mix", a.slice(6)] : [a, undefined];
    const val = () => inline ?? argv[++i];
    switch (flag) {
      case "--rate": options.rate = num(flag, val()); break;
      case "--isolates": options.isolates = num(flag, val()); break;
      case "--shards": options.shards = num(flag, val()); break;
      case "--feeds": options.feeds = num(flag, val()); break;
      case "--cache-ttl": options.cacheTtl = num(flag, val()); break;
      case "--policies": options.policies = num(flag, val()); break;
      case "--admin-writes": options.adminWrites = num(flag, val()); break;
      case "--types": options.types = num(flag, val()); break;
      case "--delta": options.delta = num(flag, val()); break;
      case "--object-limit": options.objectLimit = num(flag, val()); break;
      case "--kv-invocation-limit": options.kvInvocationLimit = num(flag, val()); break;
      case "--run": options.run = num(flag, val()); break;
      case "--mix": options.mix = parseMix(val()); break;
      case "--spread": {
        const v = val();
        if (!["bound", "measured"].includes(v)) throw new Error("--spread is bound or measured");
        options.spread = v;
        break;
      }
      case "--json": json = true; break;
      case "--help": case "-h": options.help = true; break;
      default:
        if (a.startsWith("--")) throw new Error(`unknown flag ${a}`);
        file = a;
    }
  }
  return { file, options, json };
}

function main() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const { file, options, json } = parseArgs(process.argv.slice(2));
  if (options.help) {
    console.log(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").filter((l) => l.startsWith("//")).slice(0, 8).map((l) => l.slice(3)).join("\n"));
    return;
  }
  const p = file ?? path.join(here, "../../build/scale.json");
  const report = JSON.parse(readFileSync(p, "utf8"));
  const m = model(report, options);
  console.log(json ? JSON.stringify(m, null, 2) : formatModel(m));
  // The model reports; it is not a gate. FAILs are the finding (see the table).
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (e) {
    console.error(`[model] ${e.message}`);
    process.exit(2);
  }
}
