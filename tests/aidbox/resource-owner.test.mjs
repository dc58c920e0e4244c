// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/resource-owner-grant.md,
// .../prohibit-user-to-login.md and .../creating-user-and-set-up-full-user-access.md. The
// resources are the docs' YAML as JSON; the requests are the docs' requests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, call, assertForwarded, assertRefused, token, bearer, basicAuth } from "./lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
  // resource-owner-grant.md, "Configure Client": PUT /fhir/Client/myapp (set up with PUT /Client;
  // the /fhir alias is tested in basic-auth.test.mjs).
  await admin(ctx.w, "PUT", "/Client/myapp", { secret: "verysecret", grant_types: ["password"] });
  // The doc's user (username `user`, password `password`, the email its token response shows).
  // The doc gives no User resource for it; this is the smallest one that matches.
  await admin(ctx.w, "PUT", "/User/user", { email: "user@mail.com", password: "password" });
  // "Client will act on behalf of the user, which means Access Policies should be configured for
  // User": the allow policy of creating-user-and-set-up-full-user-access.md, linked to this user.
  await admin(ctx.w, "PUT", "/AccessPolicy/allow-user", { engine: "allow", link: [{ resourceType: "User", id: "user" }] });
});
after(async () => ctx?.dispose());

// resource-owner-grant.md, "Get Access Token", tab "Request with Authorization header":
// grant_type=password&username=user&password=password; "token-response": 200, token_type
// Bearer, access_token, userinfo {email, id, resourceType}.
test("resource-owner-grant.md: password grant with the Authorization header returns userinfo", async () => {
  const { res, body } = await token(ctx.w, { grant_type: "password", username: "user", password: "password" }, { auth: basicAuth("myapp", "verysecret") });
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.equal(typeof body.access_token, "string");
  assert.equal(typeof body.expires_in, "number");
  assert.equal(body.userinfo?.id, "user", JSON.stringify(body));
  assert.equal(body.userinfo?.resourceType, "User");
  // Difference: `userinfo` is cut to the granted scopes, as the ID token is (docs/reference.md "Token
  // endpoint"): the email comes with the `email` scope, not to every client that asks for a token.
  assert.equal(body.userinfo?.email, undefined);
  const withEmail = await token(
    ctx.w,
    { grant_type: "password", username: "user", password: "password", scope: "openid email" },
    { auth: basicAuth("myapp", "verysecret") },
  );
  assert.equal(withEmail.res.status, 200, JSON.stringify(withEmail.body));
  assert.equal(withEmail.body.userinfo?.email, "user@mail.com");
  // "Use Access Token": GET /fhir/Patient with the bearer token.
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(body.access_token) }), "GET /fhir/Patient");
});

// resource-owner-grant.md, "Get Access Token", tab "Request with credentials in body" (JSON).
test("resource-owner-grant.md: password grant with client_id/client_secret in a JSON body", async () => {
  const { res, body } = await token(
    ctx.w,
    { grant_type: "password", client_id: "myapp", client_secret: "verysecret", username: "user", password: "password" },
    { asJson: true },
  );
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
});

// resource-owner-grant.md, table: `auth.password.secret_required: false` ("require client secret
// for token"): the client then gets a token with client_id alone.
test("resource-owner-grant.md: auth.password.secret_required false", async () => {
  await admin(ctx.w, "PUT", "/Client/myapp-nosecret", {
    secret: "verysecret",
    grant_types: ["password"],
    auth: { password: { secret_required: false } },
  });
  const { res, body } = await token(
    ctx.w,
    { grant_type: "password", client_id: "myapp-nosecret", username: "user", password: "password" },
    { asJson: true },
  );
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(typeof body.access_token, "string");
});

