// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/accesspolicy-best-practices.md
// ("AccessPolicy best practices"), each policy verbatim (YAML as JSON).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { boot, admin, adminRefused, call, assertForwarded, assertRefused, passwordToken, bearer, basicAuth } from "./lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
  await admin(ctx.w, "PUT", "/Client/myclient", { secret: "myclient-secret", grant_types: ["basic"] });
  await admin(ctx.w, "PUT", "/Client/otherclient", { secret: "otherclient-secret", grant_types: ["basic"] });
  await admin(ctx.w, "PUT", "/Client/bp-app", { secret: "bp-app-secret", grant_types: ["password"] });
});
after(async () => ctx?.dispose());

const my = basicAuth("myclient", "myclient-secret");
const other = basicAuth("otherclient", "otherclient-secret");
const drop = (id) => ctx.w.admin("DELETE", `/AccessPolicy/${id}`).then((r) => r.text());

// "Using Client and Operation in AccessPolicy": "The following policy ... allows myclient Client
// reading every resource by ID" (link Client/myclient, matcho operation.id FhirRead).
test("accesspolicy-best-practices.md: myclient may read every resource by id (operation.id FhirRead)", async () => {
  await admin(ctx.w, "PUT", "/AccessPolicy/myclient-read", {
    resourceType: "AccessPolicy",
    link: [{ reference: "Client/myclient" }],
    engine: "matcho",
    matcho: { operation: { id: "FhirRead" } },
  });
  try {
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient/pt-1", { auth: my }), "read Patient");
    await assertForwarded(ctx, await call(ctx, "/fhir/Observation/obs-1", { auth: my }), "read Observation");
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: my }), "search");
    await assertRefused(ctx, await call(ctx, "/fhir/Patient/pt-1", { method: "DELETE", auth: my }), "delete");
    await assertRefused(ctx, await call(ctx, "/fhir/Patient/pt-1", { auth: other }), "another client");
  } finally {
    await drop("myclient-read");
  }
});

// "Note that in the case of multiple links in the link field, it is interpreted as OR operation.
// This policy will allow everything for Client myclient and FhirRead operation to anybody."
// (wrong-access-policy). "Anybody" includes callers without credentials: the FhirRead operation
// becomes public (the admin API stays closed to them, see accesspolicy-examples #1).
test("accesspolicy-best-practices.md: wrong-access-policy, links are OR", async () => {
  await admin(ctx.w, "PUT", "/AccessPolicy/wrong-access-policy", {
    id: "wrong-access-policy",
    resourceType: "AccessPolicy",
    link: [{ reference: "Client/myclient" }, { reference: "Operation/FhirRead" }],
    engine: "allow",
  });
  try {
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient", { method: "POST", auth: my, body: { resourceType: "Patient" } }), "myclient: everything");
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient/pt-1", { auth: other }), "FhirRead, another client");
    await assertForwarded(ctx, await call(ctx, "/fhir/Patient/pt-1"), "FhirRead, anonymous");
    await assertRefused(ctx, await call(ctx, "/fhir/Patient", { auth: other }), "another client, search");
  } finally {
    await drop("wrong-access-policy");
  }
});

// "`.` path should be tested for `present?`": as-patient-create-owned-observation, first as
// written ("This policy would allow the following request, even if subject and user.data.patient
// are both missing: POST /fhir/Observation {"status": "final"}"), then the fixed version.
test("accesspolicy-best-practices.md: the present? corner case and its fix", async () => {
  await admin(ctx.w, "PUT", "/User/no-patient", { password: "no-patient-pass" });
  await admin(ctx.w, "PUT", "/User/with-patient", { password: "with-patient-pass", data: { patient: { reference: "Patient/p1" } } });
  const none = await passwordToken(ctx.w, "bp-app", "bp-app-secret", "no-patient", "no-patient-pass");
  const pat = await passwordToken(ctx.w, "bp-app", "bp-app-secret", "with-patient", "with-patient-pass");
  const loose = {
    engine: "matcho",
    id: "as-patient-create-owned-observation",
    link: [{ reference: "Operation/FhirCreate" }],
    matcho: { uri: "/fhir/Observation", body: { subject: ".user.data.patient" }, "request-method": "post" },
    resourceType: "AccessPolicy",
  };
  await admin(ctx.w, "PUT", "/AccessPolicy/as-patient-create-owned-observation", loose);
  // Difference: Aidbox lets this request through (the doc's point: a `.path` reference that finds
  // nothing equals a missing value). Here a `.path` that finds nothing matches nothing (docs/security.md,
  // Policy engines), so the loose policy already refuses it: fail closed.
  await assertRefused(ctx, await call(ctx, "/fhir/Observation", { method: "POST", auth: bearer(none), body: { status: "final" } }), "as written: both missing");

  const fixed = { ...loose, matcho: { ...loose.matcho, user: { data: { patient: "present?" } } } };
  await admin(ctx.w, "PUT", "/AccessPolicy/as-patient-create-owned-observation", fixed);
  await assertRefused(ctx, await call(ctx, "/fhir/Observation", { method: "POST", auth: bearer(none), body: { status: "final" } }), "fixed: both missing");
  await assertForwarded(
    ctx,
    await call(ctx, "/fhir/Observation", { method: "POST", auth: bearer(pat), body: { status: "final", subject: { reference: "Patient/p1" } } }),
    "fixed: own subject",
  );
  await assertRefused(
    ctx,
    await call(ctx, "/fhir/Observation", { method: "POST", auth: bearer(pat), body: { status: "final", subject: { reference: "Patient/p2" } } }),
    "fixed: another subject",
  );
  await drop("as-patient-create-owned-observation");
});

