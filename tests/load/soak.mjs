#!/usr/bin/env node
// The full load and soak run (`make soak`): starts the built Worker in workerd and a loopback
// origin, runs the mixed workload of tests/load/load.mjs, verifies, prints a summary, and exits
// non-zero on any unexpected outcome.
//
//   node tests/load/soak.mjs
//   LOAD_REQUESTS=20000 LOAD_CONCURRENCY=64 LOAD_SEED=7 node tests/load/soak.mjs
//   LOAD_MIX=policy=0,pool=60 ...   changes flow weights (tests/load/load.mjs DEFAULT_MIX)
//   LOAD_JSON=out.json ...   also writes the whole report as JSON

import { writeFileSync } from "node:fs";
import { runLoad, formatReport, DEFAULT_MIX } from "./load.mjs";

function intEnv(name, fallback, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const requests = intEnv("LOAD_REQUESTS", 10_000, 1);
const concurrency = intEnv("LOAD_CONCURRENCY", 64, 1);
const seed = intEnv("LOAD_SEED", 1, 0);
const mix = { ...DEFAULT_MIX };
for (const part of (process.env.LOAD_MIX ?? "").split(",").filter(Boolean)) {
  const [name, weight] = part.split("=");
  if (!(name in DEFAULT_MIX) || !/^\d+$/.test(weight ?? "")) {
    console.error(`LOAD_MIX: "${part}" is not flow=weight with a flow of ${Object.keys(DEFAULT_MIX).join(", ")}`);
    process.exit(2);
  }
  mix[name] = Number(weight);
}

const report = await runLoad({ requests, concurrency, seed, mix, log: (line) => console.log(line) });
console.log(formatReport(report));
if (process.env.LOAD_JSON) writeFileSync(process.env.LOAD_JSON, JSON.stringify(report, null, 2) + "\n");
process.exit(report.ok ? 0 : 1);
