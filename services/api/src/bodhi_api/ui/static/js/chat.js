// The chat page: pick a served model, talk to it through POST /v1/chat/completions (streamed as it is written,
// stoppable), and keep the chats in this browser. `?model=ID` preselects a model for a new chat; `#ID` opens a
// saved chat.
import { get } from "./api.js";
import { ChatList, UNTITLED } from "./chat-list.js";
import { messageElement, renderBody } from "./chat-messages.js";
import { ModelPicker } from "./chat-models.js";
import { ChatSettings } from "./chat-settings.js";
import { ChatStore, newChat } from "./chat-store.js";
import { complete } from "./chat-stream.js";
import { handleSessionEnded, whoami } from "./layout.js";

const $ = (id) => document.getElementById(id);
const LAST_MODEL = "bodhi.chat.model";
const TITLE_LENGTH = 48;
const NARROW = "(max-width: 64rem)"; // the sidebars fold away (app.css, chat page section)

const state = {
  store: null,
  chats: [],
  chat: null,
  controller: null, // the AbortController of the request in flight
  modelsLoaded: false,
};

const picker = new ModelPicker($("chat-model"), $("chat-model-options"), $("chat-model-none"), {
  onChange: modelChosen,
});
const settings = new ChatSettings($("chat-settings-form"));
const list = new ChatList($("chat-list"), $("chat-list-empty"), { onRename: renameChat, onDelete: deleteChat });

function announce(text) {
  $("chat-status").textContent = text;
}

function isSaved(chat) {
  return state.chats.some((saved) => saved.id === chat.id);
}

function initialModel() {
  const asked = new URLSearchParams(location.search).get("model");
  return asked || localStorage.getItem(LAST_MODEL) || "";
}

function showModelWarning(text) {
  const warning = $("chat-model-warning");
  warning.textContent = text;
  warning.hidden = !text;
}

function checkModel() {
  const id = picker.value;
  const missing = id && state.modelsLoaded && !picker.has(id);
  showModelWarning(missing ? `“${id}” is not served now; the gateway will say why if you send.` : "");
}

async function persist(chat) {
  chat.updatedAt = Date.now();
  try {
    await state.store.put(chat);
    state.chats = await state.store.list();
  } catch (error) {
    // A browser that refuses storage (quota, some private modes): the chat goes on, unsaved.
    announce(`This chat could not be saved in the browser: ${error.message}`);
    if (!isSaved(chat)) state.chats = [chat, ...state.chats];
  }
  list.render(state.chats, state.chat?.id);
}

function modelChosen(id) {
  const chat = state.chat;
  if (!chat) return; // still starting: openChat below takes the picker's value
  chat.model = id;
  if (id) localStorage.setItem(LAST_MODEL, id);
  checkModel();
  if (isSaved(chat)) persist(chat);
}

function nearBottom() {
  return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 160;
}

function scrollToEnd() {
  window.scrollTo({ top: document.documentElement.scrollHeight });
}

function renderConversation() {
  const { messages } = state.chat;
  $("chat-messages").replaceChildren(...messages.map((message) => messageElement(message)));
  $("chat-empty").hidden = messages.length > 0;
}

function openChat(chat) {
  if (state.controller) state.controller.abort();
  state.chat = chat;
  picker.value = chat.model;
  checkModel();
  $("chat-title").textContent = chat.title || UNTITLED;
  document.title = `${chat.title || "Chat"} · Bodhi`;
  renderConversation();
  list.render(state.chats, chat.id);
  const url = new URL(location.href);
  url.hash = isSaved(chat) ? chat.id : "";
  history.replaceState(null, "", url);
}

async function openFromHash() {
  const id = location.hash.slice(1);
  if (!id || id === state.chat?.id) return;
  const chat = await state.store.get(id);
  if (chat) openChat(chat);
  if (window.matchMedia(NARROW).matches) $("chat-history").open = false;
}

async function renameChat(chat, title) {
  chat.title = title;
  if (state.chat?.id === chat.id) {
    state.chat.title = title;
    $("chat-title").textContent = title;
  }
  await persist(chat.id === state.chat?.id ? state.chat : chat);
}

async function deleteChat(chat) {
  await state.store.delete(chat.id);
  state.chats = await state.store.list();
  if (state.chat?.id === chat.id) openChat(newChat(picker.value));
  else list.render(state.chats, state.chat?.id);
  announce(`Deleted “${chat.title || UNTITLED}”.`);
  $("chat-new").focus();
}

// The request's messages: the system prompt, then the conversation without failed answers.
function requestMessages(chat) {
  const messages = settings.systemPrompt ? [{ role: "system", content: settings.systemPrompt }] : [];
  for (const message of chat.messages) {
    if (message.role === "user" || (message.role === "assistant" && message.content && !message.error)) {
      messages.push({ role: message.role, content: message.content });
    }
  }
  return messages;
}

