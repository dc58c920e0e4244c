// The wasm side of the wasm-vs-native number: builds benches/wasm-verify for wasm32 (plain C-ABI
// exports, no wasm-bindgen) and times its exports in node with tinybench. run.mjs puts these next
// to criterion's native `verify/EdDSA`.
//
//   node benches/wasm-verify.mjs   (alone: prints the numbers as JSON)
import { execFileSync } from "node:child_process";
import { createPublicKey, verify as nodeVerify } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Bench } from "tinybench";

const HERE = path.dirname(fileURLToPath(import.meta.url));

export async function runWasmVerify({ root = path.resolve(HERE, ".."), targetDir, log = () => {} } = {}) {
  targetDir ??= process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
  // A target dir of its own: sharing the Worker's wasm32 artifacts (built with worker-build's
  // flags) breaks the LTO link.
  targetDir = path.join(targetDir, "wasm-verify");
  log("cargo build --release --target wasm32-unknown-unknown (benches/wasm-verify)");
  execFileSync(
    "cargo",
    ["build", "--release", "--target", "wasm32-unknown-unknown", "--manifest-path", path.join(HERE, "wasm-verify/Cargo.toml")],
    { cwd: root, env: { ...process.env, CARGO_TARGET_DIR: targetDir }, stdio: ["ignore", process.stderr, process.stderr] },
  );
  const bytes = readFileSync(path.join(targetDir, "wasm32-unknown-unknown/release/wasm_verify_bench.wasm"));
  const module = await WebAssembly.compile(bytes);

  let memory;
  const keys = new Map(); // the host caches the imported key, as the Worker caches its CryptoKey
  const host_ed25519_verify = (msg, msgLen, sig, sigLen, key) => {
    const mem = new Uint8Array(memory.buffer);
    const x = Buffer.from(mem.subarray(key, key + 32)).toString("base64url");
    let pub = keys.get(x);
    if (!pub) keys.set(x, (pub = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" })));
    return nodeVerify(null, mem.subarray(msg, msg + msgLen), pub, mem.subarray(sig, sig + sigLen)) ? 1 : 0;
  };
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    imports[imp.module] ??= {};
    if (imp.kind !== "function") throw new Error(`unexpected import ${imp.module}.${imp.name} (${imp.kind})`);
    imports[imp.module][imp.name] =
      imp.module === "env" && imp.name === "host_ed25519_verify"
        ? host_ed25519_verify
        : () => {
            throw new Error(`${imp.module}.${imp.name} is not provided`);
          };
  }
  const instance = await WebAssembly.instantiate(module, imports);
  memory = instance.exports.memory;
  const { verify_rust, verify_host } = instance.exports;
  // A verify that fails would time an early exit: both must pass before they are timed.
  if (verify_rust(3) !== 3 || verify_host(3) !== 3) throw new Error("the wasm verify does not pass on its own token");

  const bench = new Bench({ time: 3000, warmupTime: 500 });
  bench.add("rust", () => void verify_rust(1));
  bench.add("host", () => void verify_host(1));
  await bench.run();
  const stats = (t) => {
    const r = t.result;
    if (!r || r.error) throw new Error(`${t.name}: ${r?.error}`);
    const l = r.latency ?? r;
    return { ms: l.p50, lo: l.min, hi: l.p99 };
  };
  const [rust, host] = bench.tasks.map(stats);
  return [
    { label: "wasm in node, signature in pure Rust (RustCrypto)", ...rust, goal: false },
    { label: "wasm in node, signature by the host (node crypto), as the Worker does with WebCrypto", ...host, goal: true },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await runWasmVerify({ log: console.error }), null, 2));
}
