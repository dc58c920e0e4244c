// `make deploy` (scripts/deploy.sh) against a stand-in wrangler (fake-wrangler.mjs), offline.
// The script runs in a scratch copy of the repository (scripts/, wrangler.toml, an empty
// build/index.js) with WRANGLER pointing at the stand-in; `node` on PATH is a shim that records
// its arguments, so a secret on any node command line is seen. The Worker's URL is a local HTTP
// server, so the "is it running" probe is real.
//
// Its stdin is a pipe that is never closed: a script that waited for input would hang, and the
// test would fail on its timeout instead of passing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import http from "node:http";
import { webcrypto } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { okpThumbprint } from "../../scripts/keys.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FAKE = path.join(ROOT, "tests/deploy/fake-wrangler.mjs");

let repo; // scratch copy of the repository
let bin; // PATH entry with the node shim
let server;
let url;
let probes = 0;

before(async () => {
  repo = mkdtempSync(path.join(tmpdir(), "deploy-script-"));
  mkdirSync(path.join(repo, "scripts"));
  for (const f of ["deploy.sh", "lib.sh", "keys.mjs"]) copyFileSync(path.join(ROOT, "scripts", f), path.join(repo, "scripts", f));
  copyFileSync(path.join(ROOT, "wrangler.toml"), path.join(repo, "wrangler.toml"));
  mkdirSync(path.join(repo, "build"));
  writeFileSync(path.join(repo, "build", "index.js"), "");
  bin = path.join(repo, "shim-bin");
  mkdirSync(bin);
  writeFileSync(
    path.join(bin, "node"),
    `#!/bin/bash\nprintf '%s\\0' "$@" >>"$FAKE_WRANGLER_DIR/node-argv"; printf '\\n' >>"$FAKE_WRANGLER_DIR/node-argv"\nexec ${JSON.stringify(process.execPath)} "$@"\n`,
  );
  chmodSync(path.join(bin, "node"), 0o755);
  server = http.createServer((req, res) => {
    probes++;
    res.writeHead(req.url === "/.well-known/openid-configuration" ? 200 : 404).end("{}");
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${server.address().port}`;
});
after(async () => {
  if (repo) rmSync(repo, { recursive: true, force: true });
  await new Promise((r) => server.close(r));
});

/** A fresh account: logged in, one account, no Worker, no namespaces (override with `state`). */
function account(state = {}) {
  const dir = mkdtempSync(path.join(repo, "account-"));
  writeFileSync(
    path.join(dir, "state.json"),
    JSON.stringify({ loggedIn: true, email: "me@example.com", accounts: [{ id: "acc1", name: "Mine" }], worker: null, kv: [], url, ...state }),
  );
  return dir;
}

const readState = (dir) => JSON.parse(readFileSync(path.join(dir, "state.json"), "utf8"));
const calls = (dir) =>
  existsSync(path.join(dir, "calls.ndjson"))
    ? readFileSync(path.join(dir, "calls.ndjson"), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l))
    : [];
const nodeArgv = (dir) => (existsSync(path.join(dir, "node-argv")) ? readFileSync(path.join(dir, "node-argv"), "utf8") : "");
const deploys = (dir) => calls(dir).filter((c) => c.argv[0] === "deploy");

/** Runs scripts/deploy.sh (stdin: an open pipe, not a terminal). */
function deploy(dir, { env = {}, args = [] } = {}) {
  const clean = { ...process.env };
  for (const k of ["ADMIN_SECRET", "CLOUDFLARE_ACCOUNT_ID", "DRY_RUN", "CI", "WRANGLER_OUTPUT_FILE_PATH"]) delete clean[k];
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [path.join(repo, "scripts", "deploy.sh"), ...args], {
      cwd: repo,
      env: { ...clean, PATH: `${bin}:${process.env.PATH}`, TOOLS_DIR: path.join(repo, ".tools"), WRANGLER: FAKE, FAKE_WRANGLER_DIR: dir, TMPDIR: dir, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`deploy.sh did not finish in 30 s (waiting for input?)\n${stdout}\n${stderr}`));
    }, 30_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, all: stdout + stderr });
    });
  });
}

/** A private Ed25519 JWK that signs, whose x is its public half and whose kid is its thumbprint. */
async function assertSigningJwk(text) {
  const jwk = JSON.parse(text);
  assert.equal(jwk.kty, "OKP");
  assert.equal(jwk.crv, "Ed25519");
  assert.equal(jwk.alg, "EdDSA");
  assert.match(jwk.d, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(jwk.kid, await okpThumbprint(jwk));
  const priv = await webcrypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", d: jwk.d, x: jwk.x }, { name: "Ed25519" }, false, ["sign"]);
  const pub = await webcrypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, false, ["verify"]);
  const msg = new TextEncoder().encode("probe");
  assert.ok(await webcrypto.subtle.verify({ name: "Ed25519" }, pub, await webcrypto.subtle.sign({ name: "Ed25519" }, priv, msg), msg));
  return jwk;
}

const count = (haystack, needle) => haystack.split(needle).length - 1;

function assertNoSecretOnCommandLines(dir, ...secrets) {
  const lines = [...calls(dir).map((c) => c.argv.join(" ")), nodeArgv(dir)].join("\n");
  for (const s of secrets) assert.ok(!lines.includes(s), "a secret was on a command line");
}

test("first deploy: SIGNING_KEY and a generated ADMIN_SECRET go with the deploy, the URL is printed, the secret shown once", async () => {
  const dir = account();
  const r = await deploy(dir);
  assert.equal(r.status, 0, r.all);

  // whoami, secret list, (leftover namespace check), one deploy with a secrets file
  const cs = calls(dir);
  assert.deepEqual(cs.map((c) => c.argv.slice(0, 2).join(" ")), ["whoami --json", "secret list", "kv namespace", "deploy --secrets-file"]);
  assert.ok(cs.slice(1).every((c) => c.env.CLOUDFLARE_ACCOUNT_ID === "acc1"), "the only account is used after whoami");
  const [d] = deploys(dir);
  assert.equal(d.secretsFile.mode, 0o600, "the secrets file is private");
  const uploaded = JSON.parse(d.secretsFile.content);
  assert.deepEqual(Object.keys(uploaded).sort(), ["ADMIN_SECRET", "SIGNING_KEY"]);
  const jwk = await assertSigningJwk(uploaded.SIGNING_KEY);
  assert.match(uploaded.ADMIN_SECRET, /^[A-Za-z0-9_-]{43}$/);

  // the temp files are gone
  assert.ok(!existsSync(d.argv[2]), "the secrets file is removed");
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith("edge-authorizer-deploy")), []);

  // the fake account now has the Worker, its secrets and the provisioned namespace
  const st = readState(dir);
  assert.equal(st.worker.secrets.SIGNING_KEY, uploaded.SIGNING_KEY);
  assert.deepEqual(st.kv.map((n) => n.title), ["edge-authorizer-resources"]);

  // the URL, from wrangler's output file, and the probe of the running Worker
  assert.match(r.stdout, new RegExp(`URL: ${url.replace(/[.]/g, "\\.")} `));
  assert.match(r.stdout, /running: GET .*openid-configuration answered 200/);
  assert.match(r.stdout, /ISSUER is not set/);

  // the admin secret: shown exactly once; the key never
  assert.equal(count(r.all, uploaded.ADMIN_SECRET), 1, r.all);
  assert.ok(!r.all.includes(jwk.d), "the private key is not printed");
  assertNoSecretOnCommandLines(dir, uploaded.ADMIN_SECRET, jwk.d);
});

test("second deploy: no key made, no secret sent, no prompt; only the code is deployed", async () => {
  const dir = account();
  assert.equal((await deploy(dir)).status, 0);
  const before = readState(dir).worker.secrets;
  const first = calls(dir).length;

  const r = await deploy(dir);
  assert.equal(r.status, 0, r.all);
  const second = calls(dir).slice(first);
  assert.deepEqual(second.map((c) => c.argv.join(" ")), ["whoami --json", "secret list --format json", "deploy"]);
  assert.ok(!second.some((c) => c.argv[0] === "secret" && c.argv[1] === "put"));
  assert.deepEqual(readState(dir).worker.secrets, before, "secrets unchanged");
  assert.equal(readState(dir).kv.length, 1, "no second namespace");
  assert.match(r.stderr, /SIGNING_KEY is set: kept/);
  assert.match(r.stderr, /ADMIN_SECRET is set: kept/);
  assert.doesNotMatch(r.all, /generated/);
  assert.ok(!r.all.includes(before.ADMIN_SECRET));
  assert.match(r.stdout, /URL: http:\/\/127\.0\.0\.1/);
});

test("an existing SIGNING_KEY is never replaced: only the missing ADMIN_SECRET is sent", async () => {
  const dir = account({ worker: { secrets: { SIGNING_KEY: "the-old-key" } }, kv: [{ id: "a".repeat(32), title: "edge-authorizer-resources" }] });
  const r = await deploy(dir, { env: { ADMIN_SECRET: "from-the-environment-0123456789" } });
  assert.equal(r.status, 0, r.all);
  const [d] = deploys(dir);
  assert.deepEqual(JSON.parse(d.secretsFile.content), { ADMIN_SECRET: "from-the-environment-0123456789" });
  assert.equal(readState(dir).worker.secrets.SIGNING_KEY, "the-old-key");
  assert.ok(!r.all.includes("from-the-environment-0123456789"), "a given secret is not echoed");
  assert.match(r.stderr, /ADMIN_SECRET: from the environment/);
  assertNoSecretOnCommandLines(dir, "from-the-environment-0123456789");
});

test("ADMIN_SECRET in the environment that is the dev secret of .dev.vars, or short, is refused: nothing deployed", async () => {
  // The docs export the dev secret for `make dev`; a later `make deploy` in that shell must not
  // make it the deployed root password (it sits in plain text in .dev.vars).
  const dev = "dev-secret-from-dot-dev-vars-0123";
  writeFileSync(path.join(repo, ".dev.vars"), `# dev\nADMIN_SECRET=${dev}\nSIGNING_KEY='{}'\n`);
  try {
    const dir = account();
    const r = await deploy(dir, { env: { ADMIN_SECRET: dev } });
    assert.notEqual(r.status, 0, r.all);
    assert.match(r.all, /is the dev secret of \.dev\.vars/);
    assert.equal(deploys(dir).length, 0);
    const short = account();
    const s = await deploy(short, { env: { ADMIN_SECRET: "short-one" } });
    assert.notEqual(s.status, 0, s.all);
    assert.match(s.all, /shorter than 16 characters/);
    assert.equal(deploys(short).length, 0);
  } finally {
    rmSync(path.join(repo, ".dev.vars"), { force: true });
  }
});

test("ADMIN_SECRET in the environment does not replace the one the Worker has", async () => {
  const dir = account({ worker: { secrets: { SIGNING_KEY: "k", ADMIN_SECRET: "old-admin" } } });
  const r = await deploy(dir, { env: { ADMIN_SECRET: "new-admin-secret-0123456789" } });
  assert.equal(r.status, 0, r.all);
  assert.deepEqual(deploys(dir)[0].argv, ["deploy"]);
  assert.equal(readState(dir).worker.secrets.ADMIN_SECRET, "old-admin");
  assert.match(r.stderr, /ADMIN_SECRET is already set on the Worker: kept/);
});

test("not logged in: a clear message, nothing listed, nothing deployed", async () => {
  const dir = account({ loggedIn: false });
  const r = await deploy(dir);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /not logged in to Cloudflare\. Run 'npx wrangler login'/);
  assert.deepEqual(calls(dir).map((c) => c.argv[0]), ["whoami"]);
});

test("secrets that cannot be listed (not 'Worker not found'): no key is made, nothing deployed", async () => {
  const dir = account({ worker: { secrets: { SIGNING_KEY: "k", ADMIN_SECRET: "a" } }, failSecretList: true });
  const r = await deploy(dir);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /could not list the Worker's secrets/);
  assert.equal(deploys(dir).length, 0);
});

test("a secret list that is not JSON (exit 0): no key is made, nothing deployed", async () => {
  const dir = account({ worker: { secrets: { SIGNING_KEY: "k", ADMIN_SECRET: "a" } }, garbledSecretList: true });
  const r = await deploy(dir);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /could not read the list of secrets/);
  assert.equal(deploys(dir).length, 0);
  assert.equal(readState(dir).worker.secrets.SIGNING_KEY, "k");
});

