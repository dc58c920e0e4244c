// Issue 17, "Sender-constrained tokens": DPoP (RFC 9449) at the token endpoint and on the
// protected API, against the built Worker in workerd. Proofs are built here with node:crypto
// (ES256 and Ed25519 keys), as docs/dpop.md's example does with WebCrypto in a browser.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, randomUUID } from "node:crypto";
import { startWorker, startOrigin, basicAuth, decodeJwt, json } from "./harness.mjs";
import { assertError, dpopKey, forge, nowSecs, put, rawHttp, tokenPost } from "./attacks-lib.mjs";

let w, wn, origin;
const APP = basicAuth("app", "s");

const ath = (token) => createHash("sha256").update(token).digest("base64url");

/** A proof for `method url` (an access token adds `ath`); `header`/`claims` override members. */
function proof(key, method, url, { token, nonce, header = {}, claims = {}, signer } = {}) {
  const h = { typ: "dpop+jwt", alg: "ES256", jwk: key.jwk, ...header };
  const c = { jti: randomUUID(), htm: method, htu: url, iat: nowSecs(), ...claims };
  if (token) c.ath = ath(token);
  if (nonce) c.nonce = nonce;
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return forge(h, c, signer ?? { es256: key.privateKey });
}

const tokenUrl = (wk = w) => `${wk.url}/auth/token`;

/** A password-grant token request as `auth` (a Basic header, or null for the public client). */
function passwordToken(dpop, { auth = APP, client, wk = w, scope = "read" } = {}) {
  const params = { grant_type: "password", username: "john", password: "pass123", scope };
  if (client) params.client_id = client;
  return tokenPost(wk, params, { auth, headers: dpop === undefined ? {} : { dpop } });
}

async function boundToken(key, opts) {
  const r = await passwordToken(proof(key, "POST", tokenUrl(opts?.wk)), opts);
  const body = await json(r);
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}

/** An API call; a refused one must never reach the origin. */
async function api(at, dpop, { scheme = "DPoP", path, wk = w, method = "GET" } = {}) {
  path ??= `/Patient/p-${Math.random().toString(36).slice(2)}`;
  const headers = { authorization: `${scheme} ${at}` };
  if (dpop !== undefined) headers.dpop = dpop;
  const r = await wk.fetch(path, { method, headers });
  const text = await r.text();
  const reached = origin.requests.some((q) => q.url.includes(path));
  if (r.status === 401) assert.ok(!reached, "a refused request reached the origin");
  return { status: r.status, headers: r.headers, text, body: text ? JSON.parse(text) : null };
}

function assertDpopChallenge(res, error) {
  const all = res.headers.get("www-authenticate") ?? "";
  assert.match(all, /DPoP algs="ES256 ES384 EdDSA Ed25519 RS256"/, all);
  if (error) assert.match(all, new RegExp(`DPoP algs="[^"]*", error="${error}"`), all);
}

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  wn = await startWorker({ originUrl: origin.url, vars: { DPOP_NONCE: "on" } });
  for (const wk of [w, wn]) {
    const refresh = { password: { refresh_token: true } };
    await put(wk, "/Client/app", { secret: "s", grant_types: ["password"], scope: ["read", "openid"], auth: refresh });
    await put(wk, "/Client/pub", { grant_types: ["password"], scope: ["read"], auth: refresh });
    await put(wk, "/Client/bound", { secret: "s", grant_types: ["password"], scope: ["read"], dpop_bound_access_tokens: true });
    await put(wk, "/User/john", { email: "john@example.com", password: "pass123" });
    await put(wk, "/AccessPolicy/all", { engine: "allow" });
  }
});
after(async () => {
  await w?.dispose();
  await wn?.dispose();
  await origin?.dispose();
});

test("discovery lists the DPoP algorithms", async () => {
  for (const doc of ["openid-configuration", "oauth-authorization-server"]) {
    const m = await json(await w.fetch(`/.well-known/${doc}`));
    assert.deepEqual(m.dpop_signing_alg_values_supported, ["ES256", "ES384", "EdDSA", "Ed25519", "RS256"]);
  }
});

