// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/accesspolicy-examples.md
// ("Access policies examples"), each policy verbatim (YAML as JSON) with the doc's "Request to
// test the policy". Examples that need Aidbox's SQL engine (4, 14, 15, 17), its org-based API (10),
// its UI RPC (8) or whose own test request the policy cannot allow (13) are not replayed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, adminRefused, call, assertForwarded, assertRefused, passwordToken, bearer, basicAuth } from "./lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
  // A first-party app to sign the examples' users in with (the doc leaves how to the reader).
  await admin(ctx.w, "PUT", "/Client/examples-app", { secret: "examples-app-secret", grant_types: ["password"] });
});
after(async () => ctx?.dispose());

const signIn = (user, password) => passwordToken(ctx.w, "examples-app", "examples-app-secret", user, password);
const drop = (id) => ctx.w.admin("DELETE", `/AccessPolicy/${id}`).then((r) => r.text());

// accesspolicy-examples.md, "1. Policy that temporarily allows all requests": allow-all (global,
// no link); "Request to test the policy": GET /fhir/Patient (no credentials).
// Difference: a global policy never opens the admin API to anonymous callers (docs/coming-from-aidbox.md,
// "Security defaults"): GET /User without credentials stays 401, where Aidbox's allow-all opens it.
test("accesspolicy-examples.md #1: allow-all makes GET /fhir/Patient public, not the admin API", async () => {
  await admin(ctx.w, "PUT", "/AccessPolicy/allow-all", { id: "allow-all", resourceType: "AccessPolicy", engine: "allow" });
  try {
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient"), "anonymous GET /fhir/Patient");
    await assertRefused(ctx, await call(ctx, "/User"), "anonymous GET /User", 401);
    await assertRefused(ctx, await call(ctx, "/fhir/AccessPolicy"), "anonymous GET /fhir/AccessPolicy", 401);
  } finally {
    await drop("allow-all");
  }
});

// accesspolicy-examples.md, "2. Policy that allows a user to view their own patient":
// as-patient-get-patient-data (link Operation/FhirRead, params.resource/id: .user.fhirUser.id);
// GET /fhir/Patient/123 by the User whose fhirUser is Patient/123.
test("accesspolicy-examples.md #2: as-patient-get-patient-data", async () => {
  await admin(ctx.w, "PUT", "/User/patient-123", { password: "patient-123-pass", fhirUser: { id: "123", resourceType: "Patient" } });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-patient-get-patient-data", {
    id: "as-patient-get-patient-data",
    resourceType: "AccessPolicy",
    engine: "matcho",
    link: [{ reference: "Operation/FhirRead" }],
    description: "Policy that allows a patient to view their own patient data",
    matcho: { params: { "resource/id": ".user.fhirUser.id", "resource/type": "Patient" } },
  });
  const t = await signIn("patient-123", "patient-123-pass");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient/123", { auth: bearer(t) }), "own Patient");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient/124", { auth: bearer(t) }), "another Patient");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient/123", { method: "DELETE", auth: bearer(t) }), "not a read");
});

// accesspolicy-examples.md, "3. Policy that allows a practitioner to view all observations":
// the Role practitioner-1 of User/user-1 (links.practitioner), as-practitioner-get-all-observations
// (link Operation/FhirSearch, session.role $contains links.practitioner present?); GET /fhir/Observation.
test("accesspolicy-examples.md #3: as-practitioner-get-all-observations (Role)", async () => {
  await admin(ctx.w, "PUT", "/User/user-1", { password: "user-1-password" });
  await admin(ctx.w, "PUT", "/User/user-no-role", { password: "user-no-role-password" });
  await admin(ctx.w, "PUT", "/Role/practitioner-1", {
    name: "practitioner-1",
    resourceType: "Role",
    user: { reference: "User/user-1" },
    links: { practitioner: { reference: "Practitioner/pr-1" } },
  });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-practitioner-get-all-observations", {
    id: "as-practitioner-get-all-observations",
    resourceType: "AccessPolicy",
    link: [{ reference: "Operation/FhirSearch" }],
    engine: "matcho",
    matcho: { session: { role: { $contains: { links: { practitioner: "present?" } } } } },
  });
  const t = await signIn("user-1", "user-1-password");
  const n = await signIn("user-no-role", "user-no-role-password");
  await assertForwarded(ctx, await call(ctx, "/fhir/Observation", { auth: bearer(t) }), "practitioner");
  await assertRefused(ctx, await call(ctx, "/fhir/Observation", { auth: bearer(n) }), "no role");
});

