// Playground: POST /v1/chat with stream=true. The answer streams in; the context event
// shows the memories and passages that went into it; the metadata event gives each
// stage's time, drawn as a waterfall against the latency budget, and what degraded.
import { ROOT, authorization, refused } from "./app.js";
import { sourceOf, el, svg, clear, field, ms, age, errorBox } from "./dom.js";

const STORE = "gateway-console-playground";

function remembered() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE)) || {};
  } catch {
    return {};
  }
}

export async function render(root) {
  const saved = remembered();
  const message = el("textarea", { id: "pg-message", rows: 4, required: true });
  const userId = el("input", { id: "pg-user", type: "text", value: saved.user_id || "console-user" });
  const useMemory = el("input", { id: "pg-memory", type: "checkbox", checked: saved.use_memory ?? true });
  const useRag = el("input", { id: "pg-rag", type: "checkbox", checked: saved.use_rag ?? true });
  const storeMemory = el("input", { id: "pg-store", type: "checkbox", checked: saved.store_memory ?? true });
  const ragK = el("input", { id: "pg-rag-k", type: "number", min: 1, max: 10, value: saved.rag_k || 3 });
  const memoryLimit = el("input", { id: "pg-memory-limit", type: "number", min: 1, max: 20, value: saved.memory_limit || 5 });
  const budget = el("input", { id: "pg-budget", type: "number", min: 1, placeholder: "server default", value: saved.budget || "" });
  const model = el("select", { id: "pg-model" }, el("option", { value: "" }, "default model"));
  const send = el("button", { id: "pg-send", type: "submit" }, "Send");
  const stop = el("button", { id: "pg-stop", type: "button", disabled: true }, "Stop");

  const answer = el("div", { id: "pg-answer", className: "answer", "aria-live": "polite" });
  const status = el("p", { id: "pg-status", className: "muted" });
  const degraded = el("div", { id: "pg-degraded" });
  const waterfall = el("div", { id: "pg-waterfall" });
  const memories = el("div", { id: "pg-memories" });
  const passages = el("div", { id: "pg-passages" });

  const form = el(
    "form",
    { id: "pg-form", className: "controls" },
    field("Message", message),
    el(
      "div",
      { className: "row" },
      field("User id", userId, "memories are kept per user"),
      field("Model", model),
    ),
    el(
      "fieldset",
      {},
      el("legend", {}, "Context"),
      el("div", { className: "checks" }, field("Use memory", useMemory), field("Use RAG", useRag), field("Store the turn as memory", storeMemory)),
      el("div", { className: "row" }, field("rag_k", ragK), field("memory_limit", memoryLimit), field("Latency budget (ms)", budget)),
    ),
    el("div", { className: "actions" }, send, stop),
  );

  root.append(
    el("h2", {}, "Playground"),
    el(
      "div",
      { className: "split" },
      el("div", {}, form, el("h3", {}, "Answer"), status, degraded, answer),
      el("aside", { "aria-label": "How the answer was made" }, el("h3", {}, "Stages"), waterfall, el("h3", {}, "Memories used"), memories, el("h3", {}, "Passages used"), passages),
    ),
  );

  fetch(new URL("v1/models", ROOT), { headers: authorization() })
    .then((r) => (r.ok ? r.json() : { data: [] }))
    .then((list) => {
      for (const m of list.data || []) {
        if (m.purpose === "embeddings") continue;
        model.append(el("option", { value: m.id, selected: m.id === saved.model }, m.id));
      }
    })
    .catch(() => {});

  let controller = null;

  // Enter in the message sends (Shift+Enter: a new line), as chat boxes do.
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!message.value.trim()) {
      status.textContent = "Write a message first.";
      return;
    }
    const body = {
      messages: [{ role: "user", content: message.value }],
      use_memory: useMemory.checked,
      use_rag: useRag.checked,
      store_memory: storeMemory.checked,
      rag_k: Number(ragK.value),
      memory_limit: Number(memoryLimit.value),
      stream: true,
    };
    if (userId.value.trim()) body.user_id = userId.value.trim();
    if (model.value) body.model = model.value;
    if (budget.value) body.latency_budget_ms = Number(budget.value);
    sessionStorage.setItem(
      STORE,
      JSON.stringify({ user_id: userId.value, use_memory: useMemory.checked, use_rag: useRag.checked, store_memory: storeMemory.checked, rag_k: ragK.value, memory_limit: memoryLimit.value, budget: budget.value, model: model.value }),
    );
    for (const node of [answer, degraded, waterfall, memories, passages]) clear(node);
    status.textContent = "Retrieving context…";
    send.disabled = true;
    stop.disabled = false;
    controller = new AbortController();
    const started = performance.now();
    try {
      await chat(body, controller.signal, {
        context: (c) => {
          status.textContent = "Generating…";
          showContext(c.context, memories, passages);
        },
        chunk: (c) => {
          const delta = c.choices && c.choices[0] && c.choices[0].delta;
          if (delta && delta.content) answer.append(delta.content);
        },
        metadata: (m) => {
          showDegraded(m.metadata.degraded, degraded);
          showWaterfall(m.metadata, waterfall);
          const usage = m.usage ? `, ${m.usage.total_tokens} tokens` : "";
          status.textContent = `Done in ${ms(performance.now() - started)} (server: ${ms(m.metadata.total_latency_ms)}${usage}).`;
        },
        error: (e) => {
          degraded.append(errorBox(new Error(`The stream failed: ${(e.error && e.error.message) || "error"}`)));
        },
      });
    } catch (error) {
      if (error.name === "AbortError") status.textContent = "Stopped.";
      else {
        status.textContent = "";
        degraded.append(errorBox(error));
      }
    } finally {
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
  });
  stop.addEventListener("click", () => controller && controller.abort());
  message.focus();
  return () => controller && controller.abort();
}

