// Keyed state over many Durable Objects (issue 15, docs/scale.md "Keyed state (shards)"), in
// workerd: codes, refresh families and sessions spread over the `shard-{i}` objects, a refresh
// touches only its family's object, single use and rotation still hold under concurrency,
// throttling counts exactly across the account's and the address's objects, and a deployment
// with state in the old single object `auth-state` (or in 4 shards) keeps working after the
// upgrade, its records moved out. `x-edge-stats` (SCALE_STATS=1) names the objects reached.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes, generateKeyPairSync, sign as nodeSign, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, basicAuth, form, json, FORM } from "./harness.mjs";
import { put, interaction, postLogin, postConsent, authorizeQuery, cookies, cookieHeader, pkce } from "./attacks-lib.mjs";

const CB = "https://app.example/cb";
const B_CB = "https://b.example/cb";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dirs = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const sha = (s) => createHash("sha256").update(s).digest();
const hashKey = (s) => sha(s).toString("base64url");
/** The shard of `key` among `count`: first 8 bytes of SHA-256, big-endian, mod count. */
const shardOf = (key, count) => `shard-${sha(key).readBigUInt64BE(0) % BigInt(count)}`;
/** The objects a response says its request reached. */
const objects = (res) => {
  const h = res.headers.get("x-edge-stats");
  assert.ok(h, "x-edge-stats (SCALE_STATS=1)");
  const d = /do=(.*)$/.exec(h)[1];
  return d ? d.split(",") : [];
};

async function setup(w) {
  await put(w, "/Client/web", {
    secret: "websecret", grant_types: ["authorization_code", "password"], first_party: true,
    auth: { authorization_code: { redirect_uri: CB, refresh_token: true }, password: { refresh_token: true } },
  });
  await put(w, "/Client/app-b", {
    secret: "b-secret", grant_types: ["authorization_code"], name: "App B",
    auth: { authorization_code: { redirect_uri: B_CB } }, scope: ["openid", "patient/*.rs"],
  });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
  await put(w, "/AccessPolicy/john", { engine: "allow", link: [{ id: "john", resourceType: "User" }] });
}

const WEB = basicAuth("web", "websecret");
const token = (w, params, headers = {}) =>
  w.fetch("/auth/token", { method: "POST", headers: { ...FORM, authorization: WEB, ...headers }, body: form(params) });

/** Signs john in (first-party client): the code, its verifier and the browser's cookie jar. */
async function signIn(w) {
  const { verifier, challenge } = pkce();
  const q = authorizeQuery({ response_type: "code", client_id: "web", redirect_uri: CB, state: "s", code_challenge: challenge, code_challenge_method: "S256" });
  const { csrf, jar } = await interaction(w, q);
  const res = await postLogin(w, { query: q, csrf, jar });
  assert.equal(res.status, 303);
  const to = new URL(res.headers.get("location"));
  assert.equal(to.origin + to.pathname, CB, res.headers.get("location"));
  return { code: to.searchParams.get("code"), verifier, jar: { ...jar, ...cookies(res) } };
}

const redeem = (w, c) => token(w, { grant_type: "authorization_code", code: c.code, redirect_uri: CB, code_verifier: c.verifier });

/** A fresh refresh token (password grant). */
async function refreshToken(w) {
  const r = await token(w, { grant_type: "password", username: "john", password: "pass123" });
  const body = await json(r);
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.ok(body.refresh_token);
  return body.refresh_token;
}

/** GET /auth/authorize with the browser's cookies: where it sends the browser. */
async function authorizeWith(w, jar, client = "web") {
  const q = client === "web"
    ? authorizeQuery({ response_type: "code", client_id: "web", redirect_uri: CB, state: "s" })
    : authorizeQuery({ response_type: "code", client_id: "app-b", redirect_uri: B_CB, scope: "openid patient/*.rs", state: "s" });
  const res = await w.fetch(`/auth/authorize?${q}`, { headers: { cookie: cookieHeader(jar) } });
  await res.arrayBuffer();
  assert.equal(res.status, 303);
  return res.headers.get("location");
}