test("several accounts without a terminal: stop and name them; CLOUDFLARE_ACCOUNT_ID picks one", async () => {
  const accounts = [{ id: "acc1", name: "One" }, { id: "acc2", name: "Two" }];
  const dir = account({ accounts });
  const r = await deploy(dir);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /2 accounts: set CLOUDFLARE_ACCOUNT_ID/);
  assert.match(r.stderr, /acc2 Two/);
  assert.equal(deploys(dir).length, 0);

  const dir2 = account({ accounts });
  const r2 = await deploy(dir2, { env: { CLOUDFLARE_ACCOUNT_ID: "acc2" } });
  assert.equal(r2.status, 0, r2.all);
  assert.ok(calls(dir2).every((c) => c.env.CLOUDFLARE_ACCOUNT_ID === "acc2"));
  assert.equal(deploys(dir2).length, 1);
});

test("a namespace left from an earlier deploy: say how to keep or drop it, before making any secret", async () => {
  const id = "b".repeat(32);
  const dir = account({ kv: [{ id, title: "edge-authorizer-resources" }] });
  const r = await deploy(dir);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`id = "${id}"`));
  assert.match(r.stderr, /kv namespace delete edge-authorizer-resources/);
  assert.equal(deploys(dir).length, 0);
  assert.doesNotMatch(r.all, /generated/);
});

