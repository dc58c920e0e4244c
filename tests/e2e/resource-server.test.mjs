// Issue 17: the protected API as an OAuth resource server. RFC 9728 protected-resource metadata
// (root and path-suffixed), `resource_metadata` in every Bearer challenge of the protected API,
// RFC 6750 3.1 `insufficient_scope` with the scope a SMART policy needs, RFC 8707 resource
// indicators at authorize and token (validated, canonicalised, bound to the code and the refresh
// family) and the authorizer refusing a token minted for another of our resources.
//
//   node --test --test-concurrency=1 tests/e2e/resource-server.test.mjs   (after scripts/build-worker.sh)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth, json, decodeJwt } from "./harness.mjs";
import { assertError, put, pkce, interaction, postLogin, authorizeQuery, tokenPost } from "./attacks-lib.mjs";

const CB = "https://mcp-client.example/cb";
let w, origin, ISS;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url, vars: { PROTECTED_RESOURCES: "/mcp,/fhir" } });
  ISS = w.url;
  // A public MCP client (code + PKCE), first-party so no consent page.
  await put(w, "/Client/mcp-app", {
    first_party: true, grant_types: ["authorization_code", "refresh_token"],
    auth: { authorization_code: { redirect_uri: CB, refresh_token: true } },
  });
  await put(w, "/AccessPolicy/mcp-app", { engine: "allow", link: [{ id: "mcp-app", resourceType: "Client" }] });
  // A backend client allowed everywhere, and one whose FHIR access is decided by SMART scopes.
  await put(w, "/Client/bot", { secret: "b1", grant_types: ["client_credentials", "password"] });
  await put(w, "/AccessPolicy/bot", { engine: "allow", link: [{ id: "bot", resourceType: "Client" }] });
  await put(w, "/Client/svc", {
    secret: "s1", grant_types: ["client_credentials"],
    scope: ["system/Patient.rs", "system/Patient.read", "system/Observation.rs?category=laboratory"],
  });
  await put(w, "/AccessPolicy/svc", { engine: "smart-on-fhir", link: [{ id: "svc", resourceType: "Client" }] });
  await put(w, "/Client/nopolicy", { secret: "n1", grant_types: ["client_credentials"] });
  await put(w, "/User/john", { password: "pass123" });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

const prmUrl = (suffix = "") => `${ISS}/.well-known/oauth-protected-resource${suffix}`;
const bearer = (t) => ({ authorization: `Bearer ${t}` });

async function call(path, token) {
  const res = await w.fetch(path, { headers: token ? bearer(token) : {} });
  const text = await res.text();
  return { res, text, status: res.status, challenge: res.headers.get("www-authenticate") ?? "" };
}

async function cc(auth, params = {}) {
  return tokenPost(w, { grant_type: "client_credentials", ...params }, { auth });
}

