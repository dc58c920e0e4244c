// Issue 18, red team: the route table (src/app.rs `ROUTES`) against the hand-written router it
// replaced. A differential run of both builds (tests/load/router-differential.mjs, 15,435
// requests per configuration) found one difference, pinned here: the old router found its own
// endpoints after any number of leading slashes (`//auth/token` was the token endpoint, as
// OIDC clients that append `/.well-known/...` to an issuer with a trailing slash rely on); the
// table matched them with one slash only, so those paths fell to the protected API's 400.
//
// Raw HTTP over a socket: `fetch` would read `//auth/token` as a protocol-relative URL.
//
//   node --test --test-concurrency=1 tests/e2e/attacks-redteam18.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startOrigin, basicAuth } from "./harness.mjs";
import { put, rawHttp } from "./attacks-lib.mjs";

let w;
let origin;

before(async () => {
  origin = await startOrigin();
  w = await startWorker({ originUrl: origin.url, vars: { ISSUER: "https://auth.example" } });
  await put(w, "/Client/basic", { secret: "s3cret", grant_types: ["basic", "client_credentials"] });
  await put(w, "/Client/spa", {
    grant_types: ["authorization_code"],
    auth: { authorization_code: { redirect_uri: "https://spa.example/cb" } },
    first_party: true,
  });
});
after(async () => {
  await w?.dispose();
  await origin?.dispose();
});

/** One request with the path exactly as given: `{ status, headers, body }` (attacks-lib's rawHttp). */
function raw(method, p, headers = {}, body = "") {
  return rawHttp(w.url, { method, path: p, headers: Object.entries(headers).map(([k, v]) => `${k}: ${v}`), body: Buffer.from(body) });
}

const FORM = "application/x-www-form-urlencoded";

test("//auth/token is the token endpoint, as before the route table", async () => {
  origin.reset();
  const ok = await raw("POST", "//auth/token", { authorization: basicAuth("basic", "s3cret"), "content-type": FORM }, "grant_type=client_credentials");
  assert.equal(ok.status, 200, ok.body);
  assert.ok(JSON.parse(ok.body).access_token);
  assert.equal(ok.headers["cache-control"], "no-store");
  // Its 405 and Allow, and its CORS for a registered origin, are the token endpoint's.
  const get = await raw("GET", "//auth/token");
  assert.equal(get.status, 405, get.body);
  assert.equal(get.headers.allow, "POST");
  const cors = await raw("POST", "//auth/token", { origin: "https://spa.example", "content-type": FORM }, "grant_type=x");
  assert.equal(cors.headers["access-control-allow-origin"], "https://spa.example");
  const wrong = await raw("POST", "///auth/token", { authorization: basicAuth("basic", "wrong"), "content-type": FORM }, "grant_type=client_credentials");
  assert.equal(wrong.status, 401, wrong.body);
  assert.equal(origin.requests.length, 0, "nothing reached the origin");
});

test("//.well-known/openid-configuration (an issuer with a trailing slash) is the discovery document", async () => {
  for (const p of ["//.well-known/openid-configuration", "//.well-known/smart-configuration", "//.well-known/jwks.json"]) {
    const r = await raw("GET", p);
    assert.equal(r.status, 200, `${p}: ${r.body}`);
    assert.equal(r.headers["cache-control"], "public, max-age=300", p);
  }
  const post = await raw("POST", "//.well-known/openid-configuration");
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, "GET, HEAD");
  const none = await raw("GET", "//.well-known/nothing");
  assert.equal(none.status, 404);
  assert.match(none.body, /no such discovery document/);
});

test("//app/ and //console/ are the pages, with their security headers; //auth/x is a 404 of ours", async () => {
  for (const p of ["//app/", "//console/", "//auth/ui/login.html"]) {
    const r = await raw("GET", p);
    assert.equal(r.status, 200, `${p}: ${r.body.slice(0, 200)}`);
    assert.match(r.headers["content-security-policy"] ?? "", /frame-ancestors 'none'/, p);
  }
  const app = await raw("GET", "//app/");
  const direct = await raw("GET", "/app/");
  assert.equal(app.body, direct.body, "//app/ serves the SPA's index");
  const x = await raw("GET", "//auth/x");
  assert.equal(x.status, 404);
  assert.match(x.body, /no endpoint at \/\/auth\/x/);
  // Without DYNAMIC_REGISTRATION the register endpoint stays a 404 however it is spelled.
  const reg = await raw("POST", "//auth/register", { "content-type": "application/json" }, "{}");
  assert.equal(reg.status, 404);
});

test("control: the admin API and the protected API keep refusing a leading //", async () => {
  origin.reset();
  for (const p of ["//Client", "//Client/basic", "//Patient", "//fhir/Client", "//Session"]) {
    const r = await raw("GET", p, { authorization: basicAuth("basic", "s3cret") });
    assert.equal(r.status, 400, `${p}: ${r.body}`);
    assert.match(r.body, /empty segment/, p);
  }
  assert.equal(origin.requests.length, 0, "nothing reached the origin");
});

test("every route the reference says is not for Anyone refuses an anonymous caller, whatever method it allows", async () => {
  const { readFileSync } = await import("node:fs");
  const path = await import("node:path");
  const { ROOT } = await import("./harness.mjs");
  const page = readFileSync(path.join(ROOT, "docs/reference.md"), "utf8");
  const section = page.split("\n## Endpoints")[1].split("\n## ")[0];
  const rows = section
    .split("\n")
    .filter((l) => l.trim().startsWith("|"))
    .map((l) => l.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim()))
    .filter((c) => c.length === 4 && c[0] !== "Methods" && !c[0].startsWith("---"));
  const guarded = rows.filter(([, , who]) => !["Anyone", "AccessPolicy"].includes(who));
  assert.ok(guarded.length >= 15, `only ${guarded.length} guarded rows read from docs/reference.md`);
  origin.reset();
  for (const [methods, pattern, who] of guarded) {
    const concrete = pattern
      .replace(/`/g, "")
      .replace("[base]", "")
      .replace("{base}", "/fhir")
      .replace("{ResourceType}", "Client")
      .replace("{id}", "x")
      .replace("[/]", "");
    for (const m of methods.split(", ")) {
      const r = await raw(m, concrete, { "content-type": FORM }, m === "GET" || m === "HEAD" ? "" : "x=1");
      assert.ok([400, 401, 403].includes(r.status), `${m} ${concrete} (${who}) anonymous: ${r.status} ${r.body.slice(0, 200)}`);
    }
  }
  assert.equal(origin.requests.length, 0, "nothing reached the origin");
});
