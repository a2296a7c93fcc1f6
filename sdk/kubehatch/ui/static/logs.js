// A step's logs: its attempts (one pod each), and the chosen attempt's log, streamed
// while the pod runs. Returns a function that stops the stream.
import { stream, url } from "./api.js";
import { esc } from "./util.js";

const MAX_CHARS = 2_000_000;  // keep the page responsive with chatty steps: the tail

export function logsPane(box, ns, run, step, ctx, pod) {
  box.innerHTML = `<div class="logs-bar"><label for="attempt">Attempt</label>
      <select id="attempt" disabled><option>…</option></select>
      <span id="log-state" class="muted" role="status"></span></div>
    <pre id="log" class="code log" tabindex="0" aria-label="Log of step ${esc(step)}" aria-live="off"></pre>`;
  const pre = box.querySelector("#log");
  const select = box.querySelector("#attempt");
  const state = box.querySelector("#log-state");
  let text = "";
  let close = null;

  function append(chunk) {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    text += chunk;
    if (text.length > MAX_CHARS) text = text.slice(-MAX_CHARS);
    pre.textContent = text;
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  const path = url(`/api/logs/${encodeURIComponent(ns)}/${encodeURIComponent(run)}/${encodeURIComponent(step)}`, { pod });
  close = stream(path, {
    attempts: (items) => {
      select.innerHTML = items.map((a, i) => `<option value="${esc(a.pod)}"${(pod ? a.pod === pod : i === items.length - 1) ? " selected" : ""}>#${esc(a.attempt || i + 1)} ${esc(a.pod)} (${esc(a.phase)})</option>`).join("") || "<option>none</option>";
      select.disabled = items.length < 2;
      state.textContent = items.length ? "streaming…" : "";
    },
    waiting: (w) => { state.textContent = `not started: ${w.reason}`; },
    log: (chunk) => { if (!text) state.textContent = "streaming…"; append(chunk); },
    nolog: (m) => { pre.textContent = m.message; state.textContent = ""; },
    logend: (a) => { state.textContent = `ended (${a.phase})`; if (!text) pre.textContent = "(no output)"; },
    failure: (err) => { state.textContent = ""; pre.textContent = err.message + (err.reason ? `\nAPI server: ${err.reason}` : ""); },
  }, () => {});
  select.onchange = () => {
    if (close) close();
    close = logsPane(box, ns, run, step, ctx, select.value);
  };
  return () => close && close();
}