async function ccToken(auth, params = {}) {
  const res = await cc(auth, params);
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

/** Runs code + PKCE for mcp-app as john; returns { location, verifier } of the final redirect. */
async function authorize(over = {}) {
  const { verifier, challenge } = pkce();
  const q = authorizeQuery({
    response_type: "code", client_id: "mcp-app", redirect_uri: CB, state: "st",
    code_challenge: challenge, code_challenge_method: "S256", ...over,
  });
  const first = await w.fetch(`/auth/authorize?${q}`);
  await first.arrayBuffer();
  assert.equal(first.status, 303, `authorize answered ${first.status}`);
  let loc = new URL(first.headers.get("location"), w.url);
  if (loc.pathname === "/auth/ui/login.html") {
    const { csrf, jar } = await interaction(w, q);
    const res = await postLogin(w, { query: q, csrf, jar });
    await res.arrayBuffer();
    assert.equal(res.status, 303, `login answered ${res.status}`);
    loc = new URL(res.headers.get("location"), w.url);
  }
  return { location: loc, verifier };
}

async function code(over = {}) {
  const { location, verifier } = await authorize(over);
  const c = location.searchParams.get("code");
  assert.ok(c, `no code: ${location}`);
  return { code: c, verifier };
}

const redeem = (c, verifier, extra = {}) =>
  tokenPost(w, { grant_type: "authorization_code", client_id: "mcp-app", code: c, redirect_uri: CB, code_verifier: verifier, ...extra });

describe("RFC 9728 protected-resource metadata", () => {
  test("root document: the issuer as the resource, us as its authorization server, cacheable, CORS *", async () => {
    const res = await w.fetch("/.well-known/oauth-protected-resource");
    const doc = await json(res);
    assert.equal(res.status, 200);
    assert.equal(doc.resource, ISS);
    assert.deepEqual(doc.authorization_servers, [ISS]);
    assert.deepEqual(doc.bearer_methods_supported, ["header"]);
    assert.deepEqual(doc.dpop_signing_alg_values_supported, ["ES256", "ES384", "EdDSA", "Ed25519", "RS256"]);
    assert.ok(Array.isArray(doc.scopes_supported) && doc.scopes_supported.includes("openid"));
    assert.match(res.headers.get("cache-control"), /max-age=300/);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    // The AS metadata it points to is there.
    const as = await json(await w.fetch("/.well-known/oauth-authorization-server"));
    assert.equal(as.issuer, doc.authorization_servers[0]);
  });

  test("path-suffixed documents (RFC 9728 3.1) for each PROTECTED_RESOURCES prefix", async () => {
    for (const p of ["/mcp", "/fhir"]) {
      const res = await w.fetch(`/.well-known/oauth-protected-resource${p}`);
      const doc = await json(res);
      assert.equal(res.status, 200, JSON.stringify(doc));
      assert.equal(doc.resource, `${ISS}${p}`);
      assert.deepEqual(doc.authorization_servers, [ISS]);
    }
  });

  test("unknown suffix -> 404 JSON not_found (also below a known prefix); POST -> 405", async () => {
    for (const p of ["/nope", "/mcp/tools", "/MCP", "/mcp%2F..%2Ffhir", "/"]) {
      await assertError(await w.fetch(`/.well-known/oauth-protected-resource${p}`), 404, "not_found");
    }
    const res = await w.fetch("/.well-known/oauth-protected-resource", { method: "POST" });
    await res.arrayBuffer();
    assert.equal(res.status, 405);
  });
});

describe("RFC 9728 5.1: resource_metadata in every challenge of the protected API", () => {
  test("401 without credentials names the metadata of the path's resource", async () => {
    for (const [path, suffix] of [["/mcp", "/mcp"], ["/mcp/tools/list", "/mcp"], ["/fhir/Patient", "/fhir"], ["/Patient", ""], ["/mcpx", ""]]) {
      const r = await call(path);
      assert.equal(r.status, 401, path);
      assert.equal(r.challenge, `Bearer realm="edge-authorizer", resource_metadata="${prmUrl(suffix)}"`, path);
      assert.equal(JSON.parse(r.text).resourceType, "OperationOutcome");
    }
  });

  test("401 invalid_token keeps its parameters and adds resource_metadata", async () => {
    const r = await call("/fhir/Patient", "not-a-jwt.x.y");
    assert.equal(r.status, 401);
    // Two challenges (RFC 9449 7.1: DPoP beside Bearer), each naming the metadata.
    const meta = `resource_metadata="${prmUrl("/fhir")}"`;
    assert.ok(
      r.challenge.startsWith('Bearer realm="edge-authorizer", error="invalid_token", error_description="') &&
        r.challenge.includes(`", ${meta}, DPoP algs="`) &&
        r.challenge.endsWith(`", ${meta}`),
      r.challenge,
    );
  });

  test("Basic challenges and /auth endpoints are unchanged (no resource_metadata)", async () => {
    const r = await call("/Patient", null);
    const basic = await w.fetch("/Patient", { headers: { authorization: basicAuth("bot", "wrong") } });
    await basic.arrayBuffer();
    assert.equal(basic.status, 401);
    assert.doesNotMatch(basic.headers.get("www-authenticate"), /resource_metadata/);
    const ui = await w.fetch("/auth/userinfo");
    await ui.arrayBuffer();
    assert.doesNotMatch(ui.headers.get("www-authenticate") ?? "", /resource_metadata/);
    assert.equal(r.status, 401);
  });
});

describe("RFC 6750 3.1: 403 insufficient_scope with the scope this request needs", () => {
  test("SMART v2 token without the type -> 403, scope=\"system/Observation.s\" (a search needs s), OperationOutcome", async () => {
    const t = await ccToken(basicAuth("svc", "s1"), { scope: "system/Patient.rs" });
    assert.equal((await call("/fhir/Patient", t)).status, 200, "positive control");
    const r = await call("/fhir/Observation", t);
    assert.equal(r.status, 403, r.text);
    assert.equal(
      r.challenge,
      `Bearer realm="edge-authorizer", error="insufficient_scope", scope="system/Observation.s", resource_metadata="${prmUrl("/fhir")}"`,
    );
    const body = JSON.parse(r.text);
    assert.equal(body.resourceType, "OperationOutcome");
    assert.equal(body.error, "insufficient_scope");
    assert.equal(body.issue[0].code, "forbidden");
  });

  test("a write needs the write permission: POST /fhir/Patient -> scope=\"system/Patient.c\"", async () => {
    const t = await ccToken(basicAuth("svc", "s1"), { scope: "system/Patient.rs" });
    const res = await w.fetch("/fhir/Patient", { method: "POST", headers: { ...bearer(t), "content-type": "application/json" }, body: "{\"resourceType\":\"Patient\"}" });
    await res.arrayBuffer();
    assert.equal(res.status, 403);
    assert.match(res.headers.get("www-authenticate"), /error="insufficient_scope", scope="system\/Patient\.c"/);
  });

  test("SMART v1 token -> the scope in v1 form (system/Observation.read)", async () => {
    const t = await ccToken(basicAuth("svc", "s1"), { scope: "system/Patient.read" });
    const r = await call("/Observation", t);
    assert.equal(r.status, 403);
    assert.match(r.challenge, /error="insufficient_scope", scope="system\/Observation\.read", resource_metadata="[^"]+\/oauth-protected-resource"$/);
  });

  test("restricted scope without the restriction -> the unrestricted scope is what would allow it", async () => {
    const t = await ccToken(basicAuth("svc", "s1"), { scope: "system/Observation.rs?category=laboratory" });
    assert.equal((await call("/fhir/Observation?category=laboratory", t)).status, 200, "positive control");
    const r = await call("/fhir/Observation", t);
    assert.equal(r.status, 403);
    assert.match(r.challenge, /scope="system\/Observation\.s"/);
    // A read of one instance needs r.
    const one = await call("/fhir/Observation/o1", t);
    assert.equal(one.status, 403);
    assert.match(one.challenge, /scope="system\/Observation\.r"/);
  });

  test("a denial no scope lifts stays a plain 403 forbidden without a challenge", async () => {
    const t = await ccToken(basicAuth("nopolicy", "n1"));
    const r = await call("/fhir/Patient", t);
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.text).error, "forbidden");
    assert.equal(r.challenge, "");
    // SMART denies a non-FHIR path whatever the scope: no insufficient_scope either.
    const s = await ccToken(basicAuth("svc", "s1"), { scope: "system/Patient.rs" });
    const m = await call("/mcp/tools", s);
    assert.equal(m.status, 403);
    assert.equal(JSON.parse(m.text).error, "forbidden");
  });
});