// accesspolicy-examples.md, "5. Policy that allows a system to search for their patients":
// as-system1-app-read-patients (links Operation/FhirSearch, Client/system1-client); the doc's
// request GET /fhir/Patient?id=123&identifier=http://system1|123 with Basic system1-client.
test("accesspolicy-examples.md #5: as-system1-app-read-patients", async () => {
  await admin(ctx.w, "PUT", "/Client/system1-client", { secret: "client-secret", grant_types: ["basic"] });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-system1-app-read-patients", {
    id: "as-system1-app-read-patients",
    resourceType: "AccessPolicy",
    engine: "matcho",
    link: [{ reference: "Operation/FhirSearch" }, { reference: "Client/system1-client" }],
    description: "Policy that allows a system1 to search for their patients",
    matcho: { params: { "resource/type": "Patient", identifier: "#http://system1" } },
  });
  const auth = basicAuth("system1-client", "client-secret");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient?id=123&identifier=http://system1|123", { auth }), "own system");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient?identifier=http://system2|123", { auth }), "another system");
  await assertRefused(ctx, await call(ctx, "/fhir/Observation?identifier=http://system1|123", { auth }), "another type");
});

// accesspolicy-examples.md, "6. Policy that allows an application to do CRUD on Patient and
// Practitioner resources": as-client-id-crud-patients-and-practitioners; GET /fhir/Patient with
// Basic client-id.
test("accesspolicy-examples.md #6: as-client-id-crud-patients-and-practitioners", async () => {
  await admin(ctx.w, "PUT", "/Client/client-id", { secret: "client-secret", grant_types: ["basic"] });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-client-id-crud-patients-and-practitioners", {
    id: "as-client-id-crud-patients-and-practitioners",
    resourceType: "AccessPolicy",
    engine: "matcho",
    link: [{ reference: "Client/client-id" }],
    description: "Policy that allows a client-id to do CRUD on Patient and Practitioner resources",
    matcho: {
      params: { "resource/type": { $enum: ["Patient", "Practitioner"] } },
      "request-method": { $enum: ["get", "post", "patch", "put"] },
    },
  });
  const auth = basicAuth("client-id", "client-secret");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth }), "GET /fhir/Patient");
  await assertForwarded(ctx, await call(ctx, "/fhir/Practitioner", { method: "POST", auth, body: { resourceType: "Practitioner" } }), "POST Practitioner");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient/1", { method: "DELETE", auth }), "DELETE");
  await assertRefused(ctx, await call(ctx, "/fhir/Observation", { auth }), "Observation");
});

// accesspolicy-examples.md, "7. Policy that allows an admin access to Aidbox UI to the admin
// users": as-admin-allowed-access-to-aidbox-ui (global; user.data.groups $contains Aidbox-Admins).
// As in Aidbox, the policy opens the admin API as well (docs/reference.md "Admin API": who may call it).
test("accesspolicy-examples.md #7: as-admin-allowed-access-to-aidbox-ui", async () => {
  await admin(ctx.w, "PUT", "/User/okta-admin", { password: "okta-admin-pass", data: { groups: ["Everyone", "Aidbox-Admins"] } });
  await admin(ctx.w, "PUT", "/User/okta-user", { password: "okta-user-pass", data: { groups: ["Everyone"] } });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-admin-allowed-access-to-aidbox-ui", {
    id: "as-admin-allowed-access-to-aidbox-ui",
    resourceType: "AccessPolicy",
    engine: "matcho",
    description: "Policy that allows admin access to Aidbox UI for admin users",
    matcho: {
      user: { data: { groups: { $contains: "Aidbox-Admins" } } },
      "request-method": { $enum: ["get", "post", "put", "delete"] },
    },
  });
  try {
    const a = await signIn("okta-admin", "okta-admin-pass");
    const u = await signIn("okta-user", "okta-user-pass");
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(a) }), "admin group");
    const users = await call(ctx, "/User", { auth: bearer(a) });
    assert.equal(users.status, 200, await users.text());
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(u) }), "not in the group");
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { method: "PATCH", auth: bearer(a) }), "PATCH is not listed");
  } finally {
    await drop("as-admin-allowed-access-to-aidbox-ui");
  }
});

