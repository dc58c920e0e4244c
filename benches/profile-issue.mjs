// CPU profile of token issuance (`POST /auth/token`, client_credentials, Basic, EdDSA at+jwt)
// in the built Worker, against a hand-written JS issuer with `jose` in the same workerd.
//
//   npm ci --prefix benches --ignore-scripts --no-audit --no-fund   # once
//   node benches/profile-issue.mjs                                   # profile + A/B req/s
//
// Env: PROFILE_REQUESTS (2000) tokens per profile, PROFILE_WARMUP (1500) before it,
// PROFILE_CONNECTIONS (8), PROFILE_AB_ROUNDS (3) alternated rounds of PROFILE_AB_SECONDS (5),
// PROFILE_FLOOR=1 the process CPU of a refused `GET /auth/token` too (entering and answering),
// PROFILE_BASELINE=dir another build of ours (a copy of an older build/) in the alternation,
// PROFILE_THREADS=1 per-thread CPU,
// PROFILE_ONLY=ours|jose, PROFILE_TOP (25) functions listed per system, PROFILE_SAVE=dir to write
// the .cpuprofile files (open them in Chrome DevTools).
//
// The split: the isolate's sampled time minus idle, per token; "wasm" is our Rust (wasm://
// frames), "glue" the wasm-bindgen JS (build/index.js) and the Worker shim, "runtime" the
// rest of the isolate (natives such as crypto.subtle.sign, Request/Response/Headers, GC, the
// event loop's "(program)"). KV and Durable Objects run in other isolates of workerd and are
// not in this profile: the A/B req/s is the end-to-end measure.
import { createRequire } from "node:module";
import { writeFileSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { webcrypto } from "node:crypto";
import { WORKER_BUNDLE, workerdPids } from "./lib.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const requireBench = createRequire(path.join(HERE, "package.json"));
const requireRoot = createRequire(path.join(ROOT, "package.json"));
const esbuild = requireBench("esbuild");
const autocannon = requireBench("autocannon");
const WebSocket = requireRoot("ws");
const { Miniflare, Log, LogLevel } = await import(requireRoot.resolve("miniflare"));

const N = Number(process.env.PROFILE_REQUESTS ?? 2000);
const WARMUP = Number(process.env.PROFILE_WARMUP ?? 1500);
const CONNECTIONS = Number(process.env.PROFILE_CONNECTIONS ?? 8);
const AB_ROUNDS = Number(process.env.PROFILE_AB_ROUNDS ?? 3);
const AB_SECONDS = Number(process.env.PROFILE_AB_SECONDS ?? 5);
const TOP = Number(process.env.PROFILE_TOP ?? 25);
const ONLY = process.env.PROFILE_ONLY ?? "";
const OURS_PORT = 9331;
const JOSE_PORT = 9332;

const CLIENT_ID = "bench";
const CLIENT_SECRET = Buffer.from(webcrypto.getRandomValues(new Uint8Array(18))).toString("base64url");
const basic = (id, secret) => "Basic " + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64");
const FORM = { "content-type": "application/x-www-form-urlencoded" };
const ISSUE_HEADERS = { ...FORM, authorization: basic(CLIENT_ID, CLIENT_SECRET) };
const ISSUE_BODY = "grant_type=client_credentials";

// --- the jose issuer peer --------------------------------------------------------------------
// What our Worker does for this request, by hand: the form and Basic header parsed, the client
// read from KV once per isolate, its secret checked once (PBKDF2-SHA256 through WebCrypto, then
// remembered per isolate), an EdDSA at+jwt with the same header and claims signed by jose, and
// the same JSON answer with cache-control: no-store.
const JOSE_ISSUER = `
import { SignJWT, importJWK } from "jose";
let key, settings;
const clients = new Map();
const verified = new Set();
const enc = new TextEncoder();
const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
const fail = (status, error) => new Response(JSON.stringify({ error }), { status, headers: { "content-type": "application/json", "cache-control": "no-store" } });
async function pbkdf2(secret, salt, iterations) {
  const k = await crypto.subtle.importKey("raw", enc.encode(secret), "PBKDF2", false, ["deriveBits"]);
  return hex(await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: enc.encode(salt), iterations }, k, 256));
}
export default {
  async fetch(request, env) {
    if (request.method !== "POST" || new URL(request.url).pathname !== "/auth/token") return fail(404, "not_found");
    if (!key) {
      const jwk = JSON.parse(env.SIGNING_KEY);
      key = await importJWK(jwk, "EdDSA");
      settings = { kid: jwk.kid, iss: env.ISSUER, aud: env.AUDIENCE, lifetime: Number(env.LIFETIME) };
    }
    const form = new URLSearchParams(await request.text());
    if (form.get("grant_type") !== "client_credentials") return fail(400, "unsupported_grant_type");
    const auth = request.headers.get("authorization") ?? "";
    if (!auth.startsWith("Basic ")) return fail(401, "invalid_client");
    let id, secret;
    try {
      const raw = atob(auth.slice(6));
      const i = raw.indexOf(":");
      if (i < 0) return fail(401, "invalid_client");
      id = decodeURIComponent(raw.slice(0, i));
      secret = decodeURIComponent(raw.slice(i + 1));
    } catch {
      return fail(401, "invalid_client");
    }
    let client = clients.get(id);
    if (!client) {
      client = await env.CLIENTS.get(id, "json");
      if (!client) return fail(401, "invalid_client");
      clients.set(id, client);
    }
    const tag = id + "\\n" + secret;
    if (!verified.has(tag)) {
      if ((await pbkdf2(secret, client.salt, client.iterations)) !== client.hash) return fail(401, "invalid_client");
      verified.add(tag);
    }
    const now = Math.floor(Date.now() / 1000);
    const jti = crypto.randomUUID().replaceAll("-", "");
    const token = await new SignJWT({ iss: settings.iss, sub: id, aud: settings.aud, client_id: id, jti, sub_kind: "client", ...(client.gen ? { gen: client.gen } : {}) })
      .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: settings.kid })
      .setIssuedAt(now)
      .setExpirationTime(now + settings.lifetime)
      .sign(key);
    return new Response(JSON.stringify({ access_token: token, token_type: "Bearer", expires_in: settings.lifetime }), {
      headers: { "content-type": "application/json", "cache-control": "no-store" },
    });
  },
};
`;

async function bundleJose() {
  const out = await esbuild.build({
    stdin: { contents: JOSE_ISSUER, resolveDir: HERE, loader: "js", sourcefile: "jose-issuer.mjs" },
    ...WORKER_BUNDLE,
    write: false,
  });
  return out.outputFiles[0].text;
}

// --- the inspector -------------------------------------------------------------------------
async function inspector(port, name) {
  let list;
  for (let i = 0; i < 50; i++) {
    try {
      list = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
      if (list.length) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  const target = list.find((t) => t.title?.includes(name) || t.id?.includes(name)) ?? list[0];
  const url = target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${target.id}`;
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let next = 1;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString());
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => ws.close(), targets: list };
}

/** CPU seconds (user + system, all threads) of a process so far. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds of each thread of a process, by thread name and id. */
function threadSeconds(pid) {
  const out = {};
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out[`${name}/${t}`] = (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {}
  }
  return out;
}

/** Process CPU per token (µs): the whole workerd, so KV, Durable Objects, HTTP included. */
async function processCpu(label, url, pid, amount, floor = false) {
  const threads = process.env.PROFILE_THREADS ? threadSeconds(pid) : null;
  const before = cpuSeconds(pid);
  const t0 = performance.now();
  const res = await load(url, { amount, floor });
  const wall = (performance.now() - t0) / 1e3;
  if (res.non2xx && !floor) throw new Error(`${label}: ${res.non2xx} non-2xx`);
  const us = ((cpuSeconds(pid) - before) * 1e6) / amount;
  if (threads) {
    const after = threadSeconds(pid);
    const busy = Object.entries(after).map(([k, v]) => [k, ((v - (threads[k] ?? 0)) * 1e6) / amount]).filter(([, v]) => v > 0);
    console.log(`   ${label} threads (µs per token): ${busy.map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ")}`);
  }
  return { us, rps: amount / wall };
}

function load(url, { amount, duration, floor = false }) {
  const req = floor ? { method: "GET" } : { method: "POST", headers: ISSUE_HEADERS, body: ISSUE_BODY };
  return new Promise((resolve, reject) => {
    autocannon(
      { url, ...req, connections: CONNECTIONS, ...(amount ? { amount } : { duration }) },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
}

function classify(frame) {
  const { functionName: f, url } = frame;
  if (f === "(idle)") return "idle";
  if (f === "(garbage collector)") return "gc";
  if (f === "(program)" || f === "(root)") return "program";
  if (url.startsWith("wasm://") || /^\$?func\d+|^wasm-function/.test(f)) return "wasm";
  if (/index\.js$|shim\.mjs$/.test(url)) return "glue";
  if (url && !url.startsWith("node:") && !url.startsWith("cloudflare:") && !url.startsWith("internal:")) return "js";
  return "runtime";
}

function analyze(profile, requests, label) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0;
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  const cat = {};
  const fns = new Map();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    const c = classify(n.callFrame);
    cat[c] = (cat[c] ?? 0) + us;
    total += us;
    const key = `${c}  ${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url ? path.basename(n.callFrame.url) : ""}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const busy = total - (cat.idle ?? 0);
  const per = (us) => (us / requests).toFixed(1);
  console.log(`\n== ${label}: ${requests} tokens, ${(total / 1e3).toFixed(0)} ms sampled, ${(busy / 1e3).toFixed(0)} ms busy`);
  console.log(`   CPU per token: ${per(busy)} µs`);
  for (const c of ["wasm", "glue", "js", "runtime", "program", "gc"]) {
    if (cat[c]) console.log(`   ${c.padEnd(8)} ${per(cat[c]).padStart(7)} µs  ${((100 * cat[c]) / busy).toFixed(1)} %`);
  }
  const top = [...fns].filter(([k]) => !k.startsWith("idle")).sort((a, b) => b[1] - a[1]).slice(0, TOP);
  for (const [k, us] of top) console.log(`   ${per(us).padStart(7)} µs  ${k}`);
  return { busyPerToken: busy / requests, split: Object.fromEntries(Object.entries(cat).map(([k, v]) => [k, v / requests])) };
}

async function profileOne(label, url, port, target) {
  await load(url, { amount: WARMUP });
  const ins = await inspector(port, target);
  await ins.send("Profiler.enable");
  await ins.send("Profiler.setSamplingInterval", { interval: 50 });
  await ins.send("Profiler.start");
  const res = await load(url, { amount: N });
  const { profile } = await ins.send("Profiler.stop");
  ins.close();
  if (res.non2xx) throw new Error(`${label}: ${res.non2xx} non-2xx answers`);
  if (process.env.PROFILE_SAVE) {
    mkdirSync(process.env.PROFILE_SAVE, { recursive: true });
    writeFileSync(path.join(process.env.PROFILE_SAVE, `${label}.cpuprofile`), JSON.stringify(profile));
  }
  return analyze(profile, N, label);
}

/** Another build of our Worker (PROFILE_BASELINE=dir holding index.js, index_bg.wasm,
 * worker/): the harness's setup, but that directory's modules. */
async function startBuild(dir, signingKey) {
  const { unstable_getMiniflareWorkerOptions } = await import(requireRoot.resolve("wrangler"));
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, "wrangler.toml"));
  const { assets, ...rest } = workerOptions;
  const adminSecret = Buffer.from(webcrypto.getRandomValues(new Uint8Array(18))).toString("base64url");
  const mf = new Miniflare({
    ...rest,
    modules: true,
    scriptPath: path.join(dir, "index.js"),
    modulesRoot: dir,
    name: "edge-authorizer",
    bindings: { ...rest.bindings, ADMIN_SECRET: adminSecret, SIGNING_KEY: JSON.stringify(signingKey) },
    host: "127.0.0.1",
    port: 0,
    cf: false,
    log: new Log(LogLevel.WARN),
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const admin = (method, p, body) =>
    fetch(url + p, { method, headers: { authorization: basic("root", adminSecret), "content-type": "application/json" }, body: JSON.stringify(body) });
  return { url, admin, dispose: () => mf.dispose() };
}

// --- main ------------------------------------------------------------------------------------
process.env.E2E_INSPECTOR_PORT = String(OURS_PORT);
const { startWorker } = await import(path.join(ROOT, "tests/e2e/harness.mjs"));
const ours = await startWorker({ noAssets: true });
const oursPid = workerdPids()[0];
const put = await ours.admin("PUT", `/Client/${CLIENT_ID}`, { secret: CLIENT_SECRET, grant_types: ["client_credentials"] });
if (!put.ok) throw new Error(`PUT Client: ${put.status} ${await put.text()}`);
const first = await ours.fetch("/auth/token", { method: "POST", headers: ISSUE_HEADERS, body: ISSUE_BODY });
if (!first.ok) throw new Error(`our token: ${first.status} ${await first.text()}`);
const firstBody = await first.json();
const [h, c] = firstBody.access_token.split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url")));
console.log("our header", JSON.stringify(h));
console.log("our claims", JSON.stringify(c));
console.log("our answer keys", Object.keys(firstBody).join(","), "cache-control:", first.headers.get("cache-control"));

const salt = "bench-salt";
const iterations = 100000;
const hashKey = await webcrypto.subtle.importKey("raw", new TextEncoder().encode(CLIENT_SECRET), "PBKDF2", false, ["deriveBits"]);
const hash = Buffer.from(await webcrypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: new TextEncoder().encode(salt), iterations }, hashKey, 256)).toString("hex");
const jose = new Miniflare({
  modules: true,
  script: await bundleJose(),
  compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec((await import("node:fs")).readFileSync(path.join(ROOT, "wrangler.toml"), "utf8"))[1],
  bindings: { SIGNING_KEY: JSON.stringify(ours.signingKey), ISSUER: c.iss, AUDIENCE: c.aud, LIFETIME: String(c.exp - c.iat) },
  kvNamespaces: ["CLIENTS"],
  host: "127.0.0.1",
  port: 0,
  cf: false,
  inspectorPort: JOSE_PORT,
  log: new Log(LogLevel.WARN),
});
const joseUrl = (await jose.ready).toString().replace(/\/$/, "");
const josePid = workerdPids().find((p) => p !== oursPid);
const kv = await jose.getKVNamespace("CLIENTS");
await kv.put(CLIENT_ID, JSON.stringify({ salt, iterations, hash, ...(c.gen ? { gen: c.gen } : {}) }));
const jr = await fetch(joseUrl + "/auth/token", { method: "POST", headers: ISSUE_HEADERS, body: ISSUE_BODY });
if (!jr.ok) throw new Error(`jose token: ${jr.status} ${await jr.text()}`);
const jb = await jr.json();
const [jh, jc] = jb.access_token.split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url")));
console.log("jose header", JSON.stringify(jh));
console.log("jose claims", JSON.stringify(jc));

let base, basePid;
if (process.env.PROFILE_BASELINE) {
  base = await startBuild(path.resolve(process.env.PROFILE_BASELINE), ours.signingKey);
  basePid = workerdPids().find((p) => p !== oursPid && p !== josePid);
  const r = await base.admin("PUT", `/Client/${CLIENT_ID}`, { secret: CLIENT_SECRET, grant_types: ["client_credentials"] });
  if (!r.ok) throw new Error(`baseline PUT Client: ${r.status} ${await r.text()}`);
  await load(base.url + "/auth/token", { amount: WARMUP });
}

const results = {};
try {
  if (ONLY !== "jose") results.ours = await profileOne("ours", ours.url + "/auth/token", OURS_PORT, "edge-authorizer");
  if (ONLY !== "ours") results.jose = await profileOne("jose", joseUrl + "/auth/token", JOSE_PORT, "");
  if (results.ours && results.jose) {
    console.log(`\nCPU per token: ours ${results.ours.busyPerToken.toFixed(1)} µs, jose ${results.jose.busyPerToken.toFixed(1)} µs (ours ÷ jose ${(results.ours.busyPerToken / results.jose.busyPerToken).toFixed(2)})`);
  }
  if (process.env.PROFILE_FLOOR) {
    // The floor: `GET /auth/token`, refused before any work (ours 405, the peer 404), i.e. what
    // a request costs each Worker to enter and answer.
    const fl = { ours: [], jose: [] };
    for (let r = 0; r < AB_ROUNDS; r++) {
      fl.ours.push((await processCpu("ours", ours.url + "/auth/token", oursPid, N, true)).us);
      fl.jose.push((await processCpu("jose", joseUrl + "/auth/token", josePid, N, true)).us);
    }
    const medOf = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    console.log(`floor (GET /auth/token refused) process CPU per request: ours ${fl.ours.map((x) => x.toFixed(0)).join(" ")} (median ${medOf(fl.ours).toFixed(0)} µs), jose ${fl.jose.map((x) => x.toFixed(0)).join(" ")} (median ${medOf(fl.jose).toFixed(0)} µs)`);
  }
  if (AB_ROUNDS > 0 && !ONLY) {
    // Process CPU (no profiler attached), alternated: the number least disturbed by other load.
    const cpu = { ours: [], jose: [], baseline: [] };
    for (let r = 0; r < AB_ROUNDS; r++) {
      cpu.ours.push(await processCpu("ours", ours.url + "/auth/token", oursPid, N));
      cpu.jose.push(await processCpu("jose", joseUrl + "/auth/token", josePid, N));
      if (base) cpu.baseline.push(await processCpu("baseline", base.url + "/auth/token", basePid, N));
    }
    const medOf = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const o = medOf(cpu.ours.map((x) => x.us)), j = medOf(cpu.jose.map((x) => x.us));
    console.log(`\nworkerd process CPU per token (${AB_ROUNDS} alternated rounds of ${N}): ours ${cpu.ours.map((x) => x.us.toFixed(0)).join(" ")} (median ${o.toFixed(0)} µs), jose ${cpu.jose.map((x) => x.us.toFixed(0)).join(" ")} (median ${j.toFixed(0)} µs), ours ÷ jose ${(o / j).toFixed(2)}`);
    if (base) {
      const b = medOf(cpu.baseline.map((x) => x.us));
      console.log(`baseline (${process.env.PROFILE_BASELINE}): ${cpu.baseline.map((x) => x.us.toFixed(0)).join(" ")} (median ${b.toFixed(0)} µs), ours ÷ baseline ${(o / b).toFixed(2)}, baseline ÷ jose ${(b / j).toFixed(2)}`);
    }
    const rps = { ours: [], jose: [] };
    for (let r = 0; r < AB_ROUNDS; r++) {
      for (const [k, url] of [["ours", ours.url], ["jose", joseUrl]]) {
        const res = await load(url + "/auth/token", { duration: AB_SECONDS });
        if (res.non2xx) throw new Error(`${k}: ${res.non2xx} non-2xx`);
        rps[k].push(res.requests.average);
      }
    }
    const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    console.log(`req/s (${AB_ROUNDS} alternated rounds of ${AB_SECONDS} s, ${CONNECTIONS} connections): ours ${rps.ours.map(Math.round).join(" ")} (median ${Math.round(med(rps.ours))}), jose ${rps.jose.map(Math.round).join(" ")} (median ${Math.round(med(rps.jose))}), ours ÷ jose ${(med(rps.ours) / med(rps.jose)).toFixed(2)}`);
  }
} finally {
  await ours.dispose();
  await jose.dispose();
  await base?.dispose();
}
