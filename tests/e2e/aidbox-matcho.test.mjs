// End-to-end tests of issue 13, Matcho part: `$reference` and `$present-all` (and `not-blank?`)
// with the meaning Aidbox's own documentation gives them, against the built Worker in workerd.
// Source: HealthSamurai/documentation, docs/reference/matcho-dsl-reference.md.
//
// Each AccessPolicy is written through the admin API; allowed requests are forwarded to the demo
// origin (200 from it), denied ones get 403. On the build before this change, `$reference` was an
// unknown operator (the PUT was a 422) and `$present-all` looked for keys of a map, so the
// "allowed" cases below were 403.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json } from "./harness.mjs";
import { put, tokenPost } from "./attacks-lib.mjs";

let w;
let origin;
const tokens = {};

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  await put(w, "/Client/matcho-app", { secret: "matcho-app-secret-1", grant_types: ["password"] });
  // Users as in the docs' request example (`user.data.patient_id`), plus roles for $present-all.
  await put(w, "/User/pat", { password: "pat-pass-e2e", data: { patient_id: "pid", roles: ["patient"] } });
  await put(w, "/User/doc", { password: "doc-pass-e2e", data: { roles: ["nurse", "doctor", "admin"] } });
  await put(w, "/User/nurse", { password: "nurse-pass-e2e", data: { roles: ["nurse", "doctor"] } });
  await put(w, "/User/blank", { password: "blank-pass-e2e", data: { patient_id: 0, roles: [] } });
  for (const u of ["pat", "doc", "nurse", "blank"]) {
    const res = await tokenPost(
      w,
      { grant_type: "password", username: u, password: `${u}-pass-e2e` },
      { auth: basicAuth("matcho-app", "matcho-app-secret-1") },
    );
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    tokens[u] = body.access_token;
  }
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

async function call(user, path, { method = "GET", body } = {}) {
  origin.reset();
  const headers = { authorization: `Bearer ${tokens[user]}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  return w.fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function assertForwarded(res, what) {
  const text = await res.text();
  assert.equal(res.status, 200, `${what}: expected the origin's 200, got ${res.status}: ${text}`);
  assert.equal(res.headers.get("x-from-origin"), "yes", `${what}: not from the origin`);
}

async function assertDenied(res, what) {
  const text = await res.text();
  assert.equal(res.status, 403, `${what}: expected 403, got ${res.status}: ${text}`);
  assert.equal(origin.requests.length, 0, `${what}: reached the origin`);
}

// docs/reference/matcho-dsl-reference.md, "$reference": "parse Reference or string into aidbox
// format ... {reference: "Patient/pid"} => {id: "pid", resourceType: "Patient"}", with the
// example `{resource: {patient: {$reference: {id: '.user.data.patient_id'}}}}`, verbatim: the
// incoming resource is under `resource` (and `body`), as in Aidbox.
test("$reference: the docs' example, a patient may write only resources pointing at itself", async () => {
  const res = await w.admin("PUT", "/AccessPolicy/matcho-reference", {
    engine: "matcho",
    matcho: {
      "request-method": "post",
      resource: { patient: { $reference: { id: ".user.data.patient_id" } } },
    },
    link: [{ id: "pat", resourceType: "User" }],
  });
  assert.ok([200, 201].includes(res.status), `PUT with $reference: ${res.status} ${await res.text()}`);

  await assertForwarded(
    await call("pat", "/Observation", { method: "POST", body: { resourceType: "Observation", patient: { reference: "Patient/pid" } } }),
    "own patient, Reference form",
  );
  await assertForwarded(
    await call("pat", "/Observation", { method: "POST", body: { resourceType: "Observation", patient: "Patient/pid" } }),
    "own patient, string form",
  );
  await assertDenied(
    await call("pat", "/Observation", { method: "POST", body: { resourceType: "Observation", patient: { reference: "Patient/other" } } }),
    "another patient",
  );
  await assertDenied(
    await call("pat", "/Observation", { method: "POST", body: { resourceType: "Observation", patient: { reference: "https://evil.example/Patient/pid" } } }),
    "an absolute reference is not parsed",
  );
  await assertDenied(await call("pat", "/Observation", { method: "POST", body: { resourceType: "Observation" } }), "no patient");
});

// docs/reference/matcho-dsl-reference.md: "$present-all — checks that every element in
// $present-all is present in the original array, with no sort check. It can be combined with
// $length."
test("$present-all: every listed value in the array, in any order", async () => {
  await put(w, "/AccessPolicy/matcho-present-all", {
    engine: "matcho",
    matcho: { "request-method": "get", uri: "#^/Patient", user: { data: { roles: { "$present-all": ["admin", "doctor"] } } } },
    link: [{ id: "doc", resourceType: "User" }, { id: "nurse", resourceType: "User" }],
  });
  await assertForwarded(await call("doc", "/Patient/p1"), "roles [nurse, doctor, admin]");
  await assertDenied(await call("nurse", "/Patient/p1"), "roles [nurse, doctor]: admin missing");
});

test("$present-all combined with $length: exactly these values", async () => {
  await put(w, "/AccessPolicy/matcho-present-all-length", {
    engine: "matcho",
    matcho: { "request-method": "get", uri: "#^/Encounter", user: { data: { roles: { "$present-all": ["doctor", "nurse"], $length: 2 } } } },
    link: [{ id: "doc", resourceType: "User" }, { id: "nurse", resourceType: "User" }],
  });
  await assertForwarded(await call("nurse", "/Encounter/e1"), "roles [nurse, doctor]");
  await assertDenied(await call("doc", "/Encounter/e1"), "roles [nurse, doctor, admin]: length 3");
});

test("malformed $present-all and $reference are refused with 422 naming the field", async () => {
  for (const [matcho, field] of [
    [{ user: { data: { roles: { "$present-all": "admin" } } } }, "matcho.user.data.roles.$present-all"],
    [{ user: { data: { roles: { "$present-all": [] } } } }, "matcho.user.data.roles.$present-all"],
    [{ body: { patient: { $reference: "Patient/pid" } } }, "matcho.body.patient.$reference"],
  ]) {
    const res = await w.admin("PUT", "/AccessPolicy/matcho-bad", { engine: "matcho", matcho });
    const text = await res.text();
    assert.equal(res.status, 422, text);
    assert.ok(text.includes(field), `names ${field}: ${text}`);
  }
  const res = await w.admin("GET", "/AccessPolicy/matcho-bad");
  assert.equal(res.status, 404, "nothing was stored");
});

// docs/reference/matcho-dsl-reference.md: "not-blank? — matches a non-empty string."
test("not-blank?: only a non-empty string", async () => {
  await put(w, "/AccessPolicy/matcho-not-blank", {
    engine: "matcho",
    matcho: { "request-method": "get", uri: "#^/Condition", user: { data: { patient_id: "not-blank?" } } },
    link: [{ id: "pat", resourceType: "User" }, { id: "blank", resourceType: "User" }],
  });
  await assertForwarded(await call("pat", "/Condition/c1"), "patient_id \"pid\"");
  await assertDenied(await call("blank", "/Condition/c1"), "patient_id 0 is not a string");
});
