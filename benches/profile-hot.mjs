// CPU cost of the protected path (and its 401 and 403 answers), ours vs the jose peer Worker:
//
//   node benches/profile-hot.mjs            (after scripts/build-worker.sh)
//
// Each Worker runs in its own workerd (Miniflare, no assets router, like the bench's compared
// row) with a DevTools inspector port. For each case, PROFILE_REQUESTS requests (default 2000)
// at PROFILE_CONCURRENCY (10) run after a warm-up, with the V8 sampling profiler on (100 µs).
// Printed per case: µs of CPU per request from the profile (sampled time minus idle), split
// into our wasm, the wasm-bindgen glue (build/index.js), other JS, and the runtime (native
// functions, GC, "(program)"); and the workerd process's own CPU (utime + stime from /proc, so
// also the HTTP layer outside the isolate) per request.
//
// Cases: protected (bearer verified, one AccessPolicy allows, forwarded to a local origin),
// 401 (a tampered token), 401-none (no token: the anonymous policy check), 403 (a valid token
// of a client no policy allows). Env: PROFILE_CASES (comma-separated), PROFILE_ONLY (ours|jose),
// PROFILE_TOP (print the N functions with most self time, default 0), PROFILE_JSON=path.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { Miniflare, Log, LogLevel } from "miniflare";
import WebSocket from "ws";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { basicAuth, form, FORM } from "../tests/e2e/harness.mjs";
import { generateSigningJwk, randomSecret } from "../scripts/keys.mjs";
import { WORKER_BUNDLE, startOrigin, workerdPids } from "./lib.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const N = Number(process.env.PROFILE_REQUESTS ?? 2000);
const CONC = Number(process.env.PROFILE_CONCURRENCY ?? 10);
const TOP = Number(process.env.PROFILE_TOP ?? 0);
const CASES = (process.env.PROFILE_CASES ?? "protected,401,401-none,403").split(",");
const ONLY = process.env.PROFILE_ONLY;
const log = (...a) => console.error("[profile]", ...a);
const COMPAT_DATE = /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync(path.join(ROOT, "wrangler.toml"), "utf8"))[1];
const PATH = "/Patient/pt-1";

// The origin runs in this process (its CPU is not the Worker's); workerd's processes: lib.mjs.
const TICK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK; // utime + stime
}

