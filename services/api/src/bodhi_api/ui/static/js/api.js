// Same-origin calls to Bodhi's JSON API, the one every client uses: the browser's session cookie
// authenticates them. A failed call throws an ApiError carrying the OpenAI error's fields.

export class ApiError extends Error {
  constructor(status, { message, type = null, param = null, code = null } = {}) {
    super(message || `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status; // 0 when the request never got an answer
    this.type = type;
    this.param = param;
    this.code = code;
  }
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// `body` is sent as JSON; the answer's JSON (null for 204) is returned.
export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin", signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { message: "The gateway could not be reached. Check your connection and retry." });
  }
  const data = await readBody(response);
  if (!response.ok) {
    const fields = data && typeof data === "object" && data.error ? data.error : {};
    throw new ApiError(response.status, fields);
  }
  return data;
}

// The paths of what a served id names: an id may hold `/` and `:`, and the API's routes take the rest of the
// path, so each segment is encoded on its own.
const servedIdPath = (base, id) => `${base}/${id.split("/").map(encodeURIComponent).join("/")}`;
export const aliasPath = (alias) => servedIdPath("/bodhi/v1/models/alias", alias);
export const routerPath = (id) => servedIdPath("/bodhi/v1/routers", id);
export const pricePath = (id) => servedIdPath("/bodhi/v1/prices", id);

export const get = (path, options = {}) => api(path, { ...options, method: "GET" });
export const post = (path, body, options = {}) => api(path, { ...options, method: "POST", body });
export const put = (path, body, options = {}) => api(path, { ...options, method: "PUT", body });
export const patch = (path, body, options = {}) => api(path, { ...options, method: "PATCH", body });
export const del = (path, options = {}) => api(path, { ...options, method: "DELETE" });
