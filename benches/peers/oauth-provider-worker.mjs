// Peer 1: a Worker built on @cloudflare/workers-oauth-provider protecting the same origin with
// its own (opaque) tokens, kept in the OAUTH_KV binding. API calls under /Patient reach the
// apiHandler only with a valid token; it applies the same allow rule (the grant's client is the
// allowed client) and forwards to the origin. Bundled by run.mjs with esbuild.
//
// Bench-only setup (no login page): GET /bench/setup registers a confidential client, and
// /authorize approves every request at once for user "bench"; run.mjs then redeems the code at
// /oauth/token before the timed part. Vars: ORIGIN_URL, BENCH_REDIRECT. BENCH_RESOURCE (the
// canonical resource URL, which the provider needs when the module loads) is set by esbuild's
// `define` in run.mjs.
//
// The allow rule ("this client may call the API") is held in the isolate, as our Worker holds its
// compiled policies: the client id is only known once /bench/setup has registered it.
import { OAuthProvider } from "@cloudflare/workers-oauth-provider";

let allowedClient = null;

const apiHandler = {
  async fetch(request, env, ctx) {
    if (!allowedClient || ctx.auth?.clientId !== allowedClient) {
      return new Response(JSON.stringify({ error: "access_denied" }), { status: 403 });
    }
    const url = new URL(request.url);
    const target = new URL(url.pathname + url.search, env.ORIGIN_URL);
    const headers = new Headers(request.headers);
    headers.set("x-client-id", allowedClient);
    return fetch(target, { method: request.method, headers, body: request.body, redirect: "manual" });
  },
};

const defaultHandler = {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/bench/setup") {
      const client = await env.OAUTH_PROVIDER.createClient({
        redirectUris: [env.BENCH_REDIRECT],
        tokenEndpointAuthMethod: "client_secret_basic",
        grantTypes: ["authorization_code", "refresh_token"],
        responseTypes: ["code"],
        clientName: "bench",
      });
      allowedClient = client.clientId;
      return Response.json({ client_id: client.clientId, client_secret: client.clientSecret });
    }
    if (url.pathname === "/authorize") {
      const authRequest = await env.OAUTH_PROVIDER.parseAuthRequest(request);
      const { redirectTo } = await env.OAUTH_PROVIDER.completeAuthorization({
        request: authRequest,
        userId: "bench",
        metadata: {},
        scope: authRequest.scope,
        props: { clientId: authRequest.clientId, userId: "bench" },
      });
      return Response.redirect(redirectTo, 302);
    }
    return new Response("not found", { status: 404 });
  },
};

export default new OAuthProvider({
  apiRoute: "/Patient",
  apiHandler,
  defaultHandler,
  authorizeEndpoint: "/authorize",
  tokenEndpoint: "/oauth/token",
  scopesSupported: ["read"],
  resourceMetadata: {
    resource: BENCH_RESOURCE,
    authorization_servers: [new URL(BENCH_RESOURCE).origin],
  },
});
