// Peer 4: a hand-written JS Worker that does what our Worker does for `POST /auth/token` with
// `grant_type=client_credentials` and Basic client auth, with panva's `jose` for the signature:
// parse the form body and the Basic header, look the client up in KV (cached per isolate for
// 10 s, as our CACHE_TTL), check the secret against its stored PBKDF2 hash (WebCrypto; a
// verified secret is remembered per isolate for 5 minutes under a SHA-256 of client id, secret
// and stored hash, as ours), check that the client may use the grant, and sign an EdDSA
// `at+jwt` access token with the claims ours puts in (iss, sub, aud, client_id, jti, iat, exp,
// sub_kind, edge_gen, scope when asked for). Same JSON answer, `cache-control: no-store`.
// Bundled by run.mjs with esbuild. Not timed: the first check of a secret (ours also reserves a
// throttle slot in a Durable Object then); the answers to bad requests are OAuth-shaped but
// simpler than ours.
//
// Vars: SIGNING_KEY (private Ed25519 JWK, the one our Worker signs with). KV: CLIENTS, holding
// `Client/<id>` documents as ours stores them (`secret_hash`, `grant_types`,
// `credential_generation`).
import { SignJWT, importJWK } from "jose";

const CACHE_TTL_MS = 10_000;
const VERIFIED_TTL_MS = 300_000;
const LIFETIME_S = 3600;
const enc = new TextEncoder();

let signing; // per isolate: { key, kid }
const clients = new Map(); // id -> { at, client }
const verified = new Map(); // hex SHA-256 of (id, secret, stored hash) -> expiry (ms)

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

function error(status, code, description, headers = {}) {
  return new Response(JSON.stringify({ error: code, error_description: description }), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", pragma: "no-cache", ...headers },
  });
}
const invalidClient = () => error(401, "invalid_client", "client authentication failed", { "www-authenticate": 'Basic realm="token"' });

async function signingKey(env) {
  if (!signing) {
    const jwk = JSON.parse(env.SIGNING_KEY);
    signing = { key: await importJWK(jwk, "EdDSA"), kid: jwk.kid };
  }
  return signing;
}

/** `length || bytes` of each part, hashed: one unambiguous key per (id, secret, stored hash). */
async function secretKey(parts) {
  const chunks = [];
  for (const p of parts) {
    const b = enc.encode(p);
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(b.length));
    chunks.push(len, b);
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) all.set(c, (at += c.length) - c.length);
  return hex(await crypto.subtle.digest("SHA-256", all));
}

async function client(env, id) {
  const now = Date.now();
  const hit = clients.get(id);
  if (hit && now - hit.at < CACHE_TTL_MS) return hit.client;
  const doc = await env.CLIENTS.get(`Client/${id}`, "json");
  let c = null;
  if (doc && doc.active !== false) {
    // Our generation tag: 64 bits of SHA-256 over the client's credential generation.
    let gen;
    if (doc.credential_generation) {
      const g = enc.encode(doc.credential_generation);
      const prefix = enc.encode("edge-authorizer generation\0");
      const buf = new Uint8Array(prefix.length + 8 + g.length + 8);
      buf.set(prefix);
      new DataView(buf.buffer).setBigUint64(prefix.length, BigInt(g.length));
      buf.set(g, prefix.length + 8);
      gen = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)).slice(0, 8));
    }
    c = { id, hash: doc.secret_hash, grants: doc.grant_types ?? [], gen };
  }
  clients.set(id, { at: now, client: c });
  return c;
}

async function pbkdf2Matches(secret, stored) {
  const m = /^\$pbkdf2-sha256\$i=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(stored ?? "");
  if (!m) return false;
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), "PBKDF2", false, ["deriveBits"]);
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: unb64(m[2]), iterations: Number(m[1]) }, key, 256),
  );
  const want = unb64(m[3]);
  if (want.length !== bits.length) return false;
  let diff = 0;
  for (let i = 0; i < bits.length; i++) diff |= bits[i] ^ want[i];
  return diff === 0;
}

async function secretOk(c, secrets) {
  const now = Date.now();
  for (const s of secrets) {
    const k = await secretKey(["Client", c.id, s, c.hash]);
    if ((verified.get(k) ?? 0) > now) return true;
    if (await pbkdf2Matches(s, c.hash)) {
      if (verified.size >= 10_000) verified.clear();
      verified.set(k, now + VERIFIED_TTL_MS);
      return true;
    }
  }
  return false;
}

/** Basic credentials (RFC 7617), each part also form-decoded (RFC 6749 2.3.1). */
function basic(header) {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? "");
  if (!m) return null;
  let raw;
  try {
    raw = new TextDecoder("utf-8", { fatal: true }).decode(unb64(m[1]));
  } catch {
    return null;
  }
  const colon = raw.indexOf(":");
  if (colon < 0) return null;
  const decode = (s) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, " "));
    } catch {
      return s;
    }
  };
  const [id, secret] = [raw.slice(0, colon), raw.slice(colon + 1)];
  return { id: decode(id), secrets: [...new Set([secret, decode(secret)])] };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname !== "/auth/token") return error(404, "not_found", "no such endpoint");
    if (request.method !== "POST") return error(405, "invalid_request", "use POST", { allow: "POST" });
    if (!(request.headers.get("content-type") ?? "").toLowerCase().startsWith("application/x-www-form-urlencoded")) {
      return error(400, "invalid_request", "the body must be application/x-www-form-urlencoded");
    }
    const params = new URLSearchParams(await request.text());
    const grant = params.get("grant_type");
    if (!grant) return error(400, "invalid_request", "grant_type is required");
    if (grant !== "client_credentials") return error(400, "unsupported_grant_type", `${grant} is not supported here`);
    const creds = basic(request.headers.get("authorization"));
    if (!creds || params.has("client_secret")) return invalidClient();
    if (params.has("client_id") && params.get("client_id") !== creds.id) {
      return error(400, "invalid_request", "client_id does not match the Basic credentials");
    }
    const c = await client(env, creds.id);
    if (!c || !c.hash || !(await secretOk(c, creds.secrets))) return invalidClient();
    if (!c.grants.includes("client_credentials")) {
      return error(400, "unauthorized_client", "this client may not use the client_credentials grant");
    }
    const { key, kid } = await signingKey(env);
    const issuer = url.origin;
    const scope = params.get("scope") || undefined;
    const claims = { client_id: c.id, sub_kind: "client" };
    if (c.gen) claims.edge_gen = c.gen;
    if (scope) claims.scope = scope;
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "at+jwt" })
      .setIssuer(issuer)
      .setSubject(c.id)
      .setAudience(issuer)
      .setJti(b64url(crypto.getRandomValues(new Uint8Array(16))))
      .setIssuedAt(now)
      .setExpirationTime(now + LIFETIME_S)
      .sign(key);
    const body = { access_token: token, expires_in: LIFETIME_S, token_type: "Bearer" };
    if (scope) body.scope = scope;
    return new Response(JSON.stringify(body), {
      headers: { "content-type": "application/json", "cache-control": "no-store", pragma: "no-cache", vary: "Origin" },
    });
  },
};
