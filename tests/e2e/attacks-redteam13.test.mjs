// Issue 13 red team: hostile callers against what issue 13 added (secret_required false,
// auth.<flow>.audience, client_credentials refresh, unrotated refresh, imported hashes, Role /
// roleName, Scope references, fhirUser objects). Holes found (fixed, docs/attack-corpus.md
// "Issue 13 — red team"): "revoke" (a `grant_type` sent to /auth/revoke picked the flow whose
// `secret_required: false` let the client in), "roleName in a sub-policy" (ignored, so the
// sub-policy allowed everyone), "keys but no secret" (a client with jwks was public without an
// assertion) and "empty secret" (an imported hash of "" authenticated `client_secret=`). The
// rest documents boundaries that already held.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-redteam13.test.mjs      (after the build)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { startWorker, startOrigin, basicAuth, json, decodeJwt, FORM } from "./harness.mjs";
import { assertError, put, tokenPost } from "./attacks-lib.mjs";

let w;
let origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
  await put(w, "/User/eve", { email: "eve@example.com", password: "evepass1" });
  // Everything below on FHIR types for a signed-in user or a client (not anonymous), so a
  // refused request is a 401/403 of the token, not of a missing policy.
  await put(w, "/AccessPolicy/signed-in", {
    engine: "matcho",
    matcho: { uri: "#^/Patient", "request-method": "get" },
  });
  // A client with a secret that lets the password flow go without it (Aidbox's
  // secret_required: false), and keeps client_credentials (with refresh) confidential.
  await put(w, "/Client/mixed", {
    secret: "mixed-secret",
    grant_types: ["password", "client_credentials", "authorization_code"],
    auth: {
      password: { secret_required: false, refresh_token: true },
      client_credentials: { refresh_token: true, audience: "https://reporting.example/api" },
      authorization_code: { redirect_uri: "https://app.example/cb", refresh_token: true },
    },
  });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

async function ok(res) {
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}
const revokeForm = (params, auth) =>
  w.fetch("/auth/revoke", {
    method: "POST",
    headers: { ...FORM, ...(auth ? { authorization: auth } : {}) },
    body: new URLSearchParams(params).toString(),
  });
const bearer = (path, token) => w.fetch(path, { headers: { authorization: `Bearer ${token}` } });
const cc = (extra = {}) => tokenPost(w, { grant_type: "client_credentials", audience: w.url, ...extra }, { auth: basicAuth("mixed", "mixed-secret") });

describe("secret_required: false used beyond its flow", () => {
  test("HOLE (fixed): /auth/revoke with only client_id and grant_type=password revoked a client_credentials family", async () => {
    const first = await ok(await cc());
    assert.equal(typeof first.refresh_token, "string");
    // The attacker has a leaked refresh token but not the secret; `grant_type` means nothing to
    // RFC 7009, yet it chose the flow whose secret_required: false let the client in.
    assert.equal((await revokeForm({ client_id: "mixed", grant_type: "password", token: first.refresh_token })).status, 200);
    assert.equal((await revokeForm({ client_id: "mixed", grant_type: "password", token: first.access_token })).status, 200);
    // The family and the access token live on (old build: invalid_grant and 401).
    await ok(await tokenPost(w, { grant_type: "refresh_token", refresh_token: first.refresh_token }, { auth: basicAuth("mixed", "mixed-secret") }));
    assert.equal((await bearer("/Patient", first.access_token)).status, 200, "revoked by a caller without the secret");
  });

  test("positive control: a password family is revoked with client_id alone (secret_required: false), with or without grant_type", async () => {
    for (const extra of [{}, { grant_type: "password" }]) {
      const t = await ok(await tokenPost(w, { grant_type: "password", client_id: "mixed", username: "john", password: "pass123" }));
      assert.equal((await revokeForm({ client_id: "mixed", token: t.refresh_token, ...extra })).status, 200);
      await assertError(await tokenPost(w, { grant_type: "refresh_token", client_id: "mixed", refresh_token: t.refresh_token }), 400, "invalid_grant");
    }
    // With the secret, any of its families, the client_credentials one too.
    const c = await ok(await cc());
    assert.equal((await revokeForm({ token: c.refresh_token }, basicAuth("mixed", "mixed-secret"))).status, 200);
    await assertError(await tokenPost(w, { grant_type: "refresh_token", refresh_token: c.refresh_token }, { auth: basicAuth("mixed", "mixed-secret") }), 400, "invalid_grant");
    // A wrong secret is still refused (not "no secret").
    await assertError(await revokeForm({ client_id: "mixed", client_secret: "nope", token: c.refresh_token }), 401, "invalid_client");
  });

  test("closed: a client_credentials family refreshed with only client_id (grant_type refresh_token)", async () => {
    const first = await ok(await cc());
    await assertError(await tokenPost(w, { grant_type: "refresh_token", client_id: "mixed", refresh_token: first.refresh_token }), 401, "invalid_client");
    // Not used up by the refused attempt.
    await ok(await tokenPost(w, { grant_type: "refresh_token", refresh_token: first.refresh_token }, { auth: basicAuth("mixed", "mixed-secret") }));
  });

  test("closed: the authorization_code and client_credentials grants without the secret", async () => {
    await assertError(await tokenPost(w, { grant_type: "authorization_code", client_id: "mixed", code: "x", redirect_uri: "https://app.example/cb" }), 401, "invalid_client");
    await assertError(await tokenPost(w, { grant_type: "client_credentials", client_id: "mixed" }), 401, "invalid_client");
  });

  test("closed: the secret-less password flow asking for the client_credentials flow's audience", async () => {
    const res = await tokenPost(w, {
      grant_type: "password",
      client_id: "mixed",
      username: "john",
      password: "pass123",
      audience: "https://reporting.example/api",
    });
    await assertError(res, 400, "invalid_target");
  });
});

