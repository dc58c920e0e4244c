// The console's redirect target: exchanges the code, then leaves for /console/ with a clean URL.
import { finishSignIn } from "./auth.js";

const params = new URLSearchParams(location.search);
// The code and state leave the address bar (and history) at once.
history.replaceState(null, "", location.pathname);
try {
  await finishSignIn(params);
  location.replace("/console/");
} catch (err) {
  const alert = document.getElementById("alert");
  alert.textContent = err.message;
  alert.hidden = false;
  document.getElementById("back").hidden = false;
}
