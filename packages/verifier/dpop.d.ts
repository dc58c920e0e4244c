/** DPoP (RFC 9449) proofs with a non-extractable WebCrypto ES256 key pair. */
export class DpopKey {
  /** The newest `DPoP-Nonce` the server sent, put into the next proofs. */
  nonce: string | null;
  /** The key pair stored in IndexedDB under `name` (default "default"), made on first use. */
  static create(options?: { name?: string; persist?: boolean }): Promise<DpopKey>;
  /** The public JWK that goes into every proof. */
  publicJwk(): { kty: "EC"; crv: "P-256"; x: string; y: string };
  /** RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to this key. */
  thumbprint(): string;
  /** A DPoP proof for `method url` (`ath` when `accessToken` is given). */
  proof(method: string, url: string, accessToken?: string): Promise<string>;
  /** `fetch` with a proof (and `Authorization: DPoP` when `accessToken` is given); retries once on `use_dpop_nonce`. */
  fetch(url: string, init?: RequestInit, accessToken?: string): Promise<Response>;
  /** Forgets the stored key pair. */
  clear(): Promise<void>;
}
