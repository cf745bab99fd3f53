// The users page (managers and admins): list, add, change a role, the models a user may use or their limits,
// delete (GET/POST /bodhi/v1/users, PUT /users/{id}/role, /users/{id}/models, /users/{id}/limits, DELETE
// /users/{id}). A budget is shown with what it spent this period (`budget_spent`). The API decides who may do what;
// its refusals are shown as they come.
import { del, get, post, put } from "./api.js";
import { h } from "./dom.js";
import { clearErrors, showError } from "./forms.js";
import { handleSessionEnded, ROLE_LABELS, roleAtLeast } from "./layout.js";
import { budgetCell } from "./money.js";
import { PageMessages } from "./page-messages.js";

const form = document.getElementById("user-form");
const table = document.getElementById("users-table");
const rows = table.querySelector("tbody");
const status = document.getElementById("users-status");
const messages = new PageMessages(status, document.getElementById("users-alert"));
const myRole = table.dataset.myRole;
const myId = table.dataset.myId;

function roleSelect(user) {
  const id = `role-${user.id}`;
  const select = h(
    "select",
    { id, class: "role-select" },
    Object.entries(ROLE_LABELS).map(([value, label]) => h("option", { value, selected: value === user.role }, label)),
  );
  return [h("label", { for: id, class: "visually-hidden" }, `Role of ${user.username}`), select];
}

async function changeRole(user, select) {
  const role = select.value;
  const changed = await messages.run(async () => {
    await put(`/bodhi/v1/users/${encodeURIComponent(user.id)}/role`, { role });
    await load();
  }, `${user.username} is now ${ROLE_LABELS[role]}.`);
  if (!changed) select.value = user.role;
}

// The models a user may use, as the cell shows them: "All", or their ids and patterns.
function modelsList(user) {
  if (user.allowed_models === null) return h("span", { class: "muted" }, "All");
  if (user.allowed_models.length === 0) return h("span", { class: "muted" }, "None");
  return h("span", { class: "model-grant" }, ...user.allowed_models.map((id) => h("code", {}, id)));
}

function modelsField(user) {
  const id = `models-${user.id}`;
  const input = h("input", {
    id,
    type: "text",
    class: "models-input",
    value: user.allowed_models === null ? "" : user.allowed_models.join(", "),
    placeholder: "All models",
    autocomplete: "off",
    spellcheck: "false",
  });
  return [h("label", { for: id, class: "visually-hidden" }, `Models of ${user.username}`), input];
}

async function changeModels(user, input) {
  const patterns = input.value.split(",").map((id) => id.trim()).filter(Boolean);
  await messages.run(async () => {
    await put(`/bodhi/v1/users/${encodeURIComponent(user.id)}/models`, {
      allowed_models: patterns.length > 0 ? patterns : null,
    });
    await load();
  }, `${user.username} may now use ${patterns.length > 0 ? patterns.join(", ") : "every model"}.`);
}

// The limits as the cell shows them: "30 requests/min, 5000 tokens/min", the budget and what it spent, or "None".
function limitsText(user) {
  const parts = [];
  if (user.rpm_limit !== null) parts.push(`${user.rpm_limit} requests/min`);
  if (user.tpm_limit !== null) parts.push(`${user.tpm_limit} tokens/min`);
  const budget = user.budget_tokens === null ? null : budgetCell(user, `Budget of ${user.username}`);
  if (parts.length === 0 && budget === null) return h("span", { class: "muted" }, "None");
  return [parts.length > 0 ? h("span", {}, parts.join(", ")) : null, budget];
}

const LIMIT_INPUTS = [
  ["rpm_limit", "Requests per minute"],
  ["tpm_limit", "Tokens per minute"],
  ["budget_tokens", "Budget in tokens"],
];

// The user's limits as a small form in a disclosure: each field empty for no limit.
function limitsEditor(user) {
  const field = (label, control) => h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  const inputs = LIMIT_INPUTS.map(([name, label]) =>
    field(
      label,
      h("input", {
        id: `${name}-${user.id}`,
        name,
        type: "number",
        min: "1",
        step: "1",
        inputmode: "numeric",
        placeholder: "No limit",
        value: user[name] ?? "",
      }),
    ),
  );
  const period = h(
    "select",
    { id: `budget_period-${user.id}`, name: "budget_period" },
    ["day", "month"].map((value) =>
      h("option", { value, selected: (user.budget_period ?? "month") === value }, value === "day" ? "Per day (UTC)" : "Per month (UTC)"),
    ),
  );
  const form = h(
    "form",
    { class: "limits-form", novalidate: true, on: { submit: (event) => changeLimits(event, user, form) } },
    inputs,
    field("Budget period", period),
    h("button", { type: "submit", class: "button button-small" }, "Save limits", h("span", { class: "visually-hidden" }, ` of ${user.username}`)),
  );
  return h(
    "details",
    { class: "limits-edit" },
    h("summary", {}, "Edit limits", h("span", { class: "visually-hidden" }, ` of ${user.username}`)),
    form,
  );
}

