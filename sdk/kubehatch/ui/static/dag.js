// The run's DAG as an SVG graph: steps laid out in columns by depth (the longest path
// from a root), ordered in each column by their parents' positions; hook steps in a
// last column. Each node shows its name and its phase in words and a symbol (colour is
// never the only cue), and is reachable with the keyboard: Tab to the graph, arrow keys
// between steps (left/right: parents/children, up/down: the column), Enter to select.
import { esc, PHASES } from "./util.js";

const W = 184, H = 46, GAP_X = 56, GAP_Y = 12, PAD = 16;
const HOOK_LABELS = { onFailure: "on failure", onSuccess: "on success", onExit: "on exit" };

export function layout(spec) {
  const steps = (spec && spec.steps) || [];
  const names = new Set(steps.map((s) => s.name));
  const parents = new Map(steps.map((s) => [s.name, (s.parents || []).filter((p) => names.has(p))]));
  const children = new Map(steps.map((s) => [s.name, []]));
  for (const [name, ps] of parents) for (const p of ps) children.get(p).push(name);
  // Depth by Kahn's algorithm (a cycle, which the API forbids, ends up in column 0).
  const depth = new Map();
  const waiting = new Map(steps.map((s) => [s.name, parents.get(s.name).length]));
  let ready = steps.filter((s) => waiting.get(s.name) === 0).map((s) => s.name);
  for (const n of ready) depth.set(n, 0);
  while (ready.length) {
    const next = [];
    for (const n of ready) {
      for (const c of children.get(n)) {
        depth.set(c, Math.max(depth.get(c) || 0, depth.get(n) + 1));
        waiting.set(c, waiting.get(c) - 1);
        if (waiting.get(c) === 0) next.push(c);
      }
    }
    ready = next;
  }
  const columns = [];
  for (const s of steps) {
    const d = depth.get(s.name) ?? 0;
    (columns[d] ||= []).push(s.name);
  }
  for (let i = 0; i < columns.length; i++) columns[i] ||= [];
  const hooks = Object.keys(HOOK_LABELS).filter((k) => spec && spec[k]).map((k) => ({ key: k, name: spec[k].name }));
  // Order each column by the mean row of its parents (one pass: cheap, and untangles most).
  const row = new Map();
  columns.forEach((col, d) => {
    if (d > 0) {
      const order = new Map(col.map((n, i) => [n, i]));
      const score = (n) => {
        const ps = parents.get(n);
        return ps.length ? ps.reduce((a, p) => a + row.get(p), 0) / ps.length : order.get(n);
      };
      col.sort((a, b) => score(a) - score(b) || order.get(a) - order.get(b));
    }
    col.forEach((n, i) => row.set(n, i));
  });
  if (hooks.length) columns.push(hooks.map((h) => h.name));
  hooks.forEach((h, i) => { row.set(h.name, i); parents.set(h.name, []); children.set(h.name, []); });
  const pos = new Map();
  columns.forEach((col, d) => col.forEach((n, i) => pos.set(n, { x: PAD + d * (W + GAP_X), y: PAD + i * (H + GAP_Y), col: d, row: i })));
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (H + GAP_Y) - GAP_Y;
  const width = PAD * 2 + columns.length * (W + GAP_X) - GAP_X;
  return { columns, parents, children, pos, hooks, width, height, hookNames: new Set(hooks.map((h) => h.name)) };
}

function short(name) { return name.length > 24 ? `${name.slice(0, 22)}…` : name; }

function phaseText(st) {
  const phase = (st && st.phase) || "Pending";
  const tries = st && st.attempts > 1 ? ` ×${st.attempts}` : "";
  return { phase, text: `${PHASES[phase] || "?"} ${phase}${tries}` };
}

function label(name, st, hook) {
  const { phase } = phaseText(st);
  const tries = st && st.attempts ? `, attempt ${st.attempts}` : "";
  return `step ${name}${hook ? ` (${hook})` : ""}: ${phase}${tries}`;
}

function nodeHtml(name, p, st, hook) {
  const { phase, text } = phaseText(st);
  return `<g class="node${hook ? " hook" : ""}" data-step="${esc(name)}" data-phase="${phase}" transform="translate(${p.x},${p.y})" role="button" tabindex="-1" aria-label="${esc(label(name, st, hook))}"><rect width="${W}" height="${H}" rx="6"/><text x="10" y="19" class="name">${esc(short(name))}</text><text x="10" y="37" class="phase">${esc(hook ? `${text} · ${hook}` : text)}</text></g>`;
}

