// The tokens page: the signed-in user's API tokens (GET/POST /bodhi/v1/tokens, PUT and DELETE /tokens/{id}).
// A new token is shown once, with a Copy button; the list never holds the tokens themselves. A token may expire
// (`expires_in_days`), be limited to some models (`allowed_models`, patterns with `*`) and have rate limits
// (`rpm_limit`, `tpm_limit`) and a budget (`budget_tokens` per UTC `budget_period`), shown with what it spent in
// the current period (`budget_spent`: tokens, and US dollars where its models have prices).
import { del, get, post, put } from "./api.js";
import { h } from "./dom.js";
import { clearErrors, showError } from "./forms.js";
import { handleSessionEnded, ROLE_LABELS } from "./layout.js";
import { budgetCell } from "./money.js";
import { PageMessages } from "./page-messages.js";

const form = document.getElementById("token-form");
const rows = document.querySelector("#tokens-table tbody");
const status = document.getElementById("tokens-status");
const messages = new PageMessages(status, document.getElementById("tokens-alert"));
const newToken = document.getElementById("new-token");
const tokenValue = document.getElementById("new-token-value");
const copyButton = document.getElementById("copy-token");
const copyStatus = document.getElementById("copy-status");

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function when(iso) {
  return iso ? h("time", { datetime: iso }, dateFormat.format(new Date(iso))) : h("span", { class: "muted" }, "Never");
}

function models(token) {
  if (token.allowed_models === null) return h("span", { class: "muted" }, "All");
  if (token.allowed_models.length === 0) return h("span", { class: "muted" }, "None");
  return h("span", { class: "token-models" }, ...token.allowed_models.map((id) => h("code", {}, id)));
}

function limits(token) {
  const parts = [];
  if (token.rpm_limit !== null) parts.push(`${token.rpm_limit} requests/min`);
  if (token.tpm_limit !== null) parts.push(`${token.tpm_limit} tokens/min`);
  const budget = token.budget_tokens === null ? null : budgetCell(token, `Budget of ${token.name}`);
  if (parts.length === 0 && budget === null) return h("span", { class: "muted" }, "None");
  return h("div", { class: "token-limits" }, parts.length > 0 ? h("span", {}, parts.join(", ")) : null, budget);
}

function statusBadge(token) {
  if (token.expired) return h("span", { class: "badge badge-inactive" }, "Expired");
  const active = token.status === "active";
  return h("span", { class: `badge ${active ? "badge-active" : "badge-inactive"}` }, active ? "Active" : "Inactive");
}

// A row's button: its visible label, and the token's name for a screen reader ("Delete laptop").
function rowButton(label, name, { danger = false, onClick }) {
  const kind = danger ? "button-danger" : "button-secondary";
  return h(
    "button",
    { type: "button", class: `button button-small ${kind}`, on: { click: onClick } },
    label,
    h("span", { class: "visually-hidden" }, ` ${name}`),
  );
}

async function setStatus(token, next) {
  await messages.run(async () => {
    await put(`/bodhi/v1/tokens/${encodeURIComponent(token.id)}`, { status: next });
    await load();
  }, `${token.name} is ${next === "active" ? "active again" : "inactive: it no longer works"}.`);
}

async function remove(token) {
  const question = {
    title: `Delete the token ${token.name}?`,
    message: "Anything that uses it stops working at once. This cannot be undone.",
    confirmLabel: "Delete token",
  };
  await messages.runConfirmed(question, async () => {
    await del(`/bodhi/v1/tokens/${encodeURIComponent(token.id)}`);
    await load();
  }, `Deleted ${token.name}.`);
}

function row(token) {
  const active = token.status === "active";
  return h(
    "tr",
    { dataset: { tokenId: token.id } },
    h("th", { scope: "row" }, token.name),
    h("td", {}, ROLE_LABELS[token.scope] ?? token.scope),
    h("td", {}, statusBadge(token)),
    h("td", {}, when(token.created_at)),
    h("td", {}, when(token.last_used_at)),
    h("td", {}, when(token.expires_at)),
    h("td", {}, models(token)),
    h("td", {}, limits(token)),
    h(
      "td",
      {},
      h(
        "div",
        { class: "row-buttons" },
        rowButton(active ? "Deactivate" : "Activate", token.name, {
          onClick: () => setStatus(token, active ? "inactive" : "active"),
        }),
        rowButton("Delete", token.name, { danger: true, onClick: () => remove(token) }),
      ),
    ),
  );
}

async function load() {
  let tokens;
  try {
    tokens = (await get("/bodhi/v1/tokens")).data;
  } catch (error) {
    status.textContent = "";
    messages.alert(error);
    return;
  }
  rows.replaceChildren(...tokens.map(row));
  document.getElementById("tokens-wrap").hidden = tokens.length === 0;
  status.textContent = tokens.length === 0 ? "You have no tokens yet." : "";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  clearErrors(form);
  messages.clear();
  try {
    const value = (name) => form.elements.namedItem(name).value.trim();
    const body = { name: value("name"), scope: value("scope") };
    if (value("expires_in_days")) body.expires_in_days = Number(value("expires_in_days"));
    const patterns = value("allowed_models").split(",").map((id) => id.trim()).filter(Boolean);
    if (patterns.length > 0) body.allowed_models = patterns;
    for (const field of ["rpm_limit", "tpm_limit", "budget_tokens"]) if (value(field)) body[field] = Number(value(field));
    if (value("budget_tokens")) body.budget_period = value("budget_period");
    const created = await post("/bodhi/v1/tokens", body);
    form.reset();
    tokenValue.value = created.token;
    document.getElementById("new-token-label").textContent = `Token ${created.name}`;
    copyButton.textContent = "Copy token";
    copyStatus.textContent = "";
    newToken.hidden = false;
    document.getElementById("new-token-title").focus();
    await load();
  } catch (error) {
    if (error.param) error.param = error.param.split(".")[0]; // `allowed_models.1`: the field, not the item
    if (!handleSessionEnded(error)) showError(form, error);
  } finally {
    button.disabled = false;
  }
});

copyButton.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(tokenValue.value);
    copyButton.textContent = "Copied";
    copyStatus.textContent = "Copied the token to the clipboard.";
  } catch {
    tokenValue.select();
    copyStatus.textContent = "The browser refused to copy: the token is selected, copy it with Ctrl+C or ⌘C.";
  }
});

load();
