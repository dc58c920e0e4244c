// Helpers for the attack corpus (tests/e2e/attacks*.test.mjs): forging JWTs in node, raw HTTP
// for bytes `fetch` will not send, the sign-in flow over plain HTTP, and the assertions every
// refusal shares (exact status, RFC 6749 5.2 body, RFC 6750 challenge, no-store).
import assert from "node:assert/strict";
import net from "node:net";
import { createHash, createHmac, createPrivateKey, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { form, FORM, json } from "./harness.mjs";

export const b64url = (data) => Buffer.from(data).toString("base64url");
export const nowSecs = () => Math.floor(Date.now() / 1000);

/** A DPoP key pair (RFC 9449): ES256, its public JWK and RFC 7638 thumbprint (`cnf.jkt`). */
export function dpopKey() {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  const thumbprint = createHash("sha256")
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest("base64url");
  return { privateKey, jwk, thumbprint };
}

/** A JWK-shaped private Ed25519 key that is not the Worker's. */
export function otherEd25519Jwk() {
  const { privateKey } = generateKeyPairSync("ed25519");
  return privateKey.export({ format: "jwk" });
}

/**
 * Builds a compact JWS. `header` and `payload` are objects (or raw strings, used as the
 * already-encoded segment); `signer` is one of:
 *   { ed25519: privateJwk }    EdDSA signature
 *   { hs256: secretBytes }     HMAC-SHA256 with that secret
 *   { es256: privateKeyObject }
 *   { raw: "segment" }          this exact third segment ("" for an unsigned token)
 */
export function forge(header, payload, signer) {
  const seg = (v) => (typeof v === "string" ? v : b64url(JSON.stringify(v)));
  const input = `${seg(header)}.${seg(payload)}`;
  let sig;
  if ("raw" in signer) sig = signer.raw;
  else if (signer.ed25519) sig = b64url(sign(null, Buffer.from(input), createPrivateKey({ key: signer.ed25519, format: "jwk" })));
  else if (signer.hs256) sig = b64url(createHmac("sha256", signer.hs256).update(input).digest());
  else if (signer.es256) sig = b64url(sign("sha256", Buffer.from(input), { key: signer.es256, dsaEncoding: "ieee-p1363" }));
  else throw new Error("unknown signer");
  return `${input}.${sig}`;
}

/**
 * Raw HTTP/1.1 to the Worker: `head` is the request line and headers as a Buffer or string
 * (CRLF-separated, without the final blank line), `body` a Buffer. Returns
 * { status, headers (lowercased names), body (string) }. For bytes `fetch` refuses to send.
 */
export function rawHttp(url, { method = "POST", path = "/", headers = [], body = Buffer.alloc(0) }) {
  const { hostname, port } = new URL(url);
  const lines = [Buffer.from(`${method} ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\nconnection: close\r\n`)];
  for (const h of headers) lines.push(Buffer.concat([Buffer.isBuffer(h) ? h : Buffer.from(h, "latin1"), Buffer.from("\r\n")]));
  lines.push(Buffer.from(`content-length: ${body.length}\r\n\r\n`));
  lines.push(body);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname);
    const chunks = [];
    sock.setTimeout(15_000, () => sock.destroy(new Error("raw HTTP timed out")));
    sock.on("data", (c) => chunks.push(c));
    sock.on("error", reject);
    sock.on("end", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const [head, ...rest] = text.split("\r\n\r\n");
      const [statusLine, ...hl] = head.split("\r\n");
      const headersOut = {};
      for (const l of hl) {
        const i = l.indexOf(":");
        headersOut[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      let bodyText = rest.join("\r\n\r\n");
      if (/chunked/i.test(headersOut["transfer-encoding"] ?? "")) bodyText = dechunk(bodyText);
      resolve({ status: Number(statusLine.split(" ")[1]), headers: headersOut, body: bodyText });
    });
    sock.write(Buffer.concat(lines));
  });
}

