// Issue 15, feeds: access-token revocations are written to REVOCATION_FEEDS replicas
// (`feed-0` ..), each isolate polls one; state an earlier version left in `auth-state` is read
// once; writes in the old op shape reaching `auth-state` are forwarded to every replica; a
// replica follows feed-0, so changing REVOCATION_FEEDS never makes a revoked token valid again.
// The objects each request reached come from `x-edge-stats` (SCALE_STATS=1).
// docs/scale.md "Revocation feeds", docs/attack-corpus.md "Issue 15 — feeds".

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json, decodeJwt } from "./harness.mjs";
import { put, tokenPost, nowSecs } from "./attacks-lib.mjs";

let origin;
before(async () => {
  origin = await startOrigin();
});
after(async () => {
  await origin.dispose();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The Durable Objects a response's request called, in order. */
function objects(res) {
  const h = res.headers.get("x-edge-stats");
  assert.ok(h, "x-edge-stats present (SCALE_STATS=1)");
  const d = h.split(";").find((p) => p.startsWith("do="));
  return d.slice(3) ? d.slice(3).split(",") : [];
}

/** Sends one op straight to the object `name` (the harness holds the STATE binding). */
async function op(w, name, body) {
  const ns = await w.miniflare.getDurableObjectNamespace("STATE");
  const r = await ns.get(ns.idFromName(name)).fetch("https://auth-state.internal/op", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 200, `${name} ${body.op}: ${text}`);
  return JSON.parse(text);
}

async function setup(vars = {}) {
  const w = await startWorker({ originUrl: origin.url, vars: { SCALE_STATS: "1", ...vars } });
  await put(w, "/Client/svc", { secret: "svcsecret", grant_types: ["client_credentials"] });
  await put(w, "/AccessPolicy/all", { engine: "allow" });
  return w;
}

async function token(w) {
  const r = await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("svc", "svcsecret") });
  assert.equal(r.status, 200);
  return (await json(r)).access_token;
}

const bearer = async (w, t) => {
  const r = await w.fetch("/Patient", { headers: { authorization: `Bearer ${t}` } });
  await r.arrayBuffer();
  return r;
};

