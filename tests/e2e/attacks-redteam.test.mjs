// Issue 11, red team: ways around the merged fixes, tried against the built Worker in workerd
// over real HTTP with a recording origin. Each test names what it tries; every refused request
// is checked to have never reached the origin, and positive controls show the legitimate use.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-redteam.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json, FORM } from "./harness.mjs";
import { put, tokenPost, rawHttp, assertError } from "./attacks-lib.mjs";

const READER = basicAuth("reader", "reader-secret");
const MATCHO = basicAuth("matcho-app", "matcho-secret");

let w;
let origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  // A backend client whose access is decided by the smart-on-fhir engine only.
  await put(w, "/Client/reader", {
    secret: "reader-secret",
    grant_types: ["client_credentials"],
    scope: ["system/*.rs"],
  });
  await put(w, "/AccessPolicy/reader", { engine: "smart-on-fhir", link: [{ id: "reader", resourceType: "Client" }] });
  // A client confined by a matcho policy to one patient's observations, searched by POST.
  await put(w, "/Client/matcho-app", { secret: "matcho-secret", grant_types: ["basic"] });
  await put(w, "/AccessPolicy/matcho-app", {
    engine: "matcho",
    matcho: {
      client: { id: "matcho-app" },
      "request-method": "post",
      uri: "/Observation/_search",
      params: { patient: "pt-1" },
    },
  });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