test("a failed deploy: non-zero, the secrets file removed, the unused generated secret not shown", async () => {
  const dir = account({ failDeploy: true });
  const r = await deploy(dir);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /wrangler deploy failed/);
  const [d] = deploys(dir);
  assert.ok(!existsSync(d.argv[2]));
  assert.ok(!r.all.includes(JSON.parse(d.secretsFile.content).ADMIN_SECRET));
  assert.equal(readState(dir).worker, null);
});

test("the URL from wrangler's printed output when there is no output file", async () => {
  const dir = account({ noOutputFile: true, worker: { secrets: { SIGNING_KEY: "k", ADMIN_SECRET: "a" } } });
  const r = await deploy(dir);
  assert.equal(r.status, 0, r.all);
  assert.match(r.stdout, new RegExp(`URL: ${url.replace(/[.]/g, "\\.")} `));
});

test("dry run (DRY_RUN=1 or --dry-run): the plan and `wrangler deploy --dry-run`, no call to the account", async () => {
  for (const opts of [{ env: { DRY_RUN: "1" } }, { args: ["--dry-run"] }]) {
    const dir = account({ loggedIn: false });
    const r = await deploy(dir, opts);
    assert.equal(r.status, 0, r.all);
    const cs = calls(dir);
    assert.equal(cs.length, 1);
    assert.deepEqual(cs[0].argv.slice(0, 3), ["deploy", "--dry-run", "--outdir"]);
    // the secrets file of a first deploy, with throwaway values, checked by wrangler too
    assert.equal(cs[0].secretsFile.mode, 0o600);
    const uploaded = JSON.parse(cs[0].secretsFile.content);
    await assertSigningJwk(uploaded.SIGNING_KEY);
    assert.ok(!r.all.includes(uploaded.ADMIN_SECRET) && !r.all.includes(JSON.parse(uploaded.SIGNING_KEY).d));
    assert.match(r.stdout, /deploy plan for Worker "edge-authorizer"/);
    assert.match(r.stdout, /dry run done: nothing was deployed/);
  }
});

