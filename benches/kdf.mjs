// Cost of one password/secret hash (PBKDF2-HMAC-SHA256, 100,000 iterations, WebCrypto) inside the
// built Worker in local workerd: the median time of `PUT /User/{id}` with a password minus the
// median without one (both do the same KV reads and writes). Run: node benches/kdf.mjs
import { startWorker } from "../tests/e2e/harness.mjs";

const N = Number(process.env.N ?? 30);
const w = await startWorker();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function time(body, i) {
  const t = performance.now();
  const r = await w.admin("PUT", `/User/u${i}`, body);
  if (r.status !== 201) throw new Error(`PUT /User/u${i}: ${r.status}`);
  return performance.now() - t;
}
const plain = [], hashed = [];
for (let i = 0; i < N; i++) {
  plain.push(await time({ email: `p${i}@example.com` }, `p${i}`));
  hashed.push(await time({ email: `h${i}@example.com`, password: "correct horse battery" }, `h${i}`));
}
const p = median(plain), h = median(hashed);
console.log(`PUT /User without password: median ${p.toFixed(2)} ms; with password: median ${h.toFixed(2)} ms`);
console.log(`one PBKDF2-SHA256 (100k iterations) via WebCrypto in workerd: ~${(h - p).toFixed(1)} ms (N=${N})`);
await w.dispose();
