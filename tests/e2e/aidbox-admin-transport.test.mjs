// Issue 13, "The admin API's transport": POST with the id in the body, PATCH (JSON merge patch,
// RFC 7396) on admin resources, and YAML bodies refused with a 415 that says to send JSON.
// Each case runs against the built Worker in workerd.
//
//   node --test --test-concurrency=1 tests/e2e/aidbox-admin-transport.test.mjs      (after the build)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json } from "./harness.mjs";
import { assertError, put, tokenPost } from "./attacks-lib.mjs";

let w;
let origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  await put(w, "/AccessPolicy/apps", { engine: "matcho", matcho: { client: { id: { $enum: ["my-app", "svc"] } } } });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

const patch = (path, body, ct = "application/merge-patch+json") =>
  w.admin("PATCH", path, typeof body === "string" ? body : JSON.stringify(body), { "content-type": ct });
const patientAs = (auth) => w.fetch("/Patient", { headers: { authorization: auth } });

async function ccToken(secret) {
  const res = await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("svc", secret) });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

describe("POST /{Type} with an id in the body", () => {
  test("creates that id; a second POST with it is 409 and changes nothing", async () => {
    // The body of HealthSamurai documentation's sample-app tutorial ("Register Client for the
    // sample app": `POST /Client` with `id`, `secret`, `grant_types: ["basic"]`), sent as JSON.
    const res = await w.admin("POST", "/Client", { id: "my-app", secret: "my-secret", grant_types: ["basic"] });
    const body = await json(res);
    assert.equal(res.status, 201, JSON.stringify(body));
    assert.equal(body.id, "my-app");
    assert.equal(res.headers.get("location"), "/Client/my-app");
    assert.equal(body.secret, undefined);
    assert.equal((await patientAs(basicAuth("my-app", "my-secret"))).status, 200);

    const before = await json(await w.admin("GET", "/Client/my-app"));
    const again = await w.admin("POST", "/Client", { id: "my-app", secret: "other", grant_types: ["client_credentials"] });
    await assertError(again, 409, "conflict");
    assert.deepEqual(await json(await w.admin("GET", "/Client/my-app")), before);
    assert.equal((await patientAs(basicAuth("my-app", "my-secret"))).status, 200);
    assert.equal((await patientAs(basicAuth("my-app", "other"))).status, 401);
  });

  test("an invalid id is 422; without an id one is generated (positive control)", async () => {
    for (const id of ["a b", "root", 7]) {
      const body = await assertError(await w.admin("POST", "/Client", { id, grant_types: ["basic"] }), 422, "invalid_resource");
      assert.equal(body.field, "id");
    }
    const res = await w.admin("POST", "/AccessPolicy", { engine: "allow", link: [{ id: "nobody", resourceType: "Client" }] });
    assert.equal(res.status, 201);
    assert.match((await json(res)).id, /^[0-9a-f]{32}$/);
  });
});

