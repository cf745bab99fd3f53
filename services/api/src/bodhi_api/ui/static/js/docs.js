// The API reference: /openapi.json as a list of operations per section (tag), each with its parameters, its
// request body and its answers, their schemas expanded one level.
import { get } from "./api.js";
import { h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const METHODS = ["get", "post", "put", "patch", "delete"];

// Section names from the tags: "api-models" -> "API models".
function tagLabel(tag) {
  const words = tag.split("-").map((word) => (word === "api" ? "API" : word));
  const first = words[0];
  words[0] = first === "API" ? first : first.charAt(0).toUpperCase() + first.slice(1);
  return words.join(" ");
}

// Descriptions are Markdown (FastAPI takes them from docstrings), shown inline.
function describe(text, className = "muted") {
  return renderMarkdown(h("p", { class: className }), text, { inline: true });
}

function refName(ref) {
  return ref.split("/").pop();
}

// A short, readable type: "string", "ApiModelPublic", "array of string", "string or null", "one of a, b".
function typeOf(schema) {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  const union = schema.anyOf || schema.oneOf;
  if (union) return union.map(typeOf).join(" or ");
  if (schema.type === "array") return `array of ${typeOf(schema.items)}`;
  if (schema.type === "object" && schema.additionalProperties) return `object of ${typeOf(schema.additionalProperties)}`;
  return schema.type || "any";
}

function resolve(document, schema) {
  return schema && schema.$ref ? document.components?.schemas?.[refName(schema.$ref)] : schema;
}

// One level: the named schema's own fields, each with its type (by name) and description.
function schemaBlock(document, schema) {
  const name = typeOf(schema);
  const resolved = resolve(document, schema);
  const properties = resolved?.properties;
  const block = h("div", { class: "schema" }, h("p", { class: "schema-name" }, h("code", {}, name)));
  if (resolved?.description && schema.$ref) block.append(describe(resolved.description));
  if (!properties) return block;
  const required = new Set(resolved.required || []);
  const fields = Object.entries(properties).map(([field, spec]) =>
    h(
      "li",
      {},
      h("code", { class: "field-name" }, field),
      " ",
      h("span", { class: "field-type" }, typeOf(spec)),
      required.has(field) ? h("span", { class: "badge badge-required" }, "required") : null,
      spec.description ? describe(spec.description, "field-description") : null,
    ),
  );
  block.append(h("ul", { class: "schema-fields" }, fields));
  return block;
}

function jsonSchemaOf(content) {
  return content?.["application/json"]?.schema;
}

function parametersBlock(operation) {
  const parameters = operation.parameters || [];
  if (!parameters.length) return null;
  const items = parameters.map((p) =>
    h(
      "li",
      {},
      h("code", { class: "field-name" }, p.name),
      " ",
      h("span", { class: "field-type" }, `${typeOf(p.schema)}, in ${p.in}`),
      p.required ? h("span", { class: "badge badge-required" }, "required") : null,
      p.description ? describe(p.description, "field-description") : null,
    ),
  );
  return h("section", {}, h("h4", {}, "Parameters"), h("ul", { class: "schema-fields" }, items));
}

function responsesBlock(document, operation) {
  const entries = Object.entries(operation.responses || {}).filter(
    // FastAPI's generated 422 describes its own validation body; Bodhi answers those with 400 and an OpenAI error.
    ([status, answer]) => !(status === "422" && typeOf(jsonSchemaOf(answer.content)) === "HTTPValidationError"),
  );
  const items = entries.map(([status, answer]) => {
    const schema = jsonSchemaOf(answer.content);
    return h(
      "li",
      { class: "response" },
      h("span", { class: "status" }, status),
      " ",
      answer.description || "",
      schema && (schema.$ref || schema.type) ? schemaBlock(document, schema) : null,
    );
  });
  return h("section", {}, h("h4", {}, "Answers"), h("ul", { class: "responses" }, items));
}

function operationId(method, path) {
  return `op-${method}-${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")}`;
}

function operationBlock(document, method, path, operation) {
  const description = h("div", { class: "op-description" });
  if (operation.description) renderMarkdown(description, operation.description);
  const body = jsonSchemaOf(operation.requestBody?.content);
  const details = h(
    "details",
    { class: "op", id: operationId(method, path) },
    h(
      "summary",
      {},
      h("span", { class: `method method-${method}` }, method.toUpperCase()),
      h("code", { class: "op-path" }, path),
      h("span", { class: "op-summary" }, operation.summary || ""),
    ),
    h(
      "div",
      { class: "op-body" },
      description,
      parametersBlock(operation),
      body ? h("section", {}, h("h4", {}, "Request body"), schemaBlock(document, body)) : null,
      responsesBlock(document, operation),
    ),
  );
  details.dataset.search = `${method} ${path} ${operation.summary || ""} ${(operation.tags || []).join(" ")}`.toLowerCase();
  return details;
}

// Operations grouped by their first tag, in the document's order.
function groupByTag(document) {
  const groups = new Map();
  for (const [path, item] of Object.entries(document.paths || {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const tag = operation.tags?.[0] || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operationBlock(document, method, path, operation));
    }
  }
  return groups;
}

function applyFilter(container, status, total) {
  const query = document.getElementById("docs-filter").value.trim().toLowerCase();
  let shown = 0;
  for (const section of container.querySelectorAll(".docs-section")) {
    let visible = 0;
    for (const op of section.querySelectorAll(".op")) {
      op.hidden = Boolean(query) && !op.dataset.search.includes(query);
      if (!op.hidden) visible += 1;
    }
    section.hidden = visible === 0;
    shown += visible;
  }
  status.textContent = query ? `${shown} of ${total} operations match.` : `${total} operations.`;
}

async function showReference() {
  const status = document.getElementById("docs-status");
  const container = document.getElementById("docs-operations");
  let spec;
  try {
    spec = await get("/openapi.json");
  } catch (error) {
    status.textContent = `The API description could not be loaded: ${error.message}`;
    return;
  }
  const groups = groupByTag(spec);
  const toc = document.getElementById("docs-toc");
  let total = 0;
  for (const [tag, operations] of groups) {
    total += operations.length;
    const id = `tag-${tag.replace(/[^A-Za-z0-9]+/g, "-")}`;
    toc.append(h("li", {}, h("a", { href: `#${id}` }, tagLabel(tag))));
    container.append(h("section", { class: "docs-section", id }, h("h2", {}, tagLabel(tag)), operations));
  }
  const filter = document.getElementById("docs-filter");
  filter.addEventListener("input", () => applyFilter(container, status, total));
  applyFilter(container, status, total);
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target instanceof HTMLDetailsElement) {
    target.open = true;
    target.scrollIntoView();
  }
}

// The vendored Markdown scripts are deferred like this module; wait for the document so they have run.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", showReference);
else showReference();
