// Markdown from anyone (a model's reply, an API description) shown safely: marked renders it, DOMPurify keeps
// only harmless HTML, highlight.js colours code blocks. The page must ask for them: render(vendor=("markdown",)).

const PURIFY = {
  USE_PROFILE: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button"],
  FORBID_ATTR: ["style"], // the Content-Security-Policy refuses inline style anyway; drop it rather than log it
};

export function markdownToFragment(text, { inline = false } = {}) {
  const source = String(text ?? "");
  const html = inline
    ? window.marked.parseInline(source, { gfm: true, async: false })
    : window.marked.parse(source, { gfm: true, async: false });
  const fragment = window.DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
  if (window.hljs) {
    for (const block of fragment.querySelectorAll("pre code")) window.hljs.highlightElement(block);
  }
  return fragment;
}

// Replace `element`'s content with `text` rendered: blocks (paragraphs, lists, code), or with `inline`, only
// inline marks (code, emphasis, links) for a one-line description.
export function renderMarkdown(element, text, { inline = false } = {}) {
  element.replaceChildren(markdownToFragment(text, { inline }));
  element.classList.add("markdown");
  return element;
}
