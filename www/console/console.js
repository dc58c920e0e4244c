// The admin console: clients, users, AccessPolicies and TokenIntrospectors over the admin API,
// with the signed-in user's bearer token. Everything the server says is shown as text (no HTML
// from data); every validation error (422, `field`) appears next to its field.
import { signIn, signOut, currentToken, forgetToken, randomString } from "./auth.js";
import { renderTester, renderInspector, renderSessions } from "./debug.js";

const $ = (id) => document.getElementById(id);
const view = $("view");

/** Builds an element: h("button", {type: "button", onclick}, "text", child...). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function showAlert(text) {
  const a = $("alert");
  a.textContent = text ?? "";
  a.hidden = !text;
}

// ---------------------------------------------------------------- the admin API

class ApiError extends Error {
  constructor(status, body) {
    const detail =
      body?.error_description ?? body?.issue?.[0]?.diagnostics ?? body?.error ?? `the server answered ${status}`;
    super(detail);
    this.status = status;
    this.body = body;
    this.field = body?.field ?? body?.issue?.[0]?.expression?.[0] ?? null;
  }
}

let expiryTimer;

/** One admin API call. 401 (token expired or revoked) returns to the sign-in screen. */
async function api(method, path, body) {
  const t = currentToken();
  if (!t) {
    toSignIn("Your session has ended. Sign in again.");
    throw new ApiError(401, { error_description: "not signed in" });
  }
  const headers = { authorization: `Bearer ${t.access_token}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (res.status === 401) {
    forgetToken();
    toSignIn("Your session has ended (the token expired or was revoked). Sign in again.");
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/** Shows an API error: 403 says the user lacks rights, anything else the server's message. */
function reportError(err) {
  if (err.status === 401) return;
  if (err.status === 403) {
    showAlert(
      `You are signed in, but you lack the rights for this: no AccessPolicy lets your user use the admin API ` +
        `(403: ${err.message}). Ask an administrator for an AccessPolicy (docs/console.md, "Signing in").`,
    );
  } else {
    showAlert(`${err.status ? `${err.status}: ` : ""}${err.message}`);
  }
}

// ---------------------------------------------------------------- screens

function toSignIn(reason) {
  clearTimeout(expiryTimer);
  renderGen += 1;
  $("nav").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  view.hidden = true;
  view.replaceChildren();
  $("signin").hidden = false;
  if (reason) $("signin-reason").textContent = reason;
  showAlert("");
}

async function start() {
  const t = currentToken();
  if (!t) return toSignIn();
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  view.hidden = false;
  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(() => {
    forgetToken();
    toSignIn("Your session has expired. Sign in again.");
  }, Math.max(0, t.expires_at - Date.now()));
  try {
    const res = await fetch("/auth/userinfo", { headers: { authorization: `Bearer ${t.access_token}` } });
    if (res.ok) {
      const u = await res.json();
      $("who").textContent = `Signed in as ${u.preferred_username ?? u.name ?? u.sub}`;
      $("who").hidden = false;
    }
  } catch {
    // The name is only shown; the API decides.
  }
  route();
}

/** Every render takes a new number; an older render's late answer finds it stale and draws nothing. */
let renderGen = 0;

const TYPES = {
  clients: { type: "Client", title: "Clients" },
  users: { type: "User", title: "Users" },
  policies: { type: "AccessPolicy", title: "AccessPolicies" },
  introspectors: { type: "TokenIntrospector", title: "TokenIntrospectors" },
};

function route() {
  if (!currentToken()) return toSignIn("Your session has ended. Sign in again.");
  // Keyboard and screen-reader users land on the new view's heading.
  queueMicrotask(() => {
    if (!view.contains(document.activeElement)) $("view-title")?.focus();
  });
  showAlert("");
  const [hashSection, action, ...rest] = location.hash.replace(/^#/, "").split("/");
  const section = hashSection || "clients";
  const id = rest.length ? decodeURIComponent(rest.join("/")) : undefined;
  for (const a of $("nav").querySelectorAll("a")) {
    if (a.getAttribute("href") === `#${section}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (section === "tester") return testerView();
  if (section === "inspector") return inspectorView();
  if (section === "users" && action === "sessions" && id) return sessionsView(id);
  const kind = TYPES[section] ?? TYPES.clients;
  const key = TYPES[section] ? section : "clients";
  if (key === "clients" && action === "new-basic") return clientForm("basic");
  if (key === "clients" && action === "new-oauth") return clientForm("oauth");
  if (action === "new") return jsonEditor(key, kind);
  if (action === "edit" && id) return jsonEditor(key, kind, id);
  return list(key, kind);
}

// ---------------------------------------------------------------- lists

const refText = (l) =>
  l?.reference ?? (l?.resourceType && l?.id ? `${l.resourceType}/${l.id}` : JSON.stringify(l));

const COLUMNS = {
  clients: [
    ["Name", (r) => r.name ?? ""],
    ["Grant types", (r) => (r.grant_types ?? []).join(", ")],
    ["First party", (r) => (r.first_party ? "yes" : "")],
  ],
  users: [
    ["Email", (r) => r.email ?? ""],
    ["Active", (r) => (r.active === false || r.inactive === true ? "no" : "yes")],
  ],
  policies: [
    ["Engine", (r) => r.engine ?? ""],
    [
      "Applies to",
      (r) => {
        const parts = (r.link ?? []).map(refText);
        if (r.roleName) parts.push(`Role ${r.roleName}`);
        return parts.length ? parts.join(", ") : "everyone (no link)";
      },
    ],
  ],
  introspectors: [
    ["Type", (r) => r.type ?? ""],
    ["Issuer / endpoint", (r) => r.jwt?.iss ?? r.introspection_endpoint?.url ?? ""],
  ],
};

async function list(key, kind) {
  const gen = ++renderGen;
  const heading = h("h1", { id: "view-title", tabindex: "-1" }, kind.title);
  const actions =
    key === "clients"
      ? h(
          "p",
          { class: "actions" },
          h("a", { class: "button", href: "#clients/new-basic" }, "New Basic client"),
          h("a", { class: "button", href: "#clients/new-oauth" }, "New OAuth client"),
        )
      : h("p", { class: "actions" }, h("a", { class: "button", href: `#${key}/new` }, `New ${kind.type}`));
  const secretBox = h("div", { id: "secret-box" });
  view.replaceChildren(heading, actions, secretBox, h("p", { class: "muted" }, "Loading…"));
  let bundle;
  try {
    bundle = await api("GET", `/${kind.type}`);
  } catch (err) {
    if (gen !== renderGen) return;
    view.lastChild.remove();
    return reportError(err);
  }
  if (gen !== renderGen) return;
  const rows = (bundle?.entry ?? []).map((e) => e.resource).sort((a, b) => a.id.localeCompare(b.id));
  const cols = [...COLUMNS[key]];
  if (key === "clients" || key === "users") {
    // Which AccessPolicies are linked to each row (what the policy list shows, the other way).
    const policies = await api("GET", "/AccessPolicy").catch(() => null);
    if (gen !== renderGen) return;
    if (policies) {
      const rt = kind.type;
      const linked = (id) =>
        (policies.entry ?? [])
          .map((e) => e.resource)
          .filter((p) => (p.link ?? []).some((l) => refText(l) === `${rt}/${id}`))
          .map((p) => p.id)
          .join(", ");
      cols.push(["Linked policies", (r) => linked(r.id)]);
    }
  }
  const table = h(
    "table",
    { "aria-labelledby": "view-title" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Id"), cols.map(([t]) => h("th", { scope: "col" }, t)), h("th", { scope: "col" }, "Actions"))),
    h(
      "tbody",
      {},
      rows.map((r) =>
        h(
          "tr",
          { dataset: { id: r.id } },
          h("th", { scope: "row" }, h("a", { href: `#${key}/edit/${encodeURIComponent(r.id)}` }, r.id)),
          cols.map(([t, f]) => h("td", { "data-label": t }, f(r))),
          h(
            "td",
            {},
            h(
              "div",
              { class: "row-actions" },
              key === "clients" && r.grant_types?.some((g) => g !== "authorization_code" && g !== "code" && g !== "implicit")
              ? h("button", { type: "button", class: "secondary", onclick: () => rotate(r.id, secretBox) }, `Rotate secret`)
              : null,
              key === "users"
                ? h("a", { class: "button secondary", href: `#users/sessions/${encodeURIComponent(r.id)}` }, "Sessions and grants")
                : null,
            h("button", { type: "button", class: "danger", onclick: () => remove(key, kind, r.id) }, "Delete"),
            ),
          ),
        ),
      ),
    ),
  );
  view.lastChild.replaceWith(rows.length ? h("div", { class: "scroll" }, table) : h("p", { class: "muted" }, `No ${kind.title} yet.`));
}

async function remove(key, kind, id) {
  if (!confirm(`Delete ${kind.type}/${id}?`)) return;
  try {
    await api("DELETE", `/${kind.type}/${encodeURIComponent(id)}`);
    await list(key, kind);
    showAlert("");
  } catch (err) {
    reportError(err);
  }
}

/** A new secret, made here (crypto.getRandomValues): 32 random bytes, base64url. */
const newSecret = () => randomString(32);

function showSecret(box, id, secret) {
  box.replaceChildren(
    h(
      "div",
      { class: "card secret", role: "status" },
      h("p", {}, h("strong", {}, `Secret of ${id}`), " — shown once: copy it now; the server keeps only its hash."),
      h("input", { id: "new-secret", type: "text", readonly: true, value: secret, "aria-label": `Secret of ${id}` }),
      h("p", { class: "muted" }, `Basic auth: ${id}:<secret>`),
    ),
  );
  $("new-secret").focus();
  $("new-secret").select();
}

async function rotate(id, box) {
  if (!confirm(`Give ${id} a new secret? The old one stops working at once.`)) return;
  const secret = newSecret();
  try {
    await api("PATCH", `/Client/${encodeURIComponent(id)}`, { secret });
    showSecret(box, id, secret);
  } catch (err) {
    reportError(err);
  }
}

// ---------------------------------------------------------------- client forms

const GRANTS = ["basic", "client_credentials", "password", "authorization_code", "implicit", "refresh_token"];

function field(label, input, hint) {
  const id = input.id;
  const err = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  input.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { class: "muted hint", id: `${id}-hint` }, hint) : null,
    input,
    err,
  );
}

