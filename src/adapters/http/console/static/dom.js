// DOM helpers. Text from the API (memories, documents, key names, error messages) only
// ever goes in as text nodes: nothing here parses a string as HTML.
const SVG = "http://www.w3.org/2000/svg";

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node && !name.includes("-")) node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  append(node, children);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

// A labelled field: every input of the console has a <label for>.
let counter = 0;
export function field(labelText, input, hint) {
  if (!input.id) input.id = `field-${++counter}`;
  return el(
    "div",
    { className: "field" },
    el("label", { htmlFor: input.id }, labelText),
    input,
    hint ? el("small", {}, hint) : null,
  );
}

export function table(headers, rows, caption) {
  return el(
    "table",
    {},
    caption ? el("caption", {}, caption) : null,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))),
    ),
  );
}

export function age(isoOrSeconds) {
  const then =
    typeof isoOrSeconds === "number" ? isoOrSeconds * 1000 : Date.parse(isoOrSeconds);
  const seconds = Math.max(0, (Date.now() - then) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

export function ms(value) {
  return `${Number(value).toFixed(value < 10 ? 1 : 0)} ms`;
}

export function errorBox(error) {
  return el("p", { className: "error", role: "alert" }, error.message || String(error));
}

// Where a passage comes from: the document's source (in the hit's metadata).
export function sourceOf(hit) {
  const metadata = hit.metadata || {};
  return String(hit.source || metadata.source || metadata.document_id || "unknown source");
}
