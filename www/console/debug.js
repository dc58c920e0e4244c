// The console's debugging views over the admin operations (docs/reference.md, "Debugging: policy tester, token inspector, sessions"):
//   Policy tester     POST /auth/test-policy   ("why was this denied?")
//   Token inspector   POST /auth/inspect-token (the token goes in the body, never in a URL)
//   Sessions/grants   GET/DELETE /Session?user=, /Session/{id}; GET /Grant?user=, DELETE /Grant/{id}
// Everything the server says is shown as text; `ui` is console.js's helpers (h, api, ...).

const pretty = (v) => JSON.stringify(v, null, 2);

/** A read-only block of pretty JSON. */
function jsonBlock(ui, value, label) {
  return ui.h("pre", { class: "json", tabindex: "0", "aria-label": label }, pretty(value));
}

/** Seconds since the epoch as a readable UTC date (and how far from now). */
export function dateOf(secs) {
  if (typeof secs !== "number" || !Number.isFinite(secs)) return String(secs);
  const d = new Date(secs * 1000);
  if (Number.isNaN(d.getTime())) return String(secs);
  const delta = Math.round(secs - Date.now() / 1000);
  const abs = Math.abs(delta);
  const span = abs < 120 ? `${abs} s` : abs < 7200 ? `${Math.round(abs / 60)} min` : abs < 172800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} days`;
  return `${d.toISOString().replace(".000Z", "Z")} (${delta >= 0 ? "in " : ""}${span}${delta < 0 ? " ago" : ""})`;
}

/** A value as JSON (strings quoted, so "" and absence differ). */
const show = (v) => (v === undefined ? "(absent)" : JSON.stringify(v));

/**
 * A policy's explanation in words: matcho's mismatch, json-schema's error, smart-on-fhir's
 * reason; anything else (complex branches) as JSON.
 */
function explanation(ui, e) {
  const { h } = ui;
  if (e === undefined || e === null) return h("span", { class: "muted" }, "—");
  const parts = [];
  if (e.mismatch) {
    const m = e.mismatch;
    parts.push(
      h(
        "dl",
        { class: "explain" },
        h("dt", {}, "Path"), h("dd", {}, h("code", {}, m.path === "" || m.path === undefined ? "(the whole request)" : m.path)),
        h("dt", {}, "Expected"), h("dd", {}, h("code", {}, show(m.expected))),
        h("dt", {}, "Actual"), h("dd", {}, h("code", {}, show(m.actual))),
      ),
    );
  }
  if (e.error && typeof e.error === "object") {
    const er = e.error;
    parts.push(
      h(
        "dl",
        { class: "explain" },
        h("dt", {}, "Path"), h("dd", {}, h("code", {}, er.path === "" || er.path === undefined ? "(the whole request)" : er.path)),
        h("dt", {}, "Schema says"), h("dd", {}, er.message ?? ""),
        h("dt", {}, "Actual"), h("dd", {}, h("code", {}, show(er.actual))),
      ),
    );
  }
  if (typeof e.reason === "string") parts.push(h("p", { class: "explain-reason" }, e.reason));
  if (typeof e["failed-branch"] === "string") parts.push(h("p", {}, `Failed branch: ${e["failed-branch"]}`));
  if (typeof e["allowed-branch"] === "string") parts.push(h("p", {}, `Allowed by branch: ${e["allowed-branch"]}`));
  const known = ["mismatch", "error", "reason", "result", "failed-branch", "allowed-branch"];
  const rest = Object.keys(e).filter((k) => !known.includes(k));
  if (rest.length || !parts.length) {
    parts.push(h("details", {}, h("summary", {}, "Details"), jsonBlock(ui, e, "Explanation as JSON")));
  }
  return h("div", {}, parts);
}

/** `name: value` lines -> headers object; throws with the line that is not one. */
export function parseHeaders(text) {
  const headers = {};
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const at = line.indexOf(":");
    const name = at > 0 ? line.slice(0, at).trim().toLowerCase() : "";
    if (!name || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) throw new Error(`line ${i + 1} is not "name: value"`);
    headers[name] = line.slice(at + 1).trim();
  });
  return headers;
}

// ---------------------------------------------------------------- policy tester

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

export function renderTester(view, ui) {
  const { h, $ } = ui;
  const text = (id, attrs = {}) => h("input", { id, name: id, type: "text", autocapitalize: "none", spellcheck: "false", autocomplete: "off", ...attrs });
  const area = (id, rows, attrs = {}) => h("textarea", { id, name: id, rows: String(rows), spellcheck: "false", autocapitalize: "none", autocomplete: "off", ...attrs });
  const radio = (value, label, checked) =>
    h("div", { class: "field check" }, h("input", { type: "radio", name: "sender", id: `t-as-${value}`, value, checked }), h("label", { for: `t-as-${value}` }, label));
  const method = h("select", { id: "t-method", name: "t-method", "data-field": "request.request-method" }, METHODS.map((m) => h("option", { value: m }, m)));
  const result = h("div", { id: "t-result", "aria-live": "polite" });
  const form = h(
    "form",
    { id: "tester-form", novalidate: true, "aria-labelledby": "view-title" },
    h("p", { class: "muted" }, "Send a request on paper: the server evaluates it exactly as the authorizer would, against the stored AccessPolicies, and forwards nothing."),
    h("div", { class: "row" }, ui.field("Method", method), ui.field("Path and query", text("t-uri", { "data-field": "request.uri", inputmode: "url", value: "/Patient" }), "e.g. /Patient?name=smith")),
    ui.field("Headers", area("t-headers", 3, { "data-field": "request.headers" }), "One \"name: value\" a line, e.g. content-type: application/json"),
    ui.field("Body (JSON)", area("t-body", 4, { "data-field": "request.body" }), "Optional; the policy request's resource."),
    h(
      "fieldset",
      {},
      h("legend", {}, "Who sends it"),
      radio("none", "Nobody (anonymous), or the authorization header above", true),
      radio("client", "A client (by id)", false),
      radio("user", "A user (by id), through a client (optional)", false),
      radio("token", "A pasted token", false),
      ui.field("Client id", text("t-client", { "data-field": "request.client-id" })),
      ui.field("User id", text("t-user", { "data-field": "request.user-id" })),
      ui.field("Token", area("t-token", 3, { "data-field": "token" }), "Verified as the authorizer verifies it; never stored or put in the address bar."),
    ),
    ui.field("Draft policy (JSON, not stored)", area("t-policy", 5, { "data-field": "policy" }), "Optional: an AccessPolicy to try before saving it."),
    h("p", { class: "actions" }, h("button", { type: "submit" }, "Test request")),
  );
  const senderFields = () => {
    const as = form.querySelector("input[name=sender]:checked").value;
    $("t-client").closest(".field").hidden = !(as === "client" || as === "user");
    $("t-user").closest(".field").hidden = as !== "user";
    $("t-token").closest(".field").hidden = as !== "token";
  };
  form.addEventListener("change", (ev) => {
    if (ev.target.name === "sender") senderFields();
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fail = (f, msg) => ui.showFieldError(form, f, msg);
    const uri = $("t-uri").value.trim();
    if (!uri.startsWith("/")) return fail("request.uri", "The path must start with /.");
    const request = { "request-method": $("t-method").value.toLowerCase(), uri };
    try {
      const headers = parseHeaders($("t-headers").value);
      if (Object.keys(headers).length) request.headers = headers;
    } catch (e) {
      return fail("request.headers", `Not a header: ${e.message}.`);
    }
    const body = { request };
    for (const [id, f, put] of [
      ["t-body", "request.body", (v) => (request.body = v)],
      ["t-policy", "policy", (v) => (body.policy = v)],
    ]) {
      const raw = $(id).value.trim();
      if (!raw) continue;
      try {
        put(JSON.parse(raw));
      } catch (e) {
        return fail(f, `Not valid JSON: ${e.message}`);
      }
    }
    const as = form.querySelector("input[name=sender]:checked").value;
    if (as === "client" || as === "user") {
      if (as === "client" && !$("t-client").value.trim()) return fail("request.client-id", "Enter a client id.");
      if ($("t-client").value.trim()) request["client-id"] = $("t-client").value.trim();
    }
    if (as === "user") {
      if (!$("t-user").value.trim()) return fail("request.user-id", "Enter a user id.");
      request["user-id"] = $("t-user").value.trim();
    }
    if (as === "token") {
      const t = $("t-token").value.trim().replace(/^Bearer\s+/i, "");
      if (!t) return fail("token", "Paste a token.");
      body.token = t;
    }
    fail(null, "");
    ui.showAlert("");
    result.replaceChildren(h("p", { class: "muted" }, "Testing…"));
    try {
      const report = await ui.api("POST", "/auth/test-policy", body);
      result.replaceChildren(testerReport(ui, report));
      $("t-decision").focus();
    } catch (e) {
      result.replaceChildren();
      if (e.status === 422 || e.status === 400) fail(e.field, e.message);
      else ui.reportError(e);
    }
  });
  view.replaceChildren(h("h1", { id: "view-title", tabindex: "-1" }, "Policy tester"), form, result);
  senderFields();
}

function testerReport(ui, r) {
  const { h } = ui;
  const d = r.decision ?? {};
  const allowed = d.outcome === "forward";
  const verdict = allowed
    ? `Allowed (${d.status}): the request would be forwarded${r["allowed-by"] ? `, allowed by AccessPolicy ${r["allowed-by"]}` : ""}.`
    : `Denied (${d.status}${d.error ? ` ${d.error}` : ""}): ${d.message ?? "refused"}`;
  const policies = r.policies ?? [];
  const rows = policies.map((p) => {
    const allows = p.id === r["allowed-by"];
    return h(
      "tr",
      { dataset: { id: p.id }, class: allows ? "allows" : null },
      h("th", { scope: "row" }, p.id, allows ? h("strong", { class: "badge ok" }, "allowed") : null),
      h("td", { "data-label": "Engine" }, p.engine ?? ""),
      h("td", { "data-label": "Applies" }, p.applies ? "yes" : "no"),
      h("td", { "data-label": "Result" }, p.applies ? (p.result ? "allows" : "denies") : "not evaluated"),
      h("td", { "data-label": "Why" }, p.applies && !p.result ? explanation(ui, p.explanation) : p.applies ? "" : `links to ${(p.link ?? []).map((l) => l.reference ?? `${l.resourceType}/${l.id}`).join(", ") || "—"}`),
    );
  });
  const parts = [
    h("div", { id: "t-decision", class: `card decision ${allowed ? "allow" : "deny"}`, tabindex: "-1", role: "status" }, h("p", { class: "verdict" }, verdict)),
  ];
  if (r.identity) parts.push(h("p", { class: "muted", id: "t-identity" }, identityText(r.identity)));
  if (r.note) parts.push(h("p", { class: "muted" }, r.note));
  if (r.result) {
    const res = r.result;
    parts.push(
      h(
        "div",
        { class: "card", id: "t-draft" },
        h("h2", {}, "Draft policy"),
        h("p", {}, !res.applies ? "It does not apply to this request (its links do not match the sender)." : res["eval-result"] ? "It would allow this request." : "It would not allow this request."),
        res.applies && !res["eval-result"] ? explanation(ui, res.explanation) : null,
      ),
    );
  }
  parts.push(
    h("h2", {}, `Policies evaluated (${policies.length})`),
    policies.length
      ? h(
          "div",
          { class: "scroll" },
          h(
            "table",
            { id: "t-policies" },
            h("thead", {}, h("tr", {}, ["Policy", "Engine", "Applies", "Result", "Why"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, rows),
          ),
        )
      : h("p", { class: "muted" }, "No stored policy was evaluated."),
    h("details", { id: "t-request" }, h("summary", {}, "The policy request (what the engines saw)"), jsonBlock(ui, r.request ?? null, "Policy request")),
  );
  return h("div", {}, parts);
}

function identityText(id) {
  const who = [];
  if (id.root) who.push("root");
  if (id.client) who.push(`client ${typeof id.client === "object" ? id.client.id : id.client}`);
  if (id.user) who.push(`user ${typeof id.user === "object" ? id.user.id : id.user}`);
  const source = id.source ? ` (from ${id.source})` : "";
  if (!who.length) return `Sender: anonymous${source}.`;
  return `Sender: ${who.join(", ")}${source}.`;
}

// ---------------------------------------------------------------- token inspector

const DATE_CLAIMS = ["exp", "iat", "nbf", "auth_time"];

export function renderInspector(view, ui) {
  const { h, $ } = ui;
  const area = h("textarea", { id: "i-token", name: "i-token", rows: "5", spellcheck: "false", autocapitalize: "none", autocomplete: "off", "data-field": "token" });
  const result = h("div", { id: "i-result", "aria-live": "polite" });
  const form = h(
    "form",
    { id: "inspect-form", novalidate: true, "aria-labelledby": "view-title" },
    ui.field("Token", area, "An access, ID or refresh token. It is sent in the request body only, never in the address bar."),
    h("p", { class: "actions" }, h("button", { type: "submit" }, "Inspect")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = area.value.trim().replace(/^Bearer\s+/i, "");
    if (!token) return ui.showFieldError(form, "token", "Paste a token.");
    ui.showFieldError(form, null, "");
    ui.showAlert("");
    result.replaceChildren(h("p", { class: "muted" }, "Inspecting…"));
    try {
      const r = await ui.api("POST", "/auth/inspect-token", { token });
      result.replaceChildren(inspectReport(ui, r));
      $("i-verdict").focus();
    } catch (e) {
      result.replaceChildren();
      if (e.status === 422 || e.status === 400) ui.showFieldError(form, e.field ?? "token", e.message);
      else ui.reportError(e);
    }
  });
  view.replaceChildren(h("h1", { id: "view-title", tabindex: "-1" }, "Token inspector"), form, result);
  area.focus();
}

function inspectReport(ui, r) {
  const { h } = ui;
  const v = r.verification ?? {};
  const verdict = v.active
    ? `Valid: verified by ${v.by ?? "?"}${v.client ? `; client ${v.client}` : ""}${v.user ? `; user ${v.user}` : ""}.`
    : `Not valid${v.error ? ` (${v.error})` : ""}: ${v.reason ?? "the server gave no reason"}`;
  const parts = [
    h(
      "div",
      { id: "i-verdict", class: `card decision ${v.active ? "allow" : "deny"}`, tabindex: "-1", role: "status" },
      h("p", { class: "verdict" }, verdict),
      v.note ? h("p", {}, v.note) : null,
      h("p", { class: "muted" }, `Format: ${r.format ?? "unknown"}`),
    ),
  ];
  const claims = r.claims && typeof r.claims === "object" ? r.claims : null;
  const dates = claims ? DATE_CLAIMS.filter((c) => typeof claims[c] === "number") : [];
  if (dates.length) {
    parts.push(
      h("h2", {}, "Times"),
      h("dl", { class: "explain", id: "i-dates" }, dates.flatMap((c) => [h("dt", {}, c), h("dd", {}, dateOf(claims[c]))])),
    );
  }
  if (r.revocation) {
    const rv = r.revocation;
    const line = (label, on) => h("li", {}, `${label}: ${on ? "yes" : "no"}`);
    parts.push(
      h("h2", {}, "Revocation"),
      h(
        "ul",
        { id: "i-revocation" },
        line("Token revoked (jti)", rv.jti),
        line("Its refresh family ended", rv.family),
        line("User's or client's credentials changed since", rv["credentials-changed"]),
      ),
    );
  }
  if (r.refresh) parts.push(h("h2", {}, "Refresh token"), jsonBlock(ui, r.refresh, "Refresh token state"));
  parts.push(h("h2", {}, "Header"), r.header ? jsonBlock(ui, r.header, "Header") : h("p", { class: "muted" }, "None (not a JWT)."));
  parts.push(h("h2", {}, "Claims"), claims ? jsonBlock(ui, claims, "Claims") : h("p", { class: "muted" }, "None could be decoded."));
  return h("div", {}, parts);
}

// ---------------------------------------------------------------- sessions and grants

export async function renderSessions(view, ui, userId, gen) {
  const { h } = ui;
  const q = encodeURIComponent(userId);
  const sessions = h("div", { id: "s-sessions" }, h("p", { class: "muted" }, "Loading…"));
  const grants = h("div", { id: "s-grants" }, h("p", { class: "muted" }, "Loading…"));
  const endAll = h("button", { type: "button", class: "danger", id: "s-end-all" }, "End all sessions");
  view.replaceChildren(
    h("h1", { id: "view-title", tabindex: "-1" }, `Sessions and grants of ${userId}`),
    h("p", { class: "actions" }, h("a", { class: "button secondary", href: "#users" }, "Back to Users")),
    h("h2", {}, "Sessions"),
    h("p", { class: "muted" }, "Browser sign-ins of this user. Ending one signs that browser out and ends the refresh tokens bound to it; access tokens already issued live until they expire."),
    h("p", { class: "actions" }, endAll),
    sessions,
    h("h2", {}, "Grants"),
    h("p", { class: "muted" }, "Consents the user gave to clients. Revoking one makes the client ask again."),
    grants,
  );
  const act = async (question, method, path) => {
    if (!confirm(question)) return;
    try {
      await ui.api(method, path);
      ui.showAlert("");
      await load();
      ui.$("view-title")?.focus();
    } catch (e) {
      ui.reportError(e);
    }
  };
  endAll.addEventListener("click", () => act(`End every session of ${userId}?`, "DELETE", `/Session?user=${q}`));
  const table = (id, headings, rows, empty) =>
    rows.length
      ? h(
          "div",
          { class: "scroll" },
          h("table", { id }, h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)),
        )
      : h("p", { class: "muted" }, empty);
  async function load() {
    let s;
    let g;
    try {
      [s, g] = await Promise.all([ui.api("GET", `/Session?user=${q}`), ui.api("GET", `/Grant?user=${q}`)]);
    } catch (e) {
      if (ui.stale(gen)) return;
      sessions.replaceChildren();
      grants.replaceChildren();
      return ui.reportError(e);
    }
    if (ui.stale(gen)) return;
    const ss = (s?.entry ?? []).map((e) => e.resource);
    endAll.disabled = ss.length === 0;
    sessions.replaceChildren(
      table(
        "s-session-table",
        ["Session", "Signed in", "Expires", "Active", "Actions"],
        ss.map((r) =>
          h(
            "tr",
            { dataset: { id: r.id } },
            h("th", { scope: "row" }, h("code", {}, r.id)),
            h("td", { "data-label": "Signed in" }, dateOf(r.auth_time)),
            h("td", { "data-label": "Expires" }, dateOf(r.exp)),
            h("td", { "data-label": "Active" }, r.active === false ? "no (credentials changed since)" : "yes"),
            h(
              "td",
              {},
              h("button", { type: "button", class: "danger", onclick: () => act(`End session ${r.id}?`, "DELETE", `/Session/${encodeURIComponent(r.id)}`) }, "End session"),
            ),
          ),
        ),
        "No sessions.",
      ),
    );
    const gs = (g?.entry ?? []).map((e) => e.resource);
    grants.replaceChildren(
      table(
        "s-grant-table",
        ["Client", "Scope", "Since", "Actions"],
        gs.map((r) =>
          h(
            "tr",
            { dataset: { id: r.id } },
            h("th", { scope: "row" }, r.client?.id ?? ""),
            h("td", { "data-label": "Scope" }, r.scope ?? ""),
            h("td", { "data-label": "Since" }, r.start ?? ""),
            h(
              "td",
              {},
              h("button", { type: "button", class: "danger", onclick: () => act(`Revoke the grant to ${r.client?.id}?`, "DELETE", `/Grant/${encodeURIComponent(r.id)}`) }, "Revoke grant"),
            ),
          ),
        ),
        "No grants.",
      ),
    );
  }
  await load();
}
