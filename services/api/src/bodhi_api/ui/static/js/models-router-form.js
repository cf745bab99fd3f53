// The router form (new and edit) on /bodhi/v1/routers: a model id served by an ordered list of targets (served
// ids from GET /bodhi/v1/models, never routers), a strategy and a cool-down. Each target is a row whose select is
// named `targets.N`, as the API names it in an error's `param`; rows move up and down with buttons.
import { del, get, post, put, routerPath } from "./api.js";
import { confirmAction } from "./confirm.js";
import { h } from "./dom.js";
import { clearErrors, showError } from "./forms.js";
import { handleSessionEnded } from "./layout.js";

const MAX_TARGETS = 16; // the API's limit (model_routers/schemas.py MAX_TARGETS)

const form = document.getElementById("router-form");
const field = (id) => document.getElementById(id);
const editing = form.dataset.modelId;
const list = field("target-rows");

let served = []; // GET /bodhi/v1/models entries a router may target: {id, source, api_model_name}
let targets = []; // the rows' values, in order ("" for a row not chosen yet)
let coolingUntil = {}; // target -> when its cool-down ends (ms since the epoch), from the router's `cooling_down`

function secondsLeft(target) {
  const until = coolingUntil[target];
  if (until === undefined) return 0;
  return Math.max(0, Math.ceil((until - Date.now()) / 1000));
}

// --- Target rows --------------------------------------------------------------------------------------------

function optionsFor(value) {
  const options = value ? [] : [h("option", { value: "", selected: true }, "Choose a model")];
  const groups = new Map();
  for (const model of served) {
    const label = model.source === "local" ? "Local aliases" : `API model ${model.api_model_name ?? ""}`.trim();
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(model.id);
  }
  for (const [label, ids] of groups) {
    options.push(h("optgroup", { label }, ids.map((id) => h("option", { value: id, selected: id === value }, id))));
  }
  if (value && !served.some((model) => model.id === value)) {
    // A saved target that is no longer served (or is a router now): shown, so that saving explains it.
    options.push(h("optgroup", { label: "Not served now" }, h("option", { value, selected: true }, `${value} (not served now)`)));
  }
  return options;
}

function moveButton(index, delta, label) {
  const last = index + delta < 0 || index + delta >= targets.length;
  return h(
    "button",
    {
      type: "button",
      class: `button button-secondary button-small ${delta < 0 ? "target-up" : "target-down"}`,
      disabled: last,
      on: { click: () => move(index, delta) },
    },
    label,
    h("span", { class: "visually-hidden" }, ` target ${index + 1}`),
  );
}

function targetRow(value, index) {
  const id = `targets-${index}`;
  const select = h(
    "select",
    { id, name: `targets.${index}`, "aria-describedby": `${id}-error ${id}-cooling` },
    optionsFor(value),
  );
  select.addEventListener("change", () => {
    targets[index] = select.value;
    showCooling();
  });
  return h(
    "li",
    { class: "field target-row" },
    h("label", { for: id }, `Target ${index + 1}`),
    h("p", { class: "field-error", id: `${id}-error`, hidden: true }),
    h(
      "div",
      { class: "target-controls" },
      select,
      h(
        "div",
        { class: "target-actions" },
        moveButton(index, -1, "Move up"),
        moveButton(index, 1, "Move down"),
        h(
          "button",
          { type: "button", class: "button button-secondary button-small target-remove", on: { click: () => remove(index) } },
          "Remove",
          h("span", { class: "visually-hidden" }, ` target ${index + 1}`),
        ),
      ),
    ),
    h("p", { class: "target-cooling", id: `${id}-cooling`, hidden: true }),
  );
}

function renderRows() {
  list.replaceChildren(...targets.map(targetRow));
  field("add-target").hidden = targets.length >= MAX_TARGETS;
  showCooling();
}

const rowAt = (index) => list.children[index];

function announce(text) {
  field("targets-announce").textContent = text;
}

function move(index, delta) {
  const to = index + delta;
  if (to < 0 || to >= targets.length) return;
  [targets[index], targets[to]] = [targets[to], targets[index]];
  renderRows();
  // The focus stays with the moved target: on the same button, or the other one when that end is reached.
  const same = rowAt(to).querySelector(delta < 0 ? ".target-up" : ".target-down");
  (same.disabled ? rowAt(to).querySelector(delta < 0 ? ".target-down" : ".target-up") : same).focus();
  announce(`Moved ${targets[to] || "the target"} to position ${to + 1} of ${targets.length}.`);
}