function check(label, input) {
  const id = input.id;
  const err = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  input.setAttribute("aria-describedby", `${id}-error`);
  return h("div", { class: "field check" }, input, h("label", { for: id }, label), err);
}

/** Puts the server's message next to the input that holds `fieldPath` (or on the form). */
function showFieldError(form, fieldPath, message) {
  for (const p of form.querySelectorAll(".field-error")) p.hidden = true;
  for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  const inputs = [...form.querySelectorAll("[data-field], [data-suffix]")];
  const f = fieldPath ?? "";
  const match =
    inputs.find((i) => i.dataset.field !== undefined && i.dataset.field === f) ??
    inputs.find((i) => i.dataset.field && f.startsWith(`${i.dataset.field}.`)) ??
    inputs.find((i) => i.dataset.suffix && f.endsWith(`.${i.dataset.suffix}`));
  if (match) {
    const p = $(`${match.id}-error`);
    p.textContent = message;
    p.hidden = false;
    match.setAttribute("aria-invalid", "true");
    match.focus();
    showAlert("");
  } else {
    showAlert(f ? `${f}: ${message}` : message);
  }
}

function clientForm(kind) {
  ++renderGen;
  const basic = kind === "basic";
  const title = basic ? "New Basic client" : "New OAuth client";
  const text = (id, dataField, attrs = {}) => h("input", { id, name: id, type: "text", "data-field": dataField, ...attrs });
  const num = (id, suffix) => h("input", { id, name: id, type: "number", min: "1", inputmode: "numeric", "data-suffix": suffix });
  const box = (id, attrs = {}) => h("input", { id, name: id, type: "checkbox", ...attrs });
  const secretBox = h("div", { id: "secret-box" });
  const form = h(
    "form",
    { id: "client-form", novalidate: true, "aria-labelledby": "view-title" },
    field("Client id", text("c-id", "id", { required: true, autocapitalize: "none", spellcheck: "false" }), "Letters, digits, - and . (up to 64)."),
    field("Name", text("c-name", "name")),
    basic
      ? h("p", { class: "muted" }, "Grant type: basic (HTTP Basic auth on the API with the client's id and secret). A secret is generated in this browser and shown once.")
      : h(
          "fieldset",
          { id: "c-grants", "data-field": "grant_types", tabindex: "-1" },
          h("legend", {}, "Grant types"),
          GRANTS.map((g) => check(g, box(`g-${g}`, { value: g, "data-grant": g }))),
          h("p", { class: "field-error", id: "c-grants-error", hidden: true }),
        ),
    basic
      ? null
      : [
          field("Redirect URI", text("c-redirect", "auth.authorization_code.redirect_uri", { "data-suffix": "redirect_uri", inputmode: "url", autocapitalize: "none" }), "For authorization_code (and implicit)."),
          field("Access token lifetime (seconds)", num("c-access", "access_token_expiration"), "Default 3600."),
          check("Refresh tokens", box("c-refresh", { "data-suffix": "refresh_token" })),
          field("Refresh token lifetime (seconds)", num("c-refresh-exp", "refresh_token_expiration")),
          check("Require PKCE", box("c-pkce", { "data-suffix": "pkce" })),
          check("Public client (no secret; PKCE is then required)", box("c-public")),
          check("First party (no consent screen)", box("c-first-party", { "data-field": "first_party" })),
          field("Scopes", text("c-scope", "scope", { autocapitalize: "none", spellcheck: "false" }), "Space-separated, e.g. openid profile patient/*.rs"),
          h(
            "fieldset",
            {},
            h("legend", {}, "SMART on FHIR"),
            check("SMART app (type smart-app)", box("c-smart", { "data-field": "type" })),
            field("FHIR base URL", text("c-fhir-base", "fhir-base-url", { inputmode: "url", autocapitalize: "none" }), "Absolute, or a path on this server."),
            field("Launch URI", text("c-launch", "smart.launch_uri", { inputmode: "url", autocapitalize: "none" })),
          ),
        ],
    h("p", { class: "actions" }, h("button", { type: "submit" }, "Create client"), h("a", { class: "button secondary", href: "#clients" }, "Cancel")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (id) => $(id).value.trim();
    const body = { resourceType: "Client", id: v("c-id") };
    if (!body.id) delete body.id;
    if (v("c-name")) body.name = v("c-name");
    let secret = null;
    if (basic) {
      body.grant_types = ["basic"];
      secret = newSecret();
    } else {
      body.grant_types = GRANTS.filter((g) => $(`g-${g}`).checked);
      const flows = body.grant_types.filter((g) => ["basic", "client_credentials", "password", "authorization_code", "implicit"].includes(g));
      const auth = {};
      for (const flow of flows) {
        const s = {};
        if (v("c-access")) s.access_token_expiration = Number(v("c-access"));
        if (["authorization_code", "implicit"].includes(flow) && v("c-redirect")) s.redirect_uri = v("c-redirect");
        if (["authorization_code", "password", "client_credentials"].includes(flow) && $("c-refresh").checked) s.refresh_token = true;
        if (["authorization_code", "password"].includes(flow) && $("c-refresh").checked && v("c-refresh-exp"))
          s.refresh_token_expiration = Number(v("c-refresh-exp"));
        if (flow === "authorization_code" && $("c-pkce").checked) s.pkce = true;
        if (Object.keys(s).length) auth[flow] = s;
      }
      if (Object.keys(auth).length) body.auth = auth;
      body.first_party = $("c-first-party").checked;
      if (v("c-scope")) body.scope = v("c-scope").split(/\s+/);
      if ($("c-smart").checked) body.type = "smart-app";
      if (v("c-fhir-base")) body["fhir-base-url"] = v("c-fhir-base");
      if (v("c-launch")) body.smart = { launch_uri: v("c-launch") };
      if (!$("c-public").checked) secret = newSecret();
    }
    if (secret) body.secret = secret;
    try {
      const created = await api("POST", "/Client", body);
      // pushState fires no hashchange: the list is rendered once, here, with the secret box.
      history.pushState(null, "", "#clients");
      await list("clients", TYPES.clients);
      if (secret) showSecret($("secret-box"), created.id, secret);
      else showAlert("");
    } catch (err) {
      if (err.status === 422 || err.status === 409 || err.status === 400) showFieldError(form, err.field ?? (err.status === 409 ? "id" : null), err.message);
      else reportError(err);
    }
  });
  view.replaceChildren(h("h1", { id: "view-title", tabindex: "-1" }, title), secretBox, form);
  $("c-id").focus();
}

