// Knowledge base: upload files (multipart POST /v1/documents, with progress), list and
// delete documents (GET /v1/documents paged, DELETE /v1/documents/{id}), read one back
// with its chunks (GET /v1/documents/{id}?include=chunks, where the gateway serves it),
// and search as the chat would (POST /v1/rag/search). What the key may do is the API's
// decision.
import { ROOT, api, authorization, refused } from "./app.js";
import { sourceOf, el, clear, field, table, age, errorBox } from "./dom.js";

const PAGE = 50;

export async function render(root) {
  const files = el("input", { id: "kb-files", type: "file", multiple: true });
  const scope = el("select", { id: "kb-scope" }, el("option", { value: "tenant" }, "this tenant"), el("option", { value: "global" }, "global (admin)"));
  const progress = el("progress", { id: "kb-progress", max: 100, value: 0, hidden: true });
  const progressLabel = el("span", { id: "kb-progress-label", role: "status" });
  const uploaded = el("div", { id: "kb-uploaded" });
  const filter = el("input", { id: "kb-filter", type: "search", placeholder: "source contains…" });
  const list = el("div", { id: "kb-list" });
  const more = el("button", { type: "button", id: "kb-more", hidden: true }, "Next page");
  const query = el("input", { id: "kb-query", type: "search" });
  const k = el("input", { id: "kb-k", type: "number", min: 1, max: 10, value: 3 });
  const hits = el("div", { id: "kb-hits" });
  const reader = el("section", { id: "kb-document", className: "panel", "aria-labelledby": "kb-document-title", hidden: true });
  let after = null;
  let shown = [];

  const uploadForm = el(
    "form",
    { id: "kb-upload", className: "controls" },
    el("div", { className: "row" }, field("Files (.md, .txt, .pdf, .docx, .html)", files), field("Scope", scope)),
    el("div", { className: "actions" }, el("button", { type: "submit", id: "kb-upload-button" }, "Upload"), progress, progressLabel),
  );
  const searchForm = el(
    "form",
    { id: "kb-search", className: "controls" },
    el("div", { className: "row" }, field("Search the knowledge base", query), field("k", k)),
    el("div", { className: "actions" }, el("button", { type: "submit" }, "Search")),
  );

  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(uploaded);
    if (!files.files.length) {
      uploaded.append(el("p", { className: "error" }, "Choose a file first."));
      return;
    }
    const form = new FormData();
    for (const file of files.files) form.append("file", file, file.name);
    form.append("scope", scope.value);
    try {
      const result = await upload(form, (fraction) => {
        progress.hidden = false;
        progress.value = Math.round(fraction * 100);
        progressLabel.textContent = fraction < 1 ? `Uploading ${Math.round(fraction * 100)}%` : "Uploaded; indexing…";
      });
      progressLabel.textContent = "";
      progress.hidden = true;
      uploaded.append(el("p", { className: "ok", role: "status" }, `Ingested ${result.data.map((d) => `${d.source} (${d.chunk_count} chunks)`).join(", ")}.`));
      files.value = "";
      reload();
    } catch (error) {
      progress.hidden = true;
      progressLabel.textContent = "";
      uploaded.append(errorBox(error));
    }
  });

  searchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(hits);
    if (!query.value.trim()) return;
    try {
      const found = await api("v1/rag/search", { method: "POST", json: { query: query.value, k: Number(k.value) } });
      hits.append(
        found.data.length
          ? el("ol", { className: "hits" }, found.data.map((h) => el("li", {}, el("span", { className: "score" }, `score ${h.score.toFixed(3)} · similarity ${h.similarity.toFixed(3)} · ${sourceOf(h)}`), el("p", { className: "hit-text" }, h.text))))
          : el("p", { className: "muted" }, "No passage found."),
      );
    } catch (error) {
      hits.append(errorBox(error));
    }
  });

  filter.addEventListener("input", draw);
  more.addEventListener("click", load);

  function reload() {
    after = null;
    shown = [];
    load();
  }

  async function load() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (after) params.set("after", after);
    try {
      const page = await api(`v1/documents?${params}`);
      shown = shown.concat(page.data);
      after = page.has_more && page.data.length ? page.data[page.data.length - 1].id : null;
      more.hidden = !after;
      draw();
    } catch (error) {
      clear(list);
      list.append(errorBox(error));
    }
  }

  function draw() {
    clear(list);
    const needle = filter.value.trim().toLowerCase();
    const rows = shown.filter((d) => !needle || d.source.toLowerCase().includes(needle));
    if (!rows.length) {
      list.append(el("p", { className: "muted", id: "kb-empty" }, shown.length ? "No document matches the filter." : "No documents yet."));
      return;
    }
    list.append(
      table(
        ["Source", "Scope", "Chunks", "Added", ""],
        rows.map((d) => [
          el("button", { type: "button", className: "link source", "aria-label": `Read ${d.source}`, onclick: () => read(d) }, d.source),
          d.scope,
          String(d.chunk_count),
          `${age(d.created_at)} ago`,
          el("button", { type: "button", className: "small danger", "aria-label": `Delete ${d.source}`, onclick: () => remove(d) }, "Delete"),
        ]),
      ),
    );
  }

  async function read(d) {
    clear(reader);
    reader.hidden = false;
    const title = el("h3", { id: "kb-document-title", tabIndex: -1 }, `Document “${d.source}”`);
    const close = el("button", { type: "button", id: "kb-document-close", onclick: () => { reader.hidden = true; clear(reader); } }, "Close document");
    const status = el("p", { className: "muted", role: "status" }, "Loading…");
    reader.append(title, status);
    title.focus();
    let doc;
    try {
      doc = await api(`v1/documents/${encodeURIComponent(d.id)}?include=chunks`);
    } catch (error) {
      status.remove();
      if (error.status === 404 || error.status === 405) {
        // An older gateway has no read-back route (or the document is gone): say so.
        reader.append(el("p", { id: "kb-readback-unavailable", className: "warn", role: "status" }, `Read-back not available for this document (the gateway answered ${error.status}: ${error.message}).`), close);
      } else {
        reader.append(errorBox(error), close);
      }
      return;
    }
    status.remove();
    reader.append(documentView(doc || {}), close);
  }

  async function remove(d) {
    if (!window.confirm(`Delete “${d.source}” and its chunks?`)) return;
    try {
      await api(`v1/documents/${encodeURIComponent(d.id)}`, { method: "DELETE" });
      reload();
    } catch (error) {
      list.prepend(errorBox(error));
    }
  }

  root.append(
    el("h2", {}, "Knowledge base"),
    el("h3", {}, "Upload"),
    uploadForm,
    uploaded,
    el("h3", {}, "Search (what the chat would see)"),
    searchForm,
    hits,
    el("h3", {}, "Documents"),
    field("Filter by source", filter),
    list,
    more,
    reader,
  );
  reload();
}

