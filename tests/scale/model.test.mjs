// The scale model's arithmetic (tests/scale/model.mjs) on hand-made reports, so a broken model
// fails `make test`. node --test tests/scale/model.test.mjs (well under a second).
import { test } from "node:test";
import assert from "node:assert/strict";
import { model, maxBound, parseMix, parseArgs, formatModel, DEFAULTS } from "./model.mjs";
import { parseStats, objectClass, record, summarize } from "./stats.mjs";

const near = (a, b, eps = 1e-6) => assert.ok(Math.abs(a - b) <= eps * Math.max(1, Math.abs(b)), `${a} != ${b}`);

/** A one-run report; `types` maps type -> { class_calls_per_req, class_distinct_per_req, ... }. */
function report({ shards = 1, feeds = null, seconds = 10, types, classes = {}, poll = ["auth-state"], reload } = {}) {
  const full = {};
  for (const [t, m] of Object.entries(types)) {
    full[t] = {
      count: 1000,
      kv_get_per_req: 0,
      kv_put_per_req: 0,
      kv_delete_per_req: 0,
      kv_list_per_req: 0,
      max_kv_ops: 0,
      class_calls_per_req: {},
      class_distinct_per_req: {},
      ...m,
    };
    for (const [c, n] of Object.entries(full[t].class_calls_per_req)) full[t].class_distinct_per_req[c] ??= Math.min(n, 1);
  }
  return {
    date: "test",
    runs: [
      {
        shards,
        feeds,
        seconds,
        types: full,
        classes,
        probes: {
          poll: { objects: poll },
          reload: reload ?? [
            { policies: 2, kv_ops: 3 },
            { policies: 42, kv_ops: 43 },
          ],
        },
      },
    ],
  };
}

const row = (m, prefix) => m.rows.find((r) => r.check.startsWith(prefix));

test("maxBound: k = 1 is the mean; the Bernstein arithmetic; never below the mean", () => {
  assert.equal(maxBound(250, 1), 250);
  assert.equal(maxBound(0, 16), 0);
  const a = Math.log(10 / 1e-6);
  near(maxBound(100, 10, 1e-6), 100 + a / 3 + Math.sqrt((a * a) / 9 + 200 * a));
  near(maxBound(100, 10, 1e-6), 162.41, 1e-3);
  assert.ok(maxBound(10, 64) > 10);
  assert.ok(maxBound(100, 64, 1e-3) < maxBound(100, 64, 1e-9), "a smaller delta is a larger bound");
});

test("maxBound holds for a simulated multinomial (1,000 balls into 10 bins, 2,000 times)", () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const bound = maxBound(100, 10, 1e-3);
  let worst = 0;
  for (let trial = 0; trial < 2000; trial++) {
    const bins = new Array(10).fill(0);
    for (let i = 0; i < 1000; i++) bins[Math.floor(rand() * 10)]++;
    worst = Math.max(worst, ...bins);
  }
  assert.ok(worst > 100, "the max is above the mean");
  assert.ok(worst <= bound, `simulated max ${worst} above the bound ${bound}`);
});

test("one object (today's auth-state): every request call and every isolate's poll land on it", () => {
  const r = report({
    seconds: 10,
    types: {
      protected: { class_calls_per_req: { "auth-state": 0.01 } }, // exactly the run's 10 polls over 1000 requests
      "login.submit": { class_calls_per_req: { "auth-state": 5 } },
    },
  });
  const m = model(r, { rate: 1000, isolates: 300, mix: { protected: 0.9, "login.submit": 0.1 } });
  const c = m.classes["auth-state"];
  near(c.keyed, 100 * 5); // the protected share is the run's own polls, taken out
  assert.equal(c.poll, 300);
  near(c.busiest, 800);
  const busiest = row(m, "busiest `auth-state`");
  assert.equal(busiest.pass, true);
  near(busiest.value, 800);
  // At 10,000 isolates the polls alone pass the limit.
  const big = model(r, { rate: 1000, isolates: 10_000, mix: { protected: 0.9, "login.submit": 0.1 } });
  assert.equal(row(big, "busiest `auth-state`").pass, false);
  assert.equal(big.pass, false);
});

test("keyed shards: the class rate spread over --shards objects, busiest from the bound (or the measured share)", () => {
  const r = report({
    shards: 4,
    poll: [],
    types: { "token.refresh": { class_calls_per_req: { "shard-*": 2 } }, protected: {} },
    classes: { "shard-*": { objects: 4, calls: 8000, busiest: "shard-1", busiest_calls: 2400, busiest_share_in_class: 0.3 } },
  });
  const m = model(r, { rate: 10_000, shards: 16, mix: { "token.refresh": 0.5, protected: 0.5 } });
  const c = m.classes["shard-*"];
  assert.equal(c.objects, 16);
  near(c.keyed, 10_000);
  near(c.busiest, maxBound(10_000 / 16, 16, DEFAULTS.delta));
  assert.equal(row(m, "busiest `shard-*`").pass, true);
  // Measured share: only when the run had as many shards as modelled.
  const same = model(r, { rate: 10_000, shards: 4, spread: "measured", mix: { "token.refresh": 0.5, protected: 0.5 } });
  near(same.classes["shard-*"].busiest, 10_000 * 0.3);
  const other = model(r, { rate: 10_000, shards: 16, spread: "measured", mix: { "token.refresh": 0.5, protected: 0.5 } });
  near(other.classes["shard-*"].busiest, maxBound(10_000 / 16, 16, DEFAULTS.delta));
});

