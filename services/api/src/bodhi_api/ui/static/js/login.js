// The login form: POST /bodhi/v1/auth/login sets the session cookie, then on to where the visitor was going.
import { get, post } from "./api.js";
import { formValues, showError } from "./forms.js";

const form = document.getElementById("login-form");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await post("/bodhi/v1/auth/login", formValues(form));
    location.assign(form.dataset.next); // checked by the server: a path of this site's UI
  } catch (error) {
    showError(form, error);
    button.disabled = false;
  }
});

get("/bodhi/v1/info")
  .then((info) => {
    document.getElementById("setup-notice").hidden = info.status !== "setup";
  })
  .catch(() => {}); // only a hint: the form works without it
