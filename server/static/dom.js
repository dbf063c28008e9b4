// The page's small toolkit: elements, REST calls, field errors, relative times, toasts.
// Browser only (app.js loads the page modules when there is a document).

export const TOKEN_KEY = "blendtune.token";

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

// Build an element; children are nodes or text (always set as text, never parsed as HTML).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "value" || name === "checked") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || String(status);
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

let onUnauthenticated = () => {};
export function whenSignedOut(callback) {
  onUnauthenticated = callback;
}

function authHeaders() {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

function parse(status, text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return { detail: status >= 500 ? "The server is not answering properly; try again." : text.slice(0, 200) };
  }
}

// REST with the session: the HttpOnly cookie goes along by itself (same origin); the token,
// when we have it, as a Bearer header too (docs/accounts.md: the header wins).
export async function api(method, path, body) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { code: "offline", detail: "The server cannot be reached right now." });
  }
  const data = parse(response.status, await response.text());
  if (!response.ok) {
    if (response.status === 401 && !path.startsWith("/auth/login")) onUnauthenticated();
    throw new ApiError(response.status, data || {});
  }
  return data;
}

// A multipart upload with progress (fetch has no upload progress; XMLHttpRequest does).
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      const data = parse(request.status, request.responseText);
      if (request.status >= 200 && request.status < 300) resolve(data);
      else reject(new ApiError(request.status, data || {}));
    };
    request.onerror = () => reject(new ApiError(0, { code: "offline", detail: "The upload was interrupted." }));
    request.send(formData);
  });
}

// ---- words instead of numbers

const UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

// "in 6 days", "3 minutes ago", "just now".
export function relativeTime(iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const format = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return Math.abs(seconds) < 30 ? "just now" : format.format(seconds, "second");
}

export function clock(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const m = Math.floor(seconds / 60);
  const s = seconds - m * 60;
  return `${m}:${s < 10 ? "0" : ""}${s.toFixed(1)}`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// A stable colour per person, for avatars and cursors.
const COLOURS = ["#c62828", "#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457", "#4e342e"];
export function colourOf(id) {
  let hash = 0;
  for (const c of String(id)) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  return COLOURS[hash % COLOURS.length];
}

export function avatar(id, name) {
  const initials = (name || "?")
    .split(/[\s._-]+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((part) => part[0].toUpperCase())
    .join("");
  const node = el("span", { class: "avatar", title: name, "aria-label": name, role: "img" }, initials || "?");
  node.style.setProperty("--who", colourOf(id));
  return node;
}

// ---- messages

const PLAIN = {
  offline: "The server cannot be reached right now.",
  rate_limited: "Too many attempts; wait a minute and try again.",
  unavailable: "The server is busy; try again in a moment.",
  invalid_request: "Please check the highlighted fields.",
};

export function describe(error) {
  if (error instanceof ApiError) {
    if (error.code === "invalid_request" && error.errors.length === 0) return error.message;
    return PLAIN[error.code] ?? error.message;
  }
  return String(error?.message ?? error);
}

export function toast(text, level = "info") {
  const region = $("#toasts");
  const node = el("li", { class: level }, text);
  region.append(node);
  while (region.children.length > 4) region.firstChild.remove();
  setTimeout(() => node.remove(), level === "error" ? 8000 : 4000);
}

// Which form field a problem concerns: validation errors name it (`key`, or `$.field` in the
// message); some codes always concern one field.
const CODE_FIELDS = {
  weak_password: "password",
  email_taken: "email",
  username_taken: "username",
  wrong_password: "password",
  invalid_credentials: "password",
  invalid_share_code: "code",
  window_too_long: "duration",
  invalid_timezone: "timezone",
};

function fieldsOf(error) {
  const found = [];
  for (const item of error.errors) {
    const message = item.message || "";
    const key = item.key ?? (/`\$\.(\w+)/.exec(message) ?? /required field `(\w+)`/.exec(message))?.[1];
    if (key) found.push([key, cleanMessage(item.message || error.message)]);
  }
  if (!found.length && CODE_FIELDS[error.code]) found.push([CODE_FIELDS[error.code], error.message]);
  return found;
}

function cleanMessage(message) {
  return message.replace(/\s*-\s*at `\$[^`]*`/, "").replace(/`/g, "");
}

export function clearErrors(form) {
  for (const node of $$(".field-error", form)) node.remove();
  for (const node of $$("[aria-invalid]", form)) node.removeAttribute("aria-invalid");
  $(".form-error", form)?.remove();
}

// Show an error next to the field it concerns (or at the top of the form).
export function showErrors(form, error) {
  clearErrors(form);
  let placed = false;
  if (error instanceof ApiError) {
    for (const [name, message] of fieldsOf(error)) {
      const input = form.elements[name];
      if (!input || input.length !== undefined) continue;
      const id = `${input.id}-error`;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", id);
      input.after(el("span", { class: "field-error", id, role: "alert" }, message));
      if (!placed) input.focus();
      placed = true;
    }
  }
  if (!placed) form.prepend(el("p", { class: "form-error", role: "alert" }, describe(error)));
}

// A form's submit handler: values in, errors shown on the form, the button busy meanwhile.
export function onSubmit(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = $("button[type=submit]", form);
    if (button) button.disabled = true;
    try {
      await handler(Object.fromEntries(new FormData(form).entries()), form);
    } catch (error) {
      showErrors(form, error);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

// A click handler whose failures become a toast.
export function action(fn) {
  return async (event) => {
    try {
      await fn(event);
    } catch (error) {
      toast(describe(error), "error");
    }
  };
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false; // no clipboard permission (plain http, say): the code stays selectable
  }
}

// ---- stable re-rendering
// Lists are re-rendered on every room update (presence moves several times a second): a row
// whose data did not change keeps its node, so focus, hover and a pointer held on it survive.

// The node for `key`: the cached one while `signature` is unchanged, else a new build.
export function keyed(cache, key, signature, build) {
  const cached = cache.get(key);
  if (cached && cached.signature === signature) return cached.node;
  const node = build();
  cache.set(key, { signature, node });
  return node;
}

// Make `parent`'s children exactly `nodes`, moving only what is out of place.
export function syncChildren(parent, nodes, cache) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] ?? null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
  if (cache) {
    const live = new Set(nodes);
    for (const [key, entry] of cache) if (!live.has(entry.node)) cache.delete(key);
  }
}