// --- DevTools -------------------------------------------------------------------------------------
async function inspector(port) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const target = list.find((t) => !/__|proxy|entry|router|assets/i.test(t.title ?? t.id)) ?? list[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
  let id = 0;
  const pending = new Map();
  ws.on("message", (m) => {
    const msg = JSON.parse(m.toString());
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const i = ++id;
      pending.set(i, (msg) => (msg.error ? reject(new Error(`${method}: ${msg.error.message}`)) : resolve(msg.result)));
      ws.send(JSON.stringify({ id: i, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  return { send, title: target.title, close: () => ws.close() };
}

// --- load -------------------------------------------------------------------------------------------
const agent = new http.Agent({ keepAlive: true, maxSockets: CONC });
function request(url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
  });
}
async function drive(url, headers, n, expect) {
  let next = 0;
  const bad = [];
  const worker = async () => {
    while (next < n) {
      next++;
      const s = await request(url, headers);
      if (s !== expect) bad.push(s);
    }
  };
  await Promise.all(Array.from({ length: CONC }, worker));
  if (bad.length) throw new Error(`${url}: ${bad.length} answers not ${expect} (${bad.slice(0, 5)})`);
}

// --- profile analysis ---------------------------------------------------------------------------
function analyse(profile, glueUrl) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const t = { idle: 0, wasm: 0, glue: 0, js: 0, native: 0, gc: 0, program: 0 };
  const self = new Map();
  const incl = new Map();
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0;
    const node = byId.get(samples[i]);
    const { functionName: fn, url } = node.callFrame;
    let cat;
    if (fn === "(idle)") cat = "idle";
    else if (fn === "(garbage collector)") cat = "gc";
    else if (fn === "(program)" || fn === "(root)") cat = "program";
    else if (url.startsWith("wasm://") || /^\$?(func\d+|.*wasm)/.test(fn) && !url) cat = "wasm";
    else if (glueUrl(url)) cat = "glue";
    else if (url) cat = "js";
    else cat = "native";
    t[cat] += dt;
    const key = `${cat} ${fn || "(anonymous)"} ${url ? path.basename(url) : ""}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    if (cat !== "idle") {
      const seen = new Set();
      for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
        const cf = byId.get(id).callFrame;
        const k = `${cf.functionName || "(anonymous)"} ${cf.url ? path.basename(cf.url) : ""}`;
        if (seen.has(k)) continue;
        seen.add(k);
        incl.set(k, (incl.get(k) ?? 0) + dt);
      }
    }
  }
  return { t, self, incl };
}

async function profileCase(insp, pid, name, url, headers, expect) {
  await drive(url, headers, Math.min(N, 500), expect); // warm-up
  const cpu0 = cpuMs(pid);
  // PROFILE_OFF=1: the workerd process's CPU alone, without the profiler's own cost.
  const off = process.env.PROFILE_OFF === "1";
  if (!off) await insp.send("Profiler.start");
  const t0 = performance.now();
  await drive(url, headers, N, expect);
  const wall = performance.now() - t0;
  const cpu = cpuMs(pid) - cpu0;
  const { profile } = off ? { profile: { nodes: [], samples: [], timeDeltas: [] } } : await insp.send("Profiler.stop");
  const { t, self, incl } = analyse(profile, (u) => /index\.js$/.test(u));
  const busy = t.wasm + t.glue + t.js + t.native + t.gc + t.program;
  const per = (x) => x / N;
  const row = {
    name,
    us: per(busy),
    wasm: per(t.wasm),
    glue: per(t.glue),
    js: per(t.js),
    native: per(t.native),
    gc: per(t.gc),
    program: per(t.program),
    processUs: (cpu * 1000) / N,
    rps: (N / wall) * 1000,
  };
  const f = (x) => x.toFixed(1).padStart(6);
  log(
    `${name.padEnd(22)} isolate ${f(row.us)} µs/req = wasm ${f(row.wasm)} glue ${f(row.glue)} js ${f(row.js)} native ${f(row.native)} gc ${f(row.gc)} program ${f(row.program)} | workerd process ${f(row.processUs)} µs/req | ${row.rps.toFixed(0)} req/s (profiling on)`,
  );
  if (TOP) {
    const top = [...self.entries()].filter(([k]) => !k.startsWith("idle")).sort((a, b) => b[1] - a[1]).slice(0, TOP);
    for (const [k, v] of top) console.error(`    ${(v / N).toFixed(2).padStart(7)} µs  ${k}`);
  }
  const INCL = Number(process.env.PROFILE_INCL ?? 0);
  if (INCL) {
    console.error("  inclusive:");
    const top = [...incl.entries()].sort((a, b) => b[1] - a[1]).slice(0, INCL);
    for (const [k, v] of top) console.error(`    ${(v / N).toFixed(2).padStart(7)} µs  ${k.slice(0, 160)}`);
  }
  return row;
}

// --- systems ----------------------------------------------------------------------------------------
/** A build of our Worker (`dir`: its index.js and index_bg.wasm) as tests/e2e/harness.mjs
 * starts it without the assets layer, with an inspector port. */
async function startBuild(dir, originUrl, port) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, "wrangler.toml"));
  const { assets, ...withoutAssets } = workerOptions;
  const adminSecret = randomSecret(18);
  const mf = new Miniflare({
    ...withoutAssets,
    modules: true,
    scriptPath: path.join(dir, "index.js"),
    modulesRoot: dir,
    name: "edge-authorizer",
    bindings: {
      ...workerOptions.bindings,
      ADMIN_SECRET: adminSecret,
      SIGNING_KEY: JSON.stringify(await generateSigningJwk()),
      ORIGIN_URL: originUrl,
    },
    host: "127.0.0.1",
    port: 0,
    cf: false,
    inspectorPort: port,
    log: new Log(LogLevel.WARN),
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const fetchIt = (p, init = {}) => fetch(new URL(p, url + "/"), { redirect: "manual", ...init });
  const admin = (method, p, body) =>
    fetchIt(p, {
      method,
      headers: { authorization: basicAuth("root", adminSecret), "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  return { url, fetch: fetchIt, admin, dispose: () => mf.dispose() };
}

async function setupOurs(originUrl, port, dir = path.join(ROOT, "build")) {
  const before = new Set(workerdPids());
  const w = await startBuild(dir, originUrl, port);
  const pid = workerdPids().find((p) => !before.has(p));
  const ok = async (res, what) => {
    if (!res.ok) throw new Error(`${what}: ${res.status} ${await res.text()}`);
    return res;
  };
  const token = async (id, secret) => {
    const res = await w.fetch("/auth/token", {
      method: "POST",
      headers: { ...FORM, authorization: basicAuth(id, secret) },
      body: form({ grant_type: "client_credentials" }),
    });
    return (await (await ok(res, "token")).json()).access_token;
  };
  for (const id of ["bench", "other"]) {
    await ok(await w.admin("PUT", `/Client/${id}`, { secret: `${id}-secret-0123456789`, grant_types: ["client_credentials"] }), "PUT Client");
  }
  await ok(await w.admin("PUT", "/AccessPolicy/bench", { engine: "allow", link: [{ id: "bench", resourceType: "Client" }] }), "PUT AccessPolicy");
  const allowed = await token("bench", "bench-secret-0123456789");
  const denied = await token("other", "other-secret-0123456789");
  const discovery = await (await w.fetch("/.well-known/openid-configuration")).json();
  const jwks = await (await w.fetch(new URL(discovery.jwks_uri).pathname)).json();
  const claims = JSON.parse(Buffer.from(allowed.split(".")[1], "base64url").toString());
  return { url: w.url, pid, allowed, denied, jwks, claims, dispose: () => w.dispose() };
}

async function setupJose(originUrl, ours, port) {
  const outfile = path.join(ROOT, "build", "bench", "jose-worker-profile.js");
  await esbuild.build({ ...WORKER_BUNDLE, entryPoints: [path.join(HERE, "peers", "jose-worker.mjs")], outfile });
  const before = new Set(workerdPids());
  const mf = new Miniflare({
    modules: true,
    scriptPath: outfile,
    compatibilityDate: COMPAT_DATE,
    bindings: {
      JWKS: JSON.stringify(ours.jwks),
      ISSUER: ours.claims.iss,
      AUDIENCE: Array.isArray(ours.claims.aud) ? ours.claims.aud[0] : ours.claims.aud,
      ALLOWED_CLIENT: "bench",
      ORIGIN_URL: originUrl,
    },
    host: "127.0.0.1",
    port: 0,
    cf: false,
    inspectorPort: port,
    log: new Log(LogLevel.WARN),
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const pid = workerdPids().find((p) => !before.has(p));
  return { url, pid, dispose: () => mf.dispose() };
}

const ROUNDS = Number(process.env.PROFILE_ROUNDS ?? 1);
const origin = await startOrigin();
const results = {};
const ours = await setupOurs(origin.url, 9331);
const systems = [];
try {
  if (ONLY !== "jose") systems.push(["ours", ours, 9331]);
  // PROFILE_BASE=dir: another build of ours (e.g. a copy of the build before a change),
  // profiled interleaved with this one.
  if (process.env.PROFILE_BASE && ONLY !== "jose") systems.push(["base", await setupOurs(origin.url, 9333, path.resolve(process.env.PROFILE_BASE)), 9333]);
  if (ONLY !== "ours") systems.push(["jose", await setupJose(origin.url, ours, 9332), 9332]);
  const insp = {};
  for (const [sys, s, port] of systems) {
    insp[sys] = await inspector(port);
    log(`${sys}: inspector target "${insp[sys].title}", workerd pid ${s.pid}`);
    results[sys] = {};
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of CASES) {
      for (const [sys, s] of systems) {
        // Tokens are ours (the jose Worker verifies them too); "base" has its own.
        const src = sys === "base" ? s : ours;
        const tampered = src.allowed.slice(0, -4) + "AAAA";
        const caseDefs = {
          protected: [{ authorization: `Bearer ${src.allowed}` }, 200],
          401: [{ authorization: `Bearer ${tampered}` }, 401],
          "401-none": [{}, 401],
          403: [{ authorization: `Bearer ${src.denied}` }, 403],
        };
        const [headers, expect] = caseDefs[c];
        (results[sys][c] ??= []).push(await profileCase(insp[sys], s.pid, `${sys} ${c}`, s.url + PATH, headers, expect));
      }
    }
  }
  for (const i of Object.values(insp)) i.close();
} finally {
  agent.destroy();
  for (const [, s] of systems) await s.dispose();
  if (!systems.some(([, s]) => s === ours)) await ours.dispose();
  origin.close();
}
if (ROUNDS > 1) {
  const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.error(`medians over ${ROUNDS} rounds (µs CPU per request: isolate profile / workerd process, and req/s at ${CONC} connections):`);
  for (const c of CASES) {
    const cells = Object.keys(results).map(
      (sys) =>
        `${sys} ${med(results[sys][c].map((r) => r.us)).toFixed(0)} / ${med(results[sys][c].map((r) => r.processUs)).toFixed(0)} (${med(results[sys][c].map((r) => r.rps)).toFixed(0)} req/s)`,
    );
    console.error(`  ${c.padEnd(10)} ${cells.join("   ")}`);
  }
}
if (process.env.PROFILE_JSON) writeFileSync(process.env.PROFILE_JSON, JSON.stringify(results, null, 2));
