// Browser test of issue 17's DPoP part: the demo SPA (www/app/) signs in with code + PKCE and
// gets a DPoP-bound token (RFC 9449) through the verifier package's DpopKey (a non-extractable
// WebCrypto key pair), then calls the API with `Authorization: DPoP` and a proof; the Worker
// runs with DPOP_NONCE=on, so the helper's nonce retry is exercised too. In headless Chromium
// against the built Worker in workerd.
//
//   node --test --test-concurrency=1 tests/browser/dpop.test.mjs
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, decodeJwt } from "../e2e/harness.mjs";
import { launchBrowser, openPage, setupFixtures, signIn, waitForLoginForm, explain } from "./helpers.mjs";

const TEST = { timeout: 60_000 };
const SPA_CLIENT = "spa-demo";

describe("browser: the demo SPA with DPoP-bound tokens", () => {
  let w;
  let browser;
  let context;

  before(async () => {
    const started = await Promise.allSettled([startWorker({ vars: { DPOP_NONCE: "on" } }), launchBrowser()]);
    [w, browser] = started.map((s) => (s.status === "fulfilled" ? s.value : undefined));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    await setupFixtures(w, "http://127.0.0.1:1/unused");
    const res = await w.admin("PUT", `/Client/${SPA_CLIENT}`, {
      grant_types: ["authorization_code"],
      first_party: true,
      dpop_bound_access_tokens: true,
      auth: { authorization_code: { redirect_uri: `${w.url}/app/`, refresh_token: true } },
    });
    assert.ok([200, 201].includes(res.status), `PUT /Client/${SPA_CLIENT}: ${res.status} ${await res.text()}`);
  });

  after(async () => {
    await Promise.allSettled([context?.close(), browser?.close(), w?.dispose()]);
  });

  const ready = (page, what) =>
    explain(page, what, async () => {
      await page.waitForURL((u) => u.pathname === "/app/");
      await page.waitForSelector("body[data-ready=true]");
    });

  test("sign in: a DPoP-bound token, /Patient with a proof, refresh with the same key", TEST, async () => {
    const opened = await openPage(browser);
    context = opened.context;
    context.setDefaultTimeout(10_000);
    context.setDefaultNavigationTimeout(10_000);
    const { page, errors } = opened;
    const sent = [];
    page.on("request", (r) => sent.push({ url: r.url(), method: r.method(), headers: r.headers() }));
    const text = (id) => page.locator(`#${id}`).innerText();

    await page.goto(`${w.url}/app/`);
    await ready(page, "the SPA did not start");
    const jkt = (await text("dpop-jkt")).trim();
    assert.match(jkt, /^[A-Za-z0-9_-]{43}$/);
    await page.getByLabel("Client id").fill(SPA_CLIENT);
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitForLoginForm(page);
    await signIn(page);
    await ready(page, "expected the SPA after signing in");
    assert.equal(await page.locator("#error").isVisible(), false, await text("error"));
    assert.equal((await text("at-verdict")).trim(), "verified");

    // The token request carried a proof; the first was refused for want of the nonce and retried.
    const tokenCalls = sent.filter((r) => r.url.endsWith("/auth/token"));
    assert.equal(tokenCalls.length, 2, "a use_dpop_nonce refusal, then the retry");
    for (const r of tokenCalls) assert.equal(decodeJwt(r.headers.dpop).header.typ, "dpop+jwt");
    assert.ok(decodeJwt(tokenCalls[1].headers.dpop).payload.nonce, "the retry carries the nonce");
    // The private key never left WebCrypto: the proof's jwk is public only.
    assert.deepEqual(Object.keys(decodeJwt(tokenCalls[1].headers.dpop).header.jwk).sort(), ["crv", "kty", "x", "y"]);
    const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem("tokens")));
    assert.deepEqual(decodeJwt(stored.access_token).payload.cnf, { jkt });

    // The API with the DPoP scheme and a proof bound to this token (ath).
    await page.getByRole("button", { name: "Call /Patient" }).click();
    await page.waitForFunction(() => document.getElementById("api-status").textContent !== "");
    assert.equal((await text("api-status")).trim(), "200");
    const apiCall = sent.filter((r) => new URL(r.url).pathname === "/Patient").at(-1);
    assert.match(apiCall.headers.authorization, /^DPoP /);
    const p = decodeJwt(apiCall.headers.dpop).payload;
    assert.equal(p.htm, "GET");
    assert.equal(p.htu, `${w.url}/Patient`);
    assert.ok(p.ath);

    // Stolen, the token is useless: as Bearer, or as DPoP without the key.
    const asBearer = await w.fetch("/Patient", { headers: { authorization: `Bearer ${stored.access_token}` } });
    assert.equal(asBearer.status, 401);
    const replayed = await w.fetch("/Patient", { headers: { authorization: apiCall.headers.authorization, dpop: apiCall.headers.dpop } });
    assert.equal(replayed.status, 401, "a replayed proof");

    // Refresh: the refresh token of this public client is bound to the same key; after a
    // reload the key comes back from IndexedDB.
    await page.reload();
    await ready(page, "the SPA after a reload");
    assert.equal((await text("dpop-jkt")).trim(), jkt, "the key survived the reload");
    await page.getByRole("button", { name: "Refresh tokens" }).click();
    await page.waitForFunction(() => /Refreshed\./.test(document.getElementById("status").textContent));
    const refreshed = await page.evaluate(() => JSON.parse(sessionStorage.getItem("tokens")));
    assert.notEqual(refreshed.access_token, stored.access_token);
    assert.deepEqual(decodeJwt(refreshed.access_token).payload.cnf, { jkt });
    // Without the key the refresh token is refused.
    const stolenRefresh = await w.fetch("/auth/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", client_id: SPA_CLIENT, refresh_token: refreshed.refresh_token }),
    });
    assert.equal(stolenRefresh.status, 400);
    assert.equal((await stolenRefresh.json()).error, "invalid_dpop_proof");
    assert.deepEqual(errors.filter((e) => !/status of 40[01]/.test(e)), [], "console errors in the SPA");
  });
});
