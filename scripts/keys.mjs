// Ed25519 signing keys for the Worker, made with Node's WebCrypto.
//
// `generateSigningJwk()` returns a private JWK ready for the `SIGNING_KEY` secret:
//   {"kty":"OKP","crv":"Ed25519","d":"..","x":"..","kid":"<RFC 7638 thumbprint>","alg":"EdDSA"}
// Used by scripts/gen-key.mjs (make dev, operators) and tests/e2e/harness.mjs.

import { webcrypto } from "node:crypto";

const { subtle } = webcrypto;

function base64url(bytes) {
  return Buffer.from(bytes).toString("base64url");
}

/** RFC 7638 JWK thumbprint of an OKP public key: base64url(SHA-256 of the canonical members). */
export async function okpThumbprint({ crv, x }) {
  // Required members only, in lexicographic order, no whitespace (RFC 7638 section 3.2).
  const canonical = JSON.stringify({ crv, kty: "OKP", x });
  const digest = await subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  return base64url(new Uint8Array(digest));
}

/** A fresh Ed25519 private JWK with `kid` (thumbprint) and `alg: "EdDSA"`. */
export async function generateSigningJwk() {
  const pair = await subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const jwk = await subtle.exportKey("jwk", pair.privateKey);
  const kid = await okpThumbprint(jwk);
  return { kty: "OKP", crv: "Ed25519", d: jwk.d, x: jwk.x, kid, alg: "EdDSA" };
}

/** The public half of a private JWK (what a JWKS publishes). */
export function publicJwk({ kty, crv, x, kid, alg }) {
  return { kty, crv, x, kid, alg, use: "sig" };
}

/** A random secret: 32 bytes, base64url. */
export function randomSecret(bytes = 32) {
  return base64url(webcrypto.getRandomValues(new Uint8Array(bytes)));
}