/** Runs scripts/deploy.sh on a terminal (util-linux `script` makes the pty); `answers` are
 * [prompt regexp, line] pairs, each line typed only once its prompt has appeared. */
function deployOnTerminal(dir, answers, env = {}) {
  const clean = { ...process.env };
  for (const k of ["ADMIN_SECRET", "CLOUDFLARE_ACCOUNT_ID", "DRY_RUN", "CI", "WRANGLER_OUTPUT_FILE_PATH"]) delete clean[k];
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qefc", `bash ${path.join(repo, "scripts", "deploy.sh")}`, "/dev/null"], {
      cwd: repo,
      env: { ...clean, PATH: `${bin}:${process.env.PATH}`, TOOLS_DIR: path.join(repo, ".tools"), WRANGLER: FAKE, FAKE_WRANGLER_DIR: dir, TMPDIR: dir, TERM: "dumb", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let seen = 0; // characters of `out` already matched against a prompt
    const pending = [...answers];
    child.stdout.on("data", (d) => {
      out += d;
      while (pending.length && pending[0][0].test(out.slice(seen))) {
        const m = pending[0][0].exec(out.slice(seen));
        seen += m.index + m[0].length;
        child.stdin.write(pending.shift()[1] + "\r");
      }
    });
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`deploy.sh on a terminal did not finish in 30 s\n${out}`));
    }, 30_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, out, unanswered: pending.length });
    });
  });
}

const hasScript = spawnSyncOk("script", ["--version"]);
function spawnSyncOk(cmd, args) {
  try {
    return spawnSync(cmd, args, { stdio: "ignore" }).status === 0;
  } catch {
    return false;
  }
}

