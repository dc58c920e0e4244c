// The demo SPA: authorization code + PKCE against this Worker, then every token is verified in
// the page by the verifier package (./pkg/, built by scripts/build-browser.sh) before it is shown.
//
// The client is a public client (no secret) whose redirect_uri is this page, e.g.
//   PUT /Client/spa-demo {"grant_types":["authorization_code"],"first_party":true,
//     "auth":{"authorization_code":{"redirect_uri":"http://127.0.0.1:8787/app/","refresh_token":true}}}
// Tokens are kept in sessionStorage for the demo's sake (they survive the redirect to the
// login page and back); a real app may prefer memory only.
//
// Tokens are DPoP-bound (RFC 9449): the package's DpopKey (./pkg/dpop.js) holds a
// non-extractable ES256 key pair in IndexedDB; every token request and API call carries a
// proof signed by it, so a stolen token is useless without the key.
import init, { Verifier, createPkce, authorizeUrl } from "./pkg/edge_authorizer.js";
import { DpopKey } from "./pkg/dpop.js";

const ISSUER = location.origin;
const REDIRECT_URI = `${location.origin}/app/`;
const SCOPE = "openid profile offline_access";
const store = sessionStorage;
const $ = (id) => document.getElementById(id);

let verifier; // Verifier.fromIssuer(ISSUER, { audience: clientId })
let dpop; // DpopKey.create(): the key the tokens are bound to