describe("secret_required: false on one flow, refresh_token_rotation: false on another", () => {
  test("closed: the unrotated family of the confidential flow, refreshed or revoked with only client_id", async () => {
    await put(w, "/Client/combo", {
      secret: "combo-secret",
      grant_types: ["password", "authorization_code"],
      auth: {
        authorization_code: { redirect_uri: "https://app.example/cb", secret_required: false },
        password: { refresh_token: true, refresh_token_rotation: false },
      },
    });
    const auth = { auth: basicAuth("combo", "combo-secret") };
    const t = await ok(await tokenPost(w, { grant_type: "password", username: "john", password: "pass123" }, auth));
    // No secret: the family's flow (password) requires it, whatever flow let the client in.
    await assertError(await tokenPost(w, { grant_type: "refresh_token", client_id: "combo", refresh_token: t.refresh_token }), 401, "invalid_client");
    await assertError(await tokenPost(w, { grant_type: "password", client_id: "combo", username: "john", password: "pass123" }), 401, "invalid_client");
    assert.equal((await revokeForm({ client_id: "combo", token: t.refresh_token })).status, 200);
    // Still the family's current token, unrotated, with the secret.
    const again = await ok(await tokenPost(w, { grant_type: "refresh_token", refresh_token: t.refresh_token }, auth));
    assert.equal(again.refresh_token, t.refresh_token);
    // rotation false with secret_required false on the same flow: 422.
    const body = await assertError(
      await w.admin("PUT", "/Client/combo2", {
        secret: "s",
        grant_types: ["password"],
        auth: { password: { secret_required: false, refresh_token: true, refresh_token_rotation: false } },
      }),
      422,
      "invalid_resource",
    );
    assert.equal(body.field, "auth.password.refresh_token_rotation");
  });
});

describe("audience confusion", () => {
  test("closed: a token for the flow's foreign audience on the FHIR API, the admin API, userinfo", async () => {
    const t = await ok(await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("mixed", "mixed-secret") }));
    assert.equal(decodeJwt(t.access_token).payload.aud, "https://reporting.example/api");
    for (const path of ["/Patient", "/Client", "/User/john", "/auth/userinfo"]) {
      assert.equal((await bearer(path, t.access_token)).status, 401, path);
    }
  });

  test("closed: audience/resource as a list, twice, or an audience the client was not given", async () => {
    const auth = { auth: basicAuth("mixed", "mixed-secret") };
    const asJson = (body) =>
      w.fetch("/auth/token", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: basicAuth("mixed", "mixed-secret") },
        body: JSON.stringify({ grant_type: "client_credentials", ...body }),
      });
    for (const body of [{ resource: [w.url, "https://evil.example"] }, { audience: ["https://reporting.example/api"] }]) {
      const res = await asJson(body);
      assert.ok(res.status >= 400 && res.status < 500, `${JSON.stringify(body)}: ${res.status}`);
    }
    const twice = await w.fetch("/auth/token", {
      method: "POST",
      headers: { ...FORM, authorization: basicAuth("mixed", "mixed-secret") },
      body: `grant_type=client_credentials&resource=${encodeURIComponent(w.url)}&resource=https%3A%2F%2Fevil.example`,
    });
    assert.equal(twice.status, 400);
    await assertError(await tokenPost(w, { grant_type: "client_credentials", resource: "https://evil.example" }, auth), 400, "invalid_target");
  });
});

