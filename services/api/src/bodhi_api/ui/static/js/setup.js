// The first-run wizard: create the admin (POST /bodhi/v1/setup), log in as them, then the optional steps (an API
// model, a local model), then done. One page: each step is a section, shown in turn.
import { get, post } from "./api.js";
import { h } from "./dom.js";
import { clearErrors, showError } from "./forms.js";
import { initApiModelForm } from "./setup-api-model.js";

const STEPS = ["admin", "api-model", "local-model", "done"];
const done = []; // what the wizard set up, for the last step's summary
const skipped = new Set();

function showStep(step) {
  for (const section of document.querySelectorAll(".setup-step")) section.hidden = section.dataset.step !== step;
  const reached = STEPS.indexOf(step);
  for (const item of document.querySelectorAll("#setup-steps li")) {
    const index = STEPS.indexOf(item.dataset.step);
    item.classList.toggle("setup-step-done", index < reached && !skipped.has(item.dataset.step));
    item.classList.toggle("setup-step-skipped", skipped.has(item.dataset.step));
    const state = skipped.has(item.dataset.step) ? ", skipped" : index < reached ? ", done" : "";
    item.querySelector(".setup-step-state").textContent = state; // what the tick or dash says, for screen readers
    if (index === reached) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }
  document.body.dataset.setupStep = step; // for the stylesheet and the tests
  document.getElementById(`step-${step}-title`).focus(); // a screen reader hears where it is now
}

function next(step) {
  showStep(STEPS[STEPS.indexOf(step) + 1]);
  if (STEPS.indexOf(step) + 1 === STEPS.length - 1) showSummary();
}

function showSummary() {
  const items = done.length ? done : ["No models yet: add them on the models page."];
  document.getElementById("setup-summary").replaceChildren(...items.map((line) => h("li", {}, line)));
}

function whileBusy(form, task) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  return task().finally(() => {
    button.disabled = false;
  });
}

const adminForm = document.getElementById("admin-form");
adminForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const username = adminForm.elements.namedItem("username").value.trim();
  const password = adminForm.elements.namedItem("password").value;
  if (password !== adminForm.elements.namedItem("confirm").value) {
    showError(adminForm, { message: "The two passwords differ: type the same password twice.", param: "confirm" });
    return;
  }
  whileBusy(adminForm, async () => {
    clearErrors(adminForm);
    try {
      await post("/bodhi/v1/setup", { username, password });
    } catch (error) {
      showError(adminForm, error);
      return;
    }
    try {
      await post("/bodhi/v1/auth/login", { username, password }); // the optional steps call the API as the admin
    } catch (error) {
      // The admin exists, so this page cannot create it again: the login page is the way on.
      showError(adminForm, { message: `${username} was created, but logging in failed: ${error.message}` });
      const list = document.querySelector("#admin-error-summary .error-summary-list");
      list.append(h("li", {}, h("a", { href: "/ui/login/" }, "Log in on the login page")));
      return;
    }
    done.push(`The admin account ${username}.`);
    next("admin");
  });
});

initApiModelForm(document.getElementById("api-model-form"), {
  onSaved(saved) {
    const ids = saved.models.map((model) => `${saved.prefix ?? ""}${model}`);
    done.push(`The API model ${saved.name}, serving ${ids.join(", ")}.`);
    next("api-model");
  },
});

const localForm = document.getElementById("local-model-form");
localForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const alias = localForm.elements.namedItem("alias").value.trim();
  const path = localForm.elements.namedItem("path").value.trim();
  whileBusy(localForm, async () => {
    try {
      const saved = await post("/bodhi/v1/models/alias", { alias, path });
      done.push(`The local model ${saved.alias}, from ${saved.path}.`);
      next("local-model");
    } catch (error) {
      showError(localForm, error);
    }
  });
});

for (const skip of document.querySelectorAll("[data-skip]")) {
  skip.addEventListener("click", () => {
    skipped.add(skip.dataset.skip);
    next(skip.dataset.skip);
  });
}

// The server only shows this page before the first user exists; another browser may have finished meanwhile.
get("/bodhi/v1/info")
  .then((info) => {
    if (info.status !== "setup" && document.body.dataset.setupStep === undefined) location.replace("/ui/login/");
  })
  .catch(() => {}); // the form reports its own errors
