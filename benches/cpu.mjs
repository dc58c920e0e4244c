// CPU time per request of one Worker in workerd, from V8 CPU profiles taken through workerd's
// DevTools inspector (Miniflare `inspectorPort`), and from the workerd process's own CPU time.
// Used by run.mjs (BENCH_PARTS=cpu); see docs/perf.md "Benchmarks and profiles".
//
// How workerd's inspector attributes samples (checked with this code): `GET /json` on the
// inspector port lists one target per Worker (ids `core:user:<name>` for the user's Workers, plus
// Miniflare's own `core:entry`, `kv:ns`, `cache:*`, ...); a Worker's Durable Object classes run in
// its isolate, so they are in its profile. V8 takes a sample only while this isolate is entered:
// time workerd spends in other isolates (Miniflare's entry Worker), in its event loop or
// descheduled by the OS shows up as a long gap before the next sample, and a sample's time is
// the gap to the next one (as DevTools counts). So each sample's time is capped at GAP_CAP times
// the median interval: the gaps are reported (sanity), not charged to whichever function was
// sampled next. `(idle)` is the isolate waiting (not counted); `(program)` is V8/workerd native
// work not attributed to a JS or wasm frame; `(garbage collector)` is GC.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import autocannon from "autocannon";
import WebSocket from "ws";

/** Sample interval asked of V8 (µs); the median actually seen is reported. */
export const SAMPLE_INTERVAL_US = 100;
/** A sample counts at most this many median intervals; the rest is a gap (see above). */
export const GAP_CAP = 4;
/** Functions listed per profile, by self time. */
export const TOP_FUNCTIONS = 8;
const TICK_MS = 1000 / 100; // USER_HZ: /proc/<pid>/stat counts in 1/100 s (Linux's fixed USER_HZ)

/** The workerd process Miniflare started with this inspector port. */
export function workerdPid(inspectorPort) {
  const needle = `--inspector-addr=localhost:${inspectorPort}`;
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      if (cmd.some((a) => a === needle || a === `--inspector-addr=127.0.0.1:${inspectorPort}`)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no workerd process with ${needle}`);
}

/** User + system CPU time of a process so far, in ms. */
export function processCpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** A DevTools protocol session with one Worker's isolate. */
export async function inspect(inspectorPort, targetId) {
  const list = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const target = list.find((t) => (targetId ? t.id === targetId : t.id.startsWith("core:user:")));
  if (!target) throw new Error(`inspector on ${inspectorPort}: no target ${targetId ?? "core:user:*"} in ${list.map((t) => t.id)}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let next = 0;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(data);
    const p = msg.id && pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(`${p.method}: ${JSON.stringify(msg.error)}`));
    else p.resolve(msg.result ?? {});
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve, reject, method });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { target: target.id, send, close: () => ws.close() };
}

/**
 * `amount` requests at `connections` concurrency; fails on any status but `status`. Resolves to
 * autocannon's result with `wallMs`: from the start to the last response (autocannon itself
 * reports only on its one-second ticks).
 */
export function requests(target, amount, connections, status) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let last = t0;
    const instance = autocannon(
      { url: target.url, method: target.method ?? "GET", headers: target.headers, body: target.body, amount, connections },
      (err, r) => {
        if (err) return reject(err);
        r.wallMs = last - t0;
        const codes = Object.keys(r.statusCodeStats ?? {}).map(Number);
        const seen = Object.values(r.statusCodeStats ?? {}).reduce((a, c) => a + c.count, 0);
        if (r.errors || r.timeouts || codes.some((c) => c !== status) || seen !== amount) {
          return reject(new Error(`${target.url}: wanted ${amount} × ${status}, got ${JSON.stringify(r.statusCodeStats)}, ${r.errors} errors, ${r.timeouts} timeouts`));
        }
        resolve(r);
      },
    );
    instance.on("response", () => (last = performance.now()));
  });
}

/**
 * Kind of a profile node: idle, program, gc, wasm (our module's functions), glue (the Worker's
 * own JS module: wasm-bindgen glue for ours, the whole Worker for a JS peer; and V8's js-to-wasm /
 * wasm-to-js trampolines), runtime (workerd's APIs and V8 builtins: frames without a script).
 */
