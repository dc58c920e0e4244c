// Registration without an administrator (issue 17): Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document, MCP 2025-11-25) and RFC 7591 dynamic
// registration, against the built Worker. Metadata documents are served by a local Node server,
// which only the test-only escape `TEST_ONLY_CIMD_LOOPBACK=on` lets the Worker fetch from; a
// second Worker without it shows the SSRF refusals, a third with both features off shows them off.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startWorker, json, decodeJwt, JSON_CT } from "./harness.mjs";
import {
  put,
  pkce,
  cookies,
  cookieHeader,
  interaction,
  postLogin,
  postConsent,
  authorizeQuery,
  tokenPost,
  assertError,
  otherEd25519Jwk,
  forge,
  nowSecs,
} from "./attacks-lib.mjs";
import { randomUUID } from "node:crypto";

const CB = "https://cimd.example/cb";
const DCR_CB = "https://dcr.example/cb";

/** path -> { status, headers, body, delay, chunks }; hits by path. */
const routes = new Map();
const hits = new Map();
let docServer;
let DOCS; // http://127.0.0.1:<port>
let w; // CIMD + DCR on, loopback escape on
let strict; // CIMD + DCR on, no escape, registration limit 2
let off; // defaults: both off

function serve(path, { status = 200, headers = { "content-type": "application/json" }, body = "", delay = 0, chunks } = {}) {
  routes.set(path, { status, headers, body, delay, chunks });
}

/** A valid metadata document served at `path`; returns its URL (the client_id). */
function cimd(path, over = {}) {
  const url = `${DOCS}${path}`;
  serve(path, {
    body: JSON.stringify({
      client_id: url,
      client_name: "CIMD Demo",
      redirect_uris: [CB],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      ...over,
    }),
  });
  return url;
}

before(async () => {
  docServer = http.createServer((req, res) => {
    const path = req.url;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const r = routes.get(path);
    if (!r) {
      res.writeHead(404, { "content-type": "text/plain" });
      return res.end("not found");
    }
    setTimeout(() => {
      if (r.chunks) {
        res.writeHead(r.status, r.headers);
        let i = 0;
        const next = () => {
          if (i >= r.chunks || res.destroyed) return res.end();
          i += 1;
          res.write("x".repeat(1024), () => setTimeout(next, 5));
        };
        return next();
      }
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    }, r.delay);
  });
  await new Promise((resolve) => docServer.listen(0, "127.0.0.1", resolve));
  DOCS = `http://127.0.0.1:${docServer.address().port}`;

  const on = { CLIENT_ID_METADATA_DOCUMENTS: "on", DYNAMIC_REGISTRATION: "on", OUTBOUND_TIMEOUT_MS: "1500" };
  [w, strict, off] = await Promise.all([
    startWorker({ vars: { ...on, TEST_ONLY_CIMD_LOOPBACK: "on" } }),
    startWorker({ vars: { ...on, DYNAMIC_REGISTRATION_LIMIT: "2" } }),
    startWorker(),
  ]);
  for (const x of [w, strict, off]) {
    await put(x, "/User/john", { email: "john@example.com", password: "pass123" });
    await put(x, "/AccessPolicy/john", { engine: "allow", link: [{ id: "john", resourceType: "User" }] });
  }
});
after(async () => {
  await Promise.all([w, strict, off].map((x) => x?.dispose()));
  docServer?.closeAllConnections?.();
  await new Promise((r) => docServer?.close(r) ?? r());
});

const codeQuery = (client_id, over = {}) =>
  authorizeQuery({ response_type: "code", client_id, redirect_uri: CB, scope: "openid", state: "s1", ...over });

/** The local error page of /auth/authorize: `status`, HTML naming `error`, never a redirect. */
async function assertPage(res, status, error) {
  const text = await res.text();
  assert.equal(res.status, status, text.slice(0, 400));
  assert.equal(res.headers.get("location"), null, "must not redirect to an unverified redirect_uri");
  assert.match(res.headers.get("content-type") ?? "", /text\/html/);
  assert.ok(text.includes(error), text.slice(0, 400));
  return text;
}

