// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/basic-auth.md ("How to
// configure Basic Auth flow") and docs/access-control/authentication/basic-http-authentication.md.
// The resources are the docs' YAML as JSON; the requests are the docs' requests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, call, assertForwarded, assertRefused, basicAuth } from "./lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
});
after(async () => ctx?.dispose());

// basic-auth.md, "Register Client" and the AccessPolicy below it, set up with PUT (the doc's
// `POST /fhir/Client` form is its own test below).
async function registerBasic() {
  // id: basic / secret: secret / grant_types: [basic]
  await admin(ctx.w, "PUT", "/Client/basic", { id: "basic", secret: "secret", grant_types: ["basic"] });
  // id: api-clients / engine: allow / description / link: [{reference: Client/basic}]
  await admin(ctx.w, "PUT", "/AccessPolicy/api-clients", {
    id: "api-clients",
    engine: "allow",
    description: "Root access to specific clients",
    link: [{ reference: "Client/basic" }],
  });
}

// basic-auth.md, "Making Requests with Basic Auth": `curl -u basic:secret https://yourbox/Patient`.
test("basic-auth.md: curl -u basic:secret /Patient is let through by the api-clients policy", async () => {
  await registerBasic();
  await assertForwarded(ctx, await call(ctx, "/Patient", { auth: basicAuth("basic", "secret") }), "GET /Patient");
});

// basic-auth.md, "Making Requests with Basic Auth" (code title "basic-request"): `GET /fhir/Patient`.
// The doc's literal header `Basic YmFzaWM6c2VjcmV0Cg==` encodes "basic:secret\n" (a stray newline
// from `echo | base64`), so the header is built from basic:secret, as the curl line next to it does.
test("basic-auth.md: GET /fhir/Patient with Basic basic:secret", async () => {
  await registerBasic();
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: basicAuth("basic", "secret") }), "GET /fhir/Patient");
});

// basic-auth.md, "Register Client": `POST /fhir/Client` with `id: basic` in the body, and
// `POST /fhir/AccessPolicy` with `id: api-clients` (the FHIR base path alias of the admin API).
test("basic-auth.md: POST /fhir/Client and POST /fhir/AccessPolicy with the id in the body", async () => {
  const c = await ctx.w.admin("POST", "/fhir/Client", { id: "basic-fhir", secret: "secret", grant_types: ["basic"] });
  assert.equal(c.status, 201, `POST /fhir/Client: ${c.status} ${await c.text()}`);
  const p = await ctx.w.admin("POST", "/fhir/AccessPolicy", {
    id: "api-clients-fhir",
    engine: "allow",
    description: "Root access to specific clients",
    link: [{ reference: "Client/basic-fhir" }],
  });
  assert.equal(p.status, 201, `POST /fhir/AccessPolicy: ${p.status} ${await p.text()}`);
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: basicAuth("basic-fhir", "secret") }), "GET /fhir/Patient");
});

// basic-http-authentication.md, hint: "The Client resource must include "basic" in its
// grant_types array for Basic Auth to work."
test("basic-http-authentication.md: a client without basic in grant_types cannot use Basic auth", async () => {
  await admin(ctx.w, "PUT", "/Client/no-basic", { secret: "secret", grant_types: ["client_credentials"] });
  await admin(ctx.w, "PUT", "/AccessPolicy/no-basic", { engine: "allow", link: [{ reference: "Client/no-basic" }] });
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: basicAuth("no-basic", "secret") }), "Basic without the grant", 401);
});

// basic-auth.md: "By default, your client does not have any permissions to access Aidbox REST API."
test("basic-auth.md: a basic client without a policy is refused", async () => {
  await admin(ctx.w, "PUT", "/Client/lonely", { secret: "secret", grant_types: ["basic"] });
  await assertRefused(ctx, await call(ctx, "/Patient", { auth: basicAuth("lonely", "secret") }), "no policy");
});
