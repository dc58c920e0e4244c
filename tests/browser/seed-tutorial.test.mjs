// The user's tutorial (shared/seed/aidbox-authentication-tutorial.md) sends the browser to
//   /auth/authorize?client_id=web-app&response_type=code
// exactly: no redirect_uri (RFC 6749 3.1.2.3 lets a client with one registered URI leave it
// out), no state, no PKCE, no scope. Every other browser test sends all of them. Here headless
// Chromium walks that URL as written, for the code flow and (response_type=token) for the
// implicit flow, through the real login and consent pages, to the client's registered callback.
// The pages' CSP `form-action` must allow exactly that redirect, or Chromium blocks it after
// sign-in and the user is stuck on the login page.
//
//   node --test tests/browser/seed-tutorial.test.mjs      (after `make build`)
import { describe, test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startWorker, basicAuth, form, json, FORM } from "../e2e/harness.mjs";
import { launchBrowser, openPage, startCallbackServer, signIn, decide, waitForConsent, pathOf, forgetConsent } from "./helpers.mjs";

const TEST = { timeout: 30_000 };

describe("browser: the seed tutorial's authorize URL, exactly as written", () => {
  let w;
  let callback;
  let browser;
  const contexts = [];

  before(async () => {
    [w, callback, browser] = await Promise.all([startWorker(), startCallbackServer(), launchBrowser()]);
    const put = async (p, body) => {
      const res = await w.admin("PUT", p, body);
      assert.ok([200, 201].includes(res.status), `PUT ${p}: ${res.status} ${await res.text()}`);
    };
    // The tutorial's "OAuth Client form": a confidential web app with the code flow, and the
    // implicit flow for the SPA section; one registered redirect URI per flow.
    await put("/Client/web-app", {
      secret: "verysecret",
      first_party: false,
      name: "Web App",
      grant_types: ["authorization_code", "implicit"],
      auth: {
        authorization_code: { redirect_uri: callback.redirectUri },
        implicit: { redirect_uri: callback.redirectUri },
      },
    });
    await put("/User/john", { email: "john@example.com", password: "pass123", name: { givenName: "John" } });
    await put("/AccessPolicy/john", { engine: "allow", link: [{ id: "john", resourceType: "User" }] });
  });

  after(async () => {
    await Promise.allSettled(contexts.map((c) => c.close()));
    await Promise.allSettled([browser?.close(), w?.dispose(), callback?.dispose()]);
  });

  afterEach(async () => {
    await Promise.allSettled(contexts.splice(0).map((c) => c.close()));
    callback?.reset();
    // Each test starts from the consent page: forget what an earlier test allowed.
    if (w) await forgetConsent(w);
  });

  async function fresh() {
    const opened = await openPage(browser);
    contexts.push(opened.context);
    return opened;
  }

  /** Content-Security-Policy `form-action` sources of the page the browser shows now. */
  async function formAction(page) {
    const res = await page.request.get(page.url());
    const csp = res.headers()["content-security-policy"] ?? "";
    const d = csp.split(";").map((s) => s.trim()).find((s) => s.startsWith("form-action "));
    return d ? d.split(/\s+/).slice(1) : [];
  }

  test("code flow: /auth/authorize?client_id=web-app&response_type=code signs in and reaches the registered callback", TEST, async () => {
    const { page, errors } = await fresh();
    const blocked = [];
    page.on("console", (m) => /Content Security Policy/i.test(m.text()) && blocked.push(m.text()));
    await page.goto(`${w.url}/auth/authorize?client_id=web-app&response_type=code`);
    // The login page allows exactly our origin and the registered URI's origin as form targets.
    assert.deepEqual((await formAction(page)).toSorted(), ["'self'", callback.origin].toSorted());
    await signIn(page, "john", "pass123");
    await waitForConsent(page);
    assert.deepEqual((await formAction(page)).toSorted(), ["'self'", callback.origin].toSorted());
    const query = await decide(page, callback, "allow");
    assert.equal(pathOf(page), "/callback");
    assert.ok(query.code, `callback without code: ${JSON.stringify(query)}`);
    assert.equal(query.error, undefined);
    assert.deepEqual(blocked, [], "Chromium blocked a form by CSP");
    assert.deepEqual(errors, []);

    // The tutorial's next step: the code for a token (no redirect_uri was sent, so none is sent
    // here either), then the API with it.
    const res = await w.fetch("/auth/token", {
      method: "POST",
      headers: { ...FORM, authorization: basicAuth("web-app", "verysecret") },
      body: form({ grant_type: "authorization_code", code: query.code }),
    });
    const tokens = await json(res);
    assert.equal(res.status, 200, JSON.stringify(tokens));
    const api = await w.fetch("/Patient", { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(api.status, 200, await api.text());
  });

  test("implicit flow: /auth/authorize?client_id=web-app&response_type=token signs in and reaches the callback with a token", TEST, async () => {
    const { page, errors } = await fresh();
    const blocked = [];
    page.on("console", (m) => /Content Security Policy/i.test(m.text()) && blocked.push(m.text()));
    await page.goto(`${w.url}/auth/authorize?client_id=web-app&response_type=token`);
    assert.deepEqual((await formAction(page)).toSorted(), ["'self'", callback.origin].toSorted());
    await signIn(page, "john", "pass123");
    await decide(page, callback, "allow");
    assert.equal(pathOf(page), "/callback");
    const fragment = Object.fromEntries(new URLSearchParams(new URL(page.url()).hash.slice(1)));
    assert.equal(typeof fragment.access_token, "string", `no token in ${page.url()}`);
    assert.equal(fragment.token_type, "Bearer");
    const api = await w.fetch("/Patient", { headers: { authorization: `Bearer ${fragment.access_token}` } });
    assert.equal(api.status, 200, await api.text());
    assert.deepEqual(blocked, [], "Chromium blocked a form by CSP");
    assert.deepEqual(errors, []);
  });

  test("a redirect_uri that the client has not registered adds nothing to the page's form-action", TEST, async () => {
    const { page } = await fresh();
    // The login page URL itself is the attacker's to write; only the resolved request counts.
    await page.goto(`${w.url}/auth/ui/login.html?client_id=web-app&response_type=code&redirect_uri=https://evil.example/cb`);
    assert.deepEqual(await formAction(page), ["'self'"]);
  });
});
