// Sign-in of the admin console: the built-in public client `console` of this server,
// authorization code + PKCE (S256) through the login page, redirect back to
// /console/callback.html. The access token lives in sessionStorage only (this tab, gone when the
// tab closes; never localStorage, never a URL), and only until it expires (15 minutes): then the
// console shows the sign-in screen again. There are no refresh tokens.

export const CLIENT_ID = "console";
const TOKEN_KEY = "console.token";
const FLOW_KEY = "console.flow";

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export function randomString(bytes = 32) {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return b64url(b);
}

/** The issuer and endpoints, from discovery (the redirect URI is `<issuer>/console/callback.html`). */
export async function discovery() {
  const res = await fetch("/.well-known/openid-configuration", { headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(`discovery answered ${res.status}`);
  return res.json();
}

export const redirectUri = (issuer) => `${issuer.replace(/\/$/, "")}/console/callback.html`;

/** Starts the authorization request (leaves the page). */
export async function signIn() {
  const d = await discovery();
  const verifier = randomString(32);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = randomString(16);
  const redirect = redirectUri(d.issuer);
  sessionStorage.setItem(FLOW_KEY, JSON.stringify({ verifier, state, redirect, token: d.token_endpoint }));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: redirect,
    scope: "openid profile",
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`${d.authorization_endpoint}?${q}`);
}

/** Finishes the flow on the callback page: the code for a token. Throws with the reason. */
export async function finishSignIn(params) {
  const flow = JSON.parse(sessionStorage.getItem(FLOW_KEY) ?? "null");
  sessionStorage.removeItem(FLOW_KEY);
  if (params.get("error")) {
    throw new Error(`${params.get("error")}: ${params.get("error_description") ?? "sign-in was refused"}`);
  }
  if (!flow || !params.get("state") || params.get("state") !== flow.state) {
    throw new Error("This sign-in was not started by this tab (state does not match). Start again.");
  }
  const code = params.get("code");
  if (!code) throw new Error("The server sent no authorization code.");
  const res = await fetch("/auth/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: flow.redirect,
      client_id: CLIENT_ID,
      code_verifier: flow.verifier,
    }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.access_token !== "string") {
    throw new Error(`${body.error ?? res.status}: ${body.error_description ?? "the token request failed"}`);
  }
  const expiresAt = Date.now() + 1000 * (Number(body.expires_in) || 900);
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ access_token: body.access_token, expires_at: expiresAt }));
}

/** The current token, or null when there is none or it has expired. */
export function currentToken() {
  const t = JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? "null");
  if (!t || typeof t.access_token !== "string" || !(t.expires_at > Date.now())) {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
  return t;
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Signs out: revokes the access token (RFC 7009, as the public client `console`) and ends the
 * browser's login session (POST /auth/logout with the CSRF token of /auth/session), then forgets
 * the token. Failures of either call still forget the token.
 */
export async function signOut() {
  const t = currentToken();
  forgetToken();
  try {
    if (t) {
      await fetch("/auth/revoke", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: t.access_token, token_type_hint: "access_token", client_id: CLIENT_ID }),
      });
    }
    const s = await fetch("/auth/session", { headers: { accept: "application/json" }, credentials: "same-origin" });
    const { csrf } = await s.json();
    await fetch("/auth/logout", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf }),
      redirect: "manual",
    });
  } catch {
    // The token is forgotten either way; the session cookie ends with the browser.
  }
}
