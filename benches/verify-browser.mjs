// Verifications per second in headless Chromium: the verifier package (build/verifier, Rust ->
// wasm, signatures through WebCrypto) against panva's `jose` (WebCrypto too), on the same tokens
// in the same page, for EdDSA (Ed25519) and ES256 (P-256). Tokens and keys are made here in node.
//
//   scripts/build-browser.sh && node benches/verify-browser.mjs [seconds per case, default 2]
//
// Each case verifies one token in a loop (one await after the other) for the given time after a
// warm-up; both libraries check signature, exp/nbf, iss and aud, with the key already imported
// (ours caches the CryptoKey by kid; jose gets a local JWKS, and also a pre-imported key).
import http from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generateKeyPairSync, sign as nodeSign } from "node:crypto";
import { launchBrowser } from "../tests/browser/helpers.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PKG = path.join(ROOT, "build/verifier");
const JOSE = path.join(ROOT, "node_modules/jose/dist/webapi");
const SECONDS = Number(process.argv[2] ?? 2);

if (!existsSync(path.join(PKG, "edge_authorizer_bg.wasm"))) {
  console.error("build/verifier missing: run scripts/build-browser.sh");
  process.exit(1);
}
if (!existsSync(path.join(JOSE, "index.js"))) {
  console.error("node_modules/jose missing: run npm ci");
  process.exit(1);
}

const b64url = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
const ISS = "https://issuer.bench";
const AUD = "https://api.bench";

function makeCase(alg) {
  const { privateKey, publicKey } =
    alg === "EdDSA" ? generateKeyPairSync("ed25519") : generateKeyPairSync("ec", { namedCurve: "P-256" });
  const kid = `bench-${alg}`;
  const jwk = { ...publicKey.export({ format: "jwk" }), kid, alg, use: "sig" };
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: ISS, aud: AUD, sub: "alice", client_id: "bench", scope: "openid profile", iat: now, exp: now + 3600, jti: "j1" };
  const input = `${b64url({ alg, typ: "at+jwt", kid })}.${b64url(claims)}`;
  const sig =
    alg === "EdDSA"
      ? nodeSign(null, Buffer.from(input), privateKey)
      : nodeSign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" });
  return { alg, jwks: { keys: [jwk] }, token: `${input}.${sig.toString("base64url")}` };
}

const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  let file;
  if (url.pathname === "/") file = null;
  else if (url.pathname.startsWith("/pkg/")) file = path.join(PKG, url.pathname.slice(5));
  else if (url.pathname.startsWith("/jose/")) file = path.join(JOSE, url.pathname.slice(6));
  if (file !== undefined && file !== null && !file.startsWith(PKG) && !file.startsWith(JOSE)) file = undefined;
  try {
    const body = file === null ? "<!doctype html><title>bench</title>" : await readFile(file);
    res.writeHead(200, { "content-type": TYPES[file === null ? ".html" : path.extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  const version = await browser.version();
  const cases = [makeCase("EdDSA"), makeCase("ES256")];
  const rows = [];
  for (const c of cases) {
    const result = await page.evaluate(
      async ({ c, seconds, ISS, AUD }) => {
        const pkg = await import("/pkg/edge_authorizer.js");
        await pkg.default();
        const jose = await import("/jose/index.js");
        const ours = pkg.Verifier.fromJwks(c.jwks, { issuer: ISS, audience: AUD, typ: "at+jwt" });
        const localSet = jose.createLocalJWKSet(c.jwks);
        const key = await jose.importJWK(c.jwks.keys[0], c.alg);
        const opts = { issuer: ISS, audience: AUD, typ: "at+jwt", algorithms: [c.alg] };
        // Baseline: the signature check alone, bytes decoded beforehand (no JWT parsing at all).
        const [h, p, sg] = c.token.split(".");
        const data = new TextEncoder().encode(`${h}.${p}`);
        const sigBytes = Uint8Array.from(atob(sg.replace(/-/g, "+").replace(/_/g, "/")), (ch) => ch.charCodeAt(0));
        const webAlg = c.alg === "EdDSA" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
        const rawKey = await crypto.subtle.importKey("jwk", c.jwks.keys[0], webAlg, false, ["verify"]);
        const runners = {
          "edge-authorizer (Verifier.fromJwks)": () => ours.verify(c.token),
          "jose jwtVerify + createLocalJWKSet": () => jose.jwtVerify(c.token, localSet, opts),
          "jose jwtVerify + imported key": () => jose.jwtVerify(c.token, key, opts),
          "(baseline: crypto.subtle.verify only)": async () => {
            if (!(await crypto.subtle.verify(webAlg, rawKey, sigBytes, data))) throw new Error("baseline");
            return { sub: "alice" };
          },
        };
        async function measure(fn, ms) {
          let n = 0;
          const end = performance.now() + ms;
          while (performance.now() < end) {
            for (let i = 0; i < 50; i++) await fn();
            n += 50;
          }
          return n;
        }
        const out = {};
        for (const [name, fn] of Object.entries(runners)) {
          const claims = await fn();
          if (!(claims.sub === "alice" || claims.payload?.sub === "alice")) throw new Error(`${name} did not verify`);
          await measure(fn, 300); // warm-up: JIT, key import, wasm tier-up
        }
        // Interleave two rounds so neither library gets a systematically warmer machine.
        for (let round = 0; round < 2; round++) {
          for (const [name, fn] of Object.entries(runners)) {
            const t0 = performance.now();
            const n = await measure(fn, (seconds * 1000) / 2);
            const t = performance.now() - t0;
            out[name] ??= { n: 0, t: 0 };
            out[name].n += n;
            out[name].t += t;
          }
        }
        return out;
      },
      { c: { alg: c.alg, jwks: c.jwks, token: c.token }, seconds: SECONDS, ISS, AUD },
    );
    for (const [name, { n, t }] of Object.entries(result)) {
      rows.push({ alg: c.alg, library: name, perSecond: Math.round((n / t) * 1000), usPerOp: ((t / n) * 1000).toFixed(1) });
    }
  }

  const wasm = await readFile(path.join(PKG, "edge_authorizer_bg.wasm"));
  const { gzipSync } = await import("node:zlib");
  console.log(`Headless Chromium ${version}, ${SECONDS} s per case, one token verified in a loop`);
  console.log(`package wasm: ${wasm.length} bytes raw, ${gzipSync(wasm, { level: 9 }).length} bytes gzipped\n`);
  const w = [5, 38, 14, 9];
  const line = (cells) => "| " + cells.map((c, i) => String(c).padEnd(w[i])).join(" | ") + " |";
  console.log(line(["alg", "library", "verify/s", "us/op"]));
  console.log("|" + w.map((n) => "-".repeat(n + 2)).join("|") + "|");
  for (const r of rows) console.log(line([r.alg, r.library, r.perSecond.toLocaleString("en-US"), r.usPerOp]));
} finally {
  await browser.close();
  server.close();
}
