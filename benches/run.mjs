// `make bench`: one run on this machine, one Markdown table.
//
//   node benches/run.mjs            (after `make build` and `npm ci --prefix benches`)
//
// Parts (BENCH_PARTS, comma-separated, default all): http, cpu, native, wasm, size.
//   http    protected request through our Worker vs a @cloudflare/workers-oauth-provider Worker
//           and a `jose` Worker (all three in workerd through Miniflare's own HTTP server, no
//           `wrangler dev` proxy), and client_credentials issuance vs a `jose` issuer Worker in
//           the same workerd (and node `oidc-provider`, off the edge, for reference).
//           Interleaved: for each round, each system gets BENCH_DURATION seconds of autocannon
//           at BENCH_CONNECTIONS connections. Medians and min-max over the rounds.
//   cpu     CPU µs per request per path (protected, issuance, 401, 403) of our Worker, the jose
//           Worker and the jose issuer, from V8 CPU profiles through workerd's inspector
//           (benches/cpu.mjs), split into our wasm, the Worker's JS (wasm-bindgen glue) and the
//           runtime; and the workerd process's CPU time per request without the profiler.
//   native  criterion micro-benchmarks (benches/native.rs): sign/verify, matcho, 1/10/100 policies
//   wasm    the same jwt::verify compiled to wasm32 (benches/wasm-verify) and run in node
//   size    the Worker's wasm gzipped, compile/instantiate time in Chromium (V8), cold start in Miniflare
//
// Env: BENCH_ROUNDS (5), BENCH_DURATION (10 s), BENCH_CONNECTIONS (10), BENCH_WARMUP (3 s),
// BENCH_MEASURE (criterion measurement seconds, 3), BENCH_PLOT (docs/bench.png; "0" = none),
// BENCH_CPU_REQUESTS (2000 per measurement), BENCH_CPU_WARMUP (500), BENCH_CPU_CONNECTIONS (4),
// BENCH_CPU_REPEATS (3: each path and system measured that many times, alternated).
// The table goes to stdout and to build/bench.md, the raw numbers to build/bench.json; progress
// goes to stderr.
import { spawn, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import * as esbuild from "esbuild";
import { Miniflare, Log, LogLevel } from "miniflare";
import { startWorker, basicAuth, form, FORM } from "../tests/e2e/harness.mjs";
import { runWasmVerify } from "./wasm-verify.mjs";
import { profilePath, SAMPLE_INTERVAL_US, GAP_CAP } from "./cpu.mjs";
import { renderPlot } from "./plot.mjs";
import { WORKER_BUNDLE } from "./lib.mjs";
import { launchBrowser } from "../tests/browser/helpers.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const OUT = path.join(ROOT, "build");
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target");

const num = (name, dflt) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const ROUNDS = num("BENCH_ROUNDS", 5);
const DURATION = num("BENCH_DURATION", 10);
const CONNECTIONS = num("BENCH_CONNECTIONS", 10);
const WARMUP = num("BENCH_WARMUP", 3);
const MEASURE = num("BENCH_MEASURE", 3);
const CPU_REQUESTS = num("BENCH_CPU_REQUESTS", 2000);
const CPU_WARMUP = num("BENCH_CPU_WARMUP", 500);
const CPU_CONNECTIONS = num("BENCH_CPU_CONNECTIONS", 4);
const CPU_REPEATS = num("BENCH_CPU_REPEATS", 3);
const PARTS = new Set((process.env.BENCH_PARTS ?? "http,cpu,native,wasm,size").split(",").map((s) => s.trim()));
const PLOT = process.env.BENCH_PLOT ?? path.join(ROOT, "docs/bench.png");

const log = (...a) => console.error("[bench]", ...a);
const ensureOk = async (res, what) => {
  if (!res.ok) throw new Error(`${what}: ${res.status} ${await res.text()}`);
  return res;
};

// --- statistics -------------------------------------------------------------------------------
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const spread = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

// --- processes --------------------------------------------------------------------------------
/** Starts a node script that prints `listening <port>`; resolves to { url, stop }. */
function startNode(script, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      cwd: HERE,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`${script} did not start: ${err}`)), 20_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: `http://127.0.0.1:${m[1]}`,
          stop: () => new Promise((r) => (child.exitCode !== null ? r() : (child.once("exit", r), child.kill("SIGTERM")))),
        });
      }
    });
    child.stderr.on("data", (d) => (err += d));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code}: ${err}`));
    });
  });
}

/** Bundles a peer Worker (its imports from benches/node_modules) into build/bench/. */
async function bundle(entry, define = {}) {
  const outfile = path.join(OUT, "bench", path.basename(entry).replace(/\.mjs$/, ".js"));
  await esbuild.build({ ...WORKER_BUNDLE, entryPoints: [path.join(HERE, "peers", entry)], outfile, define });
  return outfile;
}

const COMPAT_DATE = /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync(path.join(ROOT, "wrangler.toml"), "utf8"))[1];

/** A peer Worker in its own Miniflare (workerd), on Miniflare's own HTTP server. */
async function startPeerWorker(scriptPath, { bindings = {}, kvNamespaces = [], port = 0, inspectorPort } = {}) {
  const mf = new Miniflare({
    modules: true,
    scriptPath,
    compatibilityDate: COMPAT_DATE,
    bindings,
    kvNamespaces,
    host: "127.0.0.1",
    port,
    cf: false,
    ...(inspectorPort ? { inspectorPort } : {}),
    log: new Log(process.env.BENCH_LOG ? LogLevel.DEBUG : LogLevel.WARN),
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const fetchIt = (p, init = {}) => fetch(new URL(p, url + "/"), { redirect: "manual", ...init });
  return { url, fetch: fetchIt, miniflare: mf, dispose: () => mf.dispose() };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// --- the systems ------------------------------------------------------------------------------
const PROTECTED_PATH = "/Patient/pt-1";
const CLIENT_ID = "bench";
const CLIENT_SECRET = randomBytes(18).toString("base64url");

// noAssets: the peers have no static files; locally Miniflare runs the www/ assets layer as
// router Workers in front of ours on every request (on Cloudflare the router runs before any
// Worker either way), so the compared row leaves it out and a second row shows it.
async function setupOurs(originUrl, { noAssets = true } = {}) {
  const w = await startWorker({ originUrl, noAssets });
  await ensureOk(await w.admin("PUT", `/Client/${CLIENT_ID}`, { secret: CLIENT_SECRET, grant_types: ["client_credentials"] }), "PUT Client");
  await ensureOk(
    await w.admin("PUT", `/AccessPolicy/${CLIENT_ID}`, { engine: "allow", link: [{ id: CLIENT_ID, resourceType: "Client" }] }),
    "PUT AccessPolicy",
  );
  const issue = () =>
    w.fetch("/auth/token", {
      method: "POST",
      headers: { ...FORM, authorization: basicAuth(CLIENT_ID, CLIENT_SECRET) },
      body: form({ grant_type: "client_credentials" }),
    });
  const { access_token: token } = await (await ensureOk(await issue(), "our token")).json();
  const discovery = await (await ensureOk(await w.fetch("/.well-known/openid-configuration"), "discovery")).json();
  const jwks = await (await ensureOk(await w.fetch(new URL(discovery.jwks_uri).pathname), "jwks")).json();
  const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
  return { w, token, jwks, claims };
}

async function setupOauthProvider(originUrl) {
  const redirect = "http://127.0.0.1/callback";
  // The provider wants its resource URL when the module loads, so the port is chosen first.
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/Patient`;
  const script = await bundle("oauth-provider-worker.mjs", { BENCH_RESOURCE: JSON.stringify(resource) });
  const p = await startPeerWorker(script, {
    bindings: { ORIGIN_URL: originUrl, BENCH_REDIRECT: redirect },
    kvNamespaces: ["OAUTH_KV"],
    port,
  });
  const client = await (await ensureOk(await p.fetch("/bench/setup"), "oauth-provider setup")).json();
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const q = new URLSearchParams({
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: redirect,
    scope: "read",
    state: "bench",
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  const auth = await p.fetch(`/authorize?${q}`);
  const location = auth.headers.get("location");
  if (auth.status !== 302 || !location) throw new Error(`oauth-provider authorize: ${auth.status} ${await auth.text()}`);
  const code = new URL(location).searchParams.get("code");
  const tokenRes = await p.fetch("/oauth/token", {
    method: "POST",
    headers: { ...FORM, authorization: basicAuth(client.client_id, client.client_secret) },
    body: form({ grant_type: "authorization_code", code, redirect_uri: redirect, code_verifier: verifier }),
  });
  const { access_token: token } = await (await ensureOk(tokenRes, "oauth-provider token")).json();
  return { p, token };
}

async function setupJose(originUrl, ours, { inspectorPort } = {}) {
  const p = await startPeerWorker(await bundle("jose-worker.mjs"), {
    inspectorPort,
    bindings: {
      JWKS: JSON.stringify(ours.jwks),
      ISSUER: ours.claims.iss,
      AUDIENCE: Array.isArray(ours.claims.aud) ? ours.claims.aud[0] : ours.claims.aud,
      ALLOWED_CLIENT: CLIENT_ID,
      ORIGIN_URL: originUrl,
    },
  });
  return { p };
}

/**
 * The jose issuer Worker, with our Worker's signing key and our stored Client document (the same
 * PBKDF2 hash and generation) in its KV.
 */
async function setupJoseIssuer(ours, { inspectorPort } = {}) {
  const doc = await (await ours.w.miniflare.getKVNamespace("RESOURCES")).get(`Client/${CLIENT_ID}`);
  if (!doc) throw new Error(`our KV has no Client/${CLIENT_ID}`);
  const p = await startPeerWorker(await bundle("jose-issuer-worker.mjs"), {
    bindings: { SIGNING_KEY: JSON.stringify(ours.w.signingKey) },
    kvNamespaces: ["CLIENTS"],
    inspectorPort,
  });
  await (await p.miniflare.getKVNamespace("CLIENTS")).put(`Client/${CLIENT_ID}`, doc);
  return { p };
}

const issueHeaders = (secret = CLIENT_SECRET) => ({ ...FORM, authorization: basicAuth(CLIENT_ID, secret) });
const ISSUE_BODY = form({ grant_type: "client_credentials" });

/**
 * An issuer must answer our shape (the same JSON members, no-store, a token with the same
 * header and claim names as ours, signed by our key) before it is timed, and refuse a wrong
 * secret with 401.
 */
async function checkIssuance(name, fetchIt, ours) {
  const res = await fetchIt("/auth/token", { method: "POST", headers: issueHeaders(), body: ISSUE_BODY });
  const text = await res.text();
  if (res.status !== 200 || res.headers.get("cache-control") !== "no-store") {
    throw new Error(`${name}: token request gave ${res.status} (cache-control ${res.headers.get("cache-control")}) ${text}`);
  }
  const body = JSON.parse(text);
  const keys = (o) => Object.keys(o).sort().join(",");
  const ourBody = { access_token: "", expires_in: 0, token_type: "" };
  if (keys(body) !== keys(ourBody) || body.token_type !== "Bearer" || body.expires_in !== 3600) throw new Error(`${name}: answer ${text}`);
  const [header, payload] = body.access_token.split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url")));
  const ourHeader = { alg: "EdDSA", kid: ours.w.signingKey.kid, typ: "at+jwt" };
  if (keys(header) !== keys(ourHeader) || Object.entries(ourHeader).some(([k, v]) => header[k] !== v)) {
    throw new Error(`${name}: token header ${JSON.stringify(header)}`);
  }
  if (keys(payload) !== keys(ours.claims)) throw new Error(`${name}: claims ${keys(payload)}, ours ${keys(ours.claims)}`);
  for (const c of ["client_id", "sub", "sub_kind", "edge_gen"]) {
    if (payload[c] !== ours.claims[c]) throw new Error(`${name}: ${c} ${payload[c]}, ours ${ours.claims[c]}`);
  }
  const sig = Buffer.from(body.access_token.split(".")[2], "base64url");
  const pub = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: ours.w.signingKey.x }, { name: "Ed25519" }, false, ["verify"]);
  const signed = Buffer.from(body.access_token.split(".").slice(0, 2).join("."));
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, pub, sig, signed))) throw new Error(`${name}: token not signed by our key`);
  const bad = await fetchIt("/auth/token", { method: "POST", headers: issueHeaders(CLIENT_SECRET + "x"), body: ISSUE_BODY });
  await bad.arrayBuffer();
  if (bad.status !== 401) throw new Error(`${name}: a wrong secret gave ${bad.status}, not 401`);
}

