// Aidbox docs replayed: docs/tutorials/security-access-control-tutorials/restrict-operations-on-resource-type.md
// ("Restrict operations on resource type"): a global matcho policy on `operation.id`
// ($enum [Read, FhirRead]) and `params.resource/type` Patient. The doc's requests carry no
// credentials: the global policy applies to every caller, anonymous ones included.
import { test, before, after } from "node:test";
import { boot, admin, call, assertForwarded, assertRefused, assertOperationOutcome, basicAuth } from "./lib.mjs";

let ctx;
before(async () => {
  ctx = await boot();
  // "Create an access policy": POST /AccessPolicy (no id in the doc; PUT under one here).
  await admin(ctx.w, "PUT", "/AccessPolicy/read-patient-only", {
    engine: "matcho",
    matcho: { operation: { id: { $enum: ["Read", "FhirRead"] } }, params: { "resource/type": "Patient" } },
  });
  // A client with no policy of its own: only the global one decides for it.
  await admin(ctx.w, "PUT", "/Client/ro-client", { secret: "ro-client-secret", grant_types: ["basic"] });
});
after(async () => ctx?.dispose());

// "Try it", "Read": GET /Patient/pt-1 works.
test("restrict-operations-on-resource-type.md: GET /Patient/pt-1 is allowed", async () => {
  await assertForwarded(ctx, await call(ctx, "/Patient/pt-1"), "anonymous read");
  await assertForwarded(ctx, await call(ctx, "/Patient/pt-1", { auth: basicAuth("ro-client", "ro-client-secret") }), "client read");
  await assertForwarded(ctx, await call(ctx, "/fhir/Patient/pt-1"), "read under /fhir");
});

// "Try it", "Create": POST /Patient {id: pt-2, ...} is refused with the doc's OperationOutcome
// (resourceType OperationOutcome, issue [{severity: fatal, code: forbidden}]).
test("restrict-operations-on-resource-type.md: POST /Patient is 403 with an OperationOutcome", async () => {
  const body = { id: "pt-2", resourceType: "Patient", name: [{ given: ["Jane"] }] };
  const res = await call(ctx, "/Patient", { method: "POST", auth: basicAuth("ro-client", "ro-client-secret"), body });
  const oo = await assertRefused(ctx, res, "create", 403);
  assertOperationOutcome(oo, "forbidden", "create");
});

// The other operations and types the policy does not name.
test("restrict-operations-on-resource-type.md: search, other types and writes stay closed", async () => {
  const auth = basicAuth("ro-client", "ro-client-secret");
  await assertRefused(ctx, await call(ctx, "/Patient", { auth }), "search");
  await assertRefused(ctx, await call(ctx, "/Observation/o-1", { auth }), "another type");
  await assertRefused(ctx, await call(ctx, "/Patient/pt-1", { method: "DELETE", auth }), "delete");
  await assertRefused(ctx, await call(ctx, "/Patient", { method: "POST", body: { resourceType: "Patient" } }), "anonymous create", 401);
});
