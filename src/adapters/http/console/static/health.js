// Health and metrics: GET /health (each dependency's state; the details with an admin
// key, as the API decides) and GET /metrics (JSON: this key's tenant, or every tenant's
// with an admin key), polled live and drawn as small inline SVG charts.
import { ROOT, authorization, api } from "./app.js";
import { el, svg, clear, field, table, ms, errorBox } from "./dom.js";

const HISTORY = 60;
const ROUTE_CHARTS = 8; // the busiest routes get charts of their own

export async function render(root) {
  const interval = el("select", { id: "hm-interval" }, [2, 5, 15, 60].map((s) => el("option", { value: s, selected: s === 5 }, `${s} s`)));
  const paused = el("input", { id: "hm-paused", type: "checkbox" });
  const health = el("div", { id: "hm-health" });
  const totals = el("div", { id: "hm-totals" });
  const charts = el("div", { id: "hm-charts", className: "charts" });
  const routes = el("div", { id: "hm-routes" });
  const routeCharts = el("div", { id: "hm-route-charts", className: "route-charts" });
  const stagesNode = el("div", { id: "hm-stages" });
  const updated = el("p", { className: "muted", id: "hm-updated", role: "status" });
  const samples = [];
  let timer = null;
  let stopped = false;

  root.append(
    el("h2", {}, "Health and metrics"),
    el("div", { className: "row controls" }, field("Refresh every", interval), field("Pause", paused)),
    updated,
    el("h3", {}, "Dependencies"),
    health,
    el("h3", {}, "Requests"),
    totals,
    charts,
    el("h3", {}, "Per route"),
    routes,
    el("h3", {}, "Per route over time"),
    routeCharts,
    el("h3", {}, "Chat stages"),
    stagesNode,
  );

  async function tick() {
    if (stopped) return;
    if (!paused.checked) {
      await Promise.all([showHealth(health), showMetrics()]);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    }
    if (!stopped) timer = setTimeout(tick, Number(interval.value) * 1000);
  }

  async function showMetrics() {
    let m;
    try {
      m = await api("metrics");
    } catch (error) {
      clear(totals);
      totals.append(errorBox(error));
      return;
    }
    samples.push({ t: Date.now() / 1000, m });
    if (samples.length > HISTORY) samples.shift();
    clear(totals);
    totals.append(
      el(
        "ul",
        { className: "figures" },
        el("li", {}, el("strong", {}, String(m.requests)), " requests"),
        el("li", {}, el("strong", {}, String(m.errors)), " errors"),
        el("li", {}, el("strong", {}, String(m.auth_failures)), " refused keys"),
        el("li", {}, el("strong", {}, ms(m.latency.p50_ms)), " p50"),
        el("li", {}, el("strong", {}, ms(m.latency.p95_ms)), " p95"),
        el("li", {}, el("strong", {}, `${Math.round(m.uptime_s)} s`), " up"),
      ),
    );
    clear(charts);
    const rate = (pick) =>
      samples.slice(1).map((s, i) => {
        const before = samples[i];
        const dt = Math.max(s.t - before.t, 0.001);
        return Math.max(0, (pick(s.m) - pick(before.m)) / dt);
      });
    charts.append(
      chart("Requests per second", rate((x) => x.requests), "req/s"),
      chart("Errors per second", rate((x) => x.errors), "err/s"),
      chart("Latency p95 (ms)", samples.map((s) => s.m.latency.p95_ms), "ms"),
    );
    clear(routes);
    const names = Object.keys(m.routes).sort();
    routes.append(
      names.length
        ? table(
            ["Route", "Requests", "Errors", "p50", "p95", "p99", "p95 over time"],
            names.map((name) => {
              const r = m.routes[name];
              const history = samples.map((s) => (s.m.routes[name] ? s.m.routes[name].latency.p95_ms : 0));
              return [el("code", {}, name), String(r.requests), String(r.errors), ms(r.latency.p50_ms), ms(r.latency.p95_ms), ms(r.latency.p99_ms), sparkline(history, `p95 of ${name}`)];
            }),
          )
        : el("p", { className: "muted" }, "No request yet."),
    );
    clear(routeCharts);
    const busiest = names.slice().sort((a, b) => m.routes[b].requests - m.routes[a].requests).slice(0, ROUTE_CHARTS);
    for (const name of busiest) {
      const of = (pick) => samples.map((s) => (s.m.routes[name] ? pick(s.m.routes[name]) : 0));
      const routeRate = (pick) =>
        samples.slice(1).map((s, i) => {
          const now = s.m.routes[name];
          const before = samples[i].m.routes[name];
          const dt = Math.max(s.t - samples[i].t, 0.001);
          return Math.max(0, ((now ? pick(now) : 0) - (before ? pick(before) : 0)) / dt);
        });
      routeCharts.append(
        el(
          "figure",
          { className: "chart route-chart", "data-route": name },
          el("figcaption", {}, el("code", {}, name)),
          multiChart("Requests and errors per second", [
            { name: "requests", values: routeRate((r) => r.requests), cls: "series" },
            { name: "errors", values: routeRate((r) => r.errors), cls: "series series-errors" },
          ], "/s"),
          multiChart("Latency percentiles (ms)", [
            { name: "p50", values: of((r) => r.latency.p50_ms), cls: "series series-p50" },
            { name: "p95", values: of((r) => r.latency.p95_ms), cls: "series" },
            { name: "p99", values: of((r) => r.latency.p99_ms), cls: "series series-p99" },
          ], "ms"),
        ),
      );
    }
    clear(stagesNode);
    const stageNames = Object.keys(m.stages || {});
    stagesNode.append(
      stageNames.length
        ? table(["Stage", "Count", "avg", "p50", "p95", "p99"], stageNames.map((n) => { const s = m.stages[n]; return [n, String(s.count), ms(s.avg_ms), ms(s.p50_ms), ms(s.p95_ms), ms(s.p99_ms)]; }))
        : el("p", { className: "muted" }, "No chat yet."),
    );
  }

  interval.addEventListener("change", () => {
    clearTimeout(timer);
    tick();
  });
  await tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// /health is public; with the key, an admin also gets why a dependency is down.
async function showHealth(node) {
  let report;
  try {
    const response = await fetch(new URL("health", ROOT), { headers: authorization() });
    report = await response.json();
  } catch (error) {
    clear(node);
    node.append(errorBox(new Error(`The gateway could not be reached: ${error.message}`)));
    return;
  }
  clear(node);
  const services = Object.entries(report.services || {});
  const down = services.filter(([, s]) => s.status !== "healthy");
  node.append(
    ...[el("p", { id: "hm-overall", className: report.status === "healthy" ? "ok" : "warn" }, `Gateway ${report.version}: ${report.status}.`),
    down.length
      ? el("p", { className: "degraded", role: "alert", id: "hm-down" }, `${report.status === "unhealthy" ? "Unhealthy" : "Degraded"}: ${down.map(([name, s]) => `${name} is ${s.status}${s.detail ? ` (${s.detail})` : ""}`).join("; ")}.`)
      : null,
    table(
      ["Dependency", "State", "Latency", "Detail"],
      services.map(([name, s]) => [name, el("span", { className: `state state-${s.status}` }, s.status), ms(s.latency_ms), s.detail || ""]),
    )].filter(Boolean),
  );
}

function chart(title, values, unit) {
  const width = 300;
  const height = 90;
  const max = Math.max(...values, 0.001);
  const points = values.map((v, i) => `${(i / Math.max(values.length - 1, 1)) * (width - 40) + 36},${height - 14 - (v / max) * (height - 28)}`);
  const last = values.length ? values[values.length - 1] : 0;
  return el(
    "figure",
    { className: "chart" },
    svg(
      "svg",
      { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: latest ${last.toFixed(2)} ${unit}` },
      svg("line", { x1: 36, x2: width - 4, y1: height - 14, y2: height - 14, class: "axis" }),
      svg("text", { x: 0, y: 14, class: "axis-label" }, max.toFixed(max < 10 ? 2 : 0)),
      svg("text", { x: 0, y: height - 14, class: "axis-label" }, "0"),
      values.length > 1 ? svg("polyline", { points: points.join(" "), class: "series" }) : null,
    ),
    el("figcaption", {}, `${title} — latest ${last.toFixed(2)} ${unit}`),
  );
}

function sparkline(values, label) {
  const width = 120;
  const height = 24;
  const max = Math.max(...values, 0.001);
  const points = values.map((v, i) => `${(i / Math.max(values.length - 1, 1)) * width},${height - 2 - (v / max) * (height - 4)}`);
  return svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label },
    values.length > 1 ? svg("polyline", { points: points.join(" "), class: "series" }) : svg("line", { x1: 0, x2: width, y1: height - 2, y2: height - 2, class: "axis" }),
  );
}

// Several series on one scale; the label says each one's latest value (the text
// alternative), the caption names the colours.
function multiChart(title, series, unit) {
  const width = 340;
  const height = 80;
  const all = series.flatMap((s) => s.values);
  const max = Math.max(...all, 0.001);
  const x = (i, n) => (i / Math.max(n - 1, 1)) * (width - 40) + 36;
  const y = (v) => height - 12 - (v / max) * (height - 24);
  const latest = series.map((s) => `${s.name} ${(s.values.length ? s.values[s.values.length - 1] : 0).toFixed(2)} ${unit}`).join(", ");
  return el(
    "div",
    { className: "multi" },
    svg(
      "svg",
      { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: latest ${latest}` },
      svg("line", { x1: 36, x2: width - 4, y1: height - 12, y2: height - 12, class: "axis" }),
      svg("text", { x: 0, y: 12, class: "axis-label" }, max.toFixed(max < 10 ? 2 : 0)),
      svg("text", { x: 0, y: height - 12, class: "axis-label" }, "0"),
      ...series.filter((s) => s.values.length > 1).map((s) => svg("polyline", { points: s.values.map((v, i) => `${x(i, s.values.length).toFixed(1)},${y(v).toFixed(1)}`).join(" "), class: s.cls })),
    ),
    el("small", { className: "muted" }, `${title}: `, series.flatMap((s, i) => [i ? ", " : "", el("span", { className: `legend legend-s-${s.name}` }, `${s.name} ${(s.values.length ? s.values[s.values.length - 1] : 0).toFixed(2)} ${unit}`)])),
  );
}
