// Issue 17, red team (docs/attack-corpus.md "Issue 17 — red team"): the five parts of issue 17
// (native redirects + PAR, resource indicators, CIMD/DCR, DPoP) attacked where they meet.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-redteam17.test.mjs   (after the Worker build)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { startWorker, startOrigin, basicAuth, json, FORM, form } from "./harness.mjs";
import { dpopKey, forge, nowSecs, put, pkce, interaction, postLogin, authorizeQuery, tokenPost, rawHttp } from "./attacks-lib.mjs";

const SPA_CB = "https://spa.example/cb";
const LOOP_CB = "http://127.0.0.1/callback";
let w;

const proof = (key, method, url) =>
  forge({ typ: "dpop+jwt", alg: "ES256", jwk: key.jwk }, { jti: randomUUID(), htm: method, htu: url, iat: nowSecs() }, { es256: key.privateKey });

before(async () => {
  w = await startWorker();
  // An SPA registered to use DPoP for every token (RFC 9449 5.2), which may also use the
  // implicit flow (an Aidbox client often lists both).
  await put(w, "/Client/bound-spa", {
    grant_types: ["authorization_code", "implicit"],
    first_party: true,
    scope: ["openid"],
    dpop_bound_access_tokens: true,
    auth: { authorization_code: { redirect_uri: SPA_CB }, implicit: { redirect_uri: SPA_CB } },
  });
  await put(w, "/Client/spa", {
    grant_types: ["authorization_code", "implicit"],
    first_party: true,
    scope: ["openid"],
    auth: { authorization_code: { redirect_uri: [SPA_CB, LOOP_CB] }, implicit: { redirect_uri: SPA_CB } },
  });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
});
after(() => w?.dispose());

/** Signs john in for `query`; the Location of the login's 303. */
async function signIn(query) {
  const i = await interaction(w, query);
  const res = await postLogin(w, { query, csrf: i.csrf, jar: i.jar });
  assert.equal(res.status, 303, `login answered ${res.status}: ${await res.text()}`);
  return res.headers.get("location");
}

/** The fragment parameters of an implicit-flow redirect. */
const fragment = (location) => new URLSearchParams(new URL(location).hash.slice(1));

test("implicit flow for a dpop_bound_access_tokens client: refused at the redirect, no Bearer token (RFC 9449 5.2)", async () => {
  const query = authorizeQuery({ response_type: "token", client_id: "bound-spa", redirect_uri: SPA_CB, scope: "openid", state: "st" });
  const start = await w.fetch(`/auth/authorize?${query}`, { redirect: "manual" });
  const location = start.status === 303 && start.headers.get("location").startsWith(SPA_CB)
    ? start.headers.get("location")
    : await signIn(query);
  const f = fragment(location);
  assert.equal(f.get("access_token"), null, `a bearer token was issued: ${location}`);
  assert.equal(f.get("error"), "unsupported_response_type");
  assert.equal(f.get("state"), "st");
});

test("implicit flow with dpop_jkt: refused, the token could not be bound (RFC 9449 10)", async () => {
  const key = dpopKey();
  const query = authorizeQuery({ response_type: "token", client_id: "spa", redirect_uri: SPA_CB, scope: "openid", state: "st", dpop_jkt: key.thumbprint });
  const start = await w.fetch(`/auth/authorize?${query}`, { redirect: "manual" });
  const location = start.status === 303 && start.headers.get("location").startsWith(SPA_CB)
    ? start.headers.get("location")
    : await signIn(query);
  const f = fragment(location);
  assert.equal(f.get("access_token"), null, `an unbound token was issued: ${location}`);
  assert.equal(f.get("error"), "invalid_request");
});

test("controls: the implicit flow still works for an unbound client; the bound client's code flow still works", async () => {
  const imp = await signIn(authorizeQuery({ response_type: "token", client_id: "spa", redirect_uri: SPA_CB, scope: "openid", state: "st" }));
  assert.equal(fragment(imp).get("token_type"), "Bearer");
  const { verifier, challenge } = pkce();
  const loc = await signIn(authorizeQuery({ response_type: "code", client_id: "bound-spa", redirect_uri: SPA_CB, scope: "openid", state: "st", code_challenge: challenge, code_challenge_method: "S256" }));
  const code = new URL(loc).searchParams.get("code");
  assert.ok(code, loc);
  const key = dpopKey();
  const r = await tokenPost(w, { grant_type: "authorization_code", code, client_id: "bound-spa", redirect_uri: SPA_CB, code_verifier: verifier }, { headers: { dpop: proof(key, "POST", `${w.url}/auth/token`) } });
  const body = await json(r);
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "DPoP");
});

