// Real cross-origin fetches in headless Chromium against the built Worker: a page on the origin
// a public client registered (its redirect URI's) may call the token, userinfo and discovery
// endpoints and read the answers; a page on another origin cannot (the preflight is refused,
// simple requests come back without Access-Control-Allow-Origin); the admin API answers no one.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, basicAuth, form, FORM } from "../e2e/harness.mjs";
import { launchBrowser, openPage, startCallbackServer } from "./helpers.mjs";

const TEST = { timeout: 60_000 };

describe("browser: CORS for registered SPA origins", () => {
  let w, registered, other, browser, accessToken;

  before(async () => {
    [w, registered, other, browser] = await Promise.all([startWorker(), startCallbackServer(), startCallbackServer(), launchBrowser()]);
    const put = async (p, b) => {
      const r = await w.admin("PUT", p, b);
      assert.ok([200, 201].includes(r.status), `${p}: ${r.status} ${await r.text()}`);
    };
    await put("/Client/spa", { grant_types: ["authorization_code"], auth: { authorization_code: { redirect_uri: registered.redirectUri } } });
    await put("/Client/web", { secret: "web-secret", grant_types: ["password"] });
    await put("/User/john", { email: "john@example.com", password: "pass123" });
    const r = await w.fetch("/auth/token", {
      method: "POST",
      headers: { ...FORM, authorization: basicAuth("web", "web-secret") },
      body: form({ grant_type: "password", username: "john", password: "pass123", scope: "openid" }),
    });
    accessToken = (await r.json()).access_token;
    assert.ok(accessToken);
  });
  after(async () => {
    await browser?.close();
    await Promise.all([w?.dispose(), registered?.dispose(), other?.dispose()]);
  });

  /** Runs the calls from a page on `origin`; each result is {status, body} or {failed}. */
  async function callsFrom(origin) {
    const { page, context } = await openPage(browser);
    await page.goto(`${origin}/page`);
    const results = await page.evaluate(
      async ({ base, token }) => {
        const run = async (url, init) => {
          try {
            const r = await fetch(url, init);
            return { status: r.status, body: await r.text() };
          } catch (e) {
            return { failed: String(e) };
          }
        };
        return {
          // Preflighted (Authorization header).
          userinfo: await run(`${base}/auth/userinfo`, { headers: { authorization: `Bearer ${token}` } }),
          // A simple request (form POST): no preflight; the answer must be unreadable elsewhere.
          token: await run(`${base}/auth/token`, {
            method: "POST",
            headers: { "content-type": "application/x-www-form-urlencoded" },
            body: "grant_type=refresh_token&client_id=spa&refresh_token=x.y",
          }),
          jwks: await run(`${base}/.well-known/jwks.json`),
          admin: await run(`${base}/Client/spa`, { headers: { authorization: `Bearer ${token}` } }),
        };
      },
      { base: w.url, token: accessToken },
    );
    await context.close();
    return results;
  }

  test("the registered origin reads the answers", TEST, async () => {
    const r = await callsFrom(registered.origin);
    assert.equal(r.userinfo.status, 200, JSON.stringify(r.userinfo));
    assert.equal(JSON.parse(r.userinfo.body).sub, "john");
    assert.equal(r.token.status, 400, JSON.stringify(r.token));
    assert.equal(JSON.parse(r.token.body).error, "invalid_grant");
    assert.equal(r.jwks.status, 200);
    assert.ok(r.admin.failed, `the admin API answered CORS: ${JSON.stringify(r.admin)}`);
  });

  test("another origin reads nothing but the public documents", TEST, async () => {
    const r = await callsFrom(other.origin);
    assert.ok(r.userinfo.failed, `userinfo readable: ${JSON.stringify(r.userinfo)}`);
    assert.ok(r.token.failed, `token answer readable: ${JSON.stringify(r.token)}`);
    assert.ok(r.admin.failed, JSON.stringify(r.admin));
    assert.equal(r.jwks.status, 200, "JWKS is public");
  });
});
