// `make scale`: the built Worker in workerd (through tests/e2e/harness.mjs, Miniflare's own HTTP
// server, no assets layer) under a mixed load, once per Durable Object shard count, reading the
// per-request storage counts the Worker reports in `x-edge-stats` (src/worker/stats.rs, on with
// the var SCALE_STATS=1). Writes build/scale.json (tests/scale/model.mjs reads it) and prints a
// Markdown table. Asserts nothing about the numbers; exits 1 if any request answered a status its
// step did not expect (or no stats header), after printing the first of them.
//
//   node tests/scale/run.mjs
//
// Env: SCALE_SHARDS ("1,4,16": one run per value, passed as the var STATE_SHARDS),
// SCALE_SECONDS (20 per run), SCALE_CONCURRENCY (16 virtual clients, one keep-alive connection
// each), SCALE_USERS (64), SCALE_CLIENTS (4), REVOCATION_FEEDS (passed on as the var when set),
// SCALE_OUT (build/scale.json).
//
// The mix: each virtual client repeats one cycle, every request of it checked:
//   login.form       GET /auth/interaction (the sign-in page's data: CSRF token + cookie)   200
//   login.submit     POST /auth/login, the browser's sign-in form (user+password, PKCE
//                    challenge): creates a session, redirects to the client with a code    303
//   token.code       POST /auth/token authorization_code + code_verifier (PKCE S256)         200
//   protected        GET /Patient/pt-{n} with the bearer token, one AccessPolicy, forwarded
//                    to a local origin                                                       200
//   token.refresh    POST /auth/token refresh_token (rotation)                               200
//   revoke.access    POST /auth/revoke of the last access token                              200
//   protected.revoked  that token again                                                      401
//   revoke.refresh   POST /auth/revoke of the refresh token (ends the family)                200
// Per cycle: 1 login.form, 1 login.submit, 1 token.code, SCALE_REFRESHES (2) token.refresh,
// SCALE_PROTECTED (4) protected after the code and after each refresh (12), 1 revoke.access,
// 1 protected.revoked, 1 revoke.refresh: 20 requests, 60 % protected.
//
// After the load, two probes that per-request counts miss (see tests/scale/model.mjs):
//   poll     idle for 1.5 s, then one protected request: the Durable Object calls it makes are
//            the isolate's revocation poll (REVOCATION_POLL_SECS = 1), whatever object(s) it goes to
//   reload   after an AccessPolicy write (which drops this isolate's cached resources), one
//            protected request reloads them; done with the seeded policy and again after
//            SCALE_PROBE_POLICIES (40) more, so the model can extrapolate KV operations per
//            invocation to thousands of policies.

import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { startWorker, startOrigin, basicAuth, ROOT } from "../e2e/harness.mjs";
import { parseStats, objectClass, record, summarize } from "./stats.mjs";
import { httpClient } from "../load/load.mjs";

export { parseStats, objectClass, record, summarize };

const STATS_HEADER = "x-edge-stats";
const FAILURES_KEPT = 20;
const CALLBACK = "https://scale-app.example/cb";

// --- HTTP ------------------------------------------------------------------------------------------


const form = (params) => new URLSearchParams(params).toString();
const FORM = "application/x-www-form-urlencoded";
const parseJson = (text) => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};
const pkce = () => {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
};
/** name=value pairs of a node response's Set-Cookie headers. */
const setCookies = (res) =>
  Object.fromEntries(
    (res.headers["set-cookie"] ?? []).map((c) => {
      const pair = c.split(";")[0];
      const i = pair.indexOf("=");
      return [pair.slice(0, i), pair.slice(i + 1)];
    }),
  );
const cookieHeader = (jar) =>
  Object.entries(jar)
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}=${v}`)
    .join("; ");

// --- one run ---------------------------------------------------------------------------------------

const envNum = (name, dflt) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number, got ${process.env[name]}`);
  return v;
};

/**
 * One measurement: a fresh Worker with STATE_SHARDS = `shards`, seeded, loaded for `seconds`.
 * Returns the summary (see summarize) plus the probes, failures and settings.
 */