test("happy path: a DPoP-bound token (cnf.jkt, token_type DPoP) calls the API with a proof", async () => {
  const key = dpopKey();
  const t = await boundToken(key);
  assert.equal(t.token_type, "DPoP");
  assert.deepEqual(decodeJwt(t.access_token).payload.cnf, { jkt: key.thumbprint });
  const path = "/Patient/dpop-ok";
  const r = await api(t.access_token, proof(key, "GET", `${w.url}${path}`, { token: t.access_token }), { path });
  assert.equal(r.status, 200, r.text);
  assert.ok(origin.requests.some((q) => q.url === path));
  // The query is not part of htu (RFC 9449 4.3 step 9); a second call, its claims from the
  // token cache, still needs its own proof.
  const q = await api(t.access_token, proof(key, "GET", `${w.url}/Patient/dpop-ok2`, { token: t.access_token }), { path: "/Patient/dpop-ok2?x=1" });
  assert.equal(q.status, 200, q.text);
  const cached = await api(t.access_token, undefined);
  assert.equal(cached.status, 401);
  assertDpopChallenge(cached, "invalid_dpop_proof");
  // An Ed25519 key works too.
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const ed = { jwk: publicKey.export({ format: "jwk" }) };
  const edProof = forge({ typ: "dpop+jwt", alg: "EdDSA", jwk: ed.jwk }, { jti: randomUUID(), htm: "POST", htu: tokenUrl(), iat: nowSecs() },
    { ed25519: privateKey.export({ format: "jwk" }) });
  const r2 = await passwordToken(edProof);
  const b2 = await json(r2);
  assert.equal(r2.status, 200, JSON.stringify(b2));
  assert.equal(b2.token_type, "DPoP");
});

test("OIDC userinfo takes a DPoP-bound token with the DPoP scheme and a proof for /auth/userinfo; as Bearer or without a proof it is refused", async () => {
  const key = dpopKey();
  const t = await boundToken(key, { scope: "openid" });
  const url = `${w.url}/auth/userinfo`;
  const call = (authorization, dpop) => w.fetch("/auth/userinfo", { headers: dpop ? { authorization, dpop } : { authorization } });
  const ok = await call(`DPoP ${t.access_token}`, proof(key, "GET", url, { token: t.access_token }));
  const claims = await json(ok);
  assert.equal(ok.status, 200, JSON.stringify(claims));
  assert.equal(claims.sub, "john");
  const bearer = await call(`Bearer ${t.access_token}`);
  await bearer.arrayBuffer();
  assert.equal(bearer.status, 401);
  const noProof = await call(`DPoP ${t.access_token}`);
  await noProof.arrayBuffer();
  assert.equal(noProof.status, 401);
  const otherKey = await call(`DPoP ${t.access_token}`, proof(dpopKey(), "GET", url, { token: t.access_token }));
  await otherKey.arrayBuffer();
  assert.equal(otherKey.status, 401);
});

test("without a proof the token is a plain Bearer token, as before", async () => {
  const r = await passwordToken(undefined);
  const b = await json(r);
  assert.equal(r.status, 200, JSON.stringify(b));
  assert.equal(b.token_type, "Bearer");
  assert.equal(decodeJwt(b.access_token).payload.cnf, undefined);
  assert.equal((await api(b.access_token, undefined, { scheme: "Bearer" })).status, 200);
  // An unbound token with the DPoP scheme: refused (it is bound to nothing a proof could show).
  const key = dpopKey();
  const r2 = await api(b.access_token, proof(key, "GET", `${w.url}/Patient/x`, { token: b.access_token }), { path: "/Patient/x" });
  assert.equal(r2.status, 401);
  assert.equal(r2.body.error, "invalid_token");
});

test("a DPoP-bound token presented as Bearer is refused (RFC 9449 7.1), with both challenges", async () => {
  const key = dpopKey();
  const t = await boundToken(key);
  const r = await api(t.access_token, undefined, { scheme: "Bearer" });
  assert.equal(r.status, 401);
  assert.equal(r.body.error, "invalid_token");
  assert.match(r.headers.get("www-authenticate"), /Bearer realm="edge-authorizer", error="invalid_token"/);
  assertDpopChallenge(r);
  // Also with a valid proof beside it.
  const path = "/Patient/b";
  const r2 = await api(t.access_token, proof(key, "GET", `${w.url}${path}`, { token: t.access_token }), { scheme: "Bearer", path });
  assert.equal(r2.status, 401);
  // A malformed Authorization: both schemes offered.
  const anon = await w.fetch("/Patient/anon", { headers: { authorization: "Bearer" } });
  await anon.arrayBuffer();
  assert.equal(anon.status, 401);
  assert.match(anon.headers.get("www-authenticate") ?? "", /DPoP algs=/);
});

