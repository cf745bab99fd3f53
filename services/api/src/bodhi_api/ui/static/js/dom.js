// Building DOM without innerHTML: text is always text, so names and messages from the API cannot become markup.
//   h("a", { href: "/ui/", class: "button" }, "Home")
// Attributes: `class`, `hidden` and other booleans (true / false), `dataset` (an object), `on` ({click: fn}).
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "on") for (const [type, listener] of Object.entries(value)) element.addEventListener(type, listener);
    else element.setAttribute(name === "className" ? "class" : name, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}