function showSettingError(input) {
  const error = $(`${input.id}-error`);
  error.textContent = "Enter a number, or leave it empty.";
  error.hidden = false;
  input.setAttribute("aria-invalid", "true");
  input.closest(".field").classList.add("field-invalid");
  $("chat-settings").open = true;
  input.focus();
}

function clearSettingErrors() {
  const form = $("chat-settings-form");
  for (const error of form.querySelectorAll(".field-error")) error.hidden = true;
  for (const field of form.querySelectorAll(".field-invalid")) field.classList.remove("field-invalid");
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function setBusy(busy) {
  const stop = $("chat-stop");
  const hadFocus = document.activeElement === stop || document.activeElement === $("chat-send");
  $("chat-send").disabled = busy;
  stop.hidden = !busy;
  if (busy && hadFocus) stop.focus();
  else if (!busy && (hadFocus || document.activeElement === document.body)) $("chat-input").focus();
}

// Redraw a growing answer at most once a frame: Markdown is rendered whole each time.
function streamInto(item, answer) {
  let pending = false;
  return (text) => {
    answer.content = text;
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const stick = nearBottom();
      const body = item.querySelector(".chat-message-body");
      body.hidden = false;
      renderBody(body, answer);
      if (stick) scrollToEnd();
    });
  };
}

async function ask(chat, answer, item) {
  const body = { model: answer.model, messages: requestMessages(chat), ...settings.options() };
  if (settings.stream) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
  state.controller = new AbortController();
  setBusy(true);
  try {
    const result = await complete(body, { signal: state.controller.signal, onText: streamInto(item, answer) });
    Object.assign(answer, { content: result.content, usage: result.usage });
    announce("The answer is complete.");
  } catch (error) {
    if (error.name === "AbortError") {
      answer.stopped = true;
      announce("Stopped.");
    } else if (handleSessionEnded(error)) {
      return;
    } else {
      answer.content = error.partial ?? answer.content;
      answer.error = { message: error.message, status: error.status >= 400 ? error.status : null, code: error.code };
      announce(`The model could not answer: ${error.message}`);
    }
  } finally {
    state.controller = null;
    setBusy(false);
  }
  chat.messages.push(answer);
  item.replaceWith(messageElement(answer));
  await persist(chat);
}

async function send(text) {
  const chat = state.chat;
  chat.model = picker.value;
  if (!chat.model) {
    showModelWarning("Choose a model first.");
    $("chat-model").focus();
    return;
  }
  clearSettingErrors();
  const invalid = settings.invalidField();
  if (invalid) return showSettingError(invalid);
  $("chat-input").value = "";
  chat.messages.push({ role: "user", content: text, at: Date.now() });
  if (!chat.title) chat.title = text.length > TITLE_LENGTH ? `${text.slice(0, TITLE_LENGTH - 1)}…` : text;
  $("chat-title").textContent = chat.title;
  await persist(chat);
  openChat(chat); // now saved: its link is in the list and its id in the address
  const answer = { role: "assistant", content: "", model: chat.model, at: Date.now() };
  const item = messageElement(answer, { streaming: true });
  $("chat-messages").append(item);
  scrollToEnd();
  await ask(chat, answer, item);
}

function wireComposer() {
  const input = $("chat-input");
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text && !state.controller) send(text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("chat-stop").addEventListener("click", () => state.controller?.abort());
  $("chat-new").addEventListener("click", () => {
    openChat(newChat(picker.value || initialModel()));
    input.focus();
  });
  window.addEventListener("hashchange", openFromHash);
}

async function loadModels() {
  try {
    const { data } = await get("/bodhi/v1/models");
    picker.setModels(data);
    state.modelsLoaded = true;
    return data;
  } catch (error) {
    if (!handleSessionEnded(error)) showModelWarning(`The models could not be listed: ${error.message}`);
    return [];
  }
}

async function start() {
  if (window.matchMedia(NARROW).matches) {
    $("chat-history").open = false;
    $("chat-settings").open = false;
  }
  let user;
  try {
    user = await whoami();
  } catch (error) {
    if (!handleSessionEnded(error)) announce(`The chat could not start: ${error.message}`);
    return;
  }
  state.store = new ChatStore(user.id);
  const savedChats = state.store.list().catch((error) => {
    announce(`The saved chats could not be read: ${error.message}`);
    return [];
  });
  const [models, chats] = await Promise.all([loadModels(), savedChats]);
  state.chats = chats;
  const saved = location.hash && chats.find((chat) => chat.id === location.hash.slice(1));
  openChat(saved || newChat(initialModel() || models[0]?.id || ""));
  // Only now: a message sent before the chat exists would have nowhere to go.
  wireComposer();
  $("chat-send").disabled = false;
  document.body.dataset.chatReady = "";
}

// The vendored Markdown scripts are deferred like this module; wait for the document so they have run.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