describe("imported hashes", () => {
  const salt = "AAECAwQFBgcICQoLDA0ODw==";
  const key = "TRT1SFnBOE/ASERmBuq6OdwkcX3DZFfzB9P+xcuzUu8=";
  const AIDBOX_HASH = `$s0$e0801$${salt}$${key}`;

  test("closed: a too costly $s0$ through PATCH and POST (not only PUT)", async () => {
    await put(w, "/User/patched", { email: "patched@example.com", password: "orig-pass" });
    const costly = `$s0$110801$${salt}$${key}`; // N = 2^17
    const patch = await w.admin("PATCH", "/User/patched", JSON.stringify({ password: costly }), { "content-type": "application/merge-patch+json" });
    assert.equal((await assertError(patch, 422, "invalid_resource")).field, "password");
    const post = await w.admin("POST", "/User", { id: "posted", password: costly });
    const body = await assertError(post, 422, "invalid_resource");
    assert.equal(body.field, "password");
    assert.equal((await w.admin("GET", "/User/posted")).status, 404);
    // The PATCH left the password alone.
    await ok(await tokenPost(w, { grant_type: "password", client_id: "mixed", username: "patched@example.com", password: "orig-pass" }));
  });

  test("closed: the stored $s0$ hash as a client's Basic secret on the API and at the token endpoint", async () => {
    // Same hash as a Client secret (docs/reference.md "Credentials exported from Aidbox": an imported secret may be $s0$ too).
    await put(w, "/Client/imported", { secret: AIDBOX_HASH, grant_types: ["basic", "client_credentials"] });
    assert.equal((await w.fetch("/Patient", { headers: { authorization: basicAuth("imported", AIDBOX_HASH) } })).status, 401);
    await assertError(await tokenPost(w, { grant_type: "client_credentials" }, { auth: basicAuth("imported", AIDBOX_HASH) }), 401, "invalid_client");
    // Control: the secret itself works, once re-hashed too.
    assert.equal((await w.fetch("/Patient", { headers: { authorization: basicAuth("imported", "my-secret-password") } })).status, 200);
    assert.equal((await w.fetch("/Patient", { headers: { authorization: basicAuth("imported", "my-secret-password") } })).status, 200);
  });

  test("HOLE (fixed): an imported hash of the empty secret let client_secret= authenticate a confidential client", async () => {
    // printf '' | sha256sum: refused at write, as an empty `secret` is (old build: 201).
    const emptySha = "$sha256$e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const body = await assertError(
      await w.admin("PUT", "/Client/empty-sha", { secret: emptySha, grant_types: ["client_credentials"] }),
      422,
      "invalid_resource",
    );
    assert.equal(body.field, "secret");
    // scrypt of "" (Python: hashlib.scrypt(b"", salt=bytes(range(16)), n=16384, r=8, p=1,
    // dklen=32)) cannot be told from another hash at write; it never matches (old build: 200).
    const emptyScrypt = `$s0$e0801$${salt}$0xv24VsXC2JG+Z8qF/PLNl4lrO4CjCW5okKsht1CLoY=`;
    await put(w, "/Client/empty-scrypt", { secret: emptyScrypt, grant_types: ["client_credentials"] });
    await assertError(await tokenPost(w, { grant_type: "client_credentials", client_id: "empty-scrypt", client_secret: "" }), 401, "invalid_client");
    const raw = await (await w.miniflare.getKVNamespace("RESOURCES")).get("Client/empty-scrypt");
    assert.match(raw, /\$s0\$/, "re-hashed after an empty secret");
  });

  test("closed: guessing against an imported scrypt hash is throttled like any sign-in", async () => {
    await put(w, "/User/imp", { email: "imp@example.com", password: AIDBOX_HASH });
    const statuses = [];
    for (let i = 0; i < 7; i++) {
      const res = await tokenPost(w, { grant_type: "password", client_id: "mixed", username: "imp@example.com", password: `guess-${i}` });
      statuses.push(res.status);
      await res.text();
    }
    assert.ok(statuses.includes(429), statuses.join(","));
    assert.ok(!statuses.includes(200) && !statuses.includes(500), statuses.join(","));
  });
});

