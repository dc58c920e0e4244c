// patient.html: the patient picker of a SMART standalone launch (scope launch/patient). Lists
// the patients the signed-in user may see and posts the choice to /auth/patient.
import { takeFragmentError, showAlert, loadSignedInInteraction, clientName, authorizeQuery, submitOnce } from "./common.js";

const heading = document.getElementById("heading");

async function main() {
  const failure = takeFragmentError();
  const data = await loadSignedInInteraction(heading);
  if (!data) return;
  const { client, csrf, patients } = data;
  document.getElementById("legend").textContent = "Which patient should " + clientName(client) + " open?";
  const list = document.getElementById("patients");
  const items = Array.isArray(patients) ? patients : [];
  items.forEach((p, i) => {
    const id = String(p?.id ?? "");
    const label = document.createElement("label");
    label.className = "choice";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "patient";
    input.value = id;
    input.required = true;
    if (i === 0) input.checked = true;
    const text = document.createElement("span");
    text.textContent = (typeof p?.name === "string" && p.name) || id;
    label.append(input, text);
    list.append(label);
  });
  if (items.length === 0) {
    document.getElementById("empty").hidden = false;
    document.getElementById("continue").disabled = true;
  }
  document.getElementById("csrf").value = typeof csrf === "string" ? csrf : "";
  document.getElementById("query").value = authorizeQuery();
  submitOnce(document.getElementById("patient-form"));
  document.getElementById("content").hidden = false;
  if (failure) showAlert(failure.code === "patient" ? "Please choose one of the listed patients." : failure.message);
}

main();
