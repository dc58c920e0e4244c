// Attack corpus (issue 12, "Cookies and CSRF"): the session and CSRF cookies over https carry
// the `__Host-` prefix (so a sibling subdomain cannot plant or overwrite them), keep plain names
// scoped to /auth on plain-http loopback, and a form post with `Origin: null` is refused when
// Fetch Metadata says it came from another site. Against the built Worker in workerd.
//
// "https" here is a request whose Host is not loopback: the Worker decides by the host it was
// reached at (plain-http loopback is the only place browsers refuse `Secure` cookies).
//
//   node --test tests/e2e/attacks-cookies.test.mjs      (after `make build`)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startWorker, form } from "./harness.mjs";
import { put, cookies, cookieHeader, interaction, postLogin, authorizeQuery } from "./attacks-lib.mjs";

const CB = "https://app.example/cb";
const HOST = "auth.example.com";
let w;

before(async () => {
  w = await startWorker();
  await put(w, "/Client/web", {
    secret: "web-secret",
    grant_types: ["authorization_code"],
    first_party: true,
    auth: { authorization_code: { redirect_uri: CB } },
  });
  await put(w, "/User/john", { email: "john@example.com", password: "pass123" });
});
after(() => w?.dispose());

const query = authorizeQuery({ response_type: "code", client_id: "web", redirect_uri: CB, state: "s1" });

/** A request to the Worker as if it were reached at https://auth.example.com (Host header). */
function asHost(path, { method = "GET", headers = {}, body } = {}) {
  const { port } = new URL(w.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path, method, headers: { host: HOST, ...headers } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode,
            headers: res.headers,
            setCookies: res.headers["set-cookie"] ?? [],
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const pairs = (setCookies) =>
  Object.fromEntries(setCookies.map((c) => c.split(";")[0]).map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]));

/** Signs john in over "https": returns the Set-Cookie lines of the login answer and the jar. */
async function httpsLogin(extraHeaders = {}) {
  const ctx = await asHost(`/auth/interaction?${query}`);
  assert.equal(ctx.status, 200, ctx.body);
  const csrf = JSON.parse(ctx.body).csrf;
  const jar = pairs(ctx.setCookies);
  const res = await asHost("/auth/login", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: cookieHeader(jar), ...extraHeaders },
    body: form({ username: "john", password: "pass123", csrf, query }),
  });
  return { ctx, res, csrf, jar: { ...jar, ...pairs(res.setCookies) } };
}

test("over https both cookies carry the __Host- prefix, Secure, Path=/ and no Domain", async () => {
  const { ctx, res } = await httpsLogin();
  const csrfCookie = ctx.setCookies.find((c) => c.startsWith("__Host-edge_csrf="));
  assert.ok(csrfCookie, JSON.stringify(ctx.setCookies));
  assert.equal(res.status, 303, res.body);
  assert.ok(res.headers.location.startsWith(CB), res.headers.location);
  const session = res.setCookies.find((c) => c.startsWith("__Host-edge_session="));
  assert.ok(session, JSON.stringify(res.setCookies));
  for (const c of [csrfCookie, session]) {
    assert.match(c, /; Path=\/;/);
    assert.match(c, /; Secure/);
    assert.match(c, /; HttpOnly/);
    assert.doesNotMatch(c, /Domain/i);
  }
  assert.ok(!res.setCookies.some((c) => c.startsWith("edge_session=")), "a plain-named session cookie was set over https");
});

test("over https a planted plain-named session cookie does not sign the browser in (cookie tossing)", async () => {
  const { jar } = await httpsLogin();
  const id = jar["__Host-edge_session"];
  assert.ok(id);
  const authorize = (cookie) => asHost(`/auth/authorize?${query}`, { headers: { cookie } });
  // The control: the prefixed cookie is a session (first-party client: straight to the client).
  const ok = await authorize(`__Host-edge_session=${id}`);
  assert.equal(ok.status, 303);
  assert.ok(ok.headers.location.startsWith(CB), ok.headers.location);
  // The same id under the plain name, as a sibling subdomain could set it: the login page.
  const tossed = await authorize(`edge_session=${id}`);
  assert.equal(tossed.status, 303);
  assert.match(tossed.headers.location, /^\/auth\/ui\/login\.html/);
});

test("over https a CSRF token in a plain-named cookie does not pass the double-submit check", async () => {
  const ctx = await asHost(`/auth/interaction?${query}`);
  const csrf = JSON.parse(ctx.body).csrf;
  const res = await asHost("/auth/login", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: `edge_csrf=${csrf}` },
    body: form({ username: "john", password: "pass123", csrf, query }),
  });
  assert.equal(res.status, 303);
  assert.match(res.headers.location, /#error=csrf$/);
  assert.deepEqual(res.setCookies.filter((c) => c.includes("edge_session")), []);
});

test("on plain-http loopback the cookies keep plain names, scoped to /auth, without Secure", async () => {
  const { csrf, jar } = await interaction(w, query);
  const res = await postLogin(w, { query, csrf, jar });
  assert.equal(res.status, 303);
  const lines = res.headers.getSetCookie();
  const session = lines.find((c) => c.startsWith("edge_session="));
  assert.ok(session, JSON.stringify(lines));
  assert.match(session, /; Path=\/auth;/);
  assert.doesNotMatch(session, /Secure/);
  assert.ok(cookies(res).edge_session);
});

for (const site of ["cross-site", "same-site"]) {
  test(`a login posted with Origin: null and Sec-Fetch-Site: ${site} is refused as CSRF`, async () => {
    const { csrf, jar } = await interaction(w, query);
    const res = await postLogin(w, { query, csrf, jar, headers: { origin: "null", "sec-fetch-site": site } });
    assert.equal(res.status, 303);
    assert.match(res.headers.get("location"), /#error=csrf$/);
    assert.equal(cookies(res).edge_session, undefined, "a session was created");
  });
}

test("a login posted with Origin: null from our own page (Sec-Fetch-Site: same-origin) still signs in", async () => {
  const { csrf, jar } = await interaction(w, query);
  const res = await postLogin(w, { query, csrf, jar, headers: { origin: "null", "sec-fetch-site": "same-origin" } });
  assert.equal(res.status, 303);
  assert.ok(res.headers.get("location").startsWith(CB), res.headers.get("location"));
  assert.ok(cookies(res).edge_session);
});