describe("RFC 8707 resource indicators", () => {
  test("resource at authorize -> code -> token: aud is the resource; the token works under /mcp only", async () => {
    const { code: c, verifier } = await code({ resource: `${ISS}/mcp` });
    const res = await redeem(c, verifier);
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(decodeJwt(body.access_token).payload.aud, `${ISS}/mcp`);
    origin.reset();
    assert.equal((await call("/mcp", body.access_token)).status, 200);
    assert.equal(origin.last().url, "/mcp");
    assert.equal((await call("/mcp/tools/call", body.access_token)).status, 200);
    for (const p of ["/fhir/Patient", "/Patient", "/mcpx"]) {
      const r = await call(p, body.access_token);
      assert.equal(r.status, 401, p);
      assert.match(r.challenge, /error="invalid_token"/);
      assert.match(r.challenge, /resource_metadata="/);
    }
    // Introspection reports aud as issued.
    const intro = await w.fetch("/auth/introspect", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: basicAuth("bot", "b1") },
      body: new URLSearchParams({ token: body.access_token }).toString(),
    });
    const ib = await json(intro);
    assert.equal(ib.active, true, JSON.stringify(ib));
    assert.equal(ib.aud, `${ISS}/mcp`);
  });

  test("a code for /mcp redeemed with resource=/fhir -> 400 invalid_target, and the code still works", async () => {
    const { code: c, verifier } = await code({ resource: `${ISS}/mcp` });
    await assertError(await redeem(c, verifier, { resource: `${ISS}/fhir` }), 400, "invalid_target");
    const ok = await redeem(c, verifier, { resource: `${ISS}/mcp/` });
    const body = await json(ok);
    assert.equal(ok.status, 200, JSON.stringify(body));
    assert.equal(decodeJwt(body.access_token).payload.aud, `${ISS}/mcp`);
  });

  test("refresh keeps the resource; another resource on refresh -> 400 invalid_target", async () => {
    const { code: c, verifier } = await code({ resource: `${ISS}/mcp` });
    const body = await json(await redeem(c, verifier));
    assert.ok(body.refresh_token);
    const bad = await tokenPost(w, { grant_type: "refresh_token", client_id: "mcp-app", refresh_token: body.refresh_token, resource: `${ISS}/fhir` });
    await assertError(bad, 400, "invalid_target");
    const res = await tokenPost(w, { grant_type: "refresh_token", client_id: "mcp-app", refresh_token: body.refresh_token, resource: `${ISS}/mcp` });
    const r = await json(res);
    assert.equal(res.status, 200, JSON.stringify(r));
    assert.equal(decodeJwt(r.access_token).payload.aud, `${ISS}/mcp`);
    const again = await json(await tokenPost(w, { grant_type: "refresh_token", client_id: "mcp-app", refresh_token: r.refresh_token }));
    assert.equal(decodeJwt(again.access_token).payload.aud, `${ISS}/mcp`);
  });

  test("client_credentials and password take the resource directly; /mcp token refused on /fhir and vice versa", async () => {
    const mcp = await ccToken(basicAuth("bot", "b1"), { resource: `${ISS}/mcp` });
    const fhir = await ccToken(basicAuth("bot", "b1"), { resource: `${ISS}/fhir` });
    assert.equal(decodeJwt(fhir).payload.aud, `${ISS}/fhir`);
    assert.equal((await call("/mcp/x", mcp)).status, 200);
    assert.equal((await call("/fhir/Patient", fhir)).status, 200);
    assert.equal((await call("/fhir/Patient", mcp)).status, 401);
    assert.equal((await call("/mcp/x", fhir)).status, 401);
    assert.equal((await call("/Patient", fhir)).status, 401);
    const pw = await tokenPost(w, { grant_type: "password", username: "john", password: "pass123", resource: `${ISS}/mcp` }, { auth: basicAuth("bot", "b1") });
    const pb = await json(pw);
    assert.equal(pw.status, 200, JSON.stringify(pb));
    assert.equal(decodeJwt(pb.access_token).payload.aud, `${ISS}/mcp`);
  });

  test("a token with the default audience (no resource) still works everywhere", async () => {
    const t = await ccToken(basicAuth("bot", "b1"));
    assert.equal(decodeJwt(t).payload.aud, ISS);
    for (const p of ["/mcp", "/mcp/x", "/fhir/Patient", "/Patient"]) assert.equal((await call(p, t)).status, 200, p);
    // resource = the issuer itself (with a trailing slash) is the same default audience.
    const root = await ccToken(basicAuth("bot", "b1"), { resource: `${ISS}/` });
    assert.equal(decodeJwt(root).payload.aud, ISS);
    assert.equal((await call("/mcp", root)).status, 200);
  });

  test("non-canonical forms are canonicalised (scheme case, trailing slash)", async () => {
    const t = await ccToken(basicAuth("bot", "b1"), { resource: `${ISS.replace("http:", "HTTP:")}/mcp/` });
    assert.equal(decodeJwt(t).payload.aud, `${ISS}/mcp`);
    assert.equal((await call("/mcp", t)).status, 200);
  });

  test("hostile resource values at the token endpoint -> 400 invalid_target", async () => {
    const bot = basicAuth("bot", "b1");
    for (const resource of [
      `${ISS}/mcp#frag`, "/mcp", "mcp", "javascript:alert(1)", `${ISS}/` + "a".repeat(10_240),
      "https://evil.example/mcp", `${ISS}/mcp/../fhir`, `http://user@${ISS.slice(7)}/mcp`, `${ISS}/other`, "",
    ]) {
      await assertError(await cc(bot, { resource }), 400, "invalid_target");
    }
    // Several resources: RFC 8707 allows it; one aud per token here, so refused clearly.
    const two = await w.fetch("/auth/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: bot },
      body: `grant_type=client_credentials&resource=${encodeURIComponent(ISS + "/mcp")}&resource=${encodeURIComponent(ISS + "/fhir")}`,
    });
    await assertError(two, 400, "invalid_target");
  });

  test("hostile resource at authorize -> invalid_target at the client's redirect, no code", async () => {
    for (const resource of [`${ISS}/mcp#x`, "javascript:alert(1)", "https://evil.example/", "relative/path"]) {
      const { location } = await authorize({ resource });
      assert.equal(location.origin + location.pathname, CB, `${location}`);
      assert.equal(location.searchParams.get("error"), "invalid_target", `${location}`);
      assert.equal(location.searchParams.get("code"), null);
      assert.equal(location.searchParams.get("state"), "st");
    }
  });

  test("several resources at authorize -> 400 invalid_target (local, nothing redirected)", async () => {
    const { challenge } = pkce();
    const q = authorizeQuery({ response_type: "code", client_id: "mcp-app", redirect_uri: CB, code_challenge: challenge, code_challenge_method: "S256" });
    const res = await w.fetch(`/auth/authorize?${q}&resource=${encodeURIComponent(ISS + "/mcp")}&resource=${encodeURIComponent(ISS + "/fhir")}`);
    const text = await res.text();
    assert.equal(res.status, 400, text);
    assert.equal(res.headers.get("location"), null);
    assert.match(text, /invalid_target/);
  });
});

