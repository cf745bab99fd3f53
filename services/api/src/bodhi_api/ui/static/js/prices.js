// The prices on the usage page: GET /bodhi/v1/prices for everyone; managers and admins set one (PUT
// /bodhi/v1/prices/{model_id}) and delete one (DELETE). US dollars per million input and output tokens.
import { del, get, pricePath, put } from "./api.js";
import { h } from "./dom.js";
import { clearErrors, showError } from "./forms.js";
import { handleSessionEnded } from "./layout.js";
import { formatUsd } from "./money.js";
import { PageMessages } from "./page-messages.js";

const table = document.getElementById("prices-table");
const rows = table.querySelector("tbody");
const status = document.getElementById("prices-status");
const messages = new PageMessages(status, document.getElementById("prices-alert"));
const form = document.getElementById("price-form"); // only for managers and admins
const mayPrice = table.dataset.mayPrice === "true";
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

async function remove(price) {
  const question = {
    title: `Delete the price of ${price.model_id}?`,
    message: "Its usage counts as unpriced again, past usage included.",
    confirmLabel: "Delete price",
  };
  await messages.runConfirmed(question, async () => {
    await del(pricePath(price.model_id));
    await load();
  }, `Deleted the price of ${price.model_id}.`);
}

function row(price) {
  const cells = [
    h("th", { scope: "row" }, h("code", {}, price.model_id)),
    h("td", { class: "number" }, formatUsd(price.input_per_million)),
    h("td", { class: "number" }, formatUsd(price.output_per_million)),
    h("td", {}, h("time", { datetime: price.updated_at }, dateFormat.format(new Date(price.updated_at)))),
  ];
  if (mayPrice) {
    const button = h(
      "button",
      { type: "button", class: "button button-small button-danger", on: { click: () => remove(price) } },
      "Delete",
      h("span", { class: "visually-hidden" }, ` the price of ${price.model_id}`),
    );
    cells.push(h("td", { class: "row-actions" }, button));
  }
  return h("tr", { dataset: { modelId: price.model_id } }, cells);
}

async function load() {
  let prices;
  try {
    prices = (await get("/bodhi/v1/prices")).data;
  } catch (error) {
    status.textContent = "";
    messages.alert(error);
    return;
  }
  rows.replaceChildren(...prices.map(row));
  document.getElementById("prices-wrap").hidden = prices.length === 0;
  status.textContent = prices.length === 0 ? "No model has a price yet." : "";
}

async function offerModels() {
  try {
    const models = (await get("/v1/models")).data;
    document.getElementById("price-model-ids").replaceChildren(...models.map((m) => h("option", { value: m.id })));
  } catch {
    // Typing the id still works; the API says when it is not served.
  }
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  const value = (name) => form.elements.namedItem(name).value.trim();
  clearErrors(form);
  messages.clear();
  const modelId = value("model_id");
  if (!modelId) {
    showError(form, { message: "Enter the model id to price.", param: "model_id" });
    return;
  }
  for (const [name, what] of [["input_per_million", "input"], ["output_per_million", "output"]]) {
    if (value(name) === "") {
      showError(form, { message: `Enter the ${what} price in US dollars per million tokens (0 for free).`, param: name });
      return;
    }
  }
  button.disabled = true;
  try {
    await put(pricePath(modelId), {
      input_per_million: Number(value("input_per_million")),
      output_per_million: Number(value("output_per_million")),
    });
    form.reset();
    await load();
    status.textContent = `Saved the price of ${modelId}.`;
  } catch (error) {
    if (handleSessionEnded(error)) return;
    if (error.code === "model_not_found") error.param = "model_id";
    showError(form, error);
  } finally {
    button.disabled = false;
  }
});

if (form) offerModels();
load();
