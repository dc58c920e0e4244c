// Browser tests of issue 5, part 1: the verifier package (build/verifier, served by the Worker at
// /app/pkg/) in a real headless Chromium. Tokens come from the built Worker in workerd (client
// credentials, and an authorization code flow for the id_token) or are signed here in node with
// keys whose JWKS is handed to Verifier.fromJwks. One test per error code.
//
//   scripts/build-browser.sh && make build
//   node --test --test-concurrency=1 tests/browser/verifier.test.mjs
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign as nodeSign, createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { startWorker, basicAuth, decodeJwt, ROOT } from "../e2e/harness.mjs";
import {
  launchBrowser,
  openPage,
  startCallbackServer,
  setupFixtures,
  obtainCode,
  exchangeCode,
  CLIENT_ID,
} from "./helpers.mjs";

const TEST = { timeout: 30_000 };
const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

/** A key pair made in node: `{ kid, alg, privateKey, jwk }` (jwk: public, with kid and alg). */
function makeKey(kind, kid) {
  const { privateKey, publicKey } =
    kind === "EdDSA" ? generateKeyPairSync("ed25519") : generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = { ...publicKey.export({ format: "jwk" }), kid, alg: kind, use: "sig" };
  return { kid, alg: kind, privateKey, jwk };
}

/** A compact JWS over `claims` with `key`; `header` entries override the defaults. */
function signJwt(key, claims, header = {}) {
  const h = { alg: key.alg, typ: "JWT", kid: key.kid, ...header };
  const input = `${b64url(h)}.${b64url(claims)}`;
  const sig =
    key.alg === "EdDSA"
      ? nodeSign(null, Buffer.from(input), key.privateKey)
      : nodeSign("sha256", Buffer.from(input), { key: key.privateKey, dsaEncoding: "ieee-p1363" });
  return `${input}.${sig.toString("base64url")}`;
}

/** Changes one character in the middle of the signature. */
function flipSignature(token) {
  const [h, p, s] = token.split(".");
  const i = Math.floor(s.length / 2);
  return `${h}.${p}.${s.slice(0, i)}${s[i] === "A" ? "B" : "A"}${s.slice(i + 1)}`;
}

