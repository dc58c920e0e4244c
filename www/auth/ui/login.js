// login.html: loads the interaction (client, CSRF token), then lets the user post the form to
// /auth/login. On failure the Worker sends the user back here with #error=<code>.
import { takeFragmentError, showAlert, loadInteraction, clientName, authorizeQuery, submitOnce } from "./common.js";

const USERNAME_KEY = "edge-authorizer.login.username";

const form = document.getElementById("login-form");
const fields = document.getElementById("fields");
const heading = document.getElementById("heading");
const username = document.getElementById("username");
const password = document.getElementById("password");

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: remembering the username is only a convenience
  }
}

async function main() {
  const failure = takeFragmentError();
  const remembered = storage()?.getItem(USERNAME_KEY) ?? null;
  storage()?.removeItem(USERNAME_KEY);

  const result = await loadInteraction();
  if (!result.ok) {
    form.hidden = true;
    heading.textContent = "Sign-in problem";
    showAlert(result.message);
    return;
  }
  const { client, csrf } = result.data;

  heading.textContent = "Sign in to continue to ";
  const name = document.createElement("span");
  name.className = "client-name";
  name.textContent = clientName(client);
  heading.append(name);
  document.title = "Sign in · " + clientName(client);

  document.getElementById("csrf").value = typeof csrf === "string" ? csrf : "";
  document.getElementById("query").value = authorizeQuery();

  submitOnce(form, () => storage()?.setItem(USERNAME_KEY, username.value));
  // Disabled until now: a form without its CSRF token and query would only fail.
  fields.disabled = false;

  if (remembered && failure) username.value = remembered;
  if (failure) {
    showFailure(failure);
  } else if (document.activeElement === document.body || document.activeElement === null) {
    username.focus();
  }
  // A redirect back to this very URL plus a new #error only changes the fragment.
  window.addEventListener("hashchange", () => {
    const again = takeFragmentError();
    if (again) showFailure(again);
  });
}

function showFailure(failure) {
  showAlert(failure.message);
  password.value = "";
  (username.value ? password : username).focus();
}

main();