async function changeLimits(event, user, form) {
  event.preventDefault();
  const value = (name) => form.elements.namedItem(name).value.trim();
  const body = {};
  for (const [name] of LIMIT_INPUTS) body[name] = value(name) ? Number(value(name)) : null;
  body.budget_period = body.budget_tokens === null ? null : value("budget_period");
  await messages.run(async () => {
    await put(`/bodhi/v1/users/${encodeURIComponent(user.id)}/limits`, body);
    await load();
  }, `Saved the limits of ${user.username}.`);
}

async function remove(user) {
  const question = {
    title: `Delete the user ${user.username}?`,
    message: "They are logged out at once, and their tokens stop working. This cannot be undone.",
    confirmLabel: "Delete user",
  };
  await messages.runConfirmed(question, async () => {
    await del(`/bodhi/v1/users/${encodeURIComponent(user.id)}`);
    await load();
  }, `Deleted ${user.username}.`);
}

function cells(user) {
  const badge = h("span", { class: "badge" }, ROLE_LABELS[user.role] ?? user.role);
  const limits = (...more) => h("td", {}, h("div", { class: "limits-cell" }, limitsText(user), ...more));
  if (user.id === myId) {
    const you = h("td", {}, badge, " ", h("span", { class: "muted" }, "(you)"));
    return [you, h("td", {}, modelsList(user)), limits(), h("td", {})];
  }
  if (!roleAtLeast(myRole, user.role)) {
    const note = h("td", { class: "muted row-note" }, "Above your role");
    return [h("td", {}, badge), h("td", {}, modelsList(user)), limits(), note];
  }
  const [label, select] = roleSelect(user);
  const [modelsLabel, modelsInput] = modelsField(user);
  const hidden = (text) => h("span", { class: "visually-hidden" }, text);
  const change = h(
    "button",
    { type: "button", class: "button button-secondary button-small", on: { click: () => changeRole(user, select) } },
    "Change role",
    hidden(` of ${user.username}`),
  );
  const saveModels = h(
    "button",
    { type: "button", class: "button button-secondary button-small", on: { click: () => changeModels(user, modelsInput) } },
    "Save models",
    hidden(` of ${user.username}`),
  );
  const remover = h(
    "button",
    { type: "button", class: "button button-danger button-small", on: { click: () => remove(user) } },
    "Delete",
    hidden(` ${user.username}`),
  );
  return [
    h("td", {}, h("div", { class: "role-cell" }, label, select)),
    h("td", {}, modelsLabel, modelsInput),
    limits(limitsEditor(user)),
    h("td", {}, h("div", { class: "row-buttons" }, change, saveModels, remover)),
  ];
}

async function load() {
  let users;
  try {
    users = (await get("/bodhi/v1/users")).data;
  } catch (error) {
    status.textContent = "";
    messages.alert(error);
    return;
  }
  users.sort((a, b) => a.username.localeCompare(b.username));
  rows.replaceChildren(
    ...users.map((user) => h("tr", { dataset: { userId: user.id } }, h("th", { scope: "row" }, user.username), cells(user))),
  );
  document.getElementById("users-wrap").hidden = false;
  status.textContent = `${users.length} ${users.length === 1 ? "user" : "users"}.`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  clearErrors(form);
  messages.clear();
  const body = {
    username: form.elements.namedItem("username").value.trim(),
    password: form.elements.namedItem("password").value,
    role: form.elements.namedItem("role").value,
  };
  try {
    await post("/bodhi/v1/users", body);
    form.reset();
    await load();
    status.textContent = `Added ${body.username} as ${ROLE_LABELS[body.role]}.`;
  } catch (error) {
    if (handleSessionEnded(error)) return;
    // A role above the manager's own is refused without naming a field: it is the role's.
    const onRole = error.status === 403 && !error.param;
    showError(form, onRole ? { message: error.message, param: "role" } : error);
  } finally {
    button.disabled = false;
  }
});

load();