/** A direct op on one object (the harness holds the bindings; no HTTP request can send it). */
async function op(w, binding, name, body) {
  const ns = await w.miniflare.getDurableObjectNamespace(binding);
  const r = await ns.get(ns.idFromName(name)).fetch("https://state.internal/op", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return JSON.parse(text);
}
const getIn = async (w, binding, name, key) => (await op(w, binding, name, { op: "get", key })).value ?? null;

test("codes, families and sessions spread over many shards; a refresh touches only its family's object", async () => {
  const w = await startWorker({ vars: { SCALE_STATS: "1", PBKDF2_ITERATIONS: "1000" } });
  try {
    await setup(w);
    const seen = new Set();
    for (let i = 0; i < 12; i++) {
      const c = await signIn(w);
      const r = await redeem(w, c);
      assert.equal(r.status, 200);
      objects(r).forEach((o) => seen.add(o));
      const body = await json(r);
      // The code's record is in its shard, consumed; no keyed record in auth-state.
      assert.ok(await getIn(w, "SHARDS", shardOf(`code/${hashKey(c.code)}`, 64), `code/${hashKey(c.code)}`));
      assert.equal(await getIn(w, "STATE", "auth-state", `code/${hashKey(c.code)}`), null);
      const session = c.jar.edge_session;
      assert.ok(session, JSON.stringify(c.jar));
      assert.ok(await getIn(w, "SHARDS", shardOf(`session/${hashKey(session)}`, 64), `session/${hashKey(session)}`));
      if (i === 0) {
        const family = body.refresh_token.split(".")[0];
        const rr = await token(w, { grant_type: "refresh_token", refresh_token: body.refresh_token });
        assert.equal(rr.status, 200);
        assert.deepEqual([...new Set(objects(rr))], [shardOf(`rt/${family}`, 64)], "the refresh reached only its family's object");
      }
    }
    const shards = [...seen].filter((o) => o.startsWith("shard-"));
    assert.ok(shards.length >= 8, `shards reached: ${[...seen]}`);
    // After the isolate's first requests (auth-state said it holds nothing), never again.
    const c = await signIn(w);
    const r = await redeem(w, c);
    assert.equal(r.status, 200);
    assert.ok(!objects(r).includes("auth-state"), `redemption reached ${objects(r)}`);
  } finally {
    await w.dispose();
  }
});

test("sharded: exactly one of N parallel redemptions of a code, and of refreshes of one refresh token", async () => {
  const N = 20;
  const w = await startWorker({ vars: { PBKDF2_ITERATIONS: "1000" } });
  try {
    await setup(w);
    const c = await signIn(w);
    const results = await Promise.all(Array.from({ length: N }, () => redeem(w, c).then(async (r) => ({ status: r.status, body: await json(r) }))));
    const ok = results.filter((r) => r.status === 200);
    assert.equal(ok.length, 1, results.map((r) => r.status).join(","));
    for (const r of results.filter((r) => r.status !== 200)) assert.equal(r.body.error, "invalid_grant");
    // (The replays revoked what that redemption issued, RFC 6749 10.5: a fresh family here.)
    const r0 = await redeem(w, await signIn(w));
    assert.equal(r0.status, 200);
    const rt = (await json(r0)).refresh_token;
    const refreshes = await Promise.all(Array.from({ length: N }, () =>
      token(w, { grant_type: "refresh_token", refresh_token: rt }).then(async (r) => ({ status: r.status, body: await json(r) }))));
    const fresh = refreshes.filter((r) => r.status === 200);
    assert.equal(fresh.length, 1, refreshes.map((r) => r.status).join(","));
    // The others were reuse: the family is revoked, the new token too.
    const again = await token(w, { grant_type: "refresh_token", refresh_token: fresh[0].body.refresh_token });
    assert.equal(again.status, 400);
    assert.equal((await json(again)).error, "invalid_grant");
  } finally {
    await w.dispose();
  }
});

test("throttle across shards: an account hammered from many addresses and an address guessing many accounts, counts exact", async () => {
  const w = await startWorker({
    vars: {
      SCALE_STATS: "1", PBKDF2_ITERATIONS: "1000",
      LOGIN_MAX_FAILURES: "3", LOGIN_ADDRESS_MAX_FAILURES: "6", LOGIN_WINDOW: "600", LOGIN_LOCKOUT: "300", LOGIN_LOCKOUT_MAX: "600",
    },
  });
  const guess = (username, password, ip) =>
    w.fetch("/auth/token", {
      method: "POST",
      headers: { ...FORM, authorization: WEB, "cf-connecting-ip": ip },
      body: form({ grant_type: "password", username, password }),
    }).then(async (r) => ({ status: r.status, body: await json(r), objects: objects(r) }));
  try {
    await setup(w);
    await put(w, "/User/jane", { email: "jane@example.com", password: "pass456" });
    // 1. john from 30 addresses at once: at most 3 checked; then exactly 3 in all, then locked.
    const burst = await Promise.all(Array.from({ length: 30 }, (_, i) => guess("john", `guess-${i}`, `198.51.100.${i + 1}`)));
    const checked = burst.filter((r) => r.status === 400).length;
    assert.ok(checked >= 1 && checked <= 3, burst.map((r) => r.status).join(","));
    assert.ok(burst.every((r) => r.status === 400 || r.status === 429), burst.map((r) => r.status).join(","));
    let more = 0;
    for (let i = 0; i < 6; i++) {
      const r = await guess("john", `late-${i}`, `203.0.113.${i + 1}`);
      if (r.status === 400) more++;
      else assert.equal(r.status, 429);
    }
    assert.equal(checked + more, 3, `checked ${checked} in the burst and ${more} after`);
    const right = await guess("john", "pass123", "192.0.2.200");
    assert.equal(right.status, 429, "the account is locked, the right password too");
    // The account's and the address's records are in their own shards.
    const account = `throttle/user/${hashKey("id:john")}`;
    assert.ok(await getIn(w, "SHARDS", shardOf(account, 64), account), "the account's record is in its shard");

    // 2. one address guessing 30 accounts at once: at most 6 checked, then exactly 6 in all.
    const ip = "192.0.2.77";
    const wide = await Promise.all(Array.from({ length: 30 }, (_, i) => guess(`nobody-${i}`, "x", ip)));
    const wideChecked = wide.filter((r) => r.status === 400).length;
    assert.ok(wideChecked >= 1 && wideChecked <= 6, wide.map((r) => r.status).join(","));
    let wideMore = 0;
    for (let i = 0; i < 10; i++) {
      const r = await guess(`later-${i}`, "x", ip);
      if (r.status === 400) wideMore++;
      else assert.equal(r.status, 429);
    }
    assert.equal(wideChecked + wideMore, 6, `checked ${wideChecked} in the burst and ${wideMore} after`);
    assert.equal((await guess("jane", "pass456", ip)).status, 429, "the address is locked");
    assert.equal((await guess("jane", "pass456", "192.0.2.78")).status, 200, "control: jane from elsewhere");
    // An address refusal released the account's reservation: no account was counted for it.
    for (let i = 0; i < 3; i++) assert.equal((await guess(`nobody-${i}`, "x", "192.0.2.99")).status, 400);
  } finally {
    await w.dispose();
  }
});

/** State made by one layout, then the Worker restarted on the same storage with another. */
async function migration(before, afterVars, { previous, count }) {
  const dir = mkdtempSync(path.join(tmpdir(), "shards-"));
  dirs.push(dir);
  const base = { persistDir: dir, adminSecret: "root-secret-0123456789", vars: { PBKDF2_ITERATIONS: "1000", SCALE_STATS: "1" } };
  const signingKey = (await import("../../scripts/keys.mjs")).generateSigningJwk;
  const key = await signingKey();
  let w = await startWorker({ ...base, signingKey: key, vars: { ...base.vars, ...before } });
  let saved;
  try {
    await setup(w);
    const c = await signIn(w); // an unredeemed code and a session
    const rt = await refreshToken(w);
    const untouched = await signIn(w); // a session nobody uses after the upgrade
    const raced = { rt: await refreshToken(w), code: await signIn(w) }; // used by 10 at once after
    // A grant: consent for app-b.
    const q = authorizeQuery({ response_type: "code", client_id: "app-b", redirect_uri: B_CB, scope: "openid patient/*.rs", state: "s" });
    const page = await interaction(w, q, c.jar);
    const ok = await postConsent(w, { query: q, csrf: page.csrf, jar: page.jar });
    assert.equal(ok.status, 303);
    assert.ok(ok.headers.get("location").startsWith(B_CB), ok.headers.get("location"));
    saved = { c, rt, untouched, raced, jar: page.jar };
  } finally {
    await w.dispose();
  }
  w = await startWorker({ ...base, signingKey: key, vars: { ...base.vars, ...afterVars } });
  try {
    const { c, rt, untouched, raced, jar } = saved;
    // Many requests moving one record at once: still exactly one redemption, one refresh.
    const statuses = async (n, f) => (await Promise.all(Array.from({ length: n }, () => f().then(async (r) => (await r.arrayBuffer(), r.status))))).sort();
    const reds = await statuses(10, () => redeem(w, raced.code));
    assert.deepEqual(reds, [200, ...Array(9).fill(400)], `parallel redemptions of a code from before: ${reds}`);
    const refs = await statuses(10, () => token(w, { grant_type: "refresh_token", refresh_token: raced.rt }));
    assert.deepEqual(refs, [200, ...Array(9).fill(400)], `parallel refreshes of a token from before: ${refs}`);
    const family = rt.split(".")[0];
    // The refresh token refreshes; the old one's reuse then revokes the family.
    const r1 = await token(w, { grant_type: "refresh_token", refresh_token: rt });
    const b1 = await json(r1);
    assert.equal(r1.status, 200, JSON.stringify(b1));
    assert.ok(objects(r1).includes(shardOf(`rt/${family}`, count)));
    const reuse = await token(w, { grant_type: "refresh_token", refresh_token: rt });
    assert.equal(reuse.status, 400);
    const r2 = await token(w, { grant_type: "refresh_token", refresh_token: b1.refresh_token });
    assert.equal(r2.status, 400, "the reuse revoked the family");
    assert.equal((await json(r2)).error, "invalid_grant");
    // The unredeemed code redeems once.
    const red = await redeem(w, c);
    assert.equal(red.status, 200, await red.clone().text());
    assert.equal((await redeem(w, c)).status, 400);
    // The session cookie still signs in; the grant is remembered (no consent page).
    assert.ok((await authorizeWith(w, jar)).startsWith(`${CB}?`), "the session signs in");
    const b = await authorizeWith(w, jar, "app-b");
    assert.ok(b.startsWith(`${B_CB}?`) && new URL(b).searchParams.has("code"), `the grant is remembered: ${b}`);
    // Control: a fresh browser without the session goes to the login page.
    assert.match(await authorizeWith(w, {}), /^\/auth\/ui\/login\.html/);
    // The records are no longer in the previous location: moved on touch, and the one nobody
    // touched by the drain (an alarm), within seconds.
    const prevOf = (k) => (previous === "single" ? ["STATE", "auth-state"] : ["SHARDS", shardOf(k, previous)]);
    const keys = [
      `rt/${family}`, `code/${hashKey(c.code)}`, `session/${hashKey(c.jar.edge_session)}`, "grants/john",
      `session/${hashKey(untouched.jar.edge_session)}`, `code/${hashKey(untouched.code)}`,
    ];
    let left = [];
    for (let i = 0; i < 40; i++) {
      left = [];
      for (const k of keys) {
        const [binding, name] = prevOf(k);
        if (name !== shardOf(k, count) && (await getIn(w, binding, name, k)) !== null) left.push(`${name}:${k}`);
      }
      if (left.length === 0) break;
      await sleep(250);
    }
    assert.deepEqual(left, [], "records left in the previous layout");
    const s = `session/${hashKey(untouched.jar.edge_session)}`;
    assert.ok(await getIn(w, "SHARDS", shardOf(s, count), s), "the untouched session was moved by the drain");
    assert.ok((await authorizeWith(w, untouched.jar)).startsWith(`${CB}?`), "and still signs in");
    if (previous === "single") {
      // Once auth-state said it is empty, the isolate stops asking it.
      const red2 = await redeem(w, await signIn(w));
      assert.equal(red2.status, 200);
      assert.ok(!objects(red2).includes("auth-state"), `reached ${objects(red2)} after the drain`);
      // A Worker of the old version still writing there (a rolling deploy): the drain runs
      // again and moves the record to its shard.
      const k = `launch/${hashKey(randomBytes(8).toString("hex"))}`;
      const exp = Math.floor(Date.now() / 1000) + 600;
      assert.equal((await op(w, "STATE", "auth-state", { op: "cas", key: k, expected: null, new: "{}", expires_at: exp })).swapped, true);
      let moved = null;
      for (let i = 0; i < 40 && moved === null; i++) {
        await sleep(250);
        moved = await getIn(w, "SHARDS", shardOf(k, count), k);
      }
      assert.equal(moved, "{}", "the late write was moved to its shard");
      assert.equal(await getIn(w, "STATE", "auth-state", k), null);
    }
  } finally {
    await w.dispose();
  }
}

test("upgrade from the single object: refresh, reuse, code, session and grant survive; auth-state empties", async () => {
  await migration({ STATE_SHARDS: "single" }, {}, { previous: "single", count: 64 });
});

test("STATE_SHARDS 4 -> 16 with STATE_SHARDS_PREVIOUS=4: the same", async () => {
  await migration({ STATE_SHARDS: "4" }, { STATE_SHARDS: "16", STATE_SHARDS_PREVIOUS: "4" }, { previous: 4, count: 16 });
});

// A previous shard drains only once a Worker of the new layout has called it; before the fix a
// shard no look-up happened to reach kept its records for good (found on touch, never moved),
// and the test above failed whenever the random keys of a run missed one of the four. Now every
// keyed look-up also calls one more previous shard, until the isolate has called all of them
// (here shard-0 is empty after the first two, so the rest never look back by themselves).
test("STATE_SHARDS 4 -> 16: every previous shard drains, also those no look-up reaches", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "shards-"));
  dirs.push(dir);
  const base = { persistDir: dir, adminSecret: "root-secret-0123456789", vars: { PBKDF2_ITERATIONS: "1000", SCALE_STATS: "1" } };
  const key = await (await import("../../scripts/keys.mjs")).generateSigningJwk();
  // One live record in each of the four shards, each belonging to another shard under 16.
  const placed = [];
  for (let i = 0; i < 4; i++) {
    let k;
    do k = `launch/${randomBytes(12).toString("hex")}`;
    while (shardOf(k, 4) !== `shard-${i}` || shardOf(k, 16) === `shard-${i}`);
    placed.push(k);
  }
  const exp = Math.floor(Date.now() / 1000) + 600;
  let w = await startWorker({ ...base, signingKey: key, vars: { ...base.vars, STATE_SHARDS: "4" } });
  try {
    await setup(w);
    for (const k of placed) {
      assert.equal((await op(w, "SHARDS", shardOf(k, 4), { op: "cas", key: k, expected: null, new: "{}", expires_at: exp })).swapped, true);
    }
  } finally {
    await w.dispose();
  }
  w = await startWorker({ ...base, signingKey: key, vars: { ...base.vars, STATE_SHARDS: "16", STATE_SHARDS_PREVIOUS: "4" } });
  try {
    // Four look-ups of unknown sessions, all of whose previous shard is shard-0 (and their new
    // one another): by themselves they reach only shard-0 of the previous layout.
    for (let n = 0; n < 4; n++) {
      let cookie;
      do cookie = randomBytes(32).toString("base64url");
      while (shardOf(`session/${hashKey(cookie)}`, 4) !== "shard-0" || shardOf(`session/${hashKey(cookie)}`, 16) === "shard-0");
      assert.match(await authorizeWith(w, { edge_session: cookie }), /^\/auth\/ui\/login\.html/, "an unknown session signs nobody in");
    }
    let left = [];
    for (let i = 0; i < 40; i++) {
      left = [];
      for (const k of placed) if ((await getIn(w, "SHARDS", shardOf(k, 4), k)) !== null) left.push(`${shardOf(k, 4)}:${k}`);
      if (left.length === 0) break;
      await sleep(250);
    }
    assert.deepEqual(left, [], "records left in previous shards");
    for (const k of placed) assert.equal(await getIn(w, "SHARDS", shardOf(k, 16), k), "{}", `${k} moved to ${shardOf(k, 16)}`);
  } finally {
    await w.dispose();
  }
});

