// One message of a conversation as DOM: the user's text as typed, a model's answer as sanitised Markdown with
// highlighted code, then what happened to the answer (stopped, an error with the API's message, token usage).
import { h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

export function usageText(usage) {
  if (!usage) return "";
  const { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total } = usage;
  return `Tokens: ${prompt ?? "?"} prompt, ${completion ?? "?"} completion, ${total ?? "?"} total`;
}

function errorDetails(error) {
  const parts = [];
  if (error.status) parts.push(`HTTP ${error.status}`);
  if (error.code) parts.push(error.code);
  return parts.join(" · ");
}

export function errorBlock(error) {
  const details = errorDetails(error);
  return h(
    "div",
    { class: "chat-error" },
    h("p", { class: "chat-error-title" }, "The model could not answer"),
    h("p", { class: "chat-error-message" }, error.message),
    details ? h("p", { class: "chat-error-details" }, details) : null,
  );
}

function author(message) {
  if (message.role === "user") return "You";
  return message.model || "Assistant";
}

export function renderBody(body, message) {
  if (message.role === "user") body.replaceChildren(h("p", { class: "chat-text" }, message.content));
  else if (message.content) renderMarkdown(body, message.content, { rawHtml: "text" });
  else body.replaceChildren();
}

// `streaming`: the answer is still arriving (its body is re-rendered as it grows; see renderBody).
export function messageElement(message, { streaming = false } = {}) {
  const body = h("div", { class: "chat-message-body" });
  renderBody(body, message);
  const item = h(
    "li",
    { class: `chat-message chat-message-${message.role}`, "aria-busy": streaming ? "true" : false },
    h(
      "p",
      { class: "chat-message-meta" },
      h("span", { class: "chat-message-author" }, author(message)),
      streaming ? h("span", { class: "chat-message-state" }, "Writing…") : null,
    ),
    body,
  );
  body.hidden = !message.content && !streaming;
  if (message.stopped) item.append(h("p", { class: "chat-message-note" }, "Stopped: the answer ends here."));
  if (message.error) item.append(errorBlock(message.error));
  if (message.usage) item.append(h("p", { class: "chat-usage" }, usageText(message.usage)));
  return item;
}
