// The vmexec API as the console calls it: same-origin fetches authenticated by the session
// cookie, with the CSRF token on every call that may change state.

const CSRF_COOKIE = "vmexec_csrf";
export const API = "/zstack/v1";

/** A failed call, in ZStack's terms: HTTP status and the error's code and text. */
export class ApiError extends Error {
  constructor(status, error) {
    const text = error?.details || error?.description || `HTTP ${status}`;
    super(error?.code ? `${error.code}: ${text}` : text);
    this.status = status;
    this.code = error?.code ?? null;
  }
}

export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return "";
}

/** Call the API; resolves to the reply's JSON, rejects with an ApiError. */
export async function call(method, path, body, headers = {}) {
  const init = { method, credentials: "same-origin", headers: { ...headers } };
  if (method !== "GET") init.headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json;charset=UTF-8";
    init.body = JSON.stringify(body);
  }
  const reply = await fetch(path, init);
  const text = await reply.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { error: { details: text } }; }
  if (!reply.ok) throw new ApiError(reply.status, data.error);
  return data;
}

/** A ZStack query string: conditions (q=), sort, limit. */
export function query(path, { q = [], sort, limit } = {}) {
  const params = new URLSearchParams();
  for (const condition of q) params.append("q", condition);
  if (sort) params.set("sort", sort);
  if (limit) params.set("limit", String(limit));
  const text = params.toString();
  return call("GET", text ? `${path}?${text}` : path);
}
