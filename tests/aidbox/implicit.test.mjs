// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/implicit-grant.md
// ("Implicit Grant"), its Example: "Create client" (POST /Client imp-client) and "Request access
// token" (the curl to /auth/authorize), answered by a redirect to the client's redirect_uri with
// `#access_token=...&state=example` after sign-in and the grant page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, call, assertForwarded, bearer } from "./lib.mjs";
import { interaction, postLogin, postConsent, cookies } from "../e2e/attacks-lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
  await admin(ctx.w, "PUT", "/User/user", { email: "user@mail.com", password: "password" });
  await admin(ctx.w, "PUT", "/AccessPolicy/user-allow", { engine: "allow", link: [{ resourceType: "User", id: "user" }] });
});
after(async () => ctx?.dispose());

test("implicit-grant.md: imp-client gets an access token in the redirect fragment", async () => {
  // "Create client": POST /Client with id imp-client in the body.
  const res = await ctx.w.admin("POST", "/Client", {
    id: "imp-client",
    resourceType: "Client",
    grant_types: ["implicit"],
    auth: { implicit: { redirect_uri: "http://localhost:3449/auth.html" } },
  });
  assert.equal(res.status, 201, await res.text());

  // "Request access token": the curl's URL, as written.
  const authorize = await ctx.w.fetch(
    "/auth/authorize?state=example&client_id=imp-client&redirect_uri=http%3A%2F%2Flocalhost%3A3449%2Fauth.html&response_type=token",
  );
  await authorize.text();
  assert.ok([302, 303].includes(authorize.status), `authorize: ${authorize.status}`);
  // "After this request, the resource owner (user) will be redirected to Log-in/Sign-up page."
  const query = new URL(authorize.headers.get("location"), ctx.w.url).search.slice(1);
  const { csrf, jar } = await interaction(ctx.w, query);
  let done = await postLogin(ctx.w, { query, csrf, jar, username: "user", password: "password" });
  let location = new URL(done.headers.get("location") ?? "", ctx.w.url);
  if (location.origin !== "http://localhost:3449") {
    // "Next step is granting access to the client" (imp-client is not first_party).
    const grant = await interaction(ctx.w, query, { ...jar, ...cookies(done) });
    done = await postConsent(ctx.w, { query, csrf: grant.csrf, jar: grant.jar });
    location = new URL(done.headers.get("location") ?? "", ctx.w.url);
  }
  // "Response": Location: http://localhost:3449/auth.html#access_token=...&state=example
  assert.equal(`${location.origin}${location.pathname}`, "http://localhost:3449/auth.html", `redirect: ${location}`);
  const fragment = new URLSearchParams(location.hash.slice(1));
  assert.equal(fragment.get("state"), "example");
  const accessToken = fragment.get("access_token");
  assert.ok(accessToken, `no access_token in ${location.hash}`);
  assert.equal(location.search, "", "the token is in the fragment, never the query");

  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(accessToken) }), "the implicit token");
});
