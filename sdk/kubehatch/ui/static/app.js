// The dashboard's shell: routes (#/workflows, #/runs, #/runs/NS/NAME, #/events), the
// namespace, messages, dialogs. Each page module exports show(main, ctx) and may return a
// function that stops its live streams when the page changes.
import { ApiError, del, get, post } from "./api.js";
import { esc } from "./util.js";
import * as workflows from "./workflows.js";
import * as runs from "./runs.js";
import * as run from "./run.js";
import * as events from "./events.js";

const main = document.getElementById("main");
const nsInput = document.getElementById("ns");
const alertBox = document.getElementById("alert");
let config = { namespace: "default", allNamespaces: false, tokens: false };
let stop = null;

export const ctx = {
  get namespace() {
    const stored = sessionStorage.getItem("kubehatch-ns");
    return stored != null ? stored : (config.allNamespaces ? "*" : config.namespace || "default");
  },
  // The namespace query parameter: "*" (every namespace) or a name.
  nsParam() { return this.namespace.trim() || "*"; },
  get allNamespaces() { return this.nsParam() === "*"; },
  live(state) {
    const el = document.getElementById("live");
    el.textContent = { live: "● live", reconnecting: "○ reconnecting…", ended: "" }[state] ?? "";
    el.dataset.state = state || "";
  },
  showError,
  dialog,
};

export function showError(err) {
  const text = document.getElementById("alert-text");
  if (err instanceof ApiError && err.status === 401 && config.tokens) return signIn();
  text.innerHTML = esc(err.message) +
    (err.reason ? `<br><span class="reason">API server: ${esc(err.reason)}</span>` : "");
  alertBox.dataset.status = err.status || "";
  alertBox.hidden = false;
}

export function clearError() { alertBox.hidden = true; }

// A modal dialog: fields (HTML), then submit(form) -> Promise; its errors show inside.
export function dialog(title, fieldsHtml, okLabel, submit) {
  const dlg = document.getElementById("dialog");
  document.getElementById("dialog-title").textContent = title;
  document.getElementById("dialog-body").innerHTML = fieldsHtml;
  document.getElementById("dialog-error").textContent = "";
  const ok = document.getElementById("dialog-ok");
  ok.textContent = okLabel;
  const form = document.getElementById("dialog-form");
  form.onsubmit = async (e) => {
    e.preventDefault();
    ok.disabled = true;
    try {
      await submit(form);
      dlg.close();
    } catch (err) {
      const reason = err.reason ? ` — API server: ${err.reason}` : "";
      document.getElementById("dialog-error").textContent = err.message + reason;
    } finally {
      ok.disabled = false;
    }
  };
  document.getElementById("dialog-cancel").onclick = () => dlg.close();
  dlg.showModal();
  const first = dlg.querySelector("#dialog-body input, #dialog-body textarea, #dialog-body select");
  (first || ok).focus();
}

function signIn() {
  dialog("Sign in", `
    <p>This dashboard acts with your own Kubernetes identity. Paste a bearer token
    (<code>kubectl create token NAME</code>, or your identity provider's).</p>
    <label for="token">Token</label>
    <textarea id="token" name="token" rows="4" required spellcheck="false"></textarea>`,
  "Sign in", async (form) => {
    await post("/api/session", { token: form.token.value });
    route();
  });
}

async function route() {
  if (stop) { stop(); stop = null; }
  clearError();
  ctx.live("");
  const hash = location.hash || "#/runs";
  const path = hash.split("?")[0].slice(1).split("/").filter(Boolean).map(decodeURIComponent);
  const page = path[0] || "runs";
  for (const a of document.querySelectorAll("[data-nav]")) {
    const current = a.dataset.nav === (hash.includes("phase=Queued") && page === "runs" ? "queued" : page);
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  main.innerHTML = '<p class="muted">Loading…</p>';
  try {
    if (page === "workflows") stop = await workflows.show(main, ctx);
    else if (page === "events") stop = await events.show(main, ctx);
    else if (page === "runs" && path.length >= 3) stop = await run.show(main, ctx, path[1], path[2]);
    else stop = await runs.show(main, ctx, hash);
  } catch (err) {
    main.innerHTML = `<h1>Could not load this page</h1><p class="error">${esc(err.message)}</p>` +
      (err.reason ? `<p class="reason">API server: ${esc(err.reason)}</p>` : "");
    showError(err);
  }
  document.title = `${main.querySelector("h1")?.textContent || "kubehatch"} · kubehatch`;
}

async function start() {
  try { config = await get("/api/config"); } catch (err) { showError(err); }
  nsInput.value = ctx.namespace;
  document.getElementById("ns-form").onsubmit = (e) => {
    e.preventDefault();
    sessionStorage.setItem("kubehatch-ns", nsInput.value.trim());
    route();
  };
  document.getElementById("alert-close").onclick = clearError;
  document.getElementById("skip").onclick = (e) => { e.preventDefault(); main.focus(); };
  window.addEventListener("hashchange", () => { route().then(() => main.focus({ preventScroll: true })); });
  await route();
  if (config.tokens) {
    const out = document.createElement("button");
    out.type = "button"; out.textContent = "Sign out"; out.className = "link";
    out.onclick = async () => { await del("/api/session"); location.reload(); };
    document.querySelector(".top").append(out);
  }
}

start();
