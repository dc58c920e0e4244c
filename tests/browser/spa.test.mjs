// Browser tests of issue 5, part 2: the demo SPA in www/app/ (served by the Worker at /app/) signs
// in with authorization code + PKCE as a public client, verifies its tokens in the page with the
// verifier package, calls /Patient, refreshes, shows the error code of a tampered token, and
// signs out, all in a real headless Chromium against the built Worker in workerd.
//
//   node --test --test-concurrency=1 tests/browser/spa.test.mjs
//   UPDATE_SCREENSHOTS=1 ...   also writes docs/spa.png (always: tests/browser/out/spa.png)
import { describe, test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWorker, decodeJwt, ROOT } from "../e2e/harness.mjs";
import { launchBrowser, openPage, setupFixtures, signIn, waitForLoginForm, explain, pathOf } from "./helpers.mjs";

const OUT_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "out");
const TEST = { timeout: 45_000 };
const SPA_CLIENT = "spa-demo";

describe("browser: the demo SPA (www/app/)", () => {
  let w;
  let browser;
  const contexts = [];

  before(async () => {
    const started = await Promise.allSettled([startWorker(), launchBrowser()]);
    [w, browser] = started.map((s) => (s.status === "fulfilled" ? s.value : undefined));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    // User john and his policy (and the flow tests' web-app client, unused here).
    await setupFixtures(w, "http://127.0.0.1:1/unused");
    // The SPA's client: public (no secret, so PKCE is required), first party (no consent page).
    const res = await w.admin("PUT", `/Client/${SPA_CLIENT}`, {
      grant_types: ["authorization_code"],
      first_party: true,
      name: "Demo SPA",
      auth: { authorization_code: { redirect_uri: `${w.url}/app/`, refresh_token: true } },
    });
    assert.ok([200, 201].includes(res.status), `PUT /Client/${SPA_CLIENT}: ${res.status} ${await res.text()}`);
  });

  after(async () => {
    await Promise.allSettled([browser?.close(), w?.dispose()]);
  });

  afterEach(async () => {
    await Promise.allSettled(contexts.splice(0).map((c) => c.close()));
  });

  async function fresh(options) {
    const opened = await openPage(browser, options);
    opened.context.setDefaultTimeout(10_000);
    opened.context.setDefaultNavigationTimeout(10_000);
    contexts.push(opened.context);
    return opened;
  }

  /** Waits until app.js has finished its start (init, discovery, code exchange, verification). */
  const ready = (page, what) =>
    explain(page, what, async () => {
      await page.waitForURL((u) => u.pathname === "/app/");
      await page.waitForSelector("body[data-ready=true]");
    });

  const text = (page, id) => page.locator(`#${id}`).innerText();
  const claimsOf = async (page, id) => JSON.parse(await text(page, id));

  test("sign in with code + PKCE, verified claims, /Patient, refresh, tamper, sign out", TEST, async () => {
    const { page, errors, requests } = await fresh({ viewport: { width: 1000, height: 1400 } });
    const response = await page.goto(`${w.url}/app/`);
    assert.equal(response.status(), 200);
    assert.match(response.headers()["content-security-policy"] ?? "", /script-src 'self' 'wasm-unsafe-eval'/);
    await ready(page, "the SPA did not start");
    assert.equal((await text(page, "status")).trim(), "Signed out.");
    assert.equal(await page.locator("#error").isVisible(), false, await text(page, "error"));

    // Sign in: the SPA builds the authorize URL (PKCE S256, state, nonce) and goes there.
    await page.getByLabel("Client id").fill(SPA_CLIENT);
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitForLoginForm(page);
    const authorize = new URL(requests.find((u) => u.includes("/auth/authorize?")));
    const q = Object.fromEntries(authorize.searchParams);
    assert.equal(q.client_id, SPA_CLIENT);
    assert.equal(q.redirect_uri, `${w.url}/app/`);
    assert.equal(q.code_challenge_method, "S256");
    assert.match(q.code_challenge, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(q.state && q.nonce);
    await signIn(page);

    // Back at /app/?code=...: exchanged, both tokens verified in the page, the URL cleaned.
    await ready(page, "expected the SPA after signing in");
    assert.equal(await page.locator("#error").isVisible(), false, await text(page, "error"));
    assert.equal(new URL(page.url()).search, "", "code and state left in the URL");
    assert.equal((await text(page, "id-verdict")).trim(), "verified");
    assert.equal((await text(page, "at-verdict")).trim(), "verified");
    assert.match(await text(page, "status"), /Signed in as john; tokens verified/);
    const id = await claimsOf(page, "id-claims");
    assert.equal(id.sub, "john");
    assert.equal(id.aud, SPA_CLIENT);
    assert.equal(id.nonce, q.nonce);
    assert.equal(id.iss, w.url);
    const at = await claimsOf(page, "at-claims");
    assert.equal(at.sub, "john");
    assert.equal(at.client_id, SPA_CLIENT);
    assert.match(at.scope, /openid/);

    // The API through the Worker with the access token.
    await page.getByRole("button", { name: "Call /Patient" }).click();
    await page.waitForFunction(() => document.getElementById("api-status").textContent !== "");
    assert.equal((await text(page, "api-status")).trim(), "200");
    assert.ok((await page.locator("#patients li").count()) >= 1, "no patients listed");

    // Refresh: a new access token, verified again.
    await page.getByRole("button", { name: "Refresh tokens" }).click();
    await page.waitForFunction(() => /Refreshed\./.test(document.getElementById("status").textContent));
    const refreshed = await claimsOf(page, "at-claims");
    assert.notEqual(refreshed.jti, at.jti, "the access token did not change");
    assert.equal((await text(page, "at-verdict")).trim(), "verified");
    assert.equal((await text(page, "id-verdict")).trim(), "verified", await text(page, "id-claims"));
    assert.match(await text(page, "status"), /Signed in as john; tokens verified\. Refreshed\./);
    const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem("tokens")));
    assert.equal(decodeJwt(stored.access_token).payload.jti, refreshed.jti);

    // Tamper: one signature character changed; the package says why it refuses it.
    await page.getByRole("button", { name: "Tamper with the token" }).click();
    await page.waitForFunction(() => document.getElementById("tamper-code").textContent !== "");
    assert.equal((await text(page, "tamper-code")).trim(), "bad_signature");

    if (!process.env.SKIP_SCREENSHOTS) {
      mkdirSync(OUT_DIR, { recursive: true });
      await page.screenshot({ path: path.join(OUT_DIR, "spa.png"), fullPage: true });
      if (process.env.UPDATE_SCREENSHOTS === "1") {
        mkdirSync(path.join(ROOT, "docs"), { recursive: true });
        await page.screenshot({ path: path.join(ROOT, "docs", "spa.png"), fullPage: true });
      }
    }

    // Sign out: the refresh token is revoked, the session ended, the SPA forgets its tokens.
    await Promise.all([
      page.waitForURL((u) => u.pathname === "/auth/ui/logged-out.html"),
      page.getByRole("button", { name: "Sign out" }).click(),
    ]);
    await page.getByRole("heading", { name: "You are signed out." }).waitFor();
    const revoked = await w.fetch("/auth/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", client_id: SPA_CLIENT, refresh_token: stored.refresh_token }),
    });
    assert.equal(revoked.status, 400, "the refresh token still works after sign-out");
    await page.goto(`${w.url}/app/`);
    await ready(page, "the SPA after sign-out");
    assert.equal((await text(page, "status")).trim(), "Signed out.");
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitForLoginForm(page); // the session is gone: the login page again
    assert.equal(pathOf(page), "/auth/ui/login.html");

    assert.deepEqual(errors, [], "console errors in the SPA");
  });

  test("a token that does not verify is shown with its error code, not its claims", TEST, async () => {
    const { page, errors } = await fresh();
    await page.goto(`${w.url}/app/`);
    await ready(page, "the SPA did not start");
    // Plant tokens the page did not get from the issuer: a forged access token, a garbage id_token.
    await page.evaluate(() => {
      const b64 = (o) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
      const forged = `${b64({ alg: "none", typ: "at+jwt" })}.${b64({ sub: "root", iss: location.origin, aud: location.origin, exp: 4102444800 })}.`;
      sessionStorage.setItem("client_id", "spa-demo");
      sessionStorage.setItem("tokens", JSON.stringify({ access_token: forged, id_token: "garbage", user: "root" }));
    });
    await page.reload();
    await ready(page, "the SPA with planted tokens");
    assert.equal((await text(page, "at-verdict")).trim(), "alg_not_allowed");
    assert.equal((await text(page, "id-verdict")).trim(), "malformed");
    assert.match(await text(page, "status"), /a token did not verify/);
    assert.doesNotMatch(await text(page, "at-claims"), /"sub"/);
    assert.deepEqual(errors, []);
  });

  test("page hygiene: no inline scripts, styles or handlers", TEST, async () => {
    const { page } = await fresh();
    await page.goto(`${w.url}/app/`);
    await ready(page, "the SPA did not start");
    const hygiene = await page.evaluate(() => ({
      inlineScripts: [...document.scripts].filter((s) => !s.src).length,
      styleAttrs: document.querySelectorAll("[style]").length,
      handlers: [...document.querySelectorAll("*")].filter((el) => [...el.attributes].some((a) => a.name.startsWith("on"))).length,
      lang: document.documentElement.lang,
    }));
    assert.deepEqual(hygiene, { inlineScripts: 0, styleAttrs: 0, handlers: 0, lang: "en" });
  });
});
