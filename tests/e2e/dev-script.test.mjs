// `make dev` (scripts/dev.sh) takes PORT, ADMIN_SECRET and ORIGIN_URL from the environment
// (issue 11 section 3). The script runs in a scratch copy of the repository whose
// node_modules/.bin/wrangler is a stub that records its arguments: .dev.vars is written there,
// and no server is started.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "./harness.mjs";

let dir;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), "dev-script-"));
  mkdirSync(path.join(dir, "scripts"));
  for (const f of ["dev.sh", "lib.sh", "keys.mjs", "gen-key.mjs"]) copyFileSync(path.join(ROOT, "scripts", f), path.join(dir, "scripts", f));
  mkdirSync(path.join(dir, "build"));
  writeFileSync(path.join(dir, "build", "index.js"), "");
  mkdirSync(path.join(dir, "node_modules", ".bin"), { recursive: true });
  const stub = path.join(dir, "node_modules", ".bin", "wrangler");
  writeFileSync(stub, `#!/bin/sh\nprintf '%s\\n' "$@" > "${path.join(dir, "wrangler-args")}"\n`);
  chmodSync(stub, 0o755);
});
after(() => dir && rmSync(dir, { recursive: true, force: true }));

/** Runs scripts/dev.sh with `env`; `args` are what it passed to wrangler. */
function dev(env) {
  const clean = { ...process.env };
  for (const k of ["ORIGIN_URL", "ADMIN_SECRET", "PORT"]) delete clean[k];
  const argsFile = path.join(dir, "wrangler-args");
  rmSync(argsFile, { force: true });
  const r = spawnSync("bash", [path.join(dir, "scripts", "dev.sh")], {
    env: { ...clean, TOOLS_DIR: path.join(dir, ".tools"), ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  const args = existsSync(argsFile) ? readFileSync(argsFile, "utf8").trimEnd().split("\n") : [];
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, args };
}

test("make dev: ORIGIN_URL from the environment becomes the Worker's ORIGIN_URL var", () => {
  const r = dev({ ORIGIN_URL: "http://127.0.0.1:9999/fhir", PORT: "8799" });
  assert.equal(r.status, 0, r.stderr);
  const i = r.args.indexOf("ORIGIN_URL:http://127.0.0.1:9999/fhir");
  assert.ok(i > 0 && r.args[i - 1] === "--var", r.args.join(" "));
  assert.deepEqual(r.args.slice(0, 3), ["dev", "--ip", "127.0.0.1"]);
  assert.equal(r.args[r.args.indexOf("--port") + 1], "8799");
  assert.match(r.stdout, /origin: http:\/\/127\.0\.0\.1:9999\/fhir \(from the ORIGIN_URL environment variable\)/);
  // The secrets file is written once, with the secrets only (ORIGIN_URL is per run).
  const vars = readFileSync(path.join(dir, ".dev.vars"), "utf8");
  assert.match(vars, /^ADMIN_SECRET=\S+$/m);
  assert.match(vars, /^SIGNING_KEY='\{.*"kty":"OKP".*\}'$/m);
  assert.doesNotMatch(vars, /ORIGIN_URL/);
  assert.equal(statSync(path.join(dir, ".dev.vars")).mode & 0o077, 0, ".dev.vars is private");
});

test("make dev: without ORIGIN_URL the demo origin answers; ADMIN_SECRET from the environment is passed", () => {
  const r = dev({ ADMIN_SECRET: "from-env-secret" });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!r.args.some((a) => a.startsWith("ORIGIN_URL:")), r.args.join(" "));
  assert.ok(r.args.includes("ADMIN_SECRET:from-env-secret"), r.args.join(" "));
  assert.equal(r.args[r.args.indexOf("--port") + 1], "8787");
  assert.match(r.stdout, /origin: the built-in demo FHIR origin/);
});

test("make dev: an ORIGIN_URL that is not an http(s) URL stops the script with a clear error", () => {
  for (const bad of ["ftp://x.example", "127.0.0.1:8080", "http://a b"]) {
    const r = dev({ ORIGIN_URL: bad });
    assert.notEqual(r.status, 0, bad);
    assert.match(r.stderr, /ORIGIN_URL must be an http\(s\) URL/, bad);
    assert.equal(r.args.length, 0);
  }
});
