// What the bench scripts share (run.mjs, cpu.mjs, profile-hot.mjs, profile-issue.mjs,
// origin.mjs): how a peer Worker is bundled for workerd, the origin every protected request is
// forwarded to, and the workerd processes a script started.
import http from "node:http";
import { readdirSync, readFileSync } from "node:fs";

/** esbuild options for a Worker module run by workerd, its imports from benches/node_modules. */
export const WORKER_BUNDLE = {
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["module", "main"],
  external: ["cloudflare:*", "node:*"],
  logLevel: "warning",
};

/** The origin's one answer. */
export const ORIGIN_BODY = JSON.stringify({ resourceType: "Patient", id: "pt-1", name: [{ family: "Bench" }] });

/** A node HTTP server answering every request with ORIGIN_BODY, on 127.0.0.1 (port 0: any). */
export async function startOrigin(port = 0) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(ORIGIN_BODY) });
      res.end(ORIGIN_BODY);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    port: server.address().port,
    close: () => (server.closeAllConnections(), server.close()),
  };
}

/** Child processes of `pid` (from /proc). */
function children(pid) {
  const out = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The workerd processes below this one (Miniflare starts one per instance), oldest first. */
export function workerdPids(root = process.pid) {
  const all = [];
  const walk = (p) => {
    for (const c of children(p)) {
      all.push(c);
      walk(c);
    }
  };
  walk(root);
  return all
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, "utf8").trim() === "workerd";
      } catch {
        return false;
      }
    })
    .sort((a, b) => a - b);
}