/** The request must succeed once before it is timed, and a wrong token must be refused. */
async function checkProtected(name, fetchIt, token) {
  const ok = await fetchIt(PROTECTED_PATH, { headers: { authorization: `Bearer ${token}` } });
  const body = await ok.text();
  if (ok.status !== 200 || !body.includes('"Bench"')) throw new Error(`${name}: protected request gave ${ok.status} ${body}`);
  const bad = await fetchIt(PROTECTED_PATH, { headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } });
  await bad.arrayBuffer();
  if (bad.status !== 401) throw new Error(`${name}: a tampered token gave ${bad.status}, not 401`);
}

// --- load -------------------------------------------------------------------------------------
function load(target, seconds) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: target.url,
        method: target.method ?? "GET",
        headers: target.headers,
        body: target.body,
        connections: CONNECTIONS,
        duration: seconds,
      },
      (err, r) => {
        if (err) return reject(err);
        resolve({
          rps: r.requests.average,
          p50: r.latency.p50,
          p99: r.latency.p99,
          ok: r["2xx"],
          failed: r.non2xx + r.errors + r.timeouts,
        });
      },
    );
  });
}

async function runHttp(originUrl) {
  log("setting up the systems");
  const ours = await setupOurs(originUrl);
  const oursAssets = await setupOurs(originUrl, { noAssets: false });
  const [op, jose] = [await setupOauthProvider(originUrl), await setupJose(originUrl, ours)];
  const joseIssuer = await setupJoseIssuer(ours);
  const oidc = await startNode(path.join(HERE, "peers/oidc-provider.mjs"), {
    BENCH_CLIENT_ID: CLIENT_ID,
    BENCH_CLIENT_SECRET: CLIENT_SECRET,
  });
  try {
    await checkProtected("ours", ours.w.fetch, ours.token);
    await checkProtected("ours with assets", oursAssets.w.fetch, oursAssets.token);
    await checkProtected("workers-oauth-provider", op.p.fetch, op.token);
    await checkProtected("jose", jose.p.fetch, ours.token);
    await checkIssuance("ours", ours.w.fetch, ours);
    await checkIssuance("jose issuer", joseIssuer.p.fetch, ours);
    const bearer = (t) => ({ authorization: `Bearer ${t}` });
    const issueBody = ISSUE_BODY;
    const headers = issueHeaders();
    const oidcIssue = await fetch(`${oidc.url}/token`, { method: "POST", headers, body: issueBody + "&scope=read" });
    await ensureOk(oidcIssue, "oidc-provider token");

    // goal: issue 16's targets, as ours ÷ this; reference: shown with its ratio, no goal.
    const systems = [
      { part: "protected", name: "edge-authorizer (ours)", ours: true, url: ours.w.url + PROTECTED_PATH, headers: bearer(ours.token) },
      { part: "protected", name: "ours + local assets router", info: true, url: oursAssets.w.url + PROTECTED_PATH, headers: bearer(oursAssets.token) },
      { part: "protected", name: "workers-oauth-provider", goal: { rps: 2 }, url: op.p.url + PROTECTED_PATH, headers: bearer(op.token) },
      { part: "protected", name: "jose Worker", goal: { rps: 1, p99: 1 }, url: jose.p.url + PROTECTED_PATH, headers: bearer(ours.token) },
      { part: "issuance", name: "edge-authorizer (ours)", ours: true, url: ours.w.url + "/auth/token", method: "POST", headers, body: issueBody },
      { part: "issuance", name: "ours + local assets router", info: true, url: oursAssets.w.url + "/auth/token", method: "POST", headers, body: issueBody },
      { part: "issuance", name: "jose issuer Worker", goal: { rps: 1 }, url: joseIssuer.p.url + "/auth/token", method: "POST", headers, body: issueBody },
      { part: "issuance", name: "oidc-provider (node)", reference: true, url: `${oidc.url}/token`, method: "POST", headers, body: issueBody + "&scope=read" },
    ];
    for (const s of systems) {
      log(`warm-up ${s.part} ${s.name} (${WARMUP} s)`);
      await load(s, WARMUP);
      s.rounds = [];
    }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const s of systems) {
        const r = await load(s, DURATION);
        s.rounds.push(r);
        log(`round ${round}/${ROUNDS} ${s.part} ${s.name}: ${Math.round(r.rps)} req/s p50 ${r.p50} ms p99 ${r.p99} ms failed ${r.failed}`);
      }
    }
    return systems.map(({ part, name, ours: isOurs, info, goal, reference, rounds }) => ({
      part,
      name,
      ours: !!isOurs,
      info: !!info,
      goal: goal ?? null,
      reference: !!reference,
      rounds,
      rps: spread(rounds.map((r) => r.rps)),
      p50: spread(rounds.map((r) => r.p50)),
      p99: spread(rounds.map((r) => r.p99)),
      failed: rounds.reduce((a, r) => a + r.failed, 0),
      ok: rounds.reduce((a, r) => a + r.ok, 0),
    }));
  } finally {
    await Promise.allSettled([ours.w.dispose(), oursAssets.w.dispose(), op.p.dispose(), jose.p.dispose(), joseIssuer.p.dispose(), oidc.stop()]);
  }
}

