// Keys (admin): GET/POST /v1/keys, DELETE /v1/keys/{id}, GET /v1/keys/{id} for usage.
// A key below admin gets the API's own 403, shown as it is: there is no other way in.
import { api } from "./app.js";
import { el, svg, clear, field, table, age, errorBox } from "./dom.js";

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

  body.append(el("h3", {}, "Create a key"), form, created, el("h3", {}, "All keys"), list);
  await refresh(keys);
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
