// A run: its header and actions, the DAG (live), the selected step's attempts, timings,
// message, output and logs, the run's input and its Kubernetes events.
import { get, post, stream, url } from "./api.js";
import { render } from "./dag.js";
import { ago, badge, between, esc, FINISHED, json, runHref, time } from "./util.js";
import { logsPane } from "./logs.js";

export async function show(main, ctx, ns, name) {
  const started = performance.now();
  const base = `/api/runs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  let state = null;      // {run, workflowSpec, workflowSource}
  let graph = null;
  let selected = null;
  let closeLogs = null;

  main.innerHTML = `
    <div class="run-head"><div><h1><span class="muted">Run</span> ${esc(name)}</h1><div id="summary"></div></div>
      <div class="actions" id="actions" role="group" aria-label="Actions on this run"></div></div>
    <p id="why" class="why"></p>
    <div class="run-body">
      <section class="graph" aria-labelledby="dag-title"><h2 id="dag-title">Steps</h2>
        <p id="dag-help" class="muted small">Arrow keys move between steps; Enter shows one. Each step shows its phase in words.</p>
        <div id="dag" class="dag-wrap"></div></section>
      <aside class="step" id="step" aria-labelledby="step-title" aria-live="polite"><h2 id="step-title">Step</h2>
        <p class="muted">Select a step in the graph.</p></aside>
    </div>
    <details id="table-details"><summary>Steps as a table</summary><div id="steps-table"></div></details>
    <details><summary>Input</summary><pre id="input" class="code"></pre></details>
    <details id="events-details"><summary>Events</summary><div id="events"></div></details>`;

  const $ = (sel) => main.querySelector(sel);

  function steps() { return (state.run.status && state.run.status.steps) || {}; }

  function header() {
    const run = state.run, s = run.status || {}, spec = run.spec || {};
    const phase = s.phase || "Pending";
    $("#summary").innerHTML = `<dl class="facts">
      <div><dt>Phase</dt><dd id="run-phase">${badge(phase)}${spec.cancel && !FINISHED.has(phase) ? ' <span class="muted">cancel requested</span>' : ""}</dd></div>
      <div><dt>Workflow</dt><dd><a href="#/runs?workflow=${encodeURIComponent(spec.workflowRef?.name || "")}">${esc(spec.workflowRef?.name)}</a></dd></div>
      <div><dt>Namespace</dt><dd>${esc(ns)}</dd></div>
      <div><dt>Progress</dt><dd>${esc(s.progress || "–")}</dd></div>
      <div><dt>Created</dt><dd>${time(run.metadata.creationTimestamp)}</dd></div>
      <div><dt>Started</dt><dd>${time(s.startedAt)}</dd></div>
      <div><dt>Duration</dt><dd>${s.startedAt ? between(s.startedAt, s.finishedAt) : "–"}</dd></div>
      <div><dt>Trigger</dt><dd>${esc(spec.triggeredBy?.type || "Manual")} ${esc(spec.triggeredBy?.source || "")}</dd></div>
      ${spec.priority ? `<div><dt>Priority</dt><dd>${esc(spec.priority)}</dd></div>` : ""}
      ${s.retries ? `<div><dt>Retried</dt><dd>${esc(s.retries)}×</dd></div>` : ""}
      ${s.concurrencyKey ? `<div><dt>Concurrency key</dt><dd>${esc(s.concurrencyKey)}</dd></div>` : ""}
    </dl>`;
    const cond = (s.conditions || []).find((c) => c.type === "Succeeded");
    $("#why").innerHTML = cond && cond.message && phase !== "Succeeded"
      ? `<strong>${esc(cond.reason || phase)}</strong>: ${esc(cond.message)}` : "";
    actions(phase, spec);
  }

  function actions(phase, spec) {
    const box = $("#actions");
    const finished = FINISHED.has(phase);
    const key = `${phase}/${!!spec.cancel}`;
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.innerHTML = `
      ${!finished ? `<button type="button" id="cancel" class="danger"${spec.cancel ? " disabled" : ""}>Cancel run</button>` : ""}
      ${finished && !spec.cancel && phase !== "Succeeded" ? '<button type="button" id="retry">Retry failed steps</button>' : ""}
      <button type="button" id="replay">Replay</button>`;
    const cancel = $("#cancel");
    if (cancel) cancel.onclick = () => confirmCancel(cancel);
    const retry = $("#retry");
    if (retry) retry.onclick = () => act("retry", {}, `Retry of ${name} requested`);
    $("#replay").onclick = async () => {
      try {
        const made = await post(`${base}/replay`, {});
        location.hash = runHref(made.namespace, made.name);
      } catch (err) { ctx.showError(err); }
    };
  }

  function confirmCancel(button) {
    button.hidden = true;
    const box = document.createElement("span");
    box.className = "confirm";
    box.innerHTML = `<span id="confirm-text">Cancel ${esc(name)}? Its pods get SIGTERM.</span>
      <button type="button" class="danger" id="cancel-yes">Yes, cancel the run</button>
      <button type="button" id="cancel-no">Keep it running</button>`;
    button.after(box);
    box.querySelector("#cancel-yes").focus();
    box.querySelector("#cancel-no").onclick = () => { box.remove(); button.hidden = false; button.focus(); };
    box.querySelector("#cancel-yes").onclick = async () => {
      box.remove(); button.hidden = false;
      await act("cancel", {}, `Cancel of ${name} requested`);
    };
  }

  async function act(action, body, done) {
    try {
      await post(`${base}/${action}`, body);
      ctx.live("live");
      $("#why").textContent = done;
    } catch (err) { ctx.showError(err); }
  }

  function stepFacts(stepName) {
    const st = steps()[stepName] || { phase: "Pending", attempts: 0 };
    const hooks = ["onFailure", "onSuccess", "onExit"].map((k) => state.workflowSpec?.[k]).filter(Boolean);
    const specStep = [...(state.workflowSpec?.steps || []), ...hooks].find((s) => s.name === stepName) || {};
    $("#step-facts").innerHTML = `<dl class="facts col">
        <div><dt>Phase</dt><dd id="step-phase">${badge(st.phase)}</dd></div>
        <div><dt>Attempts</dt><dd>${esc(st.attempts || 0)}${st.earlierAttempts ? ` (${esc(st.earlierAttempts)} before the last retry)` : ""}${specStep.retries ? ` of up to ${esc(specStep.retries + 1)}` : ""}</dd></div>
        <div><dt>Parents</dt><dd>${esc((specStep.parents || []).join(", ") || "none")}</dd></div>
        <div><dt>Started</dt><dd>${time(st.startedAt)}</dd></div>
        <div><dt>Finished</dt><dd>${time(st.finishedAt)}</dd></div>
        <div><dt>Took</dt><dd>${st.startedAt ? between(st.startedAt, st.finishedAt) : "–"}</dd></div>
        ${st.nextAttemptAt ? `<div><dt>Next attempt</dt><dd>${time(st.nextAttemptAt)}</dd></div>` : ""}
        ${st.jobName ? `<div><dt>Job</dt><dd><code>${esc(st.jobName)}</code></dd></div>` : ""}
        ${st.childRuns ? `<div><dt>Child runs</dt><dd><a href="#/runs?selector=${encodeURIComponent(`kubehatch.dev/parent-run=${name}`)}">${esc(st.childRuns)}</a></dd></div>` : ""}
      </dl>
      ${st.message ? `<h3>Message</h3><pre class="code msg">${esc(st.message)}</pre>` : ""}`;
    const out = $("#output");
    if (out.dataset.configmap === (st.outputConfigMap || "")) return;
    out.dataset.configmap = st.outputConfigMap || "";
    out.textContent = st.outputConfigMap ? "Loading…" : "(none yet)";
    if (st.outputConfigMap) {
      get(`${base}/steps/${encodeURIComponent(stepName)}/output`).then((o) => {
        if (selected === stepName) out.textContent = o.error ? o.error : json(o.output);
      }).catch((err) => { if (selected === stepName) out.textContent = err.message; });
    }
  }

  function stepPanel(stepName) {
    selected = stepName;
    $("#step").innerHTML = `<h2 id="step-title">Step ${esc(stepName)}</h2><div id="step-facts"></div>
      <h3>Output</h3><pre id="output" class="code" data-configmap="-"></pre>
      <h3 id="logs-title">Logs</h3><div id="logs"></div>`;
    stepFacts(stepName);
    if (closeLogs) closeLogs();
    closeLogs = logsPane($("#logs"), ns, name, stepName, ctx);
  }

  function stepsTable() {
    const rows = Object.entries(steps()).map(([n, st]) => `<tr><th scope="row"><button type="button" class="link" data-step="${esc(n)}">${esc(n)}</button></th><td>${badge(st.phase)}</td><td>${esc(st.attempts || 0)}</td><td>${st.startedAt ? between(st.startedAt, st.finishedAt) : "–"}</td><td>${esc(st.message || "")}</td></tr>`);
    $("#steps-table").innerHTML = `<table><thead><tr><th scope="col">Step</th><th scope="col">Phase</th><th scope="col">Attempts</th><th scope="col">Took</th><th scope="col">Message</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
    $("#steps-table").onclick = (e) => { const b = e.target.closest("button[data-step]"); if (b) graph.select(b.dataset.step, true); };
  }

  function full(found) {
    state = found;
    header();
    $("#input").textContent = json(found.run.spec?.input || {});
    const spec = found.workflowSpec || { steps: Object.keys(steps()).map((n) => ({ name: n })) };
    const kept = document.activeElement?.closest?.("#dag g.node")?.dataset.step;
    const t0 = performance.now();
    graph = render($("#dag"), spec, steps(), stepPanel);
    const t1 = performance.now();
    document.body.dataset.dagRenderMs = (t1 - t0).toFixed(1);
    document.body.dataset.dagSteps = String(graph.count);
    if (found.workflowSource === "current") $("#dag-help").textContent += " (The Workflow as it is now: the run has not started.)";
    if (selected) { graph.select(selected, false); }
    if (kept) graph.focus(kept);
    if ($("#table-details").open) stepsTable();
  }

  function patch(change) {
    const run = state.run;
    run.metadata = change.metadata;
    run.spec = { ...change.spec, input: run.spec?.input };
    const oldSteps = steps();
    run.status = { ...change.status, steps: { ...oldSteps, ...change.steps }, workflowSpec: run.status?.workflowSpec };
    header();
    graph.update(change.steps);
    if (selected && change.steps[selected]) {
      const before = oldSteps[selected] || {}, after = change.steps[selected];
      if (before.attempts !== after.attempts || (!before.startedAt && after.startedAt)) stepPanel(selected);
      else stepFacts(selected);
    }
    if ($("#table-details").open) stepsTable();
  }

  $("#table-details").addEventListener("toggle", (e) => { if (e.target.open) stepsTable(); });
  $("#events-details").addEventListener("toggle", async (e) => {
    if (!e.target.open) return;
    try {
      const { items } = await get(`${base}/events`);
      $("#events").innerHTML = items.length ? `<ul class="events">${items.map((ev) => `<li><span class="muted">${ago(ev.time)}</span> <strong>${esc(ev.reason)}</strong> ${esc(ev.message)}${ev.count > 1 ? ` (×${ev.count})` : ""}</li>`).join("")}</ul>` : '<p class="muted">No events.</p>';
    } catch (err) { $("#events").textContent = err.message; }
  });

  full(await get(base));
  document.body.dataset.runLoadMs = (performance.now() - started).toFixed(1);
  const close = stream(url(`/api/watch/runs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`), {
    run: (found) => full(found),
    patch,
    deleted: () => { $("#why").textContent = "This run was deleted."; },
    failure: (err) => ctx.showError(err),
  }, ctx.live);
  return () => { close(); if (closeLogs) closeLogs(); };
}