// --- cpu: µs of CPU per request per path, from profiles (benches/cpu.mjs) ---------------------
// The last repeat's profile of each path and system stays in build/bench/cpu-<path>-<system>.cpuprofile.
const CPU_PATHS = [
  ["protected", `GET ${PROTECTED_PATH}, bearer, allowed, forwarded`],
  ["issuance", "POST /auth/token, client_credentials + Basic"],
  ["401", `GET ${PROTECTED_PATH}, a token with a bad signature`],
  ["403", `GET ${PROTECTED_PATH}, a valid token, no policy allows`],
];

async function runCpu(originUrl) {
  log("cpu: setting up the systems with inspector ports");
  const ports = [await freePort(), await freePort(), await freePort()];
  // The harness takes the inspector port from the environment (tests/e2e/harness.mjs).
  process.env.E2E_INSPECTOR_PORT = String(ports[0]);
  let ours;
  try {
    ours = await setupOurs(originUrl);
  } finally {
    delete process.env.E2E_INSPECTOR_PORT;
  }
  const denied = `${CLIENT_ID}-denied`;
  await ensureOk(await ours.w.admin("PUT", `/Client/${denied}`, { secret: CLIENT_SECRET, grant_types: ["client_credentials"] }), "PUT Client (denied)");
  const deniedRes = await ours.w.fetch("/auth/token", {
    method: "POST",
    headers: { ...FORM, authorization: basicAuth(denied, CLIENT_SECRET) },
    body: ISSUE_BODY,
  });
  const { access_token: deniedToken } = await (await ensureOk(deniedRes, "denied client's token")).json();
  const jose = await setupJose(originUrl, ours, { inspectorPort: ports[1] });
  const joseIssuer = await setupJoseIssuer(ours, { inspectorPort: ports[2] });
  try {
    const bearer = (t) => ({ authorization: `Bearer ${t}` });
    const tampered = ours.token.slice(0, -4) + (ours.token.endsWith("AAAA") ? "BBBB" : "AAAA");
    const get = (base, token) => ({ url: base + PROTECTED_PATH, headers: bearer(token) });
    const issue = (base) => ({ url: base + "/auth/token", method: "POST", headers: issueHeaders(), body: ISSUE_BODY });
    const cases = [
      { path: "protected", status: 200, systems: [["edge-authorizer (ours)", ports[0], get(ours.w.url, ours.token)], ["jose Worker", ports[1], get(jose.p.url, ours.token)]] },
      { path: "issuance", status: 200, systems: [["edge-authorizer (ours)", ports[0], issue(ours.w.url)], ["jose issuer Worker", ports[2], issue(joseIssuer.p.url)]] },
      { path: "401", status: 401, systems: [["edge-authorizer (ours)", ports[0], get(ours.w.url, tampered)], ["jose Worker", ports[1], get(jose.p.url, tampered)]] },
      { path: "403", status: 403, systems: [["edge-authorizer (ours)", ports[0], get(ours.w.url, deniedToken)], ["jose Worker", ports[1], get(jose.p.url, deniedToken)]] },
    ];
    const runs = new Map();
    for (let rep = 1; rep <= CPU_REPEATS; rep++) {
      for (const c of cases) {
        for (const [name, inspectorPort, target] of c.systems) {
          const profileFile = path.join(OUT, "bench", `cpu-${c.path}-${name.split(" ")[0]}.cpuprofile`);
          const r = await profilePath({ inspectorPort, target, status: c.status, count: CPU_REQUESTS, warmup: CPU_WARMUP, connections: CPU_CONNECTIONS, profileFile });
          const key = `${c.path}\0${name}`;
          if (!runs.has(key)) runs.set(key, { path: c.path, name, ours: name.includes("(ours)"), runs: [] });
          runs.get(key).runs.push(r);
          log(
            `cpu ${rep}/${CPU_REPEATS} ${c.path} ${name}: ${r.cpuUs.toFixed(0)} µs/req profiled ` +
              `(wasm ${r.wasmUs.toFixed(0)}, JS ${r.glueUs.toFixed(0)}, runtime ${r.runtimeUs.toFixed(0)}, program ${r.programUs.toFixed(0)}, GC ${r.gcUs.toFixed(0)}); ` +
              `workerd ${r.processUs.toFixed(0)} µs/req; busy ${r.busyMs.toFixed(0)} ms of ${r.wallMs.toFixed(0)} ms wall, gaps ${r.gapsMs.toFixed(0)} ms, ` +
              `workerd CPU ${r.profiledProcessMs.toFixed(0)} ms`,
          );
        }
      }
    }
    const fields = ["cpuUs", "cpuUncappedUs", "programUs", "gcUs", "wasmUs", "glueUs", "runtimeUs", "processUs", "processProfiledUs", "medianIntervalUs", "sampledMs", "busyMs", "profiledProcessMs", "idleMs", "wallMs", "plainWallMs", "gapsMs", "samples"];
    return [...runs.values()].map((row) => {
      const out = { ...row };
      for (const f of fields) out[f] = spread(row.runs.map((r) => r[f]));
      return out;
    });
  } finally {
    await Promise.allSettled([ours.w.dispose(), jose.p.dispose(), joseIssuer.p.dispose()]);
  }
}