function dechunk(s) {
  let out = "";
  let i = 0;
  for (;;) {
    const nl = s.indexOf("\r\n", i);
    if (nl < 0) break;
    const n = parseInt(s.slice(i, nl), 16);
    if (!n) break;
    out += s.slice(nl + 2, nl + 2 + n);
    i = nl + 2 + n + 2;
  }
  return out;
}

/**
 * Asserts an RFC 6749 5.2 error: exact status and `error`, a string `error_description`,
 * `Cache-Control: no-store`. Works on fetch Responses and rawHttp results. Returns the body.
 */
export async function assertError(res, status, error) {
  const isRaw = typeof res.body === "string";
  const text = isRaw ? res.body : await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`expected an RFC-shaped JSON error ${status} ${error}, got ${res.status}: ${text.slice(0, 300)}`);
  }
  assert.equal(res.status, status, `expected ${status} ${error}, got ${res.status}: ${text.slice(0, 300)}`);
  assert.equal(body.error, error, text);
  assert.equal(typeof body.error_description, "string", text);
  const cc = isRaw ? res.headers["cache-control"] : res.headers.get("cache-control");
  assert.match(cc ?? "", /no-store/, "error response may be cached");
  return body;
}

/** The RFC 6750 3 challenge of a refused bearer token. */
export function assertInvalidTokenChallenge(res) {
  const h = res.headers.get("www-authenticate") ?? "";
  assert.match(h, /^Bearer realm="edge-authorizer", error="invalid_token"/, `WWW-Authenticate: ${h}`);
}

/** The challenge of refused Basic credentials. */
export function assertBasicChallenge(res) {
  const h = typeof res.headers.get === "function" ? res.headers.get("www-authenticate") : res.headers["www-authenticate"];
  assert.match(h ?? "", /^Basic realm="edge-authorizer"/, `WWW-Authenticate: ${h}`);
}

/** PUT as root; fails the test unless 200/201. */
export async function put(w, path, body) {
  const res = await w.admin("PUT", path, body);
  const text = await res.text();
  assert.ok([200, 201].includes(res.status), `PUT ${path}: ${res.status} ${text}`);
}

/** RFC 7636 S256 pair. */
export function pkce() {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

/** Cookie pairs (`name=value`) from a response's Set-Cookie headers. */
export function cookies(res) {
  return Object.fromEntries(
    res.headers.getSetCookie().map((c) => {
      const pair = c.split(";")[0];
      const i = pair.indexOf("=");
      return [pair.slice(0, i), pair.slice(i + 1)];
    }),
  );
}

export const cookieHeader = (jar) =>
  Object.entries(jar)
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}=${v}`)
    .join("; ");

/** `GET /auth/interaction?query`: the CSRF token and the cookie jar holding it. */
export async function interaction(w, query, jar = {}) {
  const cookie = cookieHeader(jar);
  const res = await w.fetch(`/auth/interaction?${query}`, { headers: cookie ? { cookie } : {} });
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  return { csrf: body.csrf, jar: { ...jar, ...cookies(res) }, body };
}

/** `POST /auth/login` the way the login page posts it. */
export function postLogin(w, { query, csrf, jar, username = "john", password = "pass123", headers = {} }) {
  return w.fetch("/auth/login", {
    method: "POST",
    headers: { ...FORM, cookie: cookieHeader(jar), ...headers },
    body: form({ username, password, csrf, query }),
  });
}

/** `POST /auth/consent`. */
export function postConsent(w, { query, csrf, jar, decision = "allow", headers = {} }) {
  return w.fetch("/auth/consent", {
    method: "POST",
    headers: { ...FORM, cookie: cookieHeader(jar), ...headers },
    body: form({ csrf, query, decision }),
  });
}

/** An authorize query string; `null` values drop a parameter. */
export function authorizeQuery(params) {
  const p = { ...params };
  for (const [k, v] of Object.entries(p)) if (v === null || v === undefined) delete p[k];
  return new URLSearchParams(p).toString();
}

/** Token endpoint POST with a form body. */
export function tokenPost(w, params, { auth, headers = {} } = {}) {
  return w.fetch("/auth/token", {
    method: "POST",
    headers: { ...FORM, ...(auth ? { authorization: auth } : {}), ...headers },
    body: form(params),
  });
}