test("feeds: a revocation written to every feed (fan-out) plus isolates polling one feed each", () => {
  const r = report({
    feeds: 4,
    poll: ["feed-2"],
    seconds: 10,
    types: {
      "revoke.access": { class_calls_per_req: { "feed-*": 4 }, class_distinct_per_req: { "feed-*": 4 } },
      protected: { class_calls_per_req: { "feed-*": 0.01 } },
    },
    classes: { "feed-*": { objects: 4, calls: 4010, busiest: "feed-2", busiest_calls: 1010, busiest_share_in_class: 0.25 } },
  });
  const m = model(r, { rate: 10_000, isolates: 10_000, feeds: 32, mix: { "revoke.access": 0.01, protected: 0.99 } });
  const c = m.classes["feed-*"];
  assert.equal(c.objects, 32);
  near(c.fanout_per_object, 100); // 100 revocations/s reach every feed
  near(c.keyed, 0);
  near(c.poll, 10_000);
  near(c.busiest, 100 + maxBound(10_000 / 32, 32, DEFAULTS.delta));
  near(c.total, 100 * 32 + 10_000);
  assert.equal(row(m, "busiest `feed-*`").pass, true);
  // A poll that reads every feed: each feed gets every isolate's poll, however many feeds.
  const all = structuredClone(r);
  all.runs[0].probes.poll.objects = ["feed-0", "feed-1", "feed-2", "feed-3"];
  all.runs[0].types.protected.class_calls_per_req["feed-*"] = 0.04;
  const m2 = model(all, { rate: 10_000, isolates: 10_000, feeds: 32, mix: { "revoke.access": 0.01, protected: 0.99 } });
  near(m2.classes["feed-*"].poll, 10_000 * 32);
  near(m2.classes["feed-*"].busiest, 100 + 10_000);
  near(m2.classes["feed-*"].keyed, 0);
  assert.equal(row(m2, "busiest `feed-*`").pass, false);
  // Two feeds: 5,000 isolates each.
  const few = model(r, { rate: 10_000, isolates: 10_000, feeds: 2, mix: { "revoke.access": 0.01, protected: 0.99 } });
  assert.equal(row(few, "busiest `feed-*`").pass, false);
});

test("KV: reload extrapolated to --policies; a constant bundle load stays constant; writes on the request path fail", () => {
  const types = { protected: { max_kv_ops: 3, kv_get_per_req: 0.5 } };
  const linear = model(report({ types }), { rate: 1000, mix: { protected: 1 }, policies: 5000 });
  near(row(linear, "KV ops + DO calls in one reload").value, 5001);
  assert.equal(row(linear, "KV ops + DO calls in one reload").pass, false);
  const bundled = model(report({ types, reload: [{ policies: 2, kv_ops: 5 }, { policies: 42, kv_ops: 5 }] }), { rate: 1000, mix: { protected: 1 }, policies: 5000 });
  near(row(bundled, "KV ops + DO calls in one reload").value, 5);
  assert.equal(row(bundled, "KV ops + DO calls in one reload").pass, true);
  assert.equal(row(bundled, "KV ops + DO calls in one request").value, 3);
  // A poll during one probe is not a cost per policy.
  const polled = model(report({ types, reload: [{ policies: 2, kv_ops: 3, ops: 3 }, { policies: 42, kv_ops: 43, ops: 44 }] }), { rate: 1000, mix: { protected: 1 }, policies: 5000 });
  near(row(polled, "KV ops + DO calls in one reload").value, 5001);
  const withDo = model(report({ types, reload: [{ policies: 2, kv_ops: 3, ops: 4 }, { policies: 42, kv_ops: 3, ops: 5 }] }), { rate: 1000, mix: { protected: 1 }, policies: 5000 });
  near(row(withDo, "KV ops + DO calls in one reload").value, 4);
  const reads = row(bundled, "KV reads");
  near(reads.value, 500 + (DEFAULTS.isolates * 5) / DEFAULTS.cacheTtl);
  near(row(linear, "KV reads").value, 500 + (DEFAULTS.isolates * 5001) / DEFAULTS.cacheTtl);
  assert.equal(reads.pass, null);
  assert.equal(row(bundled, "KV writes").pass, true);
  const writing = model(report({ types: { protected: { kv_put_per_req: 0.001 } } }), { rate: 1000, mix: { protected: 1 } });
  near(row(writing, "KV writes").value, 1);
  assert.equal(row(writing, "KV writes").pass, false);
  assert.match(formatModel(writing), /\*\*FAIL\*\*/);
});