// --- native (criterion) -----------------------------------------------------------------------
const NATIVE_IDS = [
  ["sign/EdDSA", "sign EdDSA (Ed25519)"],
  ["sign/ES256", "sign ES256 (P-256)"],
  ["verify/EdDSA", "verify EdDSA: jwt::verify, whole token"],
  ["verify/ES256", "verify ES256: jwt::verify, whole token"],
  ["verify/HS256", "verify HS256: jwt::verify, whole token"],
  ["policy/matcho", "one matcho policy"],
  ["policy/evaluate-1", "evaluate 1 policy"],
  ["policy/evaluate-10", "evaluate 10 policies (the last allows)"],
  ["policy/evaluate-100", "evaluate 100 policies (the last allows)"],
];

function runNative() {
  log("cargo bench --bench native");
  execFileSync("cargo", ["bench", "--bench", "native", "--", "--warm-up-time", "1", "--measurement-time", String(MEASURE)], {
    cwd: ROOT,
    stdio: ["ignore", process.stderr, process.stderr],
  });
  return NATIVE_IDS.map(([id, label]) => {
    const file = path.join(TARGET_DIR, "criterion", id, "new", "estimates.json");
    const e = JSON.parse(readFileSync(file, "utf8")).median;
    return { id, label, ns: e.point_estimate, lo: e.confidence_interval.lower_bound, hi: e.confidence_interval.upper_bound };
  });
}

