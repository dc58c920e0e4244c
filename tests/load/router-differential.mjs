// Differential test of the router (issue 18): the Worker built from the old hand-written router
// and the one built from the route table get the same seeded resources and the same corpus of
// requests; every answer is compared (status, Allow, WWW-Authenticate, caching, CORS and
// security headers, content type, body) with ids, tokens and timestamps normalised, and so is
// what each one forwarded to its origin.
//
// Not part of `make test`: the old build is not in a fresh clone. Give it a tree that holds the
// old build (build/, www/, wrangler.toml, tests/e2e/harness.mjs, scripts/keys.mjs):
//
//   OLD_ROOT=/tmp/rt-old node tests/load/router-differential.mjs      # new: this checkout
//
// Raw HTTP/1.1 over a socket, so that paths reach workerd unnormalised (`//auth/token`,
// `/auth/ui/../x`) and methods keep their case (`get`).

import net from "node:net";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { writeFileSync } from "node:fs";

const NEW_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const OLD_ROOT = process.env.OLD_ROOT ?? "/tmp/rt-old";
const ONLY = process.env.ONLY ?? ""; // a substring of a path: run only those

const newH = await import(pathToFileURL(path.join(NEW_ROOT, "tests/e2e/harness.mjs")));
const oldH = await import(pathToFileURL(path.join(OLD_ROOT, "tests/e2e/harness.mjs")));
const { generateSigningJwk, randomSecret } = await import(pathToFileURL(path.join(NEW_ROOT, "scripts/keys.mjs")));
const { basicAuth } = newH;

/** One raw HTTP/1.1 request; resolves `{ status, headers (lowercase, joined), body }`. */
function raw(base, method, p, headers = {}, body = "") {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), hostname);
    const chunks = [];
    s.on("data", (c) => chunks.push(c));
    s.on("error", reject);
    s.on("end", () => {
      const buf = Buffer.concat(chunks);
      const sep = buf.indexOf("\r\n\r\n");
      const head = buf.subarray(0, sep).toString("latin1").split("\r\n");
      const status = Number(head[0].split(" ")[1]);
      const h = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(":");
        const k = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        h[k] = h[k] === undefined ? v : `${h[k]}, ${v}`;
      }
      let rest = buf.subarray(sep + 4);
      if ((h["transfer-encoding"] ?? "").includes("chunked")) {
        const out = [];
        let i = 0;
        while (i < rest.length) {
          const eol = rest.indexOf("\r\n", i);
          const n = parseInt(rest.subarray(i, eol).toString("latin1"), 16);
          if (!n) break;
          out.push(rest.subarray(eol + 2, eol + 2 + n));
          i = eol + 2 + n + 2;
        }
        rest = Buffer.concat(out);
      }
      resolve({ status, headers: h, body: rest.toString("utf8") });
    });
    const lines = [`${method} ${p} HTTP/1.1`, `Host: ${hostname}:${port}`, "Connection: close"];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    if (body || !["GET", "HEAD", "get"].includes(method)) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
    s.end(lines.join("\r\n") + "\r\n\r\n" + body);
  });
}

const COMPARED = [
  "allow", "www-authenticate", "cache-control", "pragma", "content-type", "vary", "location",
  "access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
  "access-control-allow-headers", "access-control-expose-headers", "access-control-max-age",
  "content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy",
  "cross-origin-opener-policy", "x-from-origin", "dpop-nonce",
];

function normalise(s, bases) {
  for (const b of bases) s = s.split(b).join("BASE");
  return s
    .replace(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g, "JWT")
    .replace(/\b[0-9a-f]{32,}\b/g, "HEX")
    .replace(/[A-Za-z0-9_-]{43}/g, "RAND43")
    .replace(/\b1[0-9]{9}\b/g, "TS")
    .replace(/\d{4}-\d\d-\d\dT[0-9:.]+Z/g, "DATE")
    .replace(/127\.0\.0\.1:\d+/g, "HOST");
}

function view(r, bases, originReqs) {
  const h = {};
  for (const k of COMPARED) if (r.headers[k] !== undefined) h[k] = normalise(r.headers[k], bases);
  if (r.headers["set-cookie"]) h["set-cookie"] = r.headers["set-cookie"].replace(/=[^;,]*/g, "=V");
  return {
    status: r.status,
    headers: h,
    body: normalise(r.body, bases).slice(0, 2000),
    forwarded: originReqs.map((o) => ({
      method: o.method,
      url: o.url,
      headers: Object.keys(o.headers).filter((k) => !["host", "content-length", "connection"].includes(k)).sort(),
      authorization: o.headers.authorization ? normalise(o.headers.authorization, bases) : undefined,
    })),
  };
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "get"];

