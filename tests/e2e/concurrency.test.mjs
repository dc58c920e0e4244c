// Atomic state under real concurrency, in workerd: N parallel redemptions of one authorization
// code give exactly one token; N parallel refreshes of one refresh token give exactly one new
// pair (and, being a reuse, revoke the family). The Durable Object decides with one
// compare-and-swap per key.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { startWorker, basicAuth, form, FORM } from "./harness.mjs";

const CB = "https://app.example/cb";
const N = Number(process.env.CONCURRENCY ?? 50);
let w;

before(async () => {
  w = await startWorker();
  const put = async (path, body) => {
    const r = await w.admin("PUT", path, body);
    assert.ok(r.status === 200 || r.status === 201, `${path}: ${r.status} ${await r.text()}`);
  };
  await put("/Client/web", {
    secret: "websecret", grant_types: ["authorization_code"], first_party: true,
    auth: { authorization_code: { redirect_uri: CB, refresh_token: true } },
  });
  await put("/User/john", { email: "john@example.com", password: "pass123" });
  await put("/AccessPolicy/john", { engine: "allow", link: [{ id: "john", resourceType: "User" }] });
});
after(() => w?.dispose());

const b64url = (b) => b.toString("base64url");

/** Signs in over plain HTTP the way the login page does, and returns a fresh code. */
async function code(verifier) {
  const challenge = b64url(createHash("sha256").update(verifier).digest());
  const q = new URLSearchParams({
    response_type: "code", client_id: "web", redirect_uri: CB, state: "s",
    code_challenge: challenge, code_challenge_method: "S256",
  }).toString();
  const ctx = await w.fetch(`/auth/interaction?${q}`);
  assert.equal(ctx.status, 200);
  const { csrf } = await ctx.json();
  const cookie = ctx.headers.get("set-cookie").split(";")[0];
  const login = await w.fetch("/auth/login", {
    method: "POST",
    headers: { ...FORM, cookie },
    body: form({ username: "john", password: "pass123", csrf, query: q }),
  });
  assert.equal(login.status, 303);
  const to = new URL(login.headers.get("location"));
  assert.equal(to.origin + to.pathname, CB);
  return to.searchParams.get("code");
}

const token = (params) =>
  w.fetch("/auth/token", {
    method: "POST",
    headers: { ...FORM, authorization: basicAuth("web", "websecret") },
    body: form(params),
  });

test(`${N} parallel redemptions of one code give exactly one token`, async () => {
  const verifier = b64url(randomBytes(32));
  const c = await code(verifier);
  const results = await Promise.all(
    Array.from({ length: N }, () =>
      token({ grant_type: "authorization_code", code: c, redirect_uri: CB, code_verifier: verifier }).then(async (r) => ({
        status: r.status,
        body: await r.json(),
      })),
    ),
  );
  const ok = results.filter((r) => r.status === 200);
  assert.equal(ok.length, 1, `successes: ${ok.length}; statuses: ${results.map((r) => r.status).join(",")}`);
  for (const r of results.filter((r) => r.status !== 200)) {
    assert.equal(r.status, 400);
    assert.equal(r.body.error, "invalid_grant");
  }
});

test(`${N} parallel refreshes of one refresh token give exactly one new pair`, async () => {
  const verifier = b64url(randomBytes(32));
  const c = await code(verifier);
  const first = await token({ grant_type: "authorization_code", code: c, redirect_uri: CB, code_verifier: verifier });
  assert.equal(first.status, 200);
  const { refresh_token } = await first.json();
  assert.ok(refresh_token);
  const results = await Promise.all(
    Array.from({ length: N }, () =>
      token({ grant_type: "refresh_token", refresh_token }).then(async (r) => ({ status: r.status, body: await r.json() })),
    ),
  );
  const ok = results.filter((r) => r.status === 200);
  assert.equal(ok.length, 1, `successes: ${ok.length}; statuses: ${results.map((r) => r.status).join(",")}`);
  assert.ok(ok[0].body.refresh_token && ok[0].body.refresh_token !== refresh_token);
  for (const r of results.filter((r) => r.status !== 200)) assert.equal(r.body.error, "invalid_grant");
});

test("a refresh token rotates in sequence and a reused one revokes the family", async () => {
  const verifier = b64url(randomBytes(32));
  const c = await code(verifier);
  let r = await token({ grant_type: "authorization_code", code: c, redirect_uri: CB, code_verifier: verifier });
  const rt1 = (await r.json()).refresh_token;
  r = await token({ grant_type: "refresh_token", refresh_token: rt1 });
  assert.equal(r.status, 200);
  const { refresh_token: rt2, access_token: at2 } = await r.json();
  assert.equal((await w.fetch("/Patient", { headers: { authorization: `Bearer ${at2}` } })).status, 200);
  r = await token({ grant_type: "refresh_token", refresh_token: rt1 });
  assert.equal(r.status, 400);
  r = await token({ grant_type: "refresh_token", refresh_token: rt2 });
  assert.equal(r.status, 400, "the family is revoked after reuse");
  const api = await w.fetch("/Patient", { headers: { authorization: `Bearer ${at2}` } });
  assert.equal(api.status, 401, "and so are its access tokens");
});

test("revoked access tokens are refused by the authorizer; revoked refresh tokens stop at once", async () => {
  const verifier = b64url(randomBytes(32));
  const c = await code(verifier);
  const r = await token({ grant_type: "authorization_code", code: c, redirect_uri: CB, code_verifier: verifier });
  const { access_token, refresh_token } = await r.json();
  const revoke = (t) =>
    w.fetch("/auth/revoke", { method: "POST", headers: { ...FORM, authorization: basicAuth("web", "websecret") }, body: form({ token: t }) });
  assert.equal((await revoke(access_token)).status, 200);
  assert.equal((await w.fetch("/Patient", { headers: { authorization: `Bearer ${access_token}` } })).status, 401);
  assert.equal((await revoke(refresh_token)).status, 200);
  assert.equal((await token({ grant_type: "refresh_token", refresh_token })).status, 400);
});
