// Browser tests of issue 14's debugging views in the admin console, headless Chromium against the
// built Worker: the policy tester (a request a policy allows, one it denies with the mismatch
// shown, a draft policy), the token inspector (a valid token, a garbage one), and a user's
// sessions and grants (end a session: that browser is signed out; revoke a grant).
//
//   node --test --test-concurrency=1 tests/browser/console-debug.test.mjs
//   UPDATE_SCREENSHOTS=1 ...   also writes docs/console-tester.png, docs/console-inspector.png
import { describe, test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWorker, ROOT, json } from "../e2e/harness.mjs";
import { launchBrowser, openPage, signIn, explain, startCallbackServer, setupFixtures, obtainCode, authorizeRequest, waitForLoginForm } from "./helpers.mjs";

const OUT_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "out");
const TEST = { timeout: 60_000 };
const ADMIN = ["ada", "adminpass1"];

describe("browser: the console's policy tester, token inspector, sessions and grants", () => {
  let w;
  let browser;
  let callback;
  const contexts = [];

  before(async () => {
    mkdirSync(OUT_DIR, { recursive: true });
    const started = await Promise.allSettled([startWorker(), launchBrowser(), startCallbackServer()]);
    [w, browser, callback] = started.map((r) => (r.status === "fulfilled" ? r.value : undefined));
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    await setupFixtures(w, callback.redirectUri);
    for (const [p, body] of [
      ["/User/ada", { email: "ada@example.com", password: ADMIN[1] }],
      ["/User/mary", { email: "mary@example.com", password: "marypass1" }],
      ["/AccessPolicy/ada-admin", { engine: "matcho", matcho: { client: { id: "console" } }, link: [{ reference: "User/ada" }] }],
      ["/Client/basic", { secret: "s3cret-basic", grant_types: ["basic"] }],
      ["/AccessPolicy/basic-read", { engine: "matcho", matcho: { "request-method": "get", uri: "#^/Patient" }, link: [{ reference: "Client/basic" }] }],
    ]) {
      const res = await w.admin("PUT", p, body);
      assert.ok([200, 201].includes(res.status), `PUT ${p}: ${res.status} ${await res.text()}`);
    }
  });

  after(async () => {
    await Promise.allSettled(contexts.map((c) => c.close()));
    await Promise.allSettled([browser?.close(), w?.dispose(), callback?.dispose()]);
  });
  afterEach(async () => {
    await Promise.allSettled(contexts.splice(0).map((c) => c.close()));
  });

  async function fresh(options) {
    const opened = await openPage(browser, options);
    contexts.push(opened.context);
    return opened;
  }

  async function shot(page, name, { docs = true } = {}) {
    await page.screenshot({ path: path.join(OUT_DIR, `console-${name}.png`), fullPage: true });
    if (docs && process.env.UPDATE_SCREENSHOTS === "1") {
      await page.screenshot({ path: path.join(ROOT, "docs", `console-${name}.png`), fullPage: true });
    }
  }

  async function consoleSignIn(page, [user, pass]) {
    await page.goto(`${w.url}/console/`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await signIn(page, user, pass);
    await explain(page, "expected the console after signing in", async () => {
      await page.waitForURL((u) => u.pathname === "/console/");
      await page.locator("#sign-out:visible").waitFor();
    });
  }

  test("policy tester: a request the policy allows, one it denies with the mismatch, a draft policy", TEST, async () => {
    const { page, errors } = await fresh({ viewport: { width: 1000, height: 900 } });
    await consoleSignIn(page, ADMIN);
    await page.getByRole("link", { name: "Policy tester" }).click();
    await page.getByRole("heading", { name: "Policy tester" }).waitFor();
    await page.getByLabel("A client (by id)").check();
    await page.getByLabel("Client id").fill("basic");
    await page.getByLabel("Path and query").fill("/Patient?name=smith");
    await page.getByRole("button", { name: "Test request" }).click();
    const decision = page.locator("#t-decision");
    await explain(page, "expected an allow", () => decision.filter({ hasText: "Allowed (200)" }).waitFor());
    assert.match(await decision.innerText(), /allowed by AccessPolicy basic-read/);
    assert.match(await page.locator("tr[data-id='basic-read']").innerText(), /allowed/);
    assert.match(await page.locator("#t-identity").innerText(), /client basic/);

    // The same client may not POST: denied, and the policy's first mismatch is shown.
    await page.getByLabel("Method").selectOption("POST");
    await page.getByLabel("Headers").fill("content-type: application/json");
    await page.getByLabel("Body (JSON)").fill('{"resourceType": "Patient"}');
    await page.getByRole("button", { name: "Test request" }).click();
    await explain(page, "expected a deny", () => decision.filter({ hasText: "Denied (403" }).waitFor());
    const row = page.locator("tr[data-id='basic-read']");
    const why = await row.innerText();
    assert.match(why, /denies/);
    assert.match(why, /Path\s+request-method/);
    assert.match(why, /Expected\s+"get"/);
    assert.match(why, /Actual\s+"post"/);
    await shot(page, "tester");
    await page.locator("#t-request summary").click();
    assert.match(await page.locator("#t-request pre").innerText(), /"resourceType": "Patient"/);

    // Invalid input stays in the page; a draft policy is tried (and an invalid one named by the server).
    await page.getByLabel("Headers").fill("not a header");
    await page.getByRole("button", { name: "Test request" }).click();
    await explain(page, "expected the headers error", () => page.locator("#t-headers-error:visible").waitFor());
    await page.getByLabel("Headers").fill("");
    await page.getByLabel("Draft policy (JSON, not stored)").fill('{"engine": "matcho", "matcho": 1}');
    await page.getByRole("button", { name: "Test request" }).click();
    await explain(page, "expected the server's policy error", () => page.locator("#t-policy-error:visible").waitFor());
    assert.match(await page.locator("#t-policy-error").innerText(), /matcho/);
    await page.getByLabel("Draft policy (JSON, not stored)").fill('{"engine": "matcho", "matcho": {"request-method": "post"}}');
    await page.getByRole("button", { name: "Test request" }).click();
    await explain(page, "expected the draft's verdict", () => page.locator("#t-draft", { hasText: "would allow" }).waitFor());
    assert.match(await decision.innerText(), /Denied/, "a draft policy is not stored");
    assert.deepEqual(errors.filter((e) => !/status of 422/.test(e)), []);
  });

  test("token inspector: the console's own token verifies; garbage does not; never in the URL", TEST, async () => {
    const { page, errors, requests } = await fresh({ viewport: { width: 1000, height: 900 } });
    await consoleSignIn(page, ADMIN);
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem("console.token")).access_token);
    await page.getByRole("link", { name: "Token inspector" }).click();
    await page.getByLabel("Token", { exact: true }).fill(token);
    await page.getByRole("button", { name: "Inspect" }).click();
    const verdict = page.locator("#i-verdict");
    await explain(page, "expected a valid verdict", () => verdict.filter({ hasText: "Valid" }).waitFor());
    assert.match(await verdict.innerText(), /verified by this server; client console; user ada/);
    assert.match(await page.locator("#i-dates").innerText(), /exp\s+\d{4}-\d\d-\d\dT[\d:]+Z \(in \d+ min\)/);
    assert.match(await page.locator("#i-revocation").innerText(), /Token revoked \(jti\): no/);
    assert.match(await page.locator("#i-result").innerText(), /"alg": "EdDSA"/);
    assert.match(await page.locator("#i-result").innerText(), /"sub": "ada"/);
    await shot(page, "inspector");

    await page.getByLabel("Token", { exact: true }).fill("not-a-token");
    await page.getByRole("button", { name: "Inspect" }).click();
    await explain(page, "expected a not-valid verdict", () => verdict.filter({ hasText: "Not valid" }).waitFor());
    assert.match(await verdict.innerText(), /invalid_token/);
    for (const url of requests) assert.ok(!url.includes(token.slice(-20)), `the token went into a URL: ${url}`);
    assert.ok(!page.url().includes("not-a-token"));
    assert.deepEqual(errors, []);
  });

  test("a user without an admin policy is told so in the tester, the inspector and the sessions view", TEST, async () => {
    const { page } = await fresh();
    await consoleSignIn(page, ["mary", "marypass1"]);
    const alert = page.locator("#alert");
    await page.getByRole("link", { name: "Policy tester" }).click();
    await page.getByRole("button", { name: "Test request" }).click();
    await explain(page, "expected the lack-of-rights message", () => alert.filter({ hasText: "lack the rights" }).waitFor());
    assert.match(await alert.innerText(), /403/);
    assert.equal(await page.locator("#t-decision").count(), 0);
    await page.getByRole("link", { name: "Token inspector" }).click();
    await page.getByLabel("Token", { exact: true }).fill("x.y.z");
    await page.getByRole("button", { name: "Inspect" }).click();
    await explain(page, "expected the lack-of-rights message", () => alert.filter({ hasText: "lack the rights" }).waitFor());
    await page.goto(`${w.url}/console/#users/sessions/john`);
    await page.getByRole("heading", { name: "Sessions and grants of john" }).waitFor();
    await explain(page, "expected the lack-of-rights message", () => alert.filter({ hasText: "lack the rights" }).waitFor());
    assert.equal(await page.locator("#s-session-table").count(), 0);
  });

  test("sessions and grants of a user: end a session (that browser is signed out), revoke a grant", TEST, async () => {
    // john signs in to a third-party client in his own browser: a session and a grant.
    const john = await fresh();
    await obtainCode(w, john.page, callback);
    assert.equal((await json(await w.admin("GET", "/Grant?user=john"))).total, 1);

    // On a phone, with the keyboard where it matters.
    const { page, errors } = await fresh({ viewport: { width: 390, height: 844 } });
    page.on("dialog", (d) => d.accept());
    await consoleSignIn(page, ADMIN);
    await page.getByRole("link", { name: "Users" }).click();
    await page.locator("tr[data-id='john']").getByRole("link", { name: "Sessions and grants" }).click();
    await page.getByRole("heading", { name: "Sessions and grants of john" }).waitFor();
    const sessionRows = page.locator("#s-session-table tbody tr");
    await explain(page, "expected john's session", () => sessionRows.first().waitFor());
    assert.equal(await sessionRows.count(), 1);
    assert.match(await sessionRows.first().innerText(), /yes/);
    const grantRow = page.locator("#s-grant-table tbody tr");
    assert.match(await grantRow.innerText(), /web-app/);
    await shot(page, "sessions", { docs: false });
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scrollWidth <= 390, `the page scrolls sideways on a phone (${scrollWidth}px)`);

    await sessionRows.first().getByRole("button", { name: "End session" }).focus();
    await page.keyboard.press("Enter");
    await explain(page, "expected no sessions", () => page.locator("#s-sessions", { hasText: "No sessions." }).waitFor());
    // john's browser is signed out: the next authorization request asks him to sign in.
    await john.page.goto(authorizeRequest(w, callback.redirectUri).url);
    await waitForLoginForm(john.page);

    await grantRow.getByRole("button", { name: "Revoke grant" }).click();
    await explain(page, "expected no grants", () => page.locator("#s-grants", { hasText: "No grants." }).waitFor());
    assert.equal((await json(await w.admin("GET", "/Grant?user=john"))).total, 0);

    // End all: two new sessions, both ended.
    await obtainCode(w, john.page, callback);
    await page.reload();
    await explain(page, "expected john's new session", () => sessionRows.first().waitFor());
    await page.getByRole("button", { name: "End all sessions" }).click();
    await explain(page, "expected no sessions", () => page.locator("#s-sessions", { hasText: "No sessions." }).waitFor());
    assert.equal((await json(await w.admin("GET", "/Session?user=john"))).total, 0);
    assert.ok(await page.getByRole("button", { name: "End all sessions" }).isDisabled());
    assert.deepEqual(errors, []);
  });
});