const revoke = (w, t) =>
  w.fetch("/auth/revoke", {
    method: "POST",
    headers: { authorization: basicAuth("svc", "svcsecret"), "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: t }).toString(),
  });

/** Until when `feed-{i}` holds `jti` revoked (null: not there). */
const inFeed = async (w, i, jti) => (await op(w, `feed-${i}`, { op: "revoked", jti, feed: i })).until ?? null;

/** Waits until the isolate's revocation poll is due again. */
const nextPoll = () => sleep(1100);

test("REVOCATION_FEEDS outside 1..=256 is refused at configuration load", async () => {
  for (const bad of ["0", "257", "-1", "many", "16.5"]) {
    const w = await startWorker({ vars: { REVOCATION_FEEDS: bad } });
    try {
      const r = await w.fetch("/.well-known/openid-configuration");
      assert.equal(r.status, 500, `REVOCATION_FEEDS=${bad}`);
      assert.equal((await json(r)).error, "server_error");
    } finally {
      await w.dispose();
    }
  }
  for (const good of ["1", "256"]) {
    const w = await startWorker({ vars: { REVOCATION_FEEDS: good } });
    try {
      assert.equal((await w.fetch("/.well-known/openid-configuration")).status, 200, `REVOCATION_FEEDS=${good}`);
    } finally {
      await w.dispose();
    }
  }
});

test("a revocation is written to every feed; an isolate polls one feed and, caught up, calls no object per bearer request", async () => {
  const w = await setup({ REVOCATION_FEEDS: "4" });
  try {
    const live = await token(w);
    const doomed = await token(w);
    // First bearer request: the isolate's one feed and, once, the old single feed.
    const first = await bearer(w, live);
    assert.equal(first.status, 200);
    const reached = objects(first);
    const feeds = reached.filter((n) => n.startsWith("feed-"));
    assert.equal(feeds.length, 1, `one feed polled: ${reached}`);
    assert.ok(reached.includes("auth-state"), `the old feed read once: ${reached}`);
    const mine = feeds[0];
    // Caught up: no Durable Object call at all (positive control for the header: the first had some).
    // The poll is due once a second (whole seconds of the clock): a request that happens to
    // cross a second boundary polls the isolate's own feed, never more, and at most one of five.
    let polledAgain = 0;
    for (let i = 0; i < 5; i++) {
      const r = await bearer(w, live);
      assert.equal(r.status, 200);
      const o = objects(r);
      if (o.length) {
        assert.deepEqual(o, [mine], "at most the isolate's own feed, on a second boundary");
        polledAgain++;
      }
    }
    assert.ok(polledAgain <= 1, `no object call per request once caught up (${polledAgain} of 5 polled)`);

    const jti = decodeJwt(doomed).payload.jti;
    assert.equal((await bearer(w, doomed)).status, 200, "live before the revocation");
    const rv = await revoke(w, doomed);
    assert.equal(rv.status, 200, await rv.text());
    // Every replica written (the request may also have polled the isolate's own feed, if it
    // crossed a second boundary: that is the one name that may appear twice).
    const wrote = objects(rv).filter((n) => n.startsWith("feed-")).sort();
    assert.deepEqual([...new Set(wrote)], ["feed-0", "feed-1", "feed-2", "feed-3"], "written to every feed");
    assert.ok(wrote.length === 4 || (wrote.length === 5 && wrote.filter((n) => n === mine).length === 2), `written once each: ${wrote}`);
    for (let i = 0; i < 4; i++) assert.ok((await inFeed(w, i, jti)) > nowSecs(), `feed-${i} holds it`);
    // A retry adds nothing (idempotent): feed-0 still has exactly one row for it.
    assert.equal((await revoke(w, doomed)).status, 200);
    const all = await op(w, "feed-0", { op: "since", since: 0, feed: 0 });
    assert.equal(all.items.filter(([j]) => j === jti).length, 1, "one row per revocation, retried or not");
    assert.equal((await bearer(w, doomed)).status, 401);

    // Later polls: the same one feed, never the old feed again.
    await nextPoll();
    const later = await bearer(w, live);
    assert.equal(later.status, 200);
    assert.deepEqual(objects(later), [mine], "one poll of the isolate's own feed");
  } finally {
    await w.dispose();
  }
});

test("state an earlier version left in auth-state is honoured until read, then never asked again", async () => {
  const w = await setup({ REVOCATION_FEEDS: "4" });
  try {
    const live = await token(w);
    const old = await token(w);
    const jti = decodeJwt(old).payload.jti;
    // A revocation that only the old object holds (as an earlier version left it; the marker
    // keeps the new object code from forwarding it, which is exactly what the old code did).
    await op(w, "auth-state", { op: "revoke", jti, until: nowSecs() + 3600, feed: 0 });
    for (let i = 0; i < 4; i++) assert.equal(await inFeed(w, i, jti), null, `feed-${i} does not have it`);
    const r = await bearer(w, old);
    assert.equal(r.status, 401, "refused on the isolate's first bearer request");
    assert.ok(objects(r).includes("auth-state"), `${objects(r)}`);
    assert.equal((await bearer(w, live)).status, 200, "positive control");
    await nextPoll();
    const again = await bearer(w, old);
    assert.equal(again.status, 401, "still refused from the isolate's copy");
    const l = await bearer(w, live);
    assert.equal(l.status, 200);
    assert.ok(!objects(l).includes("auth-state"), `the old feed is not polled again: ${objects(l)}`);
  } finally {
    await w.dispose();
  }
});

test("a revocation written in the old op shape to auth-state reaches an isolate that polls only its feed", async () => {
  const w = await setup({ REVOCATION_FEEDS: "8" });
  try {
    const live = await token(w);
    const target = await token(w);
    const jti = decodeJwt(target).payload.jti;
    assert.equal((await bearer(w, target)).status, 200);
    assert.equal((await bearer(w, live)).status, 200);
    // The isolate has read the old feed to its end: from now on it polls its feed only.
    await nextPoll();
    const polled = objects(await bearer(w, live));
    assert.equal(polled.length, 1, `${polled}`);
    assert.match(polled[0], /^feed-[0-7]$/);

    // What a Worker of the previous version sends when it revokes (today's op shape).
    await op(w, "auth-state", { op: "revoke", jti, until: nowSecs() + 3600 });
    for (let i = 0; i < 8; i++) assert.ok((await inFeed(w, i, jti)) > nowSecs(), `forwarded to feed-${i}`);
    await nextPoll();
    const r = await bearer(w, target);
    assert.equal(r.status, 401, "refused through the isolate's own feed");
    assert.deepEqual(objects(r), polled, "without asking auth-state");
    assert.equal((await bearer(w, live)).status, 200, "positive control");
    // Old-shape revoke_many too.
    const more = await token(w);
    assert.equal((await bearer(w, more)).status, 200);
    await op(w, "auth-state", { op: "revoke_many", items: [[decodeJwt(more).payload.jti, nowSecs() + 3600]] });
    await nextPoll();
    assert.equal((await bearer(w, more)).status, 401);
  } finally {
    await w.dispose();
  }
});

test("changing REVOCATION_FEEDS never makes a revoked token valid: a feed a smaller setting did not write takes feed-0's", async () => {
  // 256 feeds: the isolate almost surely reads a feed other than feed-0.
  const w = await setup({ REVOCATION_FEEDS: "256" });
  try {
    const live = await token(w);
    const before = await token(w);
    const during = await token(w);
    assert.equal((await bearer(w, live)).status, 200);
    const mine = objects(await bearer(w, live));
    // Revocations made by Workers still configured with REVOCATION_FEEDS=1 (they write feed-0
    // only): one from before this feed was ever read, one from after.
    await op(w, "feed-0", { op: "revoke", jti: decodeJwt(before).payload.jti, until: nowSecs() + 3600, feed: 0 });
    await nextPoll();
    assert.equal((await bearer(w, before)).status, 401, `refused (isolate on ${mine})`);
    await op(w, "feed-0", { op: "revoke", jti: decodeJwt(during).payload.jti, until: nowSecs() + 3600, feed: 0 });
    await nextPoll();
    assert.equal((await bearer(w, during)).status, 401, "a write that reached feed-0 only, after the feed was in use");
    assert.equal((await bearer(w, live)).status, 200, "positive control");

    // Every replica, asked directly, is whole: a new one (never used) and a stale one.
    const j = decodeJwt(during).payload.jti;
    assert.ok((await inFeed(w, 200, j)) > nowSecs(), "a replica never used before copies feed-0");
    const late = `late-${Date.now()}`;
    await op(w, "feed-0", { op: "revoke", jti: late, until: nowSecs() + 3600, feed: 0 });
    await nextPoll();
    assert.ok((await inFeed(w, 200, late)) > nowSecs(), "and keeps following it");
    const page = await op(w, "feed-131", { op: "since", since: 0, feed: 131 });
    for (const x of [j, late]) assert.ok(page.items.some(([i]) => i === x), `feed-131's poll has ${x}`);
    // feed-0 itself never follows anyone (a write straight to feed-5 stays there).
    await op(w, "feed-5", { op: "revoke", jti: "only-5", until: nowSecs() + 3600, feed: 5 });
    assert.equal(await inFeed(w, 0, "only-5"), null);
  } finally {
    await w.dispose();
  }
});

test("REVOCATION_FEEDS=1: one feed, the same guarantees", async () => {
  const w = await setup({ REVOCATION_FEEDS: "1" });
  try {
    const t = await token(w);
    assert.equal((await bearer(w, t)).status, 200);
    const rv = await revoke(w, t);
    assert.equal(rv.status, 200);
    // Written to feed-0 only; a revoke that crosses a second boundary also polls the isolate's
    // feed, which here is feed-0 too (seen in a make test run: ["feed-0", "feed-0"]).
    const feeds = objects(rv).filter((n) => n.startsWith("feed-"));
    assert.deepEqual([...new Set(feeds)], ["feed-0"], feeds.join(","));
    assert.ok(feeds.length <= 2, `feed calls: ${feeds.join(",")}`);
    assert.equal((await bearer(w, t)).status, 401);
  } finally {
    await w.dispose();
  }
});