export function kindOf(callFrame) {
  const { functionName: f, url } = callFrame;
  if (f === "(idle)") return "idle";
  if (f === "(program)") return "program";
  if (f === "(garbage collector)") return "gc";
  if (url.startsWith("wasm://")) return "wasm";
  if (/^(js-to-wasm|wasm-to-js)/.test(f)) return "glue";
  if (url) return "glue"; // a function of the Worker's own JS modules (ours: build/index.js)
  return "runtime";
}

/** Per-kind sampled time (µs) of a profile, with gaps capped (see the top of this file). */
export function summarize(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const { samples, timeDeltas } = profile;
  const intervals = timeDeltas.slice(1).filter((d) => d > 0).sort((a, b) => a - b);
  const median = intervals.length ? intervals[intervals.length >> 1] : SAMPLE_INTERVAL_US;
  const cap = GAP_CAP * median;
  const capped = { idle: 0, program: 0, gc: 0, wasm: 0, glue: 0, runtime: 0 };
  const raw = { ...capped };
  const byFunction = new Map(); // "kind name" -> capped self time
  let gaps = 0;
  for (let i = 0; i < samples.length; i++) {
    // DevTools' convention: a sample lasts until the next one (the last: one median interval).
    const d = i + 1 < samples.length ? timeDeltas[i + 1] : median;
    const { callFrame } = byId.get(samples[i]);
    const kind = kindOf(callFrame);
    raw[kind] += d;
    capped[kind] += Math.min(d, cap);
    gaps += Math.max(0, d - cap);
    if (kind !== "idle") {
      const key = `${kind} ${callFrame.functionName || "(anonymous)"}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + Math.min(d, cap));
    }
  }
  const top = [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP_FUNCTIONS);
  return { samples: samples.length, medianIntervalUs: median, capUs: cap, capped, raw, top, gapsUs: gaps, spanUs: profile.endTime - profile.startTime };
}

/**
 * One measured run of one path of one Worker: `warmup` requests, then `count` requests while the
 * workerd process's CPU time is read (no profiler), then `count` more under Profiler.start/stop.
 * The profile is written to `profileFile` when given (open it in Chrome DevTools, Performance).
 */
export async function profilePath({ inspectorPort, target, status, count, warmup, connections, profileFile }) {
  const pid = workerdPid(inspectorPort);
  const session = await inspect(inspectorPort);
  try {
    await requests(target, warmup, connections, status);
    let cpu0 = processCpuMs(pid);
    const plainRun = await requests(target, count, connections, status);
    const plain = { wallMs: plainRun.wallMs, processCpuMs: processCpuMs(pid) - cpu0 };

    await session.send("Profiler.enable");
    await session.send("Profiler.setSamplingInterval", { interval: SAMPLE_INTERVAL_US });
    cpu0 = processCpuMs(pid);
    await session.send("Profiler.start");
    const profiledRun = await requests(target, count, connections, status);
    const { profile } = await session.send("Profiler.stop");
    const profiled = { wallMs: profiledRun.wallMs, processCpuMs: processCpuMs(pid) - cpu0 };
    await session.send("Profiler.disable");
    if (profileFile) writeFileSync(profileFile, JSON.stringify(profile));
    const s = summarize(profile);
    const per = (us) => us / count;
    const busy = (t) => t.program + t.gc + t.wasm + t.glue + t.runtime;
    return {
      target: session.target,
      count,
      connections,
      // µs per request
      cpuUs: per(busy(s.capped)),
      cpuUncappedUs: per(busy(s.raw)),
      programUs: per(s.capped.program),
      gcUs: per(s.capped.gc),
      wasmUs: per(s.capped.wasm),
      glueUs: per(s.capped.glue),
      runtimeUs: per(s.capped.runtime),
      // [kind and function name, µs per request] by self time
      top: s.top.map(([f, us]) => [f, per(us)]),
      processUs: (plain.processCpuMs * 1000) / count,
      processProfiledUs: (profiled.processCpuMs * 1000) / count,
      // sanity
      samples: s.samples,
      medianIntervalUs: s.medianIntervalUs,
      capUs: s.capUs,
      sampledMs: (busy(s.raw) + s.raw.idle) / 1000,
      busyMs: busy(s.capped) / 1000,
      profiledProcessMs: profiled.processCpuMs,
      idleMs: s.capped.idle / 1000,
      gapsMs: s.gapsUs / 1000,
      spanMs: s.spanUs / 1000,
      wallMs: profiled.wallMs,
      plainWallMs: plain.wallMs,
      load: os.loadavg()[0],
    };
  } finally {
    session.close();
  }
}