// Every route of the table (with concrete values) and the near-misses of the brief.
const PATHS = [
  "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration",
  "/.well-known/smart-configuration", "/.well-known/smart-configuration/",
  "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/",
  "/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource/fhir",
  "/.well-known/jwks.json", "/.well-known/", "/.well-known", "/.well-known/x",
  "/.WELL-KNOWN/jwks.json", "/.well-known//jwks.json", "/.well-known/jwks.json/",
  "/auth/token", "/auth/register", "/auth/authorize", "/auth/par", "/auth/interaction",
  "/auth/login", "/auth/consent", "/auth/logout", "/auth/session", "/auth/grants",
  "/auth/patient", "/auth/launch", "/auth/revoke", "/auth/test-policy", "/auth/inspect-token",
  "/auth/introspect", "/auth/userinfo", "/auth/ui/login.html", "/auth/ui/consent.html",
  "/auth/ui/nope.html", "/auth/ui/.env", "/auth/ui/../x", "/auth/ui/", "/auth/ui",
  "/auth/ui/a/b", "/auth", "/auth/", "/auth/x",
  "//auth/token", "/auth/token/", "/auth//token", "/AUTH/token", "/auth%2Ftoken",
  "/auth/%74oken", "/auth/token%2F", "/auth/ui/%2e%2e/x", "/auth/ui/..%2Fx", "/%2e%2e/auth/token",
  "/auth/./token", "/auth/token;x", "/auth/token?x=1", "/auth/register/", "//auth/register",
  "/app", "/app/", "/app//", "/app/index.html", "/app/app.js", "/app/pkg/x", "/app/pkg/x/y",
  "/app/pkg/", "/app/.env", "/app/x/y", "//app/", "/app/%2e%2e/x",
  "/console", "/console/", "/console//", "/console/index.html", "/console/x/y", "/console/.env",
  "//console/",
  "/Session", "/Session/", "/Session//", "/Session/x", "/Session/a/b", "/Session?user=john",
  "/session", "//Session", "/fhir/Session", "/Session/x/",
  "/Grant", "/Grant/", "/Grant/x", "/Grant/x/", "/Grant?user=john", "/fhir/Grant", "/fhir/Grant/x",
  "/Grant/x/_history", "//Grant",
  "/Client", "/Client/", "/Client/x", "/Client/x/", "/Client//", "/Client/x/_history",
  "/Client/$op", "/Client/x/$op", "/Client/_search", "/fhir/Client", "/fhir/Client/",
  "/fhir/Client/x", "/fhir/fhir/Client", "/fhir//Client", "//Client", "/client", "/CLIENT/x",
  "/Client%2Fx", "/User", "/User/x", "/AccessPolicy", "/AccessPolicy/x", "/TokenIntrospector",
  "/Role/x", "/Scope", "/User/_search",
  "/fhir/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration/",
  "/fhir/.well-known/jwks.json", "/fhir//.well-known/smart-configuration",
  "//.well-known/smart-configuration", "/Patient/.well-known/smart-configuration",
  "/mcp", "/mcp/", "/mcp/x", "/MCP/x", "//mcp/x", "/mcp/../fhir/Patient",
  "/Patient", "/Patient/", "/Patient/1", "/fhir/Patient", "/fhir/Patient/1", "//Patient",
  "/Patient/../Client", "/Patient/%2e%2e/Client", "/", "//", "/x/y/z", "/%2e%2e/Client",
  "/Observation/x/_history",
];

