// Shared helpers of the Aidbox replay tests (tests/aidbox/*.test.mjs): each test file replays the
// examples of one page of Aidbox's documentation (HealthSamurai/documentation) against the built
// Worker in workerd. Aidbox's examples are YAML; the admin API takes JSON only (docs/reference.md "Admin
// API"), so each resource is the doc's YAML turned into the same JSON, field for field.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { startWorker, startOrigin, basicAuth, json, FORM, JSON_CT, form } from "../e2e/harness.mjs";

export { basicAuth, json, FORM, JSON_CT, form };

/** A Worker in front of a recording origin. */
export async function boot(options = {}) {
  const origin = await startOrigin();
  const w = await startWorker({ originUrl: origin.url, ...options });
  return {
    w,
    origin,
    dispose: async () => {
      await w.dispose();
      await origin.dispose();
    },
  };
}

/** An admin write as root (PUT/POST/PATCH); fails the test unless 200/201. Returns the body. */
export async function admin(w, method, path, body) {
  const res = await w.admin(method, path, body);
  const text = await res.text();
  assert.ok([200, 201].includes(res.status), `${method} ${path}: ${res.status} ${text}`);
  // An admin type this build does not know is just a path: root's write would reach the origin.
  assert.notEqual(res.headers.get("x-from-origin"), "yes", `${method} ${path}: went to the origin, not the admin API`);
  return text ? JSON.parse(text) : undefined;
}

/** An admin write that must be refused; returns { status, body }. */
export async function adminRefused(w, method, path, body, status = 422) {
  const res = await w.admin(method, path, body);
  const text = await res.text();
  assert.equal(res.status, status, `${method} ${path}: expected ${status}, got ${res.status} ${text}`);
  return { status: res.status, text };
}

/** A request as `auth` (a full Authorization header value, or undefined for anonymous). */
export function call(ctx, path, { method = "GET", auth, body, headers = {} } = {}) {
  ctx.origin.reset();
  const h = { ...headers };
  if (auth) h.authorization = auth;
  let b;
  if (body !== undefined) {
    b = typeof body === "string" ? body : JSON.stringify(body);
    h["content-type"] ??= "application/json";
  }
  return ctx.w.fetch(path, { method, headers: h, body: b });
}

/** The request reached the origin: its 200 came back. */
export async function assertForwarded(ctx, res, what) {
  const text = await res.text();
  assert.equal(res.status, 200, `${what}: expected the origin's 200, got ${res.status}: ${text.slice(0, 400)}`);
  assert.equal(res.headers.get("x-from-origin"), "yes", `${what}: not from the origin`);
  assert.equal(ctx.origin.requests.length, 1, `${what}: origin not reached once`);
}

/** The request was refused with `status` (default 403) and never reached the origin. */
export async function assertRefused(ctx, res, what, status = 403) {
  const text = await res.text();
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status}: ${text.slice(0, 400)}`);
  assert.equal(ctx.origin.requests.length, 0, `${what}: reached the origin`);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** POST /auth/token with a form body (or a JSON body when `asJson`). Returns { res, body }. */
export async function token(w, params, { auth, asJson = false } = {}) {
  const headers = { ...(asJson ? JSON_CT : FORM), ...(auth ? { authorization: auth } : {}) };
  const res = await w.fetch("/auth/token", {
    method: "POST",
    headers,
    body: asJson ? JSON.stringify(params) : form(params),
  });
  const body = await json(res);
  return { res, body };
}

/** An access token for `username` through the password grant; fails the test otherwise. */
export async function passwordToken(w, client, secret, username, password) {
  const { res, body } = await token(w, { grant_type: "password", username, password }, { auth: basicAuth(client, secret) });
  assert.equal(res.status, 200, `password grant for ${username}: ${JSON.stringify(body)}`);
  return body.access_token;
}

export const bearer = (t) => `Bearer ${t}`;

/** An HS256 JWT signed with `secret` (what jwtbuilder.jamiekurtz.com makes in Aidbox's tutorials). */
export function hs256(payload, secret, header = { typ: "JWT", alg: "HS256" }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

export const nowSecs = () => Math.floor(Date.now() / 1000);

/** The body of an OperationOutcome error, as Aidbox answers on FHIR paths. */
export function assertOperationOutcome(body, code, what) {
  assert.equal(typeof body, "object", `${what}: not JSON: ${body}`);
  assert.equal(body.resourceType, "OperationOutcome", `${what}: ${JSON.stringify(body)}`);
  assert.ok(Array.isArray(body.issue) && body.issue.length > 0, `${what}: no issue`);
  if (code) assert.equal(body.issue[0].code, code, `${what}: ${JSON.stringify(body)}`);
}
