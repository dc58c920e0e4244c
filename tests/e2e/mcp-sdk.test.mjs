// An MCP client signing in: the MCP TypeScript SDK's client auth (`auth()` from
// @modelcontextprotocol/sdk, pinned in package.json) with an OAuthClientProvider holding a
// pre-registered public client (loopback redirect, PKCE), against the Worker protecting an MCP
// server at /mcp (a test origin). The SDK discovers, builds the authorization URL, we follow it
// (the login step over HTTP, as the login page posts it), the SDK redeems the code and refreshes,
// and the bearer token reaches the origin through the authorizer.
//
//   node --test tests/e2e/mcp-sdk.test.mjs      (after `make build`)
//
// Discovery: the SDK first asks for RFC 9728 protected-resource metadata
// (/.well-known/oauth-protected-resource/mcp, then /.well-known/oauth-protected-resource); where
// the Worker does not serve it, the SDK falls back to the MCP server's origin as the
// authorization server and reads /.well-known/oauth-authorization-server. The test accepts both
// paths and records which one ran: with protected-resource metadata the SDK also sends the
// document's `resource` (RFC 8707) at authorize and token, and the token's `aud` names it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { auth } from "@modelcontextprotocol/sdk/client/auth.js";
import { startWorker, startOrigin, decodeJwt } from "./harness.mjs";
import { put, interaction, postLogin } from "./attacks-lib.mjs";

const REDIRECT = "http://127.0.0.1:33418/callback";
// Set to true once RFC 9728 protected-resource metadata is merged (branch i17-resource): then the
// SDK must discover through it, never through the fallback.
const EXPECT_PRM = true;

let origin;
const workers = [];

before(async () => {
  origin = await startOrigin();
});
after(async () => {
  for (const w of workers) await w.dispose();
  await origin?.dispose();
});

/** A Worker in front of the test origin with the MCP client, user mia and her policy. */
async function worker(vars = {}) {
  const w = await startWorker({ originUrl: origin.url, vars });
  workers.push(w);
  await put(w, "/Client/mcp-client", {
    name: "An MCP client",
    grant_types: ["authorization_code"],
    first_party: true,
    auth: { authorization_code: { redirect_uri: REDIRECT, pkce: true, refresh_token: true } },
  });
  await put(w, "/User/mia", { email: "mia@example.com", password: "mia-pass-1" });
  await put(w, "/AccessPolicy/mia", { engine: "allow", link: [{ id: "mia", resourceType: "User" }] });
  return w;
}

/** An OAuthClientProvider for a pre-registered public client; keeps everything in memory. */
class Provider {
  constructor() {
    this.saved = {};
    this.redirects = [];
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "An MCP client",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      scope: "openid offline_access",
    };
  }
  state() {
    return "mcp-state-1";
  }
  clientInformation() {
    return { client_id: "mcp-client" };
  }
  tokens() {
    return this.saved.tokens;
  }
  saveTokens(tokens) {
    this.saved.tokens = tokens;
  }
  redirectToAuthorization(url) {
    this.redirects.push(new URL(url));
  }
  saveCodeVerifier(v) {
    this.saved.verifier = v;
  }
  codeVerifier() {
    return this.saved.verifier;
  }
}