// ---------------------------------------------------------------- JSON editors

const EXAMPLES = {
  clients: { "Basic client": { resourceType: "Client", id: "my-client", grant_types: ["basic"], secret: "change-me" } },
  users: { User: { resourceType: "User", id: "alice", email: "alice@example.com", password: "change-me", name: { givenName: "Alice", familyName: "Smith" } } },
  policies: {
    "matcho": {
      resourceType: "AccessPolicy",
      id: "read-patients",
      engine: "matcho",
      matcho: { "request-method": "get", uri: "#^/Patient" },
      link: [{ reference: "Client/my-client" }],
    },
    "json-schema": {
      resourceType: "AccessPolicy",
      id: "read-patients-schema",
      engine: "json-schema",
      schema: {
        required: ["client", "request-method"],
        properties: {
          "request-method": { const: "get" },
          client: { required: ["id"], properties: { id: { const: "my-client" } } },
        },
      },
    },
    "administrator": {
      resourceType: "AccessPolicy",
      id: "alice-admin",
      description: "alice may use the admin API through the console",
      engine: "matcho",
      matcho: { client: { id: "console" } },
      link: [{ reference: "User/alice" }],
    },
  },
  introspectors: {
    "JWT (JWKS)": { resourceType: "TokenIntrospector", id: "my-idp", type: "jwt", jwt: { iss: "https://idp.example.com" }, jwks_uri: "https://idp.example.com/.well-known/jwks.json" },
    "Opaque": { resourceType: "TokenIntrospector", id: "my-opaque", type: "opaque", introspection_endpoint: { url: "https://idp.example.com/introspect", authorization: "Basic …" } },
  },
};