// fetch + a reader: EventSource cannot send the Authorization header (nor POST).
async function chat(body, signal, on) {
  const response = await fetch(new URL("v1/chat", ROOT), {
    method: "POST",
    headers: { ...authorization(), "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    throw refused(response.status, parsed);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      const payload = data.join("\n");
      if (!payload || payload === "[DONE]") continue;
      const handler = on[name];
      if (handler) handler(JSON.parse(payload));
    }
  }
}

function showContext(context, memories, passages) {
  const mems = context.memories || [];
  const docs = context.rag_documents || [];
  memories.append(
    mems.length
      ? el("ol", { className: "hits" }, mems.map((m) => el("li", {}, el("span", { className: "score" }, `score ${m.score.toFixed(3)} · similarity ${m.similarity.toFixed(3)} · ${age(m.timestamp)} old`), el("p", { className: "hit-text" }, m.text))))
      : el("p", { className: "muted" }, "none"),
  );
  passages.append(
    docs.length
      ? el("ol", { className: "hits" }, docs.map((d) => el("li", {}, el("span", { className: "score" }, `score ${d.score.toFixed(3)} · ${sourceOf(d)}`), el("p", { className: "hit-text" }, d.text))))
      : el("p", { className: "muted" }, "none"),
  );
}

function showDegraded(list, node) {
  if (!list || !list.length) {
    node.append(el("p", { className: "ok", id: "pg-not-degraded" }, "Not degraded: every stage asked for ran."));
    return;
  }
  node.append(
    el(
      "div",
      { className: "degraded", role: "alert" },
      el("strong", {}, "Degraded: "),
      el("ul", {}, list.map((d) => el("li", {}, el("code", {}, d.stage), ` — ${d.reason}`))),
    ),
  );
}

// The stages as the gateway runs them: the query's embedding, then memory and documents
// together, then generation; the rest of the total (building the context, storing the
// turn, the stream's end) is "other".
export function stages(m) {
  const retrieval = m.embedding_ms + Math.max(m.memory_retrieval_ms, m.rag_retrieval_ms);
  const rows = [
    { name: "embedding", start: 0, duration: m.embedding_ms },
    { name: "memory retrieval", start: m.embedding_ms, duration: m.memory_retrieval_ms },
    { name: "RAG retrieval", start: m.embedding_ms, duration: m.rag_retrieval_ms },
    { name: "generation", start: retrieval, duration: m.generation_ms },
  ];
  const other = m.total_latency_ms - retrieval - m.generation_ms;
  if (other > 0.05) rows.push({ name: "other", start: retrieval + m.generation_ms, duration: other });
  rows.push({ name: "total", start: 0, duration: m.total_latency_ms });
  return rows;
}

function showWaterfall(m, node) {
  const rows = stages(m);
  const budget = m.latency_budget_ms || 0;
  // Scaled to the request (a budget far above it would squash every bar); the budget is
  // drawn on the chart when it falls inside, and as a gauge below in any case.
  const scale = Math.max(m.total_latency_ms * 1.1, budget && budget < m.total_latency_ms * 1.6 ? budget * 1.05 : 0, 1);
  const width = 460;
  const label = 118;
  const rowHeight = 22;
  const height = rows.length * rowHeight + 8;
  const x = (t) => label + (Math.min(t, scale) / scale) * (width - label - 56);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "pg-waterfall-title", class: "waterfall" });
  chart.append(svg("title", { id: "pg-waterfall-title" }, `Stage timings of ${ms(m.total_latency_ms)}, latency budget ${ms(budget)}`));
  rows.forEach((row, i) => {
    const y = i * rowHeight + 4;
    chart.append(
      svg("text", { x: 4, y: y + 13, class: "stage-name" }, row.name),
      svg("rect", { x: x(row.start), y, width: Math.max(1, x(row.start + row.duration) - x(row.start)), height: rowHeight - 8, class: `bar bar-${row.name.split(" ")[0].toLowerCase()}` }),
      svg("text", { x: x(row.start + row.duration) + 4, y: y + 12, class: "bar-value" }, ms(row.duration)),
    );
  });
  if (budget && budget <= scale) {
    const bx = x(budget);
    chart.append(svg("line", { x1: bx, x2: bx, y1: 0, y2: height, class: "budget" }));
  }
  const used = budget ? m.total_latency_ms / budget : 0;
  const gauge = svg(
    "svg",
    { viewBox: `0 0 ${width} 26`, role: "img", "aria-label": `${ms(m.total_latency_ms)} of a ${ms(budget)} budget`, class: "waterfall gauge" },
    svg("rect", { x: 0, y: 4, width, height: 18, class: "gauge-budget" }),
    svg("rect", { x: 0, y: 4, width: Math.max(1, Math.min(used, 1) * width), height: 18, class: used > 1 ? "gauge-used over" : "gauge-used" }),
    svg("text", { x: 6, y: 17, class: "gauge-label" }, `${ms(m.total_latency_ms)} of the ${ms(budget)} budget (${(used * 100).toFixed(used < 0.1 ? 1 : 0)} %)`),
  );
  node.append(
    chart,
    gauge,
    el("p", { id: "pg-budget-verdict", className: m.within_budget ? "ok" : "warn" }, m.within_budget ? `Within the latency budget (${ms(budget)}).` : `Over the latency budget (${ms(budget)}).`),
    el("p", { className: "muted" }, `${m.memories_retrieved} memories and ${m.rag_documents_retrieved} passages retrieved; turn stored as memory: ${m.memory_stored ? "yes" : "no"}.`),
  );
}