async function readerToken(scope) {
  const res = await tokenPost(w, { grant_type: "client_credentials", scope }, { auth: READER });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

/** POST `path` with a form body; asserts the status and whether the origin was reached. */
async function postForm(path, body, authorization, status) {
  origin.reset();
  const res = await w.fetch(w.url + path, {
    method: "POST",
    headers: { ...FORM, authorization },
    body,
  });
  const text = await res.text();
  assert.equal(res.status, status, `POST ${path} [${body}]: ${res.status} ${text}`);
  assert.equal(origin.requests.length, status === 200 ? 1 : 0, `POST ${path} [${body}] origin`);
  return text;
}

// --- parameters hidden in the form body of POST /T/_search ---------------------------------------

test("system/*.rs token cannot hide _revinclude=User:link in the form body of POST /Patient/_search", async () => {
  const bearer = "Bearer " + (await readerToken("system/*.rs"));
  // Positive control: a plain POST search is a search the scope covers.
  await postForm("/Patient/_search", "name=smith", bearer, 200);
  assert.equal(origin.last().body, "name=smith");
  // The same widening parameters the engine refuses in the query, moved to the body.
  await postForm("/Patient/_search", "_revinclude=User:link", bearer, 403);
  await postForm("/Patient/_search", "name=smith&_has:AccessPolicy:link:id=x", bearer, 403);
  await postForm("/Patient/_search", "_include=*", bearer, 403);
  // Query and body together: the body's value is seen beside the query's.
  await postForm("/Patient/_search?_include=Patient:organization", "_include=Patient:*", bearer, 403);
});

test("matcho params.patient policy cannot be passed with patient=pt-1 in the query and patient=pt-2 in the form body", async () => {
  // Positive control: the parameter the policy pins, in the query or in the body.
  await postForm("/Observation/_search?patient=pt-1", "", MATCHO, 200);
  await postForm("/Observation/_search", "patient=pt-1", MATCHO, 200);
  // The origin reads both places: another patient in the body must not ride along.
  await postForm("/Observation/_search?patient=pt-1", "patient=pt-2", MATCHO, 403);
  await postForm("/Observation/_search?patient=pt-1", "patient%3Amissing=true&patient=pt-2", MATCHO, 403);
});

test("a raw ';' in a form body cannot hide patient=pt-2 from a matcho params.patient policy", async () => {
  // WHATWG form parsing (ours) reads `x` = `1;patient=pt-2`; servers that also split on `;`
  // (Python's parse_qs before 3.9.2, W3C HTML 4.01 B.2.2) read patient = [pt-2, pt-1].
  origin.reset();
  const res = await w.fetch(w.url + "/Observation/_search", {
    method: "POST",
    headers: { ...FORM, authorization: MATCHO },
    body: "x=1;patient=pt-2&patient=pt-1",
  });
  await assertError(res, 400, "invalid_request");
  assert.equal(origin.requests.length, 0, "reached the origin");
  // Positive control: an encoded `;` is a character of a value.
  await postForm("/Observation/_search", "patient=pt-1&note=a%3Bb", MATCHO, 200);
});

test("system/*.rs token cannot reach admin types through Aidbox's _with include", async () => {
  const bearer = "Bearer " + (await readerToken("system/*.rs"));
  const get = async (path, status) => {
    origin.reset();
    const res = await w.fetch(w.url + path, { headers: { authorization: bearer } });
    const text = await res.text();
    assert.equal(res.status, status, `GET ${path}: ${res.status} ${text}`);
    assert.equal(origin.requests.length, status === 200 ? 1 : 0, `GET ${path} origin`);
  };
  // Positive control: `_with` naming FHIR types is an include the unrestricted scope covers.
  await get("/Encounter?_with=subject%7BPatient%7D", 200);
  // Aidbox: `GET /Patient?_with=Encounter.subject` is `_revinclude=Encounter:subject`.
  await get("/Patient?_with=User.link", 403);
  await get("/Patient?_with=link%7BUser%7D", 403);
  await get("/Patient?_with=*", 403);
  await postForm("/Patient/_search", "_with=AccessPolicy.link", bearer, 403);
});

// --- two Content-Types -----------------------------------------------------------------------------

test("a second Content-Type cannot hide a form body's _revinclude from the policy", async () => {
  const bearer = "Bearer " + (await readerToken("system/*.rs"));
  const body = Buffer.from("_revinclude=User:link");
  for (const headers of [
    ["content-type: text/plain", "content-type: application/x-www-form-urlencoded"],
    ["content-type: application/x-www-form-urlencoded", "content-type: text/plain"],
    ["content-type: text/plain, application/x-www-form-urlencoded"],
  ]) {
    origin.reset();
    const res = await rawHttp(w.url, {
      method: "POST",
      path: "/Patient/_search",
      headers: [`authorization: ${bearer}`, ...headers],
      body,
    });
    await assertError(res, 400, "invalid_request");
    assert.equal(origin.requests.length, 0, `${headers} reached the origin`);
  }
  // Positive control: one Content-Type with parameters is fine.
  await postForm("/Patient/_search", "name=smith", bearer, 200);
  origin.reset();
  const ok = await rawHttp(w.url, {
    method: "POST",
    path: "/Patient/_search",
    headers: [`authorization: ${bearer}`, "content-type: application/x-www-form-urlencoded; charset=utf-8"],
    body: Buffer.from("name=smith"),
  });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(origin.requests.length, 1);
});

// --- chained search through an admin type ------------------------------------------------------------

test("system/*.rs token cannot search by a chained field of a User (subject:User.email)", async () => {
  const bearer = "Bearer " + (await readerToken("system/*.rs"));
  const get = async (path, status) => {
    origin.reset();
    const res = await w.fetch(w.url + path, { headers: { authorization: bearer } });
    const text = await res.text();
    assert.equal(res.status, status, `GET ${path}: ${res.status} ${text}`);
    assert.equal(origin.requests.length, status === 200 ? 1 : 0, `GET ${path} origin`);
  };
  // Positive controls: chains through FHIR types, and parameters named like admin types.
  await get("/Observation?subject:Patient.name=smith", 200);
  await get("/PractitionerRole?role=doctor", 200);
  await get("/Consent?scope=patient-privacy", 200);
  // An oracle on the admin resources an Aidbox origin holds.
  await get("/AuditEvent?agent:User.email=john@example.com", 403);
  await get("/Observation?subject:Client.secret=x", 403);
  await get("/Provenance?agent:AccessPolicy.engine=allow", 403);
  await postForm("/AuditEvent/_search", "agent:User.email=john@example.com", bearer, 403);
});