// --- size and start ---------------------------------------------------------------------------
async function runSize() {
  const wasmPath = path.join(OUT, "index_bg.wasm");
  if (!existsSync(wasmPath)) throw new Error("build/index_bg.wasm missing: run make build");
  const bytes = readFileSync(wasmPath);
  // The gzip tool, as `make size` counts (zlib's level 9 differs by a few KB).
  const gz = execFileSync("gzip", ["-9", "-c", wasmPath], { maxBuffer: 64 << 20 }).length;
  // Node 20's V8 cannot compile this wasm (it uses wasm GC and exception-handling opcodes that
  // workerd's V8 has), so compile and instantiate are timed in the system Chromium's V8.
  const { compile, instantiate, version } = await timeInChromium(bytes);

  // Cold start as a client sees it: a new workerd (Miniflare) with the Worker, up to its first answer.
  const cold = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const w = await startWorker({});
    const res = await w.fetch("/.well-known/openid-configuration");
    await res.arrayBuffer();
    cold.push(performance.now() - t0);
    await w.dispose();
  }
  return { raw: bytes.length, gz, compile, instantiate, chromium: version, cold: spread(cold) };
}

/** 15 runs each of WebAssembly.compile and compile + instantiate (stub imports) in Chromium. */
async function timeInChromium(bytes) {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.setContent("<!doctype html><title>wasm start</title>");
    const times = await page.evaluate(async (b64) => {
      const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const first = await WebAssembly.compile(bin);
      // The Worker's imports are wasm-bindgen glue; for instantiation alone, stubs suffice.
      const imports = {};
      for (const imp of WebAssembly.Module.imports(first)) {
        imports[imp.module] ??= {};
        if (imp.kind === "function") imports[imp.module][imp.name] = () => { throw new Error("stub"); };
        // wasm-bindgen's exception tag is the JS tag.
        if (imp.kind === "tag") imports[imp.module][imp.name] = WebAssembly.JSTag ?? new WebAssembly.Tag({ parameters: ["externref"] });
      }
      const out = { compile: [], instantiate: [] };
      for (let i = 0; i < 15; i++) {
        let t = performance.now();
        await WebAssembly.compile(bin);
        out.compile.push(performance.now() - t);
        t = performance.now();
        await WebAssembly.instantiate(bin, imports);
        out.instantiate.push(performance.now() - t);
      }
      return out;
    }, bytes.toString("base64"));
    return { compile: spread(times.compile), instantiate: spread(times.instantiate), version: browser.version() };
  } finally {
    await browser.close();
  }
}