test("loopback redirect look-alikes are not the registered loopback redirect (RFC 8252 7.3)", async () => {
  const { challenge } = pkce();
  for (const uri of [
    "http://127.0.0.1:0/callback",
    "http://127.0.0.1.:5000/callback",
    "http://[::ffff:127.0.0.1]:5000/callback",
    "http://[0:0:0:0:0:0:0:1]:5000/callback",
    "HTTP://127.0.0.1:5000/callback",
    "http://127.0.0.1:5000/Callback",
    "http://127.0.0.1:5000/callback/",
    "http://127.0.0.1:5000/callback?x=1",
    "http://127.0.0.1:5000@evil.example/callback",
    "http://127.0.0.1:5000/callback#x",
    "http://2130706433:5000/callback",
    "http://127.1:5000/callback",
    "http://localhost:5000/callback",
  ]) {
    const q = authorizeQuery({ response_type: "code", client_id: "spa", redirect_uri: uri, scope: "openid", code_challenge: challenge });
    const r = await w.fetch(`/auth/authorize?${q}`, { redirect: "manual" });
    assert.equal(r.status, 400, `${uri}: ${r.status} ${r.headers.get("location")}`);
  }
  // Control: another port is the registered loopback redirect.
  const q = authorizeQuery({ response_type: "code", client_id: "spa", redirect_uri: "http://127.0.0.1:5000/callback", scope: "openid", code_challenge: challenge });
  const r = await w.fetch(`/auth/authorize?${q}`, { redirect: "manual" });
  assert.equal(r.status, 303);
  assert.ok(r.headers.get("location").startsWith("/auth/ui/login.html?"));
});

/** POST /auth/par for the public client `spa` with these parameters and headers. */
function push(params, headers = {}) {
  return w.fetch("/auth/par", {
    method: "POST",
    headers: { ...FORM, ...headers },
    body: form({ client_id: "spa", response_type: "code", redirect_uri: SPA_CB, scope: "openid", state: "st", ...params }),
  });
}

test("PAR with a DPoP proof binds the code to the proof's key (RFC 9449 10.1): redeemed without it, or with another key, refused", async () => {
  const key = dpopKey();
  const { verifier, challenge } = pkce();
  const res = await push({ code_challenge: challenge }, { dpop: proof(key, "POST", `${w.url}/auth/par`) });
  const body = await json(res);
  assert.equal(res.status, 201, JSON.stringify(body));
  const loc = await signIn(authorizeQuery({ client_id: "spa", request_uri: body.request_uri }));
  const code = new URL(loc).searchParams.get("code");
  assert.ok(code, loc);
  const redeem = (headers) => tokenPost(w, { grant_type: "authorization_code", code, client_id: "spa", redirect_uri: SPA_CB, code_verifier: verifier }, { headers });
  const bare = await redeem({});
  assert.equal(bare.status, 400, `redeemed without a proof: ${await bare.text()}`);
  const other = await redeem({ dpop: proof(dpopKey(), "POST", `${w.url}/auth/token`) });
  assert.equal(other.status, 400, `redeemed with another key: ${await other.text()}`);
  // Control: the pushing key redeems it (a failed redemption does not burn the code).
  const good = await redeem({ dpop: proof(key, "POST", `${w.url}/auth/token`) });
  const tokens = await json(good);
  assert.equal(good.status, 200, JSON.stringify(tokens));
  assert.equal(tokens.token_type, "DPoP");
});

test("PAR: dpop_jkt naming another key than the proof's is refused; a proof made for /auth/token is not one for /auth/par", async () => {
  const key = dpopKey();
  const { challenge } = pkce();
  const mismatch = await push({ code_challenge: challenge, dpop_jkt: dpopKey().thumbprint }, { dpop: proof(key, "POST", `${w.url}/auth/par`) });
  const m = await json(mismatch);
  assert.equal(mismatch.status, 400, JSON.stringify(m));
  assert.equal(m.error, "invalid_dpop_proof");
  const wrongHtu = await push({ code_challenge: challenge }, { dpop: proof(key, "POST", `${w.url}/auth/token`) });
  const h = await json(wrongHtu);
  assert.equal(wrongHtu.status, 400, JSON.stringify(h));
  assert.equal(h.error, "invalid_dpop_proof");
  // Control: matching dpop_jkt and proof.
  const ok = await push({ code_challenge: challenge, dpop_jkt: key.thumbprint }, { dpop: proof(key, "POST", `${w.url}/auth/par`) });
  assert.equal(ok.status, 201, await ok.text());
});

