// The API model form (new and edit): the seed's eight steps on /bodhi/v1/models/api. Fetch Models and Test
// Connection send the form's URL and key, or, when editing with the key field blank, the saved model's id (the
// API then uses the stored key, and only for the stored URL).
import { get, post, put } from "./api.js";
import { h } from "./dom.js";
import { MAX_MODELS, FIELD_OF_CODE } from "./api-model-rules.js";
import { clearErrors, showError } from "./forms.js";
import { handleSessionEnded } from "./layout.js";

const FORMAT_LABELS = {
  openai: "OpenAI chat completions",
  "openai-responses": "OpenAI Responses API",
  anthropic: "Anthropic Messages",
};
const OPENAI_URL = "https://api.openai.com/v1";
const ANTHROPIC_URL = "https://api.anthropic.com/v1";
const MAX_HEADERS = 20; // the API's limit (api_models/schemas.py MAX_EXTRA_HEADERS)

const form = document.getElementById("api-model-form");
const field = (id) => document.getElementById(id);
const apiModelId = form.dataset.apiModelId;
const search = field("models");
const options = field("model-options");

let stored = null; // the saved API model, when editing
let available = []; // the ids the picker offers: the fetched ones, and any typed or already selected
let selected = []; // in the order chosen

const sameUrl = (a, b) => a.trim().replace(/\/+$/, "") === b.trim().replace(/\/+$/, "");
const urlChanged = () => stored !== null && !sameUrl(field("base_url").value, stored.base_url);

// An error of the API, pointed at the form's field for it (`models.3` is the models field).
function located(error) {
  let param = error.param ?? FIELD_OF_CODE[error.code] ?? null;
  if (param?.startsWith("models")) param = "models";
  return { message: error.message, param };
}

function fail(error) {
  if (handleSessionEnded(error)) return;
  const shown = located(error);
  showError(form, shown);
  if (shown.param === "api_key") field("api_key-warning").hidden = true; // the error says it again
}

// --- Steps 2-4: format, provider, base URL, key, prefix -------------------------------------------------------

function syncProvider() {
  const url = field("base_url").value;
  const radios = [...form.elements.namedItem("provider")];
  const match = radios.find((radio) => radio.value && sameUrl(radio.value, url));
  (match ?? radios.find((radio) => !radio.value)).checked = true;
}

function showKeyWarning() {
  const warning = field("api_key-warning");
  const needsKey = urlChanged() && stored.has_api_key && !field("api_key").value.trim();
  warning.textContent = needsKey
    ? `You changed the base URL, so enter the API key for ${field("base_url").value.trim()}: the stored key is sent only to the URL it was saved for.`
    : "";
  warning.hidden = !needsKey;
}

function choseProvider(event) {
  const url = event.target.value;
  field("base_url").value = url;
  if (!url) field("base_url").focus();
  // Anthropic speaks its own format; the others chat completions (keep the Responses API if chosen).
  const format = field("api_format");
  if (event.target.dataset.apiFormat) format.value = event.target.dataset.apiFormat;
  else if (url && format.value === "anthropic") format.value = "openai";
  showKeyWarning();
}

// A format change fills in its provider's URL when the base URL is blank or another format's quick pick.
function choseFormat() {
  const url = field("base_url").value.trim();
  const anthropic = field("api_format").value === "anthropic";
  if (anthropic && (!url || sameUrl(url, OPENAI_URL))) field("base_url").value = ANTHROPIC_URL;
  if (!anthropic && (!url || sameUrl(url, ANTHROPIC_URL))) field("base_url").value = OPENAI_URL;
  syncProvider();
  showKeyWarning();
}

// --- Extra headers: name/value rows ---------------------------------------------------------------------------

function headerRows() {
  return [...field("header-rows").querySelectorAll(".header-row")];
}

function renumberHeaders() {
  headerRows().forEach((row, index) => {
    const n = index + 1;
    row.querySelector(".header-name").setAttribute("aria-label", `Header ${n} name`);
    row.querySelector(".header-value").setAttribute("aria-label", `Header ${n} value`);
    row.querySelector(".header-remove").setAttribute("aria-label", `Remove header ${n}`);
  });
  field("add-header").hidden = headerRows().length >= MAX_HEADERS;
}

function addHeader(name = "", value = "") {
  const input = (cls, text, placeholder) =>
    h("input", { type: "text", class: cls, value: text, placeholder, autocomplete: "off", spellcheck: "false" });
  const nameInput = input("header-name", name, "Header name");
  const row = h(
    "li",
    { class: "header-row" },
    nameInput,
    input("header-value", value, "Value"),
    h("button", { type: "button", class: "chip-remove header-remove", on: { click: () => removeHeader(row) } }, "×"),
  );
  field("header-rows").append(row);
  renumberHeaders();
  return nameInput;
}

function removeHeader(row) {
  const index = headerRows().indexOf(row);
  row.remove();
  renumberHeaders();
  const left = headerRows();
  (left[Math.min(index, left.length - 1)]?.querySelector(".header-name") ?? field("add-header")).focus();
}

