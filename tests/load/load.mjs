// Load and soak driver: a mixed workload against the BUILT Worker in local workerd (through
// Miniflare, as tests/e2e/harness.mjs starts it), over real HTTP on a pool of keep-alive
// connections, followed by a verification pass.
//
//   const report = await runLoad({ requests: 10000, concurrency: 64, seed: 1 });
//   report.ok   // true when no response was unexpected and every check afterwards held
//
// The mix (one "flow" is a short sequence of requests by one virtual client; `concurrency`
// virtual clients run flows back to back until `requests` requests have been sent):
//   cc        client_credentials token, then allowed GET/POST and a denied GET (403)
//   password  password grant (refresh token), allowed GET, denied POST (403), refresh, GET again
//   pool      protected calls with tokens from earlier flows (never revoked ones), Basic auth,
//             introspection of a live token
//   revokeAt  cc token, GET 200, introspect active, revoke, GET 401, introspect inactive
//   revokeRt  password grant, GET 200, revoke the refresh token, refresh 400 invalid_grant,
//             the family's access token 401
//   revoked   protected calls with tokens revoked earlier in the run: 401
//   client, user, policy
//             admin PUT (201), GET (same content), sometimes PUT again (200, version 2) and GET,
//             sometimes DELETE (200) and GET (404); ids are unique per run
//
// Every response is classified against what its step expects (status, and the body where it
// matters: the origin's echo of who called, the token response, introspection). Anything else
// (another status, a 5xx, a network error, a wrong body) is "unexpected"; the run passes only with
// none. Afterwards: every admin resource is read back and compared with its last successful write
// (deleted ones must be 404; live Clients must still authenticate, live Users must still get a
// token by email); every revoked token is refused (401) and introspects inactive; and the origin
// must not have seen any revoked token after its revocation was answered.
//
// Password checks: PBKDF2_ITERATIONS is set to 1000 for the run (the load test is about
// correctness, not KDF cost); no flow sends a wrong password or secret, so login throttling
// (failures only) is never tripped; every request carries a CF-Connecting-IP of its virtual client.

import http from "node:http";
import { performance } from "node:perf_hooks";
import { isDeepStrictEqual } from "node:util";
import { startWorker, basicAuth } from "../e2e/harness.mjs";

const SVC = { id: "load-svc", secret: "load-svc-secret" };
const APP = { id: "load-app", secret: "load-app-secret" };
const USERS = 16;
const userId = (i) => `load-u${i}`;
const userPassword = (i) => `load-pw-${i}`;
const POOL_MAX = 256;
// Most policies written in the run are deleted again: every AccessPolicy write makes the next
// protected requests reload the whole policy set from KV (docs/performance.md "Load and soak"), so a set that
// grows through the run measures that reload, not the rest of the service.
const POLICY_DELETE_CHANCE = 0.9;
const FAILURES_KEPT = 25;

/** Flow weights (relative). */
export const DEFAULT_MIX = {
  cc: 14,
  password: 10,
  pool: 30,
  revokeAt: 7,
  revokeRt: 5,
  revoked: 4,
  client: 10,
  user: 10,
  policy: 5,
};

// --- small helpers --------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so a run's choice of flows is reproducible. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const form = (params) => new URLSearchParams(params).toString();
const FORM = "application/x-www-form-urlencoded";

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// --- the stand-in origin ------------------------------------------------------------------------

/**
 * An origin on 127.0.0.1 that echoes who the authorizer said the caller is, and remembers, per
 * bearer token, when it last saw it (performance.now(), the same clock the driver uses).
 */