export async function measure({
  shards,
  seconds = 20,
  concurrency = 16,
  users = 64,
  clients = 4,
  refreshes = 2,
  protectedPerToken = 4,
  probePolicies = 40,
  bundleWaitMs = 11_500,
  feeds = process.env.REVOCATION_FEEDS,
  log = () => {},
} = {}) {
  const vars = { SCALE_STATS: "1", STATE_SHARDS: String(shards), PBKDF2_ITERATIONS: "1000" };
  if (feeds) vars.REVOCATION_FEEDS = String(feeds);
  const origin = await startOrigin();
  const w = await startWorker({ originUrl: origin.url, noAssets: true, vars });
  const client = httpClient(w.url, concurrency);
  const agg = { types: {}, objects: {} };
  const failures = [];
  let unexpected = 0;
  const rootAuth = basicAuth("root", w.adminSecret);
  const clientId = (i) => `scale-web-${i}`;
  const clientAuth = (i) => basicAuth(clientId(i), `scale-secret-${i}`);
  const userId = (i) => `scale-u${i}`;

  /** Sends, records and checks one request; returns the response or null when unexpected. */
  const step = async (type, method, p, { headers = {}, body, expect, check, into = agg, ip = "10.0.0.1" } = {}) => {
    let res;
    try {
      res = await client.send(method, p, { headers: { "cf-connecting-ip": ip, ...headers }, body });
    } catch (e) {
      unexpected++;
      if (failures.length < FAILURES_KEPT) failures.push(`${type}: ${method} ${p}: network error: ${e.message}`);
      return null;
    }
    const stats = parseStats(res.headers[STATS_HEADER]);
    record(into, type, res.status, stats);
    let problem = null;
    if (res.status !== expect) problem = `expected ${expect}, got ${res.status}`;
    else if (!stats) problem = `no ${STATS_HEADER} header (is SCALE_STATS=1 reaching the Worker?)`;
    else problem = check?.(res) ?? null;
    if (problem) {
      unexpected++;
      if (failures.length < FAILURES_KEPT) failures.push(`${type}: ${method} ${p}: ${problem}: ${res.text.slice(0, 300)}`);
      return null;
    }
    return res;
  };
  const tokens = (withRefresh) => (res) => {
    const b = parseJson(res.text);
    if (typeof b?.access_token !== "string") return "no access_token";
    if (withRefresh && typeof b.refresh_token !== "string") return "no refresh_token";
    return null;
  };

  try {
    // --- seed (its requests are not part of the load's counts) ---------------------------------
    const seed = { types: {}, objects: {} };
    const put = async (p, doc) => {
      const r = await step("seed", "PUT", p, {
        headers: { authorization: rootAuth, "content-type": "application/json" },
        body: JSON.stringify(doc),
        expect: 201,
        into: seed,
      });
      if (!r) throw new Error(`seeding ${p} failed: ${failures.at(-1)}`);
    };
    for (let i = 0; i < clients; i++) {
      await put(`/Client/${clientId(i)}`, {
        secret: `scale-secret-${i}`,
        grant_types: ["authorization_code"],
        first_party: true,
        auth: { authorization_code: { redirect_uri: CALLBACK, refresh_token: true } },
      });
    }
    for (let i = 0; i < users; i++) await put(`/User/${userId(i)}`, { email: `${userId(i)}@scale.example`, password: `scale-pw-${i}` });
    // One policy: the web clients may read Patients.
    await put("/AccessPolicy/scale-read", {
      engine: "matcho",
      matcho: { "request-method": "get", uri: "#^/Patient(/|$)" },
      link: Array.from({ length: clients }, (_, i) => ({ id: clientId(i), resourceType: "Client" })),
    });

    // --- the load --------------------------------------------------------------------------------
    const started = performance.now();
    const deadline = started + seconds * 1000;
    let cycles = 0;
    const vus = Array.from({ length: concurrency }, async (_, vu) => {
      const ip = `10.1.${vu >> 8}.${vu & 255}`;
      let n = 0;
      while (performance.now() < deadline) {
        const u = (vu + n * concurrency) % users;
        const c = (vu + n) % clients;
        n++;
        if (!(await cycle(u, c, ip))) return; // a broken cycle stops this client; the run fails
        cycles++;
      }
    });

    const protectedCall = (at, ip, type = "protected", expect = 200) =>
      step(type, "GET", `/Patient/pt-${Math.floor(Math.random() * 100)}`, {
        headers: { authorization: `Bearer ${at}` },
        expect,
        ip,
        check: expect === 200 ? (res) => (parseJson(res.text)?.origin === true ? null : "answer did not come from the origin") : undefined,
      });

    async function cycle(u, c, ip) {
      const { verifier, challenge } = pkce();
      const query = form({
        response_type: "code",
        client_id: clientId(c),
        redirect_uri: CALLBACK,
        scope: "openid offline_access",
        state: randomBytes(6).toString("hex"),
        code_challenge: challenge,
        code_challenge_method: "S256",
      });
      const page = await step("login.form", "GET", `/auth/interaction?${query}`, {
        expect: 200,
        ip,
        check: (res) => (typeof parseJson(res.text)?.csrf === "string" ? null : "no csrf token"),
      });
      if (!page) return false;
      const jar = setCookies(page);
      let code;
      const login = await step("login.submit", "POST", "/auth/login", {
        headers: { "content-type": FORM, cookie: cookieHeader(jar) },
        body: form({ username: userId(u), password: `scale-pw-${u}`, csrf: parseJson(page.text).csrf, query }),
        expect: 303,
        ip,
        check: (res) => {
          const loc = res.headers.location ? new URL(res.headers.location, w.url) : null;
          code = loc?.searchParams.get("code");
          return loc && loc.origin + loc.pathname === CALLBACK && code ? null : `redirected to ${res.headers.location}`;
        },
      });
      if (!login) return false;
      const tokenPost = (type, params) =>
        step(type, "POST", "/auth/token", {
          headers: { authorization: clientAuth(c), "content-type": FORM },
          body: form(params),
          expect: 200,
          ip,
          check: tokens(true),
        });
      let t = await tokenPost("token.code", { grant_type: "authorization_code", code, redirect_uri: CALLBACK, code_verifier: verifier });
      if (!t) return false;
      let { access_token: at, refresh_token: rt } = parseJson(t.text);
      for (let r = 0; r <= refreshes; r++) {
        if (r > 0) {
          t = await tokenPost("token.refresh", { grant_type: "refresh_token", refresh_token: rt });
          if (!t) return false;
          ({ access_token: at, refresh_token: rt } = parseJson(t.text));
        }
        for (let k = 0; k < protectedPerToken; k++) if (!(await protectedCall(at, ip))) return false;
      }
      const revoke = (type, params) =>
        step(type, "POST", "/auth/revoke", { headers: { authorization: clientAuth(c), "content-type": FORM }, body: form(params), expect: 200, ip });
      if (!(await revoke("revoke.access", { token: at, token_type_hint: "access_token" }))) return false;
      if (!(await protectedCall(at, ip, "protected.revoked", 401))) return false;
      if (!(await revoke("revoke.refresh", { token: rt, token_type_hint: "refresh_token" }))) return false;
      return true;
    }

    let lastLog = started;
    const ticker = setInterval(() => {
      const now = performance.now();
      const n = Object.values(agg.types).reduce((s, x) => s + x.count, 0);
      log(`  shards ${shards}: ${n} requests, ${cycles} cycles, ${unexpected} unexpected, ${(n / ((now - started) / 1000)).toFixed(0)} req/s`);
      lastLog = now;
    }, 5000);
    try {
      await Promise.all(vus);
    } finally {
      clearInterval(ticker);
    }
    void lastLog;
    const elapsed = (performance.now() - started) / 1000;
    const summary = summarize(agg, elapsed);

    // --- probes ----------------------------------------------------------------------------------
    const probes = { types: {}, objects: {} };
    const probeToken = async () => {
      // A fresh token through the same sign-in (its requests go to the probe aggregate).
      const { verifier, challenge } = pkce();
      const query = form({ response_type: "code", client_id: clientId(0), redirect_uri: CALLBACK, scope: "openid", state: "probe", code_challenge: challenge, code_challenge_method: "S256" });
      const page = await step("probe.login.form", "GET", `/auth/interaction?${query}`, { expect: 200, into: probes });
      if (!page) return null;
      let code;
      const login = await step("probe.login.submit", "POST", "/auth/login", {
        headers: { "content-type": FORM, cookie: cookieHeader(setCookies(page)) },
        body: form({ username: userId(0), password: "scale-pw-0", csrf: parseJson(page.text).csrf, query }),
        expect: 303,
        into: probes,
        check: (res) => ((code = new URL(res.headers.location ?? "", w.url).searchParams.get("code")) ? null : "no code"),
      });
      if (!login) return null;
      const t = await step("probe.token", "POST", "/auth/token", {
        headers: { authorization: clientAuth(0), "content-type": FORM },
        body: form({ grant_type: "authorization_code", code, redirect_uri: CALLBACK, code_verifier: verifier }),
        expect: 200,
        into: probes,
        check: tokens(false),
      });
      return t ? parseJson(t.text).access_token : null;
    };
    const probeGet = async (type, at) => {
      const before = probes.types[type]?.count ?? 0;
      const r = await step(type, "GET", "/Patient/pt-1", { headers: { authorization: `Bearer ${at}` }, expect: 200, into: probes });
      return r && (probes.types[type]?.count ?? 0) > before ? parseStats(r.headers[STATS_HEADER]) : null;
    };
    const at = await probeToken();
    let poll = null;
    const reload = [];
    if (at) {
      await probeGet("probe.warm", at);
      await new Promise((r) => setTimeout(r, 1500));
      const s = await probeGet("probe.poll", at);
      if (s) poll = { objects: s.objects, classes: s.objects.map(objectClass), kv: s.kv };
      // Reload after a policy write, at two policy counts.
      const policyPut = (i) =>
        step("probe.policy.put", "PUT", `/AccessPolicy/scale-probe-${i}`, {
          headers: { authorization: rootAuth, "content-type": "application/json" },
          body: JSON.stringify({ engine: "matcho", matcho: { uri: `#^/scale-nothing/${i}$` }, link: [{ id: `nobody-${i}`, resourceType: "Client" }] }),
          expect: 201,
          into: probes,
        });
      let policies = 1; // scale-read
      const record = (r, via) => {
        const kvOps = Object.values(r.kv).reduce((s, x) => s + x, 0);
        reload.push({ policies, via, kv: r.kv, kv_ops: kvOps, ops: kvOps + r.objects.length, objects: r.objects });
      };
      for (const add of [1, probePolicies]) {
        // 50 writes at a time (the Catalog serialises them; each answers when stored).
        for (let i = 0; i < add; i += 50) {
          await Promise.all(Array.from({ length: Math.min(50, add - i) }, (_, j) => policyPut(policies + i + j)));
        }
        policies += add;
        // Right after this isolate's own write: the write's version is newer than the bundle.
        const r = await probeGet("probe.reload", at);
        if (r) record(r, "after a write");
      }
      // Once the cached set has aged (CACHE_TTL, default 10 s) and the bundle caught up (its
      // writes are at most one a second): the reload every isolate does, one KV get of the bundle.
      await new Promise((r) => setTimeout(r, bundleWaitMs));
      const b = await probeGet("probe.reload", at);
      if (b) record(b, "bundle");
    }
    const probeSummary = summarize(probes, 1).types;
    const seedSummary = summarize(seed, 1).types.seed;

    return {
      shards,
      feeds: feeds ? Number(feeds) : null,
      seconds: +elapsed.toFixed(2),
      concurrency,
      users,
      clients,
      cycle: { refreshes, protected_per_token: protectedPerToken },
      cycles,
      unexpected,
      failures,
      ...summary,
      probes: { poll, reload, requests: probeSummary },
      seed: seedSummary,
    };
  } finally {
    client.close();
    await w.dispose();
    await origin.dispose();
  }
}