// The rows as the API's `extra_headers` object; rows left blank are skipped. Null (and an error shown) when a
// value has no name.
function extraHeaders() {
  const headers = {};
  for (const row of headerRows()) {
    const name = row.querySelector(".header-name").value.trim();
    const value = row.querySelector(".header-value").value.trim();
    if (!name && !value) continue;
    if (!name) {
      showError(form, { message: "Enter a name for each extra header, or remove the row.", param: "extra_headers" });
      return null;
    }
    headers[name] = value;
  }
  return headers;
}

function showPrefix() {
  field("prefix-field").hidden = !field("prefix-enabled").checked;
}

// --- Steps 5-6: fetch and select models ------------------------------------------------------------------------

function optionFor(id) {
  const box = h("input", { type: "checkbox", value: id, on: { change: () => toggle(id, box.checked) } });
  return h("li", {}, h("label", { class: "model-option" }, box, h("span", {}, id)));
}

function renderOptions() {
  const query = search.value.trim().toLowerCase();
  const shown = available.filter((id) => id.toLowerCase().includes(query));
  options.replaceChildren(...shown.map(optionFor));
  const empty = field("model-options-empty");
  empty.hidden = shown.length > 0;
  empty.textContent = available.length
    ? "No fetched model matches. Add the id you typed, or search again."
    : "No models yet: press Fetch Models, or type a model id and add it.";
  const typed = search.value.trim();
  const addTyped = field("add-typed");
  addTyped.hidden = !typed || available.includes(typed);
  addTyped.textContent = `Add “${typed}”`;
  field("select-all").hidden = !shown.length;
  syncSelection();
}

function syncSelection() {
  const full = selected.length >= MAX_MODELS;
  for (const box of options.querySelectorAll("input[type=checkbox]")) {
    box.checked = selected.includes(box.value);
    box.disabled = full && !box.checked;
  }
  field("models-limit").hidden = !full;
  field("clear-selection").hidden = !selected.length;
  const count = selected.length;
  field("models-count").textContent = count
    ? `${count} of at most ${MAX_MODELS} models selected.`
    : "No models selected.";
  field("model-chips").replaceChildren(
    ...selected.map((id) =>
      h(
        "li",
        { class: "chip" },
        h("span", { class: "chip-label" }, id),
        h("button", { type: "button", class: "chip-remove", "aria-label": `Remove ${id}`, on: { click: () => removeChip(id) } }, "×"),
      ),
    ),
  );
}

function toggle(id, on) {
  if (on && !selected.includes(id) && selected.length < MAX_MODELS) selected.push(id);
  if (!on) selected = selected.filter((s) => s !== id);
  syncSelection();
}

function removeChip(id) {
  const index = selected.indexOf(id);
  toggle(id, false);
  const buttons = field("model-chips").querySelectorAll(".chip-remove");
  (buttons[Math.min(index, buttons.length - 1)] ?? search).focus();
}

function selectAllShown() {
  for (const box of options.querySelectorAll("input[type=checkbox]")) {
    if (selected.length >= MAX_MODELS) break;
    if (!selected.includes(box.value)) selected.push(box.value);
  }
  syncSelection();
}

function addTyped() {
  const id = search.value.trim();
  if (!id) return;
  if (!available.includes(id)) available = [...available, id];
  search.value = "";
  toggle(id, true);
  renderOptions();
  search.focus();
}

// Where a check goes: the form's URL and key (none: a keyless provider), or the saved model (its stored key)
// when the key field is blank; always in the form's format, with its headers. Null when the headers are invalid.
function checkTarget() {
  const extra_headers = extraHeaders();
  if (extra_headers === null) return null;
  const baseUrl = field("base_url").value.trim();
  const apiKey = field("api_key").value.trim();
  const shape = { api_format: field("api_format").value, extra_headers };
  if (stored === null) return { base_url: baseUrl, api_key: apiKey, ...shape };
  const target = apiKey ? { id: stored.id, base_url: baseUrl, api_key: apiKey } : { id: stored.id, base_url: baseUrl };
  return { ...target, ...shape };
}

async function fetchModels(button) {
  clearErrors(form);
  const target = checkTarget();
  if (target === null) return;
  const status = field("fetch-status");
  button.disabled = true;
  status.textContent = "Fetching the provider's models…";
  try {
    const answer = await post("/bodhi/v1/models/api/fetch-models", target);
    available = [...answer.models, ...selected.filter((id) => !answer.models.includes(id))];
    status.textContent = `${answer.models.length} models found.`;
    renderOptions();
  } catch (error) {
    status.textContent = "";
    fail(error);
  } finally {
    button.disabled = false;
  }
}

// --- Step 7: test connection -----------------------------------------------------------------------------------

