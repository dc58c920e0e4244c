// Issue 12, against the built Worker in workerd: throttling that holds under concurrency (300
// parallel guesses reserve their checks atomically in the Durable Object), client and root
// secret guessing throttled per client id and per address, IPv6 addresses bucketed by /64,
// revocations kept until exp + leeway, and a new isolate's first bearer request with 100,000
// live revocations. (Stuck "in flight" marks cannot be made over HTTP: tests/faults.rs.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startWorker, startOrigin, basicAuth, decodeJwt, json, form, FORM } from "./harness.mjs";
import { assertError, put, tokenPost } from "./attacks-lib.mjs";

const N = Number(process.env.GUESSES ?? 300);
let w, origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({
    originUrl: origin.url,
    vars: {
      LOGIN_MAX_FAILURES: "5",
      // High, so that only the per-account limit decides in the parallel runs.
      LOGIN_ADDRESS_MAX_FAILURES: "1000",
      LOGIN_WINDOW: "600",
      LOGIN_LOCKOUT: "60",
      LOGIN_LOCKOUT_MAX: "600",
      CLOCK_LEEWAY: "6",
      // The full cost, so that each check takes as long as in production.
      PBKDF2_ITERATIONS: "100000",
    },
  });
  await put(w, "/Client/app", { secret: "appsecret", grant_types: ["password"] });
  await put(w, "/Client/svc", { secret: "svcsecret", grant_types: ["client_credentials", "basic"] });
  await put(w, "/Client/other", { secret: "othersecret", grant_types: ["client_credentials", "basic"] });
  await put(w, "/Client/short", {
    secret: "shortsecret",
    grant_types: ["client_credentials"],
    auth: { client_credentials: { access_token_expiration: 2 } },
  });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
  await put(w, "/User/jane", { email: "jane@example.com", password: "pass123" });
  await put(w, "/AccessPolicy/clients", { engine: "allow" });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

const ip = () => `198.51.100.${1 + Math.floor(Math.random() * 250)}`;
const grant = (username, password, headers = {}) =>
  tokenPost(w, { grant_type: "password", username, password }, { auth: basicAuth("app", "appsecret"), headers });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends a request again when the connection broke before any answer (undici's "fetch failed"
 * on a kept-alive socket after a burst); a guess that got no answer was never checked.
 */
async function retried(send) {
  for (let i = 0; ; i++) {
    try {
      return await send();
    } catch (e) {
      if (i >= 3 || e?.message !== "fetch failed") throw e;
      await sleep(100);
    }
  }
}

/** Status counts of a list of responses (bodies drained). */
async function tally(responses) {
  const counts = {};
  for (const r of responses) {
    counts[r.status] = (counts[r.status] ?? 0) + 1;
    await r.arrayBuffer();
  }
  return counts;
}

test(`${N} parallel password guesses get at most LOGIN_MAX_FAILURES checked answers, the rest 429, and all count`, async () => {
  const guesses = Array.from({ length: N }, (_, i) => retried(() => grant("john", `guess-${i}`)));
  const counts = await tally(await Promise.all(guesses));
  const checked = counts[400] ?? 0;
  console.log(`# ${N} parallel guesses: ${checked} checked (400), ${counts[429] ?? 0} refused (429), all: ${JSON.stringify(counts)}`);
  assert.ok(checked >= 1 && checked <= 5, `${checked} of ${N} guesses were checked: ${JSON.stringify(counts)}`);
  assert.equal(checked + (counts[429] ?? 0), N, `every guess is a 400 or a 429, never a 503: ${JSON.stringify(counts)}`);
  // Every checked guess was counted: the account is locked, the right password waits too.
  const locked = await grant("john", "pass123");
  const body = await assertError(locked, 429, "slow_down");
  assert.match(body.error_description, /too many failed sign-in attempts/);
  assert.ok(Number(locked.headers.get("retry-after")) >= 1);
  // Positive control: another account signs in.
  const ok = await grant("jane", "pass123");
  assert.equal(ok.status, 200, await ok.text());
});

