// Helpers for the headless-Chromium tests of the sign-in pages (tests/browser/*.test.mjs).
//
// Chromium: the system one (Debian package `chromium`, /usr/bin/chromium) driven by
// playwright-core; never `npx playwright install`. CHROMIUM_PATH overrides the path.
// BROWSER_HEADED=1 shows the window (needs a display), BROWSER_SLOWMO=ms slows every action.
import http from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { basicAuth, form, json, FORM } from "../e2e/harness.mjs";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Client, user and policy the tests use (the tutorial fixtures). */
export const CLIENT_ID = "web-app";
export const CLIENT_SECRET = "websecret";
export const USERNAME = "john";
export const PASSWORD = "pass123";

/** Launches headless Chromium with a clean, offline-friendly profile. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: install it (apt-get update && apt-get install -y chromium) ` +
        "or set CHROMIUM_PATH",
    );
  }
  const headed = process.env.BROWSER_HEADED === "1";
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: !headed,
    slowMo: Number(process.env.BROWSER_SLOWMO ?? 0) || undefined,
    args: [
      ...(headed ? [] : ["--headless"]),
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A fresh browser context (no cookies, no storage) and a page in it. Console errors and uncaught
 * page errors are collected in `errors`. `options` go to browser.newContext().
 */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({ locale: "en-US", colorScheme: "light", ...options });
  context.setDefaultTimeout(5_000);
  context.setDefaultNavigationTimeout(5_000);
  const page = await context.newPage();
  const errors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console: ${msg.text()} (${msg.location()?.url ?? "?"})`);
  });
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  const requests = [];
  context.on("request", (req) => requests.push(req.url()));
  return { context, page, errors, requests };
}

/**
 * The client's redirect target: a node http server on 127.0.0.1 that records every request to it
 * and answers a tiny HTML page.
 */
export async function startCallbackServer() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    requests.push({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams) });
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end('<!doctype html><html lang="en"><title>Callback</title><h1>Callback received</h1></html>');
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    redirectUri: `${origin}/callback`,
    requests,
    reset: () => void requests.splice(0),
    dispose: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** RFC 7636 S256: a 43-character verifier and its challenge. */
export function pkce() {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  return { verifier, challenge };
}

export const randomState = () => randomBytes(12).toString("base64url");

async function put(w, path, body) {
  const res = await w.admin("PUT", path, body);
  const text = await res.text();
  assert.ok([200, 201].includes(res.status), `PUT ${path}: expected 200/201, got ${res.status}: ${text}`);
}

/** Client web-app (not first party, so it gets the consent page), user john and his policy. */
export async function setupFixtures(w, redirectUri) {
  await put(w, `/Client/${CLIENT_ID}`, {
    secret: CLIENT_SECRET,
    grant_types: ["authorization_code"],
    first_party: false,
    name: "Web App",
    auth: { authorization_code: { redirect_uri: redirectUri, refresh_token: true, access_token_expiration: 3600 } },
  });
  await put(w, `/User/${USERNAME}`, {
    email: "john@example.com",
    password: PASSWORD,
    name: { givenName: "John", familyName: "Doe" },
  });
  await put(w, `/AccessPolicy/${USERNAME}`, { engine: "allow", link: [{ id: USERNAME, resourceType: "User" }] });
}

/**
 * A fresh authorization request: `{ url, state, nonce, verifier, challenge, query }`.
 * `overrides` replace (or, with value null, remove) query parameters.
 */
export function authorizeRequest(w, redirectUri, overrides = {}) {
  const { verifier, challenge } = pkce();
  const state = randomState();
  const nonce = randomState();
  const params = {
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: redirectUri,
    scope: "openid profile offline_access",
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
    ...overrides,
  };
  for (const [k, v] of Object.entries(params)) if (v === null) delete params[k];
  const query = new URLSearchParams(params).toString();
  return { url: `${w.url}/auth/authorize?${query}`, query, state, nonce, verifier, challenge, params };
}

/** Path of the page's current URL (no query, no fragment). */
export const pathOf = (page) => new URL(page.url()).pathname;

/**
 * Runs `step` (a wait); on failure, rethrows with where the browser is and what it shows, so a
 * failing run against an unfinished Worker says more than "Timeout 5000ms exceeded".
 */
export async function explain(page, what, step) {
  try {
    return await step();
  } catch (err) {
    let text = "";
    try {
      text = (await page.locator("body").innerText({ timeout: 1000 })).replace(/\s+/g, " ").slice(0, 300);
    } catch {
      text = "(no body)";
    }
    throw new Error(`${what}: ${err.message.split("\n")[0]}\n  browser at: ${page.url()}\n  page says: ${text}`, { cause: err });
  }
}

/** Waits until the login page has loaded its interaction (the form is enabled). */
export async function waitForLoginForm(page) {
  await explain(page, "expected the login page with its form enabled", async () => {
    await page.waitForURL((u) => u.pathname === "/auth/ui/login.html");
    await page.locator("#username:enabled").waitFor();
  });
}

/**
 * Revokes every remembered consent (Grant) of `user` through the admin API, so that the next
 * sign-in sees the consent page again (an Allow is remembered across tests of one Worker).
 */
export async function forgetConsent(w, user = USERNAME) {
  const res = await w.admin("GET", `/Grant?user=${encodeURIComponent(user)}`);
  assert.equal(res.status, 200, `GET /Grant?user=${user}`);
  for (const { resource } of (await json(res)).entry) {
    assert.equal((await w.admin("DELETE", `/Grant/${resource.id}`)).status, 200);
  }
}

/** Waits until the consent page has rendered its scopes and buttons. */
export async function waitForConsent(page) {
  await explain(page, "expected the consent page with its buttons", async () => {
    await page.waitForURL((u) => u.pathname === "/auth/ui/consent.html");
    await page.getByRole("button", { name: "Allow" }).waitFor();
  });
}

/** Fills and submits the login form; resolves once the browser has left the login page. */
export async function signIn(page, username = USERNAME, password = PASSWORD) {
  await waitForLoginForm(page);
  await page.getByLabel("Username or email").fill(username);
  await page.getByLabel("Password").fill(password);
  await explain(page, "expected to leave the login page after signing in", () =>
    Promise.all([
      page.waitForURL((u) => u.pathname !== "/auth/ui/login.html"),
      page.getByRole("button", { name: "Sign in" }).click(),
    ]),
  );
}

/** Clicks Allow or Deny on the consent page; resolves when the browser reached the callback. */
export async function decide(page, callback, decision) {
  await waitForConsent(page);
  await explain(page, `expected the client's callback after ${decision}`, () =>
    Promise.all([
      page.waitForURL((u) => u.href.startsWith(callback.redirectUri)),
      page.getByRole("button", { name: decision === "allow" ? "Allow" : "Deny" }).click(),
    ]),
  );
  return Object.fromEntries(new URL(page.url()).searchParams);
}

