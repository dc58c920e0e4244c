// End-to-end tests of issue 13, request path: Aidbox's FHIR operation ids and `Operation`
// links, the FHIR base path setting (FHIR_BASE_PATHS: `/fhir/Client/x` is the admin API,
// `<base>/.well-known/smart-configuration`), public routes (policies that allow a request
// without credentials) and FHIR OperationOutcome errors, against the built Worker in workerd.
//
// Aidbox examples are taken verbatim from HealthSamurai/documentation (the file is named above
// each; YAML examples are transcribed to JSON key for key). Attack cases check that the origin
// saw nothing and nothing was stored. On the build before this change, Operation links never
// applied (every "allowed by operation" case below was 403), `/fhir/Client/x` was forwarded to
// the origin, and every request without credentials was 401.
//
//   node --test --test-concurrency=1 tests/e2e/aidbox-routing.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json } from "./harness.mjs";
import { put, tokenPost, forge, otherEd25519Jwk, nowSecs } from "./attacks-lib.mjs";

const MYCLIENT = basicAuth("myclient", "myclient-secret-e2e");
const CLIENT_ID = basicAuth("client-id", "client-id-secret-e2e");
const PLAIN = basicAuth("plain", "plain-secret-e2e");

let w;
let origin;

before(async () => {
  origin = await startOrigin();
  // The patient access API tutorial serves FHIR under /patient/fhir as well.
  w = await startWorker({ originUrl: origin.url, vars: { FHIR_BASE_PATHS: "/, /fhir, /patient/fhir" } });
  for (const id of ["myclient", "client-id", "plain"]) {
    await put(w, `/Client/${id}`, { secret: `${id}-secret-e2e`, grant_types: ["basic"] });
  }
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

// --- helpers --------------------------------------------------------------------------------------

/** A request (auth: a full Authorization value or none); a non-string body goes as JSON. */
async function call(method, p, { auth, body, headers = {} } = {}) {
  origin.reset();
  const h = { ...headers };
  if (auth) h.authorization = auth;
  let payload;
  if (body !== undefined) {
    payload = typeof body === "string" ? body : JSON.stringify(body);
    h["content-type"] ??= "application/json";
  }
  const res = await w.fetch(w.url + p, { method, headers: h, body: payload });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, text, body: parsed, headers: res.headers };
}

function assertForwarded(r, what) {
  assert.equal(r.status, 200, `${what}: expected the origin's 200, got ${r.status} ${r.text.slice(0, 300)}`);
  assert.equal(r.headers.get("x-from-origin"), "yes", `${what}: not from the origin`);
  assert.equal(origin.requests.length, 1, what);
}

/** Refused with `status` and a FHIR OperationOutcome of `code`; the origin saw nothing. */
function assertOutcome(r, status, code, what) {
  assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status} ${r.text.slice(0, 300)}`);
  assert.equal(r.body?.resourceType, "OperationOutcome", `${what}: ${r.text.slice(0, 300)}`);
  assert.equal(r.body.issue?.[0]?.code, code, `${what}: ${r.text.slice(0, 300)}`);
  assert.equal(r.body.issue[0].severity, "fatal", what);
  assert.equal(typeof r.body.issue[0].diagnostics, "string", what);
  assert.equal(origin.requests.length, 0, `${what}: reached the origin`);
}

/** Runs `fn` with the AccessPolicy `id` stored, then deletes it. */
async function withPolicy(id, body, fn) {
  await put(w, `/AccessPolicy/${id}`, body);
  try {
    await fn();
  } finally {
    const res = await w.admin("DELETE", `/AccessPolicy/${id}`);
    await res.text();
  }
}

async function stored(p) {
  const res = await w.admin("GET", p);
  await res.text();
  return res.status === 200;
}

// --- operations -------------------------------------------------------------------------------------

test("Aidbox best practice: a Client-linked policy matching operation.id FhirRead allows reads by id only", async () => {
  // Aidbox docs: docs/tutorials/security-access-control-tutorials/accesspolicy-best-practices.md
  const policy = {
    "resourceType": "AccessPolicy",
    "link": [{"reference": "Client/myclient"}],
    "engine": "matcho",
    "matcho": {"operation": {"id": "FhirRead"}}
  };
  await withPolicy("bp-fhirread", policy, async () => {
    assertForwarded(await call("GET", "/fhir/Patient/pt-1", { auth: MYCLIENT }), "GET /fhir/Patient/pt-1");
    assertForwarded(await call("GET", "/Patient/pt-1", { auth: MYCLIENT }), "GET /Patient/pt-1");
    assertForwarded(await call("GET", "/patient/fhir/Observation/o1", { auth: MYCLIENT }), "under a third base");
    assertOutcome(await call("GET", "/fhir/Patient", { auth: MYCLIENT }), 403, "forbidden", "search is FhirSearch");
    assertOutcome(await call("PUT", "/fhir/Patient/pt-1", { auth: MYCLIENT, body: { resourceType: "Patient" } }), 403, "forbidden", "update");
    assertOutcome(await call("GET", "/fhir/Patient/pt-1/_history/1", { auth: MYCLIENT }), 403, "forbidden", "vread");
    // The admin API has no operation id: FhirRead never covers it.
    assertOutcome(await call("GET", "/fhir/Client/myclient", { auth: MYCLIENT }), 403, "forbidden", "admin read");
    assertOutcome(await call("GET", "/Client/myclient", { auth: MYCLIENT }), 403, "forbidden", "admin read at the root");
  });
});

test("Aidbox best practice: Operation/FhirRead in link makes FhirRead public, and nothing else", async () => {
  // Aidbox docs: docs/tutorials/security-access-control-tutorials/accesspolicy-best-practices.md
  // ("This policy will allow everything for Client myclient and FhirRead operation to anybody.")
  const policy = {
    "id": "wrong-access-policy",
    "resourceType": "AccessPolicy",
    "link": [{"reference": "Client/myclient"}, {"reference": "Operation/FhirRead"}],
    "engine": "allow"
  };
  await withPolicy("wrong-access-policy", policy, async () => {
    assertForwarded(await call("GET", "/fhir/Patient/pt-1"), "anonymous FhirRead");
    assertForwarded(await call("GET", "/fhir/Patient/pt-1", { auth: PLAIN }), "another client's FhirRead");
    assertForwarded(await call("DELETE", "/fhir/Patient/pt-1", { auth: MYCLIENT }), "myclient: everything");
    assertOutcome(await call("GET", "/fhir/Patient"), 401, "login", "anonymous search");
    assertOutcome(await call("DELETE", "/fhir/Patient/pt-1", { auth: PLAIN }), 403, "forbidden", "another client's delete");
    // Deliberate difference: anonymous requests never reach the admin API.
    assertOutcome(await call("GET", "/fhir/Client/myclient"), 401, "login", "anonymous admin read");
    assertOutcome(await call("GET", "/Client/myclient"), 401, "login", "anonymous admin read at the root");
  });
});

test("Aidbox example 18: a policy matching operation.id FhirTransaction allows POST /fhir with a transaction Bundle", async () => {
  // Aidbox docs: docs/tutorials/security-access-control-tutorials/accesspolicy-examples.md (18.)
  const policy = {
    engine: "matcho",
    description: "Allow client-id to use FHIR transactions",
    id: "as-client-id-allowed-to-use-fhir-transactions",
    link: [{ reference: "Client/client-id" }],
    matcho: { operation: { id: "FhirTransaction" } },
  };
  const bundle = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
      {
        "request": {
          "method": "POST",
          "url": "/Patient"
        },
        "resource": {
          "resourceType": "Patient",
          "name": [
            {
              "given": ["John"]
            }
          ]
        }
      }
    ]
  };
  await withPolicy("as-client-id-allowed-to-use-fhir-transactions", policy, async () => {
    const r = await call("POST", "/fhir", { auth: CLIENT_ID, body: bundle, headers: { accept: "application/json" } });
    assertForwarded(r, "POST /fhir transaction");
    assert.equal(origin.last().url, "/fhir");
    assertOutcome(await call("POST", "/fhir", { auth: CLIENT_ID, body: { ...bundle, type: "batch" } }), 403, "forbidden", "a batch is FhirBatch");
    assertOutcome(await call("POST", "/fhir", { auth: CLIENT_ID, body: "<Bundle/>", headers: { "content-type": "application/fhir+xml" } }), 403, "forbidden", "a body we cannot read has no operation");
    assertOutcome(await call("POST", "/fhir/Patient", { auth: CLIENT_ID, body: bundle.entry[0].resource }), 403, "forbidden", "create");
  });
});

test("Aidbox example 4: Operation/FhirConditionalUpdate + Client link allows a system to update its own patients", async () => {
  // Aidbox docs: docs/tutorials/security-access-control-tutorials/accesspolicy-examples.md (4.)
  // The doc tests it with `PUT /fhir/Patient/123` (FhirUpdate); its matcho needs an `identifier`
  // parameter, i.e. the conditional form (docs/aidbox-differences.md).
  await put(w, "/Client/system1-client", { secret: "client-secret-e2e", grant_types: ["basic"] });
  const auth = basicAuth("system1-client", "client-secret-e2e");
  const policy = {
    id: "as-system1-app-update-patients",
    resourceType: "AccessPolicy",
    engine: "matcho",
    link: [{ reference: "Operation/FhirConditionalUpdate" }, { reference: "Client/system1-client" }],
    description: "Policy that allows a system1 to update their patients",
    matcho: {
      params: {
        "resource/type": "Patient",
        identifier: "#http://system1",
      },
      resource: {
        identifier: {
          $contains: {
            system: "http://system1",
          },
        },
      },
    },
  };
  const patient = { resourceType: "Patient", identifier: [{ system: "http://system1", value: "123" }] };
  await withPolicy("as-system1-app-update-patients", policy, async () => {
    assertForwarded(await call("PUT", "/fhir/Patient?identifier=http://system1|123", { auth, body: patient }), "conditional update");
    assertOutcome(await call("PUT", "/fhir/Patient?identifier=http://system2|123", { auth, body: patient }), 403, "forbidden", "another system's identifier");
    const other = { ...patient, identifier: [{ system: "http://system2", value: "1" }] };
    assertOutcome(await call("PUT", "/fhir/Patient?identifier=http://system1|123", { auth, body: other }), 403, "forbidden", "another system's body");
    assertOutcome(await call("PUT", "/fhir/Observation?identifier=http://system1|1", { auth, body: patient }), 403, "forbidden", "another type");
  });
});

test("Aidbox tutorial: restrict operations on a resource type ([Fhir]Read on Patient only), with Aidbox's 403 OperationOutcome", async () => {
  // Aidbox docs: docs/tutorials/security-access-control-tutorials/restrict-operations-on-resource-type.md
  const policy = {
    engine: "matcho",
    matcho: {
      operation: {
        id: {
          $enum: ["Read", "FhirRead"],
        },
      },
      params: {
        "resource/type": "Patient",
      },
    },
  };
  await withPolicy("restrict-ops", policy, async () => {
    // The tutorial's "Create" try: POST /Patient is refused.
    const r = await call("POST", "/Patient", { auth: PLAIN, body: { id: "pt-2", resourceType: "Patient", name: [{ given: ["Jane"] }] } });
    assertOutcome(r, 403, "forbidden", "POST /Patient");
    assert.equal(r.body.id, "forbidden"); // Aidbox: id: forbidden
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    // The tutorial's "Read" try.
    assertForwarded(await call("GET", "/Patient/pt-1", { auth: PLAIN }), "GET /Patient/pt-1");
    assertForwarded(await call("GET", "/fhir/Patient/pt-1", { auth: PLAIN }), "GET /fhir/Patient/pt-1");
    assertOutcome(await call("GET", "/fhir/Observation/o1", { auth: PLAIN }), 403, "forbidden", "another type");
    // A global policy: anonymous reads of Patient are public as in Aidbox.
    assertForwarded(await call("GET", "/fhir/Patient/pt-1"), "anonymous GET /fhir/Patient/pt-1");
    // `Accept: application/fhir+json` gets the FHIR media type.
    const fhir = await call("PUT", "/fhir/Patient/pt-1", { auth: PLAIN, body: { resourceType: "Patient" }, headers: { accept: "application/fhir+json" } });
    assertOutcome(fhir, 403, "forbidden", "PUT with Accept fhir+json");
    assert.match(fhir.headers.get("content-type") ?? "", /^application\/fhir\+json/);
  });
});

test("operation spoofing: _method, override headers and path tricks never change the operation", async () => {
  await withPolicy("bp-fhirread-2", { engine: "allow", link: [{ reference: "Operation/FhirRead" }] }, async () => {
    // Positive control.
    assertForwarded(await call("GET", "/fhir/Patient/pt-1", { auth: PLAIN }), "control");
    const cases = [
      ["POST", "/fhir/Patient/pt-1?_method=GET", 400],
      ["DELETE", "/fhir/Patient/pt-1?_method=GET", 400],
      ["POST", "/fhir/Patient/pt-1", 400, { "x-http-method-override": "GET" }],
      ["DELETE", "/fhir/Patient/pt-1", 400, { "x-method-override": "GET" }],
      ["GET", "/fhir/Patient/pt-1;x", 400],
      ["GET", "/fhir//Patient/pt-1", 400],
      ["GET", "/fhir/Patient%2Fpt-1", 400],
      ["GET", "/fhir/Patient/pt-1/", 401],
      ["GET", "/fhir/patient/pt-1", 401],
      ["HEAD", "/fhir/Patient/pt-1", 401],
      ["GET", "/fhir/Patient/$everything", 401],
      ["GET", "/fhir/Patient/pt-1/$everything", 401],
      ["POST", "/fhir/Patient/pt-1", 401],
      ["GET", "/fhirPatient/pt-1", 401],
      ["GET", "/fhir/Patient/pt-1/_history/1", 401],
    ];
    for (const [method, p, status, headers] of cases) {
      const r = await call(method, p, { headers });
      assert.equal(r.status, status, `${method} ${p}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(origin.requests.length, 0, `${method} ${p} reached the origin`);
      if (method !== "HEAD") assert.equal(r.body?.resourceType, "OperationOutcome", `${method} ${p}`);
    }
  });
});