// --- output ----------------------------------------------------------------------------------------

const fmt = (x, d = 2) => (Number.isInteger(x) ? String(x) : x.toFixed(d));

/** The Markdown tables of a whole report. */
export function markdown(report) {
  const out = [];
  out.push(`Run ${report.date}: ${report.runs[0]?.seconds.toFixed(0) ?? 0} s per shard count, ${report.concurrency} connections, ${report.host}.`);
  out.push("");
  out.push("| shards | type | count | req/s | DO calls/req | KV get/req | KV put/req | KV delete/req | KV list/req | DO calls/req by class |");
  out.push("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of report.runs) {
    for (const [name, t] of Object.entries(r.types)) {
      const classes = Object.entries(t.class_calls_per_req).map(([c, n]) => `${c} ${fmt(n)}`).join(", ");
      out.push(`| ${r.shards} | ${name} | ${t.count} | ${fmt(t.rps, 1)} | ${fmt(t.do_per_req)} | ${fmt(t.kv_get_per_req)} | ${fmt(t.kv_put_per_req)} | ${fmt(t.kv_delete_per_req)} | ${fmt(t.kv_list_per_req)} | ${classes} |`);
    }
    out.push(`| ${r.shards} | **all** | ${r.requests} | ${fmt(r.rps, 1)} | ${fmt(r.do_calls / Math.max(1, r.requests))} | | | | | |`);
  }
  out.push("");
  out.push("| shards | DO calls | objects called | busiest object | its share of all calls | calls per object class (objects) | poll probe | reload probe: KV ops (policies) |");
  out.push("|---|---|---|---|---|---|---|---|");
  for (const r of report.runs) {
    const classes = Object.entries(r.classes).map(([c, v]) => `${c} ${v.calls} (${v.objects})`).join(", ");
    const poll = r.probes.poll ? r.probes.poll.objects.join(",") || "none" : "n/a";
    const reload = r.probes.reload.map((x) => `${x.kv_ops} (${x.policies}${x.via === "bundle" ? ", bundle" : ""})`).join(", ");
    out.push(`| ${r.shards} | ${r.do_calls} | ${Object.keys(r.objects).length} | ${r.busiest ?? "-"} | ${(r.busiest_share * 100).toFixed(1)} % | ${classes} | ${poll} | ${reload} |`);
  }
  return out.join("\n");
}