async function jsonEditor(key, kind, id) {
  const gen = ++renderGen;
  const title = id ? `${kind.type}/${id}` : `New ${kind.type}`;
  const area = h("textarea", { id: "json", rows: "18", spellcheck: "false", autocapitalize: "none", "aria-describedby": "json-error", "data-field": "" });
  const err = h("div", { id: "json-error", class: "field-error", role: "alert", hidden: true });
  const examples = EXAMPLES[key] ?? {};
  const exampleButtons = Object.entries(examples).map(([name, doc]) =>
    h("button", { type: "button", class: "secondary", onclick: () => { area.value = JSON.stringify(id ? { ...doc, id } : doc, null, 2); area.focus(); } }, `Example: ${name}`),
  );
  const form = h(
    "form",
    { id: "json-form", novalidate: true },
    h("label", { for: "json" }, `${kind.type} as JSON`),
    exampleButtons.length ? h("p", { class: "actions" }, exampleButtons) : null,
    area,
    err,
    h("p", { class: "actions" }, h("button", { type: "submit" }, id ? "Save" : "Create"), h("a", { class: "button secondary", href: `#${key}` }, "Cancel")),
  );
  view.replaceChildren(h("h1", { id: "view-title", tabindex: "-1" }, title), form);
  if (id) {
    try {
      const doc = await api("GET", `/${kind.type}/${encodeURIComponent(id)}`);
      if (gen !== renderGen) return;
      delete doc.meta;
      area.value = JSON.stringify(doc, null, 2);
    } catch (e) {
      if (gen !== renderGen) return;
      return reportError(e);
    }
  } else {
    area.value = JSON.stringify(Object.values(examples)[0] ?? { resourceType: kind.type }, null, 2);
  }
  area.focus();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    area.removeAttribute("aria-invalid");
    let doc;
    try {
      doc = JSON.parse(area.value);
    } catch (e) {
      err.textContent = `Not valid JSON: ${e.message}`;
      err.hidden = false;
      area.setAttribute("aria-invalid", "true");
      return;
    }
    try {
      if (id) await api("PUT", `/${kind.type}/${encodeURIComponent(id)}`, doc);
      else await api("POST", `/${kind.type}`, doc);
      location.hash = `#${key}`;
    } catch (e) {
      if (e.status === 401 || e.status === 403) return reportError(e);
      err.textContent = e.field ? `${e.field}: ${e.message}` : e.message;
      err.hidden = false;
      area.setAttribute("aria-invalid", "true");
      area.focus();
    }
  });
}

// ---------------------------------------------------------------- debugging views (debug.js)

const ui = { $, h, api, reportError, showAlert, field, showFieldError, stale: (gen) => gen !== renderGen };

function testerView() {
  ++renderGen;
  renderTester(view, ui);
}

function inspectorView() {
  ++renderGen;
  renderInspector(view, ui);
}

function sessionsView(userId) {
  renderSessions(view, ui, userId, ++renderGen);
}

// ---------------------------------------------------------------- wiring

$("sign-in").addEventListener("click", () => {
  signIn().catch((err) => showAlert(`Sign-in could not start: ${err.message}`));
});
$("sign-out").addEventListener("click", async () => {
  await signOut();
  toSignIn("You have signed out.");
});
window.addEventListener("hashchange", route);
start();
