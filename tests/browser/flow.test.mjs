// Browser tests of issue 3: a real headless Chromium walks the authorization code + PKCE flow
// through the sign-in pages in www/auth/ui/ against the built Worker in workerd, and the failure
// paths the issue names. Each test gets a fresh browser context (no cookies, no storage); the
// Worker, the callback server and Chromium are shared by the file and always shut down.
//
//   node --test --test-concurrency=1 tests/browser/*.test.mjs
//   E2E_WORKER_SCRIPT=tests/browser/mock-worker.mjs node --test tests/browser/*.test.mjs  (JS model)
//   UPDATE_SCREENSHOTS=1 ...   also writes docs/login.png (always: tests/browser/out/*.png)
import { describe, test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWorker, decodeJwt, ROOT } from "../e2e/harness.mjs";
import {
  launchBrowser,
  openPage,
  startCallbackServer,
  setupFixtures,
  authorizeRequest,
  pathOf,
  waitForLoginForm,
  waitForConsent,
  signIn,
  decide,
  obtainCode,
  exchangeCode,
  refresh,
  assertInvalidGrant,
  patientStatus,
  pkce,
  CLIENT_ID,
  USERNAME,
  forgetConsent,
} from "./helpers.mjs";

const OUT_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "out");
const LOGIN = "/auth/ui/login.html";
const CONSENT = "/auth/ui/consent.html";
const TEST = { timeout: 30_000 };
/** The current URL's query parameters as an object. */
const queryOf = (page) => Object.fromEntries(new URL(page.url()).searchParams);

