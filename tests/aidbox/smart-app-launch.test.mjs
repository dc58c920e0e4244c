// Aidbox docs replayed: docs/access-control/authorization/smart-on-fhir/smart-client-authorization/smart-app-launch.md
// ("SMART App Launch"): "Register SMART Client" (Public and Confidential tabs), "Create
// AccessPolicy", "Obtain authorization code" and "Obtain access token" (a standalone launch of a
// patient user). The docs' JSON is used as it is, without its `//` comments.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, adminRefused, call, assertForwarded, token, bearer } from "./lib.mjs";
import { pkce, interaction, postLogin, postConsent, authorizeQuery } from "../e2e/attacks-lib.mjs";
import { decodeJwt } from "../e2e/harness.mjs";

let ctx;
before(async () => {
  ctx = await boot();
});
after(async () => ctx?.dispose());

const publicClient = () => ({
  resourceType: "Client",
  id: "my-public-smart-app-client-id",
  active: true,
  auth: {
    authorization_code: {
      redirect_uri: "http://smart-app-uri.com/redirect",
      refresh_token: true,
      token_format: "jwt",
      access_token_expiration: 3600000,
      secret_required: false,
      pkce: true,
    },
  },
  smart: { launch_uri: "http://smart-app-launch-endpoint/launch.html" },
  type: "smart-app",
  grant_types: ["code"],
});

const confidentialClient = () => ({
  resourceType: "Client",
  id: "my-confidential-smart-app-client-id",
  active: true,
  auth: {
    authorization_code: {
      redirect_uri: "http://smart-app-uri.com/redirect",
      refresh_token: true,
      token_format: "jwt",
      access_token_expiration: 3600000,
      secret_required: true,
      pkce: true,
    },
  },
  secret: "quOfCRS7ty1RMUQq",
  smart: { launch_uri: "http://smart-app-launch-endpoint/launch.html" },
  type: "smart-app",
  grant_types: ["code"],
});

/** The doc's URIs on https (see the Difference below). */
function onHttps(c) {
  c.auth.authorization_code.redirect_uri = "https://smart-app-uri.com/redirect";
  c.smart.launch_uri = "https://smart-app-launch-endpoint/launch.html";
  return c;
}

// "Register SMART Client", both tabs, verbatim.
// Difference: redirect and launch URIs must be https (http only for localhost/loopback, RFC 9700
// 2.1 and 4.1.3): the doc's `http://smart-app-uri.com/redirect` and `http://smart-app-launch-endpoint/...`
// are refused (422 naming the field). The same clients on https are accepted, without
// `fhir-base-url` (it defaults to our FHIR base, as the issue asks).
test("smart-app-launch.md: the public and confidential SMART clients", async () => {
  for (const c of [publicClient(), confidentialClient()]) {
    const refused = await adminRefused(ctx.w, "PUT", `/Client/${c.id}`, c);
    assert.match(refused.text, /https/);
  }
  for (const c of [publicClient(), confidentialClient()]) {
    const stored = await admin(ctx.w, "PUT", `/Client/${c.id}`, onHttps(c));
    assert.equal(stored.type, "smart-app");
    assert.equal(stored.secret, undefined, "secrets are never returned");
  }
});

// "Create AccessPolicy": `PUT /AccessPolicy/my-confidential-smart-app-client-id` with
// `"id": "my-smart-app-client-id-allow"` in the body.
// Difference: a body id that differs from the URL's is refused (422 "must match the id in the
// URL", FHIR's update rule) rather than stored under one of them; with the ids agreeing it is
// stored.
test("smart-app-launch.md: the AccessPolicy, whose body id differs from the URL", async () => {
  const policy = {
    resourceType: "AccessPolicy",
    id: "my-smart-app-client-id-allow",
    engine: "allow",
    link: [{ id: "my-public-smart-app-client-id", resourceType: "Client" }],
  };
  const refused = await adminRefused(ctx.w, "PUT", "/AccessPolicy/my-confidential-smart-app-client-id", policy);
  assert.match(refused.text, /"field":"id"/);
  await admin(ctx.w, "PUT", "/AccessPolicy/my-smart-app-client-id-allow", policy);
});