// "complex engine with or operator": the practitioner-policies example as printed nests
// `request-method` inside `uri` next to `$one-of`.
// Difference: `$one-of` next to other keys (Aidbox's matcho reference calls it incorrect usage)
// is refused on write (422) instead of being evaluated some way.
test("accesspolicy-best-practices.md: practitioner-policies as printed ($one-of beside request-method) is refused", async () => {
  const refused = await adminRefused(ctx.w, "PUT", "/AccessPolicy/practitioner-policies", {
    id: "practitioner-policies",
    resourceType: "AccessPolicy",
    roleName: "practitioner",
    engine: "complex",
    or: [
      { engine: "matcho", matcho: { uri: { "$one-of": ["/Patient", "#/Patient/[^/]+$"], "request-method": "get" } } },
      { engine: "matcho", matcho: { uri: "/$graphql", "request-method": "post" } },
    ],
  });
  // Refused for the `$one-of`, not for `roleName` (which is supported).
  assert.match(refused.text, /\$one-of/);
});

// "That policy should be split into two policies": as-practitioner-see-patients-list-and-read-patient
// and as-practitioner-use-graphql, both with roleName practitioner (a Role names the user).
test("accesspolicy-best-practices.md: the split roleName policies", async () => {
  await admin(ctx.w, "PUT", "/User/bp-practitioner", { password: "bp-practitioner-pass" });
  await admin(ctx.w, "PUT", "/User/bp-nobody", { password: "bp-nobody-pass" });
  await admin(ctx.w, "PUT", "/Role/bp-practitioner-role", { name: "practitioner", user: { reference: "User/bp-practitioner" }, resourceType: "Role" });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-practitioner-see-patients-list-and-read-patient", {
    id: "as-practitioner-see-patients-list-and-read-patient",
    resourceType: "AccessPolicy",
    roleName: "practitioner",
    engine: "matcho",
    matcho: { uri: { "$one-of": ["/Patient", "#/Patient/[^/]+$"] }, "request-method": "get" },
  });
  await admin(ctx.w, "PUT", "/AccessPolicy/as-practitioner-use-graphql", {
    id: "as-practitioner-use-graphql",
    resourceType: "AccessPolicy",
    roleName: "practitioner",
    engine: "matcho",
    matcho: { uri: "/$graphql", "request-method": "post" },
  });
  const p = await passwordToken(ctx.w, "bp-app", "bp-app-secret", "bp-practitioner", "bp-practitioner-pass");
  const n = await passwordToken(ctx.w, "bp-app", "bp-app-secret", "bp-nobody", "bp-nobody-pass");
  await assertForwarded(ctx, await call(ctx, "/Patient", { auth: bearer(p) }), "patients list");
  await assertForwarded(ctx, await call(ctx, "/Patient/pt-1", { auth: bearer(p) }), "read patient");
  await assertForwarded(ctx, await call(ctx, "/$graphql", { method: "POST", auth: bearer(p), body: { query: "{}" } }), "graphql");
  await assertRefused(ctx, await call(ctx, "/Patient/pt-1/_history", { auth: bearer(p) }), "history");
  await assertRefused(ctx, await call(ctx, "/Patient", { auth: bearer(n) }), "no role");
});
