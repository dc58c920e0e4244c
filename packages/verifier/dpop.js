// DPoP (RFC 9449) for the browser: a non-extractable ES256 key pair made once by WebCrypto
// (kept in IndexedDB, so a reload or a sign-in redirect keeps the key the tokens are bound to),
// and the proofs that bind token requests and API calls to it. Plain JS beside the wasm
// verifier: signing needs nothing but WebCrypto.

const enc = new TextEncoder();
const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const b64json = (v) => b64url(enc.encode(JSON.stringify(v)));
const ALG = { name: "ECDSA", namedCurve: "P-256" };
const STORE = "keys";

/** One IndexedDB request on the key store, as a promise. */
function idb(mode, op) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("edge-authorizer-dpop", 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const req = op(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => {
        db.close();
        resolve(req.result);
      };
      req.onerror = () => {
        db.close();
        reject(req.error);
      };
    };
  });
}

/** `url` without query and fragment (RFC 9449 4.2 `htu`), resolved against the page. */
function htu(url) {
  const u = new URL(url, globalThis.location?.href);
  return `${u.origin}${u.pathname}`;
}

export class DpopKey {
  #pair;
  #jwk;
  #thumbprint;
  #name;
  /** The newest `DPoP-Nonce` the server sent (RFC 9449 8), put into the next proofs. */
  nonce = null;

  /**
   * The key pair stored under `name` (default "default"), made on first use. `persist: false`
   * keeps it in memory only (a new key per page load).
   */
  static async create({ name = "default", persist = true } = {}) {
    let pair = persist ? await idb("readonly", (s) => s.get(name)).catch(() => undefined) : undefined;
    if (!pair) {
      // The private key is not extractable: script on the page can sign with it, never read it.
      pair = await crypto.subtle.generateKey(ALG, false, ["sign", "verify"]);
      if (persist) await idb("readwrite", (s) => s.put(pair, name)).catch(() => undefined);
    }
    const k = new DpopKey();
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
    k.#pair = pair;
    k.#jwk = { kty, crv, x, y };
    k.#name = name;
    // RFC 7638: the required members in lexicographic order, no whitespace.
    const canonical = JSON.stringify({ crv, kty, x, y });
    k.#thumbprint = b64url(await crypto.subtle.digest("SHA-256", enc.encode(canonical)));
    return k;
  }

  /** The public JWK (`kty`, `crv`, `x`, `y`) that goes into every proof. */
  publicJwk() {
    return { ...this.#jwk };
  }

  /** Its RFC 7638 thumbprint: the `cnf.jkt` of the tokens bound to this key. */
  thumbprint() {
    return this.#thumbprint;
  }

  /** A DPoP proof JWT for `method url`; with `accessToken`, its hash goes in as `ath`. */
  async proof(method, url, accessToken) {
    const claims = { jti: b64url(crypto.getRandomValues(new Uint8Array(16))), htm: method.toUpperCase(), htu: htu(url), iat: Math.floor(Date.now() / 1000) };
    if (accessToken) claims.ath = b64url(await crypto.subtle.digest("SHA-256", enc.encode(accessToken)));
    if (this.nonce) claims.nonce = this.nonce;
    const input = `${b64json({ typ: "dpop+jwt", alg: "ES256", jwk: this.#jwk })}.${b64json(claims)}`;
    const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, this.#pair.privateKey, enc.encode(input));
    return `${input}.${b64url(sig)}`;
  }

  /**
   * `fetch` with a proof (and `Authorization: DPoP <accessToken>` when given). Keeps the
   * server's `DPoP-Nonce`, and when the answer is `use_dpop_nonce` retries once with it.
   */
  async fetch(url, init = {}, accessToken) {
    const send = async () => {
      const headers = new Headers(init.headers);
      headers.set("DPoP", await this.proof(init.method ?? "GET", url, accessToken));
      if (accessToken) headers.set("Authorization", `DPoP ${accessToken}`);
      const res = await fetch(url, { ...init, headers });
      const nonce = res.headers.get("DPoP-Nonce");
      if (nonce) this.nonce = nonce;
      return res;
    };
    const res = await send();
    if (!res.headers.get("DPoP-Nonce") || (res.status !== 400 && res.status !== 401)) return res;
    const challenge = res.headers.get("WWW-Authenticate") ?? "";
    const body = res.status === 400 ? await res.clone().json().catch(() => ({})) : {};
    return challenge.includes("use_dpop_nonce") || body.error === "use_dpop_nonce" ? send() : res;
  }

  /** Forgets the key pair (sign-out): the tokens bound to it are useless from now on. */
  async clear() {
    await idb("readwrite", (s) => s.delete(this.#name)).catch(() => undefined);
  }
}