// accesspolicy-examples.md, "9. Policy that allows graphql search requests to the Patient
// resource": as-client-allowed-graphql-search-patients (request-method get, uri /Patient).
// GraphQL is Aidbox's; the policy replayed is the REST search it maps to, GET /Patient.
test("accesspolicy-examples.md #9: as-client-allowed-graphql-search-patients (GET /Patient)", async () => {
  await admin(ctx.w, "PUT", "/Client/my-client", { secret: "my-client-secret", grant_types: ["basic"] });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-client-allowed-graphql-search-patients", {
    id: "as-client-allowed-graphql-search-patients",
    resourceType: "AccessPolicy",
    engine: "matcho",
    link: [{ reference: "Client/my-client" }],
    description: "Policy that allows graphql search requests to the Patient resource for my-client client",
    matcho: { "request-method": "get", uri: "/Patient" },
  });
  const auth = basicAuth("my-client", "my-client-secret");
  await assertForwarded(ctx, await call(ctx, "/Patient?_count=1", { auth }), "GET /Patient");
  await assertRefused(ctx, await call(ctx, "/Patient/1", { auth }), "GET /Patient/1");
});

// accesspolicy-examples.md, "12. Policy that allows the practitioner to read their patients":
// as-practitioner-allowed-to-see-his-patients; GET /fhir/Patient?general-practitioner=pr-1.
test("accesspolicy-examples.md #12: as-practitioner-allowed-to-see-his-patients", async () => {
  await admin(ctx.w, "PUT", "/User/pr-1-user", { password: "pr-1-user-pass", data: { practitioner_id: "pr-1" } });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-practitioner-allowed-to-see-his-patients", {
    id: "as-practitioner-allowed-to-see-his-patients",
    resourceType: "AccessPolicy",
    engine: "matcho",
    link: [{ reference: "Operation/FhirSearch" }],
    description: "Policy that allows the practitioner to read their patients",
    matcho: {
      params: { "resource/type": "Patient", "general-practitioner": ".user.data.practitioner_id" },
      user: { data: { practitioner_id: "present?" } },
    },
  });
  const t = await signIn("pr-1-user", "pr-1-user-pass");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient?general-practitioner=pr-1", { auth: bearer(t) }), "own patients");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient?general-practitioner=pr-2", { auth: bearer(t) }), "another's");
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: bearer(t) }), "all patients");
});

// accesspolicy-examples.md, "16. Policy that allows only read operations to $sql endpoint".
// Difference: the pattern uses a look-ahead (`(?!...)`); regexes here are linear-time (Rust's
// `regex`, no look-around, no backtracking: no ReDoS from a policy), so the policy is refused on
// write (422) rather than stored with a pattern that cannot run. ($sql is Aidbox's endpoint.)
test("accesspolicy-examples.md #16: the $sql look-ahead pattern is refused with 422", async () => {
  const refused = await adminRefused(ctx.w, "PUT", "/AccessPolicy/as-user-read-only-sql", {
    link: [{ reference: "User/ca57d5ad-22de-4cce-aaba-b5d6c50a88e8" }],
    engine: "matcho",
    matcho: {
      uri: "/$sql",
      body: { sql: "#^(?i)(?!.*(INSERT|UPDATE|DELETE|MERGE|COPY|CREATE|ALTER|DROP|GRANT|REVOKE|TRUNCATE|CALL|DO|COMMENT|VACUUM|ANALYZE)).*" },
      "request-method": "post",
    },
  });
  assert.match(refused.text, /body\.sql|regex|look/i);
});

// accesspolicy-examples.md, "18. Policy that allows using FHIR transactions for the application":
// as-client-id-allowed-to-use-fhir-transactions (operation.id FhirTransaction); POST /fhir with
// the doc's transaction Bundle.
test("accesspolicy-examples.md #18: as-client-id-allowed-to-use-fhir-transactions", async () => {
  await admin(ctx.w, "PUT", "/Client/client-id-tx", { secret: "client-secret", grant_types: ["basic"] });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-client-id-allowed-to-use-fhir-transactions", {
    engine: "matcho",
    description: "Allow client-id to use FHIR transactions",
    id: "as-client-id-allowed-to-use-fhir-transactions",
    link: [{ reference: "Client/client-id-tx" }],
    matcho: { operation: { id: "FhirTransaction" } },
  });
  const auth = basicAuth("client-id-tx", "client-secret");
  const bundle = {
    resourceType: "Bundle",
    type: "transaction",
    entry: [{ request: { method: "POST", url: "/Patient" }, resource: { resourceType: "Patient", name: [{ given: ["John"] }] } }],
  };
  await assertForwarded(ctx, await call(ctx, "/fhir", { method: "POST", auth, body: bundle }), "POST /fhir transaction");
  // "this policy only allows access to the /fhir endpoint itself"
  await assertRefused(ctx, await call(ctx, "/fhir/Patient", { method: "POST", auth, body: bundle.entry[0].resource }), "POST /fhir/Patient");
});
