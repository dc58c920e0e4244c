// The Worker's console output in workerd, captured while flows run with known secrets,
// passwords, codes and tokens: none of them may appear, and a server-side failure must still
// be logged with its reason.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { startWorker, basicAuth, form, json, FORM } from "./harness.mjs";

const CB = "https://app.example/callback";
const CLIENT_SECRET = "client-secret-LOGTEST-1";
const PASSWORD = "user-password-LOGTEST-2";
const HS_SECRET = "introspector-secret-LOGTEST-3-0123456789abcdef";
const OPAQUE_AUTH = "Basic b3BhcXVlOkxPR1RFU1QtNA==";
let w;
const secrets = [CLIENT_SECRET, PASSWORD, HS_SECRET, OPAQUE_AUTH];

before(async () => {
  w = await startWorker({ captureLogs: true });
  secrets.push(w.adminSecret, w.signingKey.d);
  const put = async (p, b) => {
    const r = await w.admin("PUT", p, b);
    assert.ok([200, 201].includes(r.status), `${p}: ${r.status} ${await r.text()}`);
  };
  await put("/Client/web", {
    secret: CLIENT_SECRET, first_party: true, grant_types: ["authorization_code", "password"],
    auth: { authorization_code: { redirect_uri: CB, refresh_token: true }, password: { refresh_token: true } },
  });
  await put("/User/john", { email: "john@example.com", password: PASSWORD });
  await put("/AccessPolicy/john", { engine: "allow", link: [{ id: "john", resourceType: "User" }] });
  await put("/TokenIntrospector/idp", { type: "jwt", jwt: { iss: "https://idp.example", secret: HS_SECRET } });
  // An opaque-token introspector whose endpoint is down: requests through it fail with 503.
  await put("/TokenIntrospector/down", {
    type: "opaque", introspection_endpoint: { url: "http://127.0.0.1:9/introspect", authorization: OPAQUE_AUTH },
  });
});
after(() => w?.dispose());

const auth = basicAuth("web", CLIENT_SECRET);
const token = (params, authorization = auth) =>
  w.fetch("/auth/token", { method: "POST", headers: { ...FORM, authorization }, body: form(params) });

test("flows with known secrets leave none of them in the log; failures are still logged", async () => {
  // Password grant with refresh and ID token.
  const t = await json(await token({ grant_type: "password", username: "john", password: PASSWORD, scope: "openid" }));
  assert.ok(t.access_token && t.refresh_token && t.id_token, JSON.stringify(t));
  secrets.push(t.access_token, t.refresh_token, t.id_token);
  const r2 = await json(await token({ grant_type: "refresh_token", refresh_token: t.refresh_token }));
  secrets.push(r2.access_token, r2.refresh_token);

  // Authorization code + PKCE through the login form.
  const verifier = randomBytes(32).toString("base64url");
  secrets.push(verifier);
  const q = new URLSearchParams({
    response_type: "code", client_id: "web", redirect_uri: CB,
    code_challenge: createHash("sha256").update(verifier).digest("base64url"), code_challenge_method: "S256",
  }).toString();
  const ctx = await w.fetch(`/auth/interaction?${q}`);
  const { csrf } = await ctx.json();
  secrets.push(csrf);
  const login = await w.fetch("/auth/login", {
    method: "POST",
    headers: { ...FORM, cookie: ctx.headers.get("set-cookie").split(";")[0] },
    body: form({ username: "john", password: PASSWORD, csrf, query: q }),
  });
  assert.equal(login.status, 303);
  const session = login.headers.getSetCookie().find((c) => c.startsWith("edge_session=")).split(";")[0].split("=")[1];
  secrets.push(session);
  const code = new URL(login.headers.get("location")).searchParams.get("code");
  secrets.push(code);
  const c = await json(await token({ grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier }));
  assert.ok(c.access_token, JSON.stringify(c));
  secrets.push(c.access_token);
  // The code replayed, a wrong password, a wrong secret, a bad bearer: client errors.
  await (await token({ grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier })).text();
  await (await token({ grant_type: "password", username: "john", password: PASSWORD + "x" })).text();
  await (await token({ grant_type: "password", username: "john", password: PASSWORD }, basicAuth("web", CLIENT_SECRET + "x"))).text();
  await (await w.fetch("/Patient", { headers: { authorization: `Bearer ${t.access_token}x` } })).text();
  await (await w.fetch("/Patient", { headers: { authorization: `Bearer ${c.access_token}` } })).text();
  await (await w.fetch("/auth/userinfo", { headers: { authorization: `Bearer ${t.access_token}` } })).text();

  // A server-side failure: the opaque introspection endpoint is unreachable.
  const opaque = "opaque-token-LOGTEST-5";
  secrets.push(opaque);
  const down = await w.fetch("/Patient", { headers: { authorization: `Bearer ${opaque}` } });
  assert.equal(down.status, 503, await down.text());

  // workerd hands the logs over asynchronously.
  for (let i = 0; i < 50 && !w.logs.some((l) => l.message.includes("temporarily_unavailable")); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const text = w.logs.map((l) => `${l.level}: ${l.message}`).join("\n");
  assert.match(text, /temporarily_unavailable/, `the 503 is logged with its reason:\n${text}`);
  for (const s of secrets) {
    assert.ok(s && s.length >= 8, `a known secret is empty: ${s}`);
    assert.ok(!text.includes(s), `the log has a secret (${s.slice(0, 6)}...):\n${text}`);
  }
});
