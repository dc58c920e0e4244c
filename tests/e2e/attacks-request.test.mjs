// Attack corpus, issue 11 section 3: what the policy sees is what the origin gets. Each case
// tries to make the policy decide on one request while the origin (the echo server of
// harness.mjs, which records what it receives) executes another: query parameters named like
// route parameters, repeated parameters, method overrides, paths an origin normalises
// differently, and identity, hop-by-hop and routing headers the caller sets. Every refusal
// asserts its status and that the origin never saw the request; every stripping case asserts
// exactly which headers the origin saw. Positive controls show legitimate requests still pass.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-request.test.mjs   (after building)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID, sign as nodeSign } from "node:crypto";
import { startWorker, startOrigin, basicAuth, form, json, FORM, decodeJwt } from "./harness.mjs";
import net from "node:net";
import { forge, nowSecs, assertError, put, tokenPost, pkce, authorizeQuery, interaction, postLogin } from "./attacks-lib.mjs";

let w;
/** The `edge_gen` claim of user clin's tokens from client smart-app. */
let clinGen;
let origin;
/** `host:port` the caller uses for the Worker. */
let host;

const GATE = basicAuth("gate", "gate-secret-1"); // allow policy: only our own checks refuse
const READER = basicAuth("reader", "reader-secret-1"); // matcho: GET or POST
const LABS = basicAuth("labs", "labs-secret-1"); // matcho: Observation of patient pt-1
const HOSTS = basicAuth("hosts", "hosts-secret-1"); // matcho on the forwarding headers
const ADMIN_ONLY = basicAuth("admin-only", "admin-only-secret-1"); // matcho: uri /Admin only
const ec = generateKeyPairSync("ec", { namedCurve: "P-384" });

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  host = new URL(w.url).host;
  const basicClient = (id, secret) => put(w, `/Client/${id}`, { secret, grant_types: ["basic"] });
  const link = (id, resourceType = "Client") => [{ id, resourceType }];
  await basicClient("gate", "gate-secret-1");
  await put(w, "/AccessPolicy/gate", { engine: "allow", link: link("gate") });
  await basicClient("reader", "reader-secret-1");
  await put(w, "/AccessPolicy/reader", {
    engine: "matcho", matcho: { "request-method": { $enum: ["get", "post"] } }, link: link("reader"),
  });
  await basicClient("labs", "labs-secret-1");
  await put(w, "/AccessPolicy/labs", {
    engine: "matcho", matcho: { "request-method": "get", uri: "#^/Observation$", params: { patient: "pt-1" } }, link: link("labs"),
  });
  await basicClient("hosts", "hosts-secret-1");
  await put(w, "/AccessPolicy/hosts-evil", {
    engine: "matcho", matcho: { headers: { "x-forwarded-host": "evil.example" } }, link: link("hosts"),
  });
  await put(w, "/AccessPolicy/hosts-real", {
    engine: "matcho", matcho: { uri: "/Real", headers: { "x-forwarded-host": host, "x-forwarded-proto": "http" } }, link: link("hosts"),
  });
  await basicClient("admin-only", "admin-only-secret-1");
  await put(w, "/AccessPolicy/admin-only", { engine: "matcho", matcho: { uri: "/Admin" }, link: link("admin-only") });
  // "Read only your own patient": a user whose data names their patient, a password client.
  await put(w, "/Client/myapp", { secret: "myapp-secret-1", grant_types: ["password"] });
  await put(w, "/User/john", { password: "john-pass-e2e", data: { patient: "pt-1" } });
  await put(w, "/AccessPolicy/own-patient", {
    engine: "matcho",
    matcho: { "request-method": "get", uri: "#^/Patient", params: { "resource/id": ".user.data.patient" } },
    link: link("john", "User"),
  });
  // SMART: a Backend Services client restricted to laboratory Observations, and a SMART app
  // whose EHR-launch tokens (patient pt-1) are forged below with the Worker's own key.
  const jwk = { ...ec.publicKey.export({ format: "jwk" }), kid: "ec-1", alg: "ES384" };
  await put(w, "/Client/bulk", {
    grant_types: ["client_credentials"], "allowed-scopes": ["system/Observation.rs?category=laboratory"], jwks: { keys: [jwk] },
  });
  await put(w, "/AccessPolicy/bulk", { engine: "smart-on-fhir", link: link("bulk") });
  await put(w, "/Client/smart-app", { grant_types: ["authorization_code"], first_party: true, auth: { authorization_code: { redirect_uri: "https://app.example/cb" } } });
  await put(w, "/User/clin", { password: "clin-pass-e2e" });
  await put(w, "/AccessPolicy/smart-app", { engine: "smart-on-fhir", link: link("smart-app") });
  // The `edge_gen` claim of clin's tokens from smart-app (issue 12: a server-kept credential
  // generation the forged tokens below must carry), from one real sign-in.
  const { verifier, challenge } = pkce();
  const query = authorizeQuery({
    response_type: "code", client_id: "smart-app", redirect_uri: "https://app.example/cb", state: "s",
    code_challenge: challenge, code_challenge_method: "S256",
  });
  const { csrf, jar } = await interaction(w, query);
  const login = await postLogin(w, { query, csrf, jar, username: "clin", password: "clin-pass-e2e" });
  const code = new URL(login.headers.get("location")).searchParams.get("code");
  assert.ok(code, `no code: ${login.headers.get("location")}`);
  const t = await tokenPost(w, {
    grant_type: "authorization_code", code, redirect_uri: "https://app.example/cb", client_id: "smart-app", code_verifier: verifier,
  });
  const body = await json(t);
  assert.equal(t.status, 200, JSON.stringify(body));
  clinGen = decodeJwt(body.access_token).payload.edge_gen;
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