test("token endpoint refusals: each answers 400 invalid_dpop_proof", async () => {
  const key = dpopKey();
  const other = dpopKey();
  const url = tokenUrl();
  const cases = {
    "wrong htm": proof(key, "GET", url),
    "wrong htu": proof(key, "POST", `${w.url}/auth/authorize`),
    "another host in htu": proof(key, "POST", "https://evil.example/auth/token"),
    "stale iat": proof(key, "POST", url, { claims: { iat: nowSecs() - 400 } }),
    "future iat": proof(key, "POST", url, { claims: { iat: nowSecs() + 120 } }),
    "no jti": proof(key, "POST", url, { claims: { jti: undefined } }),
    "typ JWT": proof(key, "POST", url, { header: { typ: "JWT" } }),
    "alg none": forge({ typ: "dpop+jwt", alg: "none", jwk: key.jwk }, { jti: "n", htm: "POST", htu: url, iat: nowSecs() }, { raw: "" }),
    "alg HS256": forge({ typ: "dpop+jwt", alg: "HS256", jwk: key.jwk }, { jti: "h", htm: "POST", htu: url, iat: nowSecs() }, { hs256: Buffer.from("k") }),
    "alg not the jwk's": proof(key, "POST", url, { header: { alg: "EdDSA" } }),
    "alg RS256 with an EC key": proof(key, "POST", url, { header: { alg: "RS256" } }),
    "private key in jwk": proof(key, "POST", url, { header: { jwk: { ...key.jwk, d: key.privateKey.export({ format: "jwk" }).d } } }),
    "symmetric jwk": proof(key, "POST", url, { header: { jwk: { kty: "oct", k: "c2VjcmV0" } } }),
    "no jwk": proof(key, "POST", url, { header: { jwk: undefined } }),
    "signed by another key": proof(key, "POST", url, { signer: { es256: other.privateKey } }),
    "not a JWS": "not-a-jws",
    "oversize": proof(key, "POST", url, { claims: { pad: "x".repeat(9000) } }),
  };
  for (const [name, dpop] of Object.entries(cases)) {
    const r = await passwordToken(dpop);
    const body = await assertError(r, 400, "invalid_dpop_proof");
    assert.ok(body.error_description, name);
  }
  // Replay: the same proof twice.
  const once = proof(key, "POST", url);
  assert.equal((await passwordToken(once)).status, 200);
  await assertError(await passwordToken(once), 400, "invalid_dpop_proof");
  // Two DPoP headers (raw HTTP: two header lines).
  const a = proof(key, "POST", url);
  const b = proof(key, "POST", url);
  const res = await rawHttp(w.url, {
    path: "/auth/token",
    headers: [`authorization: ${APP}`, "content-type: application/x-www-form-urlencoded", `dpop: ${a}`, `dpop: ${b}`],
    body: Buffer.from("grant_type=password&username=john&password=pass123&scope=read"),
  });
  await assertError(res, 400, "invalid_dpop_proof");
});

