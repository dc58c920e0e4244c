// Peer 2: a hand-written JS Worker that does what our Worker does on a protected request, with
// panva's `jose`: verify the EdDSA access token against the same JWKS (local, no fetch), check
// iss, aud, exp and typ, apply the same allow rule (the token's client_id is the allowed client),
// and forward to the origin with the caller's identity. Bundled by run.mjs with esbuild.
//
// Vars: JWKS (JSON), ISSUER, AUDIENCE, ALLOWED_CLIENT, ORIGIN_URL.
import { createLocalJWKSet, jwtVerify } from "jose";

let cached; // per isolate, like our Worker's key cache
function settings(env) {
  if (!cached) cached = { jwks: createLocalJWKSet(JSON.parse(env.JWKS)), origin: new URL(env.ORIGIN_URL) };
  return cached;
}

const deny = (status, error) =>
  new Response(JSON.stringify({ error }), { status, headers: { "content-type": "application/json" } });

export default {
  async fetch(request, env) {
    const { jwks, origin } = settings(env);
    const auth = request.headers.get("authorization") ?? "";
    if (!auth.startsWith("Bearer ")) return deny(401, "invalid_token");
    let payload;
    try {
      ({ payload } = await jwtVerify(auth.slice(7), jwks, {
        issuer: env.ISSUER,
        audience: env.AUDIENCE,
        algorithms: ["EdDSA"],
        typ: "at+jwt",
        clockTolerance: 30,
      }));
    } catch {
      return deny(401, "invalid_token");
    }
    if (payload.client_id !== env.ALLOWED_CLIENT) return deny(403, "access_denied");
    const url = new URL(request.url);
    const target = new URL(url.pathname + url.search, origin);
    const headers = new Headers(request.headers);
    headers.set("x-client-id", payload.client_id);
    if (payload.scope) headers.set("x-auth-scope", payload.scope);
    return fetch(target, { method: request.method, headers, body: request.body, redirect: "manual" });
  },
};
