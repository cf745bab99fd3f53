// The models page: routers, local aliases and API models in one table (GET /bodhi/v1/routers,
// /bodhi/v1/models/alias and /models/api), each API model's first three served ids as links into chat, Edit and
// Delete where the API says the user may (routers: managers and above).
import { aliasPath, del, get, routerPath } from "./api.js";
import { h } from "./dom.js";
import { clearErrors, showError } from "./forms.js";
import { handleSessionEnded, roleAtLeast, whoami } from "./layout.js";

const FORMAT_LABELS = { openai: "OpenAI", "openai-responses": "OpenAI Responses", anthropic: "Anthropic" };
const STRATEGY_LABELS = { fallback: "Fallback", round_robin: "Round robin", least_busy: "Least busy" };
const TOP_MODELS = 3;

const rows = document.getElementById("models-rows");
const status = document.getElementById("models-status");
const filter = document.getElementById("models-filter");
const notice = document.getElementById("models-notice");
const dialog = document.getElementById("delete-dialog");
const dialogForm = dialog.querySelector("form");

const chatUrl = (modelId) => `/ui/chat/?model=${encodeURIComponent(modelId)}`;

function chatLinks(ids) {
  const shown = ids.slice(0, TOP_MODELS);
  const list = h("ul", { class: "model-links" }, shown.map((id) => h("li", {}, h("a", { href: chatUrl(id) }, id))));
  const more = ids.length - shown.length;
  return more > 0 ? [list, h("p", { class: "hint" }, `and ${more} more`)] : [list];
}

function actions({ name, editHref, onDelete }) {
  return h(
    "div",
    { class: "row-actions" },
    h("a", { class: "button button-secondary button-small", href: editHref }, "Edit", h("span", { class: "visually-hidden" }, ` ${name}`)),
    h(
      "button",
      { type: "button", class: "button button-secondary button-small button-delete", on: { click: onDelete } },
      "Delete",
      h("span", { class: "visually-hidden" }, ` ${name}`),
    ),
  );
}

// `location` is text (shown as code) or an element; routers name their columns' cells for what they hold.
function row({ name, detail, badge, format, location, links, action, search, labels = ["API format", "Base URL or file"] }) {
  return h(
    "tr",
    { dataset: { search: search.join(" ").toLowerCase() } },
    h("th", { scope: "row" }, h("span", { class: "model-name" }, name), detail ? h("span", { class: "hint model-detail" }, detail) : null),
    h("td", { dataset: { label: "Source" } }, badge),
    h("td", { dataset: { label: labels[0] } }, format),
    h("td", { class: "model-location", dataset: { label: labels[1] } }, typeof location === "string" ? h("code", {}, location) : location),
    h("td", { dataset: { label: "Chat with" } }, links),
    h("td", { dataset: { label: "Actions" } }, action),
  );
}

function apiModelRow(model) {
  const ids = model.models.map((id) => `${model.prefix ?? ""}${id}`);
  const format = FORMAT_LABELS[model.api_format] ?? model.api_format;
  return row({
    name: model.name,
    detail: model.prefix ? `Prefix ${model.prefix}` : null,
    badge: h("span", { class: "badge badge-api" }, "☁️ API"),
    format,
    location: model.base_url,
    links: chatLinks(ids),
    action: model.editable
      ? actions({
          name: model.name,
          editHref: `/ui/models/api/edit/?id=${encodeURIComponent(model.id)}`,
          onDelete: () => confirmDelete({ kind: "API model", name: model.name, path: `/bodhi/v1/models/api/${encodeURIComponent(model.id)}` }),
        })
      : null,
    search: [model.name, "api", format, model.base_url, model.prefix ?? "", ...ids],
  });
}

function aliasRow(alias, mayEdit) {
  return row({
    name: alias.alias,
    detail: alias.source === "auto" ? "Found in the HuggingFace cache" : null,
    badge: h("span", { class: "badge badge-local" }, "model"),
    format: "GGUF",
    location: alias.path,
    links: chatLinks([alias.alias]),
    action: mayEdit
      ? actions({
          name: alias.alias,
          editHref: `/ui/models/alias/edit/?alias=${encodeURIComponent(alias.alias)}`,
          onDelete: () => confirmDelete({ kind: "local alias", name: alias.alias, path: aliasPath(alias.alias) }),
        })
      : null,
    search: [alias.alias, "model local gguf", alias.path, alias.repo ?? ""],
  });
}

