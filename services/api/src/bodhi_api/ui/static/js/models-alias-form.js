// The local alias form (new and edit) on /bodhi/v1/models/alias: a GGUF file the server found
// (GET /bodhi/v1/models/files) or a typed path, and the alias's context and request parameters.
import { aliasPath, get, post, put } from "./api.js";
import { h } from "./dom.js";
import { clearErrors, showError } from "./forms.js";
import { handleSessionEnded } from "./layout.js";

const form = document.getElementById("alias-form");
const field = (id) => document.getElementById(id);
const editing = form.dataset.alias;
const select = field("found-file");
const FILE_PARAMS = new Set(["path", "filename", "repo"]);

let files = []; // GET /bodhi/v1/models/files: {path, filename, repo, source, size_bytes}

const mode = () => form.elements.namedItem("file-mode").value;

function showMode() {
  field("found-field").hidden = mode() !== "found";
  field("path-field").hidden = mode() !== "typed";
}

function setMode(value) {
  for (const radio of form.elements.namedItem("file-mode")) radio.checked = radio.value === value;
  showMode();
}

function sizeOf(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let size = bytes;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function fileLabel(file) {
  const name = file.repo ? `${file.repo}: ${file.filename}` : file.filename;
  return `${name} (${sizeOf(file.size_bytes)})`;
}

function renderFiles() {
  const groups = [
    ["Models folder", files.filter((f) => f.source === "models_dir")],
    ["HuggingFace cache", files.filter((f) => f.source === "hf_cache")],
  ];
  const choose = h("option", { value: "" }, files.length ? "Choose a file" : "No GGUF files found");
  select.replaceChildren(
    choose,
    ...groups
      .filter(([, group]) => group.length)
      .map(([label, group]) =>
        h("optgroup", { label }, group.map((file) => h("option", { value: String(files.indexOf(file)) }, fileLabel(file)))),
      ),
  );
}

// The file part of the body: a found file by its repo and name (HF cache) or its path; a typed path as typed.
function fileBody() {
  if (mode() === "typed") return { path: field("path").value.trim() };
  const file = files[Number(select.value)];
  if (select.value === "" || !file) return null;
  return file.repo ? { repo: file.repo, filename: file.filename } : { path: file.path };
}

function paramValue(input) {
  const raw = input.value.trim();
  if (!raw) return undefined;
  switch (input.dataset.kind) {
    case "bool":
      return raw === "true";
    case "int":
    case "float":
      return raw !== "" && Number.isFinite(Number(raw)) ? Number(raw) : raw; // the API explains a non-number
    case "lines": {
      const lines = input.value.split("\n").map((line) => line.trim()).filter(Boolean);
      return lines.length === 1 ? lines[0] : lines;
    }
    default:
      return input.value;
  }
}

function params(group) {
  const found = {};
  for (const input of form.querySelectorAll(`[data-param="${group}"]`)) {
    const value = paramValue(input);
    if (value !== undefined) found[input.name.slice(group.length + 1)] = value;
  }
  return found;
}

// The API's `param` for a file is `path` or `filename`: the field showing it depends on the mode.
function located(error) {
  if (!FILE_PARAMS.has(error.param)) return error;
  return { message: error.message, param: mode() === "typed" ? "path" : "filename" };
}

async function save(event) {
  event.preventDefault();
  clearErrors(form);
  const file = fileBody();
  if (file === null) {
    showError(form, { message: "Choose a GGUF file, or choose “Type a path” and enter one.", param: "filename" });
    return;
  }
  const body = { ...file, context_params: params("context_params"), request_params: params("request_params") };
  const button = field("save");
  button.disabled = true;
  try {
    if (editing) await put(aliasPath(editing), body);
    else await post("/bodhi/v1/models/alias", { alias: field("alias").value.trim(), ...body });
    location.assign("/ui/models/");
  } catch (error) {
    if (!handleSessionEnded(error)) showError(form, located(error));
    button.disabled = false;
  }
}

function fillParams(group, values) {
  for (const [name, value] of Object.entries(values ?? {})) {
    const input = form.elements.namedItem(`${group}.${name}`);
    if (!input) continue;
    input.value = Array.isArray(value) ? value.join("\n") : String(value);
  }
}

function fill(alias) {
  fillParams("context_params", alias.context_params);
  fillParams("request_params", alias.request_params);
  const index = files.findIndex((f) =>
    alias.repo && alias.filename ? f.repo === alias.repo && f.filename === alias.filename : !f.repo && f.path === alias.path,
  );
  if (index >= 0) {
    select.value = String(index);
    setMode("found");
  } else {
    field("path").value = alias.path;
    setMode("typed");
  }
}

async function load() {
  const status = field("form-status");
  try {
    const [listing, alias] = await Promise.all([get("/bodhi/v1/models/files"), editing ? get(aliasPath(editing)) : null]);
    files = listing.data;
    field("models-dir").textContent = listing.models_dir;
    renderFiles();
    if (!files.length) setMode("typed");
    if (alias) fill(alias);
  } catch (error) {
    if (handleSessionEnded(error)) return;
    status.textContent = `The ${editing ? "alias" : "file list"} could not be loaded: ${error.message}`;
    if (editing) return;
    select.replaceChildren(h("option", { value: "" }, "The file list could not be loaded"));
    setMode("typed");
  }
  showMode();
  form.hidden = false;
  if (status.textContent.startsWith("Loading")) status.textContent = "";
}

for (const radio of form.elements.namedItem("file-mode")) radio.addEventListener("change", showMode);
form.addEventListener("submit", save);
load();