/** GET `path` with these headers; the origin's record is reset first. */
async function call(path, headers = {}, init = {}) {
  origin.reset();
  return w.fetch(path, { ...init, headers });
}

/** A refused request: exact status and error, and the origin never saw it. */
async function assertRefused(res, status, error, what = "") {
  await assertError(res, status, error);
  assert.equal(origin.requests.length, 0, `the origin saw a refused request ${what}`);
}

/** An allowed request: 200 from the origin, which saw exactly one request; returns it. */
async function assertForwarded(res) {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.equal(res.headers.get("x-from-origin"), "yes", text);
  assert.equal(origin.requests.length, 1);
  return origin.last();
}

// --- 1. query parameters named like route parameters ----------------------------------------------

describe("attacks: query parameters named like route parameters", () => {
  let bearer;
  before(async () => {
    const r = await tokenPost(w, { grant_type: "password", username: "john", password: "john-pass-e2e" }, { auth: basicAuth("myapp", "myapp-secret-1") });
    const body = await json(r);
    assert.equal(r.status, 200, JSON.stringify(body));
    bearer = { authorization: `Bearer ${body.access_token}` };
  });

  test("control: the own-patient policy lets john read Patient/pt-1, not pt-2 or the list", async () => {
    const seen = await assertForwarded(await call("/Patient/pt-1", bearer));
    assert.equal(seen.url, "/Patient/pt-1");
    await assertRefused(await call("/Patient/pt-2", bearer), 403, "forbidden");
    await assertRefused(await call("/Patient", bearer), 403, "forbidden");
  });

  for (const [name, path] of [
    ["GET /Patient?resource/id=pt-1 (list every patient past an own-patient policy)", "/Patient?resource/id=pt-1"],
    ["GET /Patient?resource%2Fid=pt-1 (the name percent-encoded)", "/Patient?resource%2Fid=pt-1"],
    ["GET /Patient/pt-2?resource/id=pt-1 (another patient, the query naming mine)", "/Patient/pt-2?resource/id=pt-1"],
    ["GET /Patient?resource/type=Patient&resource/id=pt-1", "/Patient?resource/type=Patient&resource/id=pt-1"],
    ["GET /Patient/pt-1/_history?resource/version=1", "/Patient/pt-1/_history?resource/version=1"],
    ["GET /Patient?resource/anything=x", "/Patient?resource/anything=x"],
  ]) {
    test(`${name} -> 400, origin not reached`, async () => {
      const res = await call(path, bearer);
      const body = await assertError(res.clone(), 400, "invalid_request");
      assert.match(body.error_description, /come from the path/);
      assert.equal(origin.requests.length, 0);
    });
  }

  test("GET /User?resource/id=john on the admin API -> 400", async () => {
    await assertRefused(await call("/User?resource/id=john", bearer), 400, "invalid_request");
  });
});