export function render(container, spec, steps, onSelect) {
  const g = layout(spec);
  const edges = [];
  for (const [child, ps] of g.parents) {
    const c = g.pos.get(child);
    for (const p of ps) {
      const a = g.pos.get(p);
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = c.x, y2 = c.y + H / 2, mx = (x1 + x2) / 2;
      edges.push(`M${x1} ${y1}C${mx} ${y1} ${mx} ${y2} ${x2} ${y2}`);
    }
  }
  const hookOf = new Map(g.hooks.map((h) => [h.name, HOOK_LABELS[h.key]]));
  const nodes = [];
  for (const [name, p] of g.pos) nodes.push(nodeHtml(name, p, steps[name], hookOf.get(name)));
  const count = g.pos.size;
  container.innerHTML = `<svg class="dag" width="${g.width}" height="${g.height}" viewBox="0 0 ${g.width} ${g.height}" role="group" aria-label="The run's ${count} steps as a graph; arrow keys move between steps, Enter shows one" aria-describedby="dag-help"><path class="edges" d="${edges.join("")}"/><path class="edges selected" d=""/>${nodes.join("")}</svg>`;
  const svg = container.firstElementChild;
  const els = new Map();
  for (const el of svg.querySelectorAll("g.node")) els.set(el.dataset.step, el);
  let focused = g.columns[0]?.[0];
  if (focused) els.get(focused).setAttribute("tabindex", "0");

  function select(name, focus) {
    if (!els.has(name)) return;
    els.get(focused)?.setAttribute("tabindex", "-1");
    focused = name;
    const el = els.get(name);
    el.setAttribute("tabindex", "0");
    if (focus) el.focus();
    for (const s of svg.querySelectorAll("g.node[aria-pressed]")) s.removeAttribute("aria-pressed");
    el.setAttribute("aria-pressed", "true");
    const near = [];
    for (const p of g.parents.get(name) || []) near.push([p, name]);
    for (const c of g.children.get(name) || []) near.push([name, c]);
    svg.querySelector("path.selected").setAttribute("d", near.map(([a, b]) => {
      const pa = g.pos.get(a), pb = g.pos.get(b);
      const x1 = pa.x + W, y1 = pa.y + H / 2, x2 = pb.x, y2 = pb.y + H / 2, mx = (x1 + x2) / 2;
      return `M${x1} ${y1}C${mx} ${y1} ${mx} ${y2} ${x2} ${y2}`;
    }).join(""));
    onSelect(name);
  }

  svg.addEventListener("click", (e) => {
    const node = e.target.closest("g.node");
    if (node) select(node.dataset.step, true);
  });
  svg.addEventListener("keydown", (e) => {
    const p = g.pos.get(focused);
    if (!p) return;
    let to = null;
    if (e.key === "ArrowDown") to = g.columns[p.col][p.row + 1];
    else if (e.key === "ArrowUp") to = g.columns[p.col][p.row - 1];
    else if (e.key === "ArrowRight") to = (g.children.get(focused) || [])[0] || g.columns[p.col + 1]?.[0];
    else if (e.key === "ArrowLeft") to = (g.parents.get(focused) || [])[0] || g.columns[p.col - 1]?.[0];
    else if (e.key === "Home") to = g.columns[0][0];
    else if (e.key === "End") to = g.columns.at(-1).at(-1);
    else if (e.key === "Enter" || e.key === " ") { select(focused, true); e.preventDefault(); return; }
    if (to) {
      e.preventDefault();
      els.get(focused).setAttribute("tabindex", "-1");
      focused = to;
      const el = els.get(to);
      el.setAttribute("tabindex", "0");
      el.focus();
      el.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  });

  // Live: only the nodes whose step changed are touched.
  function update(changed) {
    for (const [name, st] of Object.entries(changed)) {
      const el = els.get(name);
      if (!el) continue;
      const { phase, text } = phaseText(st);
      el.dataset.phase = phase;
      const hook = hookOf.get(name);
      el.lastElementChild.textContent = hook ? `${text} · ${hook}` : text;
      el.setAttribute("aria-label", label(name, st, hook));
    }
  }
  // After a redraw (the live stream's first state, a reconnect): the keyboard stays put.
  function focus(name) {
    const el = els.get(name);
    if (!el) return;
    els.get(focused)?.setAttribute("tabindex", "-1");
    focused = name;
    el.setAttribute("tabindex", "0");
    el.focus({ preventScroll: true });
  }
  return { select, update, count, focus };
}