async function testConnection(button) {
  clearErrors(form);
  const result = field("test-result");
  result.className = "test-result";
  result.replaceChildren();
  if (!selected.length) {
    showError(form, { message: "Select a model first: the test sends it a tiny chat request.", param: "models" });
    return;
  }
  const target = checkTarget();
  if (target === null) return;
  button.disabled = true;
  result.textContent = `Testing with ${selected[0]}…`;
  try {
    const answer = await post("/bodhi/v1/models/api/test", { ...target, model: selected[0] });
    result.classList.add(answer.success ? "test-result-success" : "test-result-failure");
    result.replaceChildren(
      answer.success
        ? h("p", {}, h("strong", {}, "Connection successful. "), `${selected[0]} answered: “${(answer.response ?? "").trim()}”`)
        : h("p", {}, h("strong", {}, "Connection test failed. "), answer.error ?? "The provider did not answer."),
    );
  } catch (error) {
    result.textContent = "";
    fail(error);
  } finally {
    button.disabled = false;
  }
}

// --- Step 8: save ---------------------------------------------------------------------------------------------

function body(extra_headers) {
  const prefix = field("prefix-enabled").checked ? field("prefix").value.trim() : "";
  return {
    name: field("name").value.trim() || null,
    api_format: field("api_format").value,
    base_url: field("base_url").value.trim(),
    api_key: field("api_key").value.trim(),
    prefix: prefix || null,
    models: selected,
    extra_headers,
  };
}

async function save(event) {
  event.preventDefault();
  if (!selected.length) {
    showError(form, { message: "Select at least one model to serve: fetch the provider's models, then choose.", param: "models" });
    return;
  }
  if (field("prefix-enabled").checked && !field("prefix").value.trim()) {
    showError(form, { message: "Enter a prefix, or turn off “Enable prefix”.", param: "prefix" });
    return;
  }
  const headers = extraHeaders();
  if (headers === null) return;
  const button = field("save");
  button.disabled = true;
  try {
    if (stored === null) await post("/bodhi/v1/models/api", body(headers));
    else await put(`/bodhi/v1/models/api/${encodeURIComponent(stored.id)}`, body(headers));
    location.assign("/ui/models/");
  } catch (error) {
    fail(error);
    button.disabled = false;
  }
}

// --- Loading ----------------------------------------------------------------------------------------------------

async function loadFormats() {
  const select = field("api_format");
  const formats = (await get("/bodhi/v1/models/api/formats")).data;
  const current = select.value;
  select.replaceChildren(...formats.map((f) => h("option", { value: f }, FORMAT_LABELS[f] ?? f)));
  if (formats.includes(current)) select.value = current;
}

function fill(model) {
  stored = model;
  field("name").value = model.name;
  field("api_format").value = model.api_format;
  field("base_url").value = model.base_url;
  if (model.has_api_key) {
    field("api_key").placeholder = `Stored key ${model.api_key_hint}: leave blank to keep it`;
    field("api_key-hint").textContent =
      `Leave blank to keep the stored key (${model.api_key_hint}); enter a new key to replace it. ` +
      "A new base URL needs its key. Keys are encrypted (AES-GCM) and never shown again.";
  } else {
    field("api_key").placeholder = "No key: the provider needs none";
    field("api_key-hint").textContent =
      "This API model has no key: its provider gets no key header. Enter a key to add one; it is encrypted " +
      "(AES-GCM) and never shown again.";
  }
  field("header-rows").replaceChildren();
  for (const [name, value] of Object.entries(model.extra_headers ?? {})) addHeader(name, value);
  field("prefix-enabled").checked = Boolean(model.prefix);
  field("prefix").value = model.prefix ?? "";
  selected = [...model.models];
  available = [...model.models];
}

async function load() {
  const status = field("form-status");
  try {
    const [model] = await Promise.all([apiModelId ? get(`/bodhi/v1/models/api/${encodeURIComponent(apiModelId)}`) : null, loadFormats()]);
    if (model && !model.editable) {
      status.textContent = `You may edit only the API models you created; ${model.name} was created by another user. Ask a manager or an admin.`;
      return;
    }
    if (model) fill(model);
  } catch (error) {
    if (handleSessionEnded(error)) return;
    status.textContent = apiModelId ? `The API model could not be loaded: ${error.message}` : `The API formats could not be loaded: ${error.message}`;
    if (apiModelId) return;
  }
  syncProvider();
  showPrefix();
  renderOptions();
  form.hidden = false;
  status.textContent = "";
}

for (const radio of form.elements.namedItem("provider")) radio.addEventListener("change", choseProvider);
field("base_url").addEventListener("input", () => {
  syncProvider();
  showKeyWarning();
});
field("api_key").addEventListener("input", showKeyWarning);
field("api_format").addEventListener("change", choseFormat);
field("add-header").addEventListener("click", () => addHeader().focus());
field("prefix-enabled").addEventListener("change", showPrefix);
search.addEventListener("input", renderOptions);
search.addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault(); // Enter here adds the typed id; it does not send the form
  if (!field("add-typed").hidden) addTyped();
});
field("add-typed").addEventListener("click", addTyped);
field("select-all").addEventListener("click", selectAllShown);
field("clear-selection").addEventListener("click", () => {
  selected = [];
  syncSelection();
  search.focus(); // the button hides itself
});
field("fetch-models").addEventListener("click", (event) => fetchModels(event.currentTarget));
field("test-connection").addEventListener("click", (event) => testConnection(event.currentTarget));
form.addEventListener("submit", save);
load();
