// REST client: JSON in and out, CSRF header on every write, errors as ApiError with the
// server's stable code.

let csrfToken = null;

/** An error answer from the server, carrying its HTTP status and snake_case code. */
export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message || code);
    this.status = status;
    this.code = code;
    // With validation_failed: [{field, code}] — every invalid field of the request.
    this.fields = Array.isArray(fields) ? fields : [];
  }
}

/** Remember the CSRF token from login, me or accept answers. */
export function setCsrf(token) {
  if (token) csrfToken = token;
}

async function request(method, path, body, extraHeaders = {}) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', e.message);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText, err.fields);
  }
  if (data && typeof data === 'object' && data.csrf_token) setCsrf(data.csrf_token);
  return data;
}

/** GET a JSON resource. */
export const get = (path) => request('GET', path);
/** POST a JSON body (with extra headers, e.g. Idempotency-Key). */
export const post = (path, body = {}, headers = {}) => request('POST', path, body, headers);
/** PUT a JSON body. */
export const put = (path, body = {}) => request('PUT', path, body);
/** DELETE a resource. */
export const del = (path) => request('DELETE', path);

/** GET a text resource (e.g. the JSON Lines event log). */
export async function getText(path) {
  const res = await fetch(path, { credentials: 'same-origin' });
  if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, res.statusText);
  return res.text();
}

/** POST raw bytes (an upload) with extra headers; answers and errors like post(). */
export async function postBytes(path, body, headers = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (csrfToken) h['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(path, { method: 'POST', headers: h, credentials: 'same-origin', body });
  } catch (e) {
    throw new ApiError(0, 'network', e.message);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText);
  }
  return data;
}
