// Shared by login.js and consent.js. Data from the server or the URL is only ever written with
// textContent (never innerHTML), and there are no inline scripts or styles: the Worker's CSP
// forbids them.

/** Messages for the `#error=<code>` fragment the Worker adds when it sends the user back here. */
const MESSAGES = {
  login_failed: "Wrong username or password.",
  csrf: "Your sign-in form expired. Please try again.",
  throttled: "Too many attempts. Please wait a minute and try again.",
};
const GENERIC = "Something went wrong. Please try again.";

/**
 * Reads `#error=<code>` from the URL, removes the fragment (so a reload does not show a stale
 * message) and returns the message to show, or null.
 */
export function takeFragmentError() {
  const code = new URLSearchParams(location.hash.slice(1)).get("error");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  if (code === null) return null;
  return { code, message: Object.hasOwn(MESSAGES, code) ? MESSAGES[code] : GENERIC };
}

/** Shows `message` in the page's role="alert" live region (empty string hides it). */
export function showAlert(message) {
  const alert = document.getElementById("alert");
  alert.textContent = message;
}

/**
 * Loads the interaction for this authorize request: GET /auth/interaction?<same query>.
 * Returns `{ ok: true, data }` with `{client, scopes, csrf, user}`, or `{ ok: false, message }`.
 */
export async function loadInteraction() {
  let res;
  try {
    res = await fetch("/auth/interaction" + location.search, {
      credentials: "same-origin",
      headers: { accept: "application/json" },
      cache: "no-store",
    });
  } catch {
    return { ok: false, message: "Could not reach the sign-in service. Check your connection and reload the page." };
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (res.ok && body && typeof body === "object" && body.client) return { ok: true, data: body };
  if (body && typeof body.error === "string") {
    const detail = typeof body.error_description === "string" && body.error_description
      ? body.error_description
      : body.error;
    return { ok: false, message: "This sign-in request cannot be completed: " + detail };
  }
  return { ok: false, message: "This sign-in request cannot be completed (" + res.status + "). Please go back and try again." };
}

/**
 * Loads the interaction for a page that needs a signed-in user (consent, patient picker). Shows
 * the error and returns null when the request cannot go on; sends the browser to the login page
 * (same request) when the session has ended.
 */
export async function loadSignedInInteraction(heading) {
  const result = await loadInteraction();
  if (!result.ok) {
    heading.textContent = "Sign-in problem";
    showAlert(result.message);
    return null;
  }
  if (!result.data.user) {
    location.replace("login.html" + location.search);
    return null;
  }
  return result.data;
}

/** A client's display name: its name, else its id. */
export function clientName(client) {
  return (typeof client.name === "string" && client.name) || String(client.id ?? "the application");
}

/** The authorize query string without the leading "?", posted back as the `query` field. */
export function authorizeQuery() {
  return location.search.replace(/^\?/, "");
}

/**
 * Lets `form` be submitted once (a double click would post twice); `onSubmit` runs before the
 * post. Coming back to the page (back button, bfcache) allows a new submission.
 */
export function submitOnce(form, onSubmit = () => {}) {
  let submitting = false;
  form.addEventListener("submit", (event) => {
    if (submitting) {
      event.preventDefault();
      return;
    }
    submitting = true;
    onSubmit(event);
  });
  window.addEventListener("pageshow", () => {
    submitting = false;
  });
}