// --- table ------------------------------------------------------------------------------------
const fmt = (n, d = 0) => n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const range = (s, d = 0) => `${fmt(s.median, d)} (${fmt(s.min, d)}-${fmt(s.max, d)})`;
const us = (ns) => (ns >= 1e6 ? `${fmt(ns / 1e6, 2)} ms` : `${fmt(ns / 1e3, ns < 1e4 ? 2 : 1)} µs`);
const verdict = (ok) => (ok ? "**met**" : "**not met**");

function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "?";
  const pkg = (p) => {
    try {
      return JSON.parse(readFileSync(path.join(ROOT, p), "utf8")).version;
    } catch {
      return "?";
    }
  };
  return {
    cpus: os.availableParallelism?.() ?? os.cpus().length,
    cpu,
    node: process.version,
    workerd: pkg("node_modules/workerd/package.json"),
    miniflare: pkg("node_modules/miniflare/package.json"),
    load: os.loadavg().map((l) => l.toFixed(2)).join(", "),
  };
}

function cpuTable(cpu) {
  const L = [];
  L.push(
    `**CPU per request, from CPU profiles** (\`BENCH_PARTS=cpu node benches/run.mjs\`, benches/cpu.mjs): per path and ` +
      `system, ${fmt(CPU_WARMUP)} warm-up requests, then ${fmt(CPU_REQUESTS)} requests at ${CPU_CONNECTIONS} connections while ` +
      `the workerd process's CPU time is read, then ${fmt(CPU_REQUESTS)} more under V8's profiler (workerd's DevTools inspector, ` +
      `${SAMPLE_INTERVAL_US} µs sampling, the Worker's own isolate); ${CPU_REPEATS} repeats alternated between systems, median (min-max). ` +
      `Profile µs/request: sampled time of the isolate except \`(idle)\`, each sample capped at ${GAP_CAP}× the median interval ` +
      "(the rest is time the isolate was not running: other isolates, the event loop, the OS); split into our wasm, the Worker's " +
      "own JS (ours: the wasm-bindgen glue in build/index.js; a peer: all its code, jose included), the runtime (workerd's APIs, " +
      "V8 builtins), `(program)` (native work outside any frame) and GC. workerd µs/request: the whole workerd process without " +
      "the profiler (Miniflare's entry Worker and the sockets included, the same for every system).",
  );
  L.push("");
  L.push("| path | system | profile µs/request | wasm | Worker JS (glue) | runtime | (program) | GC | workerd process µs/request |");
  L.push("|---|---|---|---|---|---|---|---|---|");
  const pct = (part, whole) => `${fmt(part)} (${fmt((100 * part) / whole)} %)`;
  for (const [p, what] of CPU_PATHS) {
    for (const r of cpu.filter((x) => x.path === p)) {
      const c = r.cpuUs.median;
      L.push(
        `| ${p}: ${what} | ${r.name} | ${range(r.cpuUs)} | ${pct(r.wasmUs.median, c)} | ${pct(r.glueUs.median, c)} | ` +
          `${pct(r.runtimeUs.median, c)} | ${pct(r.programUs.median, c)} | ${pct(r.gcUs.median, c)} | ${range(r.processUs)} |`,
      );
    }
  }
  L.push("");
  const o = cpu.find((r) => r.path === "protected" && r.ours);
  const j = cpu.find((r) => r.path === "protected" && !r.ours);
  if (o && j) {
    L.push(
      `Goal (issue 16): protected path CPU lower than the jose Worker's: ${fmt(o.cpuUs.median)} vs ${fmt(j.cpuUs.median)} µs ` +
        `(profile), ${fmt(o.processUs.median)} vs ${fmt(j.processUs.median)} µs (workerd process): ${verdict(o.cpuUs.median < j.cpuUs.median)}.`,
    );
    L.push("");
  }
  L.push(
    `Our Worker's top functions by self time (µs per request, the last repeat; wasm names are stripped in the build: ` +
      "`wasm-function[N]` is the N-th function of build/index_bg.wasm):",
  );
  L.push("");
  for (const r of cpu.filter((x) => x.ours)) {
    const top = r.runs.at(-1).top.map(([f, us]) => `${(/^(program|gc) /.test(f) ? f.replace(/^\S+ /, "") : f.replace(/^(\S+) (.*)$/, "$2 ($1)"))} ${fmt(us)}`);
    L.push(`- ${r.path}: ${top.join(", ")}`);
  }
  L.push("");
  L.push(
    "Sanity per row (medians over the repeats): samples and their median interval; the profiled requests' wall time (first " +
      "request to last response); the isolate's sampled busy time (capped) and idle time; the gap time left out by the cap; " +
      "the workerd process's CPU time over the same profiled run (busy must not exceed it; the difference is Miniflare's " +
      "entry Worker, sockets and the profiler's own cost); workerd µs/request with the profiler on (the profiler's overhead " +
      "is this minus the unprofiled figure above).",
  );
  L.push("");
  L.push("| path | system | samples | interval µs | wall ms | busy ms | idle ms | gaps ms | workerd CPU ms (profiled run) | workerd µs/request, profiled |");
  L.push("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of cpu) {
    L.push(
      `| ${r.path} | ${r.name} | ${fmt(r.samples.median)} | ${fmt(r.medianIntervalUs.median)} | ${fmt(r.wallMs.median)} | ${fmt(r.busyMs.median)} | ` +
        `${fmt(r.idleMs.median)} | ${fmt(r.gapsMs.median)} | ${fmt(r.profiledProcessMs.median)} | ${range(r.processProfiledUs)} |`,
    );
  }
  L.push("");
  return L;
}