/**
 * Walks authorize -> login -> consent (Allow) -> callback in `page` and returns
 * `{ code, state, request }` (request = the authorizeRequest used).
 */
export async function obtainCode(w, page, callback, overrides = {}) {
  const request = authorizeRequest(w, callback.redirectUri, overrides);
  await page.goto(request.url);
  await signIn(page);
  const query = await decide(page, callback, "allow");
  assert.equal(query.state, request.state, "callback state");
  assert.ok(query.code, `callback without code: ${JSON.stringify(query)}`);
  return { code: query.code, state: query.state, request };
}

/** POST /auth/token as web-app (Basic auth). Returns `{ status, body }`. */
export async function tokenRequest(w, params) {
  const res = await w.fetch("/auth/token", {
    method: "POST",
    headers: { ...FORM, authorization: basicAuth(CLIENT_ID, CLIENT_SECRET) },
    body: form(params),
  });
  return { status: res.status, body: await json(res), headers: res.headers };
}

export function exchangeCode(w, { code, redirectUri, verifier }) {
  return tokenRequest(w, { grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: verifier });
}

export function refresh(w, refreshToken) {
  return tokenRequest(w, { grant_type: "refresh_token", refresh_token: refreshToken });
}

/** Asserts a 400 `invalid_grant` token-endpoint answer. */
export function assertInvalidGrant({ status, body }, what) {
  assert.equal(status, 400, `${what}: expected 400, got ${status}: ${JSON.stringify(body)}`);
  assert.equal(body.error, "invalid_grant", `${what}: ${JSON.stringify(body)}`);
}

/** GET /Patient with a bearer token; returns the status (body drained). */
export async function patientStatus(w, accessToken) {
  const res = await w.fetch("/Patient", { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status;
}
