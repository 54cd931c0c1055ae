// What every page's script shares: JSON calls, polling, relative times, copy buttons,
// the confirmation dialog and the sign-out buttons. Plain ES modules, no build step.

/** An answer other than 2xx, carrying the server's one-sentence `error` and `code`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let clockOffsetMs = 0; // server time minus this browser's time, from the Date header

/** Now, on the server's clock (so "12 s ago" is right even if this computer's is off). */
export function serverNow() {
  return Date.now() + clockOffsetMs;
}

function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  const offset = date - Date.now();
  // The header has one-second resolution: only a larger difference is real skew.
  clockOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
}

/**
 * Call the backend's JSON API with the session cookie; resolves to the parsed body.
 * `body` is sent as JSON, `file` (a Blob) as the raw request body. A 401 sends the
 * browser to the sign-in page; other failures reject with an ApiError.
 */
export async function api(path, { method = "GET", body, file } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  } else if (file !== undefined) {
    init.headers["Content-Type"] = "application/octet-stream";
    init.body = file;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "NETWORK", "Cannot reach the server; check your connection.");
  }
  noteServerClock(response);
  const data = await response.json().catch(() => null);
  if (response.status === 401 && path !== "/api/auth/login") {
    const here = location.pathname + location.search;
    location.assign(`/login?next=${encodeURIComponent(here)}`);
  }
  if (!response.ok) {
    const message = (data && data.error) || `The server answered ${response.status}.`;
    throw new ApiError(response.status, data && data.code, message);
  }
  return data;
}

/**
 * Run `tick` now and then every `intervalMs` until `stop()`; a tick that fails shows
 * its message through `onError` and the next one tries again. Ticks never overlap.
 */
export function startPolling(tick, intervalMs, onError) {
  let timer = null;
  let running = false;
  let again = false;
  let stopped = false;
  async function run() {
    timer = null;
    running = true;
    try {
      await tick();
      onError(null);
    } catch (error) {
      onError(error);
    }
    running = false;
    if (stopped) return;
    if (again) {
      again = false;
      run();
    } else {
      timer = setTimeout(run, intervalMs);
    }
  }
  run();
  return {
    /** No more ticks after the one in flight. */
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
    /** Tick as soon as possible (after the one in flight, if any). */
    now() {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      clearTimeout(timer);
      run();
    },
  };
}

/** "just now", "12 s ago", "3 min ago", "2 h ago", "4 d ago", or "never". */
export function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((serverNow() - Date.parse(iso)) / 1000));
  if (seconds < 2) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A duration in seconds as "45 s", "12 min 5 s", "3 h 20 min". */
export function duration(totalSeconds) {
  const s = Math.max(0, Math.round(totalSeconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A timestamp in the reader's locale, or "—". */
export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** A number with at most `digits` significant digits, or "—". */
export function num(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  return Number(value).toPrecision(digits).replace(/\.?0+(e|$)/, "$1");
}

/** A new element: el("a", {href: "/x", className: "y"}, "text", child, ...). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") {
      node.setAttribute(key, value);
    } else {
      node[key] = value;
    }
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/**
 * A list of elements kept in step with a list of items, one element per item key:
 * `sync(items)` updates the elements of known keys in place (focus inside them
 * survives), adds new ones, puts them in the items' order and removes the rest.
 * `make(item)` returns a view `{node, update(item)}`.
 */
export class KeyedList {
  constructor(container, keyOf, make) {
    Object.assign(this, { container, keyOf, make });
    this.views = new Map();
  }

  sync(items) {
    const seen = new Set();
    items.forEach((item, index) => {
      const key = this.keyOf(item);
      let view = this.views.get(key);
      if (!view) {
        view = this.make(item);
        this.views.set(key, view);
      }
      view.update(item);
      const here = this.container.children[index];
      if (here !== view.node) this.container.insertBefore(view.node, here || null);
      seen.add(key);
    });
    for (const [key, view] of this.views) {
      if (!seen.has(key)) {
        view.node.remove();
        this.views.delete(key);
      }
    }
  }
}

/** Set an element's text only when it changed (keeps screen readers quiet otherwise). */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Show `error`'s message in `node` (a role="alert" element), or clear it. */
export function showError(node, error) {
  setText(node, error ? error.message : "");
}

/** The data the server put in the page (`<script type="application/json" id="page-data">`). */
export function pageData() {
  return JSON.parse(document.getElementById("page-data").textContent);
}

/** Ask before something that cannot be undone; resolves to true when confirmed. */
export function confirmAction({ title, message, confirmLabel }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-message").textContent = message;
  document.getElementById("confirm-ok").textContent = confirmLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), {
      once: true,
    });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Denied (e.g. the page lost focus): fall back to selecting the text.
    }
  }
  return false;
}

function selectContents(node) {
  if ("select" in node) {
    node.select();
    return;
  }
  const range = document.createRange();
  range.selectNodeContents(node);
  getSelection().removeAllRanges();
  getSelection().addRange(range);
}

/** Buttons with data-copy="<element id>" copy that element's value or text. */
export function wireCopyButtons(root = document) {
  for (const button of root.querySelectorAll("[data-copy]")) {
    const label = button.textContent;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      const text = "value" in source ? source.value : source.textContent;
      const copied = await copyText(text);
      if (!copied) selectContents(source);
      button.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
      setTimeout(() => (button.textContent = label), 2000);
    });
  }
}

function wireSignOut() {
  const button = document.getElementById("sign-out");
  if (!button) return;
  button.addEventListener("click", async () => {
    try {
      await api("/api/auth/logout", { method: "POST" });
    } finally {
      location.assign("/login");
    }
  });
}

/** "Sign out everywhere": ends every session of this user, in every browser. */
function wireSignOutEverywhere() {
  const button = document.getElementById("sign-out-everywhere");
  if (!button) return;
  button.addEventListener("click", async () => {
    const confirmed = await confirmAction({
      title: "Sign out everywhere?",
      message:
        "Every browser and script signed in as you is signed out, this one included. " +
        "API keys and agents keep working.",
      confirmLabel: "Sign out everywhere",
    });
    if (!confirmed) return;
    try {
      await api("/api/auth/sessions/revoke-all", { method: "POST" });
    } finally {
      location.assign("/login");
    }
  });
}

wireSignOut();
wireSignOutEverywhere();
wireCopyButtons();