test("a client assertion used before the upgrade is refused after it: a creation never shadows a record still in auth-state", async () => {
  // The `jti` record is created with compare-and-set from absent: without the look into the
  // previous layout first, the shard would accept the replay as new.
  const dir = mkdtempSync(path.join(tmpdir(), "shards-"));
  dirs.push(dir);
  const ISSUER = "https://auth.example";
  const ec = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString("base64url");
  const assertion = () => {
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg: "ES384", kid: "ec-1", typ: "JWT" })}.${b64({ iss: "bulk", sub: "bulk", aud: `${ISSUER}/auth/token`, exp: now + 240, jti: randomUUID() })}`;
    return `${input}.${nodeSign("sha384", Buffer.from(input), { key: ec.privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
  };
  const grant = (w, a) =>
    w.fetch("/auth/token", {
      method: "POST", headers: FORM,
      body: form({ grant_type: "client_credentials", scope: "system/*.rs", client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion: a }),
    });
  const start = (vars) => startWorker({ persistDir: dir, vars: { ISSUER, ...vars } });
  const a = assertion();
  let w = await start({ STATE_SHARDS: "single" });
  try {
    await put(w, "/Client/bulk", {
      grant_types: ["client_credentials"], "allowed-scopes": ["system/*.rs"],
      jwks: { keys: [{ ...ec.publicKey.export({ format: "jwk" }), kid: "ec-1", alg: "ES384" }] },
    });
    const r = await grant(w, a);
    assert.equal(r.status, 200, await r.text());
  } finally {
    await w.dispose();
  }
  w = await start({});
  try {
    const replay = await grant(w, a);
    assert.equal(replay.status, 401, "the replayed assertion");
    assert.equal((await json(replay)).error, "invalid_client");
    const fresh = await grant(w, assertion());
    assert.equal(fresh.status, 200, `control: a new assertion ${await fresh.text()}`);
  } finally {
    await w.dispose();
  }
});

test("STATE_SHARDS out of range or malformed is refused at config load (500 configuration, logged)", async () => {
  const bads = [{ STATE_SHARDS: "0" }, { STATE_SHARDS: "1025" }, { STATE_SHARDS: "many" }, { STATE_SHARDS: "8", STATE_SHARDS_PREVIOUS: "8" }];
  for (const vars of [...bads, { STATE_SHARDS: "single" }, { STATE_SHARDS: "1024" }]) {
    const w = await startWorker({ vars, captureLogs: true });
    try {
      const r = await w.fetch("/.well-known/openid-configuration");
      await r.arrayBuffer();
      if (bads.includes(vars)) {
        assert.equal(r.status, 500, `${JSON.stringify(vars)}: ${r.status}`);
        assert.ok(w.logs.some((l) => /STATE_SHARDS/.test(l.message)), JSON.stringify(w.logs));
      } else {
        assert.equal(r.status, 200, `control ${JSON.stringify(vars)}`);
      }
    } finally {
      await w.dispose();
    }
  }
});
