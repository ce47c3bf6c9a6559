// Memory: a user's memories in this key's tenant (GET /v1/memories, paged with `after`),
// searched as the chat would (POST /v1/memories/search: score = similarity × decay
// weight, so the weight is score ÷ similarity), deleted one by one or all at once.
import { api } from "./app.js";
import { el, clear, field, table, age, errorBox } from "./dom.js";

const PAGE = 20;

export async function render(root) {
  const userId = el("input", { id: "mem-user", type: "text", required: true, value: sessionUser() });
  const query = el("input", { id: "mem-query", type: "search" });
  const results = el("div", { id: "mem-results" });
  const list = el("div", { id: "mem-list" });
  const more = el("button", { type: "button", id: "mem-more", hidden: true }, "Next page");
  const done = el("p", { id: "mem-done", role: "status" });
  let after = null;

  const loadForm = el(
    "form",
    { id: "mem-load", className: "controls" },
    el("div", { className: "row" }, field("User id", userId)),
    el(
      "div",
      { className: "actions" },
      el("button", { type: "submit", id: "mem-list-button" }, "List memories"),
      el("button", { type: "button", id: "mem-forget", className: "danger", onclick: forget }, "Forget this user"),
    ),
  );
  const searchForm = el(
    "form",
    { id: "mem-search", className: "controls" },
    el("div", { className: "row" }, field("Search this user's memories", query)),
    el("div", { className: "actions" }, el("button", { type: "submit" }, "Search")),
  );

  loadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    after = null;
    clear(list);
    load();
  });
  more.addEventListener("click", load);
  searchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(results);
    if (!userId.value.trim() || !query.value.trim()) return;
    try {
      const hits = await api("v1/memories/search", { method: "POST", json: { user_id: userId.value.trim(), query: query.value, limit: 20 } });
      results.append(
        table(
          ["Memory", "Score", "Similarity", "Decay weight", "Age"],
          hits.data.map((h) => [el("span", { className: "hit-text" }, h.text), h.score.toFixed(3), h.similarity.toFixed(3), h.similarity > 0 ? (h.score / h.similarity).toFixed(3) : "–", age(h.timestamp)]),
          `${hits.data.length} hits, as the chat would see them`,
        ),
      );
    } catch (error) {
      results.append(errorBox(error));
    }
  });

  async function load() {
    const user = userId.value.trim();
    if (!user) return;
    sessionStorage.setItem("gateway-console-memory-user", user);
    const params = new URLSearchParams({ user_id: user, limit: String(PAGE) });
    if (after) params.set("after", after);
    try {
      const page = await api(`v1/memories?${params}`);
      if (!page.data.length && !after) {
        list.append(el("p", { className: "muted", id: "mem-empty" }, `No memories for “${user}”.`));
      } else {
        list.append(
          table(
            ["Memory", "Age", "Metadata", ""],
            page.data.map((m) => {
              const text = el("div", { className: "hit-text" }, m.text);
              return [
                text,
                age(m.timestamp),
                Object.keys(m.metadata || {}).length ? JSON.stringify(m.metadata) : "",
                el(
                  "span",
                  { className: "buttons" },
                  el("button", { type: "button", className: "small", "aria-label": "Edit this memory", onclick: () => edit(m, text) }, "Edit"),
                  el("button", { type: "button", className: "small danger", "aria-label": "Delete this memory", onclick: () => remove(m) }, "Delete"),
                ),
              ];
            }),
          ),
        );
      }
      after = page.has_more && page.data.length ? page.data[page.data.length - 1].id : null;
      more.hidden = !after;
    } catch (error) {
      list.append(errorBox(error));
    }
  }

  // Correct a memory's text in place (PUT /v1/memories/{id}).
  function edit(m, node) {
    if (node.querySelector("textarea")) return;
    const box = el("textarea", { rows: 3, value: m.text, className: "edit-text" });
    const save = el("button", { type: "button", className: "small" }, "Save");
    const cancel = el("button", { type: "button", className: "small" }, "Cancel");
    const problem = el("span", { className: "error", role: "alert" });
    clear(node);
    node.append(field("Memory text", box), el("span", { className: "buttons" }, save, cancel), problem);
    box.focus();
    cancel.addEventListener("click", () => {
      clear(node);
      node.append(m.text);
    });
    save.addEventListener("click", async () => {
      try {
        const updated = await api(`v1/memories/${encodeURIComponent(m.id)}`, { method: "PUT", json: { user_id: m.user_id, text: box.value } });
        m.text = updated.text;
        clear(node);
        node.append(updated.text);
      } catch (error) {
        problem.textContent = error.message;
      }
    });
  }

  async function remove(m) {
    try {
      await api(`v1/memories/${encodeURIComponent(m.id)}?${new URLSearchParams({ user_id: m.user_id })}`, { method: "DELETE" });
      after = null;
      clear(list);
      await load();
    } catch (error) {
      list.prepend(errorBox(error));
    }
  }

  async function forget() {
    const user = userId.value.trim();
    if (!user) return;
    if (!window.confirm(`Forget every memory of “${user}”? This cannot be undone.`)) return;
    try {
      const result = await api(`v1/memories?${new URLSearchParams({ user_id: user })}`, { method: "DELETE" });
      done.textContent = `Forgot “${result.user_id}”: ${result.deleted} memories deleted.`;
      after = null;
      clear(list);
      clear(results);
      await load();
    } catch (error) {
      done.textContent = "";
      list.prepend(errorBox(error));
    }
  }

  root.append(
    el("h2", {}, "Memory"),
    el("p", { className: "muted" }, "Memories belong to a user within this key's tenant. The decay weight is shown for search hits (score ÷ similarity: 0.5 per half-life of age)."),
    loadForm,
    done,
    searchForm,
    results,
    el("h3", {}, "Memories, newest first"),
    list,
    more,
  );
  if (userId.value) load();
}

function sessionUser() {
  return sessionStorage.getItem("gateway-console-memory-user") || "";
}
