// The runs list: filters (workflow, phase, labels, creation time), pages of the API
// server's own paging (limit/continue), and rows kept current by a watch.
import { get, stream, url } from "./api.js";
import { ago, badge, between, esc, query, RUN_PHASES, runHref } from "./util.js";

function row(r, allNs) {
  const why = (r.phase === "Queued" || r.phase === "Pending" || r.phase === "Failed") && (r.reason || r.message)
    ? `<span class="why">${esc(r.reason || "")}${r.message ? `: ${esc(r.message)}` : ""}</span>` : "";
  return `<tr data-run="${esc(r.namespace)}/${esc(r.name)}" data-phase="${esc(r.phase)}">
    <th scope="row"><a href="${runHref(r.namespace, r.name)}">${esc(r.name)}</a></th>
    ${allNs ? `<td>${esc(r.namespace)}</td>` : ""}
    <td><a href="#/runs?workflow=${encodeURIComponent(r.workflow || "")}">${esc(r.workflow)}</a></td>
    <td>${badge(r.phase)}${r.cancelRequested && r.phase === "Running" ? ' <span class="muted">(cancelling)</span>' : ""}</td>
    <td>${esc(r.progress || "–")}</td>
    <td>${ago(r.created)}</td>
    <td>${r.started ? between(r.started, r.finished) : "–"}</td>
    <td>${esc(r.trigger)}${r.source ? ` <span class="muted">${esc(r.source)}</span>` : ""}</td>
    <td>${why}</td></tr>`;
}

const isoOrEmpty = (local) => (local ? new Date(local).toISOString() : "");

export async function show(main, ctx, hash) {
  const q = query(hash);
  const filters = {
    workflow: q.get("workflow") || "", phase: q.get("phase") || "", selector: q.get("selector") || "",
    since: q.get("since") || "", until: q.get("until") || "", limit: q.get("limit") || "50",
  };
  const allNs = ctx.allNamespaces;
  const heading = filters.phase === "Queued" ? "Queued runs" : "Runs";
  main.innerHTML = `
    <h1>${heading}</h1>
    <form class="filters" id="filters" aria-label="Filter runs">
      <div><label for="f-workflow">Workflow</label><input id="f-workflow" name="workflow" value="${esc(filters.workflow)}"></div>
      <div><label for="f-phase">Phase</label><select id="f-phase" name="phase"><option value="">any</option>
        ${RUN_PHASES.map((p) => `<option${p === filters.phase ? " selected" : ""}>${p}</option>`).join("")}</select></div>
      <div><label for="f-selector">Labels</label><input id="f-selector" name="selector" placeholder="team=data,tier!=free" value="${esc(filters.selector)}"></div>
      <div><label for="f-since">Created after</label><input id="f-since" name="since" type="datetime-local" value="${esc(local(filters.since))}"></div>
      <div><label for="f-until">Created before</label><input id="f-until" name="until" type="datetime-local" value="${esc(local(filters.until))}"></div>
      <div><label for="f-limit">Per page</label><select id="f-limit" name="limit">
        ${["20", "50", "100", "200"].map((n) => `<option${n === filters.limit ? " selected" : ""}>${n}</option>`).join("")}</select></div>
      <div class="end"><button type="submit" class="primary">Apply</button></div>
    </form>
    <p id="page-info" class="muted" aria-live="polite"></p>
    <div class="table-wrap"><table class="runs" aria-describedby="page-info">
      <caption class="visually-hidden">${heading}, newest first within the page</caption>
      <thead><tr><th scope="col">Run</th>${allNs ? '<th scope="col">Namespace</th>' : ""}<th scope="col">Workflow</th>
        <th scope="col">Phase</th><th scope="col">Progress</th><th scope="col">Created</th><th scope="col">Duration</th>
        <th scope="col">Trigger</th><th scope="col">Reason</th></tr></thead>
      <tbody id="rows"></tbody></table></div>
    <nav class="pager" aria-label="Pages"><button type="button" id="first" disabled>First page</button>
      <button type="button" id="next" disabled>Next page</button></nav>`;

  main.querySelector("#filters").onsubmit = (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const params = new URLSearchParams();
    for (const [k, v] of f.entries()) {
      const value = k === "since" || k === "until" ? isoOrEmpty(v) : String(v).trim();
      if (value && !(k === "limit" && value === "50")) params.set(k, value);
    }
    location.hash = `#/runs${params.toString() ? `?${params}` : ""}`;
  };

  const tbody = main.querySelector("#rows");
  const info = main.querySelector("#page-info");
  const tokens = [null];
  let closeWatch = null;
  const base = { namespace: ctx.nsParam(), workflow: filters.workflow, phase: filters.phase, selector: filters.selector };

  async function load(index) {
    const page = await get(url("/api/runs", { ...base, since: filters.since, until: filters.until,
      limit: filters.limit, continue: tokens[index] }));
    tbody.innerHTML = page.items.map((r) => row(r, allNs)).join("") ||
      `<tr><td colspan="9" class="muted">No runs${filters.phase || filters.workflow || filters.selector ? " match" : ""}.</td></tr>`;
    tokens[index + 1] = page.continue;
    tokens.length = index + 2;
    const more = page.remaining ? `, about ${page.remaining} more` : page.continue ? ", more" : "";
    info.textContent = `Page ${index + 1}: ${page.items.length} runs${more}.` +
      (filters.since || filters.until ? ` (${page.scanned} read for the time filter)` : "");
    main.querySelector("#next").disabled = !page.continue;
    main.querySelector("#first").disabled = index === 0;
    main.querySelector("#next").onclick = () => load(index + 1).catch(ctx.showError);
    main.querySelector("#first").onclick = () => load(0).catch(ctx.showError);
    if (index === 0 && !closeWatch) watch(page.resourceVersion, index);
    current = index;
  }
  let current = 0;

  function watch(version) {
    closeWatch = stream(url("/api/watch/runs", { ...base, resourceVersion: version }), {
      run: ({ type, run }) => update(type, run),
      expired: () => load(current).catch(ctx.showError),
      failure: (err) => ctx.showError(err),
    }, ctx.live);
  }

  function update(type, r) {
    const key = `${r.namespace}/${r.name}`;
    const existing = [...tbody.rows].find((tr) => tr.dataset.run === key);
    if (type === "DELETED") { existing?.remove(); return; }
    const created = Date.parse(r.created);
    if (filters.since && created < Date.parse(filters.since)) return;
    if (filters.until && created >= Date.parse(filters.until)) return;
    const tmp = document.createElement("tbody");
    tmp.innerHTML = row(r, allNs);
    const fresh = tmp.firstElementChild;
    if (existing) existing.replaceWith(fresh);
    else if (type === "ADDED" && current === 0) {
      tbody.querySelector("td.muted")?.parentElement.remove();
      tbody.prepend(fresh);
      fresh.classList.add("new");
    }
  }

  await load(0);
  return () => closeWatch && closeWatch();
}

function local(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