// --- 2. repeated query parameters -----------------------------------------------------------------

/** A Backend Services token (SMART, ES384 client assertion) for `scope`. */
async function systemToken(scope) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString("base64url");
  const claims = { iss: "bulk", sub: "bulk", aud: `${w.url}/auth/token`, exp: nowSecs() + 240, jti: randomUUID() };
  const input = `${b64({ alg: "ES384", kid: "ec-1", typ: "JWT" })}.${b64(claims)}`;
  const sig = nodeSign("sha384", Buffer.from(input), { key: ec.privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url");
  const r = await w.fetch("/auth/token", {
    method: "POST",
    headers: FORM,
    body: form({
      grant_type: "client_credentials", scope,
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion: `${input}.${sig}`,
    }),
  });
  const body = await json(r);
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.equal(body.scope, scope);
  return { authorization: `Bearer ${body.access_token}` };
}

/**
 * A token as an EHR launch issues it to the SMART app for user `clin` with patient pt-1 in
 * context, signed by the Worker's own key (the launch flow itself is tested elsewhere; here only
 * the authorizer's decision matters).
 */
function patientToken(scope) {
  const now = nowSecs();
  const claims = {
    iss: w.url, aud: w.url, sub: "clin", sub_kind: "user", client_id: "smart-app", scope, patient: "pt-1",
    exp: now + 600, iat: now, jti: randomUUID(), edge_gen: clinGen,
  };
  return { authorization: `Bearer ${forge({ alg: "EdDSA", typ: "at+jwt", kid: w.signingKey.kid }, claims, { ed25519: w.signingKey })}` };
}

describe("attacks: repeated query parameters", () => {
  test("control: a FHIR search with legitimately repeated date params forwards with every value (matcho)", async () => {
    const q = "/Observation?patient=pt-1&date=ge2020-01-01&date=le2021-01-01";
    const seen = await assertForwarded(await call(q, { authorization: LABS }));
    assert.equal(seen.url, q);
  });

  for (const q of ["patient=pt-1&patient=pt-2", "patient=pt-2&patient=pt-1", "patient=pt-1&patient=pt-1"]) {
    test(`matcho {params: {patient: "pt-1"}}: GET /Observation?${q} -> 403, origin not reached`, async () => {
      await assertRefused(await call(`/Observation?${q}`, { authorization: LABS }), 403, "forbidden");
    });
  }

  test("control: system/Observation.rs?category=laboratory reads laboratory Observations with repeated dates", async () => {
    const tok = await systemToken("system/Observation.rs?category=laboratory");
    const q = "/Observation?category=laboratory&date=ge2020&date=le2021";
    const seen = await assertForwarded(await call(q, tok));
    assert.equal(seen.url, q);
  });

  // A SMART scope denial answers 403 insufficient_scope (RFC 6750 3.1, naming the scope that would
  // allow the request); what matters here is the 403 and that the origin never sees it.
  for (const q of ["category=laboratory&category=social-history", "category=social-history&category=laboratory"]) {
    test(`system/Observation.rs?category=laboratory: GET /Observation?${q} -> 403, origin not reached`, async () => {
      const tok = await systemToken("system/Observation.rs?category=laboratory");
      await assertRefused(await call(`/Observation?${q}`, tok), 403, "insufficient_scope");
    });
  }

  test("control: patient/Observation.rs (patient pt-1) searches its compartment with repeated dates", async () => {
    const q = "/Observation?patient=pt-1&date=ge2020&date=le2021";
    const seen = await assertForwarded(await call(q, patientToken("launch patient/Observation.rs")));
    assert.equal(seen.url, q);
  });

  for (const q of [
    "patient=pt-1&patient=pt-2",
    "patient=pt-2&patient=pt-1",
    "subject=Patient/pt-1&subject=Patient/pt-2",
    "subject=Patient/pt-2&subject=Patient/pt-1",
    "patient=pt-2&patient=Patient/pt-1",
  ]) {
    test(`patient/Observation.rs (patient pt-1): GET /Observation?${q} -> 403, origin not reached`, async () => {
      await assertRefused(await call(`/Observation?${q}`, patientToken("launch patient/Observation.rs")), 403, "insufficient_scope");
    });
  }

  test("patient/Observation.rs?category=laboratory: a second category beside laboratory (either order) -> 403", async () => {
    const tok = patientToken("launch patient/Observation.rs?category=laboratory");
    await assertForwarded(await call("/Observation?patient=pt-1&category=laboratory", tok));
    await assertRefused(await call("/Observation?patient=pt-1&category=laboratory&category=x", tok), 403, "insufficient_scope");
    await assertRefused(await call("/Observation?patient=pt-1&category=x&category=laboratory", tok), 403, "insufficient_scope");
  });
});

// --- 3. method overrides --------------------------------------------------------------------------

describe("attacks: method overrides past a policy that saw another method", () => {
  test("control: the reader's GET and POST reach the origin", async () => {
    assert.equal((await assertForwarded(await call("/Patient/pt-1", { authorization: READER }))).method, "GET");
  });

  for (const name of ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method-override", "X_HTTP_Method_Override", "x_method-override"]) {
    test(`GET with ${name}: DELETE -> 400, origin not reached`, async () => {
      const res = await call("/Patient/pt-1", { authorization: READER, [name]: "DELETE" });
      const body = await assertError(res, 400, "invalid_request");
      assert.match(body.error_description, /method-override/);
      assert.equal(origin.requests.length, 0);
    });
  }

  for (const q of ["_method=DELETE", "name=x&_method=PUT", "_METHOD=delete"]) {
    test(`GET /Patient/pt-1?${q} -> 400, origin not reached`, async () => {
      await assertRefused(await call(`/Patient/pt-1?${q}`, { authorization: READER }), 400, "invalid_request");
    });
  }

  test("POST /Patient/_search with _method=DELETE in the form body -> 400, origin not reached", async () => {
    const res = await call("/Patient/_search", { authorization: READER, ...FORM }, { method: "POST", body: "name=x&_method=DELETE" });
    await assertRefused(res, 400, "invalid_request");
  });

  test("POST with a multipart _method part -> 400, origin not reached", async () => {
    const fd = new FormData();
    fd.append("_method", "DELETE");
    origin.reset();
    const res = await w.fetch("/Patient/pt-1", { method: "POST", headers: { authorization: READER }, body: fd });
    await assertRefused(res, 400, "invalid_request");
  });

  test("control: a POST form search without _method is forwarded", async () => {
    const res = await call("/Patient/_search", { authorization: READER, ...FORM }, { method: "POST", body: "name=x&_count=2" });
    const seen = await assertForwarded(res);
    assert.equal(seen.body, "name=x&_count=2");
  });
});

// --- 4. paths the origin may read differently -----------------------------------------------------

/**
 * Raw HTTP/1.1 GET: the path and headers as written, as an attacker sends them (fetch would
 * normalise them). Like attacks-lib's rawHttp, but done as soon as the whole response is in
 * (workerd keeps the connection open for a while). Returns { status, headers, body }.
 */
function rawGet(path, headers = [], { auth = GATE } = {}) {
  origin.reset();
  const { hostname, port } = new URL(w.url);
  const head = [`GET ${path} HTTP/1.1`, `host: ${hostname}:${port}`, ...(auth ? [`authorization: ${auth}`] : []), ...headers];
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname);
    let buf = Buffer.alloc(0);
    sock.setTimeout(15_000, () => sock.destroy(new Error(`raw GET ${path} timed out`)));
    sock.on("error", reject);
    sock.on("data", (c) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine, ...lines] = buf.subarray(0, end).toString("latin1").split("\r\n");
      const h = {};
      for (const l of lines) {
        const i = l.indexOf(":");
        h[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const body = buf.subarray(end + 4);
      let text;
      if (/chunked/i.test(h["transfer-encoding"] ?? "")) {
        const s = body.toString("latin1");
        if (!s.includes("\r\n0\r\n\r\n") && !s.startsWith("0\r\n")) return;
        text = "";
        for (let i = 0; ; ) {
          const nl = s.indexOf("\r\n", i);
          const n = parseInt(s.slice(i, nl), 16);
          if (!n) break;
          text += s.slice(nl + 2, nl + 2 + n);
          i = nl + 2 + n + 2;
        }
      } else {
        if (body.length < Number(h["content-length"] ?? 0)) return;
        text = body.toString("utf8");
      }
      sock.destroy();
      resolve({ status: Number(statusLine.split(" ")[1]), headers: h, body: text });
    });
    sock.write(head.join("\r\n") + "\r\n\r\n");
  });
}

