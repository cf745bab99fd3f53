// The settings panel: sampling options, the system prompt and streaming, kept in this browser (localStorage) and
// turned into the fields of a chat request. Empty fields are left out, so the model's own defaults apply.

const KEY = "bodhi.chat.settings";
const integer = (text) => Number.parseInt(text, 10);
const NUMBERS = { temperature: Number, top_p: Number, max_tokens: integer, seed: integer };
const TEXTS = ["stop", "system_prompt"];
const MAX_STOP = 4; // OpenAI accepts at most four stop sequences

export class ChatSettings {
  constructor(form) {
    this.form = form;
    this.restore();
    form.addEventListener("input", () => this.save());
    form.addEventListener("change", () => this.save());
    form.addEventListener("submit", (event) => event.preventDefault());
  }

  restore() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(KEY) || "{}");
    } catch {
      return; // unreadable: the defaults of the form stay
    }
    for (const name of [...Object.keys(NUMBERS), ...TEXTS]) {
      if (typeof saved[name] === "string") this.form.elements[name].value = saved[name];
    }
    if (typeof saved.stream === "boolean") this.form.elements.stream.checked = saved.stream;
  }

  save() {
    const values = { stream: this.form.elements.stream.checked };
    for (const name of [...Object.keys(NUMBERS), ...TEXTS]) values[name] = this.form.elements[name].value;
    localStorage.setItem(KEY, JSON.stringify(values));
  }

  get stream() {
    return this.form.elements.stream.checked;
  }

  get systemPrompt() {
    return this.form.elements.system_prompt.value.trim();
  }

  // The first field whose text is not a number (the browser keeps such input out of `value`), or null.
  invalidField() {
    for (const name of Object.keys(NUMBERS)) {
      const input = this.form.elements[name];
      if (input.validity.badInput || input.validity.stepMismatch) return input;
    }
    return null;
  }

  // The request's sampling fields: {temperature, top_p, max_tokens, seed, stop} where set.
  options() {
    const options = {};
    for (const [name, parse] of Object.entries(NUMBERS)) {
      const text = this.form.elements[name].value.trim();
      if (text !== "") options[name] = parse(text);
    }
    const stop = this.form.elements.stop.value
      .split("\n")
      .filter((line) => line.trim()) // kept as typed otherwise: a stop sequence may end in a space
      .slice(0, MAX_STOP);
    if (stop.length) options.stop = stop;
    return options;
  }
}