/** The whole sign-in with the SDK against `w`, then calls to /mcp; returns what discovery did. */
async function signInWithSdk(t, w) {
  const provider = new Provider();
  const seen = [];
  const fetchFn = async (url, init) => {
    const res = await fetch(url, init);
    seen.push(`${init?.method ?? "GET"} ${new URL(url).pathname} ${res.status}`);
    return res;
  };
  const serverUrl = `${w.url}/mcp`;

  assert.equal(await auth(provider, { serverUrl, fetchFn }), "REDIRECT");
  const authorizeUrl = provider.redirects.at(-1);
  assert.equal(authorizeUrl.origin + authorizeUrl.pathname, `${w.url}/auth/authorize`);
  const q = authorizeUrl.searchParams;
  assert.equal(q.get("client_id"), "mcp-client");
  assert.equal(q.get("redirect_uri"), REDIRECT);
  assert.equal(q.get("code_challenge_method"), "S256");
  assert.equal(q.get("state"), "mcp-state-1");
  const viaPrm = seen.some((s) => s.startsWith("GET /.well-known/oauth-protected-resource") && s.endsWith(" 200"));
  if (EXPECT_PRM) assert.ok(viaPrm, `the SDK did not discover through protected-resource metadata: ${seen.join(", ")}`);
  const resource = q.get("resource");
  t.diagnostic(`discovery: ${seen.join(", ")}; resource at authorize: ${resource ?? "(none)"}`);

  // The user's part: the login page's POST, over HTTP; the Worker redirects to the loopback URI.
  const query = authorizeUrl.search.slice(1);
  const { csrf, jar } = await interaction(w, query);
  const login = await postLogin(w, { query, csrf, jar, username: "mia", password: "mia-pass-1" });
  assert.equal(login.status, 303, await login.text());
  const callback = new URL(login.headers.get("location"));
  assert.equal(callback.origin + callback.pathname, REDIRECT);
  assert.equal(callback.searchParams.get("state"), "mcp-state-1");
  assert.equal(callback.searchParams.get("iss"), w.url);
  const code = callback.searchParams.get("code");
  assert.ok(code, `no code in ${callback}`);

  assert.equal(await auth(provider, { serverUrl, authorizationCode: code, fetchFn }), "AUTHORIZED");
  const tokens = provider.tokens();
  assert.equal(tokens.token_type.toLowerCase(), "bearer");
  assert.ok(tokens.refresh_token, "refresh token (offline_access)");
  const claims = decodeJwt(tokens.access_token).payload;
  assert.equal(claims.client_id, "mcp-client");
  assert.equal(claims.iss, w.url);
  if (resource) assert.ok([claims.aud].flat().includes(resource), `aud ${JSON.stringify(claims.aud)} should name ${resource}`);
  t.diagnostic(`protected-resource metadata used: ${viaPrm}; token aud: ${JSON.stringify(claims.aud)}`);

  origin.reset();
  const res = await fetch(serverUrl, {
    method: "POST",
    headers: { authorization: `Bearer ${tokens.access_token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  assert.deepEqual(await res.json(), { origin: true, method: "POST", url: "/mcp" });
  assert.equal(origin.requests.length, 1);
  assert.equal(JSON.parse(origin.last().body).method, "tools/list");

  // Without a token the MCP path is refused before the origin, with an RFC 6750 challenge.
  origin.reset();
  const anonymous = await fetch(serverUrl, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  await anonymous.arrayBuffer();
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer /);
  assert.equal(origin.requests.length, 0);

  // The SDK refreshes when it holds a refresh token: auth() again without a code.
  const before = tokens.access_token;
  assert.equal(await auth(provider, { serverUrl, fetchFn }), "AUTHORIZED");
  assert.notEqual(provider.tokens().access_token, before, "refreshed access token");
  assert.notEqual(provider.tokens().refresh_token, tokens.refresh_token, "rotated refresh token");
  return { viaPrm, resource, aud: claims.aud };
}

test("MCP SDK auth(): discovery -> authorization URL -> login -> code -> tokens -> /mcp reaches the origin", async (t) => {
  const w = await worker();
  const { viaPrm, resource } = await signInWithSdk(t, w);
  // With RFC 9728 metadata for the whole API (PROTECTED_RESOURCES unset) the resource is the issuer.
  if (viaPrm) assert.equal(resource, w.url);
});

test("MCP SDK auth() with /mcp as a separate protected resource (PROTECTED_RESOURCES=/mcp)", async (t) => {
  const w = await worker({ PROTECTED_RESOURCES: "/mcp" });
  const { viaPrm, resource, aud } = await signInWithSdk(t, w);
  // With RFC 9728 the SDK reads /.well-known/oauth-protected-resource/mcp and asks for that
  // resource; the token is for it. Without, it falls back as in the test above.
  if (viaPrm) {
    assert.equal(resource, `${w.url}/mcp`);
    assert.deepEqual([aud].flat(), [`${w.url}/mcp`]);
  }
});