async function main() {
  const shardList = (process.env.SCALE_SHARDS ?? "1,4,16").split(",").map((s) => Number(s.trim()));
  if (shardList.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`SCALE_SHARDS must be positive integers, got ${process.env.SCALE_SHARDS}`);
  const opts = {
    seconds: envNum("SCALE_SECONDS", 20),
    concurrency: envNum("SCALE_CONCURRENCY", 16),
    users: envNum("SCALE_USERS", 64),
    clients: envNum("SCALE_CLIENTS", 4),
    refreshes: Number(process.env.SCALE_REFRESHES ?? 2),
    protectedPerToken: envNum("SCALE_PROTECTED", 4),
    probePolicies: envNum("SCALE_PROBE_POLICIES", 5000),
    log: (l) => console.error(l),
  };
  const out = process.env.SCALE_OUT ?? path.join(ROOT, "build/scale.json");
  const runs = [];
  for (const shards of shardList) {
    console.error(`[scale] STATE_SHARDS=${shards}${process.env.REVOCATION_FEEDS ? ` REVOCATION_FEEDS=${process.env.REVOCATION_FEEDS}` : ""}: ${opts.seconds} s at ${opts.concurrency} connections`);
    const r = await measure({ shards, ...opts });
    runs.push(r);
    console.error(`[scale]   ${r.requests} requests (${r.rps} req/s), ${r.do_calls} DO calls, busiest ${r.busiest} ${(r.busiest_share * 100).toFixed(1)} %, ${r.unexpected} unexpected`);
    if (r.unexpected) break;
  }
  const { execFileSync } = await import("node:child_process");
  let host = `${(await import("node:os")).cpus().length} cores`;
  try {
    host += `, node ${process.version}, workerd ${execFileSync(path.join(ROOT, "node_modules/.bin/workerd"), ["--version"], { encoding: "utf8" }).trim().replace(/^workerd\s*/, "")}`;
  } catch {
    host += `, node ${process.version}`;
  }
  const report = { date: new Date().toISOString().replace(/\.\d+Z$/, "Z"), host, concurrency: opts.concurrency, env: { REVOCATION_FEEDS: process.env.REVOCATION_FEEDS ?? null }, runs };
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(report, null, 2) + "\n");
  console.log(markdown(report));
  console.error(`[scale] wrote ${path.relative(process.cwd(), out)}`);
  const bad = runs.filter((r) => r.unexpected);
  if (bad.length) {
    console.error(`\n[scale] FAIL: unexpected answers (the mix must answer exactly as expected; numbers from a failing run are not worth reading):`);
    for (const r of bad) for (const f of r.failures) console.error(`  shards ${r.shards}: ${f}`);
    process.exit(1);
  }
  const noProbe = runs.filter((r) => !r.probes.poll || r.probes.reload.length < 2);
  if (noProbe.length) {
    console.error(`[scale] FAIL: the poll/reload probes did not complete`);
    process.exit(1);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`[scale] FAIL: ${e.stack ?? e}`);
    process.exit(1);
  });
}