async function startEchoOrigin() {
  const lastSeen = new Map(); // bearer token -> last arrival time
  const stats = { requests: 0, basicLeaked: 0 };
  const server = http.createServer((req, res) => {
    const at = performance.now();
    stats.requests++;
    const auth = req.headers.authorization ?? "";
    if (/^bearer /i.test(auth)) lastSeen.set(auth.slice(7), at);
    if (/^basic /i.test(auth)) stats.basicLeaked++;
    let bytes = 0;
    req.on("data", (c) => (bytes += c.length));
    req.on("end", () => {
      const payload = JSON.stringify({
        origin: true,
        method: req.method,
        url: req.url,
        clientId: req.headers["x-client-id"] ?? null,
        userId: req.headers["x-user-id"] ?? null,
        loadId: req.headers["x-load-id"] ?? null,
        bytes,
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(payload);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    lastSeen,
    stats,
    dispose: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

// --- the HTTP client ------------------------------------------------------------------------------

/** A keep-alive connection pool of `connections` sockets to `baseUrl` (also tests/scale). */
export function httpClient(baseUrl, connections) {
  const base = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  /** Resolves to { status, headers, text, ms }; rejects on a network error. */
  const send = (method, path, { headers = {}, body } = {}) =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const h = { ...headers };
      if (body !== undefined) h["content-length"] = Buffer.byteLength(body);
      const req = http.request(
        { agent, host: base.hostname, port: base.port, method, path, headers: h },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode,
              headers: res.headers,
              text: Buffer.concat(chunks).toString("utf8"),
              ms: performance.now() - t0,
              end: performance.now(),
            }),
          );
          res.on("error", reject);
        },
      );
      req.setTimeout(60_000, () => req.destroy(new Error("timeout after 60 s")));
      req.on("error", reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  return { send, close: () => agent.destroy() };
}

// --- the run --------------------------------------------------------------------------------------

/**
 * Starts the Worker and the origin, seeds them, runs the mix, verifies, and returns a report.
 *
 * @param {object} o
 * @param {number} [o.requests=10000]   requests to send in the load phase (flows finish, so a few more)
 * @param {number} [o.concurrency=64]   virtual clients = connections
 * @param {number} [o.seed=1]
 * @param {object} [o.mix]              flow weights (DEFAULT_MIX)
 * @param {(line: string) => void} [o.log]
 */
export async function runLoad({ requests = 10_000, concurrency = 64, seed = 1, mix = DEFAULT_MIX, log = () => {} } = {}) {
  const origin = await startEchoOrigin();
  const w = await startWorker({ originUrl: origin.url, vars: { PBKDF2_ITERATIONS: "1000" } });
  const client = httpClient(w.url, concurrency);
  try {
    return await run({ w, origin, client, requests, concurrency, seed, mix, log });
  } finally {
    client.close();
    await w.dispose();
    await origin.dispose();
  }
}

async function run({ w, origin, client, requests, concurrency, seed, mix, log }) {
  const rootAuth = basicAuth("root", w.adminSecret);
  const svcAuth = basicAuth(SVC.id, SVC.secret);
  const appAuth = basicAuth(APP.id, APP.secret);

  // Per request kind: counts, statuses, latencies.
  const kinds = new Map();
  const flows = {};
  const failures = [];
  let unexpected = 0;
  let issued = 0;
  let seq = 0;
  const latencies = [];
  const runStart = performance.now();

  const kindStats = (kind) => {
    let k = kinds.get(kind);
    if (!k) kinds.set(kind, (k = { count: 0, unexpected: 0, statuses: {}, ms: [] }));
    return k;
  };

  // Checks after the load; a failed request there counts under its area, not as unexpected.
  const verify = { admin: { checked: 0, failed: 0, uncertain: 0 }, revoked: { checked: 0, failed: 0 }, origin: { violations: 0 } };
  // The first failures of the load and of the checks, kept apart so one cannot crowd out the other.
  const checkFailures = [];
  const keep = (list, f) => void (list.length < FAILURES_KEPT && list.push(f));

  const fail = (ctx, kind, why, res) => {
    if (ctx.area) {
      verify[ctx.area].failed++;
    } else {
      unexpected++;
      kindStats(kind).unexpected++;
    }
    keep(ctx.area ? checkFailures : failures, { kind, why, status: res?.status ?? null, body: res?.text?.slice(0, 300) ?? null });
  };

  /**
   * Sends one request and classifies it. `expect` is a status or a list of them; `check(body, res)`
   * returns an error string when the body is not what it should be. Returns { res, body, ok }.
   */
  const step = async (ctx, kind, method, path, { headers = {}, body, expect, check } = {}) => {
    issued++;
    const loadId = `${ctx.vu}-${++seq}`;
    const h = { "cf-connecting-ip": ctx.ip, "x-load-id": loadId, ...headers };
    const k = kindStats(kind);
    k.count++;
    let res;
    const t0 = performance.now();
    try {
      res = await client.send(method, path, { headers: h, body });
    } catch (e) {
      k.statuses.network = (k.statuses.network ?? 0) + 1;
      fail(ctx, kind, `${method} ${path}: network error after ${(performance.now() - t0).toFixed(0)} ms (at ${((performance.now() - runStart) / 1000).toFixed(1)} s): ${e.message}`);
      return { res: null, body: undefined, ok: false };
    }
    k.statuses[res.status] = (k.statuses[res.status] ?? 0) + 1;
    k.ms.push(res.ms);
    latencies.push(res.ms);
    const parsed = parseJson(res.text);
    const statuses = Array.isArray(expect) ? expect : [expect];
    if (!statuses.includes(res.status)) {
      fail(ctx, kind, `${method} ${path}: expected ${statuses.join("/")}, got ${res.status}`, res);
      return { res, body: parsed, ok: false };
    }
    if (res.status >= 400) {
      // Every error has the RFC 6749 5.2 shape.
      if (!parsed || typeof parsed.error !== "string") {
        fail(ctx, kind, `${method} ${path}: ${res.status} without an RFC-shaped error body`, res);
        return { res, body: parsed, ok: false };
      }
    }
    const problem = check?.(parsed, res, loadId);
    if (problem) {
      fail(ctx, kind, `${method} ${path}: ${problem}`, res);
      return { res, body: parsed, ok: false };
    }
    return { res, body: parsed, ok: true };
  };

  const errorIs = (code) => (b) => (b?.error === code ? null : `error ${JSON.stringify(b?.error)}, want ${code}`);
  const tokenBody = (withRefresh) => (b) => {
    if (typeof b?.access_token !== "string" || b.access_token.split(".").length !== 3) return "no JWT access_token";
    if (b.token_type !== "Bearer") return `token_type ${b.token_type}`;
    if (withRefresh && typeof b.refresh_token !== "string") return "no refresh_token";
    return null;
  };
  /** The origin's echo must name the caller the token belongs to and be the answer to this request. */
  const echoOf = (who, method) => (b, _res, loadId) => {
    if (b?.origin !== true) return "answer did not come from the origin";
    if (b.loadId !== loadId) return `origin echo is for request ${b.loadId}, not ${loadId}`;
    if (b.method !== method) return `origin saw ${b.method}`;
    if (b.clientId !== who.clientId) return `origin saw x-client-id ${b.clientId}, want ${who.clientId}`;
    if ((b.userId ?? null) !== (who.userId ?? null)) return `origin saw x-user-id ${b.userId}, want ${who.userId}`;
    return null;
  };
  const inactive = (b) => (b?.active === false ? null : `introspection says ${JSON.stringify(b)}`);

  const bearer = (t) => ({ authorization: `Bearer ${t}` });
  const tokenPost = (ctx, kind, auth, params, expect, check) =>
    step(ctx, kind, "POST", "/auth/token", {
      headers: { authorization: auth, "content-type": FORM },
      body: form(params),
      expect,
      check,
    });

  // --- seed: two clients, users, two policies ---------------------------------------------------
  const seedCtx = { vu: "seed", ip: "10.255.0.1" };
  const adminPut = (ctx, kind, path, doc, expect) =>
    step(ctx, kind, "PUT", path, {
      headers: { authorization: rootAuth, "content-type": "application/json" },
      body: JSON.stringify(doc),
      expect,
    });
  const seedSteps = [
    ["/Client/" + SVC.id, { secret: SVC.secret, grant_types: ["client_credentials", "basic"] }],
    ["/Client/" + APP.id, { secret: APP.secret, grant_types: ["password"], auth: { password: { refresh_token: true } } }],
    ...Array.from({ length: USERS }, (_, i) => [
      `/User/${userId(i)}`,
      { email: `${userId(i)}@load.example`, password: userPassword(i) },
    ]),
    // The service may read and write Patient and Observation; /Secret is nobody's (403).
    ["/AccessPolicy/load-svc", {
      engine: "matcho",
      matcho: { uri: "#^/(Patient|Observation)(/|$)" },
      link: [{ id: SVC.id, resourceType: "Client" }],
    }],
    // Users may only read Patients (a POST is 403).
    ["/AccessPolicy/load-users", {
      engine: "matcho",
      matcho: { "request-method": "get", uri: "#^/Patient(/|$)" },
      link: Array.from({ length: USERS }, (_, i) => ({ id: userId(i), resourceType: "User" })),
    }],
  ];
  for (const [path, doc] of seedSteps) {
    const r = await adminPut(seedCtx, "seed", path, doc, 201);
    if (!r.ok) throw new Error(`seeding ${path} failed: ${r.res?.status} ${r.res?.text}`);
  }
  issued = 0; // the seed is not part of the load
  kinds.delete("seed");
  latencies.length = 0;

  // --- shared state of the run --------------------------------------------------------------------
  const pool = []; // live tokens: { token, who, kind: "client"|"user" }
  const revoked = []; // { token, revokedAt, who }
  const resources = new Map(); // "Client/id" -> { rt, id, doc (as written, with secrets), version, deleted }
  let nextResource = 0;

  const addToPool = (rand, entry) => {
    if (pool.length < POOL_MAX) pool.push(entry);
    else pool[Math.floor(rand() * POOL_MAX)] = entry;
  };

  /** A protected call with a live token: allowed or denied depending on the caller's policy. */
  const protectedCall = async (ctx, rand, entry) => {
    const r = rand();
    if (entry.kind === "client") {
      if (r < 0.5) {
        const p = `/Patient/pt-${Math.floor(rand() * 1000)}`;
        return step(ctx, "api.get", "GET", p, { headers: bearer(entry.token), expect: 200, check: echoOf(entry.who, "GET") });
      }
      if (r < 0.8) {
        return step(ctx, "api.post", "POST", "/Observation", {
          headers: { ...bearer(entry.token), "content-type": "application/fhir+json" },
          body: JSON.stringify({ resourceType: "Observation", status: "final", valueQuantity: { value: r } }),
          expect: 200,
          check: echoOf(entry.who, "POST"),
        });
      }
      return step(ctx, "api.denied", "GET", "/Secret/1", { headers: bearer(entry.token), expect: 403, check: errorIs("forbidden") });
    }
    if (r < 0.6) {
      const p = r < 0.3 ? "/Patient" : `/Patient/pt-${Math.floor(rand() * 1000)}?_elements=name`;
      return step(ctx, "api.get", "GET", p, { headers: bearer(entry.token), expect: 200, check: echoOf(entry.who, "GET") });
    }
    return step(ctx, "api.denied", "POST", "/Patient", {
      headers: { ...bearer(entry.token), "content-type": "application/fhir+json" },
      body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Load" }] }),
      expect: 403,
      check: errorIs("forbidden"),
    });
  };

  const svcWho = { clientId: SVC.id, userId: null };
  const userWho = (i) => ({ clientId: APP.id, userId: userId(i) });

  const ccToken = async (ctx) => {
    const t = await tokenPost(ctx, "token.cc", svcAuth, { grant_type: "client_credentials" }, 200, tokenBody(false));
    return t.ok ? t.body.access_token : null;
  };
  const passwordToken = async (ctx, rand) => {
    const i = Math.floor(rand() * USERS);
    // Half by id, half by email (the email index).
    const username = rand() < 0.5 ? userId(i) : `${userId(i)}@load.example`;
    const t = await tokenPost(
      ctx, "token.password", appAuth,
      { grant_type: "password", username, password: userPassword(i) },
      200, tokenBody(true),
    );
    return t.ok ? { i, at: t.body.access_token, rt: t.body.refresh_token } : null;
  };
  const markRevoked = (token, revokedAt, who) => revoked.push({ token, revokedAt, who });

  const flowImpl = {
    async cc(ctx, rand) {
      const token = await ccToken(ctx);
      if (!token) return;
      const entry = { token, who: svcWho, kind: "client" };
      for (let n = 0; n < 3; n++) await protectedCall(ctx, rand, entry);
      addToPool(rand, entry);
    },

    async password(ctx, rand) {
      const t = await passwordToken(ctx, rand);
      if (!t) return;
      const entry = { token: t.at, who: userWho(t.i), kind: "user" };
      await protectedCall(ctx, rand, entry);
      const r = await tokenPost(ctx, "token.refresh", appAuth, { grant_type: "refresh_token", refresh_token: t.rt }, 200, tokenBody(true));
      if (!r.ok) return;
      const fresh = { token: r.body.access_token, who: userWho(t.i), kind: "user" };
      await protectedCall(ctx, rand, fresh);
      addToPool(rand, rand() < 0.5 ? entry : fresh);
    },

    async pool(ctx, rand) {
      if (pool.length === 0) return flowImpl.cc(ctx, rand);
      for (let n = 0; n < 3; n++) await protectedCall(ctx, rand, pool[Math.floor(rand() * pool.length)]);
      const r = rand();
      if (r < 0.5) {
        await step(ctx, "api.basic", "GET", `/Patient/pt-${Math.floor(rand() * 1000)}`, {
          headers: { authorization: svcAuth },
          expect: 200,
          check: echoOf(svcWho, "GET"),
        });
      } else {
        const e = pool[Math.floor(rand() * pool.length)];
        await step(ctx, "introspect.active", "POST", "/auth/introspect", {
          headers: { authorization: svcAuth, "content-type": FORM },
          body: form({ token: e.token }),
          expect: 200,
          check: (b) =>
            b?.active === true && b.client_id === e.who.clientId ? null : `introspection says ${JSON.stringify(b)}`,
        });
      }
    },

    async revokeAt(ctx, rand) {
      const token = await ccToken(ctx);
      if (!token) return;
      const entry = { token, who: svcWho, kind: "client" };
      await protectedCall(ctx, rand, entry);
      await step(ctx, "introspect.active", "POST", "/auth/introspect", {
        headers: { authorization: svcAuth, "content-type": FORM },
        body: form({ token }),
        expect: 200,
        check: (b) => (b?.active === true ? null : `introspection says ${JSON.stringify(b)}`),
      });
      const rv = await step(ctx, "revoke", "POST", "/auth/revoke", {
        headers: { authorization: svcAuth, "content-type": FORM },
        body: form({ token }),
        expect: 200,
      });
      if (!rv.ok) return;
      markRevoked(token, rv.res.end, svcWho);
      await step(ctx, "api.revoked", "GET", "/Patient/pt-1", { headers: bearer(token), expect: 401, check: errorIs("invalid_token") });
      await step(ctx, "introspect.inactive", "POST", "/auth/introspect", {
        headers: { authorization: svcAuth, "content-type": FORM },
        body: form({ token }),
        expect: 200,
        check: inactive,
      });
    },

    async revokeRt(ctx, rand) {
      const t = await passwordToken(ctx, rand);
      if (!t) return;
      await protectedCall(ctx, rand, { token: t.at, who: userWho(t.i), kind: "user" });
      const rv = await step(ctx, "revoke", "POST", "/auth/revoke", {
        headers: { authorization: appAuth, "content-type": FORM },
        body: form({ token: t.rt, token_type_hint: "refresh_token" }),
        expect: 200,
      });
      if (!rv.ok) return;
      // Revoking the family revokes the access tokens it issued.
      markRevoked(t.at, rv.res.end, userWho(t.i));
      await tokenPost(ctx, "token.refresh.revoked", appAuth, { grant_type: "refresh_token", refresh_token: t.rt }, 400, errorIs("invalid_grant"));
      await step(ctx, "api.revoked", "GET", "/Patient", { headers: bearer(t.at), expect: 401, check: errorIs("invalid_token") });
    },

    async revoked(ctx, rand) {
      if (revoked.length === 0) return flowImpl.revokeAt(ctx, rand);
      for (let n = 0; n < 2; n++) {
        const e = revoked[Math.floor(rand() * revoked.length)];
        await step(ctx, "api.revoked", "GET", `/Patient/pt-${n}`, { headers: bearer(e.token), expect: 401, check: errorIs("invalid_token") });
      }
    },

    client: (ctx, rand) =>
      adminFlow(ctx, rand, "Client", (id, v) => ({
        secret: `secret-${id}-${v}`,
        grant_types: ["basic"],
        description: `load client ${id} v${v}`,
      })),
    user: (ctx, rand) =>
      adminFlow(ctx, rand, "User", (id, v) => ({
        email: `${id}@load.example`,
        password: `pw-${id}-${v}`,
        name: { given: ["Load"], family: `V${v}` },
      })),
    // Policies that can never allow anything (a path nobody calls, a client that does not
    // exist), so the authorizer's answers above do not depend on them.
    policy: (ctx, rand) =>
      adminFlow(ctx, rand, "AccessPolicy", (id, v) => ({
        engine: "matcho",
        matcho: { uri: `#^/load-nothing/${id}/v${v}$` },
        link: [{ id: `nobody-${id}`, resourceType: "Client" }],
        description: `load policy v${v}`,
      }), POLICY_DELETE_CHANCE),
  };

  /** Compares a stored resource with what was written (without its secrets); null when equal. */
  const sameResource = (rec) => (b) => {
    if (!b || b.id !== rec.id) return `id ${b?.id}, want ${rec.id}`;
    for (const secret of ["secret", "password", "secret_hash", "password_hash"]) {
      if (secret in b) return `${secret} is returned`;
    }
    const want = { ...rec.doc };
    delete want.secret;
    delete want.password;
    for (const [k, v] of Object.entries(want)) {
      if (!isDeepStrictEqual(b[k], v)) return `${k} is ${JSON.stringify(b[k])}, want ${JSON.stringify(v)}`;
    }
    for (const k of Object.keys(b)) {
      if (!(k in want) && !["id", "resourceType", "meta"].includes(k)) return `unexpected field ${k}`;
    }
    if (b.meta?.versionId !== String(rec.version)) return `meta.versionId ${b.meta?.versionId}, want ${rec.version}`;
    return null;
  };

  async function adminFlow(ctx, rand, rt, make, deleteChance = 0.35) {
    const id = `load-${rt.toLowerCase()}-${seed}-${nextResource++}`;
    const path = `/${rt}/${id}`;
    const rec = { rt, id, path, doc: make(id, 1), version: 0, deleted: false, written: false, uncertain: false };
    resources.set(path, rec);
    const auth = { authorization: rootAuth };
    const put = async (expect) => {
      const r = await step(ctx, "admin.put", "PUT", path, {
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify(rec.doc),
        expect,
        check: (b) => sameResource({ ...rec, version: rec.version + 1 })(b),
      });
      if (r.res && r.res.status >= 200 && r.res.status < 300) {
        rec.version++;
        rec.written = true;
      }
      // A write whose answer was lost may or may not have happened (already counted as unexpected).
      if (!r.res) rec.uncertain = true;
      return r.ok;
    };
    const get = () => step(ctx, "admin.get", "GET", path, { headers: auth, expect: 200, check: sameResource(rec) });
    if (!(await put(201))) return;
    await get();
    if (rand() < 0.4) {
      rec.doc = make(id, 2);
      if (!(await put(200))) return;
      await get();
    }
    if (rand() < deleteChance) {
      const d = await step(ctx, "admin.delete", "DELETE", path, { headers: auth, expect: 200, check: sameResource(rec) });
      if (d.res?.status === 200) rec.deleted = true;
      if (!d.res) rec.uncertain = true;
      await step(ctx, "admin.get.deleted", "GET", path, { headers: auth, expect: 404, check: errorIs("not_found") });
    }
  }

  // --- the load phase -----------------------------------------------------------------------------
  const names = Object.keys(mix).filter((n) => mix[n] > 0);
  const total = names.reduce((s, n) => s + mix[n], 0);
  const pick = (r) => {
    let x = r * total;
    for (const n of names) {
      if ((x -= mix[n]) < 0) return n;
    }
    return names.at(-1);
  };

  log(`load: ${requests} requests, ${concurrency} connections, seed ${seed}, worker ${w.url}, origin ${origin.url}`);
  const started = performance.now();
  let lastReport = started;
  const vus = Array.from({ length: concurrency }, async (_, vu) => {
    const rand = prng(seed * 1000 + vu + 1);
    const ctx = { vu, ip: `10.${(vu >> 8) & 255}.${vu & 255}.${1 + (seed % 250)}` };
    while (issued < requests) {
      const name = pick(rand());
      flows[name] = (flows[name] ?? 0) + 1;
      await flowImpl[name](ctx, rand);
      const now = performance.now();
      if (now - lastReport > 5000) {
        lastReport = now;
        log(`  ${issued} requests, ${unexpected} unexpected, ${(issued / ((now - started) / 1000)).toFixed(0)} req/s`);
      }
    }
  });
  await Promise.all(vus);
  const durationMs = performance.now() - started;
  const sent = [...kinds.values()].reduce((s, k) => s + k.count, 0);
  const sorted = latencies.slice().sort((a, b) => a - b);

  // --- verification -------------------------------------------------------------------------------
  log(`verify: ${resources.size} admin resources, ${revoked.length} revoked tokens`);
  const vctx = { vu: "verify", ip: "10.254.0.1" };
  /** Runs `fn` over `items` with `concurrency` at a time. */
  const each = async (items, fn) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, items.length) }, async () => {
        while (next < items.length) await fn(items[next++]);
      }),
    );
  };
  // The verification requests go through the same classifier, under their own kinds and areas.
  const vstep = (area, kind, method, path, opts) => step({ ...vctx, area }, kind, method, path, opts);

  verify.admin.uncertain = [...resources.values()].filter((r) => r.uncertain).length;
  await each([...resources.values()].filter((r) => r.written && !r.uncertain), async (rec) => {
    verify.admin.checked++;
    if (rec.deleted) {
      await vstep("admin", "verify.admin.deleted", "GET", rec.path, { headers: { authorization: rootAuth }, expect: 404, check: errorIs("not_found") });
      return;
    }
    const g = await vstep("admin", "verify.admin.get", "GET", rec.path, { headers: { authorization: rootAuth }, expect: 200, check: sameResource(rec) });
    if (!g.ok) return;
    // The stored secret still works: a live Client authenticates (no policy: 403, not 401);
    // a live User gets a token by email (through the email index).
    if (rec.rt === "Client") {
      await vstep("admin", "verify.client.basic", "GET", "/Patient/pt-1", {
        headers: { authorization: basicAuth(rec.id, rec.doc.secret) },
        expect: 403,
        check: errorIs("forbidden"),
      });
    } else if (rec.rt === "User") {
      await vstep("admin", "verify.user.password", "POST", "/auth/token", {
        headers: { authorization: appAuth, "content-type": FORM },
        body: form({ grant_type: "password", username: rec.doc.email, password: rec.doc.password }),
        expect: 200,
        check: tokenBody(true),
      });
    }
  });

  await each(revoked, async (e) => {
    verify.revoked.checked++;
    await vstep("revoked", "verify.revoked.api", "GET", "/Patient/pt-1", { headers: bearer(e.token), expect: 401, check: errorIs("invalid_token") });
    await vstep("revoked", "verify.revoked.introspect", "POST", "/auth/introspect", {
      headers: { authorization: svcAuth, "content-type": FORM },
      body: form({ token: e.token }),
      expect: 200,
      check: inactive,
    });
  });

  // The verification above sent each revoked token once more; the origin must not have seen it
  // after its revocation was answered, in the load or since.
  for (const e of revoked) {
    const seen = origin.lastSeen.get(e.token);
    if (seen !== undefined && seen > e.revokedAt) {
      verify.origin.violations++;
      keep(checkFailures, { kind: "verify.origin", why: `origin saw a token ${(seen - e.revokedAt).toFixed(1)} ms after its revocation was answered` });
    }
  }
  if (origin.stats.basicLeaked > 0) {
    verify.origin.violations += origin.stats.basicLeaked;
    keep(checkFailures, { kind: "verify.origin", why: `${origin.stats.basicLeaked} Basic Authorization headers reached the origin` });
  }

  const byKind = {};
  for (const [name, k] of [...kinds.entries()].sort()) {
    const ms = k.ms.sort((a, b) => a - b);
    byKind[name] = {
      count: k.count,
      unexpected: k.unexpected,
      statuses: k.statuses,
      p50: +percentile(ms, 50).toFixed(1),
      p99: +percentile(ms, 99).toFixed(1),
    };
  }
  const verifyFailed = verify.admin.failed + verify.revoked.failed + verify.origin.violations;
  return {
    ok: unexpected === 0 && verifyFailed === 0,
    requests: sent,
    concurrency,
    seed,
    unexpected,
    durationMs: Math.round(durationMs),
    rps: +(sent / (durationMs / 1000)).toFixed(1),
    p50: +percentile(sorted, 50).toFixed(1),
    p99: +percentile(sorted, 99).toFixed(1),
    max: +(sorted.at(-1) ?? 0).toFixed(1),
    flows,
    byKind,
    verify,
    originRequests: origin.stats.requests,
    failures: [...failures, ...checkFailures],
  };
}