// A router's targets in the order it tries them, each marked when it is cooling down (from `cooling_down`).
function routerTargets(router) {
  return h(
    "ol",
    { class: "router-targets" },
    router.targets.map((target) => {
      const left = router.cooling_down?.[target];
      return h(
        "li",
        {},
        h("code", {}, target),
        left === undefined ? null : h("span", { class: "badge badge-cooling" }, `cooling down, ${Math.ceil(left)} s`),
      );
    }),
  );
}

function routerRow(router, mayEdit) {
  const strategy = STRATEGY_LABELS[router.strategy] ?? router.strategy;
  const cooling = Object.keys(router.cooling_down ?? {}).length;
  return row({
    name: router.model_id,
    detail: `${router.targets.length} ${router.targets.length === 1 ? "target" : "targets"}, cool-down ${router.cooldown_s} s` +
      (cooling ? `, ${cooling} cooling down` : ""),
    badge: h("span", { class: "badge badge-router" }, "⇄ Router"),
    format: strategy,
    location: routerTargets(router),
    labels: ["Strategy", "Targets, in order"],
    links: chatLinks([router.model_id]),
    action: mayEdit
      ? actions({
          name: router.model_id,
          editHref: `/ui/models/router/edit/?id=${encodeURIComponent(router.model_id)}`,
          onDelete: () => confirmDelete({ kind: "router", name: router.model_id, path: routerPath(router.model_id) }),
        })
      : null,
    search: [router.model_id, "router", router.strategy, strategy, ...router.targets],
  });
}

function applyFilter() {
  const query = filter.value.trim().toLowerCase();
  let shown = 0;
  for (const tr of rows.children) {
    tr.hidden = Boolean(query) && !tr.dataset.search.includes(query);
    if (!tr.hidden) shown += 1;
  }
  const total = rows.children.length;
  if (!total) status.textContent = "No models yet.";
  else if (query) status.textContent = shown ? `${shown} of ${total} models match “${filter.value.trim()}”.` : `No model matches “${filter.value.trim()}”.`;
  else status.textContent = `${total} ${total === 1 ? "model" : "models"}.`;
}

async function load() {
  try {
    const [user, routers, aliases, apiModels] = await Promise.all([
      whoami(),
      get("/bodhi/v1/routers"),
      get("/bodhi/v1/models/alias"),
      get("/bodhi/v1/models/api"),
    ]);
    const mayEditAliases = roleAtLeast(user.role, "power_user");
    const mayEditRouters = roleAtLeast(user.role, "manager");
    rows.replaceChildren(
      ...routers.data.map((r) => routerRow(r, mayEditRouters)),
      ...aliases.data.map((a) => aliasRow(a, mayEditAliases)),
      ...apiModels.data.map(apiModelRow),
    );
    applyFilter();
  } catch (error) {
    if (handleSessionEnded(error)) return;
    status.textContent = `The models could not be loaded: ${error.message}`;
  }
}

const DELETE_TEXTS = {
  "API model": "Its stored API key is deleted too, and its models stop being served at once. This cannot be undone.",
  "local alias": "Its name stops being served at once; the GGUF file itself is not deleted.",
  router: "Its model id stops being served at once; its targets are still served under their own ids.",
};

function confirmDelete(target) {
  dialog.querySelector("#delete-title").textContent = `Delete the ${target.kind} ${target.name}?`;
  dialog.querySelector("#delete-text").textContent = DELETE_TEXTS[target.kind];
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue === "delete") remove(target);
  };
  dialog.showModal();
}

async function remove(target) {
  clearErrors(dialogForm);
  notice.hidden = true;
  try {
    await del(target.path);
  } catch (error) {
    if (!handleSessionEnded(error)) showError(dialogForm, error);
    return;
  }
  notice.textContent = `Deleted the ${target.kind} ${target.name}.`;
  notice.hidden = false;
  await load();
  notice.focus(); // the button that opened the dialog has gone with its row
}

filter.addEventListener("input", applyFilter);
load();