test("parallel client-secret guesses (Basic at the token endpoint) are throttled per client id", async () => {
  const cc = { grant_type: "client_credentials" };
  const guesses = Array.from({ length: 100 }, (_, i) =>
    retried(() => tokenPost(w, cc, { auth: basicAuth("svc", `guess-${i}`), headers: { "cf-connecting-ip": ip() } })),
  );
  const counts = await tally(await Promise.all(guesses));
  console.log(`# 100 parallel client-secret guesses: ${JSON.stringify(counts)}`);
  assert.ok((counts[401] ?? 0) <= 5, `${counts[401]} checked: ${JSON.stringify(counts)}`);
  assert.equal((counts[401] ?? 0) + (counts[429] ?? 0), 100, JSON.stringify(counts));
  // Locked from every address and through every door: client_secret_post, and Basic on the API.
  await assertError(await tokenPost(w, cc, { auth: basicAuth("svc", "svcsecret") }), 429, "slow_down");
  await assertError(
    await tokenPost(w, { ...cc, client_id: "svc", client_secret: "svcsecret" }, { headers: { "cf-connecting-ip": ip() } }),
    429,
    "slow_down",
  );
  origin.reset();
  const api = await w.fetch("/Patient", { headers: { authorization: basicAuth("svc", "svcsecret") } });
  await assertError(api, 429, "slow_down");
  assert.equal(origin.requests.length, 0, "a locked client's request never reached the origin");
  // Positive control: another client is not affected.
  const other = await w.fetch("/Patient", { headers: { authorization: basicAuth("other", "othersecret") } });
  assert.equal(other.status, 200, await other.text());
  assert.equal(origin.requests.length, 1);
});

test("client_secret_post guesses are throttled like Basic ones", async () => {
  await put(w, "/Client/post", { secret: "postsecret", grant_types: ["client_credentials"] });
  const guesses = Array.from({ length: 40 }, (_, i) =>
    retried(() => tokenPost(w, { grant_type: "client_credentials", client_id: "post", client_secret: `g${i}` })),
  );
  const counts = await tally(await Promise.all(guesses));
  assert.ok((counts[401] ?? 0) <= 5 && (counts[429] ?? 0) >= 35, JSON.stringify(counts));
});

test("an unknown client id is refused without a password hash", async () => {
  // 100,000 PBKDF2 rounds cost a known client's wrong secret tens of milliseconds; an unknown
  // id answers without them (client ids are not secrets, RFC 6749 2.2).
  const time = async (id) => {
    const t0 = performance.now();
    const r = await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth(id, "x"), headers: { "cf-connecting-ip": ip() } });
    await assertError(r, 401, "invalid_client");
    return performance.now() - t0;
  };
  const unknown = [];
  for (let i = 0; i < 5; i++) unknown.push(await time(`nobody-${i}`));
  console.log(`# unknown client ids answered in ${unknown.map((t) => t.toFixed(1)).join(", ")} ms`);
  assert.ok(Math.min(...unknown) < 50, unknown.join(","));
});

test("parallel root-secret guesses on the API are throttled; the operator's verified secret still works", async () => {
  const guesses = Array.from({ length: 60 }, (_, i) =>
    retried(() => w.fetch("/User", { headers: { authorization: basicAuth("root", `guess-${i}`), "cf-connecting-ip": ip() } })),
  );
  const counts = await tally(await Promise.all(guesses));
  console.log(`# 60 parallel root-secret guesses: ${JSON.stringify(counts)}`);
  assert.ok((counts[401] ?? 0) <= 5, JSON.stringify(counts));
  assert.equal((counts[401] ?? 0) + (counts[429] ?? 0), 60, JSON.stringify(counts));
  // This isolate verified the real secret during setup: the operator is not locked out by it.
  const r = await w.admin("GET", "/User");
  assert.equal(r.status, 200);
});

test("a revoked access token stays refused until exp plus the clock leeway", async () => {
  const t = await json(await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("short", "shortsecret") }));
  const { exp } = decodeJwt(t.access_token).payload;
  const bearer = { authorization: `Bearer ${t.access_token}` };
  assert.equal((await w.fetch("/Patient", { headers: bearer })).status, 200, "positive control");
  const rev = await w.fetch("/auth/revoke", {
    method: "POST",
    headers: { ...FORM, authorization: basicAuth("short", "shortsecret") },
    body: form({ token: t.access_token, token_type_hint: "access_token" }),
  });
  assert.equal(rev.status, 200, await rev.text());
  const now = await w.fetch("/Patient", { headers: bearer });
  assert.equal(now.status, 401, "refused at once");
  await now.arrayBuffer();
  // Past exp, within CLOCK_LEEWAY (6 s), the verifier still accepts the signature and claims.
  await sleep(Math.max(0, (exp + 2) * 1000 - Date.now()));
  origin.reset();
  const late = await w.fetch("/Patient", { headers: bearer });
  assert.equal(late.status, 401, "a revoked token came back to life after exp");
  assert.match((await json(late)).error_description, /revoked/);
  assert.equal(origin.requests.length, 0);
});

