// Issue 13, "who the caller is": Aidbox's Role resource and AccessPolicy.roleName (with the
// user's Roles in the policy request as `role` / `session.role`), User.fhirUser as
// {"id", "resourceType"}, Aidbox's `context.patient` token claim, and Client.allowed-scopes as
// references to Scope resources. Examples are Aidbox's documentation's, verbatim (sent as JSON:
// YAML bodies are a 415 here), each with the doc file it came from; attack cases and positive
// controls beside them. Each case runs against the built Worker in workerd.
//
//   node --test --test-concurrency=1 tests/e2e/aidbox-identity.test.mjs      (after the build)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { startWorker, startOrigin, basicAuth, json, decodeJwt } from "./harness.mjs";
import { b64url, nowSecs, assertError, put, pkce, cookies, interaction, postLogin, postConsent, authorizeQuery, tokenPost } from "./attacks-lib.mjs";

let w;
let origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  // Aidbox's tutorials "log in as" a user; here through the password grant of this client.
  await put(w, "/Client/app", { secret: "app-secret", grant_types: ["password"] });
  await put(w, "/Client/svc", { secret: "svc-secret", grant_types: ["client_credentials"] });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

async function tokenOf(username, password, client = ["app", "app-secret"], scope) {
  const res = await tokenPost(w, { grant_type: "password", username, password, ...(scope ? { scope } : {}) }, { auth: basicAuth(...client) });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

/** The status of `method path` with a bearer token (or other Authorization value); the origin's
 *  request count is checked so a refused request never reached it. */
async function call(auth, method, path, body) {
  const seen = origin.requests.length;
  const headers = { authorization: auth.includes(" ") ? auth : `Bearer ${auth}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await w.fetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  if (res.status !== 200 || !text.includes('"origin":true')) {
    assert.equal(origin.requests.length, seen, `${method} ${path} ${res.status} reached the origin`);
  }
  return res.status;
}

const stored = async (path) => {
  const res = await w.admin("GET", path);
  return res.status === 200 ? json(res) : null;
};

describe("Role and AccessPolicy.roleName (Aidbox's flexible RBAC)", () => {
  let user1;

  before(async () => {
    // Aidbox docs: tutorials/security-access-control-tutorials/rbac/flexible-rbac-built-in-to-aidbox.md
    // ("Create a user": `POST /fhir/User`; the admin API is at the root here until the /fhir
    // aliases land, see docs/aidbox-differences.md).
    let res = await w.admin("POST", "/User", { id: "user-1", password: "password", resourceType: "User" });
    assert.equal(res.status, 201, await res.text());
    // Same doc, "Create a Role resource", verbatim.
    res = await w.admin("POST", "/Role", {
      id: "practioner-role-user-1",
      resourceType: "Role",
      user: { reference: "User/user-1" },
      name: "practitioner",
      links: { practitioner: { reference: "Practitioner/pr-1" } },
    });
    const body = await json(res);
    assert.equal(res.status, 201, JSON.stringify(body));
    assert.equal(body.name, "practitioner");
    // A user without any Role, and its token.
    await put(w, "/User/user-2", { password: "password-2" });
    user1 = (await tokenOf("user-1", "password")).access_token;
  });

  test("the tutorial's policy, at the root and without its Operation link: user-1 reads their own Practitioner -> 200", async () => {
    // Same doc, "Create an access policy", with two changes this branch needs: the URI pattern
    // at the root (route params are filled there) and no `link` to Operation/FhirRead (the
    // operation ids come with the FHIR base path work, tested verbatim below).
    await put(w, "/AccessPolicy/practitioner-role-root", {
      resourceType: "AccessPolicy",
      roleName: "practitioner",
      engine: "matcho",
      matcho: {
        uri: "#/Practitioner/.*",
        "request-method": "get",
        params: { "resource/id": ".session.role.0.links.practitioner.id" },
      },
    });
    // "Aidbox returns you a Practitioner resource."
    assert.equal(await call(user1, "GET", "/Practitioner/pr-1"), 200);
    assert.equal(origin.last().headers["x-user-id"], "user-1");
  });

  test("the tutorial's policy verbatim (/fhir path, Operation/FhirRead link) -> 200 once those are served", async (t) => {
    await put(w, "/AccessPolicy/practitioner-role", {
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
    // Does this build fill operation.id and the /fhir route params (issue 13, FHIR base path)?
    await put(w, "/Client/probe", { secret: "probe-secret", grant_types: ["basic"] });
    await put(w, "/AccessPolicy/probe", {
      engine: "matcho", link: [{ id: "probe", resourceType: "Client" }],
      matcho: { operation: { id: "FhirRead" }, params: { "resource/id": "x" } },
    });
    const served = (await call(basicAuth("probe", "probe-secret"), "GET", "/fhir/Patient/x")) === 200;
    if (!served) {
      t.skip("this build has no operation ids or /fhir route params (another part of issue 13)");
      return;
    }
    assert.equal(await call(user1, "GET", "/fhir/Practitioner/pr-1"), 200);
    assert.equal(await call(user1, "GET", "/fhir/Practitioner/pr-2"), 403);
  });

  test("the role's link decides: user-1 reading another Practitioner -> 403", async () => {
    assert.equal(await call(user1, "GET", "/Practitioner/pr-2"), 403);
  });

  test("a user without the role, same request -> 403", async () => {
    const user2 = (await tokenOf("user-2", "password-2")).access_token;
    assert.equal(await call(user2, "GET", "/Practitioner/pr-1"), 403);
  });

  test("session.role with $contains (the examples page), adapted to one URI -> only users with such a role", async () => {
    // Aidbox docs: tutorials/security-access-control-tutorials/accesspolicy-examples.md, "3. Policy
    // that allows a practitioner to view all observations": its Role and policy; the policy's
    // Operation/FhirSearch link is replaced by `uri: /Observation` (see the verbatim test above).
    await put(w, "/User/user-5", { password: "password-5" });
    let res = await w.admin("POST", "/Role", {
      name: "practitioner-1",
      resourceType: "Role",
      user: { reference: "User/user-5" },
      links: { practitioner: { reference: "Practitioner/pr-1" } },
    });
    assert.equal(res.status, 201, await res.text());
    await put(w, "/AccessPolicy/as-practitioner-get-all-observations", {
      resourceType: "AccessPolicy",
      engine: "matcho",
      matcho: { uri: "/Observation", session: { role: { $contains: { links: { practitioner: "present?" } } } } },
    });
    const user5 = (await tokenOf("user-5", "password-5")).access_token;
    assert.equal(await call(user5, "GET", "/Observation"), 200);
    assert.equal(await call(user1, "GET", "/Observation"), 200);
    const user2 = (await tokenOf("user-2", "password-2")).access_token;
    assert.equal(await call(user2, "GET", "/Observation"), 403);
  });

  test("a Role naming another user grants nothing to this one -> 403; given to them, 200 (control)", async () => {
    await put(w, "/User/user-3", { password: "password-3" });
    await put(w, "/Role/auditor-of-user-3", { name: "auditor", user: { reference: "User/user-3" } });
    await put(w, "/AccessPolicy/auditors", { engine: "matcho", roleName: "auditor", matcho: { uri: "/AuditEvent" } });
    const user2 = (await tokenOf("user-2", "password-2")).access_token;
    assert.equal(await call(user2, "GET", "/AuditEvent"), 403);
    const user3 = (await tokenOf("user-3", "password-3")).access_token;
    assert.equal(await call(user3, "GET", "/AuditEvent"), 200);
    // A Role written in the id form for user-2: now they are an auditor too.
    await put(w, "/Role/auditor-of-user-2", { name: "auditor", user: { id: "user-2", resourceType: "User" } });
    assert.equal(await call(user2, "GET", "/AuditEvent"), 200);
    // Role-looking fields of the User itself are not Roles (a user who may edit their own User
    // must not grant themselves a role) -> 403.
    await put(w, "/User/user-6", { password: "password-6", roles: ["auditor", { name: "auditor" }], data: { role: "auditor" }, role: "auditor" });
    const user6 = (await tokenOf("user-6", "password-6")).access_token;
    assert.equal(await call(user6, "GET", "/AuditEvent"), 403);
    // Deleted, the role is gone at once (this isolate) -> 403.
    assert.equal((await w.admin("DELETE", "/Role/auditor-of-user-2")).status, 200);
    assert.equal(await call(user2, "GET", "/AuditEvent"), 403);
  });

  test("a Role cannot be given to a Client: 422, and a client_credentials token never matches roleName -> 403", async () => {
    const body = await assertError(
      await w.admin("PUT", "/Role/svc-auditor", { name: "auditor", user: { reference: "Client/svc" } }),
      422,
      "invalid_resource",
    );
    assert.equal(body.field, "user");
    assert.equal(await stored("/Role/svc-auditor"), null);
    // Even a Role that names "svc" as a User does not reach the client of that id.
    await put(w, "/Role/user-named-svc", { name: "auditor", user: { reference: "User/svc" } });
    const res = await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("svc", "svc-secret") });
    const cc = await json(res);
    assert.equal(res.status, 200, JSON.stringify(cc));
    assert.equal(await call(cc.access_token, "GET", "/AuditEvent"), 403);
    assert.equal(await call(basicAuth("svc", "svc-secret"), "GET", "/AuditEvent"), 401, "svc is not a basic client");
    // No credentials at all: 401, whatever roleName policies exist.
    const anon = await w.fetch("/AuditEvent");
    assert.equal(anon.status, 401);
  });

  test("an inactive user with a role gets nothing: token refused -> 401, no new token -> 400", async () => {
    await put(w, "/User/user-4", { password: "password-4" });
    await put(w, "/Role/auditor-of-user-4", { name: "auditor", user: { reference: "User/user-4" } });
    const token = (await tokenOf("user-4", "password-4")).access_token;
    assert.equal(await call(token, "GET", "/AuditEvent"), 200, "control: active, the role grants");
    const res = await w.admin("PATCH", "/User/user-4", JSON.stringify({ inactive: true }), { "content-type": "application/merge-patch+json" });
    assert.equal(res.status, 200, await res.text());
    assert.equal(await call(token, "GET", "/AuditEvent"), 401);
    await assertError(
      await tokenPost(w, { grant_type: "password", username: "user-4", password: "password-4" }, { auth: basicAuth("app", "app-secret") }),
      400,
      "invalid_grant",
    );
  });

  test("a user cannot create or change a Role for themselves (an admin type) -> 403, nothing stored", async () => {
    // user-1 is a practitioner; they try to make themselves an auditor.
    const mine = { name: "auditor", user: { reference: "User/user-1" } };
    assert.equal(await call(user1, "PUT", "/Role/mine", mine), 403);
    assert.equal(await call(user1, "POST", "/Role", { id: "mine2", ...mine }), 403);
    assert.equal(await call(user1, "PATCH", "/Role/practioner-role-user-1", { name: "auditor" }), 403);
    assert.equal(await call(user1, "DELETE", "/Role/auditor-of-user-3"), 403);
    assert.equal(await call(user1, "GET", "/Role"), 403);
    assert.equal(await stored("/Role/mine"), null);
    assert.equal(await stored("/Role/mine2"), null);
    assert.equal((await stored("/Role/practioner-role-user-1")).name, "practitioner");
    assert.equal(await call(user1, "GET", "/AuditEvent"), 403);
  });

  test("a SMART token with system/*.cruds cannot write a Role either -> 403", async () => {
    await put(w, "/Client/backend", { secret: "backend-secret", grant_types: ["client_credentials"], scope: ["system/*.cruds"] });
    await put(w, "/AccessPolicy/backend-smart", { engine: "smart-on-fhir", link: [{ id: "backend", resourceType: "Client" }] });
    const res = await tokenPost(w, { grant_type: "client_credentials", scope: "system/*.cruds" }, { auth: basicAuth("backend", "backend-secret") });
    const t = await json(res);
    assert.equal(res.status, 200, JSON.stringify(t));
    assert.equal(await call(t.access_token, "PUT", "/Role/evil", { name: "auditor", user: { reference: "User/user-2" } }), 403);
    assert.equal(await call(t.access_token, "PUT", "/Scope/evil", { scope: "system/*.cruds", title: "x" }), 403);
    assert.equal(await stored("/Role/evil"), null);
    assert.equal(await call(t.access_token, "GET", "/Observation"), 200, "control: the token works on FHIR types");
  });

  test("control: a policy that lets one user manage Roles does (as in Aidbox, admin access is policy-given)", async () => {
    await put(w, "/User/role-admin", { password: "role-admin-pw" });
    await put(w, "/AccessPolicy/role-admin", {
      engine: "matcho", link: [{ id: "role-admin", resourceType: "User" }],
      matcho: { uri: "#^/Role(/|$)" },
    });
    const t = (await tokenOf("role-admin", "role-admin-pw")).access_token;
    assert.equal(await call(t, "PUT", "/Role/given", { name: "auditor", user: { reference: "User/user-2" } }), 201);
    assert.equal(await call(t, "GET", "/Role/given"), 200);
    assert.equal(await call(t, "PUT", "/Client/evil", { grant_types: ["basic"] }), 403, "only Roles");
  });

  test("Role writes that could grant by mistake are refused (422) and change nothing", async () => {
    for (const [body, field] of [
      [{ user: { reference: "User/user-2" } }, "name"],
      [{ name: "auditor" }, "user"],
      [{ name: "auditor", user: "User/user-2" }, "user"],
      [{ name: "auditor", user: { reference: "User/user-2", id: "user-9", resourceType: "User" } }, "user"],
      [{ name: "auditor", user: { reference: "User/user-2" }, links: { practitioner: { reference: "Patient/p" } } }, "links.practitioner"],
      [{ name: "auditor", user: { reference: "User/user-2" }, links: { admin: { reference: "User/user-2" } } }, "links.admin"],
    ]) {
      const b = await assertError(await w.admin("PUT", "/Role/bad", body), 422, "invalid_resource");
      assert.equal(b.field, field, JSON.stringify(body));
    }
    assert.equal(await stored("/Role/bad"), null);
    for (const roleName of ["", 7, ["auditor"]]) {
      const b = await assertError(await w.admin("PUT", "/AccessPolicy/bad", { engine: "allow", roleName }), 422, "invalid_resource");
      assert.equal(b.field, "roleName");
    }
  });
});

describe("User.fhirUser as {id, resourceType}, and Aidbox's context.patient", () => {
  before(async () => {
    // Aidbox docs: tutorials/security-access-control-tutorials/how-to-enable-smart-on-fhir-on-patient-access-api.md
    // ("Create Patient and User resources", the User, verbatim).
    await put(w, "/User/my-user", {
      id: "my-user",
      resourceType: "User",
      password: "password",
      fhirUser: { id: "my-patient", resourceType: "Patient" },
    });
    await put(w, "/Client/patient-app", {
      secret: "pa-secret", grant_types: ["password"],
      scope: ["openid", "fhirUser", "launch/patient", "patient/*.rs"],
    });
    await put(w, "/AccessPolicy/patient-app-smart", { engine: "smart-on-fhir", link: [{ id: "patient-app", resourceType: "Client" }] });
  });

  test("the token's patient, the ID token's fhirUser and userinfo follow the object form", async () => {
    const body = await tokenOf("my-user", "password", ["patient-app", "pa-secret"], "openid fhirUser patient/Patient.rs");
    assert.equal(body.patient, "my-patient");
    assert.equal(decodeJwt(body.access_token).payload.patient, "my-patient");
    // This client has no fhir-base-url: the reference itself (a SMART app gets the absolute URL, below).
    assert.equal(decodeJwt(body.id_token).payload.fhirUser, "Patient/my-patient");
    assert.deepEqual(body.userinfo.fhirUser, { id: "my-patient", resourceType: "Patient" });
    assert.equal(await call(body.access_token, "GET", "/Patient/my-patient"), 200);
    assert.equal(await call(body.access_token, "GET", "/Patient/other-patient"), 403);
  });

  test("matcho on .user.fhirUser.id (the examples page) works with it", async () => {
    // Aidbox docs: tutorials/security-access-control-tutorials/accesspolicy-examples.md, "2. Policy that
    // allows a user to view their own patient" (its Operation/FhirRead link replaced by a link to
    // this client, see above).
    await put(w, "/AccessPolicy/as-patient-get-patient-data", {
      resourceType: "AccessPolicy", engine: "matcho", link: [{ reference: "Client/app" }],
      description: "Policy that allows a patient to view their own patient data",
      matcho: { params: { "resource/id": ".user.fhirUser.id", "resource/type": "Patient" } },
    });
    const t = (await tokenOf("my-user", "password")).access_token;
    assert.equal(await call(t, "GET", "/Patient/my-patient"), 200);
    assert.equal(await call(t, "GET", "/Patient/123"), 403);
  });

  test("malformed fhirUser shapes are refused when written (422), never read as someone", async () => {
    for (const fhirUser of [
      { id: "my-patient" },
      { resourceType: "Patient" },
      { id: "my-patient", resourceType: "Patient", reference: "Patient/other" },
      { id: "my patient", resourceType: "Patient" },
      { id: "x", resourceType: "User" },
      { id: "my-patient", resourceType: "Patient", extension: [] },
      "Patient",
      ["Patient/my-patient"],
    ]) {
      const b = await assertError(await w.admin("PUT", "/User/odd", { password: "odd-pass", fhirUser }), 422, "invalid_resource");
      assert.equal(b.field, "fhirUser", JSON.stringify(fhirUser));
    }
    assert.equal(await stored("/User/odd"), null);
  });

  test("an Aidbox-issued token's context.patient confines patient/ scopes like patient", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = { ...rsa.publicKey.export({ format: "jwk" }), kid: "aidbox-1", alg: "RS256", use: "sig" };
    const ISS = "https://aidbox.example";
    await put(w, "/TokenIntrospector/aidbox", { type: "jwt", jwt: { iss: ISS }, jwks: { keys: [jwk] } });
    await put(w, "/AccessPolicy/aidbox-smart", {
      engine: "complex", and: [{ engine: "matcho", matcho: { jwt: { iss: ISS } } }, { engine: "smart-on-fhir" }],
    });
    const mint = (claims) => {
      const now = nowSecs();
      const c = { iss: ISS, sub: "test-user", aud: w.url, iat: now, exp: now + 300, ...claims };
      const input = `${b64url(JSON.stringify({ alg: "RS256", kid: "aidbox-1" }))}.${b64url(JSON.stringify(c))}`;
      return `${input}.${b64url(cryptoSign("sha256", Buffer.from(input), rsa.privateKey))}`;
    };
    // The claims of the access token in Aidbox docs: access-control/authorization/smart-on-fhir/
    // smart-client-authorization/smart-app-launch.md ("context":{"patient":"test-pt-1"}).
    const scope = "launch/patient openid fhirUser offline_access patient/Patient.read patient/Observation.read";
    const token = mint({ scope, context: { patient: "test-pt-1" } });
    assert.equal(await call(token, "GET", "/Patient/test-pt-1"), 200);
    assert.equal(await call(token, "GET", "/Observation?patient=test-pt-1"), 200);
    assert.equal(await call(token, "GET", "/Patient/test-pt-2"), 403);
    assert.equal(await call(token, "GET", "/Observation?patient=test-pt-2"), 403);
    // Two claims that disagree: no patient at all -> 403.
    const both = mint({ scope, patient: "test-pt-2", context: { patient: "test-pt-1" } });
    assert.equal(await call(both, "GET", "/Patient/test-pt-1"), 403);
    assert.equal(await call(both, "GET", "/Patient/test-pt-2"), 403);
    // A malformed context: none.
    assert.equal(await call(mint({ scope, context: { patient: ["test-pt-1"] } }), "GET", "/Patient/test-pt-1"), 403);
  });
});

describe("Client.allowed-scopes as references to Scope resources", () => {
  const FHIR = "https://fhir.example/patient/fhir";
  const CB = "https://inferno.healthit.gov/suites/custom/smart/redirect";

  before(async () => {
    // Scope resources in Aidbox's shape (docs reference/system-resources-reference/core-module-resources.md,
    // "Scope": scope, title, description), with ids the tutorial's Client refers to.
    for (const [id, scope] of [
      ["patient-patient-rs", "patient/Patient.rs"],
      ["patient-observation-rs", "patient/Observation.rs"],
      ["openid", "openid"],
      ["launch-patient", "launch/patient"],
      ["fhiruser", "fhirUser"],
      ["offline-access", "offline_access"],
    ]) {
      const res = await w.admin("POST", "/Scope", { id, resourceType: "Scope", scope, title: id });
      assert.equal(res.status, 201, await res.text());
    }
    // Aidbox docs: tutorials/security-access-control-tutorials/how-to-enable-smart-on-fhir-on-patient-access-api.md
    // ("Create Client resource"), verbatim but for `fhir-base-url`: the doc's relative
    // "/patient/fhir" needs the client options work of issue 13, so an absolute URL here.
    const refs = [
      "patient-medication-rs", "patient-allergyintolerance-rs", "patient-careplan-rs", "patient-careteam-rs",
      "patient-condition-rs", "patient-device-rs", "patient-diagnosticreport-rs", "patient-documentreference-rs",
      "patient-encounter-rs", "patient-goal-rs", "patient-immunization-rs", "patient-location-rs",
      "patient-medicationrequest-rs", "patient-observation-rs", "patient-organization-rs", "patient-patient-rs",
      "patient-practitioner-rs", "patient-procedure-rs", "patient-provenance-rs", "patient-practitionerrole-rs",
      "patient-medication-read", "patient-allergyintolerance-read", "patient-careplan-read", "patient-careteam-read",
      "patient-condition-read", "patient-device-read", "patient-diagnosticreport-read", "patient-documentreference-read",
      "patient-encounter-read", "patient-goal-read", "patient-immunization-read", "patient-location-read",
      "patient-medicationrequest-read", "patient-observation-read", "patient-organization-read", "patient-patient-read",
      "patient-practitioner-read", "patient-procedure-read", "patient-provenance-read", "patient-practitionerrole-read",
      "openid", "launch-patient", "fhiruser", "offline-access",
    ];
    // (The doc sends it in a `PUT /` list; here it is PUT on its own URL.)
    const res = await w.admin("PUT", "/Client/smart-app", {
      "fhir-base-url": FHIR,
      type: "smart-app",
      grant_types: ["authorization_code"],
      resourceType: "Client",
      auth: {
        authorization_code: {
          pkce: false,
          redirect_uri: CB,
          refresh_token: true,
          secret_required: false,
          access_token_expiration: 3600,
        },
      },
      secret: "secret",
      active: true,
      id: "smart-app",
      "allowed-scopes": refs.map((id) => ({ resourceType: "Scope", id })),
    });
    assert.equal(res.status, 201, await res.text());
    await put(w, "/AccessPolicy/smart-app", { engine: "smart-on-fhir", link: [{ id: "smart-app", resourceType: "Client" }] });
  });

  /** Standalone launch as my-user (the patient above): sign-in, consent, code, token. */
  async function standalone(scope) {
    const { verifier, challenge } = pkce();
    const q = authorizeQuery({
      response_type: "code", client_id: "smart-app", redirect_uri: CB, scope, state: "st", aud: FHIR,
      code_challenge: challenge, code_challenge_method: "S256",
    });
    const first = await w.fetch(`/auth/authorize?${q}`);
    await first.arrayBuffer();
    assert.equal(first.status, 303);
    let loc = new URL(first.headers.get("location"), w.url);
    if (loc.pathname !== "/auth/ui/login.html") return { location: loc };
    const { csrf, jar } = await interaction(w, q);
    const login = await postLogin(w, { query: q, csrf, jar, username: "my-user", password: "password" });
    await login.arrayBuffer();
    loc = new URL(login.headers.get("location"), w.url);
    if (loc.pathname === "/auth/ui/consent.html") {
      const j = { ...jar, ...cookies(login) };
      const i = await interaction(w, q, j);
      const c = await postConsent(w, { query: q, csrf: i.csrf, jar: i.jar });
      await c.arrayBuffer();
      loc = new URL(c.headers.get("location"), w.url);
    }
    const code = loc.searchParams.get("code");
    if (!code) return { location: loc };
    const res = await tokenPost(
      w,
      { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier },
      { auth: basicAuth("smart-app", "secret") },
    );
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    return { location: loc, body };
  }

  test("the scopes its Scope references name are granted; the token works for them", async () => {
    const { body, location } = await standalone("launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs");
    assert.ok(body, `no code: ${location}`);
    assert.equal(body.scope, "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs");
    assert.equal(body.patient, "my-patient");
    assert.match(decodeJwt(body.id_token).payload.fhirUser, /\/Patient\/my-patient$/);
    assert.ok(body.refresh_token, "offline_access through its Scope reference");
    assert.equal(await call(body.access_token, "GET", "/Patient/my-patient"), 200);
    assert.equal(await call(body.access_token, "GET", "/Observation?patient=my-patient"), 200);
  });

  test("a reference to a Scope that does not exist grants nothing -> invalid_scope, no code", async () => {
    // patient-condition-rs is referenced by the Client but was never created.
    const { location, body } = await standalone("openid patient/Condition.rs");
    assert.equal(body, undefined);
    assert.equal(location.searchParams.get("error"), "invalid_scope", `${location}`);
  });

  test("a scope not referenced at all -> invalid_scope; a Scope changed later is read anew", async () => {
    let r = await standalone("openid patient/*.rs");
    assert.equal(r.location.searchParams.get("error"), "invalid_scope", `${r.location}`);
    // The Scope patient-observation-rs now means Encounter: Observation is no longer granted.
    await put(w, "/Scope/patient-observation-rs", { scope: "patient/Encounter.rs", title: "Encounters" });
    r = await standalone("openid patient/Observation.rs");
    assert.equal(r.location.searchParams.get("error"), "invalid_scope", `${r.location}`);
    r = await standalone("openid patient/Encounter.rs");
    assert.ok(r.body, `${r.location}`);
  });

  test("Scope and reference shapes are checked when written (422)", async () => {
    for (const [path, body, field] of [
      ["/Scope/bad", { scope: "openid profile", title: "t" }, "scope"],
      ["/Scope/bad", { scope: "openid" }, "title"],
      ["/Scope/bad", { scope: "openid", title: "t", scopes: ["x"] }, "scopes"],
      ["/Client/bad", { "allowed-scopes": [{ resourceType: "Client", id: "x" }] }, "allowed-scopes.0"],
      ["/Client/bad", { "allowed-scopes": [{ resourceType: "Scope" }] }, "allowed-scopes.0"],
      ["/Client/bad", { "allowed-scopes": [{ resourceType: "Scope", id: "x", scope: "system/*.cruds" }] }, "allowed-scopes.0"],
      ["/Client/bad", { scope: [{ reference: "Scope/a b" }] }, "scope.0"],
    ]) {
      const b = await assertError(await w.admin("PUT", path, body), 422, "invalid_resource");
      assert.equal(b.field, field, JSON.stringify(body));
    }
    assert.equal(await stored("/Scope/bad"), null);
    assert.equal(await stored("/Client/bad"), null);
  });
});