function clientId() {
  return store.getItem("client_id") || $("client-id").value.trim() || "spa-demo";
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(text) {
  const el = $("error");
  el.textContent = text ?? "";
  el.hidden = !text;
}

function describe(err) {
  return err?.code ? `${err.code}: ${err.message}` : String(err?.message ?? err);
}

function randomString() {
  // 32 random bytes, base64url (createPkce draws them from crypto.getRandomValues).
  return createPkce().verifier;
}

async function tokenRequest(params) {
  // With a DPoP proof (and a retry when the server asks for its nonce).
  const res = await dpop.fetch(verifier.metadata.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: clientId(), ...params }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${body.error ?? res.status}: ${body.error_description ?? "token request failed"}`);
  return body;
}

function badge(id, ok, text) {
  const el = $(id);
  el.textContent = text;
  el.className = `badge ${ok ? "ok" : "bad"}`;
}

/** Verifies both tokens with the package and shows their claims (or why they were refused). */
async function showTokens() {
  const tokens = JSON.parse(store.getItem("tokens") ?? "null");
  const signedIn = Boolean(tokens?.access_token);
  $("signin-form").hidden = signedIn;
  $("actions").hidden = !signedIn;
  $("id-section").hidden = !tokens?.id_token;
  $("at-section").hidden = !signedIn;
  if (!signedIn) {
    $("api-section").hidden = true;
    $("tamper-section").hidden = true;
    setStatus("Signed out.");
    return;
  }
  let allOk = true;
  if (tokens.id_token) {
    try {
      const claims = await verifier.verify(tokens.id_token);
      // OpenID Connect Core 3.1.3.7: the nonce must be the one this page sent. An id_token from
      // a refresh has none (Core 12.2); the first one was checked in completeSignIn.
      if (claims.nonce !== undefined && claims.nonce !== store.getItem("nonce")) {
        throw Object.assign(new Error("nonce does not match"), { code: "wrong_nonce" });
      }
      badge("id-verdict", true, "verified");
      $("id-claims").textContent = JSON.stringify(claims, null, 2);
    } catch (err) {
      allOk = false;
      badge("id-verdict", false, err.code ?? "error");
      $("id-claims").textContent = describe(err);
    }
  }
  try {
    // The access token is for the API (aud = the issuer unless AUDIENCE says otherwise).
    const claims = await verifier.verify(tokens.access_token, { audience: ISSUER, typ: "at+jwt" });
    badge("at-verdict", true, "verified");
    $("at-claims").textContent = JSON.stringify(claims, null, 2);
  } catch (err) {
    allOk = false;
    badge("at-verdict", false, err.code ?? "error");
    $("at-claims").textContent = describe(err);
  }
  setStatus(allOk ? `Signed in as ${tokens.user ?? "?"}; tokens verified.` : "Signed in, but a token did not verify.");
}

async function signIn(event) {
  event.preventDefault();
  showError("");
  const id = $("client-id").value.trim() || "spa-demo";
  const pkce = createPkce();
  const state = randomString();
  const nonce = randomString();
  store.setItem("client_id", id);
  store.setItem("pkce_verifier", pkce.verifier);
  store.setItem("state", state);
  store.setItem("nonce", nonce);
  location.assign(
    authorizeUrl({
      authorizationEndpoint: verifier.metadata.authorization_endpoint,
      clientId: id,
      redirectUri: REDIRECT_URI,
      scope: SCOPE,
      state,
      nonce,
      codeChallenge: pkce.challenge,
    }),
  );
}

/** Back from /auth/authorize with ?code&state (or ?error). */
async function completeSignIn(params) {
  history.replaceState(null, "", REDIRECT_URI);
  const expected = store.getItem("state");
  store.removeItem("state");
  if (params.get("error")) throw new Error(`${params.get("error")}: ${params.get("error_description") ?? "sign-in failed"}`);
  if (!expected || params.get("state") !== expected) throw new Error("state does not match: not our sign-in");
  const verifierString = store.getItem("pkce_verifier");
  store.removeItem("pkce_verifier");
  setStatus("Exchanging the code…");
  const tokens = await tokenRequest({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: REDIRECT_URI,
    code_verifier: verifierString ?? "",
  });
  if (tokens.id_token) {
    const claims = await verifier.verify(tokens.id_token);
    if (claims.nonce !== store.getItem("nonce")) throw new Error("wrong_nonce: the id_token's nonce is not ours");
  }
  saveTokens(tokens);
}

function saveTokens(tokens) {
  const old = JSON.parse(store.getItem("tokens") ?? "null");
  let user = old?.user;
  try {
    user = JSON.parse(atob(tokens.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  } catch {
    // shown as "?"; the verified claims are what counts
  }
  store.setItem(
    "tokens",
    JSON.stringify({
      access_token: tokens.access_token,
      id_token: tokens.id_token ?? old?.id_token,
      refresh_token: tokens.refresh_token ?? old?.refresh_token,
      user,
    }),
  );
}

async function callApi() {
  const tokens = JSON.parse(store.getItem("tokens") ?? "null");
  // `Authorization: DPoP <token>` and a proof for this request (RFC 9449 7).
  const res = await dpop.fetch(new URL("/Patient", location.href).href, {}, tokens.access_token);
  $("api-section").hidden = false;
  badge("api-status", res.ok, String(res.status));
  const list = $("patients");
  list.replaceChildren();
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const li = document.createElement("li");
    li.textContent = body?.error ? `${body.error}: ${body.error_description ?? ""}` : `HTTP ${res.status}`;
    list.append(li);
    return;
  }
  for (const entry of body?.entry ?? []) {
    const p = entry.resource ?? {};
    const name = p.name?.[0];
    const li = document.createElement("li");
    li.textContent = `${p.resourceType ?? "?"}/${p.id ?? "?"}: ${[name?.given?.join(" "), name?.family].filter(Boolean).join(" ") || "(no name)"}`;
    list.append(li);
  }
  setStatus(`GET /Patient: ${res.status}, ${body?.entry?.length ?? 0} patients.`);
}

async function refreshTokens() {
  const tokens = JSON.parse(store.getItem("tokens") ?? "null");
  if (!tokens?.refresh_token) throw new Error("no refresh token (ask for offline_access or set refresh_token on the client)");
  saveTokens(await tokenRequest({ grant_type: "refresh_token", refresh_token: tokens.refresh_token }));
  await showTokens();
  setStatus(`${$("status").textContent} Refreshed.`);
}

/** Changes one character of the access token's signature and verifies it again. */
async function tamper() {
  const tokens = JSON.parse(store.getItem("tokens") ?? "null");
  const [h, p, s] = tokens.access_token.split(".");
  const i = Math.floor(s.length / 2);
  const forged = `${h}.${p}.${s.slice(0, i)}${s[i] === "A" ? "B" : "A"}${s.slice(i + 1)}`;
  $("tamper-section").hidden = false;
  try {
    await verifier.verify(forged, { audience: ISSUER, typ: "at+jwt" });
    $("tamper-code").textContent = "accepted (this should never happen)";
    $("tamper-message").textContent = "";
  } catch (err) {
    $("tamper-code").textContent = err.code ?? "error";
    $("tamper-message").textContent = err.message;
  }
}

async function signOut() {
  const tokens = JSON.parse(store.getItem("tokens") ?? "null");
  if (tokens?.refresh_token && verifier.metadata.revocation_endpoint) {
    // RFC 7009: a public client revokes with its client_id. Best effort.
    await fetch(verifier.metadata.revocation_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: clientId(), token: tokens.refresh_token, token_type_hint: "refresh_token" }),
    }).catch(() => {});
  }
  for (const k of ["tokens", "nonce", "state", "pkce_verifier"]) store.removeItem(k);
  await dpop.clear(); // the next sign-in gets a new key
  // OIDC RP-Initiated Logout: with our id_token as the hint the session ends at once; without
  // it the server asks the user to confirm (a bare GET cannot end a session).
  const end = new URL(verifier.metadata.end_session_endpoint ?? "/auth/logout", location.href);
  if (tokens?.id_token) end.searchParams.set("id_token_hint", tokens.id_token);
  location.assign(end.toString());
}

/** Runs a button's action with the buttons disabled, showing any error. */
function action(fn) {
  return async (event) => {
    showError("");
    const buttons = document.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      await fn(event);
    } catch (err) {
      showError(describe(err));
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  };
}

async function main() {
  const saved = store.getItem("client_id");
  if (saved) $("client-id").value = saved;
  $("signin-form").addEventListener("submit", action(signIn));
  $("call-api").addEventListener("click", action(callApi));
  $("refresh").addEventListener("click", action(refreshTokens));
  $("tamper").addEventListener("click", action(tamper));
  $("signout").addEventListener("click", action(signOut));
  try {
    await init();
    dpop = await DpopKey.create();
    $("dpop-jkt").textContent = dpop.thumbprint();
    verifier = await Verifier.fromIssuer(ISSUER, { audience: clientId() });
    const params = new URLSearchParams(location.search);
    if (params.has("code") || params.has("error")) await completeSignIn(params);
  } catch (err) {
    showError(describe(err));
  }
  if (verifier) await showTokens();
  else setStatus("The verifier could not start.");
  document.body.dataset.ready = "true";
}

main();