test("IPv6 client addresses are throttled per /64", async () => {
  const w6 = await startWorker({
    vars: { LOGIN_MAX_FAILURES: "50", LOGIN_ADDRESS_MAX_FAILURES: "4", LOGIN_LOCKOUT: "60", PBKDF2_ITERATIONS: "1000" },
  });
  try {
    await put(w6, "/Client/app", { secret: "appsecret", grant_types: ["password"] });
    await put(w6, "/User/jane", { email: "jane@example.com", password: "pass123" });
    const g = (username, password, addr) =>
      tokenPost(w6, { grant_type: "password", username, password }, { auth: basicAuth("app", "appsecret"), headers: { "cf-connecting-ip": addr } });
    // One host rotating through its /64: each guess from a new address.
    for (let i = 1; i <= 4; i++) {
      const r = await g(`nobody-${i}`, "123456", `2001:db8:a:b:${i.toString(16)}::${i}`);
      assert.equal(r.status, 400, `guess ${i}: ${await r.text()}`);
    }
    await assertError(await g("jane", "pass123", "2001:db8:a:b:ffff:ffff:ffff:fffe"), 429, "slow_down");
    // The next /64 is someone else; so is an IPv4 client.
    assert.equal((await g("jane", "pass123", "2001:db8:a:c::1")).status, 200);
    assert.equal((await g("jane", "pass123", "203.0.113.9")).status, 200);
  } finally {
    await w6.dispose();
  }
});

test("a new isolate's first bearer request with 100,000 live revocations does not stall", async () => {
  const COUNT = Number(process.env.REVOCATIONS ?? 100_000);
  // One replica, so the isolate's feed is feed-0, seeded below as this version writes it.
  const wr = await startWorker({ originUrl: origin.url, vars: { REVOCATION_FEEDS: "1" } });
  try {
    await put(wr, "/Client/svc", { secret: "svcsecret", grant_types: ["client_credentials"] });
    await put(wr, "/AccessPolicy/all", { engine: "allow" });
    const cc = async () =>
      (await json(await tokenPost(wr, { grant_type: "client_credentials" }, { auth: basicAuth("svc", "svcsecret") }))).access_token;
    const revoked = await cc();
    const live = await cc();
    const revokedJti = decodeJwt(revoked).payload.jti;
    assert.ok(revokedJti, "tokens carry a jti");
    // Seed the revocation feed straight in the Durable Object (the harness holds its binding;
    // nothing on the Worker's HTTP surface can send this op).
    const ns = await wr.miniflare.getDurableObjectNamespace("STATE");
    const stub = ns.get(ns.idFromName("feed-0"));
    const until = Math.floor(Date.now() / 1000) + 3600;
    const t0 = performance.now();
    for (let done = 0; done < COUNT; done += 10_000) {
      const items = [];
      for (let i = done; i < Math.min(COUNT, done + 10_000); i++) {
        items.push([i === Math.floor(COUNT / 2) ? revokedJti : randomBytes(16).toString("base64url"), until]);
      }
      const r = await stub.fetch("https://auth-state.internal/op", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ op: "revoke_many", items, feed: 0 }),
      });
      assert.equal(r.status, 200, await r.text());
    }
    console.log(`# seeded ${COUNT} revocations in ${(performance.now() - t0).toFixed(0)} ms`);

    // The isolate has not checked a bearer token yet: its revocation copy is empty.
    origin.reset();
    const t1 = performance.now();
    const first = await wr.fetch("/Patient", { headers: { authorization: `Bearer ${live}` } });
    const firstMs = performance.now() - t1;
    assert.equal(first.status, 200, await first.text());
    const t2 = performance.now();
    const refused = await wr.fetch("/Patient", { headers: { authorization: `Bearer ${revoked}` } });
    const secondMs = performance.now() - t2;
    assert.equal(refused.status, 401, "the revoked token, in the middle of the feed, is refused at once");
    await refused.arrayBuffer();
    // The rest of the feed is read a page per request; the revoked token stays refused throughout.
    const times = [];
    for (let i = 0; i < 30; i++) {
      const t = performance.now();
      const r = await wr.fetch("/Patient", { headers: { authorization: `Bearer ${i % 2 ? revoked : live}` } });
      times.push(performance.now() - t);
      assert.equal(r.status, i % 2 ? 401 : 200);
      await r.arrayBuffer();
    }
    assert.equal(origin.requests.length, 16, "only the live token's requests reached the origin");
    console.log(
      `# ${COUNT} live revocations: first bearer request ${firstMs.toFixed(0)} ms, revoked one ${secondMs.toFixed(0)} ms, ` +
        `next 30 max ${Math.max(...times).toFixed(0)} ms, median ${times.sort((a, b) => a - b)[15].toFixed(0)} ms`,
    );
    assert.ok(firstMs < 2000, `first bearer request took ${firstMs.toFixed(0)} ms`);
  } finally {
    await wr.dispose();
  }
});
