// Markdown from anyone (a model's reply, an API description) shown safely: marked renders it, DOMPurify keeps
// only harmless HTML, highlight.js colours code blocks. The page must ask for them: render(vendor=("markdown",)).

const PURIFY = {
  USE_PROFILE: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button"],
  FORBID_ATTR: ["style"], // the Content-Security-Policy refuses inline style anyway; drop it rather than log it
};

// With `rawHtml: "text"` HTML written in the Markdown is shown as text instead of being cleaned by DOMPurify:
// Chromium reports a CSP violation for every inline handler or style attribute it parses, even in the inert
// document DOMPurify parses into, so untrusted text (a model's answer) must never reach a parser as HTML.
let escapingMarked = null;

function escapeHtml(raw) {
  return raw.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function markedFor(rawHtml) {
  if (rawHtml !== "text") return window.marked;
  escapingMarked ??= new window.marked.Marked({ renderer: { html: ({ text }) => escapeHtml(text) } });
  return escapingMarked;
}

export function markdownToFragment(text, { inline = false, rawHtml = "sanitise" } = {}) {
  const source = String(text ?? "");
  const marked = markedFor(rawHtml);
  const html = inline
    ? marked.parseInline(source, { gfm: true, async: false })
    : marked.parse(source, { gfm: true, async: false });
  const fragment = window.DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
  if (window.hljs) {
    for (const block of fragment.querySelectorAll("pre code")) window.hljs.highlightElement(block);
  }
  return fragment;
}

// Replace `element`'s content with `text` rendered: blocks (paragraphs, lists, code), or with `inline`, only
// inline marks (code, emphasis, links) for a one-line description; `rawHtml` as for markdownToFragment.
export function renderMarkdown(element, text, { inline = false, rawHtml = "sanitise" } = {}) {
  element.replaceChildren(markdownToFragment(text, { inline, rawHtml }));
  element.classList.add("markdown");
  return element;
}
