// Aidbox docs replayed: docs/access-control/authorization/access-policies.md ("Access Policies")
// and docs/tutorials/security-access-control-tutorials/create-and-test-access-control.md. The
// resources are the docs' YAML as JSON; the requests are the docs' requests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, adminRefused, call, assertForwarded, assertRefused, passwordToken, bearer, basicAuth } from "./lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
});
after(async () => ctx?.dispose());

// access-policies.md, "Allow engine", Example: this-policy-allows-everything, linked to User admin.
test("access-policies.md: allow engine linked to User admin", async () => {
  await admin(ctx.w, "PUT", "/Client/ap-app", { secret: "ap-app-secret", grant_types: ["password"] });
  await admin(ctx.w, "PUT", "/User/admin", { password: "admin-password" });
  await admin(ctx.w, "PUT", "/User/not-admin", { password: "not-admin-password" });
  await admin(ctx.w, "PUT", "/AccessPolicy/this-policy-allows-everything", {
    resourceType: "AccessPolicy",
    id: "this-policy-allows-everything",
    engine: "allow",
    link: [{ resourceType: "User", id: "admin" }],
  });
  const a = await passwordToken(ctx.w, "ap-app", "ap-app-secret", "admin", "admin-password");
  const n = await passwordToken(ctx.w, "ap-app", "ap-app-secret", "not-admin", "not-admin-password");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { method: "DELETE", auth: bearer(a) }), "admin");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(n) }), "another user");
});

// access-policies.md, "Matcho engine", Example:
// as-practitioner-who-works-in-inpatient-department-allowed-to-see-his-patients (a global policy).
test("access-policies.md: matcho example, inpatient practitioner sees his Encounters", async () => {
  await admin(ctx.w, "PUT", "/Client/enc-app", { secret: "enc-app-secret", grant_types: ["password"] });
  // The user the doc describes: `department: inpatient` and `data.practitioner_id`.
  await admin(ctx.w, "PUT", "/User/inpatient-doc", { password: "inpatient-pass", department: "inpatient", data: { practitioner_id: "pr-7" } });
  await admin(ctx.w, "PUT", "/User/outpatient-doc", { password: "outpatient-pass", department: "outpatient", data: { practitioner_id: "pr-8" } });
  const policy = {
    resourceType: "AccessPolicy",
    id: "as-practitioner-who-works-in-inpatient-department-allowed-to-see-his-patients",
    engine: "matcho",
    matcho: {
      user: { department: "inpatient", data: { practitioner_id: "present?" } },
      uri: "#/Encounter.*",
      "request-method": { $enum: ["get", "post"] },
      params: { practitioner: ".user.data.practitioner_id" },
    },
  };
  // Difference: ids follow FHIR's rule, at most 64 characters ([A-Za-z0-9-.]{1,64}); the doc's
  // id has 80, so it is refused (422 naming `id`) and the same policy is stored under a shorter id.
  const long = await adminRefused(ctx.w, "PUT", `/AccessPolicy/${policy.id}`, policy);
  assert.match(long.text, /"field":"id"/);
  await admin(ctx.w, "PUT", "/AccessPolicy/as-inpatient-practitioner-see-his-patients", { ...policy, id: "as-inpatient-practitioner-see-his-patients" });
  const t = await passwordToken(ctx.w, "enc-app", "enc-app-secret", "inpatient-doc", "inpatient-pass");
  const o = await passwordToken(ctx.w, "enc-app", "enc-app-secret", "outpatient-doc", "outpatient-pass");
  // "Uri is related to Encounter. E.g. /fhir/Encounter or /Encounter"
  await assertForwarded(ctx, await call(ctx, "/fhir/Encounter?practitioner=pr-7", { auth: bearer(t) }), "GET own");
  await assertForwarded(ctx, await call(ctx, "/Encounter?practitioner=pr-7", { auth: bearer(t) }), "GET own, root path");
  // "... in case of the POST request [in] body params"
  await assertForwarded(
    ctx,
    await call(ctx, "/fhir/Encounter", { method: "POST", auth: bearer(t), body: "practitioner=pr-7", headers: { "content-type": "application/x-www-form-urlencoded" } }),
    "POST with the practitioner in the form body",
  );
  await assertRefused(ctx, await call(ctx, "/fhir/Encounter?practitioner=pr-8", { auth: bearer(t) }), "another practitioner");
  await assertRefused(ctx, await call(ctx, "/fhir/Encounter?practitioner=pr-7", { method: "PUT", auth: bearer(t) }), "PUT");
  await assertRefused(ctx, await call(ctx, "/fhir/Encounter?practitioner=pr-8", { auth: bearer(o) }), "outpatient");
});