test("CIMD: a client_id (or jwks_uri) on the Worker's own origin is refused before any fetch, so a nested client_id cannot make the Worker call itself", async () => {
  const wc = await startWorker({ vars: { CLIENT_ID_METADATA_DOCUMENTS: "on", TEST_ONLY_CIMD_LOOPBACK: "on" } });
  try {
    // Each level's fetch of /auth/authorize would resolve the next client_id, and so on.
    let id = `${wc.url}/cimd/leaf.json`;
    for (let i = 0; i < 3; i++) id = `${wc.url}/auth/authorize?${new URLSearchParams({ client_id: id, response_type: "code" })}`;
    const r = await wc.fetch(`/auth/authorize?${new URLSearchParams({ client_id: id, response_type: "code", redirect_uri: "https://x.example/cb" })}`);
    const text = (await r.text()).replace(/<[^>]*>/g, " ");
    assert.equal(r.status, 401, text);
    assert.match(text, /own origin/, text);
    assert.doesNotMatch(text, /answered/, `the Worker fetched itself: ${text}`);
    // The same at the PAR endpoint (client authentication by client_id alone).
    const par = await wc.fetch("/auth/par", { method: "POST", headers: FORM, body: form({ client_id: `${wc.url}/cimd/x.json`, response_type: "code" }) });
    const body = await json(par);
    assert.equal(par.status, 401, JSON.stringify(body));
    assert.equal(body.error, "invalid_client");
    assert.match(body.error_description, /own origin/);
  } finally {
    await wc.dispose();
  }
});

test("a token minted for the /mcp resource never reaches the origin outside /mcp, whatever the path's spelling (RFC 8707)", async () => {
  const origin = await startOrigin();
  const wr = await startWorker({ originUrl: origin.url, vars: { PROTECTED_RESOURCES: "/mcp,/fhir" } });
  try {
    await put(wr, "/Client/bot", { secret: "b1", grant_types: ["client_credentials"] });
    await put(wr, "/AccessPolicy/bot", { engine: "allow", link: [{ id: "bot", resourceType: "Client" }] });
    const r = await tokenPost(wr, { grant_type: "client_credentials", resource: `${wr.url}/mcp` }, { auth: basicAuth("bot", "b1") });
    const token = (await json(r)).access_token;
    assert.ok(token);
    const get = async (path) => {
      origin.requests.length = 0;
      const res = await rawHttp(wr.url, { method: "GET", path, headers: [`authorization: Bearer ${token}`] });
      return { status: res.status, reached: origin.requests.map((q) => q.url) };
    };
    for (const path of ["/fhir/Patient", "/Patient", "/mcp/../fhir/Patient", "/mcp/%2e%2e/fhir/Patient", "/mcp/.%2e/Patient", "/mcp/..%2ffhir/Patient", "/mcp%2f../fhir/Patient", "/MCP/x", "/mcpx", "//mcp/x", "/mcp;/../fhir/Patient", "/mcp\\..\\fhir"]) {
      const { status, reached } = await get(path);
      assert.ok([400, 401].includes(status), `${path}: ${status}`);
      assert.deepEqual(reached, [], `${path} reached the origin`);
    }
    // Controls: under /mcp it passes; a dot segment resolving inside /mcp stays inside it.
    assert.deepEqual(await get("/mcp/x"), { status: 200, reached: ["/mcp/x"] });
    assert.deepEqual(await get("/mcp//../fhir/Patient"), { status: 200, reached: ["/mcp/fhir/Patient"] });
  } finally {
    await wr.dispose();
    await origin.dispose();
  }
});

test("PAR with DPOP_NONCE=on: a proof without a nonce is a 400 use_dpop_nonce with a DPoP-Nonce to retry with, and the retry binds the request", async () => {
  const wn = await startWorker({ vars: { DPOP_NONCE: "on" } });
  try {
    await put(wn, "/Client/spa", { grant_types: ["authorization_code"], first_party: true, scope: ["openid"], auth: { authorization_code: { redirect_uri: SPA_CB } } });
    const key = dpopKey();
    const { challenge } = pkce();
    const send = (dpop) => wn.fetch("/auth/par", {
      method: "POST",
      headers: { ...FORM, dpop },
      body: form({ client_id: "spa", response_type: "code", redirect_uri: SPA_CB, scope: "openid", code_challenge: challenge }),
    });
    const first = await send(proof(key, "POST", `${wn.url}/auth/par`));
    const err = await json(first);
    assert.equal(first.status, 400, JSON.stringify(err));
    assert.equal(err.error, "use_dpop_nonce");
    const nonce = first.headers.get("dpop-nonce");
    assert.ok(nonce, "no DPoP-Nonce");
    const withNonce = forge({ typ: "dpop+jwt", alg: "ES256", jwk: key.jwk }, { jti: randomUUID(), htm: "POST", htu: `${wn.url}/auth/par`, iat: nowSecs(), nonce }, { es256: key.privateKey });
    const retry = await send(withNonce);
    assert.equal(retry.status, 201, await retry.text());
  } finally {
    await wn.dispose();
  }
});
