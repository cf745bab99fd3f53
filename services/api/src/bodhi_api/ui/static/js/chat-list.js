// The saved chats in the left sidebar: each opens by its link (#id), is renamed in place with a small form, and
// is deleted once the person confirms (confirm.js).
import { confirmAction } from "./confirm.js";
import { h } from "./dom.js";

export const UNTITLED = "New chat";

export class ChatList {
  constructor(list, empty, { onRename, onDelete }) {
    this.list = list;
    this.empty = empty;
    this.onRename = onRename;
    this.onDelete = onDelete;
  }

  render(chats, currentId) {
    this.empty.hidden = chats.length > 0;
    this.list.replaceChildren(...chats.map((chat) => this.item(chat, chat.id === currentId)));
  }

  item(chat, current) {
    const title = chat.title || UNTITLED;
    const li = h("li", { class: `chat-item${current ? " is-current" : ""}`, dataset: { id: chat.id } });
    const rename = h("button", { type: "button", class: "chat-item-action", "aria-label": `Rename chat “${title}”` }, "Rename");
    const remove = h("button", { type: "button", class: "chat-item-action", "aria-label": `Delete chat “${title}”` }, "Delete");
    rename.addEventListener("click", () => this.startRename(li, chat));
    remove.addEventListener("click", () => this.confirmDelete(chat));
    li.append(
      h(
        "a",
        { class: "chat-item-link", href: `#${chat.id}`, "aria-current": current ? "true" : false },
        h("span", { class: "chat-item-title" }, title),
        chat.model ? h("span", { class: "chat-item-model" }, chat.model) : null,
      ),
      h("div", { class: "chat-item-actions" }, rename, remove),
    );
    return li;
  }

  focusAction(id, label) {
    const item = [...this.list.children].find((li) => li.dataset.id === id);
    item?.querySelector(`.chat-item-action[aria-label^="${label}"]`)?.focus();
  }

  startRename(li, chat) {
    const inputId = `chat-rename-${chat.id}`;
    const input = h("input", { id: inputId, type: "text", value: chat.title, maxlength: 120, autocomplete: "off" });
    const cancel = h("button", { type: "button", class: "button button-secondary button-small" }, "Cancel");
    const form = h(
      "form",
      { class: "chat-rename", novalidate: true },
      h("label", { for: inputId }, "Chat name"),
      input,
      h("div", { class: "chat-rename-actions" }, h("button", { type: "submit", class: "button button-small" }, "Save"), cancel),
    );
    const restore = () => {
      li.replaceWith(this.item(chat, li.classList.contains("is-current")));
      this.focusAction(chat.id, "Rename");
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const title = input.value.trim();
      if (!title || title === chat.title) return restore();
      await this.onRename(chat, title); // renders the list again
      return this.focusAction(chat.id, "Rename");
    });
    cancel.addEventListener("click", restore);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        restore();
      }
    });
    li.replaceChildren(form);
    input.focus();
    input.select();
  }

  async confirmDelete(chat) {
    const confirmed = await confirmAction({
      title: "Delete this chat?",
      message: `“${chat.title || UNTITLED}” and its messages are removed from this browser. This cannot be undone.`,
      confirmLabel: "Delete chat",
    });
    if (confirmed) await this.onDelete(chat);
  }
}
