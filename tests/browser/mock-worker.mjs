// A small JavaScript model of the Worker's side of the browser protocol (issue 3), used ONLY to
// check the pages in www/auth/ui/ and the browser tests while the Rust endpoints are being
// written, and to tell a bug in the tests from a bug in the Worker later on:
//
//   E2E_WORKER_SCRIPT=tests/browser/mock-worker.mjs node --test tests/browser/
//
// It keeps everything in isolate memory, compares secrets in plain text and signs nothing: it is
// a model of the wire protocol, not an implementation to copy. What it models:
//   admin   PUT /Client|User|AccessPolicy/{id} as root (Basic root:ADMIN_SECRET)
//   assets  GET /auth/ui/* from the ASSETS binding, with the security headers the Worker adds
//   oauth   GET /auth/authorize, GET /auth/interaction, POST /auth/login, POST /auth/consent,
//           GET|POST /auth/logout, GET /auth/session, POST /auth/token (authorization_code, refresh_token)
//   api     GET /Patient with a bearer token issued here
const clients = new Map();
const users = new Map();
const sessions = new Map(); // session id -> user id
const codes = new Map(); // code -> { clientId, redirectUri, challenge, userId, scope, nonce, used, issued }
const accessTokens = new Map(); // token -> { active }
const refreshTokens = new Map(); // token -> { clientId, userId, scope, used, family }

const SESSION_COOKIE = "ea_session";
const CSRF_COOKIE = "ea_csrf";

