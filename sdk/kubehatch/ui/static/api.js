// The dashboard's JSON API and server-sent events.

export class ApiError extends Error {
  constructor(body, status) {
    super(body.error || `the server answered ${status}`);
    this.status = body.status || status;
    this.reason = body.reason || null;
  }
}

async function call(method, path, body) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") {
    options.headers["X-Kubehatch-Request"] = "1";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body || {});
  }
  let answer;
  try {
    answer = await fetch(path, options);
  } catch (err) {
    throw new ApiError({ error: `the dashboard server does not answer (${err.message})` }, 0);
  }
  const data = await answer.json().catch(() => ({ error: answer.statusText }));
  if (!answer.ok) throw new ApiError(data, answer.status);
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const del = (path) => call("DELETE", path);

export function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v != null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// A server-sent events stream; handlers by event name. Returns a closer.
export function stream(path, handlers, onState) {
  const source = new EventSource(path);
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  source.addEventListener("failure", (e) => {
    const body = JSON.parse(e.data);
    (handlers.failure || (() => {}))(new ApiError(body, body.status || 0));
  });
  source.addEventListener("end", () => { source.close(); onState && onState("ended"); });
  source.onopen = () => onState && onState("live");
  source.onerror = () => onState && onState(source.readyState === 2 ? "ended" : "reconnecting");
  return () => source.close();
}