describe("browser: the verifier package in headless Chromium", () => {
  let w;
  let callback;
  let browser;
  let page;
  let errors;
  let requests;
  let jwks;
  let accessToken; // client_credentials, from the Worker
  const ISS = "https://issuer.test";
  const AUD = "https://api.test";
  const ed = makeKey("EdDSA", "node-ed");
  const es = makeKey("ES256", "node-es");
  const localJwks = { keys: [ed.jwk, es.jwk] };
  const localClaims = (extra = {}) => ({ iss: ISS, aud: AUD, sub: "alice", iat: now(), exp: now() + 600, ...extra });

  /**
   * Runs `Verifier.fromJwks(jwks, options).verify(token, verifyOptions)` in the page and returns
   * `{ ok: claims }` or `{ code, name, message, isError }`.
   */
  const verifyInPage = (token, keys, options, verifyOptions) =>
    page.evaluate(
      async ({ token, keys, options, verifyOptions }) => {
        try {
          const v = window.pkg.Verifier.fromJwks(keys, options);
          return { ok: await v.verify(token, verifyOptions) };
        } catch (e) {
          return { code: e.code, name: e.name, message: e.message, isError: e instanceof Error };
        }
      },
      { token, keys, options, verifyOptions },
    );

  const expectCode = async (promise, code) => {
    const r = await promise;
    assert.equal(r.code, code, `expected ${code}, got ${JSON.stringify(r)}`);
    assert.equal(r.isError, true, "not an Error");
    assert.equal(r.name, "VerifyError");
    assert.ok(r.message.length > 0);
  };

  before(async () => {
    assert.ok(
      existsSync(path.join(ROOT, "www/app/pkg/edge_authorizer_bg.wasm")),
      "www/app/pkg/ missing: run scripts/build-browser.sh (make build)",
    );
    const started = await Promise.allSettled([startWorker(), startCallbackServer(), launchBrowser()]);
    [w, callback, browser] = started.map((s) => (s.status === "fulfilled" ? s.value : undefined));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;

    await setupFixtures(w, callback.redirectUri);
    for (const [id, lifetime] of [["svc", 3600], ["short", 1]]) {
      const res = await w.admin("PUT", `/Client/${id}`, {
        secret: "svc-secret",
        grant_types: ["client_credentials"],
        auth: { client_credentials: { access_token_expiration: lifetime } },
      });
      assert.ok([200, 201].includes(res.status), `PUT /Client/${id}: ${res.status}`);
    }
    accessToken = await clientToken("svc");
    jwks = await (await w.fetch("/.well-known/jwks.json")).json();

    ({ page, errors, requests } = await openPage(browser));
    await page.goto(`${w.url}/app/`);
    await page.waitForSelector("body[data-ready=true]");
    await page.evaluate(async () => {
      const m = await import("/app/pkg/edge_authorizer.js");
      await m.default();
      window.pkg = m;
    });
  });

  after(async () => {
    await Promise.allSettled([browser?.close(), callback?.dispose(), w?.dispose()]);
  });

  async function clientToken(id) {
    const res = await w.fetch("/auth/token", {
      method: "POST",
      headers: { authorization: basicAuth(id, "svc-secret"), "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials",
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.access_token;
  }

  test("fromJwks verifies the Worker's access token and returns its claims", TEST, async () => {
    const r = await verifyInPage(accessToken, jwks, { issuer: w.url, audience: w.url, typ: "at+jwt" });
    assert.deepEqual(r.ok, decodeJwt(accessToken).payload);
    assert.equal(r.ok.client_id, "svc");
    // The JWKS may be given as JSON text too.
    const r2 = await verifyInPage(accessToken, JSON.stringify(jwks), { issuer: w.url, audience: w.url });
    assert.equal(r2.ok?.sub, "svc");
    assert.deepEqual(errors, []);
  });

  test("fromIssuer: discovery + JWKS, the id_token of a code flow, per-call audience and typ", TEST, async () => {
    const context = await browser.newContext();
    try {
      const flowPage = await context.newPage();
      const { code, request } = await obtainCode(w, flowPage, callback);
      const { status, body } = await exchangeCode(w, { code, redirectUri: callback.redirectUri, verifier: request.verifier });
      assert.equal(status, 200, JSON.stringify(body));
      const r = await page.evaluate(
        async ({ issuer, idToken, at }) => {
          const v = await window.pkg.Verifier.fromIssuer(issuer, { audience: "web-app" });
          const out = {
            id: await v.verify(idToken),
            at: await v.verify(at, { audience: issuer, typ: "at+jwt" }),
            issuer: v.issuer,
            jwksUri: v.metadata.jwks_uri,
            kids: v.kids,
          };
          try {
            await v.verify(idToken, { typ: "at+jwt" });
          } catch (e) {
            out.typError = e.code;
          }
          try {
            await v.verify(at);
          } catch (e) {
            out.atAsIdToken = e.code;
          }
          return out;
        },
        { issuer: w.url, idToken: body.id_token, at: body.access_token },
      );
      assert.equal(r.id.nonce, request.nonce);
      assert.equal(r.id.sub, "john");
      assert.deepEqual([r.id.aud].flat(), [CLIENT_ID]);
      assert.equal(r.at.sub, "john");
      assert.equal(r.issuer, w.url);
      assert.equal(r.jwksUri, `${w.url}/.well-known/jwks.json`);
      assert.deepEqual(r.kids, jwks.keys.map((k) => k.kid));
      assert.equal(r.typError, "wrong_type", "an id_token is not an at+jwt");
      assert.equal(r.atAsIdToken, "wrong_audience", "the access token is not for the client");
    } finally {
      await context.close();
    }
  });

  test("fromIssuer: caches discovery; refetches the JWKS on an unknown kid (once per cooldown); picks up a rotated key", TEST, async () => {
    const stranger = signJwt(ed, { ...localClaims(), iss: w.url, aud: w.url });
    const count = () => requests.filter((u) => u.endsWith("/.well-known/jwks.json")).length;
    const discovery = () => requests.filter((u) => u.endsWith("/.well-known/openid-configuration")).length;
    await page.evaluate(async (issuer) => {
      window.eager = await window.pkg.Verifier.fromIssuer(issuer, { audience: issuer, refetchCooldown: 0 });
      window.lazy = await window.pkg.Verifier.fromIssuer(issuer, { audience: issuer });
    }, w.url);
    const [jwksBefore, discoveryBefore] = [count(), discovery()];
    const codes = await page.evaluate(async (token) => {
      const out = [];
      for (const v of [window.eager, window.lazy]) {
        try {
          await v.verify(token);
          out.push("ok");
        } catch (e) {
          out.push(e.code);
        }
      }
      return out;
    }, stranger);
    assert.deepEqual(codes, ["unknown_key", "unknown_key"]);
    assert.equal(count() - jwksBefore, 1, "one refetch (cooldown 0), none within the default cooldown");
    assert.equal(discovery(), discoveryBefore, "discovery is cached");
    // Known keys still verify without fetching.
    const ok = await page.evaluate((t) => window.lazy.verify(t).then((c) => c.sub), accessToken);
    assert.equal(ok, "svc");
    assert.equal(count() - jwksBefore, 1);

    // Key rotation: the issuer now publishes the new key; the next unknown kid fetches it, and the
    // token verifies, for every verifier of that issuer in the page.
    await page.route("**/.well-known/jwks.json", (route) =>
      route.fulfill({ contentType: "application/json", body: JSON.stringify({ keys: [...jwks.keys, ed.jwk] }) }),
    );
    try {
      const subs = await page.evaluate(async (token) => [(await window.eager.verify(token)).sub, (await window.lazy.verify(token)).sub], stranger);
      assert.deepEqual(subs, ["alice", "alice"]);
      assert.equal(count() - jwksBefore, 2);
    } finally {
      await page.unroute("**/.well-known/jwks.json");
    }
  });

  test("fromIssuer: an issuer that cannot be reached is 'unavailable'", TEST, async () => {
    const r = await page.evaluate(async (issuer) => {
      try {
        await window.pkg.Verifier.fromIssuer(issuer, { audience: "x" });
        return "resolved";
      } catch (e) {
        return e.code;
      }
    }, `${w.url}/no-such-issuer`);
    assert.equal(r, "unavailable");
  });

  test("ES256 and EdDSA tokens signed in node verify against their JWKS", TEST, async () => {
    for (const key of [ed, es]) {
      const claims = localClaims({ scope: "read" });
      const r = await verifyInPage(signJwt(key, claims), localJwks, { issuer: ISS, audience: AUD });
      assert.deepEqual(r.ok, claims, key.alg);
    }
    // A key without kid gets its RFC 7638 thumbprint as kid, as in the Worker.
    const { kid, alg, use, ...bare } = ed.jwk;
    const thumb = createHash("sha256").update(JSON.stringify({ crv: bare.crv, kty: bare.kty, x: bare.x })).digest("base64url");
    const r = await verifyInPage(signJwt({ ...ed, kid: thumb }, localClaims()), { keys: [bare] }, { issuer: ISS, audience: AUD });
    assert.equal(r.ok?.sub, "alice", JSON.stringify(r));
  });

  test("expired: a fake clock past exp, the clock-skew option, and a real 1-second token", TEST, async () => {
    const { exp } = decodeJwt(accessToken).payload;
    const opts = { issuer: w.url, audience: w.url };
    await expectCode(verifyInPage(accessToken, jwks, { ...opts, now: exp + 31 }), "expired");
    assert.ok((await verifyInPage(accessToken, jwks, { ...opts, now: exp + 29 })).ok, "within the default 30 s skew");
    await expectCode(verifyInPage(accessToken, jwks, { ...opts, now: exp + 5, clockSkew: 0 }), "expired");
    assert.ok((await verifyInPage(accessToken, jwks, { ...opts, now: exp + 100, clockSkew: 120 })).ok);
    await expectCode(verifyInPage(accessToken, jwks, opts, { now: exp + 31 }), "expired");

    const short = await clientToken("short");
    await new Promise((r) => setTimeout(r, 2100));
    await expectCode(verifyInPage(short, jwks, { ...opts, clockSkew: 0 }), "expired");
  });

  test("not_yet_valid: nbf in the future", TEST, async () => {
    const token = signJwt(ed, localClaims({ nbf: now() + 3600 }));
    await expectCode(verifyInPage(token, localJwks, { issuer: ISS, audience: AUD }), "not_yet_valid");
    const soon = signJwt(es, localClaims({ nbf: now() + 10 }));
    assert.ok((await verifyInPage(soon, localJwks, { issuer: ISS, audience: AUD })).ok, "within the skew");
  });

  test("bad_signature: one signature character flipped (EdDSA from the Worker, ES256 from node)", TEST, async () => {
    await expectCode(verifyInPage(flipSignature(accessToken), jwks, { issuer: w.url, audience: w.url }), "bad_signature");
    const es256 = signJwt(es, localClaims());
    await expectCode(verifyInPage(flipSignature(es256), localJwks, { issuer: ISS, audience: AUD }), "bad_signature");
    // A payload changed under a valid signature.
    const [h, , s] = accessToken.split(".");
    const forged = `${h}.${b64url({ ...decodeJwt(accessToken).payload, sub: "root" })}.${s}`;
    await expectCode(verifyInPage(forged, jwks, { issuer: w.url, audience: w.url }), "bad_signature");
  });

  test("wrong_issuer", TEST, async () => {
    await expectCode(verifyInPage(accessToken, jwks, { issuer: "https://other.example", audience: w.url }), "wrong_issuer");
  });

  test("wrong_audience (also per call)", TEST, async () => {
    await expectCode(verifyInPage(accessToken, jwks, { issuer: w.url, audience: "https://other.example" }), "wrong_audience");
    await expectCode(verifyInPage(accessToken, jwks, { issuer: w.url, audience: w.url }, { audience: "x" }), "wrong_audience");
  });

  test("unknown_key: a JWKS without the token's kid, and a token without kid", TEST, async () => {
    await expectCode(verifyInPage(accessToken, localJwks, { issuer: w.url, audience: w.url }), "unknown_key");
    const noKid = signJwt(ed, localClaims(), { kid: undefined });
    await expectCode(verifyInPage(noKid, localJwks, { issuer: ISS, audience: AUD }), "unknown_key");
  });

  test("malformed: garbage, empty, bad base64, oversize, a jwk header", TEST, async () => {
    const opts = { issuer: ISS, audience: AUD };
    for (const token of ["garbage", "", "a.b.c", "eyJhbGciOiJFZERTQSJ9.!!!.sig", "x".repeat(9000)]) {
      await expectCode(verifyInPage(token, localJwks, opts), "malformed");
    }
    // A jwk header (a key named by the token itself) is refused too.
    await expectCode(verifyInPage(signJwt(ed, localClaims(), { jwk: ed.jwk }), localJwks, opts), "malformed");
  });

  test("alg_not_allowed: none, HS256 with the key's kid, ES256 header on an Ed25519 key", TEST, async () => {
    const opts = { issuer: w.url, audience: w.url };
    const { kid } = decodeJwt(accessToken).header;
    const payload = accessToken.split(".")[1];
    const none = `${b64url({ alg: "none", typ: "at+jwt", kid })}.${payload}.`;
    await expectCode(verifyInPage(none, jwks, opts), "alg_not_allowed");
    const hsInput = `${b64url({ alg: "HS256", typ: "at+jwt", kid })}.${payload}`;
    // The classic confusion attack: HMAC keyed with the public key's bytes.
    const hs = `${hsInput}.${createHmac("sha256", Buffer.from(jwks.keys[0].x, "base64url")).update(hsInput).digest("base64url")}`;
    await expectCode(verifyInPage(hs, jwks, opts), "alg_not_allowed");
    const swapped = signJwt(es, localClaims(), { kid: ed.kid });
    await expectCode(verifyInPage(swapped, localJwks, { issuer: ISS, audience: AUD }), "alg_not_allowed");
  });

  test("bad options throw an Error with code invalid_options", TEST, async () => {
    const r = await page.evaluate((keys) => {
      const out = [];
      for (const [k, o] of [
        [keys, { issuer: "x" }],
        [keys, { audience: "x" }],
        ["not json", { issuer: "x", audience: "y" }],
        [keys, { issuer: "x", audience: "y", clockSkew: -1 }],
      ]) {
        try {
          window.pkg.Verifier.fromJwks(k, o);
          out.push("ok");
        } catch (e) {
          out.push(e.code);
        }
      }
      return out;
    }, localJwks);
    assert.deepEqual(r, ["invalid_options", "invalid_options", "invalid_options", "invalid_options"]);
  });

  test("createPkce and authorizeUrl", TEST, async () => {
    const r = await page.evaluate(() => {
      const a = window.pkg.createPkce();
      const b = window.pkg.createPkce();
      const url = window.pkg.authorizeUrl({
        issuer: "https://auth.example/",
        clientId: "spa",
        redirectUri: "https://app.example/cb?x=1",
        scope: "openid profile",
        state: "s t",
        nonce: "n",
        codeChallenge: a.challenge,
        extra: { prompt: "login" },
      });
      const url2 = window.pkg.authorizeUrl({ authorizationEndpoint: "https://a.example/authorize?tenant=1", clientId: "c", redirectUri: "https://r" });
      let missing;
      try {
        window.pkg.authorizeUrl({ issuer: "https://a" });
      } catch (e) {
        missing = e.code;
      }
      return { a, b, url, url2, missing, challenge: window.pkg.pkceChallenge(a.verifier) };
    });
    assert.match(r.a.verifier, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(r.a.verifier, r.b.verifier);
    assert.equal(r.a.challenge, createHash("sha256").update(r.a.verifier).digest("base64url"));
    assert.equal(r.a.method, "S256");
    assert.equal(r.challenge, r.a.challenge);
    const u = new URL(r.url);
    assert.equal(u.origin + u.pathname, "https://auth.example/auth/authorize");
    assert.deepEqual(Object.fromEntries(u.searchParams), {
      response_type: "code",
      client_id: "spa",
      redirect_uri: "https://app.example/cb?x=1",
      scope: "openid profile",
      state: "s t",
      nonce: "n",
      code_challenge: r.a.challenge,
      code_challenge_method: "S256",
      prompt: "login",
    });
    assert.equal(r.url2, "https://a.example/authorize?tenant=1&response_type=code&client_id=c&redirect_uri=https%3A%2F%2Fr");
    assert.equal(r.missing, "invalid_options");
  });

  test("no console errors in the page", () => {
    // The unreachable-issuer test's 404/401 is logged by Chromium as a failed resource load.
    assert.deepEqual(errors.filter((e) => !e.includes("no-such-issuer")), []);
  });
});