test("API refusals: 401 with a DPoP challenge, nothing reaches the origin", async () => {
  const key = dpopKey();
  const other = dpopKey();
  const t = await boundToken(key);
  const at = t.access_token;
  const path = "/Patient/refusal";
  const url = `${w.url}${path}`;
  const cases = {
    "no proof": undefined,
    "wrong htm": proof(key, "POST", url, { token: at }),
    "wrong htu": proof(key, "GET", `${w.url}/Patient/other`, { token: at }),
    "token endpoint htu": proof(key, "GET", tokenUrl(), { token: at }),
    "stale iat": proof(key, "GET", url, { token: at, claims: { iat: nowSecs() - 400 } }),
    "future iat": proof(key, "GET", url, { token: at, claims: { iat: nowSecs() + 120 } }),
    "no ath": proof(key, "GET", url),
    "wrong ath": proof(key, "GET", url, { claims: { ath: ath("another token") } }),
    "another key than cnf": proof(other, "GET", url, { token: at }),
    "alg none": forge({ typ: "dpop+jwt", alg: "none", jwk: key.jwk }, { jti: "n", htm: "GET", htu: url, iat: nowSecs(), ath: ath(at) }, { raw: "" }),
    "private key in jwk": proof(key, "GET", url, { token: at, header: { jwk: { ...key.jwk, d: key.privateKey.export({ format: "jwk" }).d } } }),
  };
  for (const [name, dpop] of Object.entries(cases)) {
    const r = await api(at, dpop, { path });
    assert.equal(r.status, 401, `${name}: ${r.text}`);
    assert.equal(r.body.error, "invalid_dpop_proof", name);
    assertDpopChallenge(r, "invalid_dpop_proof");
  }
  // Replay of a proof that passed once.
  const ok = proof(key, "GET", url, { token: at });
  assert.equal((await api(at, ok, { path })).status, 200);
  const again = await w.fetch(path, { headers: { authorization: `DPoP ${at}`, dpop: ok } });
  assert.equal(again.status, 401);
  assert.equal((await again.json()).error, "invalid_dpop_proof");
  // Two DPoP headers (fetch joins them with a comma, as workerd would).
  const h = new Headers({ authorization: `DPoP ${at}` });
  h.append("dpop", proof(key, "GET", url, { token: at }));
  h.append("dpop", proof(key, "GET", url, { token: at }));
  const two = await w.fetch(path, { headers: h });
  assert.equal(two.status, 401);
  assert.equal((await two.json()).error, "invalid_dpop_proof");
});

test("introspection shows cnf and token_type DPoP", async () => {
  const key = dpopKey();
  const t = await boundToken(key);
  const r = await w.fetch("/auth/introspect", {
    method: "POST",
    headers: { authorization: APP, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: t.access_token }),
  });
  const b = await json(r);
  assert.equal(b.active, true);
  assert.equal(b.token_type, "DPoP");
  assert.deepEqual(b.cnf, { jkt: key.thumbprint });
});

test("a public client's refresh token is bound to its DPoP key (RFC 9449 5)", async () => {
  const key = dpopKey();
  const other = dpopKey();
  const t = await boundToken(key, { auth: null, client: "pub" });
  assert.ok(t.refresh_token);
  const refresh = (dpop) => tokenPost(w, { grant_type: "refresh_token", client_id: "pub", refresh_token: t.refresh_token },
    { headers: dpop ? { dpop } : {} });
  await assertError(await refresh(undefined), 400, "invalid_dpop_proof");
  await assertError(await refresh(proof(other, "POST", tokenUrl())), 400, "invalid_dpop_proof");
  const r = await refresh(proof(key, "POST", tokenUrl()));
  const b = await json(r);
  assert.equal(r.status, 200, JSON.stringify(b));
  assert.equal(b.token_type, "DPoP");
  assert.deepEqual(decodeJwt(b.access_token).payload.cnf, { jkt: key.thumbprint });
  // The rotated token stays bound.
  const r2 = await tokenPost(w, { grant_type: "refresh_token", client_id: "pub", refresh_token: b.refresh_token });
  await assertError(r2, 400, "invalid_dpop_proof");
});

test("a confidential client's refresh token is not bound; the new access token follows the proof", async () => {
  const key = dpopKey();
  const other = dpopKey();
  const t = await boundToken(key);
  const r = await tokenPost(w, { grant_type: "refresh_token", refresh_token: t.refresh_token },
    { auth: APP, headers: { dpop: proof(other, "POST", tokenUrl()) } });
  const b = await json(r);
  assert.equal(r.status, 200, JSON.stringify(b));
  assert.deepEqual(decodeJwt(b.access_token).payload.cnf, { jkt: other.thumbprint });
  const r2 = await tokenPost(w, { grant_type: "refresh_token", refresh_token: b.refresh_token }, { auth: APP });
  const b2 = await json(r2);
  assert.equal(r2.status, 200, JSON.stringify(b2));
  assert.equal(b2.token_type, "Bearer");
});

