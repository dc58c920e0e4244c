// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/authorization-code-grant.md
// ("How to configure Authorization Code Grant"): "Configure Client" (Secret and PKCE tabs),
// "Get Code" (GET /auth/authorize as written) and "Get Access Token" (JSON bodies).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, adminRefused, call, assertForwarded, token, bearer } from "./lib.mjs";
import { pkce, interaction, postLogin } from "../e2e/attacks-lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
  // The user who signs in (the doc's token answer shows user / user@mail.com) and, as the doc
  // says, "Access Policies should be configured for User, not for Client".
  await admin(ctx.w, "PUT", "/User/user", { email: "user@mail.com", password: "password" });
  await admin(ctx.w, "PUT", "/AccessPolicy/user-allow", { engine: "allow", link: [{ resourceType: "User", id: "user" }] });
});
after(async () => ctx?.dispose());

const secretClient = (redirect) => ({
  secret: "verysecret",
  first_party: true,
  grant_types: ["code"],
  auth: {
    authorization_code: {
      redirect_uri: redirect,
      access_token_expiration: 360,
      token_format: "jwt",
      secret_required: true,
      refresh_token: true,
      refresh_token_expiration: 86400,
    },
  },
});

const pkceClient = (redirect) => ({
  first_party: true,
  grant_types: ["code"],
  auth: {
    authorization_code: {
      redirect_uri: redirect,
      access_token_expiration: 360,
      token_format: "jwt",
      pkce: true,
      refresh_token: true,
    },
  },
});

/** `GET /auth/authorize?<query>` as the doc writes it, then the login page's sign-in; the code. */
async function signInFor(query) {
  const res = await ctx.w.fetch(`/auth/authorize?${query}`);
  await res.text();
  assert.ok([302, 303].includes(res.status), `authorize: ${res.status}`);
  const login = new URL(res.headers.get("location"), ctx.w.url);
  const q = login.search.slice(1);
  const { csrf, jar } = await interaction(ctx.w, q);
  const done = await postLogin(ctx.w, { query: q, csrf, jar, username: "user", password: "password" });
  const back = new URL(done.headers.get("location") ?? "", ctx.w.url);
  assert.equal(back.origin, "https://myapp.app", `after sign-in: ${done.status} ${back}`);
  assert.equal(back.searchParams.get("state"), "somestate");
  const code = back.searchParams.get("code");
  assert.ok(code, `no code: ${back}`);
  return code;
}

// "Configure Client", both tabs as written.
// Difference: `redirect_uri: 'http://myapp.app'` is refused (422): https only, http just for
// localhost (RFC 9700 2.1); the clients below use https://myapp.app.
test("authorization-code-grant.md: the doc's clients with an http redirect_uri are refused", async () => {
  await adminRefused(ctx.w, "PUT", "/Client/webapp", secretClient("http://myapp.app"));
  await adminRefused(ctx.w, "PUT", "/Client/webapp-pkce", pkceClient("http://myapp.app"));
});

// Tab "Secret": GET /auth/authorize?response_type=code&client_id=webapp&redirect_uri=...&state=somestate,
// sign-in (first_party: no grant page), then POST /auth/token {client_id, client_secret, code,
// grant_type}; the answer: token_type Bearer, expires_in (360 here), refresh_token.
// Difference: the token request repeats `redirect_uri` (RFC 6749 4.1.3: required when the
// authorize request had one; the doc's token request leaves it out). Without it: 400
// invalid_request naming redirect_uri.
// Difference: `userinfo` comes with the password grant only (the ID token carries the user in
// the code flow); the doc's answer shows it here too.
test("authorization-code-grant.md: Secret tab, code for a token", async () => {
  await admin(ctx.w, "PUT", "/Client/webapp", secretClient("https://myapp.app"));
  const query = "response_type=code&client_id=webapp&redirect_uri=https://myapp.app&state=somestate";

  const code1 = await signInFor(query);
  const bare = await token(ctx.w, { client_id: "webapp", client_secret: "verysecret", code: code1, grant_type: "authorization_code" }, { asJson: true });
  assert.equal(bare.res.status, 400, JSON.stringify(bare.body));
  assert.equal(bare.body.error, "invalid_request", JSON.stringify(bare.body));
  assert.match(bare.body.error_description, /redirect_uri/);

  const code2 = await signInFor(query);
  const { res, body } = await token(
    ctx.w,
    { client_id: "webapp", client_secret: "verysecret", code: code2, grant_type: "authorization_code", redirect_uri: "https://myapp.app" },
    { asJson: true },
  );
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.expires_in, 360);
  assert.equal(typeof body.refresh_token, "string");
  assert.equal(body.userinfo, undefined, "userinfo: password grant only");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(body.access_token) }), "the user's token");
  // "secret_required: true": the same exchange without the secret is refused.
  const code3 = await signInFor(query);
  const noSecret = await token(ctx.w, { client_id: "webapp", code: code3, grant_type: "authorization_code", redirect_uri: "https://myapp.app" }, { asJson: true });
  assert.equal(noSecret.res.status, 401, JSON.stringify(noSecret.body));
  assert.equal(noSecret.body.error, "invalid_client");
});

// Tab "PKCE": GET /auth/authorize with code_challenge/code_challenge_method=S256, then POST
// /auth/token {client_id, code_verifier, code, grant_type}. The doc's verifier is cut short
// ("nzr2Us...Bh..."), so a fresh pair is made; `redirect_uri` is repeated (see above).
test("authorization-code-grant.md: PKCE tab, public client", async () => {
  await admin(ctx.w, "PUT", "/Client/webapp-pkce", pkceClient("https://myapp.app"));
  const { verifier, challenge } = pkce();
  const code = await signInFor(
    `response_type=code&client_id=webapp-pkce&redirect_uri=https://myapp.app&state=somestate&code_challenge=${challenge}&code_challenge_method=S256`,
  );
  const wrong = await token(
    ctx.w,
    { client_id: "webapp-pkce", code_verifier: pkce().verifier, code, grant_type: "authorization_code", redirect_uri: "https://myapp.app" },
    { asJson: true },
  );
  assert.equal(wrong.res.status, 400, JSON.stringify(wrong.body));
  const code2 = await signInFor(
    `response_type=code&client_id=webapp-pkce&redirect_uri=https://myapp.app&state=somestate&code_challenge=${challenge}&code_challenge_method=S256`,
  );
  const { res, body } = await token(
    ctx.w,
    { client_id: "webapp-pkce", code_verifier: verifier, code: code2, grant_type: "authorization_code", redirect_uri: "https://myapp.app" },
    { asJson: true },
  );
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.equal(typeof body.refresh_token, "string");
});