function random(bytes = 32) {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
async function s256(verifier) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  return btoa(String.fromCharCode(...d)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
const b64url = (obj) => btoa(JSON.stringify(obj)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

function cookies(request) {
  const out = {};
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}
const json = (body, status = 200, headers = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
const redirect = (location, headers = {}) => new Response(null, { status: 303, headers: { location, ...headers } });
const oauthError = (error, status = 400, description) =>
  json({ error, ...(description ? { error_description: description } : {}) }, status);

function errorPage(status, error, description) {
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error</title></head>` +
    `<body><h1>Sign-in error</h1><p>${esc(error)}: ${esc(description)}</p></body></html>`;
  return new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
    },
  });
}

/** RFC 6749 4.1.1 request check. `local` errors must not be redirected (4.1.2.1). */
function checkAuthorize(params) {
  const client = clients.get(params.get("client_id") ?? "");
  if (!client) return { local: ["invalid_request", "unknown client"] };
  const registered = client.auth?.authorization_code?.redirect_uri;
  const redirectUri = params.get("redirect_uri") ?? registered;
  if (!registered || redirectUri !== registered) return { local: ["invalid_request", "redirect_uri is not registered for this client"] };
  const state = params.get("state");
  const back = (error, description) => {
    const u = new URL(redirectUri);
    u.searchParams.set("error", error);
    if (description) u.searchParams.set("error_description", description);
    if (state !== null) u.searchParams.set("state", state);
    return { redirect: u.toString() };
  };
  if (params.get("response_type") !== "code") return back("unsupported_response_type");
  const challenge = params.get("code_challenge");
  if (challenge !== null && params.get("code_challenge_method") !== "S256") return back("invalid_request", "code_challenge_method must be S256");
  return { client, redirectUri, state, challenge, scope: params.get("scope") ?? "", nonce: params.get("nonce") };
}

function issueCode(req, userId) {
  const code = random();
  codes.set(code, {
    clientId: req.client.id, redirectUri: req.redirectUri, challenge: req.challenge, userId,
    scope: req.scope, nonce: req.nonce, used: false, issued: [], expires: Date.now() + 60_000,
  });
  const u = new URL(req.redirectUri);
  u.searchParams.set("code", code);
  if (req.state !== null) u.searchParams.set("state", req.state);
  return redirect(u.toString());
}

function sessionUser(request) {
  const id = cookies(request)[SESSION_COOKIE];
  return id && sessions.has(id) ? users.get(sessions.get(id)) : undefined;
}

function securityHeaders(headers, formOrigin) {
  headers.set(
    "content-security-policy",
    `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; ` +
      `form-action 'self'${formOrigin ? " " + formOrigin : ""}; frame-ancestors 'none'; base-uri 'none'`,
  );
  headers.set("x-frame-options", "DENY");
  headers.set("referrer-policy", "no-referrer");
  headers.set("x-content-type-options", "nosniff");
}

const SCOPE_DESCRIPTIONS = {
  openid: "Sign you in",
  profile: "See your name",
  email: "See your email address",
  offline_access: "Stay signed in when you are not using it",
};

async function handle(request, env) {
  const url = new URL(request.url);
  const p = url.pathname;
  const m = request.method;

  // --- admin --------------------------------------------------------------------------------
  const admin = p.match(/^\/(Client|User|AccessPolicy)\/([^/]+)$/);
  if (admin) {
    if (request.headers.get("authorization") !== "Basic " + btoa(`root:${env.ADMIN_SECRET}`)) return oauthError("invalid_client", 401);
    if (m !== "PUT") return oauthError("invalid_request", 405);
    const body = { ...(await request.json()), id: admin[2], resourceType: admin[1] };
    if (admin[1] === "Client") clients.set(admin[2], body);
    if (admin[1] === "User") users.set(admin[2], body);
    return json(body, 201);
  }

  // --- assets -------------------------------------------------------------------------------
  if (m === "GET" && p.startsWith("/auth/ui/")) {
    let asset = await env.ASSETS.fetch(request);
    // Models `html_handling = "none"`: with the default ("auto-trailing-slash") the asset server
    // answers /auth/ui/login.html with a 307 to /auth/ui/login; serve the file instead.
    const to = asset.headers.get("location");
    if (asset.status >= 300 && asset.status < 400 && to && p.endsWith(".html")) {
      const target = new URL(to, url);
      if (target.pathname === p.slice(0, -".html".length)) asset = await env.ASSETS.fetch(new Request(target, request));
    }
    const res = new Response(asset.body, asset);
    const req = checkAuthorize(url.searchParams);
    securityHeaders(res.headers, req.redirectUri ? new URL(req.redirectUri).origin : null);
    return res;
  }

  if (p === "/auth/authorize" && m === "GET") {
    const req = checkAuthorize(url.searchParams);
    if (req.local) return errorPage(400, ...req.local);
    if (req.redirect) return redirect(req.redirect);
    const user = sessionUser(request);
    if (!user) return redirect("/auth/ui/login.html" + url.search);
    if (!req.client.first_party) return redirect("/auth/ui/consent.html" + url.search);
    return issueCode(req, user.id);
  }

  if (p === "/auth/interaction" && m === "GET") {
    const req = checkAuthorize(url.searchParams);
    if (req.local) return oauthError(...req.local);
    if (req.redirect) return oauthError("invalid_request", 400, "invalid authorization request");
    const csrf = random(16);
    const user = sessionUser(request);
    const scopes = req.scope.split(" ").filter(Boolean).map((scope) => ({ scope, description: SCOPE_DESCRIPTIONS[scope] ?? scope }));
    return json(
      {
        client: { id: req.client.id, name: req.client.name ?? req.client.id },
        scopes,
        csrf,
        user: user ? { id: user.id, name: user.name?.givenName ?? user.id } : null,
      },
      200,
      { "set-cookie": `${CSRF_COOKIE}=${csrf}; Path=/auth; HttpOnly; SameSite=Strict` },
    );
  }

  if ((p === "/auth/login" || p === "/auth/consent") && m === "POST") {
    const f = new URLSearchParams(await request.text());
    const query = f.get("query") ?? "";
    const params = new URLSearchParams(query);
    const req = checkAuthorize(params);
    if (req.local) return errorPage(400, ...req.local);
    if (req.redirect) return redirect(req.redirect);
    const page = p === "/auth/login" ? "login" : "consent";
    const csrf = cookies(request)[CSRF_COOKIE];
    if (!csrf || f.get("csrf") !== csrf) return redirect(`/auth/ui/${page}.html?${query}#error=csrf`);
    if (page === "login") {
      const name = f.get("username") ?? "";
      const user = users.get(name) ?? [...users.values()].find((u) => u.email === name);
      if (!user || user.password !== f.get("password")) return redirect(`/auth/ui/login.html?${query}#error=login_failed`);
      const sid = random();
      sessions.set(sid, user.id);
      return redirect(`/auth/authorize?${query}`, { "set-cookie": `${SESSION_COOKIE}=${sid}; Path=/auth; HttpOnly; SameSite=Lax` });
    }
    const user = sessionUser(request);
    if (!user) return redirect(`/auth/ui/login.html?${query}`);
    const decision = f.get("decision");
    if (decision === "allow") return issueCode(req, user.id);
    const u = new URL(req.redirectUri);
    u.searchParams.set("error", "access_denied");
    if (req.state !== null) u.searchParams.set("state", req.state);
    return redirect(u.toString());
  }

  // Logout: a bare GET only asks (the confirmation page); a POST with the CSRF token, or a GET
  // with an id_token_hint (not checked in this model), ends the session.
  if (p === "/auth/session" && m === "GET") {
    const csrf = random(16);
    const user = sessionUser(request);
    return json(
      { user: user ? { id: user.id, name: user.name?.givenName ?? user.id } : null, csrf },
      200,
      { "set-cookie": `${CSRF_COOKIE}=${csrf}; Path=/auth; HttpOnly; SameSite=Strict` },
    );
  }
  if (p === "/auth/logout" && (m === "GET" || m === "POST")) {
    if (m === "GET" && !url.searchParams.get("id_token_hint")) return redirect("/auth/ui/logout.html");
    if (m === "POST") {
      const csrf = cookies(request)[CSRF_COOKIE];
      if (!csrf || new URLSearchParams(await request.text()).get("csrf") !== csrf) return redirect("/auth/ui/logout.html#error=csrf");
    }
    sessions.delete(cookies(request)[SESSION_COOKIE]);
    return redirect("/auth/ui/logged-out.html", { "set-cookie": `${SESSION_COOKIE}=; Path=/auth; Max-Age=0; HttpOnly; SameSite=Lax` });
  }

  if (p === "/auth/token" && m === "POST") {
    const [id, secret] = atob((request.headers.get("authorization") ?? "").replace(/^Basic /, "")).split(":");
    const client = clients.get(id);
    if (!client || client.secret !== secret) return oauthError("invalid_client", 401);
    const f = new URLSearchParams(await request.text());
    const issue = (userId, scope, nonce, family) => {
      const access = random();
      accessTokens.set(access, { active: true });
      const body = { access_token: access, token_type: "Bearer", expires_in: 3600, scope };
      const issued = [access];
      if (client.auth?.authorization_code?.refresh_token || scope.split(" ").includes("offline_access")) {
        body.refresh_token = random();
        refreshTokens.set(body.refresh_token, { clientId: client.id, userId, scope, used: false, family: family ?? body.refresh_token });
        issued.push(body.refresh_token);
      }
      if (scope.split(" ").includes("openid")) {
        const now = Math.floor(Date.now() / 1000);
        const claims = { iss: new URL(request.url).origin, sub: userId, aud: client.id, azp: client.id, iat: now, exp: now + 3600, auth_time: now, ...(nonce ? { nonce } : {}) };
        body.id_token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.mock`;
      }
      return { body, issued };
    };
    if (f.get("grant_type") === "authorization_code") {
      const rec = codes.get(f.get("code") ?? "");
      if (!rec || rec.clientId !== client.id || rec.expires < Date.now()) return oauthError("invalid_grant");
      if (rec.used) {
        for (const t of rec.issued) {
          if (accessTokens.has(t)) accessTokens.get(t).active = false;
          refreshTokens.delete(t);
        }
        return oauthError("invalid_grant", 400, "code already used");
      }
      rec.used = true;
      if (f.get("redirect_uri") !== rec.redirectUri) return oauthError("invalid_grant");
      if (rec.challenge !== null && (await s256(f.get("code_verifier") ?? "")) !== rec.challenge) return oauthError("invalid_grant", 400, "PKCE verification failed");
      const { body, issued } = issue(rec.userId, rec.scope, rec.nonce);
      rec.issued = issued;
      return json(body);
    }
    if (f.get("grant_type") === "refresh_token") {
      const rec = refreshTokens.get(f.get("refresh_token") ?? "");
      if (!rec || rec.clientId !== client.id) return oauthError("invalid_grant");
      if (rec.used) {
        for (const [t, r] of refreshTokens) if (r.family === rec.family) refreshTokens.delete(t);
        return oauthError("invalid_grant", 400, "refresh token reused");
      }
      rec.used = true;
      return json(issue(rec.userId, rec.scope, null, rec.family).body);
    }
    return oauthError("unsupported_grant_type");
  }

  if (p === "/Patient" && m === "GET") {
    const token = (request.headers.get("authorization") ?? "").replace(/^Bearer /, "");
    if (!accessTokens.get(token)?.active) return oauthError("invalid_token", 401);
    return json({ resourceType: "Bundle", type: "searchset", entry: [] });
  }
  return oauthError("not_found", 404);
}

export default {
  async fetch(request, env) {
    try {
      return await handle(request, env);
    } catch (e) {
      return json({ error: "server_error", error_description: String(e?.stack ?? e) }, 500);
    }
  },
};