function when(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

// A document read back: its fields and metadata, then its chunks in order. Everything
// is text (it comes from uploaded files).
function documentView(doc) {
  const shown = (value) => (value === null || value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value));
  const fields = Object.entries(doc).filter(([name]) => name !== "chunks" && name !== "metadata");
  const metadata = Object.entries(doc.metadata && typeof doc.metadata === "object" ? doc.metadata : {});
  const chunks = Array.isArray(doc.chunks) ? doc.chunks : [];
  const where = (c) =>
    [
      c.page !== null && c.page !== undefined ? `page ${c.page}` : null,
      Array.isArray(c.heading_path) ? c.heading_path.join(" › ") : c.heading_path || null,
      c.start !== undefined && c.end !== undefined ? `characters ${c.start}–${c.end}` : null,
    ].filter(Boolean).join(" · ");
  return el(
    "div",
    {},
    el("dl", { className: "doc-meta", id: "kb-document-meta" }, [...fields, ...metadata.map(([n, v]) => [`metadata.${n}`, v])].flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, name === "created_at" && value ? `${when(value)} (${age(value)} ago)` : shown(value))])),
    el("h4", {}, `${chunks.length} chunk${chunks.length === 1 ? "" : "s"}`),
    chunks.length
      ? el("ol", { className: "chunks", id: "kb-chunks" }, chunks.map((c) => el("li", { "data-chunk-id": shown(c.id) }, el("span", { className: "score" }, where(c) || shown(c.id)), el("p", { className: "hit-text" }, shown(c.text)))))
      : el("p", { className: "muted" }, "No chunk returned."),
  );
}

// XMLHttpRequest: fetch reports no upload progress.
function upload(form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", new URL("v1/documents", ROOT));
    for (const [name, value] of Object.entries(authorization())) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null;
      }
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(refused(request.status, body));
    });
    request.addEventListener("error", () => reject(new Error("The upload failed: the gateway could not be reached.")));
    request.send(form);
  });
}
