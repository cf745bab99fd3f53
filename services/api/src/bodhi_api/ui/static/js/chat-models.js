// The model selector: a text input with a listbox of the served models (the ARIA combobox pattern), grouped by
// source: routers first, then local models, then each API model under its name, ids as clients send them (with
// any prefix).
// Typing filters the list; arrows move through it, Enter picks, Escape closes. Any typed id may be used, even
// one the gateway no longer lists (a chat's old model): the gateway then says what is wrong.
import { h } from "./dom.js";

const SOURCE_LABELS = { router: "Routers", local: "Local models" };

// [{label, models: [id, ...]}] in the API's order (GET /bodhi/v1/models lists routers, then local aliases first).
export function groupModels(models) {
  const groups = new Map();
  for (const model of models) {
    const key = model.source in SOURCE_LABELS ? model.source : `api:${model.api_model_id}`;
    if (!groups.has(key)) {
      const label = SOURCE_LABELS[model.source] ?? `${model.api_model_name} (API model)`;
      groups.set(key, { label, models: [] });
    }
    groups.get(key).models.push(model.id);
  }
  return [...groups.values()];
}

export class ModelPicker {
  constructor(input, listbox, empty, { onChange }) {
    this.input = input;
    this.listbox = listbox;
    this.empty = empty; // shown while nothing matches what is typed
    this.onChange = onChange;
    this.ids = new Set();
    this.options = [];
    this.active = null;
    this.committed = input.value;
    input.addEventListener("input", () => this.open({ filter: true }));
    input.addEventListener("keydown", (event) => this.onKey(event));
    input.addEventListener("click", () => (this.isOpen ? this.close() : this.open({ filter: false })));
    input.addEventListener("blur", () => {
      this.close();
      this.commit(input.value);
    });
    // Keep the focus in the input while an option is clicked, so that blur does not close the list first.
    listbox.addEventListener("mousedown", (event) => event.preventDefault());
    listbox.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) this.choose(option);
    });
  }

  get value() {
    return this.input.value.trim();
  }

  // Show `id` as the chosen model without announcing a change.
  set value(id) {
    this.input.value = id;
    this.committed = id;
  }

  has(id) {
    return this.ids.has(id);
  }

  get isOpen() {
    return !this.listbox.hidden;
  }

  setModels(models) {
    this.ids = new Set(models.map((m) => m.id));
    this.options = [];
    const groups = groupModels(models).map((group, index) => {
      const labelId = `model-group-${index}`;
      const options = group.models.map((id) => {
        const attributes = { role: "option", id: `model-option-${this.options.length}`, dataset: { id } };
        const option = h("li", { ...attributes, class: "combobox-option", "aria-selected": "false" }, id);
        this.options.push(option);
        return option;
      });
      return h(
        "ul",
        { role: "group", "aria-labelledby": labelId, class: "combobox-group" },
        h("li", { role: "presentation", id: labelId, class: "combobox-group-label" }, group.label),
        options,
      );
    });
    this.listbox.replaceChildren(...groups);
  }

  open({ filter }) {
    const query = filter ? this.input.value.trim().toLowerCase() : "";
    let shown = 0;
    for (const group of this.listbox.querySelectorAll("[role=group]")) {
      let visible = 0;
      for (const option of group.querySelectorAll("[role=option]")) {
        option.hidden = Boolean(query) && !option.dataset.id.toLowerCase().includes(query);
        option.setAttribute("aria-selected", String(option.dataset.id === this.input.value.trim()));
        if (!option.hidden) visible += 1;
      }
      group.hidden = visible === 0;
      shown += visible;
    }
    this.listbox.hidden = shown === 0;
    this.empty.hidden = shown > 0 || !this.options.length;
    this.input.setAttribute("aria-expanded", String(shown > 0));
    if (!this.active || this.active.hidden) this.setActive(null);
  }

  close() {
    this.listbox.hidden = true;
    this.empty.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.setActive(null);
  }

  visibleOptions() {
    return this.options.filter((option) => !option.hidden && !option.parentElement.hidden);
  }

  setActive(option) {
    this.active?.classList.remove("is-active");
    this.active = option;
    if (option) {
      option.classList.add("is-active");
      this.input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
  }

  move(step) {
    if (!this.isOpen) this.open({ filter: false });
    const visible = this.visibleOptions();
    if (!visible.length) return;
    const at = visible.indexOf(this.active);
    const next = at === -1 ? (step > 0 ? 0 : visible.length - 1) : (at + step + visible.length) % visible.length;
    this.setActive(visible[next]);
  }

  onKey(event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      this.move(event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (this.isOpen && this.active) this.choose(this.active);
      else {
        this.close();
        this.commit(this.input.value);
      }
    } else if (event.key === "Escape" && this.isOpen) {
      event.preventDefault();
      this.close();
    }
  }

  choose(option) {
    this.input.value = option.dataset.id;
    this.close();
    this.commit(option.dataset.id);
  }

  commit(text) {
    const id = text.trim();
    this.input.value = id;
    if (id === this.committed) return;
    this.committed = id;
    this.onChange(id);
  }
}