function remove(index) {
  const [gone] = targets.splice(index, 1);
  renderRows();
  const next = rowAt(Math.min(index, targets.length - 1));
  (next?.querySelector(".target-remove") ?? field("add-target")).focus();
  announce(`Removed ${gone || "the target"}; ${targets.length} ${targets.length === 1 ? "target" : "targets"} left.`);
}

function add() {
  if (targets.length >= MAX_TARGETS) return;
  targets.push("");
  renderRows();
  rowAt(targets.length - 1).querySelector("select").focus();
}

// --- Cool-downs (edit): which targets are left alone now, counting down ---------------------------------------

function showCooling() {
  targets.forEach((target, index) => {
    const note = rowAt(index)?.querySelector(".target-cooling");
    if (!note) return;
    const left = target ? secondsLeft(target) : 0;
    note.hidden = !left;
    note.textContent = left ? `Cooling down: tried again in ${left} s.` : "";
  });
  const summary = field("cooling-summary");
  if (!editing) return;
  const cooling = Object.keys(coolingUntil).filter((target) => secondsLeft(target) > 0);
  summary.hidden = false;
  summary.textContent = cooling.length
    ? `Cooling down now: ${cooling.map((target) => `${target} (${secondsLeft(target)} s left)`).join(", ")}. ` +
      "Requests skip a cooling target while another is available."
    : "No target is cooling down now.";
}

// --- Save and delete --------------------------------------------------------------------------------------------

function cooldownValue() {
  const raw = field("cooldown_s").value.trim();
  if (!raw) return undefined; // the API's default
  return /^\d+$/.test(raw) ? Number(raw) : raw; // the API explains a non-number
}

async function save(event) {
  event.preventDefault();
  clearErrors(form);
  if (!targets.length) {
    showError(form, { message: "Add at least one target: a served model this router sends requests to.", param: "targets" });
    return;
  }
  const unchosen = targets.indexOf("");
  if (unchosen >= 0) {
    showError(form, { message: `Choose a model for target ${unchosen + 1}, or remove it.`, param: `targets.${unchosen}` });
    return;
  }
  const body = { strategy: field("strategy").value, targets: [...targets], cooldown_s: cooldownValue() };
  const button = field("save");
  button.disabled = true;
  try {
    if (editing) await put(routerPath(editing), body);
    else await post("/bodhi/v1/routers", { model_id: field("model_id").value.trim(), ...body });
    location.assign("/ui/models/");
  } catch (error) {
    if (!handleSessionEnded(error)) showError(form, error);
    button.disabled = false;
  }
}

async function removeRouter(button) {
  const confirmed = await confirmAction({
    title: `Delete the router ${editing}?`,
    message: "Its model id stops being served at once; its targets are still served under their own ids.",
    confirmLabel: "Delete router",
  });
  if (!confirmed) return;
  clearErrors(form);
  button.disabled = true;
  try {
    await del(routerPath(editing));
    location.assign("/ui/models/");
  } catch (error) {
    if (!handleSessionEnded(error)) showError(form, error);
    button.disabled = false;
  }
}

// --- Loading ----------------------------------------------------------------------------------------------------

function fill(router) {
  field("strategy").value = router.strategy;
  field("cooldown_s").value = String(router.cooldown_s);
  targets = [...router.targets];
  const now = Date.now();
  coolingUntil = Object.fromEntries(
    Object.entries(router.cooling_down ?? {}).map(([target, seconds]) => [target, now + seconds * 1000]),
  );
}

async function load() {
  const status = field("form-status");
  try {
    const [models, router] = await Promise.all([get("/bodhi/v1/models"), editing ? get(routerPath(editing)) : null]);
    served = models.data.filter((model) => model.source !== "router");
    if (router) fill(router);
    else targets = [""];
  } catch (error) {
    if (handleSessionEnded(error)) return;
    status.textContent = `The ${editing ? "router" : "served models"} could not be loaded: ${error.message}`;
    return;
  }
  field("targets-empty").hidden = served.length > 0;
  renderRows();
  form.hidden = false;
  status.textContent = "";
  if (Object.keys(coolingUntil).length) {
    const ticker = setInterval(() => {
      showCooling();
      if (!Object.keys(coolingUntil).some((target) => secondsLeft(target) > 0)) clearInterval(ticker);
    }, 1000);
  }
}

form.addEventListener("submit", save);
field("add-target").addEventListener("click", add);
field("delete")?.addEventListener("click", (event) => removeRouter(event.currentTarget));
load();
