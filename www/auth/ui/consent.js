// consent.html: shows what the client asks for and posts the user's decision to /auth/consent.
import { takeFragmentError, showAlert, loadSignedInInteraction, clientName, authorizeQuery, submitOnce } from "./common.js";

const heading = document.getElementById("heading");

async function main() {
  const failure = takeFragmentError();
  const data = await loadSignedInInteraction(heading);
  if (!data) return;
  const { client, scopes, csrf, user } = data;

  const name = clientName(client);
  heading.textContent = name + " wants to:";
  document.title = "Allow " + name + "?";
  // A client that registered itself: its name is its own claim, so say where it is from.
  if (typeof client.registration === "string") {
    const note = document.getElementById("unverified");
    const lines = ["Not verified by this server: this application registered itself."];
    if (typeof client.host === "string") lines.push("Published by: " + client.host);
    lines.push("Client ID: " + String(client.id ?? ""));
    if (typeof client.redirect_host === "string") lines.push("Sends you back to: " + client.redirect_host);
    for (const line of lines) {
      const p = document.createElement("p");
      p.textContent = line;
      note.append(p);
    }
    note.hidden = false;
  }

  const list = document.getElementById("scopes");
  for (const item of Array.isArray(scopes) ? scopes : []) {
    const scope = typeof item === "string" ? item : String(item?.scope ?? "");
    const description = typeof item?.description === "string" ? item.description : "";
    const li = document.createElement("li");
    if (description) {
      const text = document.createElement("span");
      text.className = "description";
      text.textContent = description;
      li.append(text);
    }
    const code = document.createElement("code");
    code.textContent = scope;
    li.append(code);
    // Approved before (a remembered grant): the page asks about the new scopes.
    if (item?.approved === true) {
      const note = document.createElement("span");
      note.className = "approved";
      note.textContent = " (allowed before)";
      li.append(note);
    }
    list.append(li);
  }

  document.getElementById("user-name").textContent =
    (typeof user.name === "string" && user.name) || String(user.id ?? "");
  document.getElementById("csrf").value = typeof csrf === "string" ? csrf : "";
  document.getElementById("query").value = authorizeQuery();
  submitOnce(document.getElementById("consent-form"));
  document.getElementById("content").hidden = false;
  if (failure) showAlert(failure.message);
  window.addEventListener("hashchange", () => {
    const again = takeFragmentError();
    if (again) showAlert(again.message);
  });
}

main();