function table({ http, cpu, native, wasm, size, env, startedAt, loadBefore }) {
  const L = [];
  L.push(`Run ${startedAt} on ${env.cpus} × ${env.cpu}; node ${env.node}, workerd ${env.workerd} (Miniflare ${env.miniflare}).`);
  L.push(`Load average before/after: ${loadBefore} / ${env.load}.`);
  L.push("");
  if (http) {
    L.push(
      `HTTP: ${ROUNDS} interleaved rounds × ${DURATION} s per system, autocannon with ${CONNECTIONS} connections; ` +
        "median (min-max) over the rounds. Workers run in workerd through Miniflare's own HTTP server " +
        "(one Miniflare per Worker, no `wrangler dev` proxy); the origin is a node HTTP server answering a fixed JSON. " +
        "Our compared row runs without Miniflare's local assets layer (two router Workers in front of ours on every " +
        "request, which the peers do not have); the row below it is the same Worker with that layer.",
    );
    L.push("");
    const part = (p) => http.filter((s) => s.part === p);
    const ours = (p) => part(p).find((s) => s.ours);
    const goalFor = (s) => {
      const o = ours(s.part);
      if (s.ours) return "";
      if (s.info) return "(not compared: the same Worker with Miniflare's assets layer in front)";
      if (s.reference) return "(reference, no goal: a node process, not a Worker in workerd)";
      if (!s.goal) return "";
      const rps = o.rps.median / s.rps.median;
      const p99 = o.p99.median / s.p99.median;
      const parts = [`≥ ${s.goal.rps}× req/s`];
      let ok = rps >= s.goal.rps;
      if (s.goal.p99) {
        parts.push("p99 no worse");
        ok &&= p99 <= s.goal.p99;
      }
      return `${parts.join(" and ")}: ${verdict(ok)}`;
    };
    for (const [p, title] of [
      ["protected", `Protected request: \`GET ${PROTECTED_PATH}\` with a bearer token, verified, allowed by one rule, forwarded to the origin`],
      ["issuance", "Token issuance: `POST /auth/token` (`client_credentials`, Basic client auth, EdDSA JWT access token)"],
    ]) {
      const rows = part(p);
      L.push(`**${title}**`);
      L.push("");
      L.push("| system | req/s | p50 ms | p99 ms | ours ÷ this: req/s (higher is better), p99 (lower is better) | goal |");
      L.push("|---|---|---|---|---|---|");
      for (const s of rows) {
        const o = ours(p);
        const ratio = s.ours || s.info ? "" : `${fmt(o.rps.median / s.rps.median, 2)}×, ${fmt(o.p99.median / s.p99.median, 2)}×`;
        const failed = s.failed ? ` (${fmt(s.failed)} failed!)` : "";
        L.push(`| ${s.name}${failed} | ${range(s.rps)} | ${range(s.p50)} | ${range(s.p99)} | ${ratio} | ${goalFor(s)} |`);
      }
      L.push("");
    }
    L.push(
      "Peers: workers-oauth-provider checks its own opaque token (a KV read, then unwrapping the grant's " +
        "encrypted props) and applies the same rule in its apiHandler; the jose Worker verifies our EdDSA token " +
        "against our JWKS (iss, aud, exp, typ) and applies the same rule; the jose issuer Worker reads our stored " +
        "Client from KV (cached per isolate), checks the Basic secret against its PBKDF2 hash (a verified secret " +
        "remembered per isolate, as ours) and signs the same EdDSA `at+jwt` claims with our key; oidc-provider " +
        "issues an EdDSA JWT access token (resource indicators, `accessTokenFormat: jwt`) from node's in-memory adapter.",
    );
    L.push("");
  }
  if (cpu) L.push(...cpuTable(cpu));
  if (native) {
    L.push("**Native micro-benchmarks** (criterion; bench profile: `opt-level = 3`, LTO; median and its 95% CI)");
    L.push("");
    L.push("| benchmark | median | 95% CI | per second |");
    L.push("|---|---|---|---|");
    for (const n of native) L.push(`| ${n.label} | ${us(n.ns)} | ${us(n.lo)}-${us(n.hi)} | ${fmt(1e9 / n.ns)} |`);
    L.push("");
  }
  if (wasm) {
    const nativeNs = native?.find((n) => n.id === "verify/EdDSA")?.ns;
    L.push("**wasm vs native: `jwt::verify` of one EdDSA token** (the same code, `benches/wasm-verify` built for wasm32 like the Worker, \`opt-level = \"z\"\`, and run in node " + process.version + " with tinybench)");
    L.push("");
    L.push("| where | median | min-p99 | ÷ native | goal (within 2× of native) |");
    L.push("|---|---|---|---|---|");
    if (nativeNs) L.push(`| native (criterion, above) | ${us(nativeNs)} | | 1.00× | |`);
    for (const row of wasm) {
      const ratio = nativeNs ? row.ms * 1e6 / nativeNs : NaN;
      const goal = row.goal && nativeNs ? verdict(ratio <= 2) : "";
      L.push(`| ${row.label} | ${us(row.ms * 1e6)} | ${us(row.lo * 1e6)}-${us(row.hi * 1e6)} | ${nativeNs ? fmt(ratio, 2) + "×" : "?"} | ${goal} |`);
    }
    L.push("");
  }
  if (size) {
    L.push("**Size and start** (build/index_bg.wasm)");
    L.push("");
    L.push("| what | number | goal |");
    L.push("|---|---|---|");
    L.push(`| Worker wasm, gzip -9 | ${fmt(size.gz)} bytes (${fmt(size.gz / 1024)} KiB; raw ${fmt(size.raw)}) | ≤ 300 KB: ${verdict(size.gz <= 300_000)} |`);
    L.push(`| \`WebAssembly.compile\` in Chromium ${size.chromium} (V8), 15 runs | ${range(size.compile, 1)} ms | |`);
    L.push(`| compile + instantiate in Chromium, 15 runs | ${range(size.instantiate, 1)} ms | |`);
    L.push(`| cold start: new Miniflare (workerd) to first response, 3 runs (median, min-max) | ${range(size.cold)} ms | |`);
    L.push("");
  }
  return L.join("\n");
}

