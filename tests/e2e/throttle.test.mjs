// Login throttling in workerd (issue 7 item 3): a password-guessing run against the built Worker
// is slowed to a few checks per lockout (429 + Retry-After, growing), the real user gets in once
// the lock is over, and one address guessing across many usernames is locked by itself. Short
// windows come from the LOGIN_* vars so the test takes seconds.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, basicAuth, form, json, FORM } from "./harness.mjs";

let w;
const APP = basicAuth("myapp", "appsecret");

before(async () => {
  w = await startWorker({
    vars: {
      LOGIN_MAX_FAILURES: "3",
      LOGIN_ADDRESS_MAX_FAILURES: "6",
      LOGIN_WINDOW: "60",
      LOGIN_LOCKOUT: "2",
      LOGIN_LOCKOUT_MAX: "4",
      PBKDF2_ITERATIONS: "1000",
    },
  });
  const put = async (p, b) => assert.ok([200, 201].includes((await w.admin("PUT", p, b)).status), p);
  await put("/Client/myapp", { secret: "appsecret", grant_types: ["password"] });
  await put("/User/john", { email: "john@example.com", password: "pass123" });
  await put("/User/jane", { email: "jane@example.com", password: "pass123" });
});
after(async () => {
  await w?.dispose();
});

const grant = (username, password, ip) =>
  w.fetch("/auth/token", {
    method: "POST",
    headers: { ...FORM, authorization: APP, ...(ip ? { "cf-connecting-ip": ip } : {}) },
    body: form({ grant_type: "password", username, password }),
  });
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

async function throttled(res) {
  assert.equal(res.status, 429);
  const body = await json(res);
  assert.equal(body.error, "slow_down");
  assert.match(body.error_description, /too many failed sign-in attempts/);
  const wait = Number(res.headers.get("retry-after"));
  assert.ok(Number.isInteger(wait) && wait >= 1, `Retry-After ${res.headers.get("retry-after")}`);
  return wait;
}

test("a guessing run is slowed to a few checks per lockout; the real user gets in after it", async () => {
  // 20 guesses as fast as they go. The first 3 are checked; then the account is locked for 2 s,
  // and everything until then is refused unchecked. (On a loaded machine the run may outlast
  // the first lock; then at most 3 more get checked before the next, longer one.)
  const statuses = [];
  let firstWait;
  for (let i = 0; i < 20; i++) {
    const r = await grant("john", `guess-${i}`);
    statuses.push(r.status);
    if (r.status === 429 && firstWait === undefined) firstWait = await throttled(r);
    else await r.arrayBuffer();
  }
  assert.deepEqual(statuses.slice(0, 4), [400, 400, 400, 429], statuses.join(","));
  const checked = statuses.filter((s) => s === 400).length;
  assert.ok(checked <= 6, `${checked} of 20 guesses were checked: ${statuses.join(",")}`);
  assert.ok(statuses.every((s) => s === 400 || s === 429), statuses.join(","));
  assert.ok(firstWait >= 1 && firstWait <= 2, `first Retry-After ${firstWait}`);

  // Locked: the right password is refused too, for as long as Retry-After says.
  const r = await grant("john@example.com", "pass123");
  const reset = r.status === 200; // the run outlasted the lock and this got in, which resets it
  if (reset) await r.arrayBuffer();
  else await sleep((await throttled(r)) + 1);

  // The next lockout is longer (doubling, capped by LOGIN_LOCKOUT_MAX = 4).
  for (let i = 0; i < 3; i++) assert.equal((await grant("john", "wrong")).status, 400);
  const second = await throttled(await grant("john", "pass123"));
  if (!reset) assert.ok(second >= 3 && second > firstWait, `second Retry-After ${second} after ${firstWait}`);
  await sleep(second + 1);

  // After the lock, the real user signs in.
  const ok = await grant("john@example.com", "pass123");
  assert.equal(ok.status, 200);
  assert.ok((await json(ok)).access_token);
});

test("one address guessing across many usernames is locked, other addresses are not", async () => {
  for (let i = 0; i < 6; i++) {
    const r = await grant(`nobody-${i}@example.com`, "123456", "198.51.100.7");
    assert.equal(r.status, 400, `guess ${i}`);
    await r.arrayBuffer();
  }
  const wait = await throttled(await grant("jane", "pass123", "198.51.100.7"));
  const elsewhere = await grant("jane", "pass123", "203.0.113.5");
  assert.equal(elsewhere.status, 200, await elsewhere.text());
  await sleep(wait + 1);
  assert.equal((await grant("jane", "pass123", "198.51.100.7")).status, 200);
});

test("successful sign-ins are never throttled", async () => {
  for (let i = 0; i < 15; i++) {
    const r = await grant("jane@example.com", "pass123", "192.0.2.1");
    assert.equal(r.status, 200, `sign-in ${i}`);
    await r.arrayBuffer();
  }
});