async function main() {
  const adminSecret = randomSecret(18);
  const signingKey = await generateSigningJwk();
  const configs = [
    { name: "default", vars: {} },
    { name: "PROTECTED_RESOURCES=/mcp,/fhir DYNAMIC_REGISTRATION=on", vars: { PROTECTED_RESOURCES: "/mcp,/fhir", DYNAMIC_REGISTRATION: "on" } },
  ];
  const summary = { requests: 0, differences: [], byConfig: {} };
  for (const cfg of configs) {
    const vars = {
      ISSUER: "https://auth.example",
      LOGIN_MAX_FAILURES: "1000000",
      LOGIN_ADDRESS_MAX_FAILURES: "1000000",
      ...cfg.vars,
    };
    const oOld = await newH.startOrigin();
    const oNew = await newH.startOrigin();
    const wOld = await oldH.startWorker({ originUrl: oOld.url, adminSecret, signingKey, vars });
    const wNew = await newH.startWorker({ originUrl: oNew.url, adminSecret, signingKey, vars });
    const pair = [
      { w: wOld, o: oOld },
      { w: wNew, o: oNew },
    ];
    const ids = {};
    for (const [i, { w }] of pair.entries()) {
      const put = async (p, body) => {
        const r = await w.admin("PUT", p, body);
        if (![200, 201].includes(r.status)) throw new Error(`PUT ${p}: ${r.status} ${await r.text()}`);
      };
      await put("/Client/basic", { secret: "s3cret", grant_types: ["basic", "client_credentials"] });
      await put("/AccessPolicy/basic", {
        engine: "matcho",
        link: [{ id: "basic", resourceType: "Client" }],
        matcho: { uri: "#^/(fhir/|mcp)?(Patient.*)?$" },
      });
      await put("/Client/pw", { secret: "pw-secret", grant_types: ["password"] });
      await put("/User/john", { email: "john@example.com", password: "pass123" });
      await put("/AccessPolicy/john", {
        engine: "matcho",
        link: [{ id: "john", resourceType: "User" }],
        matcho: { uri: "#^/(fhir/)?Patient" },
      });
      await put("/Client/ops", { secret: "ops-secret", grant_types: ["basic"] });
      await put("/AccessPolicy/ops-admin", { engine: "allow", link: [{ id: "ops", resourceType: "Client" }] });
      await put("/Client/spa", {
        grant_types: ["authorization_code"],
        auth: { authorization_code: { redirect_uri: "https://spa.example/cb" } },
        first_party: true,
      });
      const tok = async (auth, params) => {
        const r = await w.fetch("/auth/token", {
          method: "POST",
          headers: { authorization: auth, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams(params).toString(),
        });
        const b = await r.json();
        if (!b.access_token) throw new Error(JSON.stringify(b));
        return b.access_token;
      };
      ids[i] = {
        clientToken: await tok(basicAuth("basic", "s3cret"), { grant_type: "client_credentials" }),
        userToken: await tok(basicAuth("pw", "pw-secret"), { grant_type: "password", username: "john", password: "pass123" }),
      };
    }
    const who = (i) => ({
      none: {},
      wrong: { authorization: basicAuth("basic", "wrong") },
      client: { authorization: basicAuth("basic", "s3cret") },
      clientToken: { authorization: `Bearer ${ids[i].clientToken}` },
      userToken: { authorization: `Bearer ${ids[i].userToken}` },
      root: { authorization: basicAuth("root", adminSecret) },
      adminClient: { authorization: basicAuth("ops", "ops-secret") },
    });
    const cases = [];
    const paths = PATHS.filter((p) => p.includes(ONLY));
    for (const p of paths) {
      for (const m of METHODS) {
        for (const id of Object.keys(who(0))) cases.push({ m, p, id, extra: {} });
        for (const origin of ["https://spa.example", "https://evil.example"]) {
          cases.push({ m, p, id: "none", extra: { origin } });
          cases.push({ m, p, id: "clientToken", extra: { origin } });
        }
      }
      // CORS preflights.
      for (const origin of ["https://spa.example", "https://evil.example"]) {
        for (const acrm of ["GET", "POST", "DELETE"]) {
          cases.push({
            m: "OPTIONS",
            p,
            id: "none",
            extra: { origin, "access-control-request-method": acrm, "access-control-request-headers": "authorization" },
          });
        }
      }
    }
    const bases = [wOld.url, wNew.url, oOld.url, oNew.url];
    let diffs = 0;
    const t0 = Date.now();
    for (const c of cases) {
      const results = [];
      for (const [i, { w, o }] of pair.entries()) {
        o.reset();
        const headers = { ...who(i)[c.id], ...c.extra };
        let body = "";
        if (["POST", "PUT", "PATCH"].includes(c.m)) {
          headers["content-type"] = "application/x-www-form-urlencoded";
          body = "x=1";
        }
        const r = await raw(w.url, c.m, c.p, headers, body);
        results.push(view(r, bases, o.requests));
      }
      const [a, b] = results.map((x) => JSON.stringify(x));
      if (a !== b) {
        diffs++;
        summary.differences.push({ config: cfg.name, method: c.m, path: c.p, who: c.id, extra: c.extra, old: results[0], new: results[1] });
      }
    }
    summary.requests += cases.length;
    summary.byConfig[cfg.name] = { requests: cases.length, differences: diffs, seconds: (Date.now() - t0) / 1000 };
    console.log(cfg.name, summary.byConfig[cfg.name]);
    await wOld.dispose();
    await wNew.dispose();
    await oOld.dispose();
    await oNew.dispose();
  }
  const out = process.env.OUT ?? "/tmp/router-differential.json";
  writeFileSync(out, JSON.stringify(summary, null, 1));
  // A short list: one line per (method, path, who) difference, grouped by path.
  const groups = new Map();
  for (const d of summary.differences) {
    const k = `${d.path}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(`${d.method} ${d.who}${d.extra.origin ? " " + d.extra.origin : ""}${d.extra["access-control-request-method"] ? " preflight " + d.extra["access-control-request-method"] : ""}: ${d.old.status} -> ${d.new.status}`);
  }
  for (const [k, v] of groups) console.log(k, `(${v.length})`, v.slice(0, 6).join("; "));
  console.log(`requests per build: ${summary.requests}; differences: ${summary.differences.length}; details in ${out}`);
  process.exitCode = summary.differences.length ? 1 : 0;
}

await main();