describe("Roles and roleName", () => {
  let eve;
  before(async () => {
    eve = await ok(await tokenPost(w, { grant_type: "password", client_id: "mixed", username: "eve", password: "evepass1" }));
  });

  test("HOLE (fixed): roleName on a complex sub-policy was ignored, so it allowed everyone", async () => {
    const res = await w.admin("PUT", "/AccessPolicy/admins-only", {
      engine: "complex",
      or: [{ engine: "allow", roleName: "admin" }],
    });
    const body = await assertError(res, 422, "invalid_resource");
    assert.equal(body.field, "or.0.roleName");
    // eve holds no Role: the User admin API stays closed to her (old build: 200).
    assert.equal((await bearer("/User", eve.access_token)).status, 403);
    // Control: roleName on the top-level policy is enforced.
    await put(w, "/AccessPolicy/admins-only", { engine: "allow", roleName: "admin" });
    assert.equal((await bearer("/User", eve.access_token)).status, 403);
    await put(w, "/Role/eve-admin", { name: "admin", user: { id: "eve", resourceType: "User" } });
    assert.equal((await bearer("/User", eve.access_token)).status, 200);
    assert.equal((await w.admin("DELETE", "/Role/eve-admin")).status, 200);
    assert.equal((await bearer("/User", eve.access_token)).status, 403);
    assert.equal((await w.admin("DELETE", "/AccessPolicy/admins-only")).status, 200);
  });

  test("closed: role names are exact (case, spaces), and a Role's two reference forms must agree", async () => {
    await w.admin("DELETE", "/AccessPolicy/admins-only"); // left by the case above when it fails
    await put(w, "/AccessPolicy/auditors", { engine: "allow", roleName: "auditor" });
    for (const name of ["Auditor", "auditor ", " auditor", "AUDITOR"]) {
      await put(w, "/Role/eve-odd", { name, user: { reference: "User/eve" } });
      assert.equal((await bearer("/User", eve.access_token)).status, 403, JSON.stringify(name));
    }
    const body = await assertError(
      await w.admin("PUT", "/Role/eve-mixed", { name: "auditor", user: { reference: "User/john", id: "eve", resourceType: "User" } }),
      422,
      "invalid_resource",
    );
    assert.equal(body.field, "user");
    for (const user of [{ reference: "https://x.example/User/eve" }, { reference: "user/eve" }, { reference: "User/eve/_history/1" }]) {
      await assertError(await w.admin("PUT", "/Role/eve-mixed", { name: "auditor", user }), 422, "invalid_resource");
    }
    assert.equal((await bearer("/User", eve.access_token)).status, 403);
    for (const name of ["auditor\n", "audi\u0000tor", "", "   ", "x".repeat(257)]) {
      const res = await w.admin("PUT", "/Role/eve-odd", { name, user: { reference: "User/eve" } });
      assert.equal((await assertError(res, 422, "invalid_resource")).field, "name", JSON.stringify(name));
    }
    await w.admin("DELETE", "/Role/eve-odd");
    await w.admin("DELETE", "/AccessPolicy/auditors");
  });
});