describe("PATCH /{Type}/{id} (JSON merge patch)", () => {
  before(async () => {
    await put(w, "/Client/svc", { secret: "svc-secret", grant_types: ["client_credentials"] });
  });

  test("a profile change keeps the secret and the tokens (GET-edit semantics)", async () => {
    const token = await ccToken("svc-secret");
    const res = await patch("/Client/svc", { grant_types: ["client_credentials", "basic"] });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body.grant_types, ["client_credentials", "basic"]);
    assert.equal(body.meta.versionId, "2");
    assert.equal((await patientAs(`Bearer ${token}`)).status, 200, "old token ended by a profile change");
    assert.equal((await patientAs(basicAuth("svc", "svc-secret"))).status, 200, "secret lost");
    // application/json is accepted as well (Aidbox does); `secret: null` keeps the secret.
    assert.equal((await patch("/Client/svc", { secret: null }, "application/json")).status, 200);
    assert.equal((await patientAs(basicAuth("svc", "svc-secret"))).status, 200, "secret: null removed it");
    assert.equal((await patientAs(`Bearer ${token}`)).status, 200);
  });

  test("a new secret: the old fails, the new works, the old tokens end", async () => {
    const token = await ccToken("svc-secret");
    assert.equal((await patientAs(`Bearer ${token}`)).status, 200);
    const res = await patch("/Client/svc", { secret: "new-secret" });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.ok(!text.includes("new-secret"), text);
    assert.equal((await patientAs(basicAuth("svc", "svc-secret"))).status, 401);
    assert.equal((await patientAs(basicAuth("svc", "new-secret"))).status, 200);
    assert.equal((await patientAs(`Bearer ${token}`)).status, 401, "old token survived the secret change");
    assert.equal((await patientAs(`Bearer ${await ccToken("new-secret")}`)).status, 200);
  });

  test("invalid patches are 422 and change nothing; credential_generation cannot be set", async () => {
    const before = await json(await w.admin("GET", "/Client/svc"));
    const token = await ccToken("new-secret");
    for (const [p, field] of [
      [{ grant_types: ["nonsense"] }, "grant_types.0"],
      [{ credential_generation: "0123456789abcdef0123456789abcdef" }, "credential_generation"],
      [{ secret_hash: "x" }, "secret_hash"],
      [{ id: "other" }, "id"],
    ]) {
      const body = await assertError(await patch("/Client/svc", p), 422, "invalid_resource");
      assert.equal(body.field, field, JSON.stringify(p));
    }
    await assertError(await patch("/Client/svc", "[1]"), 422, "invalid_resource");
    await assertError(await patch("/Client/svc", "{nope"), 400, "invalid_request");
    assert.deepEqual(await json(await w.admin("GET", "/Client/svc")), before);
    assert.equal((await patientAs(`Bearer ${token}`)).status, 200);
  });

  test("an absent resource is 404; PATCH is in Allow; users and policies patch too", async () => {
    await assertError(await patch("/Client/nope", { grant_types: ["basic"] }), 404, "not_found");
    assert.equal((await w.admin("GET", "/Client/nope")).status, 404);
    const r405 = await w.admin("POST", "/Client/svc", {});
    assert.equal(r405.status, 405);
    assert.equal(r405.headers.get("allow"), "GET, PUT, PATCH, DELETE");

    await put(w, "/User/u1", { email: "u1@example.com", password: "pw-one" });
    assert.equal((await patch("/User/u1", { password: "pw-two", data: { staff: true } })).status, 200);
    const u = await json(await w.admin("GET", "/User/u1"));
    assert.deepEqual(u.data, { staff: true });
    assert.equal(u.email, "u1@example.com");
    assert.equal(u.password, undefined);
    assert.equal((await patch("/AccessPolicy/apps", { engine: "nonsense" })).status, 422);
    assert.equal((await patientAs(basicAuth("my-app", "my-secret"))).status, 200, "refused policy patch changed it");
  });
});

describe("YAML bodies", () => {
  test("text/yaml, application/yaml, application/x-yaml: 415 saying to send JSON", async () => {
    // Verbatim from HealthSamurai documentation's sample-app tutorial ("Register Client for the
    // sample app"), with its placeholders filled in.
    const yaml = 'id: yaml-app\nsecret: yaml-secret\ngrant_types: ["basic"]\n';
    for (const ct of ["text/yaml", "application/yaml", "application/x-yaml"]) {
      const res = await w.admin("POST", "/Client", yaml, { "content-type": ct, accept: "text/yaml" });
      const body = await assertError(res, 415, "unsupported_media_type");
      assert.match(body.error_description, /YAML/);
      assert.match(body.error_description, /application\/json/);
    }
    await assertError(await patch("/Client/svc", "secret: x\n", "text/yaml"), 415, "unsupported_media_type");
    assert.equal((await w.admin("GET", "/Client/yaml-app")).status, 404);
  });
});