describe("ISSUER set: canonical https forms and metadata URLs", () => {
  let v;
  before(async () => {
    v = await startWorker({ originUrl: origin.url, vars: { PROTECTED_RESOURCES: "/mcp", ISSUER: "https://auth.example" } });
    await put(v, "/Client/bot", { secret: "b1", grant_types: ["client_credentials"] });
    await put(v, "/AccessPolicy/bot", { engine: "allow", link: [{ id: "bot", resourceType: "Client" }] });
  });
  after(async () => v?.dispose());

  test("HTTPS://AUTH.EXAMPLE:443/mcp/ -> aud https://auth.example/mcp, accepted on /mcp", async () => {
    const res = await tokenPost(v, { grant_type: "client_credentials", resource: "HTTPS://AUTH.EXAMPLE:443/mcp/" }, { auth: basicAuth("bot", "b1") });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(decodeJwt(body.access_token).payload.aud, "https://auth.example/mcp");
    const ok = await v.fetch("/mcp", { headers: bearer(body.access_token) });
    await ok.arrayBuffer();
    assert.equal(ok.status, 200);
    const no = await v.fetch("/mcp");
    await no.arrayBuffer();
    assert.equal(no.headers.get("www-authenticate"), 'Bearer realm="edge-authorizer", resource_metadata="https://auth.example/.well-known/oauth-protected-resource/mcp"');
    const doc = await json(await v.fetch("/.well-known/oauth-protected-resource/mcp"));
    assert.equal(doc.resource, "https://auth.example/mcp");
    assert.deepEqual(doc.authorization_servers, ["https://auth.example"]);
  });
});