test("dpop_bound_access_tokens: the client must send a proof; the field is validated", async () => {
  const auth = basicAuth("bound", "s");
  await assertError(await passwordToken(undefined, { auth }), 400, "invalid_dpop_proof");
  const key = dpopKey();
  const r = await passwordToken(proof(key, "POST", tokenUrl()), { auth });
  const b = await json(r);
  assert.equal(r.status, 200, JSON.stringify(b));
  assert.equal(b.token_type, "DPoP");
  const bad = await w.admin("PUT", "/Client/badbound", { secret: "s", grant_types: ["password"], dpop_bound_access_tokens: "yes" });
  assert.equal(bad.status, 422, await bad.text());
});

test("DPOP_NONCE=on: use_dpop_nonce with a DPoP-Nonce, then the nonce is accepted", async () => {
  const key = dpopKey();
  const url = tokenUrl(wn);
  const first = await passwordToken(proof(key, "POST", url), { wk: wn });
  await assertError(first, 400, "use_dpop_nonce");
  const nonce = first.headers.get("dpop-nonce");
  assert.ok(nonce, "a DPoP-Nonce header");
  // A nonce we never issued (or one from an expired window) is the same refusal.
  const forged = await passwordToken(proof(key, "POST", url, { nonce: "AAAAAAAAAAAAAAAAAAAAAAAA" }), { wk: wn });
  await assertError(forged, 400, "use_dpop_nonce");
  const ok = await passwordToken(proof(key, "POST", url, { nonce }), { wk: wn });
  const t = await json(ok);
  assert.equal(ok.status, 200, JSON.stringify(t));
  assert.ok(ok.headers.get("dpop-nonce"));
  // The API: 401 with the nonce challenge, then accepted.
  const path = "/Patient/nonce";
  const r = await api(t.access_token, proof(key, "GET", `${wn.url}${path}`, { token: t.access_token }), { path, wk: wn });
  assert.equal(r.status, 401);
  assert.equal(r.body.error, "use_dpop_nonce");
  assertDpopChallenge(r, "use_dpop_nonce");
  const n2 = r.headers.get("dpop-nonce");
  assert.ok(n2);
  const r2 = await api(t.access_token, proof(key, "GET", `${wn.url}${path}`, { token: t.access_token, nonce: n2 }), { path, wk: wn });
  assert.equal(r2.status, 200, r2.text);
});

test("dpop_jkt at the authorization endpoint binds the code to the key (RFC 9449 10)", async () => {
  const CB = "http://127.0.0.1:1/cb";
  await put(w, "/Client/spa", { grant_types: ["authorization_code"], first_party: true, auth: { authorization_code: { redirect_uri: CB } } });
  const key = dpopKey();
  const other = dpopKey();
  const code = async (dpopJkt) => {
    const verifier = randomUUID() + randomUUID();
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const q = new URLSearchParams({ response_type: "code", client_id: "spa", redirect_uri: CB, state: "s",
      code_challenge: challenge, code_challenge_method: "S256", dpop_jkt: dpopJkt }).toString();
    const ctx = await w.fetch(`/auth/interaction?${q}`);
    assert.equal(ctx.status, 200, await ctx.clone().text());
    const { csrf } = await ctx.json();
    const cookie = ctx.headers.get("set-cookie").split(";")[0];
    const login = await w.fetch("/auth/login", {
      method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", cookie },
      body: new URLSearchParams({ username: "john", password: "pass123", csrf, query: q }),
    });
    assert.equal(login.status, 303);
    return { code: new URL(login.headers.get("location")).searchParams.get("code"), verifier };
  };
  const { code: c, verifier } = await code(key.thumbprint);
  assert.ok(c);
  const redeem = (dpop) => tokenPost(w, { grant_type: "authorization_code", client_id: "spa", code: c, redirect_uri: CB, code_verifier: verifier },
    { headers: dpop ? { dpop } : {} });
  await assertError(await redeem(undefined), 400, "invalid_dpop_proof");
  await assertError(await redeem(proof(other, "POST", tokenUrl())), 400, "invalid_dpop_proof");
  // The failed attempts did not burn the code.
  const r = await redeem(proof(key, "POST", tokenUrl()));
  const b = await json(r);
  assert.equal(r.status, 200, JSON.stringify(b));
  assert.deepEqual(decodeJwt(b.access_token).payload.cnf, { jkt: key.thumbprint });
  // A malformed dpop_jkt is refused at the authorization endpoint (an error redirect).
  const bad = await w.fetch(`/auth/authorize?${new URLSearchParams({ response_type: "code", client_id: "spa", redirect_uri: CB,
    code_challenge: "x".repeat(43), code_challenge_method: "S256", dpop_jkt: "not-a-thumbprint" })}`);
  assert.ok([302, 303].includes(bad.status), `${bad.status}`);
  assert.equal(new URL(bad.headers.get("location")).searchParams.get("error"), "invalid_request");
});

