// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/rbac/flexible-rbac-built-in-to-aidbox.md
// ("Flexible RBAC built-in to Aidbox") and .../rbac/rbac-with-jwt-containing-role.md ("RBAC with
// JWT containing role"). The resources are the docs' YAML as JSON; the requests are the docs'.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, adminRefused, call, assertForwarded, assertRefused, passwordToken, bearer, hs256, nowSecs } from "./lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
});
after(async () => ctx?.dispose());

// flexible-rbac-built-in-to-aidbox.md: "Create a user" (POST /fhir/User, id user-1), "Create a
// Role resource" (POST /fhir/Role practioner-role-user-1), "Create an access policy"
// (practitioner-role: roleName practitioner, link Operation/FhirRead, matcho on uri and
// params.resource/id = .session.role.0.links.practitioner.id); "Try it": log in as user-1,
// GET /fhir/Practitioner/pr-1 returns the Practitioner. (The Practitioner itself lives in the
// origin here: we are not a FHIR server.)
test("flexible-rbac-built-in-to-aidbox.md: a practitioner reads their own Practitioner", async () => {
  await admin(ctx.w, "PUT", "/Client/rbac-app", { secret: "rbac-app-secret", grant_types: ["password"] });
  await admin(ctx.w, "POST", "/fhir/User", { id: "user-1", password: "password", resourceType: "User" });
  await admin(ctx.w, "POST", "/fhir/Role", {
    id: "practioner-role-user-1",
    resourceType: "Role",
    user: { reference: "User/user-1" },
    name: "practitioner",
    links: { practitioner: { reference: "Practitioner/pr-1" } },
  });
  await admin(ctx.w, "POST", "/AccessPolicy", {
    id: "practitioner-role",
    resourceType: "AccessPolicy",
    roleName: "practitioner",
    engine: "matcho",
    link: [{ id: "FhirRead", resourceType: "Operation" }],
    matcho: {
      uri: "#/fhir/Practitioner/.*",
      "request-method": "get",
      params: { "resource/id": ".session.role.0.links.practitioner.id" },
    },
  });
  // A second user, no Role.
  await admin(ctx.w, "PUT", "/User/user-2", { password: "password" });
  const t = await passwordToken(ctx.w, "rbac-app", "rbac-app-secret", "user-1", "password");
  const u2 = await passwordToken(ctx.w, "rbac-app", "rbac-app-secret", "user-2", "password");
  await assertForwarded(ctx, await call(ctx, "/fhir/Practitioner/pr-1", { auth: bearer(t) }), "own Practitioner");
  await assertRefused(ctx, await call(ctx, "/fhir/Practitioner/pr-2", { auth: bearer(t) }), "another Practitioner");
  await assertRefused(ctx, await call(ctx, "/fhir/Practitioner/pr-1", { auth: bearer(u2) }), "user without the role");
});

// rbac-with-jwt-containing-role.md, "Create TokenIntrospector": external-auth-server with
// `jwt.secret: very-secret`.
// Difference: an HS256 secret shorter than 32 bytes is refused (422 naming jwt.secret; RFC 7518
// 3.2 asks for a key at least as long as the hash, and an 11-byte secret falls to a dictionary
// attack on any token). Aidbox accepts it.
test("rbac-with-jwt-containing-role.md: jwt.secret very-secret is refused (at least 32 bytes here)", async () => {
  const refused = await adminRefused(ctx.w, "PUT", "/fhir/TokenIntrospector/external-auth-server", {
    resourceType: "TokenIntrospector",
    id: "external-auth-server",
    type: "jwt",
    jwt: { iss: "https://auth.example.com", secret: "very-secret" },
  });
  assert.match(refused.text, /jwt\.secret/);
  assert.match(refused.text, /32/);
});

// rbac-with-jwt-containing-role.md, "Create AccessPolicy for the role manager"
// (as-manager-get-users-list, json-schema, link Operation/FhirSearch) and "Use the JWT to get the
// access": GET /fhir/User with a JWT of iss https://auth.example.com and role manager returns a
// Bundle. The secret is a 32+ byte one (see above). The policy's `uri` enum names `/User`, so the
// request is `GET /User` (the doc sends `/fhir/User`, whose `uri` the enum does not list).
// Difference: the doc's schema says `constant`, which is not a JSON Schema keyword (draft-07 has
// `const`): Aidbox ignores it, so its policy admits any `role` and any `iss`. Here an unknown
// keyword is refused on write (422 naming the field); with `const`, as meant, it works.
// Difference: Operation links never cover the admin API (`/User`, `/Client`, ... have no
// operation id here), so a policy linked to Operation/FhirSearch for FHIR searches cannot list
// users by accident; the doc's policy as linked gives 403, the same policy without the link
// (it names `uri: /User` itself) gives the doc's Bundle.
// Difference: the token names our audience (`aud`, RFC 9068 4; the doc's token has
// aud https://auth.example.com, its own issuer); a JWT for another audience is 401.
test("rbac-with-jwt-containing-role.md: a manager JWT lists users through the admin API", async () => {
  const secret = "very-secret-very-secret-very-secret-32+";
  await admin(ctx.w, "PUT", "/TokenIntrospector/external-auth-server", {
    resourceType: "TokenIntrospector",
    id: "external-auth-server",
    type: "jwt",
    jwt: { iss: "https://auth.example.com", secret },
  });
  const policy = (c, link = [{ reference: "Operation/FhirSearch" }]) => ({
    resourceType: "AccessPolicy",
    id: "as-manager-get-users-list",
    engine: "json-schema",
    ...(link ? { link } : {}),
    schema: {
      required: ["jwt"],
      properties: {
        uri: { enum: ["/User"], type: "string" },
        "request-method": { [c]: "get" },
        jwt: { required: ["iss", "role"], properties: { iss: { [c]: "https://auth.example.com" }, role: { [c]: "manager" } } },
      },
    },
  });
  const refused = await adminRefused(ctx.w, "PUT", "/AccessPolicy/as-manager-get-users-list", policy("constant"));
  assert.match(refused.text, /constant/);
  await admin(ctx.w, "PUT", "/AccessPolicy/as-manager-get-users-list", policy("const"));

  const claims = { iss: "https://auth.example.com", iat: nowSecs(), exp: nowSecs() + 600, aud: ctx.w.url, sub: "alice@example.com", role: "manager" };
  const manager = bearer(hs256(claims, secret));
  await assertRefused(ctx, await call(ctx, "/User", { auth: manager }), "linked to Operation/FhirSearch");

  await admin(ctx.w, "PUT", "/AccessPolicy/as-manager-get-users-list", policy("const", null));
  const res = await call(ctx, "/User", { auth: manager });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.resourceType, "Bundle");
  assert.equal(body.type, "searchset");

  const noRole = { ...claims };
  delete noRole.role;
  await assertRefused(ctx, await call(ctx, "/User", { auth: bearer(hs256(noRole, secret)) }), "no role claim");
  await assertRefused(ctx, await call(ctx, "/User", { auth: bearer(hs256({ ...claims, role: "clerk" }, secret)) }), "another role");
  await assertRefused(ctx, await call(ctx, "/User", { method: "DELETE", auth: manager }), "not a get");
  const foreignAud = { ...claims, aud: "https://auth.example.com" };
  await assertRefused(ctx, await call(ctx, "/User", { auth: bearer(hs256(foreignAud, secret)) }), "aud of another API", 401);
});
