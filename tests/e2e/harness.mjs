// End-to-end harness: the BUILT Worker (build/index.js + build/index_bg.wasm) in the local
// Workers runtime (workerd, through Miniflare), reached over real HTTP like a user would.
//
//   const w = await startWorker({ originUrl, vars });
//   const res = await w.fetch("/Patient", { headers: { authorization: basicAuth("basic", "s3cret") } });
//   await w.admin("PUT", "/Client/basic", { secret: "s3cret", grant_types: ["basic"] });
//   await w.dispose();
//
// Bindings come from wrangler.toml (via wrangler's unstable_getMiniflareWorkerOptions, the same
// path vitest-pool-workers uses), so the tests run against the config that gets deployed. Each
// worker gets a fresh in-memory KV, a generated ADMIN_SECRET and a generated SIGNING_KEY.

import http from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare, Log, LogLevel } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { generateSigningJwk, publicJwk, randomSecret } from "../../scripts/keys.mjs";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CONFIG_PATH = path.join(ROOT, "wrangler.toml");

process.env.WRANGLER_SEND_METRICS ??= "false";
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";

/**
 * Starts the built Worker on 127.0.0.1 with a random port.
 *
 * @param {object} [options]
 * @param {Record<string,string>} [options.vars]  extra vars/secrets (override the defaults)
 * @param {string} [options.originUrl]             sets the ORIGIN_URL var
 * @param {string} [options.adminSecret]           default: random
 * @param {object} [options.signingKey]            private JWK; default: a fresh Ed25519 key
 * @param {string} [options.script]                ES module source to run INSTEAD of the built
 *                                                 Worker (harness self-tests only)
 * @param {boolean} [options.captureLogs]          collect the Worker's console output (workerd's
 *                                                 structured logs) in `w.logs` instead of printing it
 * @param {string} [options.persistDir]            keep KV and Durable Objects in this directory,
 *                                                 so a later Worker on it finds them (default: memory)
 *
 * E2E_WORKER_SCRIPT=path/to/worker.mjs runs every test against that single-file JS Worker instead
 * of the build: a way to check the tests themselves against a model of the spec.
 * E2E_LOG=1 shows Miniflare's debug log.
 */
export async function startWorker({ vars = {}, originUrl, adminSecret, signingKey, noAssets = false, script, captureLogs = false, persistDir } = {}) {
  if (!script && process.env.E2E_WORKER_SCRIPT) script = readFileSync(process.env.E2E_WORKER_SCRIPT, "utf8");
  adminSecret ??= randomSecret(18);
  signingKey ??= await generateSigningJwk();

  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(CONFIG_PATH);
  if (!script && !existsSync(main)) {
    throw new Error(`${path.relative(ROOT, main)} not found: build the Worker first (make build)`);
  }

  const bindings = {
    ...workerOptions.bindings,
    ADMIN_SECRET: adminSecret,
    SIGNING_KEY: JSON.stringify(signingKey),
    ...(originUrl ? { ORIGIN_URL: originUrl } : {}),
    ...vars,
  };

  const code = script
    ? { modules: true, script, scriptPath: path.join(ROOT, "selftest-worker.mjs") }
    : { modules: true, scriptPath: main, modulesRoot: path.dirname(main) };

  /** `{ level, message }` of each console line, when `captureLogs` is set. */
  const logs = [];
  // noAssets: without the www/ assets layer, which Miniflare runs as extra router Workers in
  // front of ours on every request (for measuring the Worker alone; pages then 503).
  const { assets, ...withoutAssets } = workerOptions;
  const mf = new Miniflare({
    ...(noAssets ? withoutAssets : { ...withoutAssets, assets }),
    ...code,
    name: "edge-authorizer",
    bindings,
    // No persistence by default: KV (and everything else) lives in memory and dies with `mf`.
    ...(persistDir ? { kvPersist: path.join(persistDir, "kv"), durableObjectsPersist: path.join(persistDir, "do") } : {}),
    host: "127.0.0.1",
    port: 0,
    cf: false, // do not fetch request.cf data from the network
    // E2E_INSPECTOR_PORT=9229: workerd's DevTools endpoint, e.g. for a CPU profile of the Worker.
    ...(process.env.E2E_INSPECTOR_PORT ? { inspectorPort: Number(process.env.E2E_INSPECTOR_PORT) } : {}),
    log: new Log(process.env.E2E_LOG ? LogLevel.DEBUG : LogLevel.WARN),
    ...(captureLogs ? { handleStructuredLogs: ({ level, message }) => void logs.push({ level, message }) } : {}),
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");

  /** Real HTTP to the Worker. `path` is relative to its URL. Redirects are not followed. */
  const fetchWorker = (p, init = {}) => fetch(new URL(p, url + "/"), { redirect: "manual", ...init });

  /** Admin API call as `root`. A non-string body is sent as JSON. */
  const admin = (method, p, body, headers = {}) => {
    const init = { method, headers: { authorization: basicAuth("root", adminSecret), ...headers } };
    if (body !== undefined) {
      if (typeof body === "string") {
        init.body = body;
      } else {
        init.body = JSON.stringify(body);
        init.headers["content-type"] ??= "application/json";
      }
    }
    return fetchWorker(p, init);
  };

  return {
    url,
    adminSecret,
    signingKey,
    publicKey: publicJwk(signingKey),
    fetch: fetchWorker,
    admin,
    miniflare: mf,
    logs,
    dispose: () => mf.dispose(),
  };
}

/**
 * A stand-in origin API on 127.0.0.1 with a random port. It records every request it gets
 * ({ method, url, headers, body }) and answers 200 JSON `{ origin: true, method, url }`.
 */
export async function startOrigin() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const payload = JSON.stringify({ origin: true, method: req.method, url: req.url });
      res.writeHead(200, { "content-type": "application/json", "x-from-origin": "yes" });
      res.end(payload);
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    last: () => requests.at(-1),
    reset: () => void requests.splice(0),
    dispose: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

// --- helpers for tests ----------------------------------------------------------------------------

/** `Basic base64(id:secret)` */
export function basicAuth(id, secret) {
  return "Basic " + Buffer.from(`${id}:${secret}`, "utf8").toString("base64");
}

/** `application/x-www-form-urlencoded` body. */
export function form(params) {
  return new URLSearchParams(params).toString();
}

export const FORM = { "content-type": "application/x-www-form-urlencoded" };
export const JSON_CT = { "content-type": "application/json" };

/** Reads a response body as JSON; on failure the error shows status and text. */
export async function json(res) {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`expected JSON, got ${res.status} ${res.headers.get("content-type")}: ${text.slice(0, 500)}`);
  }
}

/** Decodes a compact JWS without verifying it: { header, payload, signingInput, signature }. */
export function decodeJwt(token) {
  const parts = String(token).split(".");
  if (parts.length !== 3) throw new Error(`not a compact JWT: ${token}`);
  const part = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  return {
    header: part(parts[0]),
    payload: part(parts[1]),
    signingInput: `${parts[0]}.${parts[1]}`,
    signature: Buffer.from(parts[2], "base64url"),
  };
}

/** Verifies an EdDSA (Ed25519) JWT signature against a public JWK with WebCrypto. */
export async function verifyEdDsa(token, jwk) {
  const { signingInput, signature } = decodeJwt(token);
  const key = await webcrypto.subtle.importKey(
    "jwk",
    { kty: "OKP", crv: "Ed25519", x: jwk.x },
    { name: "Ed25519" },
    false,
    ["verify"],
  );
  return webcrypto.subtle.verify({ name: "Ed25519" }, key, signature, new TextEncoder().encode(signingInput));
}