test("admin writes: the probe's PUTs reach the catalog object at --admin-writes/s", () => {
  const r = report({ poll: [], types: { protected: {} } });
  r.runs[0].probes.requests = {
    "probe.policy.put": { count: 40, kv_put_per_req: 2, kv_delete_per_req: 0, class_calls_per_req: { "catalog-*": 1 }, class_distinct_per_req: { "catalog-*": 1 } },
  };
  r.runs[0].classes = { "catalog-*": { objects: 1, calls: 40, busiest: "catalog-AccessPolicy", busiest_calls: 40, busiest_share_in_class: 1 } };
  const m = model(r, { rate: 1000, mix: { protected: 1 }, adminWrites: 25 });
  near(m.classes["catalog-*"].keyed, 25);
  near(m.classes["catalog-*"].busiest, 25);
  near(row(m, "KV writes of admin writes").value, 50);
  assert.equal(row(m, "busiest `catalog-*`").pass, true);
});

test("inputs are checked: a mix type the run did not measure, a bad flag", () => {
  const r = report({ types: { protected: {} } });
  assert.throws(() => model(r, { mix: { protected: 1, "token.nope": 1 } }), /token\.nope was not measured/);
  assert.throws(() => parseMix("a=x"), /bad mix entry/);
  assert.deepEqual(parseMix("protected=0.9, token.refresh=0.1"), { protected: 0.9, "token.refresh": 0.1 });
  assert.deepEqual(parseArgs(["f.json", "--rate", "5", "--shards=8", "--mix=protected=1"]), {
    file: "f.json",
    options: { rate: 5, shards: 8, mix: { protected: 1 } },
    json: false,
  });
  assert.throws(() => parseArgs(["--rate", "-1"]), /positive/);
  assert.throws(() => parseArgs(["--bogus"]), /unknown flag/);
  assert.throws(() => model(r, { run: 3 }), /no run with 3 shards/);
});

test("the header and object classes", () => {
  assert.deepEqual(parseStats("kv_get=2;kv_put=1;kv_delete=0;kv_list=3;do=shard-3,feed-0,shard-3"), {
    kv: { get: 2, put: 1, delete: 0, list: 3 },
    objects: ["shard-3", "feed-0", "shard-3"],
  });
  assert.deepEqual(parseStats("kv_get=0;kv_put=0;kv_delete=0;kv_list=0;do="), { kv: { get: 0, put: 0, delete: 0, list: 0 }, objects: [] });
  assert.equal(parseStats(null), null);
  assert.equal(objectClass("shard-12"), "shard-*");
  assert.equal(objectClass("feed-0"), "feed-*");
  assert.equal(objectClass("catalog-AccessPolicy"), "catalog-*");
  assert.equal(objectClass("catalog"), "catalog-*");
  assert.equal(objectClass("auth-state"), "auth-state");
});

test("aggregation of headers: per type, per object, per class, busiest share, fan-out visible", () => {
  const agg = { types: {}, objects: {} };
  record(agg, "token.refresh", 200, parseStats("kv_get=1;kv_put=0;kv_delete=0;kv_list=0;do=shard-3,shard-3"));
  record(agg, "token.refresh", 200, parseStats("kv_get=0;kv_put=0;kv_delete=0;kv_list=0;do=shard-1"));
  record(agg, "revoke.access", 200, parseStats("kv_get=0;kv_put=0;kv_delete=0;kv_list=0;do=shard-1,feed-0,feed-1"));
  record(agg, "protected", 200, parseStats("kv_get=2;kv_put=0;kv_delete=0;kv_list=1;do=catalog-AccessPolicy"));
  record(agg, "protected", 401, null);
  const s = summarize(agg, 2);
  assert.equal(s.requests, 5);
  assert.equal(s.rps, 2.5);
  assert.equal(s.do_calls, 7);
  assert.deepEqual(s.objects, { "shard-3": 2, "shard-1": 2, "feed-0": 1, "feed-1": 1, "catalog-AccessPolicy": 1 });
  assert.equal(s.busiest, "shard-3");
  near(s.busiest_share, 2 / 7, 1e-3);
  assert.deepEqual(Object.keys(s.classes).sort(), ["catalog-*", "feed-*", "shard-*"]);
  assert.equal(s.classes["shard-*"].objects, 2);
  assert.equal(s.classes["shard-*"].calls, 4);
  const refresh = s.types["token.refresh"];
  assert.equal(refresh.do_per_req, 1.5);
  assert.equal(refresh.kv_get_per_req, 0.5);
  assert.deepEqual(refresh.class_calls_per_req, { "shard-*": 1.5 });
  assert.deepEqual(refresh.class_distinct_per_req, { "shard-*": 1 });
  assert.deepEqual(s.types["revoke.access"].class_distinct_per_req, { "shard-*": 1, "feed-*": 2 });
  assert.equal(s.types["revoke.access"].max_ops, 3);
  assert.equal(s.types.protected.max_kv_ops, 3);
  assert.deepEqual(s.types.protected.statuses, { 200: 1, 401: 1 });
});