// access-policies.md, "JSON Schema", Example: "The following policy requires
// request.params.resource/type to be present and have a value of "Organization"".
// Difference: as written, the example's inner `properties` sits beside `params` (a schema for a
// request field named "properties") whose only key, `resource/type`, is not a JSON Schema
// keyword. Draft-07 ignores unknown keywords, so in Aidbox the value is never checked; here an
// unknown keyword is refused when written (422 naming the field), so a typo cannot silently
// widen a policy. The schema the doc describes (the `properties` moved under `params`) works.
test("access-policies.md: json-schema example, resource/type Organization", async () => {
  await admin(ctx.w, "PUT", "/Client/org-app", { secret: "org-app-secret", grant_types: ["basic"] });
  const refused = await adminRefused(ctx.w, "PUT", "/AccessPolicy/org-schema", {
    resourceType: "AccessPolicy",
    engine: "json-schema",
    schema: {
      properties: {
        params: { required: ["resource/type"] },
        properties: { "resource/type": { const: "Organization" } },
      },
    },
    link: [{ reference: "Client/org-app" }],
  });
  assert.match(refused.text, /schema\.properties\.properties\.resource\/type/);
  await admin(ctx.w, "PUT", "/AccessPolicy/org-schema", {
    resourceType: "AccessPolicy",
    engine: "json-schema",
    schema: {
      properties: {
        params: { required: ["resource/type"], properties: { "resource/type": { const: "Organization" } } },
      },
    },
    link: [{ reference: "Client/org-app" }],
  });
  const auth = basicAuth("org-app", "org-app-secret");
  await assertForwarded(ctx, await call(ctx, "/fhir/Organization", { auth }), "GET /fhir/Organization");
  await assertForwarded(ctx, await call(ctx, "/Organization", { auth }), "GET /Organization");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth }), "GET /fhir/Patient");
});

// access-policies.md, "SQL engine", Example practitioner-only-allowed-to-see-his-patients, and
// "Complex", Example 1 (sql rules inside complex).
// Difference: not a database. The sql engine needs Aidbox's PostgreSQL; here it is refused when
// written (422), never stored as a policy that silently allows or denies.
test("access-policies.md: sql engine policies are refused with 422", async () => {
  await adminRefused(ctx.w, "PUT", "/AccessPolicy/practitioner-only-allowed-to-see-his-patients", {
    resourceType: "AccessPolicy",
    id: "practitioner-only-allowed-to-see-his-patients",
    engine: "sql",
    sql: {
      query:
        "SELECT\n  {{user}} IS NOT NULL\n  AND {{user.data.practitioner_id}} IS NOT NULL\n  AND {{uri}} LIKE '/fhir/Patient/%'\n  AND resource->'generalPractitioner' @>\njsonb_build_array(jsonb_build_object('resourceType',\n    'Practitioner', 'id', {{user.data.practitioner_id}}::text))\n  FROM patient WHERE id = {{params.resource/id}};\n",
    },
  });
  await adminRefused(ctx.w, "PUT", "/AccessPolicy/complex-example-1", {
    resourceType: "AccessPolicy",
    engine: "complex",
    and: [
      { engine: "sql", sql: { query: "select true" } },
      { engine: "complex", or: [{ engine: "sql", sql: { query: "select false" } }, { engine: "sql", sql: { query: "select false" } }] },
    ],
  });
});

// create-and-test-access-control.md, "Simple Access Policy": Client postman and policy-for-postman
// (JSON-schema version); "Positive Test" GET /fhir/Patient, "Negative Test" POST /fhir/Patient.
test("create-and-test-access-control.md: policy-for-postman, json-schema version", async () => {
  await admin(ctx.w, "PUT", "/Client/postman", { resourceType: "Client", id: "postman", secret: "secret", grant_types: ["basic"] });
  await admin(ctx.w, "PUT", "/AccessPolicy/policy-for-postman", {
    resourceType: "AccessPolicy",
    id: "policy-for-postman",
    engine: "json-schema",
    schema: {
      required: ["client", "uri", "request-method"],
      properties: {
        uri: { type: "string", pattern: "^/fhir/.*" },
        client: { required: ["id"], properties: { id: { const: "postman" } } },
        "request-method": { const: "get" },
      },
    },
  });
  const auth = basicAuth("postman", "secret");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth }), "Positive Test");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { method: "POST", auth, body: { resourceType: "Patient" } }), "Negative Test");
  await assertRefused(ctx, await call(ctx, "/Patient", { auth }), "not under /fhir/");
});

