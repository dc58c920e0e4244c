// `make deploy` end to end with the REAL wrangler (node_modules, the pinned 4.86) and the real
// build, against a local stand-in for the Cloudflare API (cloudflare-api.mjs): what wrangler
// itself does with the id-less KV binding and with the secrets file, on a first and a second
// deploy. Offline: HOME is empty (no login of this machine is used), the API token is a dummy,
// and every host but 127.0.0.1 goes to a proxy that refuses connections.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startCloudflareApi } from "./cloudflare-api.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

let api;
let home;
before(async () => {
  api = await startCloudflareApi();
  home = mkdtempSync(path.join(tmpdir(), "deploy-real-"));
});
after(async () => {
  await api?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

function deploy() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(CLOUDFLARE_|CF_|WRANGLER_OUTPUT)/.test(k) || /^(ADMIN_SECRET|CI|WRANGLER|DRY_RUN)$/.test(k) || /_proxy$/i.test(k)) delete env[k];
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    TMPDIR: home,
    CLOUDFLARE_API_TOKEN: "dummy-token-for-the-local-stand-in",
    CLOUDFLARE_API_BASE_URL: api.baseUrl,
    https_proxy: "http://127.0.0.1:9",
    HTTPS_PROXY: "http://127.0.0.1:9",
    http_proxy: "http://127.0.0.1:9",
    HTTP_PROXY: "http://127.0.0.1:9",
    no_proxy: "127.0.0.1,localhost",
    NO_PROXY: "127.0.0.1,localhost",
  });
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [path.join(ROOT, "scripts", "deploy.sh")], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`deploy.sh did not finish in 120 s\n${out}`));
    }, 120_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

const kvCreates = () => api.requests.filter((r) => r === "POST /accounts/acc1/storage/kv/namespaces").length;
const binding = (meta, name) => meta.bindings.find((b) => b.name === name);

test("first, then second `make deploy` with wrangler 4.86: one namespace, secrets once, the URL, wrangler.toml untouched", async () => {
  assert.ok(existsSync(path.join(ROOT, "build", "index.js")), "build/index.js missing: run 'make build'");
  const toml = readFileSync(path.join(ROOT, "wrangler.toml"));

  // first deploy
  const r1 = await deploy();
  assert.equal(r1.status, 0, r1.out);
  assert.deepEqual(api.unknown, [], "wrangler called routes the stand-in does not know");
  assert.equal(kvCreates(), 1, "the namespace is created once");
  assert.deepEqual(api.state.kv.map((n) => n.title), ["edge-authorizer-resources"]);
  assert.equal(api.uploads.length, 1);
  const first = api.uploads[0];
  assert.deepEqual(binding(first, "RESOURCES"), { name: "RESOURCES", type: "kv_namespace", namespace_id: api.state.kv[0].id });
  const signing = JSON.parse(binding(first, "SIGNING_KEY").text);
  assert.equal(signing.kty, "OKP");
  assert.ok(signing.d && signing.x && signing.kid);
  const admin = binding(first, "ADMIN_SECRET").text;
  assert.match(admin, /^[A-Za-z0-9_-]{43}$/);
  assert.match(r1.out, new RegExp(`URL: ${api.workerUrl.replace(/[.]/g, "\\.")} `));
  assert.equal(r1.out.split(admin).length - 1, 1, "the generated admin secret is shown once");
  assert.ok(!r1.out.includes(signing.d), "the private key is not printed");
  assert.ok(readFileSync(path.join(ROOT, "wrangler.toml")).equals(toml), "wrangler.toml is not rewritten");

  // second deploy: nothing provisioned, no secret sent, the namespace inherited
  const before = api.requests.length;
  const r2 = await deploy();
  assert.equal(r2.status, 0, r2.out);
  assert.deepEqual(api.unknown, []);
  assert.equal(kvCreates(), 1, "no second namespace");
  assert.equal(api.uploads.length, 2);
  const second = api.uploads[1];
  assert.deepEqual(binding(second, "RESOURCES"), { name: "RESOURCES", type: "inherit" });
  assert.ok(!second.bindings.some((b) => b.type === "secret_text"), "no secret in the second upload");
  assert.deepEqual(Object.keys(api.state.secrets).sort(), ["ADMIN_SECRET", "SIGNING_KEY"]);
  assert.equal(api.state.secrets.SIGNING_KEY, binding(first, "SIGNING_KEY").text, "the key is unchanged");
  assert.ok(!api.requests.slice(before).some((r) => r.includes("/secrets") && !r.startsWith("GET")));
  assert.match(r2.out, /SIGNING_KEY is set: kept/);
  assert.match(r2.out, new RegExp(`URL: ${api.workerUrl.replace(/[.]/g, "\\.")} `));
  assert.doesNotMatch(r2.out, /generated/);
  assert.ok(readFileSync(path.join(ROOT, "wrangler.toml")).equals(toml));
  assert.deepEqual(readdirSync(home).filter((f) => f.startsWith("edge-authorizer-deploy")), [], "temp files removed");
});