// --- main -------------------------------------------------------------------------------------
async function main() {
  const startedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const loadBefore = os.loadavg().map((l) => l.toFixed(2)).join(", ");
  mkdirSync(path.join(OUT, "bench"), { recursive: true });
  if (!existsSync(path.join(OUT, "index.js"))) throw new Error("build/index.js missing: run make build");
  const result = {
    startedAt,
    loadBefore,
    config: { ROUNDS, DURATION, CONNECTIONS, WARMUP, MEASURE, CPU_REQUESTS, CPU_WARMUP, CPU_CONNECTIONS, CPU_REPEATS, SAMPLE_INTERVAL_US, GAP_CAP },
  };

  if (PARTS.has("native")) result.native = runNative();
  if (PARTS.has("wasm")) {
    log("wasm verify (benches/wasm-verify)");
    result.wasm = await runWasmVerify({ root: ROOT, targetDir: TARGET_DIR, log });
  }
  if (PARTS.has("size")) {
    log("size and start");
    result.size = await runSize();
  }
  if (PARTS.has("http") || PARTS.has("cpu")) {
    const origin = await startNode(path.join(HERE, "origin.mjs"));
    try {
      if (PARTS.has("http")) result.http = await runHttp(origin.url);
      if (PARTS.has("cpu")) result.cpu = await runCpu(origin.url);
    } finally {
      await origin.stop();
    }
  }
  result.env = machine();
  const md = table(result);
  writeFileSync(path.join(OUT, "bench.md"), md + "\n");
  writeFileSync(path.join(OUT, "bench.json"), JSON.stringify(result, null, 2) + "\n");
  if (result.http && PLOT !== "0") {
    log(`plot -> ${path.relative(ROOT, PLOT)}`);
    await renderPlot(result, PLOT);
  }
  console.log(md);
}

await main();