// prohibit-user-to-login.md: "Lock a user account" (PATCH /User/my-user {"inactive": true});
// hint: "Login attempts return 400 with "error": "invalid_grant" and "error_description": "User
// is inactive"". Then "Unlock a user account" ({"inactive": false}) lets the user in again.
// Difference: the description is the one of a wrong password ("invalid username or password"),
// not "User is inactive": saying an account is locked tells whoever tries a leaked password
// that the account exists and the password is right (docs/reference.md "Errors": one message, no account
// enumeration). Status and `error` are Aidbox's.
test("prohibit-user-to-login.md: inactive: true blocks login with 400 invalid_grant, false unblocks", async () => {
  await admin(ctx.w, "PUT", "/User/my-user", { password: "my-user-password" });
  const login = () => token(ctx.w, { grant_type: "password", username: "my-user", password: "my-user-password" }, { auth: basicAuth("myapp", "verysecret") });
  assert.equal((await login()).res.status, 200);

  await admin(ctx.w, "PATCH", "/User/my-user", { inactive: true });
  const locked = await login();
  assert.equal(locked.res.status, 400, JSON.stringify(locked.body));
  assert.equal(locked.body.error, "invalid_grant");
  const wrong = await token(ctx.w, { grant_type: "password", username: "my-user", password: "not-the-password" }, { auth: basicAuth("myapp", "verysecret") });
  assert.equal(locked.body.error_description, wrong.body.error_description, "locked reads like a wrong password");

  await admin(ctx.w, "PATCH", "/User/my-user", { inactive: false });
  const unlocked = await login();
  assert.equal(unlocked.res.status, 200, JSON.stringify(unlocked.body));
});

// creating-user-and-set-up-full-user-access.md, "User resource example": PUT /User/exampleuser
// {email, password: '123456'}; the AccessPolicy allow-all linked to it; "Now user can use this
// email & password to log-in".
// Difference: the doc's response shows the stored hash (`password: $s0$...`); here hashes are
// never returned (docs/reference.md "Admin API", Secrets), so the response carries no `password`.
test("creating-user-and-set-up-full-user-access.md: a User with email and password, allow-all for it", async () => {
  const created = await admin(ctx.w, "PUT", "/User/exampleuser", { email: "test@example.com", password: "123456" });
  assert.equal(created.email, "test@example.com");
  assert.equal(created.id, "exampleuser");
  assert.equal(created.resourceType, "User");
  assert.equal(created.password, undefined, "the hash is not returned");
  const policy = await admin(ctx.w, "PUT", "/AccessPolicy/allow-all", { engine: "allow", link: [{ resourceType: "User", id: "exampleuser" }] });
  assert.equal(policy.engine, "allow");
  assert.deepEqual(policy.link, [{ resourceType: "User", id: "exampleuser" }]);
  assert.equal(policy.id, "allow-all");

  const { res, body } = await token(ctx.w, { grant_type: "password", username: "test@example.com", password: "123456" }, { auth: basicAuth("myapp", "verysecret") });
  assert.equal(res.status, 200, JSON.stringify(body));
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(body.access_token) }), "allow-all user");
});

// creating-user-and-set-up-full-user-access.md, the Response tab: the User as Aidbox stores it,
// `password: $s0$f0801$HhKy93HnLn0qSmsS2JCZnQ==$P0oAp6yx6k8bCbeFN2UT9UfjKROuggn7deLbX2Mpm2M=`
// (scrypt N=2^15, r=8, p=1 of '123456'). A User exported from Aidbox with that hash is imported
// as is and its password keeps working.
test("creating-user-and-set-up-full-user-access.md: the doc's exported User with the scrypt hash logs in with 123456", async () => {
  await admin(ctx.w, "PUT", "/User/exampleuser-imported", {
    email: "imported@example.com",
    password: "$s0$f0801$HhKy93HnLn0qSmsS2JCZnQ==$P0oAp6yx6k8bCbeFN2UT9UfjKROuggn7deLbX2Mpm2M=",
    resourceType: "User",
  });
  const ok = await token(ctx.w, { grant_type: "password", username: "exampleuser-imported", password: "123456" }, { auth: basicAuth("myapp", "verysecret") });
  assert.equal(ok.res.status, 200, JSON.stringify(ok.body));
  // The hash is a hash, not a password: sending it as the password does not sign in.
  const hashAsPassword = await token(
    ctx.w,
    { grant_type: "password", username: "exampleuser-imported", password: "$s0$f0801$HhKy93HnLn0qSmsS2JCZnQ==$P0oAp6yx6k8bCbeFN2UT9UfjKROuggn7deLbX2Mpm2M=" },
    { auth: basicAuth("myapp", "verysecret") },
  );
  assert.equal(hashAsPassword.res.status, 400, JSON.stringify(hashAsPassword.body));
});

// resource-owner-grant.md: wrong password, the doc's flow otherwise (RFC 6749 5.2 invalid_grant).
test("resource-owner-grant.md: a wrong password is 400 invalid_grant and the API stays closed", async () => {
  const { res, body } = await token(ctx.w, { grant_type: "password", username: "user", password: "not-it" }, { auth: basicAuth("myapp", "verysecret") });
  assert.equal(res.status, 400);
  assert.equal(body.error, "invalid_grant");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient"), "anonymous", 401);
});