describe("attacks: paths the origin may read differently from the policy", () => {
  test("control: /Patient/pt-1.json and /Patient/$everything are forwarded as sent", async () => {
    for (const p of ["/Patient/pt-1.json", "/Patient/pt-1/$everything", "/Patient/"]) {
      const res = await rawGet(p);
      assert.equal(res.status, 200, `${p}: ${res.body}`);
      assert.equal(origin.last().url, p);
    }
  });

  for (const [name, path] of [
    ["..; path parameter (/Patient/..;/Admin)", "/Patient/..;/Admin"],
    ["; path parameter (/x;jsessionid=1)", "/x;jsessionid=1"],
    ["; in the last segment (/Patient/pt-1;x)", "/Patient/pt-1;x"],
    ["encoded / (%2F)", "/Patient/pt-1%2F..%2F..%2FAdmin"],
    ["encoded / lower case (%2f)", "/Patient/a%2fb"],
    ["encoded \\ (%5C)", "/Patient/..%5CAdmin"],
    ["encoded \\ lower case (%5c)", "/Patient/..%5cAdmin"],
    ["encoded dot in a segment (pt-1%2Ejson)", "/Patient/pt-1%2Ejson"],
    ["double-encoded / (%252F)", "/Patient/a%252Fb"],
    ["encoded ; (%3B)", "/Patient/pt-1%3Bx"],
    ["NUL (%00)", "/Patient/pt-1%00.json"],
    ["an empty segment (//)", "/Patient//pt-1"],
  ]) {
    test(`path with ${name} -> 400, origin not reached`, async () => {
      const res = await rawGet(path);
      await assertRefused(res, 400, "invalid_request", path);
    });
  }

  // workerd parses the request URL as WHATWG URL does: dot segments are resolved, also when
  // their dots are encoded (%2e), and a backslash is read as `/`, before the Worker sees the
  // path. What is left is what the policy sees and what the origin gets, and no dot segment or
  // backslash survives.
  for (const [path, resolved] of [
    ["/Patient/../Admin", "/Admin"],
    ["/Patient/%2E%2E/Admin", "/Admin"],
    ["/Patient/.%2e/Admin", "/Admin"],
    ["/Patient/%2e%2E/Admin", "/Admin"],
    ["/Patient\\..\\Admin", "/Admin"],
    ["/Patient/./pt-1", "/Patient/pt-1"],
    ["/Patient/pt-1/..", "/Patient/"],
  ]) {
    test(`path ${path} is resolved to ${resolved} before the policy sees it, and the origin gets ${resolved}`, async () => {
      const res = await rawGet(path);
      assert.equal(res.status, 200, res.body);
      assert.equal(origin.requests.length, 1);
      assert.equal(origin.last().url, resolved);
      // The policy saw the same path: a policy for /Admin only lets exactly these through.
      const policy = await rawGet(path, [], { auth: ADMIN_ONLY });
      assert.equal(policy.status, resolved === "/Admin" ? 200 : 403, policy.body);
    });
  }

  test("a raw ; in the query string -> 400, origin not reached", async () => {
    await assertRefused(await rawGet("/Observation?patient=pt-1;patient=pt-2"), 400, "invalid_request");
  });

  test("a NUL in a query parameter -> 400, origin not reached", async () => {
    await assertRefused(await rawGet("/Observation?patient=pt-1%00x"), 400, "invalid_request");
  });
});