// "Obtain authorization code" (the doc's /auth/authorize query: response_type code, the public
// client, redirect_uri, scope `launch/patient openid fhirUser offline_access patient/*.read`,
// state, aud, PKCE S256) and "Obtain access token" (JSON body: client_id, code, code_verifier,
// grant_type, redirect_uri); the doc's response carries access_token, refresh_token, scope,
// token_type Bearer, id_token, expires_in and patient.
// The user is a patient user (`fhirUser` as Aidbox writes it), so the standalone launch needs no
// picker. `aud` is our FHIR base (`<issuer>/fhir`, given as the client's fhir-base-url).
// Difference: a client gets only the clinical scopes it is registered for (docs/smart-on-fhir.md,
// "The scope ceiling"); the doc's client lists none, so `scope` is added to it.
test("smart-app-launch.md: standalone launch, code flow with PKCE, token for the patient", async () => {
  const FHIR = `${ctx.w.url}/fhir`;
  const scope = "launch/patient openid fhirUser offline_access patient/*.read";
  await admin(ctx.w, "PUT", "/Client/my-public-smart-app-client-id", { ...onHttps(publicClient()), "fhir-base-url": FHIR, scope: scope.split(" ") });
  await admin(ctx.w, "PUT", "/AccessPolicy/my-smart-app-client-id-allow", {
    resourceType: "AccessPolicy",
    id: "my-smart-app-client-id-allow",
    engine: "allow",
    link: [{ id: "my-public-smart-app-client-id", resourceType: "Client" }],
  });
  await admin(ctx.w, "PUT", "/User/test-user", { password: "test-user-password", email: "example@mail.com", fhirUser: { id: "test-pt-1", resourceType: "Patient" } });

  const { verifier, challenge } = pkce();
  const query = authorizeQuery({
    response_type: "code",
    client_id: "my-public-smart-app-client-id",
    redirect_uri: "https://smart-app-uri.com/redirect",
    scope,
    state: "863c2f71-11e3-4598-913b-930a6aa1593c",
    aud: FHIR,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  const { csrf, jar } = await interaction(ctx.w, query);
  let res = await postLogin(ctx.w, { query, csrf, jar, username: "test-user", password: "test-user-password" });
  let location = new URL(res.headers.get("location") ?? "", ctx.w.url);
  if (!location.searchParams.get("code")) {
    // A third-party app: the user approves the scopes on the consent page.
    const session = { ...jar };
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      session[pair.slice(0, i)] = pair.slice(i + 1);
    }
    const consent = await interaction(ctx.w, query, session);
    res = await postConsent(ctx.w, { query, csrf: consent.csrf, jar: consent.jar });
    location = new URL(res.headers.get("location") ?? "", ctx.w.url);
  }
  assert.equal(location.origin + location.pathname, "https://smart-app-uri.com/redirect", `redirect: ${location}`);
  assert.equal(location.searchParams.get("state"), "863c2f71-11e3-4598-913b-930a6aa1593c");
  const code = location.searchParams.get("code");
  assert.ok(code, `no code: ${location}`);

  const { res: tr, body } = await token(
    ctx.w,
    {
      client_id: "my-public-smart-app-client-id",
      code,
      code_verifier: verifier,
      grant_type: "authorization_code",
      redirect_uri: "https://smart-app-uri.com/redirect",
    },
    { asJson: true },
  );
  assert.equal(tr.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.patient, "test-pt-1");
  assert.equal(typeof body.refresh_token, "string", "refresh_token: true");
  assert.equal(typeof body.id_token, "string", "openid");
  assert.equal(typeof body.expires_in, "number");
  for (const s of scope.split(" ")) assert.ok(body.scope.split(" ").includes(s), `scope ${s} in ${body.scope}`);
  assert.equal(decodeJwt(body.id_token).payload.fhirUser, `${FHIR}/Patient/test-pt-1`);

  // The allow policy of "Create AccessPolicy" lets the app's token through.
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient/test-pt-1", { auth: bearer(body.access_token) }), "GET own Patient");
});
