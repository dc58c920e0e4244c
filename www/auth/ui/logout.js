// logout.html: asks before signing out. A GET of /auth/logout (a link, or an <img> on another
// site) only lands here; the session ends when this form posts its CSRF token.
import { takeFragmentError, showAlert, submitOnce } from "./common.js";

async function main() {
  const failure = takeFragmentError();
  let body = null;
  try {
    const res = await fetch("/auth/session", {
      credentials: "same-origin",
      headers: { accept: "application/json" },
      cache: "no-store",
    });
    body = res.ok ? await res.json() : null;
  } catch {
    body = null;
  }
  if (!body || typeof body.csrf !== "string") {
    showAlert("Could not reach the sign-in service. Check your connection and reload the page.");
    return;
  }
  const who = document.getElementById("who");
  if (body.user) {
    const name = (typeof body.user.name === "string" && body.user.name) || String(body.user.id ?? "");
    who.textContent = "You are signed in as " + name + ".";
  } else {
    who.textContent = "You are not signed in.";
  }
  document.getElementById("csrf").value = body.csrf;
  submitOnce(document.getElementById("logout-form"));
  document.getElementById("fields").disabled = false;
  if (failure) {
    showAlert(failure.code === "csrf" ? "Your sign-out form expired. Please try again." : failure.message);
  }
}

main();