describe("browser: authorization code + PKCE through the sign-in pages", () => {
  let w;
  let callback;
  let browser;
  const contexts = [];

  before(async () => {
    const started = await Promise.allSettled([startWorker(), startCallbackServer(), launchBrowser()]);
    [w, callback, browser] = started.map((r) => (r.status === "fulfilled" ? r.value : undefined));
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    await setupFixtures(w, callback.redirectUri);
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

  /** A page in a fresh browser context, closed after the test. */
  async function fresh(options) {
    const opened = await openPage(browser, options);
    contexts.push(opened.context);
    return opened;
  }

  function assertTokens({ status, body }, what) {
    assert.equal(status, 200, `${what}: token endpoint answered ${status}: ${JSON.stringify(body)}`);
    assert.equal(typeof body.access_token, "string", `${what}: no access_token`);
    assert.equal(body.token_type, "Bearer");
    return body;
  }

  test("whole flow: authorize, login, consent, code, tokens, API, refresh, logout", TEST, async () => {
    const { page, errors } = await fresh();
    const request = authorizeRequest(w, callback.redirectUri);

    // No session: the Worker sends the browser to the login page, which names the client.
    await page.goto(request.url);
    await waitForLoginForm(page);
    await assert.doesNotReject(page.getByRole("heading", { name: "Sign in to continue to Web App" }).waitFor());

    // Login, then the consent page (web-app is not first party) lists the requested scopes.
    await signIn(page);
    await waitForConsent(page);
    assert.equal(pathOf(page), CONSENT);
    await page.getByRole("heading", { name: "Web App wants to:" }).waitFor();
    const scopes = await page.locator("#scopes li code").allTextContents();
    assert.deepEqual(scopes.toSorted(), ["offline_access", "openid", "profile"]);
    for (const item of await page.locator("#scopes li").allTextContents()) {
      assert.ok(item.trim().length > 0, "a scope without text");
    }
    assert.match(await page.locator(".signed-in").innerText(), /Signed in as John/);

    // Allow: the browser arrives at the client's callback with a code and the same state.
    const query = await decide(page, callback, "allow");
    assert.equal(query.state, request.state);
    assert.ok(query.code, `callback without code: ${JSON.stringify(query)}`);
    assert.equal(query.error, undefined);
    assert.equal(callback.requests.filter((r) => r.path === "/callback").length, 1);

    // Code -> tokens (PKCE verifier, client Basic auth).
    const tokens = assertTokens(
      await exchangeCode(w, { code: query.code, redirectUri: callback.redirectUri, verifier: request.verifier }),
      "code exchange",
    );
    assert.equal(typeof tokens.refresh_token, "string", "no refresh_token");
    assert.equal(typeof tokens.id_token, "string", "no id_token for scope openid");
    const idToken = decodeJwt(tokens.id_token).payload;
    assert.equal(idToken.nonce, request.nonce, "id_token nonce");
    assert.ok([idToken.aud].flat().includes(CLIENT_ID), `id_token aud: ${JSON.stringify(idToken.aud)}`);

    // The access token opens the API.
    assert.equal(await patientStatus(w, tokens.access_token), 200, "GET /Patient with the access token");

    // Refresh: a new pair; the new access token works; the old refresh token is refused.
    const refreshed = assertTokens(await refresh(w, tokens.refresh_token), "refresh");
    assert.equal(typeof refreshed.refresh_token, "string", "refresh did not rotate the refresh token");
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    assert.notEqual(refreshed.access_token, tokens.access_token);
    assert.equal(await patientStatus(w, refreshed.access_token), 200, "GET /Patient with the refreshed token");
    assertInvalidGrant(await refresh(w, tokens.refresh_token), "reuse of the rotated refresh token");

    // Still signed in, and the Allow remembered (a Grant): a new authorize request skips the
    // login and the consent page, straight back to the client.
    const backToClient = () => page.waitForURL((u) => u.href.startsWith(callback.redirectUri));
    await page.goto(authorizeRequest(w, callback.redirectUri).url);
    await backToClient();

    // A bare GET of /auth/logout (what a cross-site <img> does) only asks: still signed in.
    await page.goto(`${w.url}/auth/logout`);
    await page.getByRole("heading", { name: "Sign out?" }).waitFor();
    assert.equal(pathOf(page), "/auth/ui/logout.html");
    await page.goto(authorizeRequest(w, callback.redirectUri).url);
    await backToClient();

    // Confirming (a POST with the CSRF token) ends the session: the login page again.
    await page.goto(`${w.url}/auth/logout`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "You are signed out." }).waitFor();
    await page.goto(authorizeRequest(w, callback.redirectUri).url);
    await waitForLoginForm(page);
    assert.equal(pathOf(page), LOGIN);

    assert.deepEqual(errors, [], "console errors during the flow");
  });

  test("wrong password: a plain alert, still on the login page, no callback", TEST, async () => {
    const { page, errors } = await fresh();
    const request = authorizeRequest(w, callback.redirectUri);
    await page.goto(request.url);
    await waitForLoginForm(page);
    await page.getByLabel("Username or email").fill(USERNAME);
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Sign in" }).click();

    const alert = page.getByRole("alert");
    await page.waitForFunction(() => document.querySelector("[role=alert]")?.textContent.trim().length > 0);
    assert.equal((await alert.innerText()).trim(), "Wrong username or password.");
    assert.equal(pathOf(page), LOGIN);
    assert.deepEqual(queryOf(page), request.params, "the authorize query survives");
    // The form is usable again: username kept, password field focused and empty.
    await page.locator("#username:enabled").waitFor();
    assert.equal(await page.getByLabel("Username or email").inputValue(), USERNAME);
    assert.equal(await page.getByLabel("Password").inputValue(), "");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "password");
    assert.deepEqual(callback.requests, [], "no redirect to the client");
    assert.deepEqual(errors, []);

    // And the right password still works from here.
    await page.getByLabel("Password").fill("pass123");
    await Promise.all([page.waitForURL((u) => u.pathname === CONSENT), page.getByLabel("Password").press("Enter")]);
  });

  test("deny consent: the callback gets error=access_denied and the state", TEST, async () => {
    const { page } = await fresh();
    const request = authorizeRequest(w, callback.redirectUri);
    await page.goto(request.url);
    await signIn(page);
    const query = await decide(page, callback, "deny");
    assert.equal(query.error, "access_denied");
    assert.equal(query.state, request.state);
    assert.equal(query.code, undefined);
  });

  test("remembered consent: after Allow, a new browser gets the code without the consent page; a wider request asks about the new scope", TEST, async () => {
    const first = await fresh();
    await obtainCode(w, first.page, callback, { scope: "openid profile" });
    const { page, errors } = await fresh();
    const again = authorizeRequest(w, callback.redirectUri, { scope: "openid" });
    await page.goto(again.url);
    await signIn(page);
    await page.waitForURL((u) => u.href.startsWith(callback.redirectUri));
    assert.ok(queryOf(page).code, "a code without the consent page");
    // A wider request: the consent page, the earlier scopes marked as allowed before.
    const wider = await fresh();
    await wider.page.goto(authorizeRequest(w, callback.redirectUri, { scope: "openid profile email" }).url);
    await signIn(wider.page);
    await waitForConsent(wider.page);
    const items = await wider.page.locator("#scopes li").allInnerTexts();
    assert.equal(items.length, 3, JSON.stringify(items));
    assert.deepEqual(items.map((t) => /allowed before/.test(t)), [true, true, false], JSON.stringify(items));
    assert.deepEqual(errors, []);
    assert.deepEqual(wider.errors, []);
  });

  test("bad redirect URI or unknown client: an error page, never a redirect", TEST, async () => {
    const { page, requests } = await fresh();
    const evil = "http://127.0.0.1:1/evil";

    let response = await page.goto(authorizeRequest(w, evil).url);
    assert.equal(response.status(), 400, "authorize with an unregistered redirect_uri");
    assert.equal(pathOf(page), "/auth/authorize");
    assert.ok((await page.locator("body").innerText()).trim().length > 0, "empty error page");

    response = await page.goto(authorizeRequest(w, callback.redirectUri, { client_id: "no-such-client" }).url);
    assert.equal(response.status(), 400, "authorize with an unknown client");
    assert.equal(pathOf(page), "/auth/authorize");

    await page.waitForTimeout(300); // a late meta refresh or script redirect would show up here
    assert.equal(pathOf(page), "/auth/authorize");
    assert.deepEqual(requests.filter((u) => u.startsWith("http://127.0.0.1:1/")), [], "the browser went to the evil URI");
    assert.deepEqual(callback.requests, [], "the browser went to the client");
  });

  test("PKCE mismatch: a wrong code_verifier is invalid_grant", TEST, async () => {
    const { page } = await fresh();
    const { code } = await obtainCode(w, page, callback);
    const wrong = pkce().verifier;
    assertInvalidGrant(await exchangeCode(w, { code, redirectUri: callback.redirectUri, verifier: wrong }), "wrong verifier");
  });

  test("code replay: the second redemption fails and revokes what the first issued", TEST, async () => {
    const { page } = await fresh();
    const { code, request } = await obtainCode(w, page, callback);
    const exchange = () => exchangeCode(w, { code, redirectUri: callback.redirectUri, verifier: request.verifier });

    const first = assertTokens(await exchange(), "first redemption");
    assert.equal(await patientStatus(w, first.access_token), 200, "access token before the replay");

    assertInvalidGrant(await exchange(), "second redemption");
    assert.equal(await patientStatus(w, first.access_token), 401, "access token of a replayed code (RFC 6749 10.5)");
    if (first.refresh_token) assertInvalidGrant(await refresh(w, first.refresh_token), "refresh token of a replayed code");
  });

  test("login page: strict CSP from the Worker, no console errors", TEST, async () => {
    const { page, errors } = await fresh();
    const response = await page.goto(authorizeRequest(w, callback.redirectUri).url);
    assert.equal(pathOf(page), LOGIN);
    assert.equal(response.status(), 200);
    const headers = response.headers();
    const csp = headers["content-security-policy"] ?? "";
    assert.ok(csp, "login page without a Content-Security-Policy");
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, `CSP: ${csp}`);
    const directive = (name) => csp.split(";").map((d) => d.trim()).find((d) => d.split(/\s+/)[0] === name);
    assert.equal(directive("script-src"), "script-src 'self'", `CSP: ${csp}`);
    assert.equal(directive("style-src"), "style-src 'self'", `CSP: ${csp}`);
    assert.equal(directive("frame-ancestors"), "frame-ancestors 'none'", `CSP: ${csp}`);
    assert.ok(directive("form-action")?.split(/\s+/).includes("'self'"), `CSP: ${csp}`);
    assert.equal(headers["x-frame-options"]?.toUpperCase(), "DENY");
    assert.equal(headers["referrer-policy"], "no-referrer");

    await waitForLoginForm(page);
    // Page hygiene the CSP relies on.
    const hygiene = await page.evaluate(() => ({
      inlineScripts: [...document.scripts].filter((s) => !s.src).length,
      styleAttrs: document.querySelectorAll("[style]").length,
      handlers: [...document.querySelectorAll("*")].filter((el) => [...el.attributes].some((a) => a.name.startsWith("on"))).length,
      lang: document.documentElement.lang,
      viewport: document.querySelector('meta[name="viewport"]')?.content ?? null,
      referrer: document.querySelector('meta[name="referrer"]')?.content ?? null,
      autocomplete: [document.getElementById("username")?.autocomplete, document.getElementById("password")?.autocomplete],
      form: (() => {
        const f = document.querySelector("form");
        return { method: f?.method, action: f?.getAttribute("action"), names: [...(f?.elements ?? [])].map((e) => e.name).filter(Boolean) };
      })(),
    }));
    assert.deepEqual(hygiene, {
      inlineScripts: 0,
      styleAttrs: 0,
      handlers: 0,
      lang: "en",
      viewport: "width=device-width, initial-scale=1",
      referrer: "no-referrer",
      autocomplete: ["username", "current-password"],
      form: { method: "post", action: "/auth/login", names: ["username", "password", "csrf", "query"] },
    });
    assert.ok(await page.locator('input[name="csrf"]').inputValue(), "no CSRF token in the form");
    assert.deepEqual(errors, [], "console errors on the login page");
  });

  test("login form stays disabled until the interaction has loaded", TEST, async () => {
    const { page, errors } = await fresh();
    let release;
    const gate = new Promise((resolve) => (release = resolve));
    await page.route("**/auth/interaction?*", async (route) => {
      await gate;
      await route.continue();
    });
    await page.goto(authorizeRequest(w, callback.redirectUri).url);
    await page.waitForURL((u) => u.pathname === LOGIN);
    await page.locator("#username").waitFor();
    assert.equal(await page.getByLabel("Username or email").isDisabled(), true);
    assert.equal(await page.getByRole("button", { name: "Sign in" }).isDisabled(), true);
    release();
    await page.locator("#username:enabled").waitFor();
    assert.equal(await page.getByRole("button", { name: "Sign in" }).isEnabled(), true);
    assert.deepEqual(errors, []);
  });

  test("keyboard: Tab reaches username, password, Sign in in order; Enter submits", TEST, async () => {
    const { page } = await fresh();
    await page.goto(authorizeRequest(w, callback.redirectUri).url);
    await waitForLoginForm(page);
    assert.equal(await page.locator("[tabindex]:not([tabindex='0']):not([tabindex^='-'])").count(), 0, "positive tabindex");

    // Start sequential navigation from the top of the card (clicking the heading moves the
    // starting point there and takes focus away from the autofocused field).
    await page.locator("h1").click();
    const order = [];
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press("Tab");
      order.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName));
    }
    assert.deepEqual(order, ["username", "password", "submit"]);

    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.type(USERNAME);
    await page.keyboard.press("Tab");
    await page.keyboard.type("pass123");
    await Promise.all([page.waitForURL((u) => u.pathname === CONSENT), page.keyboard.press("Enter")]);
  });

  test("login page messages for #error=csrf, throttled and unknown codes; invalid request shows no form", TEST, async () => {
    const { page, errors } = await fresh();
    const { query } = authorizeRequest(w, callback.redirectUri);
    const cases = {
      csrf: "Your sign-in form expired. Please try again.",
      throttled: "Too many attempts. Please wait a minute and try again.",
      "<b>x</b>": "Something went wrong. Please try again.",
    };
    for (const [code, message] of Object.entries(cases)) {
      await page.goto(`${w.url}${LOGIN}?${query}#error=${encodeURIComponent(code)}`);
      await waitForLoginForm(page);
      assert.equal((await page.getByRole("alert").innerText()).trim(), message, `#error=${code}`);
      assert.equal(new URL(page.url()).hash, "", "the fragment is cleared");
    }
    assert.deepEqual(errors, []);

    // An invalid authorize request (unknown client): the page shows the Worker's error, no form.
    await page.goto(`${w.url}${LOGIN}?client_id=no-such-client&response_type=code`);
    await page.waitForFunction(() => document.querySelector("[role=alert]")?.textContent.trim().length > 0);
    assert.equal(await page.locator("#username").isVisible(), false, "login form shown for an invalid request");
    assert.match(await page.getByRole("alert").innerText(), /cannot be completed/);
  });

  test("consent page without a session sends the browser to the login page", TEST, async () => {
    const { page } = await fresh();
    const { query, params } = authorizeRequest(w, callback.redirectUri);
    await page.goto(`${w.url}${CONSENT}?${query}`);
    await waitForLoginForm(page);
    assert.deepEqual(queryOf(page), params);
  });

  test("screenshot of the login page on a phone (390x844)", TEST, async () => {
    const { page } = await fresh({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await page.goto(authorizeRequest(w, callback.redirectUri).url);
    await waitForLoginForm(page);
    await page.evaluate(() => document.fonts.ready);
    await page.evaluate(() => document.activeElement?.blur());

    // The page fits the phone: no horizontal scrolling, tap targets at least 44 px high.
    const layout = await page.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      heights: ["username", "password", "submit"].map((id) => document.getElementById(id).getBoundingClientRect().height),
      fontSize: parseFloat(getComputedStyle(document.getElementById("username")).fontSize),
    }));
    assert.equal(layout.overflow, 0, "horizontal overflow on a phone");
    for (const h of layout.heights) assert.ok(h >= 44, `tap target ${h}px high`);
    assert.ok(layout.fontSize >= 16, `input font ${layout.fontSize}px`);

    mkdirSync(OUT_DIR, { recursive: true });
    const png = await page.screenshot({ path: path.join(OUT_DIR, "login.png") });
    if (process.env.UPDATE_SCREENSHOTS === "1") {
      mkdirSync(path.join(ROOT, "docs"), { recursive: true });
      await page.screenshot({ path: path.join(ROOT, "docs", "login.png") });
    }
    assert.ok(png.length > 1000);

    // For a human to look at (not committed): dark mode, the error state, the consent page.
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: path.join(OUT_DIR, "login-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });
    await page.getByLabel("Username or email").fill(USERNAME);
    await page.getByLabel("Password").fill("wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForFunction(() => document.querySelector("[role=alert]")?.textContent.trim().length > 0);
    await page.screenshot({ path: path.join(OUT_DIR, "login-error.png") });
    await page.getByLabel("Password").fill("pass123");
    await Promise.all([page.waitForURL((u) => u.pathname === CONSENT), page.getByLabel("Password").press("Enter")]);
    await waitForConsent(page);
    await page.screenshot({ path: path.join(OUT_DIR, "consent.png") });
  });
});