// create-and-test-access-control.md, "Matcho engine version" of policy-for-postman (it replaces
// the json-schema one: same id).
test("create-and-test-access-control.md: policy-for-postman, matcho version", async () => {
  await admin(ctx.w, "PUT", "/Client/postman", { resourceType: "Client", id: "postman", secret: "secret", grant_types: ["basic"] });
  await admin(ctx.w, "PUT", "/AccessPolicy/policy-for-postman", {
    resourceType: "AccessPolicy",
    id: "policy-for-postman",
    engine: "matcho",
    matcho: { client: { id: "postman" }, uri: "#^/fhir/.*", "request-method": "get" },
  });
  const auth = basicAuth("postman", "secret");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth }), "Positive Test");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { method: "POST", auth, body: { resourceType: "Patient" } }), "Negative Test");
});

// create-and-test-access-control.md, "Access Policies for Users": users user1 and user2, the
// role policies, the password grant with the email as username, and the table of results
// (GET: True/True; POST: True/False). `kind` picks the matcho or the json-schema versions.
// The doc's postman client lists only `basic` while its token request uses the password grant;
// here `password` is added to its grant_types (a client uses only the grants it lists).
async function usersAndRoles(kind) {
  await admin(ctx.w, "PUT", "/Client/postman", { resourceType: "Client", id: "postman", secret: "secret", grant_types: ["basic", "password"] });
  // Only the role policies decide in this test.
  await ctx.w.admin("DELETE", "/AccessPolicy/policy-for-postman");
  await admin(ctx.w, "PUT", "/User/user1", {
    data: { name: "Camila Harrington", roles: ["Administrator", "Doctor"] },
    email: "user1@health-samurai.io",
    password: "password1",
    id: "user1",
    resourceType: "User",
  });
  await admin(ctx.w, "PUT", "/User/user2", {
    data: { name: "Jazmin Holmes", roles: ["Patient"] },
    email: "user2@health-samurai.io",
    password: "password2",
    id: "user2",
    resourceType: "User",
  });
  if (kind === "matcho") {
    await admin(ctx.w, "PUT", "/AccessPolicy/policy-for-postman-users-role-patient", {
      resourceType: "AccessPolicy",
      id: "policy-for-postman-users-role-patient",
      engine: "matcho",
      matcho: { user: { data: { roles: { $contains: "Patient" } } }, client: { id: "postman" }, "request-method": "get" },
    });
    // "Full Access for Administrator Role", matcho version (the doc gives it no id).
    await admin(ctx.w, "PUT", "/AccessPolicy/policy-for-postman-users-role-administrator", {
      engine: "matcho",
      matcho: {
        "request-method": { $enum: ["get", "post", "put", "delete", "patch"] },
        user: { data: { roles: { $contains: "Administrator" } } },
        client: { id: "postman" },
      },
    });
  } else {
    const rolesContain = (role) => ({
      required: ["data"],
      properties: { data: { required: ["roles"], properties: { roles: { not: { items: { not: { enum: [role] } } }, type: "array" } } } },
    });
    const clientPostman = { required: ["id"], properties: { id: { const: "postman" } } };
    await admin(ctx.w, "PUT", "/AccessPolicy/policy-for-postman-users-role-patient", {
      resourceType: "AccessPolicy",
      id: "policy-for-postman-users-role-patient",
      engine: "json-schema",
      schema: {
        required: ["client", "user", "request-method"],
        properties: { user: rolesContain("Patient"), client: clientPostman, "request-method": { const: "get" } },
      },
      description: "Read-only access for users with role Patient from client Postman",
    });
    await admin(ctx.w, "PUT", "/AccessPolicy/policy-for-postman-users-role-administrator", {
      engine: "json-schema",
      schema: {
        required: ["client", "user", "request-method"],
        properties: {
          user: rolesContain("Administrator"),
          client: clientPostman,
          "request-method": { enum: ["get", "post", "put", "delete", "option", "patch", "head"] },
        },
      },
      description: "Full access for users with role Administrator from client Postman",
      id: "policy-for-postman-users-role-administrator",
      resourceType: "AccessPolicy",
    });
  }
  // "Get Bearer Token for User": username is the user's email.
  const t1 = await passwordToken(ctx.w, "postman", "secret", "user1@health-samurai.io", "password1");
  const t2 = await passwordToken(ctx.w, "postman", "secret", "user2@health-samurai.io", "password2");
  // The table: GET True/True, POST True/False.
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(t1) }), "GET user1");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(t2) }), "GET user2");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { method: "POST", auth: bearer(t1), body: { resourceType: "Patient" } }), "POST user1");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { method: "POST", auth: bearer(t2), body: { resourceType: "Patient" } }), "POST user2");
}

test("create-and-test-access-control.md: users by role, matcho versions (GET T/T, POST T/F)", () => usersAndRoles("matcho"));
test("create-and-test-access-control.md: users by role, json-schema versions (GET T/T, POST T/F)", () => usersAndRoles("json-schema"));
