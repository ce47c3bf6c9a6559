// The console's shell: the session (the key, in this tab's sessionStorage only), the API
// client, and the hash router. Every page calls the gateway's public API with the key,
// so what a page shows follows the key's tier and tenant exactly as the API does.
import { el, clear } from "./dom.js";

// The API's root: two levels up from this file (<root>/ui/assets/app.js), so the console
// also works behind a proxy that mounts the gateway on a prefix.
export const ROOT = new URL("../../", import.meta.url);
const KEY = "gateway-console-key";

const pages = {
  playground: () => import("./playground.js"),
  memory: () => import("./memory.js"),
  knowledge: () => import("./knowledge.js"),
  keys: () => import("./keys.js"),
  health: () => import("./health.js"),
};

let stopPage = null;

export function key() {
  return sessionStorage.getItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function errorMessage(status, body) {
  const error = body && body.error;
  if (error && typeof error.message === "string") return error.message;
  if (body && typeof body.detail === "string") return body.detail;
  return `HTTP ${status}`;
}

// Any 401 means the key is no longer accepted (revoked mid-session, for one):
// the console signs out and says why.
export function refused(status, body) {
  if (status === 401) {
    signOut(`Signed out: the gateway refused the key (${errorMessage(status, body)}).`);
  }
  return new ApiError(status, errorMessage(status, body), body);
}

export function authorization() {
  return { Authorization: `Bearer ${key()}` };
}

export async function api(path, { method = "GET", json, body, headers = {}, signal } = {}) {
  const init = { method, headers: { ...authorization(), ...headers }, signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(new URL(path, ROOT), init);
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) throw refused(response.status, parsed);
  return parsed;
}

export function notify(message, kind = "info") {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.className = kind;
  notice.hidden = !message;
}

function showSignIn() {
  document.getElementById("sign-in").hidden = false;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  clear(document.getElementById("page"));
  document.getElementById("api-key").focus();
}

export function signOut(message) {
  sessionStorage.removeItem(KEY);
  if (stopPage) stopPage();
  stopPage = null;
  notify(message || "Signed out.", message ? "error" : "info");
  showSignIn();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("api-key");
  const secret = input.value.trim();
  if (!secret) return;
  // A read any tier may do that needs no backend (the metrics are in process): the key
  // is checked by the API itself. Only a 401 is about the key.
  const response = await fetch(new URL("metrics", ROOT), {
    headers: { Authorization: `Bearer ${secret}` },
  });
  if (response.status === 401) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    notify(`Sign-in refused: ${errorMessage(response.status, body)}`, "error");
    input.select();
    return;
  }
  input.value = "";
  sessionStorage.setItem(KEY, secret);
  notify("");
  route();
}

async function route() {
  if (!key()) {
    showSignIn();
    return;
  }
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  const name = (location.hash.replace(/^#\/?/, "") || "playground").split("?")[0];
  const load = pages[name] || pages.playground;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (stopPage) stopPage();
  stopPage = null;
  const root = document.getElementById("page");
  clear(root);
  const module = await load();
  const section = el("section", { className: "page", id: `page-${name}` });
  root.append(section);
  stopPage = (await module.render(section)) || null;
  document.body.dataset.page = name;
}

document.getElementById("sign-in-form").addEventListener("submit", signIn);
document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", () => {
  notify("");
  route();
});
route();