describe("a user allowed to write Roles for itself", () => {
  test("closed: a Role naming another user through the other reference form, or both forms disagreeing", async () => {
    await put(w, "/AccessPolicy/self-roles", {
      engine: "matcho",
      link: [{ id: "eve", resourceType: "User" }],
      matcho: { uri: "#^/Role/eve-", "request-method": "put", resource: { name: "reader", user: { id: ".user.id" } } },
    });
    await put(w, "/AccessPolicy/readers", { engine: "allow", roleName: "reader" });
    const eve = await ok(await tokenPost(w, { grant_type: "password", client_id: "mixed", username: "eve", password: "evepass1" }));
    const john = await ok(await tokenPost(w, { grant_type: "password", client_id: "mixed", username: "john", password: "pass123" }));
    const putRole = (id, body) =>
      w.fetch(`/Role/${id}`, { method: "PUT", headers: { authorization: `Bearer ${eve.access_token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    // The policy reads `user.id`; the `reference` form names john: refused by the policy.
    assert.equal((await putRole("eve-1", { name: "reader", user: { reference: "User/john" } })).status, 403);
    // Both forms, the id the policy checks being eve's and the reference john's: 422, not stored.
    const mixed = await putRole("eve-2", { name: "reader", user: { id: "eve", resourceType: "User", reference: "User/john" } });
    assert.equal(mixed.status, 422, await mixed.text());
    for (const id of ["eve-1", "eve-2"]) assert.equal((await w.admin("GET", `/Role/${id}`)).status, 404);
    assert.equal((await bearer("/Client", john.access_token)).status, 403, "john got the reader role");
    // Control: a Role for herself is written and works for her only.
    assert.equal((await putRole("eve-3", { name: "reader", user: { id: "eve", resourceType: "User" } })).status, 201);
    assert.equal((await bearer("/Client", eve.access_token)).status, 200);
    assert.equal((await bearer("/Client", john.access_token)).status, 403);
    await w.admin("DELETE", "/Role/eve-3");
    await w.admin("DELETE", "/AccessPolicy/readers");
    await w.admin("DELETE", "/AccessPolicy/self-roles");
  });
});

describe("fhirUser and Scope references", () => {
  test("closed: fhirUser naming an admin type in URL, reference or object form", async () => {
    for (const fhirUser of [
      "https://x.example/fhir/User/john",
      "https://x.example/fhir/Client/mixed",
      { reference: "https://x.example/fhir/AccessPolicy/signed-in" },
      { resourceType: "Role", id: "r1" },
      { resourceType: "user", id: "john" },
      "Patient/p1/_history/1",
    ]) {
      const body = await assertError(await w.admin("PUT", "/User/fu", { password: "fu-pass-1", fhirUser }), 422, "invalid_resource");
      assert.equal(body.field, "fhirUser", JSON.stringify(fhirUser));
    }
  });

  test("closed: a system/ scope through a Scope reference on a password client", async () => {
    await put(w, "/Scope/sys-read", { scope: "system/Patient.read", title: "System read" });
    await put(w, "/Client/scoped", { secret: "scoped-secret", grant_types: ["password"], "allowed-scopes": [{ id: "sys-read", resourceType: "Scope" }] });
    await assertError(
      await tokenPost(w, { grant_type: "password", username: "john", password: "pass123", scope: "system/Patient.read" }, { auth: basicAuth("scoped", "scoped-secret") }),
      400,
      "invalid_scope",
    );
    // The Scope rewritten wider: read at every grant (docs/smart-on-fhir.md), so the new value is granted and
    // the old one no longer; a system/ value still only through client_credentials.
    await put(w, "/Scope/narrow", { scope: "reports-read", title: "Narrow" });
    await put(w, "/Client/scoped2", { secret: "s2", grant_types: ["password"], scope: [{ reference: "Scope/narrow" }] });
    const pw = (scope) =>
      tokenPost(w, { grant_type: "password", username: "john", password: "pass123", scope }, { auth: basicAuth("scoped2", "s2") });
    assert.equal((await ok(await pw("reports-read"))).scope, "reports-read");
    await assertError(await pw("reports-write"), 400, "invalid_scope");
    await put(w, "/Scope/narrow", { scope: "reports-write", title: "Wider" });
    assert.equal((await ok(await pw("reports-write"))).scope, "reports-write");
    await assertError(await pw("reports-read"), 400, "invalid_scope");
    await put(w, "/Scope/narrow", { scope: "system/*.cruds", title: "System" });
    await assertError(await pw("system/*.cruds"), 400, "invalid_scope");
    // A Scope reference to an admin type is no scope at all.
    await assertError(await w.admin("PUT", "/Scope/admin-read", { scope: "user/User.read", title: "x" }), 422, "invalid_resource");
  });
});

describe("a client with keys (private_key_jwt) but no secret", () => {
  before(async () => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
    await put(w, "/Client/keyed", {
      grant_types: ["client_credentials", "password"],
      jwks: { keys: [{ ...publicKey.export({ format: "jwk" }), kid: "k1", alg: "ES384" }] },
    });
    // What the client may do is tied to its id, as Aidbox policies are.
    await put(w, "/AccessPolicy/keyed-admin", { engine: "allow", link: [{ id: "keyed", resourceType: "Client" }] });
  });

  test("HOLE (fixed): the password grant with only its client_id (it is confidential: is_confidential, requires_secret)", async () => {
    // Old build: 200, a token of the keyed client for anyone with a user's password, and with
    // it the client's policies (here the admin API).
    const res = await tokenPost(w, { grant_type: "password", client_id: "keyed", username: "eve", password: "evepass1" });
    await assertError(res, 401, "invalid_client");
  });

  test("closed: client_credentials with only its client_id", async () => {
    await assertError(await tokenPost(w, { grant_type: "client_credentials", client_id: "keyed" }), 401, "invalid_client");
  });
});
