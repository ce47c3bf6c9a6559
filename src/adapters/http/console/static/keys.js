// Keys (admin): GET/POST /v1/keys, DELETE /v1/keys/{id}, GET /v1/keys/{id} for usage,
// GET /v1/keys/{id}/usage for a key's requests and tokens over time (drawn as an inline
// SVG chart, with a text summary and a table for screen readers).
// A key below admin gets the API's own 403, shown as it is: there is no other way in.
import { api } from "./app.js";
import { el, svg, clear, field, table, age, errorBox } from "./dom.js";

const USAGE_REFRESH_S = 15;

export async function render(root) {
  root.append(el("h2", {}, "Keys"));
  const body = el("div", {});
  root.append(body);
  let keys;
  try {
    keys = await api("v1/keys");
  } catch (error) {
    if (error.status === 403) {
      body.append(
        el("p", { id: "keys-denied", className: "error", role: "alert" }, `Keys are managed with an admin key. The gateway says: ${error.message}`),
      );
      return;
    }
    body.append(errorBox(error));
    return;
  }

  const name = el("input", { id: "key-name", type: "text", required: true, maxLength: 200 });
  const tier = el("select", { id: "key-tier" }, ["standard", "developer", "admin"].map((t) => el("option", { value: t }, t)));
  const tenant = el("input", { id: "key-tenant", type: "text", placeholder: "this key's tenant" });
  const quota = el("input", { id: "key-quota", type: "number", min: 1, placeholder: "none" });
  const period = el("select", { id: "key-period" }, el("option", { value: "month" }, "month"), el("option", { value: "day" }, "day"));
  const created = el("div", { id: "key-created" });
  const list = el("div", { id: "key-list" });
  const usage = el("div", { id: "key-usage", className: "panel", hidden: true });
  const usageWindow = el("select", { id: "key-usage-window" }, el("option", { value: "1h" }, "last hour, per minute"), el("option", { value: "24h" }, "last day, per hour"));
  const usageBody = el("div", { id: "key-usage-body" });
  const usageTitle = el("h3", { id: "key-usage-title", tabIndex: -1 });
  let usageKey = null;
  let usageTimer = null;
  let stopped = false;
  usage.append(usageTitle, el("div", { className: "row" }, field("Usage window", usageWindow), el("button", { type: "button", id: "key-usage-close", onclick: closeUsage }, "Close chart")), usageBody);
  usageWindow.addEventListener("change", () => showUsage());

  const form = el(
    "form",
    { id: "key-form", className: "controls" },
    el("div", { className: "row" }, field("Name", name), field("Tier", tier), field("Tenant", tenant), field("Token quota", quota), field("Quota period", period)),
    el("div", { className: "actions" }, el("button", { type: "submit", id: "key-create" }, "Create key")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(created);
    const json = { name: name.value, tier: tier.value, quota_period: period.value };
    if (tenant.value.trim()) json.tenant = tenant.value.trim();
    if (quota.value) json.token_quota = Number(quota.value);
    try {
      const key = await api("v1/keys", { method: "POST", json });
      showSecret(created, key);
      name.value = "";
      await refresh();
    } catch (error) {
      created.append(errorBox(error));
    }
  });

  async function refresh(known) {
    const page = known || (await api("v1/keys"));
    clear(list);
    const usageCells = [];
    list.append(
      table(
        ["Name", "Tier", "Tenant", "Created", "Last used", "Used this period", "State", ""],
        page.data.map((k) => [
          k.name,
          k.tier,
          k.tenant,
          `${age(k.created_at)} ago`,
          k.last_used_at ? `${age(k.last_used_at)} ago` : "never",
          usageCell(k, usageCells),
          k.revoked ? "revoked" : "active",
          el(
            "span",
            { className: "buttons" },
            el("button", { type: "button", className: "small", "aria-label": `Usage chart of key ${k.name}`, "data-key-id": k.id, onclick: () => showUsage(k) }, "Usage chart"),
            k.revoked ? null : el("button", { type: "button", className: "small danger", "aria-label": `Revoke key ${k.name}`, "data-key-id": k.id, onclick: () => revoke(k) }, "Revoke"),
          ),
        ]),
        "Keys (never their secrets)",
      ),
    );
    // Each key's tokens this period against its quota (GET /v1/keys/{id}), filled in
    // as they come.
    await Promise.all(usageCells.map(fillUsage));
  }

  async function revoke(k) {
    if (!window.confirm(`Revoke the key “${k.name}”? Requests with it are refused from now on.`)) return;
    try {
      await api(`v1/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
      await refresh();
    } catch (error) {
      list.prepend(errorBox(error));
    }
  }

  // One key's requests and tokens over time, refreshed while it is shown.
  async function showUsage(k) {
    const focus = Boolean(k);
    if (k) usageKey = k;
    if (!usageKey || stopped) return;
    clearTimeout(usageTimer);
    usage.hidden = false;
    usageTitle.textContent = `Usage of “${usageKey.name}”`;
    if (focus) usageTitle.focus();
    try {
      const u = await api(`v1/keys/${encodeURIComponent(usageKey.id)}/usage?window=${usageWindow.value}`);
      const open = Boolean(usageBody.querySelector("details[open]")); // kept across refreshes
      clear(usageBody);
      usageBody.append(...usageView(u));
      if (open) usageBody.querySelector("details").open = true;
    } catch (error) {
      clear(usageBody);
      usageBody.append(errorBox(error));
      if (error.status === 401) return;
    }
    if (!stopped) usageTimer = setTimeout(() => showUsage(), USAGE_REFRESH_S * 1000);
  }

  function closeUsage() {
    clearTimeout(usageTimer);
    usageKey = null;
    usage.hidden = true;
  }

  body.append(el("h3", {}, "Create a key"), form, created, el("h3", {}, "All keys"), list, usage);
  await refresh(keys);
  return () => {
    stopped = true;
    clearTimeout(usageTimer);
  };
}

function clock(seconds, withDate) {
  const date = new Date(seconds * 1000);
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return withDate ? `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}` : time;
}

// The usage chart: tokens per bucket as bars, requests as a line (its own scale), the
// time axis below; then the same figures as words and as a table.
function usageView(u) {
  const width = 640;
  const height = 190;
  const left = 52;
  const right = 44;
  const top = 12;
  const bottom = 30;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const tokens = u.data.map((b) => Math.max(0, b.tokens));
  const requests = u.data.map((b) => b.requests);
  const maxT = Math.max(1, ...tokens);
  const maxR = Math.max(1, ...requests);
  const step = plotW / Math.max(u.data.length, 1);
  const unit = u.bucket_s === 60 ? "minute" : "hour";
  const base = top + plotH;
  const bars = u.data.map((b, i) => {
    const h = (Math.max(0, b.tokens) / maxT) * plotH;
    return svg(
      "rect",
      { x: (left + i * step + 0.5).toFixed(1), y: (base - h).toFixed(1), width: Math.max(1, step - 1).toFixed(1), height: h.toFixed(1), class: "usage-bar" },
      svg("title", {}, `${clock(b.start, u.bucket_s > 60)}: ${b.tokens} tokens, ${b.requests} requests`),
    );
  });
  const line = requests.map((r, i) => `${(left + (i + 0.5) * step).toFixed(1)},${(base - (r / maxR) * plotH).toFixed(1)}`).join(" ");
  const first = u.data[0];
  const last = u.data[u.data.length - 1];
  const busiest = u.data.reduce((a, b) => (b.tokens > a.tokens ? b : a), first);
  const summary =
    `${u.tokens} tokens and ${u.requests} requests in the ${u.window === "1h" ? "last hour" : "last day"}, per ${unit}` +
    (busiest && busiest.tokens > 0 ? `; busiest ${unit} ${clock(busiest.start, u.bucket_s > 60)} with ${busiest.tokens} tokens` : "") +
    ".";
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, class: "usage-chart", role: "img", "aria-label": `Usage chart: ${summary}` },
    svg("line", { x1: left, x2: width - right, y1: base, y2: base, class: "axis" }),
    svg("line", { x1: left, x2: left, y1: top, y2: base, class: "axis" }),
    svg("text", { x: left - 6, y: top + 10, class: "axis-label", "text-anchor": "end" }, String(maxT)),
    svg("text", { x: left - 6, y: base, class: "axis-label", "text-anchor": "end" }, "0"),
    svg("text", { x: width - right + 6, y: top + 10, class: "axis-label requests-label" }, `${maxR} req`),
    svg("text", { x: left, y: height - 8, class: "axis-label" }, first ? clock(first.start, u.bucket_s > 60) : ""),
    svg("text", { x: width - right, y: height - 8, class: "axis-label", "text-anchor": "end" }, last ? `${clock(last.start, u.bucket_s > 60)} (now)` : ""),
    ...bars,
    svg("polyline", { points: line, class: "series series-requests" }),
  );
  const used = u.tokens_used_this_period;
  const quota = u.token_quota
    ? `Quota: ${used} of ${u.token_quota} tokens used this ${u.quota_period} (${u.period}), ${Math.max(0, u.token_quota - used)} left.`
    : `No token quota; ${used} tokens used this ${u.quota_period} (${u.period}).`;
  const busy = u.data.filter((b) => b.requests || b.tokens);
  return [
    el(
      "figure",
      { className: "chart wide" },
      chart,
      el("figcaption", {}, el("span", { className: "legend legend-tokens" }, "bars: tokens"), " ", el("span", { className: "legend legend-requests" }, "line: requests"), ` per ${unit}.`),
    ),
    el("p", { id: "key-usage-summary" }, summary),
    el("p", { id: "key-usage-quota" }, quota),
    el(
      "details",
      {},
      el("summary", {}, `The ${busy.length} ${unit}${busy.length === 1 ? "" : "s"} with usage, as a table`),
      busy.length
        ? table([unit === "minute" ? "Minute" : "Hour", "Requests", "Tokens"], busy.map((b) => [clock(b.start, u.bucket_s > 60), String(b.requests), String(b.tokens)]))
        : el("p", { className: "muted" }, "No usage in this window."),
    ),
  ];
}

function showSecret(node, key) {
  const secret = el("input", { id: "key-secret", type: "text", readOnly: true, value: key.key, className: "secret" });
  const copy = el("button", { type: "button", id: "key-copy" }, "Copy");
  const copied = el("span", { className: "muted", role: "status" });
  copy.addEventListener("click", async () => {
    secret.select();
    try {
      await navigator.clipboard.writeText(key.key);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Selected: press Ctrl+C to copy.";
    }
  });
  node.append(
    el(
      "div",
      { className: "secret-box", role: "alert" },
      el("p", {}, `Key “${key.name}” created (${key.tier}, tenant ${key.tenant}). Its secret is shown this once: copy it now.`),
      field("Secret", secret),
      copy,
      copied,
    ),
  );
}

function usageCell(k, cells) {
  const cell = el("span", { className: "usage", "data-key-id": k.id }, "…");
  if (k.revoked) {
    cell.textContent = "–";
    return cell;
  }
  cells.push({ key: k, cell });
  return cell;
}

async function fillUsage({ key, cell }) {
  try {
    const u = await api(`v1/keys/${encodeURIComponent(key.id)}`);
    clear(cell);
    const used = u.tokens_used_this_period;
    const quota = u.key.token_quota;
    if (quota) {
      const width = 90;
      const share = Math.min(used / quota, 1);
      cell.append(
        svg(
          "svg",
          { viewBox: `0 0 ${width} 10`, width, height: 10, role: "img", "aria-label": `${used} of ${quota} tokens` },
          svg("rect", { x: 0, y: 0, width, height: 10, class: "gauge-budget" }),
          svg("rect", { x: 0, y: 0, width: Math.max(1, share * width), height: 10, class: used >= quota ? "gauge-used over" : "gauge-used" }),
        ),
        ` ${used} / ${quota} (${u.key.quota_period})`,
      );
    } else {
      cell.append(`${used} tokens (no quota)`);
    }
  } catch (error) {
    cell.textContent = error.status === 401 ? "" : "unknown";
  }
}
