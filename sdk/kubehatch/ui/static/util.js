// Small helpers shared by the pages: escaping, times, phases.

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ESC[c]);

// Symbol and words for each phase: colour is never the only cue.
export const PHASES = {
  Pending: "·", Queued: "‖", Running: "▶", Retrying: "↻", Succeeded: "✔",
  Failed: "✘", Skipped: "–", Cancelled: "■", TimedOut: "⧗",
};
export const FINISHED = new Set(["Succeeded", "Failed", "Cancelled", "TimedOut"]);
export const RUN_PHASES = ["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled", "TimedOut"];

export function badge(phase) {
  const p = phase || "Pending";
  return `<span class="badge" data-phase="${esc(p)}"><span aria-hidden="true">${PHASES[p] || "?"}</span> ${esc(p)}</span>`;
}

export function span(ms) {
  if (ms == null || isNaN(ms)) return "–";
  let s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  let m = Math.floor(s / 60); s %= 60;
  if (m < 60) return s && m < 10 ? `${m}m${s}s` : `${m}m`;
  const h = Math.floor(m / 60); m %= 60;
  return m ? `${h}h${m}m` : `${h}h`;
}

export const ago = (t) => (t ? `${span(Date.now() - Date.parse(t))} ago` : "–");
export const between = (a, b) => (a ? span((b ? Date.parse(b) : Date.now()) - Date.parse(a)) : "–");

export function time(t) {
  if (!t) return "–";
  const d = new Date(t);
  return `<time datetime="${esc(t)}" title="${esc(d.toISOString())}">${esc(d.toLocaleString())}</time>`;
}

export function json(value) {
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

export const runHref = (ns, name) => `#/runs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;

export function query(hash) {
  const i = hash.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : hash.slice(i + 1));
}
