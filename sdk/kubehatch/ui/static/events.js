// WorkflowEvents: each event's key, payload and the runs it started; push a new one.
import { get, post, url } from "./api.js";
import { ago, esc, json, runHref } from "./util.js";

export function pushDialog(ctx, namespace, after) {
  ctx.dialog("Push an event", `
    <label for="ev-ns">Namespace</label><input id="ev-ns" name="ns" required value="${esc(namespace)}">
    <label for="ev-key">Key</label><input id="ev-key" name="key" required placeholder="user:created">
    <label for="ev-payload">Payload (JSON object)</label>
    <textarea id="ev-payload" name="payload" rows="6" spellcheck="false">{}</textarea>`,
  "Push", async (form) => {
    let payload;
    try { payload = JSON.parse(form.payload.value || "{}"); } catch (err) { throw new Error(`the payload is not JSON: ${err.message}`); }
    await post(`/api/events/${encodeURIComponent(form.ns.value.trim())}`, { key: form.key.value.trim(), payload });
    after && after();
  });
}

export async function show(main, ctx) {
  const tokens = [null];
  const allNs = ctx.allNamespaces;
  main.innerHTML = `<div class="run-head"><h1>Events</h1><div class="actions"><button type="button" id="push" class="primary">Push an event…</button></div></div>
    <p class="muted" id="ev-info" aria-live="polite"></p>
    <div class="table-wrap"><table><caption class="visually-hidden">WorkflowEvents and the runs they started</caption>
    <thead><tr><th scope="col">Event</th>${allNs ? '<th scope="col">Namespace</th>' : ""}<th scope="col">Key</th><th scope="col">Created</th><th scope="col">Runs started</th><th scope="col">Payload</th></tr></thead>
    <tbody id="ev-rows"></tbody></table></div>
    <nav class="pager" aria-label="Pages"><button type="button" id="ev-next" disabled>Next page</button></nav>`;
  const load = async (index) => {
    const page = await get(url("/api/events", { namespace: ctx.nsParam(), continue: tokens[index] }));
    main.querySelector("#ev-rows").innerHTML = page.items.map((e) => `<tr>
      <th scope="row">${esc(e.name)}</th>${allNs ? `<td>${esc(e.namespace)}</td>` : ""}<td><code>${esc(e.key)}</code></td>
      <td>${ago(e.created)}</td>
      <td>${e.runs.length ? e.runs.map((r) => `<a href="${runHref(e.namespace, r)}">${esc(r)}</a>`).join(", ") : (e.handled ? "none listened" : '<span class="muted">not handled yet</span>')}</td>
      <td><code class="clip">${esc(json(e.payload).slice(0, 200))}</code></td></tr>`).join("") ||
      '<tr><td colspan="6" class="muted">No events.</td></tr>';
    tokens[index + 1] = page.continue;
    main.querySelector("#ev-info").textContent = `${page.items.length} events${page.continue ? ", more on the next page" : ""}.`;
    const next = main.querySelector("#ev-next");
    next.disabled = !page.continue;
    next.onclick = () => load(index + 1).catch(ctx.showError);
  };
  main.querySelector("#push").onclick = () => pushDialog(ctx, ctx.allNamespaces ? "default" : ctx.nsParam(), () => load(0));
  await load(0);
  return null;
}
