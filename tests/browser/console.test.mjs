// Browser tests of issue 14's first slice: the admin console at /console/ in headless Chromium
// against the built Worker. An administrator (a User linked to an AccessPolicy that allows the
// admin API through the console client, docs/console.md) signs in with code + PKCE, creates a
// Basic client through the form, links a policy to it, and a request with that client is then
// allowed; an invalid field shows the server's message next to it; sign-out ends the session.
// A user without such a policy is told they lack rights (403 from the API).
//
//   node --test --test-concurrency=1 tests/browser/console.test.mjs
//   UPDATE_SCREENSHOTS=1 ...   also writes docs/console-*.png (always: tests/browser/out/console-*.png)
import { describe, test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWorker, basicAuth, ROOT } from "../e2e/harness.mjs";
import { launchBrowser, openPage, signIn, explain, pathOf } from "./helpers.mjs";

const OUT_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "out");
const TEST = { timeout: 60_000 };
const ADMIN = ["ada", "adminpass1"];
const PLAIN = ["john", "pass123"];

describe("browser: the admin console", () => {
  let w;
  let browser;
  const contexts = [];

  before(async () => {
    mkdirSync(OUT_DIR, { recursive: true });
    const started = await Promise.allSettled([startWorker(), launchBrowser()]);
    [w, browser] = started.map((r) => (r.status === "fulfilled" ? r.value : undefined));
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    for (const [p, body] of [
      ["/User/ada", { email: "ada@example.com", password: ADMIN[1], name: { givenName: "Ada", familyName: "Admin" } }],
      ["/User/john", { email: "john@example.com", password: PLAIN[1] }],
      // docs/console.md "Signing in": the policy that makes ada an administrator (through the console only).
      ["/AccessPolicy/ada-admin", { engine: "matcho", matcho: { client: { id: "console" } }, link: [{ reference: "User/ada" }] }],
    ]) {
      const res = await w.admin("PUT", p, body);
      assert.ok([200, 201].includes(res.status), `PUT ${p}: ${res.status} ${await res.text()}`);
    }
  });

  after(async () => {
    await Promise.allSettled(contexts.map((c) => c.close()));
    await Promise.allSettled([browser?.close(), w?.dispose()]);
  });
  afterEach(async () => {
    await Promise.allSettled(contexts.splice(0).map((c) => c.close()));
  });

  async function fresh(options) {
    const opened = await openPage(browser, options);
    contexts.push(opened.context);
    return opened;
  }

  async function shot(page, name) {
    await page.screenshot({ path: path.join(OUT_DIR, `console-${name}.png`), fullPage: true });
    if (process.env.UPDATE_SCREENSHOTS === "1") {
      await page.screenshot({ path: path.join(ROOT, "docs", `console-${name}.png`), fullPage: true });
    }
  }

  /** /console/ -> Sign in -> login page -> back on /console/ (no code left in the URL). */
  async function consoleSignIn(page, [user, pass], { keyboard = false } = {}) {
    await page.goto(`${w.url}/console/`);
    if (keyboard) {
      // Tab past the skip link to the Sign in button, Enter.
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      await page.keyboard.press("Tab");
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate(() => document.activeElement?.id), "sign-in");
      await page.keyboard.press("Enter");
    } else {
      await page.getByRole("button", { name: "Sign in" }).click();
    }
    await signIn(page, user, pass);
    await explain(page, "expected the console after signing in", async () => {
      await page.waitForURL((u) => u.pathname === "/console/");
      await page.locator("#sign-out:visible").waitFor();
    });
    assert.equal(new URL(page.url()).search, "", "the code stayed in the URL");
  }

  test("admin: sign in, create a Basic client, link a policy, the client is allowed, invalid field, sign out", TEST, async () => {
    const { page, errors } = await fresh({ viewport: { width: 1000, height: 800 } });
    page.on("dialog", (d) => d.accept());
    await consoleSignIn(page, ADMIN);
    await page.getByRole("heading", { name: "Clients" }).waitFor();
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem("console.token"),
      local: localStorage.length,
    }));
    assert.ok(JSON.parse(stored.session).access_token, "no token in sessionStorage");
    assert.equal(stored.local, 0, "the console wrote to localStorage");
    const token = JSON.parse(stored.session).access_token;

    // Step 1 of the tutorial: a Basic client through the form; the secret is shown once.
    await page.getByRole("link", { name: "New Basic client" }).click();
    await page.getByLabel("Client id").fill("tutorial-basic");
    await page.getByLabel("Name").fill("Tutorial (Basic)");
    await page.getByRole("button", { name: "Create client" }).click();
    const secretBox = page.locator("#new-secret");
    await explain(page, "expected the new secret", () => secretBox.waitFor());
    const secret = await secretBox.inputValue();
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    await page.locator("tr[data-id='tutorial-basic']").waitFor();
    await shot(page, "clients");

    // Without a policy the client is refused...
    const before = await w.fetch("/Patient", { headers: { authorization: basicAuth("tutorial-basic", secret) } });
    assert.equal(before.status, 403, await before.text());

    // Step 2: an AccessPolicy linked to it, in the JSON editor.
    await page.getByRole("link", { name: "AccessPolicies" }).click();
    await page.getByRole("link", { name: "New AccessPolicy" }).click();
    await page.getByRole("button", { name: "Example: json-schema" }).click();
    assert.match(await page.locator("#json").inputValue(), /json-schema/);
    await page.getByRole("button", { name: "Example: matcho" }).click();
    await page.locator("#json").fill(
      JSON.stringify({ resourceType: "AccessPolicy", id: "bad", engine: "matcho", matcho: { uri: "#[" } }, null, 2),
    );
    await page.getByRole("button", { name: "Create" }).click();
    await explain(page, "expected the engine's error inline", () => page.locator("#json-error:visible").waitFor());
    const engineError = await page.locator("#json-error").innerText();
    assert.match(engineError, /matcho/, engineError);
    await page.locator("#json").fill(
      JSON.stringify(
        {
          resourceType: "AccessPolicy",
          id: "tutorial-basic-read",
          engine: "matcho",
          matcho: { "request-method": "get", uri: "#^/Patient" },
          link: [{ reference: "Client/tutorial-basic" }],
        },
        null,
        2,
      ),
    );
    await page.getByRole("button", { name: "Create" }).click();
    const row = page.locator("tr[data-id='tutorial-basic-read']");
    await explain(page, "expected the new policy in the list", () => row.waitFor());
    assert.match(await row.innerText(), /Client\/tutorial-basic/);
    await shot(page, "policies");

    // The client list shows the policy linked to the client.
    await page.getByRole("link", { name: "Clients" }).click();
    await explain(page, "expected the linked policy on the client's row", () =>
      page.locator("tr[data-id='tutorial-basic'] td", { hasText: "tutorial-basic-read" }).waitFor(),
    );
    await page.getByRole("link", { name: "AccessPolicies" }).click();

    // Step 3: the request the policy lets through (curl-like, from node).
    const allowed = await w.fetch("/Patient", { headers: { authorization: basicAuth("tutorial-basic", secret) } });
    assert.equal(allowed.status, 200, await allowed.text());

    // Rotate the secret: the old one stops working, the new one works.
    await page.getByRole("link", { name: "Clients" }).click();
    await page.locator("tr[data-id='tutorial-basic']").getByRole("button", { name: "Rotate secret" }).click();
    await page.locator("#new-secret").waitFor();
    const rotated = await page.locator("#new-secret").inputValue();
    assert.notEqual(rotated, secret);
    assert.equal((await w.fetch("/Patient", { headers: { authorization: basicAuth("tutorial-basic", secret) } })).status, 401);
    assert.equal((await w.fetch("/Patient", { headers: { authorization: basicAuth("tutorial-basic", rotated) } })).status, 200);

    // An invalid field: the server's message next to it.
    await page.getByRole("link", { name: "New OAuth client" }).click();
    await page.getByLabel("Client id").fill("web-app");
    await page.getByLabel("authorization_code").check();
    await page.getByLabel("Redirect URI").fill("http://app.example.com/cb");
    await page.getByRole("button", { name: "Create client" }).click();
    const fieldError = page.locator("#c-redirect-error");
    await explain(page, "expected the redirect URI's error", () => fieldError.waitFor());
    assert.match(await fieldError.innerText(), /https/);
    assert.equal(await page.locator("#c-redirect").getAttribute("aria-invalid"), "true");
    await shot(page, "field-error");
    // Fixed; a token lifetime of 0 is the next field the server refuses, next to that field.
    await page.getByLabel("Redirect URI").fill("https://app.example.com/cb");
    await page.getByLabel("Access token lifetime (seconds)").fill("0");
    await page.getByRole("button", { name: "Create client" }).click();
    await explain(page, "expected the lifetime's error", () => page.locator("#c-access-error:visible").waitFor());
    assert.match(await page.locator("#c-access-error").innerText(), /access_token_expiration/);
    assert.ok(await page.locator("#c-redirect-error").isHidden(), "the old error stayed");
    // Fixed, it is created (public: no secret shown).
    await page.getByLabel("Access token lifetime (seconds)").fill("600");
    await page.getByLabel("Public client").check();
    await page.getByRole("button", { name: "Create client" }).click();
    await page.locator("tr[data-id='web-app']").waitFor();
    const webApp = await (await w.admin("GET", "/Client/web-app")).json();
    assert.deepEqual(webApp.grant_types, ["authorization_code"]);
    assert.deepEqual(webApp.auth, { authorization_code: { access_token_expiration: 600, redirect_uri: "https://app.example.com/cb" } });
    assert.equal(webApp.first_party, false);

    // Sign out: the token is revoked and forgotten, the login session ended.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("console.token")), null);
    const after = await w.fetch("/Client", { headers: { authorization: `Bearer ${token}` } });
    assert.equal(after.status, 401, "the console's token still works after sign-out");
    await page.getByRole("button", { name: "Sign in" }).click();
    await explain(page, "expected the login form again (session ended)", () => page.waitForURL((u) => u.pathname === "/auth/ui/login.html"));
    // Chromium logs every 4xx fetch; the two 422s above were wanted. Nothing else may fail.
    assert.deepEqual(errors.filter((e) => !/status of 422/.test(e)), []);
  });

  test("the Basic client form shows the server's message next to an invalid client id", TEST, async () => {
    const { page, errors } = await fresh();
    await consoleSignIn(page, ADMIN);
    await page.getByRole("heading", { name: "Clients" }).waitFor();
    await page.getByRole("link", { name: "New Basic client" }).click();
    await page.getByLabel("Client id").fill("not an id!");
    await page.getByRole("button", { name: "Create client" }).click();
    const fieldError = page.locator("#c-id-error");
    await explain(page, "expected the id error next to the field", () => fieldError.waitFor());
    assert.match(await fieldError.innerText(), /id/i);
    assert.equal(await page.locator("#c-id").getAttribute("aria-invalid"), "true");
    assert.equal((await w.admin("GET", "/Client/not%20an%20id!")).status, 404);
    assert.deepEqual(errors.filter((e) => !/status of 422/.test(e)), []);
  });

  test("the client-credentials tutorial through the console: OAuth client form, policy, token, API", TEST, async () => {
    const { page } = await fresh();
    await consoleSignIn(page, ADMIN);
    await page.getByRole("link", { name: "New OAuth client" }).click();
    await page.getByLabel("Client id").fill("api-client");
    await page.getByLabel("client_credentials").check();
    await page.getByLabel("Access token lifetime (seconds)").fill("300");
    await page.getByRole("button", { name: "Create client" }).click();
    await explain(page, "expected the new secret", () => page.locator("#new-secret").waitFor());
    const secret = await page.locator("#new-secret").inputValue();
    await page.getByRole("link", { name: "AccessPolicies" }).click();
    await page.getByRole("link", { name: "New AccessPolicy" }).click();
    await page.locator("#json").fill(JSON.stringify({ id: "api-client-policy", engine: "allow", link: [{ id: "api-client", resourceType: "Client" }] }));
    await page.getByRole("button", { name: "Create" }).click();
    await page.locator("tr[data-id='api-client-policy']", { hasText: "Client/api-client" }).waitFor();
    const res = await w.fetch("/auth/token", {
      method: "POST",
      headers: { authorization: basicAuth("api-client", secret), "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials",
    });
    const tokens = await res.json();
    assert.equal(res.status, 200, JSON.stringify(tokens));
    assert.equal(tokens.expires_in, 300);
    const api = await w.fetch("/Patient", { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(api.status, 200, await api.text());
  });

  test("users and token introspectors: create, edit, delete in the JSON editor; errors inline", TEST, async () => {
    const { page, errors } = await fresh();
    page.on("dialog", (d) => d.accept());
    await consoleSignIn(page, ADMIN);
    await page.getByRole("link", { name: "Users" }).click();
    await page.getByRole("link", { name: "New User" }).click();
    const editor = page.locator("#json");
    await editor.fill(JSON.stringify({ id: "bea", email: "not an email", password: "longenough1" }));
    await page.getByRole("button", { name: "Create" }).click();
    await explain(page, "expected the email error", () => page.locator("#json-error:visible").waitFor());
    assert.match(await page.locator("#json-error").innerText(), /email/);
    await editor.fill(JSON.stringify({ id: "bea", email: "bea@example.com", password: "longenough1" }));
    await page.getByRole("button", { name: "Create" }).click();
    await page.locator("tr[data-id='bea']").waitFor();
    // Edit: the stored user comes back without its password hash; a change is saved with PUT.
    await page.getByRole("link", { name: "bea", exact: true }).click();
    await explain(page, "expected the user in the editor", () =>
      page.waitForFunction(() => document.getElementById("json")?.value.includes("bea@example.com")),
    );
    const shown = JSON.parse(await editor.inputValue());
    assert.equal(shown.password, undefined);
    assert.equal(shown.password_hash, undefined);
    await editor.fill(JSON.stringify({ ...shown, email: "bea@example.org" }));
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator("tr[data-id='bea']", { hasText: "bea@example.org" }).waitFor();
    const stored = await (await w.admin("GET", "/User/bea")).json();
    assert.equal(stored.email, "bea@example.org");
    await page.locator("tr[data-id='bea']").getByRole("button", { name: "Delete" }).click();
    await explain(page, "expected bea gone", () => page.locator("tr[data-id='bea']").waitFor({ state: "detached" }));
    assert.equal((await w.admin("GET", "/User/bea")).status, 404);

    await page.getByRole("link", { name: "TokenIntrospectors" }).click();
    await page.getByRole("link", { name: "New TokenIntrospector" }).click();
    await page.getByRole("button", { name: "Example: JWT (JWKS)" }).click();
    const doc = JSON.parse(await editor.inputValue());
    await editor.fill(JSON.stringify({ ...doc, jwks_uri: "http://idp.example.com/jwks" }));
    await page.getByRole("button", { name: "Create" }).click();
    await explain(page, "expected the jwks_uri error", () => page.locator("#json-error:visible").waitFor());
    assert.match(await page.locator("#json-error").innerText(), /jwks_uri/);
    await editor.fill(JSON.stringify(doc));
    await page.getByRole("button", { name: "Create" }).click();
    await page.locator("tr[data-id='my-idp']").waitFor();
    assert.match(await page.locator("tr[data-id='my-idp']").innerText(), /idp\.example\.com/);
    await page.locator("tr[data-id='my-idp']").getByRole("button", { name: "Delete" }).click();
    await page.locator("tr[data-id='my-idp']").waitFor({ state: "detached" });
    assert.deepEqual(errors.filter((e) => !/status of 422/.test(e)), []);
  });

  test("a user without an admin policy is told they lack rights (403)", TEST, async () => {
    const { page } = await fresh();
    await consoleSignIn(page, PLAIN, { keyboard: true });
    const alert = page.locator("#alert");
    await explain(page, "expected the lack-of-rights message", () => alert.waitFor());
    assert.match(await alert.innerText(), /lack the rights.*403/s);
  });

  test("an expired token returns to the sign-in screen; on a phone", TEST, async () => {
    const { page } = await fresh({ viewport: { width: 390, height: 844 } });
    await consoleSignIn(page, ADMIN);
    await page.getByRole("heading", { name: "Clients" }).waitFor();
    await page.locator("tbody tr").first().waitFor();
    await shot(page, "phone");
    await page.evaluate(() => {
      const t = JSON.parse(sessionStorage.getItem("console.token"));
      t.expires_at = Date.now() - 1;
      sessionStorage.setItem("console.token", JSON.stringify(t));
    });
    await page.reload();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    assert.equal(pathOf(page), "/console/");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("console.token")), null);
  });
});