/** A readable summary of a report. */
export function formatReport(r) {
  const lines = [];
  const pad = (s, n) => String(s).padEnd(n);
  const lpad = (s, n) => String(s).padStart(n);
  lines.push(`${pad("kind", 28)}${lpad("count", 7)}${lpad("unexp", 7)}${lpad("p50 ms", 9)}${lpad("p99 ms", 9)}  statuses`);
  for (const [name, k] of Object.entries(r.byKind)) {
    const st = Object.entries(k.statuses).map(([s, n]) => `${s}:${n}`).join(" ");
    lines.push(`${pad(name, 28)}${lpad(k.count, 7)}${lpad(k.unexpected, 7)}${lpad(k.p50, 9)}${lpad(k.p99, 9)}  ${st}`);
  }
  lines.push(`flows: ${Object.entries(r.flows).map(([f, n]) => `${f} ${n}`).join(", ")}`);
  lines.push(
    `verify: admin ${r.verify.admin.checked} checked, ${r.verify.admin.failed} failed, ${r.verify.admin.uncertain} left out (write answer lost); ` +
      `revoked tokens ${r.verify.revoked.checked} checked, ${r.verify.revoked.failed} failed; ` +
      `origin violations ${r.verify.origin.violations} (origin got ${r.originRequests} requests)`,
  );
  for (const f of r.failures) lines.push(`FAIL ${f.kind}: ${f.why}${f.body ? ` -- ${f.body}` : ""}`);
  lines.push(
    `${r.ok ? "PASS" : "FAIL"}: ${r.requests} requests at ${r.concurrency} connections in ${(r.durationMs / 1000).toFixed(1)} s, ` +
      `${r.rps} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms, ${r.unexpected} unexpected`,
  );
  return lines.join("\n");
}