test("a TokenIntrospector's JWT with cnf.jkt: refused as Bearer, accepted with the key's proof", async () => {
  const SECRET = "an-oct-secret-that-is-at-least-32-bytes-long";
  await put(w, "/TokenIntrospector/ext", { type: "jwt", jwt: { iss: "https://ext.example", aud: "my-api", keys: [{ k: SECRET, kty: "OCT", alg: "HS256", format: "plain" }] } });
  const key = dpopKey();
  const other = dpopKey();
  const ext = (cnf) => forge({ typ: "JWT", alg: "HS256" },
    { iss: "https://ext.example", sub: "ext-user", aud: "my-api", iat: nowSecs(), exp: nowSecs() + 300, ...(cnf ? { cnf } : {}) }, { hs256: SECRET });
  let n = 0;
  /** An API call on a path of its own (a refused one must not reach the origin). */
  const call = (token, { scheme = "DPoP", by } = {}) => {
    const path = `/Patient/ext-${++n}`;
    return api(token, by ? proof(by, "GET", `${w.url}${path}`, { token }) : undefined, { scheme, path });
  };
  // Control: unbound, as Bearer.
  assert.equal((await call(ext(), { scheme: "Bearer" })).status, 200);
  const bound = ext({ jkt: key.thumbprint });
  const asBearer = await call(bound, { scheme: "Bearer" });
  assert.equal(asBearer.status, 401);
  assert.equal(asBearer.body.error, "invalid_token");
  assert.equal((await call(bound, { by: key })).status, 200);
  const wrongKey = await call(bound, { by: other });
  assert.equal(wrongKey.status, 401);
  assert.equal(wrongKey.body.error, "invalid_dpop_proof");
  // A confirmation method we cannot check (mTLS) is refused either way.
  const mtls = ext({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" });
  const r = await call(mtls, { scheme: "Bearer" });
  assert.equal(r.status, 401);
  assert.equal(r.body.error, "invalid_token");
});

test("DPOP_NONCE with another value than on/off fails the configuration load", async () => {
  const bad = await startWorker({ vars: { DPOP_NONCE: "yes" } });
  try {
    const r = await bad.fetch("/.well-known/openid-configuration");
    assert.equal(r.status, 500);
    await r.arrayBuffer();
  } finally {
    await bad.dispose();
  }
});

test("CORS: an SPA's preflight may send DPoP, and its answers expose DPoP-Nonce", async () => {
  const SPA = "https://spa.example";
  await put(wn, "/Client/cors-spa", { grant_types: ["password"], scope: ["read"], allowed_origins: [SPA] });
  for (const p of ["/auth/token", "/Patient"]) {
    const pre = await wn.fetch(p, { method: "OPTIONS", headers: { origin: SPA, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, dpop" } });
    assert.equal(pre.status, 204, p);
    assert.match(pre.headers.get("access-control-allow-headers"), /\bdpop\b/, p);
  }
  const key = dpopKey();
  const r = await tokenPost(wn, { grant_type: "password", client_id: "cors-spa", username: "john", password: "pass123", scope: "read" },
    { headers: { origin: SPA, dpop: proof(key, "POST", tokenUrl(wn)) } });
  await assertError(r, 400, "use_dpop_nonce");
  assert.equal(r.headers.get("access-control-allow-origin"), SPA);
  assert.match(r.headers.get("access-control-expose-headers"), /\bdpop-nonce\b/);
});