// --- public routes ------------------------------------------------------------------------------------

test("Aidbox tutorial: allow-public-operation makes metadata public; smart-configuration at the FHIR base", async () => {
  // Aidbox docs: docs/tutorials/security-access-control-tutorials/how-to-enable-smart-on-fhir-on-patient-access-api.md
  const policy = {
    id: "allow-public-operation",
    resourceType: "AccessPolicy",
    engine: "matcho",
    matcho: {
      uri: {
        "$one-of": [
          "/patient/fhir/metadata",
          "/patient/fhir/style-v1.json",
          "/patient/fhir/.well-known/smart-configuration",
          "/patient/auth/login",
          "/patient/auth/authorize",
          "/patient/auth/authenticate",
          "/patient/auth/grant",
        ],
      },
    },
  };
  await withPolicy("allow-public-operation", policy, async () => {
    assertForwarded(await call("GET", "/patient/fhir/metadata"), "anonymous metadata");
    assertOutcome(await call("GET", "/patient/fhir/Patient"), 401, "login", "anonymous search");
    const none = await call("GET", "/patient/fhir/Patient");
    // RFC 9728 5.1: the challenge names the resource's metadata (issue 17).
    assert.equal(none.headers.get("www-authenticate"), `Bearer realm="edge-authorizer", resource_metadata="${w.url}/.well-known/oauth-protected-resource"`);
  });
  // Served by the server itself at every FHIR base, with or without a policy.
  for (const p of ["/patient/fhir/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"]) {
    const r = await call("GET", p);
    assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 200)}`);
    assert.equal(r.body.token_endpoint, `${w.url}/auth/token`, p);
    assert.equal(origin.requests.length, 0, `${p} reached the origin`);
  }
});

test("attack: a public policy never opens the admin API or admin types, whatever it matches", async () => {
  await withPolicy("public-get", { engine: "matcho", matcho: { "request-method": "get" } }, async () => {
    assertForwarded(await call("GET", "/fhir/metadata"), "control: anonymous GET is public");
    for (const p of [
      "/Client", "/Client/myclient", "/fhir/Client", "/fhir/Client/myclient", "/User", "/fhir/User/x",
      "/AccessPolicy", "/fhir/AccessPolicy/public-get", "/TokenIntrospector", "/patient/fhir/Client",
      "/fhir/Client/myclient/_history", "/Client/_history", "/fhir/%43lient", "/fhir/client/myclient",
      "/Patient/pt-1/User", "/fhir/Patient?_revinclude=User:patient", "/Patient?_has:User:link:id=x",
      "/Observation?_include=*", "/Patient?subject:User.email=a", "/Role", "/fhir/Session/x",
    ]) {
      const r = await call("GET", p);
      assertOutcome(r, 401, "login", `anonymous GET ${p}`);
    }
  });
  await withPolicy("public-all", { engine: "allow" }, async () => {
    assertForwarded(await call("POST", "/fhir/Patient", { body: { resourceType: "Patient" } }), "control: allow-all is public");
    for (const [method, p, body] of [
      ["PUT", "/Client/evil", { secret: "evil-secret-123", grant_types: ["basic"] }],
      ["PUT", "/fhir/Client/evil", { secret: "evil-secret-123", grant_types: ["basic"] }],
      ["POST", "/fhir/Client", { id: "evil", secret: "evil-secret-123", grant_types: ["basic"] }],
      ["PATCH", "/fhir/AccessPolicy/public-all", { link: [] }],
      ["DELETE", "/fhir/User/x"],
      ["POST", "/fhir", { resourceType: "Bundle", type: "transaction", entry: [{ request: { method: "PUT", url: "Client/evil" }, resource: { resourceType: "Client" } }] }],
      ["POST", "/", { resourceType: "Bundle", type: "batch", entry: [{ request: { method: "GET", url: "/fhir/User" } }] }],
      ["POST", "/fhir", { resourceType: "Bundle", type: "transaction", entry: [{ request: { method: "POST", url: "Patient" }, resource: { resourceType: "User", password: "x" } }] }],
      ["POST", "/fhir", "<Bundle xmlns=\"http://hl7.org/fhir\"/>"],
    ]) {
      const headers = typeof body === "string" ? { "content-type": "application/fhir+xml" } : {};
      const r = await call(method, p, { body, headers });
      assertOutcome(r, 401, "login", `anonymous ${method} ${p}`);
    }
    assert.equal(await stored("/Client/evil"), false);
  });
});

test("attack: bad, expired or foreign credentials never fall back to anonymous", async () => {
  await withPolicy("public-all-2", { engine: "allow" }, async () => {
    assertForwarded(await call("GET", "/fhir/Patient"), "control: public without credentials");
    const claims = { iss: w.url, aud: w.url, sub: "plain", client_id: "plain" };
    const unsigned = forge({ alg: "none", typ: "at+jwt" }, { ...claims, exp: nowSecs() + 600 }, { raw: "" });
    const expired = forge({ alg: "EdDSA", typ: "at+jwt", kid: w.signingKey.kid }, { ...claims, exp: nowSecs() - 3600 }, { ed25519: w.signingKey });
    const foreign = forge({ alg: "EdDSA", typ: "at+jwt", kid: w.signingKey.kid }, { ...claims, exp: nowSecs() + 600 }, { ed25519: otherEd25519Jwk() });
    for (const auth of [
      "Bearer garbage",
      "Bearer ",
      `Bearer ${unsigned}`,
      `Bearer ${expired}`,
      `Bearer ${foreign}`,
      basicAuth("plain", "wrong"),
      basicAuth("nobody", "x"),
      "Basic %%%",
      "Digest abc",
    ]) {
      const r = await call("GET", "/fhir/Patient", { auth });
      assertOutcome(r, 401, "login", `${auth.slice(0, 30)}`);
      assert.ok(r.headers.get("www-authenticate"), `${auth.slice(0, 30)}: no challenge`);
    }
  });
});

test("attack: identity headers cannot make an anonymous request match a client's policy", async () => {
  await withPolicy("by-client-id", { engine: "matcho", matcho: { client: { id: "myclient" } } }, async () => {
    await withPolicy("by-header", { engine: "matcho", matcho: { headers: { "x-client-id": "myclient" } } }, async () => {
      const headers = { "x-client-id": "myclient", "x-user-id": "admin", "x-auth-scope": "system/*.cruds", "x-forwarded-user": "admin" };
      assertOutcome(await call("GET", "/fhir/Patient", { headers }), 401, "login", "spoofed headers");
      // Control: the real client matches.
      assertForwarded(await call("GET", "/fhir/Patient", { auth: MYCLIENT }), "control: myclient");
    });
  });
});

// --- the admin API under the FHIR base ------------------------------------------------------------------

test("root manages clients through /fhir/Client (the admin API, never forwarded)", async () => {
  origin.reset();
  const c = await w.admin("PUT", "/fhir/Client/via-fhir", { secret: "via-fhir-secret-1", grant_types: ["basic"] });
  assert.equal(c.status, 201, await c.text());
  const g = await w.admin("GET", "/Client/via-fhir");
  assert.equal(g.status, 200);
  assert.equal((await json(g)).id, "via-fhir");
  const list = await w.admin("GET", "/patient/fhir/Client");
  assert.equal(list.status, 200);
  assert.equal((await json(list)).resourceType, "Bundle");
  const missing = await w.admin("GET", "/fhir/Client/none-such");
  const body = await json(missing);
  assert.equal(missing.status, 404);
  assert.equal(body.resourceType, "OperationOutcome");
  assert.equal(body.issue[0].code, "not-found");
  const bad = await w.admin("PUT", "/fhir/Client/bad", { grant_types: "basic" });
  const badBody = await json(bad);
  assert.equal(bad.status, 422, JSON.stringify(badBody));
  assert.equal(badBody.issue[0].code, "invalid");
  assert.ok(Array.isArray(badBody.issue[0].expression));
  const d = await w.admin("DELETE", "/fhir/Client/via-fhir");
  assert.equal(d.status, 200, await d.text());
  assert.equal(origin.requests.length, 0, "the admin API reached the origin");
});

test("a SMART token stays refused on /fhir/Client (403 OperationOutcome) and reaches FHIR types under /fhir", async () => {
  const scopes = ["system/*.rs"];
  await put(w, "/Client/smart-reader", {
    secret: "smart-reader-secret",
    grant_types: ["client_credentials"],
    "allowed-scopes": scopes,
    scope: scopes,
  });
  await put(w, "/AccessPolicy/smart-reader", { engine: "smart-on-fhir", link: [{ id: "smart-reader", resourceType: "Client" }] });
  const res = await tokenPost(w, { grant_type: "client_credentials", scope: "system/*.rs" }, { auth: basicAuth("smart-reader", "smart-reader-secret") });
  const tok = await json(res);
  assert.equal(res.status, 200, JSON.stringify(tok));
  const auth = `Bearer ${tok.access_token}`;
  // The engine without fhir-base-path now knows every FHIR base.
  assertForwarded(await call("GET", "/fhir/Patient/pt-1", { auth }), "GET /fhir/Patient/pt-1");
  assertForwarded(await call("GET", "/patient/fhir/Observation?code=x", { auth }), "GET under a third base");
  for (const p of ["/fhir/Client", "/fhir/Client/myclient", "/fhir/User", "/patient/fhir/AccessPolicy"]) {
    assertOutcome(await call("GET", p, { auth }), 403, "forbidden", `SMART token GET ${p}`);
  }
});

test("the OAuth endpoints keep RFC 6749 errors", async () => {
  const r = await tokenPost(w, { grant_type: "password" }, { auth: basicAuth("plain", "wrong") });
  const body = await json(r);
  assert.equal(r.status, 401);
  assert.equal(body.error, "invalid_client");
  assert.equal(body.resourceType, undefined);
});
