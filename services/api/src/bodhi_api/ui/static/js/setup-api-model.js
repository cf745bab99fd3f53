// The setup wizard's compact API-model form: format, base URL (with quick picks), key, optional prefix, the
// provider's models (fetched through POST /bodhi/v1/models/api/fetch-models), a connection test
// (POST .../test) and saving (POST /bodhi/v1/models/api). The models pages have the full form.
import { post } from "./api.js";
import { h } from "./dom.js";
import { MAX_MODELS, FIELD_OF_CODE } from "./api-model-rules.js";
import { clearErrors, showError } from "./forms.js";


// A field error the form can point at: `models.0` (pydantic's location) is the `models` fieldset.
function fieldError(error) {
  const param = error.param ?? FIELD_OF_CODE[error.code] ?? null;
  return { message: error.message, param: param ? String(param).split(".")[0] : null };
}

function busy(button, running) {
  button.disabled = running;
  button.setAttribute("aria-busy", running ? "true" : "false");
}

export function initApiModelForm(form, { onSaved }) {
  const $ = (id) => document.getElementById(id);
  const baseUrl = $("base-url");
  const apiKey = $("api-key");
  const usePrefix = $("use-prefix");
  const prefix = $("prefix");
  const list = $("models-list");
  const filter = $("models-filter");
  const modelsStatus = $("models-status");
  const result = $("connection-result");

  const format = form.elements.namedItem("api_format");
  // An empty key is a keyless provider (a server on the network): no key header at all.
  const target = () => ({ base_url: baseUrl.value.trim(), api_key: apiKey.value.trim(), api_format: format.value });
  const selected = () => [...list.querySelectorAll("input:checked")].map((box) => box.value);

  function showSelection() {
    const count = selected().length;
    const total = list.querySelectorAll("input").length;
    modelsStatus.textContent = `${total} models found, ${count} selected.`;
    for (const box of list.querySelectorAll("input:not(:checked)")) box.disabled = count >= MAX_MODELS;
  }

  function showModels(models) {
    list.replaceChildren(
      ...models.map((model, index) =>
        h(
          "li",
          { class: "checkbox", dataset: { model: model.toLowerCase() } },
          h("input", { type: "checkbox", id: `model-${index}`, name: "model", value: model }),
          h("label", { for: `model-${index}` }, model),
        ),
      ),
    );
    list.hidden = models.length === 0;
    $("models-filter-field").hidden = models.length < 10;
    if (models.length === 0) modelsStatus.textContent = "The provider lists no models.";
    else showSelection();
  }

  for (const pick of form.querySelectorAll("[data-base-url]")) {
    pick.addEventListener("click", () => {
      baseUrl.value = pick.dataset.baseUrl;
      format.value = pick.dataset.apiFormat;
      baseUrl.focus();
    });
  }

  usePrefix.addEventListener("change", () => {
    $("prefix-field").hidden = !usePrefix.checked;
    if (usePrefix.checked) prefix.focus();
  });

  list.addEventListener("change", showSelection);

  filter.addEventListener("input", () => {
    const words = filter.value.trim().toLowerCase();
    for (const item of list.children) item.hidden = words !== "" && !item.dataset.model.includes(words);
  });

  $("fetch-models").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    clearErrors(form);
    busy(button, true);
    modelsStatus.textContent = "Fetching the provider's models…";
    try {
      const answer = await post("/bodhi/v1/models/api/fetch-models", target());
      showModels(answer.models ?? []);
    } catch (error) {
      modelsStatus.textContent = "";
      showError(form, fieldError(error));
    } finally {
      busy(button, false);
    }
  });

  $("test-connection").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    clearErrors(form);
    result.textContent = "";
    result.classList.remove("connection-ok", "connection-failed");
    const model = selected()[0];
    if (!model) {
      showError(form, { message: "Select a model to test the connection with.", param: "models" });
      return;
    }
    busy(button, true);
    result.textContent = `Testing with ${model}…`;
    try {
      const answer = await post("/bodhi/v1/models/api/test", { ...target(), model });
      result.classList.add(answer.success ? "connection-ok" : "connection-failed");
      result.textContent = answer.success
        ? `Connection works: ${model} answered.`
        : `The test failed: ${answer.error ?? "the provider did not answer."}`;
    } catch (error) {
      result.textContent = "";
      showError(form, fieldError(error));
    } finally {
      busy(button, false);
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const models = selected();
    if (models.length === 0) {
      showError(form, { message: "Fetch the provider's models and select at least one.", param: "models" });
      return;
    }
    const button = form.querySelector("button[type=submit]");
    busy(button, true);
    try {
      const saved = await post("/bodhi/v1/models/api", {
        ...target(),
        prefix: usePrefix.checked ? prefix.value.trim() : null,
        models,
      });
      onSaved(saved);
    } catch (error) {
      showError(form, fieldError(error));
    } finally {
      busy(button, false);
    }
  });
}