// --- 5. identity, hop-by-hop and our cookies ------------------------------------------------------

/**
 * Headers the runtime itself adds to (or keeps on) any forwarded request: the transport of
 * the Worker's own fetch, not anything of the caller's.
 */
const TRANSPORT = new Set(["host", "connection", "content-length", "accept-encoding", "cf-connecting-ip", "cf-worker"]);

/**
 * The names of the headers the origin saw, without TRANSPORT. Miniflare gives the Worker the
 * client's address in cf-connecting-ip (127.0.0.1 here; workerd does not pass that header on),
 * so our x-forwarded-for is there with that address.
 */
function originHeaderNames() {
  const h = origin.last().headers;
  assert.equal(h["x-forwarded-for"], "127.0.0.1", "x-forwarded-for is cf-connecting-ip");
  return Object.keys(h).filter((n) => !TRANSPORT.has(n)).sort();
}
const OURS = ["x-client-id", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"];

describe("attacks: identity and hop-by-hop headers from the caller", () => {
  test("x_user_id, X_Client_Id, x_auth_* (underscores) and X-Auth-* never reach the origin", async () => {
    const res = await rawGet("/Patient", [
      "x_user_id: admin", "X_Client_Id: root", "x_auth_scope: system/*.*", "X-Auth_Roles: admin",
      "x-user_id: admin", "X-USER-ID: admin", "x-auth-: empty", "x-custom: kept",
    ]);
    assert.equal(res.status, 200, res.body);
    assert.equal(origin.requests.length, 1);
    assert.deepEqual(originHeaderNames(), [...OURS, "x-custom"].sort());
    assert.equal(origin.last().headers["x-client-id"], "gate");
    assert.equal(origin.last().headers["x-custom"], "kept");
  });

  test("our cookies (edge_session, edge_csrf, their __Host- forms over https) are taken out of Cookie; others are kept", async () => {
    const res = await call("/Patient", {
      authorization: GATE,
      cookie: "theme=dark; edge_session=stolen; edge_csrf=c; EDGE_SESSION=x; __Host-edge_session=h; __host-edge_csrf=h2; __Secure-edge_session=s; lang=en",
    });
    const seen = await assertForwarded(res);
    assert.equal(seen.headers.cookie, "theme=dark; lang=en");
  });

  test("a Cookie of only our cookies is not forwarded at all", async () => {
    const seen = await assertForwarded(await call("/Patient", { authorization: GATE, cookie: "edge_session=s; edge_csrf=c" }));
    assert.equal(seen.headers.cookie, undefined);
  });

  test("Proxy-Authorization, hop-by-hop headers and headers named in Connection are not forwarded", async () => {
    const res = await rawGet("/Patient", [
      "proxy-authorization: Basic cm9vdDpzZWNyZXQ=",
      "proxy-authenticate: Basic",
      "proxy-connection: keep-alive",
      "keep-alive: timeout=99",
      "te: trailers",
      "trailer: x-late",
      "x-hop-secret: 1",
      "x_other_hop: 1",
      "connection: x-hop-secret, X-Other-Hop",
      "x-custom: kept",
    ]);
    assert.equal(res.status, 200, res.body);
    assert.equal(origin.requests.length, 1);
    assert.deepEqual(originHeaderNames(), [...OURS, "x-custom"].sort());
  });

  test("control: ordinary headers, a Bearer token and other cookies reach the origin unchanged", async () => {
    const tok = patientToken("launch patient/Patient.rs");
    const res = await call("/Patient/pt-1", {
      ...tok, accept: "application/fhir+json", "x-request-id": "abc-123", prefer: "handling=strict", cookie: "theme=dark", "user-agent": "e2e",
    });
    const seen = await assertForwarded(res);
    assert.equal(seen.headers.authorization, tok.authorization);
    assert.equal(seen.headers.accept, "application/fhir+json");
    assert.equal(seen.headers["x-request-id"], "abc-123");
    assert.equal(seen.headers.prefer, "handling=strict");
    assert.equal(seen.headers.cookie, "theme=dark");
    assert.equal(seen.headers["user-agent"], "e2e");
    assert.equal(seen.headers["x-user-id"], "clin");
    assert.equal(seen.headers["x-client-id"], "smart-app");
  });
});

// --- 6. routing and host headers ------------------------------------------------------------------

describe("attacks: routing and host headers from the caller", () => {
  const SPOOF = [
    "X-Original-URL: /Admin",
    "X-Rewrite-URL: /Admin",
    "X-Forwarded-Host: evil.example",
    "x_forwarded_host: evil.example",
    "X-Forwarded-Prefix: /evil",
    "X-Forwarded-Proto: gopher",
    "X-Forwarded-For: 10.0.0.1",
    "X-Forwarded-Port: 1",
    "X-Real-IP: 10.0.0.1",
    "Forwarded: for=10.0.0.1;host=evil.example;proto=https",
  ];

  test("X-Original-URL, X-Rewrite-URL, X-Forwarded-*, X-Real-IP, Forwarded are replaced by ours", async () => {
    const res = await rawGet("/Patient", SPOOF);
    assert.equal(res.status, 200, res.body);
    assert.equal(origin.requests.length, 1);
    assert.deepEqual(originHeaderNames(), OURS);
    const h = origin.last().headers;
    assert.equal(h["x-forwarded-host"], host, "the host the caller used");
    assert.equal(h["x-forwarded-proto"], "http");
    assert.notEqual(h["x-forwarded-for"], "10.0.0.1");
  });

  test("X-Forwarded-For comes from cf-connecting-ip only", async () => {
    const res = await rawGet("/Patient", [...SPOOF, "cf-connecting-ip: 203.0.113.7"]);
    assert.equal(res.status, 200, res.body);
    assert.equal(origin.last().headers["x-forwarded-for"], "203.0.113.7");
  });

  test("a policy on x-forwarded-host sees the real host, not the caller's X-Forwarded-Host -> 403", async () => {
    // hosts-evil allows any request whose policy headers say x-forwarded-host: evil.example.
    await assertRefused(await call("/Patient", { authorization: HOSTS, "x-forwarded-host": "evil.example" }), 403, "forbidden");
    await assertRefused(await call("/Patient", { authorization: HOSTS, forwarded: "host=evil.example" }), 403, "forbidden");
  });

  test("control: a policy on x-forwarded-host and x-forwarded-proto sees what the origin gets", async () => {
    const seen = await assertForwarded(await call("/Real", { authorization: HOSTS, "x-forwarded-host": "evil.example" }));
    assert.equal(seen.headers["x-forwarded-host"], host);
  });
});
