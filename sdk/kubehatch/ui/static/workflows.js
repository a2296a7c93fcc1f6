// Workflows: triggers, next trigger times, concurrency, queued runs, latest runs; run one.
import { get, post, url } from "./api.js";
import { badge, esc, runHref, time } from "./util.js";
import { pushDialog } from "./events.js";

function concurrency(c) {
  if (!c) return '<span class="muted">no limit</span>';
  const key = c.expression ? `key <code>${esc(c.expression)}</code>` : c.action ? `key from action <code>${esc(c.action)}</code>` : "";
  const limit = c.maxRunsExpression ? `<code>${esc(c.maxRunsExpression)}</code>` : esc(c.maxRuns ?? 1);
  return `${limit} per key${c.maxRunsTotal ? `, ${esc(c.maxRunsTotal)} in all` : ""}; ${esc(c.limitStrategy || "CancelInProgress")}${key ? `; ${key}` : ""}`;
}

function card(w) {
  const triggers = [
    ...w.events.map((e) => `<li>event <code>${esc(e)}</code></li>`),
    ...w.crons.map((c) => `<li>cron <code>${esc(c)}</code></li>`),
    ...w.at.map((t) => `<li>at ${time(t)}</li>`),
  ];
  const id = `wf-${w.namespace}-${w.name}`.replace(/[^a-zA-Z0-9-]/g, "-");
  return `<article class="card" aria-labelledby="${id}" data-workflow="${esc(w.namespace)}/${esc(w.name)}">
    <header><h2 id="${id}">${esc(w.name)}</h2>${w.suspend ? '<span class="badge" data-phase="Skipped">suspended</span>' : ""}
      ${w.ready === "False" ? `<span class="badge" data-phase="Failed" title="${esc(w.readyMessage || "")}">✘ not ready</span>` : ""}
      <button type="button" class="primary run-btn" data-ns="${esc(w.namespace)}" data-name="${esc(w.name)}">Run…</button></header>
    ${w.description ? `<p>${esc(w.description)}</p>` : ""}
    <dl class="facts col">
      <div><dt>Namespace</dt><dd>${esc(w.namespace)}</dd></div>
      <div><dt>Steps</dt><dd>${esc(w.steps)}${w.hooks.length ? ` + ${esc(w.hooks.join(", "))}` : ""}</dd></div>
      <div><dt>Triggers</dt><dd>${triggers.length ? `<ul class="plain">${triggers.join("")}</ul>` : "manual only"}</dd></div>
      <div><dt>Next</dt><dd>${w.nextTimes.length ? w.nextTimes.map(time).join("<br>") : "–"}</dd></div>
      <div><dt>Concurrency</dt><dd>${concurrency(w.concurrency)}</dd></div>
      <div><dt>Queued</dt><dd>${w.queued ? `<a href="#/runs?phase=Queued&workflow=${encodeURIComponent(w.name)}">${esc(w.queued)} queued</a>` : "0"}</dd></div>
      <div><dt>Latest runs</dt><dd class="recent" data-ns="${esc(w.namespace)}" data-name="${esc(w.name)}"><span class="muted">…</span></dd></div>
    </dl></article>`;
}

export function runDialog(ctx, ns, workflow) {
  ctx.dialog(`Run ${workflow}`, `
    <p class="muted">In namespace ${esc(ns)}, with your rights.</p>
    <label for="run-input">Input (JSON object)</label>
    <textarea id="run-input" name="input" rows="8" spellcheck="false">{}</textarea>`,
  "Start run", async (form) => {
    let input;
    try { input = JSON.parse(form.input.value || "{}"); } catch (err) { throw new Error(`the input is not JSON: ${err.message}`); }
    const made = await post(`/api/runs/${encodeURIComponent(ns)}`, { workflow, input });
    location.hash = runHref(made.namespace, made.name);
  });
}

export async function show(main, ctx) {
  const page = await get(url("/api/workflows", { namespace: ctx.nsParam() }));
  main.innerHTML = `<div class="run-head"><h1>Workflows</h1><div class="actions">
      <button type="button" id="push">Push an event…</button></div></div>
    <p class="muted">${page.items.length} workflows${page.continue ? " (first page)" : ""}.</p>
    <div class="cards">${page.items.map(card).join("") || '<p class="muted">No workflows here.</p>'}</div>`;
  main.querySelector("#push").onclick = () => pushDialog(ctx, ctx.allNamespaces ? "default" : ctx.nsParam());
  main.addEventListener("click", (e) => {
    const b = e.target.closest("button.run-btn");
    if (b) runDialog(ctx, b.dataset.ns, b.dataset.name);
  });
  // Latest runs: fetched as cards scroll into view (a few at a time, never all at once).
  const seen = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      seen.unobserve(entry.target);
      const dd = entry.target;
      get(url(`/api/workflows/${encodeURIComponent(dd.dataset.ns)}/${encodeURIComponent(dd.dataset.name)}/runs`, { count: 5 }))
        .then((p) => {
          dd.innerHTML = p.items.length ? `<ul class="plain">${p.items.map((r) => `<li><a href="${runHref(r.namespace, r.name)}">${esc(r.name)}</a> ${badge(r.phase)}</li>`).join("")}</ul>` : "none yet";
        }).catch((err) => { dd.textContent = err.status === 403 ? "not allowed to list runs" : err.message; });
    }
  });
  for (const dd of main.querySelectorAll("dd.recent")) seen.observe(dd);
  return () => seen.disconnect();
}