/** Signs john in and consents for `query` on worker `x`; returns the final redirect and jar. */
async function loginAndConsent(x, query) {
  const { csrf, jar, body } = await interaction(x, query);
  const login = await postLogin(x, { query, csrf, jar });
  assert.equal(login.status, 303, await login.text());
  const loc = login.headers.get("location");
  assert.match(loc, /^\/auth\/ui\/consent\.html\?/, `a self-registered client must see the consent page, got ${loc}`);
  const jar2 = { ...jar, ...cookies(login) };
  const consent = await postConsent(x, { query, csrf, jar: jar2 });
  assert.equal(consent.status, 303, await consent.text());
  return { location: new URL(consent.headers.get("location")), jar: jar2, context: body };
}

describe("Client ID Metadata Documents", () => {
  test("discovery says so only when on; registration_endpoint only with DCR on", async () => {
    for (const doc of ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]) {
      const m = await json(await w.fetch(doc));
      assert.equal(m.client_id_metadata_document_supported, true);
      assert.equal(m.registration_endpoint, `${w.url}/auth/register`);
      const o = await json(await off.fetch(doc));
      assert.equal("client_id_metadata_document_supported" in o, false);
      assert.equal("registration_endpoint" in o, false);
    }
  });

  test("code flow with a CIMD client: login, consent naming its host, token, protected API", async () => {
    const id = cimd("/good/client.json");
    const { verifier, challenge } = pkce();
    const query = codeQuery(id, { code_challenge: challenge, code_challenge_method: "S256" });
    const { location, jar, context } = await loginAndConsent(w, query);
    assert.equal(context.client.name, "CIMD Demo");
    assert.equal(context.client.id, id);
    assert.equal(context.client.registration, "client_id_metadata_document");
    assert.equal(context.client.host, "127.0.0.1");
    assert.equal(context.client.redirect_host, "cimd.example");
    assert.equal(location.origin + location.pathname, CB);
    const code = location.searchParams.get("code");
    assert.ok(code, String(location));
    const res = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, client_id: id, code_verifier: verifier });
    const t = await json(res);
    assert.equal(res.status, 200, JSON.stringify(t));
    assert.equal(decodeJwt(t.access_token).payload.client_id, id);
    assert.ok(t.refresh_token, "refresh_token is in its grant_types");
    const api = await w.fetch("/Patient", { headers: { authorization: `Bearer ${t.access_token}` } });
    await api.arrayBuffer();
    assert.equal(api.status, 200, "the authorizer resolves the CIMD client of its token");
    const r2 = await tokenPost(w, { grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: id });
    assert.equal(r2.status, 200, await r2.text());

    // Consent is asked again on the next authorization, though the user approved it before.
    const again = await w.fetch(`/auth/authorize?${codeQuery(id, { code_challenge: challenge })}`, {
      headers: { cookie: cookieHeader(jar) },
    });
    await again.arrayBuffer();
    assert.equal(again.status, 303);
    assert.match(again.headers.get("location"), /^\/auth\/ui\/consent\.html\?/);
  });

  test("a CIMD client cannot use password, client_credentials or implicit", async () => {
    const id = cimd("/grants/client.json");
    await assertError(await tokenPost(w, { grant_type: "password", client_id: id, username: "john", password: "pass123" }), 400, "unauthorized_client");
    await assertError(await tokenPost(w, { grant_type: "client_credentials", client_id: id }), 401, "invalid_client");
    // Implicit: the document's redirect URIs are registered for the code flow only, so the
    // request is refused on our own page (no token, no redirect).
    await assertPage(await w.fetch(`/auth/authorize?${codeQuery(id, { response_type: "token" })}`), 400, "not registered");
  });

  test("private_key_jwt with a jwks_uri: the keys are fetched like the document; the assertion is required", async () => {
    const key = otherEd25519Jwk();
    const { d, ...pub } = key;
    serve("/pkjwt/keys.json", { body: JSON.stringify({ keys: [{ ...pub, kid: "k1", alg: "EdDSA", use: "sig" }] }) });
    const id = cimd("/pkjwt/client.json", { token_endpoint_auth_method: "private_key_jwt", jwks_uri: `${DOCS}/pkjwt/keys.json` });
    const { verifier, challenge } = pkce();
    const query = codeQuery(id, { code_challenge: challenge, code_challenge_method: "S256" });
    const { location } = await loginAndConsent(w, query);
    const code = location.searchParams.get("code");
    assert.ok(code, String(location));
    const redeem = (extra) => tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier, ...extra });
    // client_id alone: the document says private_key_jwt, so it must authenticate.
    await assertError(await redeem({ client_id: id }), 401, "invalid_client");
    const assertion = forge(
      { alg: "EdDSA", typ: "JWT", kid: "k1" },
      { iss: id, sub: id, aud: `${w.url}/auth/token`, exp: nowSecs() + 60, jti: randomUUID() },
      { ed25519: key },
    );
    const res = await redeem({ client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion: assertion });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(decodeJwt(body.access_token).payload.client_id, id);
  });

  const bad = [
    ["client_id mismatch", "/bad/mismatch.json", () => serve("/bad/mismatch.json", { body: JSON.stringify({ client_id: `${DOCS}/other.json`, redirect_uris: [CB] }) })],
    ["oversize (content-length)", "/bad/big.json", () => cimd("/bad/big.json", { padding: "x".repeat(6000) })],
    ["oversize (chunked, no length)", "/bad/chunked.json", () => serve("/bad/chunked.json", { chunks: 50 })],
    ["slow", "/bad/slow.json", () => { const u = cimd("/bad/slow.json"); routes.get("/bad/slow.json").delay = 4000; return u; }],
    // The target would be a valid document for the redirecting URL: only not following helps.
    ["redirecting", "/bad/redirect.json", () => {
      serve("/bad/redirect.json", { status: 302, headers: { location: `${DOCS}/bad/redirect-target.json` } });
      const target = cimd("/bad/redirect-target.json", { client_id: `${DOCS}/bad/redirect.json` });
      return target;
    }],
    ["not found", "/bad/missing.json", () => {}],
    ["non-JSON", "/bad/html.json", () => serve("/bad/html.json", { headers: { "content-type": "text/html" }, body: "<html></html>" })],
    ["JSON but not an object", "/bad/array.json", () => serve("/bad/array.json", { body: "[1]" })],
    ["secret-bearing", "/bad/secret.json", () => cimd("/bad/secret.json", { client_secret: "s3cret" })],
    ["client_secret_basic", "/bad/basic.json", () => cimd("/bad/basic.json", { token_endpoint_auth_method: "client_secret_basic" })],
    ["password grant", "/bad/password.json", () => cimd("/bad/password.json", { grant_types: ["authorization_code", "password"] })],
    ["no redirect_uris", "/bad/noredirect.json", () => cimd("/bad/noredirect.json", { redirect_uris: [] })],
    ["http redirect_uri", "/bad/httpcb.json", () => cimd("/bad/httpcb.json", { redirect_uris: ["http://evil.example/cb"] })],
    ["custom scope", "/bad/scope.json", () => cimd("/bad/scope.json", { scope: "openid admin" })],
  ];
  for (const [name, path, setup] of bad) {
    test(`an unusable document is invalid_client, never a redirect: ${name}`, async () => {
      setup();
      const id = `${DOCS}${path}`;
      await assertPage(await w.fetch(`/auth/authorize?${codeQuery(id)}`), 401, "invalid_client");
      await assertError(await tokenPost(w, { grant_type: "authorization_code", code: "x", client_id: id, code_verifier: "v".repeat(43) }), 401, "invalid_client");
      assert.equal(hits.get("/bad/redirect-target.json") ?? 0, 0, "a redirect was followed");
    });
  }

  test("an invalid document is not cached: fixed, it works at once", async () => {
    const id = cimd("/fix/client.json", { client_secret: "oops" });
    await assertPage(await w.fetch(`/auth/authorize?${codeQuery(id)}`), 401, "invalid_client");
    cimd("/fix/client.json");
    const res = await w.fetch(`/auth/authorize?${codeQuery(id, { code_challenge: pkce().challenge })}`);
    await res.arrayBuffer();
    assert.equal(res.status, 303);
    assert.match(res.headers.get("location"), /^\/auth\/ui\/login\.html\?/);
  });

  test("a valid document is cached (one fetch for several requests)", async () => {
    const id = cimd("/cached/client.json");
    for (let i = 0; i < 3; i++) {
      const res = await w.fetch(`/auth/authorize?${codeQuery(id, { code_challenge: pkce().challenge })}`);
      await res.arrayBuffer();
      assert.equal(res.status, 303);
    }
    assert.equal(hits.get("/cached/client.json"), 1);
  });

  test("malformed Client Identifier URLs are refused without a fetch", async () => {
    for (const id of [
      `${DOCS}/a/../good/client.json`,
      `${DOCS}/good/client.json#frag`,
      `http://user:pw@127.0.0.1:${docServer.address().port}/good/client.json`,
      `${DOCS}/`,
    ]) {
      await assertPage(await w.fetch(`/auth/authorize?${codeQuery(id)}`), 401, "invalid_client");
    }
  });

  test("SSRF: without the test-only escape, loopback and private addresses are never fetched", async () => {
    const port = docServer.address().port;
    cimd("/ssrf/client.json");
    const before = hits.get("/ssrf/client.json") ?? 0;
    for (const id of [
      `${DOCS}/ssrf/client.json`,
      `https://127.0.0.1:${port}/ssrf/client.json`,
      `https://localhost:${port}/ssrf/client.json`,
      `https://0x7f.1:${port}/ssrf/client.json`,
      `https://2130706433:${port}/ssrf/client.json`,
      `https://127.1:${port}/ssrf/client.json`,
      `https://[::1]:${port}/ssrf/client.json`,
      `https://[::ffff:127.0.0.1]:${port}/ssrf/client.json`,
      "https://10.0.0.1/client.json",
      "https://192.168.1.1/client.json",
      "https://169.254.169.254/latest/meta-data",
      "https://100.64.0.1/client.json",
      "https://[fd00::1]/client.json",
      "https://metadata.google.internal/client.json",
      "https://printer.local/client.json",
    ]) {
      const text = await assertPage(await strict.fetch(`/auth/authorize?${codeQuery(id)}`), 401, "invalid_client");
      assert.match(text, /https|host we do not fetch/, text.slice(0, 300));
    }
    assert.equal(hits.get("/ssrf/client.json") ?? 0, before, "the document server was reached");
  });

  test("off (the default): a URL client_id is just an unknown client", async () => {
    const id = cimd("/off/client.json");
    await assertPage(await off.fetch(`/auth/authorize?${codeQuery(id)}`), 400, "unknown client");
    assert.equal(hits.get("/off/client.json") ?? 0, 0);
  });
});