test("on a terminal: ADMIN_SECRET is asked for, hidden, twice; a short one is refused; it is never shown", { skip: !hasScript && "util-linux `script` missing" }, async () => {
  const dir = account();
  const typed = "typed-admin-secret-0123456789";
  const r = await deployOnTerminal(dir, [
    [/press Enter to generate one: /, "short"],
    [/press Enter to generate one: /, typed],
    [/Again: /, typed],
  ]);
  assert.equal(r.status, 0, r.out);
  assert.equal(r.unanswered, 0, r.out);
  assert.match(r.out, /too short/);
  const [d] = deploys(dir);
  const uploaded = JSON.parse(d.secretsFile.content);
  assert.equal(uploaded.ADMIN_SECRET, typed);
  await assertSigningJwk(uploaded.SIGNING_KEY);
  assert.ok(!r.out.includes(typed), "the typed secret is not echoed or printed");
  assert.doesNotMatch(r.out, /generated/);
  assertNoSecretOnCommandLines(dir, typed);
});

test("on a terminal: Enter generates the ADMIN_SECRET, shown once; several accounts are offered to pick from", { skip: !hasScript && "util-linux `script` missing" }, async () => {
  const dir = account({ accounts: [{ id: "acc1", name: "One" }, { id: "acc2", name: "Two" }] });
  const r = await deployOnTerminal(dir, [
    [/Deploy to which one\? \[1-2\] /, "2"],
    [/press Enter to generate one: /, ""],
  ]);
  assert.equal(r.status, 0, r.out);
  assert.equal(r.unanswered, 0, r.out);
  assert.ok(calls(dir).slice(1).every((c) => c.env.CLOUDFLARE_ACCOUNT_ID === "acc2"));
  const uploaded = JSON.parse(deploys(dir)[0].secretsFile.content);
  assert.match(uploaded.ADMIN_SECRET, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(count(r.out, uploaded.ADMIN_SECRET), 1, r.out);
});

test("on a terminal with CI=true: no question; the ADMIN_SECRET is generated", { skip: !hasScript && "util-linux `script` missing" }, async () => {
  const dir = account();
  const r = await deployOnTerminal(dir, [], { CI: "true" });
  assert.equal(r.status, 0, r.out);
  assert.doesNotMatch(r.out, /Type one|Deploy to which one/);
  assert.match(r.out, /ADMIN_SECRET: generated/);
});

// The real wrangler (node_modules, the pinned 4.86) on the real wrangler.toml and build: the
// id-less KV binding and the secrets file deploy.sh writes are accepted.
test("the real wrangler accepts the config and the secrets file: scripts/deploy.sh --dry-run", async () => {
  assert.ok(existsSync(path.join(ROOT, "build", "index.js")), "build/index.js missing: run 'make build'");
  const toml = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  const kv = /\[\[kv_namespaces\]\]\n([^[]*)/.exec(toml)[1];
  assert.match(kv, /^binding = "RESOURCES"$/m);
  assert.doesNotMatch(kv, /^\s*id\s*=/m, "no id (placeholder or real) in wrangler.toml");

  const clean = { ...process.env };
  for (const k of ["WRANGLER", "ADMIN_SECRET", "CI"]) delete clean[k];
  const tmp = mkdtempSync(path.join(tmpdir(), "deploy-dry-"));
  try {
    const r = spawnSync("bash", [path.join(ROOT, "scripts", "deploy.sh"), "--dry-run"], {
      cwd: ROOT,
      env: { ...clean, TMPDIR: tmp },
      encoding: "utf8",
      timeout: 120_000,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const all = r.stdout + r.stderr;
    assert.equal(r.status, 0, all);
    assert.match(all, /env\.RESOURCES\s+KV Namespace/);
    assert.match(all, /env\.SIGNING_KEY \("\(hidden\)"\)\s+Environment Variable/);
    assert.match(all, /env\.ADMIN_SECRET \("\(hidden\)"\)\s+Environment Variable/);
    assert.match(all, /--dry-run: exiting now/);
    assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith("edge-authorizer-deploy")), [], "the temp files are removed");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("a custom domain in wrangler's targets is printed as its https URL", async () => {
  const dir = account({ url: "auth.example.invalid (custom domain)", worker: { secrets: { SIGNING_KEY: "k", ADMIN_SECRET: "a" } } });
  const r = await deploy(dir);
  assert.equal(r.status, 0, r.all);
  assert.match(r.stdout, /URL: https:\/\/auth\.example\.invalid /);
  assert.match(r.stdout, /not answering yet/);
});