describe("RFC 7591 dynamic registration", () => {
  const register = (x, body, headers = JSON_CT) =>
    x.fetch("/auth/register", { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });

  test("happy path, then the code flow through login and consent; the admin sees and deletes it", async () => {
    const res = await register(w, {
      redirect_uris: [DCR_CB],
      client_name: "DCR App",
      grant_types: ["authorization_code", "refresh_token"],
      token_endpoint_auth_method: "none",
      scope: "openid profile",
      // Unknown and internal fields: ignored, never stored.
      first_party: true,
      secret: "mine",
      auth: { password: {} },
      active: false,
      software_id: "x",
    });
    const reg = await json(res);
    assert.equal(res.status, 201, JSON.stringify(reg));
    assert.match(res.headers.get("cache-control") ?? "", /no-store/);
    assert.match(reg.client_id, /^dcr-[0-9a-f]{32}$/);
    assert.equal(typeof reg.client_id_issued_at, "number");
    assert.equal(reg.token_endpoint_auth_method, "none");
    assert.equal("client_secret" in reg, false);
    assert.deepEqual(reg.redirect_uris, [DCR_CB]);
    assert.equal(reg.scope, "openid profile");

    const stored = await json(await w.admin("GET", `/Client/${reg.client_id}`));
    assert.equal(typeof stored.dynamic_registration, "object", JSON.stringify(stored));
    for (const f of ["first_party", "secret", "active", "software_id"]) assert.equal(f in stored, false, f);
    assert.deepEqual(Object.keys(stored.auth), ["authorization_code"]);
    const listed = await json(await w.admin("GET", "/Client"));
    assert.ok(listed.entry.some((e) => e.resource.id === reg.client_id));

    const { verifier, challenge } = pkce();
    const query = authorizeQuery({ response_type: "code", client_id: reg.client_id, redirect_uri: DCR_CB, scope: "openid", state: "d", code_challenge: challenge, code_challenge_method: "S256" });
    const { location, context, jar } = await loginAndConsent(w, query);
    assert.equal(context.client.registration, "dynamic_registration");
    assert.equal(context.client.redirect_host, "dcr.example");
    const code = location.searchParams.get("code");
    assert.ok(code, String(location));
    const tok = await tokenPost(w, { grant_type: "authorization_code", code, redirect_uri: DCR_CB, client_id: reg.client_id, code_verifier: verifier });
    assert.equal(tok.status, 200, await tok.text());
    // Approved once, asked again.
    const again = await w.fetch(`/auth/authorize?${query}`, { headers: { cookie: cookieHeader(jar) } });
    await again.arrayBuffer();
    assert.equal(again.status, 303);
    assert.match(again.headers.get("location"), /^\/auth\/ui\/consent\.html\?/);

    // Never password nor client_credentials.
    await assertError(await tokenPost(w, { grant_type: "password", client_id: reg.client_id, username: "john", password: "pass123" }), 400, "unauthorized_client");
    await assertError(await tokenPost(w, { grant_type: "client_credentials", client_id: reg.client_id }), 401, "invalid_client");
    // Even when an administrator widens its grant_types.
    const patched = await w.admin("PATCH", `/Client/${reg.client_id}`, { grant_types: ["authorization_code", "password"] });
    assert.equal(patched.status, 200, await patched.text());
    await assertError(await tokenPost(w, { grant_type: "password", client_id: reg.client_id, username: "john", password: "pass123" }), 400, "unauthorized_client");

    assert.equal((await w.admin("DELETE", `/Client/${reg.client_id}`)).status, 200);
    const gone = await w.fetch(`/auth/authorize?${query}`);
    await assertPage(gone, 400, "unknown client");
  });

  test("private_key_jwt with public keys is accepted; private key material is not", async () => {
    const pub = { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" };
    const ok = await register(w, { redirect_uris: [DCR_CB], token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [pub] } });
    const body = await json(ok);
    assert.equal(ok.status, 201, JSON.stringify(body));
    assert.equal(body.token_endpoint_auth_method, "private_key_jwt");
    // A client with keys must authenticate: client_id alone is refused.
    await assertError(await tokenPost(w, { grant_type: "authorization_code", code: "x", client_id: body.client_id, code_verifier: "v".repeat(43) }), 401, "invalid_client");
    const priv = await register(w, { redirect_uris: [DCR_CB], token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [{ ...pub, d: "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A" }] } });
    await assertError(priv, 400, "invalid_client_metadata");
  });

  const refusals = [
    ["no redirect_uris", { client_name: "x" }, "invalid_redirect_uri"],
    ["plain http redirect", { redirect_uris: ["http://evil.example/cb"] }, "invalid_redirect_uri"],
    ["fragment in redirect", { redirect_uris: ["https://a.example/cb#x"] }, "invalid_redirect_uri"],
    ["relative redirect", { redirect_uris: ["/cb"] }, "invalid_redirect_uri"],
    ["javascript: redirect", { redirect_uris: ["javascript://x/%0aalert(1)"] }, "invalid_redirect_uri"],
    ["data: redirect", { redirect_uris: ["data://x/text/html,hi"] }, "invalid_redirect_uri"],
    ["password grant", { redirect_uris: [DCR_CB], grant_types: ["authorization_code", "password"] }, "invalid_client_metadata"],
    ["client_credentials grant", { redirect_uris: [DCR_CB], grant_types: ["client_credentials"] }, "invalid_client_metadata"],
    ["implicit grant", { redirect_uris: [DCR_CB], grant_types: ["implicit"] }, "invalid_client_metadata"],
    ["token response type", { redirect_uris: [DCR_CB], response_types: ["code", "token"] }, "invalid_client_metadata"],
    ["tls_client_auth", { redirect_uris: [DCR_CB], token_endpoint_auth_method: "tls_client_auth" }, "invalid_client_metadata"],
    ["a client_secret", { redirect_uris: [DCR_CB], client_secret: "mine" }, "invalid_client_metadata"],
    ["private_key_jwt without keys", { redirect_uris: [DCR_CB], token_endpoint_auth_method: "private_key_jwt" }, "invalid_client_metadata"],
    ["jwks_uri on loopback", { redirect_uris: [DCR_CB], token_endpoint_auth_method: "private_key_jwt", jwks_uri: "https://127.0.0.1/jwks" }, "invalid_client_metadata"],
    ["system scope", { redirect_uris: [DCR_CB], scope: "system/*.rs" }, "invalid_client_metadata"],
    ["custom scope", { redirect_uris: [DCR_CB], scope: "openid admin" }, "invalid_client_metadata"],
    ["software statement", { redirect_uris: [DCR_CB], software_statement: "eyJ.x.y" }, "invalid_software_statement"],
    ["a JSON array", [DCR_CB], "invalid_client_metadata"],
    ["not JSON", "redirect_uris=x", "invalid_client_metadata"],
  ];
  for (const [name, body, error] of refusals) {
    test(`refused: ${name} -> ${error}`, async () => {
      await assertError(await register(w, body), 400, error);
    });
  }

  test("a registration asking for client_secret_basic or _post gets a public client, no secret (RFC 7591 3.2.1)", async () => {
    for (const method of ["client_secret_basic", "client_secret_post"]) {
      const res = await register(w, { redirect_uris: [DCR_CB], token_endpoint_auth_method: method });
      const body = await json(res);
      assert.equal(res.status, 201, JSON.stringify(body));
      assert.equal(body.token_endpoint_auth_method, "none");
      assert.equal("client_secret" in body, false);
    }
  });

  test("a form body is refused", async () => {
    await assertError(await register(w, "redirect_uris=x", { "content-type": "application/x-www-form-urlencoded" }), 400, "invalid_client_metadata");
  });

  test("off (the default): POST /auth/register is a 404", async () => {
    await assertError(await register(off, { redirect_uris: [DCR_CB] }), 404, "not_found");
  });

  test("registrations per address are limited (DYNAMIC_REGISTRATION_LIMIT)", async () => {
    for (let i = 0; i < 2; i++) {
      const res = await register(strict, { redirect_uris: [DCR_CB] });
      assert.equal(res.status, 201, await res.text());
    }
    const res = await register(strict, { redirect_uris: [DCR_CB] });
    await assertError(res, 429, "temporarily_unavailable");
    assert.ok(Number(res.headers.get("retry-after")) > 0);
  });
});

test("settings that do not parse, and the test-only escape next to a production ISSUER, refuse to load", async () => {
  for (const vars of [
    { CLIENT_ID_METADATA_DOCUMENTS: "yes" },
    { DYNAMIC_REGISTRATION: "true" },
    { DYNAMIC_REGISTRATION_LIMIT: "0" },
    { TEST_ONLY_CIMD_LOOPBACK: "on", ISSUER: "https://auth.example.com" },
  ]) {
    const x = await startWorker({ vars });
    try {
      const res = await x.fetch("/.well-known/openid-configuration");
      await res.arrayBuffer();
      assert.equal(res.status, 500, JSON.stringify(vars));
    } finally {
      await x.dispose();
    }
  }
});

