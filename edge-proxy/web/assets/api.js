// The server's clock, as answers carrying `server_time_ms` tell it. Two clocks: the edge's
// waiting room (queue answers, admissions) and the origin (holds, orders); they agree in
// production, but each deadline is read against the clock that set it.
const clocks = { edge: { offset: 0, known: false }, origin: { offset: 0, known: false } };

/** Now on the server's clock (`"origin"`, or `"edge"` for the waiting room's deadlines). */
export function serverNow(domain = "origin") {
  const clock = clocks[domain] || clocks.origin;
  const fallback = clocks[domain === "edge" ? "origin" : "edge"];
  return Date.now() + (clock.known || !fallback.known ? clock.offset : fallback.offset);
}

/** Records `serverTimeMs` seen on an answer to a request sent at `sentAt`, received now. */
export function noteServerTime(serverTimeMs, sentAt, domain = "origin") {
  if (typeof serverTimeMs !== "number" || !Number.isFinite(serverTimeMs)) return;
  const clock = clocks[domain] || clocks.origin;
  clock.offset = serverTimeMs - (sentAt + Date.now()) / 2;
  clock.known = true;
  if (domain === "edge") {
    try {
      window.sessionStorage.setItem("onsale.clock.edge", String(Math.round(clock.offset)));
    } catch {
      // Kept for this page only.
    }
  }
}

// The waiting room's clock as last seen in this tab: a reloaded page reads admission
// deadlines before it hears from the waiting room again.
try {
  const kept = Number(window.sessionStorage.getItem("onsale.clock.edge"));
  if (kept) Object.assign(clocks.edge, { offset: kept, known: true });
} catch {
  // No storage: the first answer sets it.
}

/** A refused or failed request: `message` is the problem's `detail`, in words. */
export class ApiError extends Error {
  constructor(status, problem, retryAfterS) {
    const detail = problem.detail || problem.title || fallbackMessage(status);
    super(sentence(detail));
    this.name = "ApiError";
    this.status = status;
    this.code = problem.code || (status === 0 ? "network" : "unknown");
    this.title = problem.title || "";
    this.problem = problem;
    this.retryAfterS = retryAfterS;
  }
}

/** "the email or the password is wrong" -> "The email or the password is wrong." */
export function sentence(text) {
  const s = String(text).trim().replace(/`/g, "");
  if (!s) return s;
  const first = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

function fallbackMessage(status) {
  if (status === 0) return "We could not reach the ticket service. Check your connection and try again.";
  if (status === 401) return "Please sign in to continue.";
  if (status === 403) return "This is not available to you.";
  if (status === 404) return "We could not find that.";
  if (status === 429) return "Too many requests right now. Please wait a moment and try again.";
  if (status >= 500) return "The ticket service is having trouble. Please try again shortly.";
  return "The request could not be completed.";
}

export function isAbort(error) {
  return error && (error.name === "AbortError" || error.code === "aborted");
}

/**
 * Calls the API. Options: `method`, `body` (JSON), `token` (sent as
 * `Authorization: Bearer`), `idempotencyKey`, `signal`, `cache`.
 * Resolves with the parsed JSON (null for 204); rejects with ApiError (or an AbortError).
 */
export async function api(path, options = {}) {
  const { method = "GET", body, token, idempotencyKey, signal, cache } = options;
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const sentAt = Date.now();
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
      cache,
    });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, {});
  }
  if (!clocks.origin.known) {
    const date = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(date)) clocks.origin.offset = date + 500 - (sentAt + Date.now()) / 2;
  }
  const type = response.headers.get("Content-Type") || "";
  let data = null;
  if (response.status !== 204 && type.includes("json")) {
    try {
      data = await response.json();
    } catch (error) {
      if (isAbort(error)) throw error;
      data = null;
    }
  }
  if (!response.ok) {
    const retryHeader = Number(response.headers.get("Retry-After"));
    const problem = data && typeof data === "object" ? data : {};
    const retry = Number.isFinite(retryHeader) && retryHeader > 0 ? retryHeader : problem.retry_after_s;
    throw new ApiError(response.status, problem, typeof retry === "number" ? retry : undefined);
  }
  if (data && typeof data === "object" && "server_time_ms" in data) {
    noteServerTime(data.server_time_ms, sentAt, path.startsWith("/v1/waiting-room/") ? "edge" : "origin");
  }
  return data;
}

/** Whether an error leaves the outcome unknown, so the same request may be sent again. */
export function isRetryable(error) {
  return (
    error instanceof ApiError &&
    (error.status === 0 || error.status >= 500 || error.code === "idempotency_in_flight")
  );
}

// Idempotency keys, one per action (e.g. "hold:<show>:<request>"): the same action sent
// again after an unknown outcome reuses its key; a settled answer retires it.
const actionKeys = new Map();

/** A random UUID (v4); `crypto.randomUUID` exists only in secure contexts. */
export function uuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function keyFor(action) {
  let key = actionKeys.get(action);
  if (!key) {
    key = uuid();
    actionKeys.set(action, key);
  }
  return key;
}

export function retireKey(action) {
  actionKeys.delete(action);
}

/**
 * Sends an idempotent write for `action`: the key is kept while the outcome is unknown
 * (network, 5xx, in flight), so a retry cannot do it twice; any other answer retires it.
 */
export async function write(action, path, options) {
  const idempotencyKey = keyFor(action);
  try {
    const result = await api(path, { ...options, idempotencyKey });
    retireKey(action);
    return result;
  } catch (error) {
    if (!isRetryable(error) && !isAbort(error)) retireKey(action);
    throw error;
  }
}

// Tokens per show, for this tab: the edge's cookies hold one queue and one admission token
// whatever the show, so each show's travel as `Authorization: Bearer`.
const store = (() => {
  try {
    const s = window.sessionStorage;
    const probe = "onsale.probe";
    s.setItem(probe, "1");
    s.removeItem(probe);
    return s;
  } catch {
    const memory = new Map();
    return {
      getItem: (k) => (memory.has(k) ? memory.get(k) : null),
      setItem: (k, v) => memory.set(k, String(v)),
      removeItem: (k) => memory.delete(k),
      key: (i) => [...memory.keys()][i] ?? null,
      get length() {
        return memory.size;
      },
    };
  }
})();

export function load(key) {
  try {
    const raw = store.getItem(`onsale.${key}`);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function save(key, value) {
  try {
    store.setItem(`onsale.${key}`, JSON.stringify(value));
  } catch {
    // Storage full or refused: the app still works for this page.
  }
}

export function forget(key) {
  try {
    store.removeItem(`onsale.${key}`);
  } catch {
    // Nothing stored.
  }
}

/** Forgets every token and note of this tab (sign-out). */
export function forgetAll() {
  const keys = [];
  for (let i = 0; i < store.length; i++) {
    const k = store.key(i);
    if (k && k.startsWith("onsale.")) keys.push(k);
  }
  for (const k of keys) store.removeItem(k);
}

export const queueToken = (show) => load(`queue.${show}`);
export const saveQueueToken = (show, token) => save(`queue.${show}`, token);

/** The show's admission `{token, expires_at_ms}` if it has not expired. */
export function admission(show) {
  const a = load(`admit.${show}`);
  if (!a || !a.token) return null;
  if (a.expires_at_ms && a.expires_at_ms <= serverNow("edge")) return null;
  return a;
}

export function saveAdmission(show, token, expiresAtMs) {
  save(`admit.${show}`, { token, expires_at_ms: expiresAtMs });
}

export function forgetAdmission(show) {
  forget(`admit.${show}`);
}

/**
 * Records that the show's admission bought its order. A payment settled later (slow
 * payments) spends the admission at the origin without the edge hearing of it, so the
 * waiting room may hand the same admission out again until it expires.
 */
export function spendAdmission(show) {
  const a = load(`admit.${show}`);
  if (a && a.token) save(`spent.${show}`, a.token);
  forget(`admit.${show}`);
}

export function isSpent(show, token) {
  return load(`spent.${show}`) === token;
}

/**
 * The admission token to present for `show` (expired or not: the edge judges by its own
 * clock); null lets the edge's cookie speak.
 */
export function admissionToken(show) {
  const a = load(`admit.${show}`);
  return a && a.token ? a.token : null;
}

// The signed-in account. The session cookie is HttpOnly, so whether this browser signed in
// is remembered beside it (a hint, never a credential): a fan who never signed in is not
// asked about at every page, and the hint is checked with `GET /v1/me` when present.
const HINT = "onsale.account";
let me;
const meListeners = new Set();

function hinted() {
  try {
    return window.localStorage.getItem(HINT) !== null;
  } catch {
    return true;
  }
}

function setHint(account) {
  try {
    if (account) window.localStorage.setItem(HINT, account.account_id || "1");
    else window.localStorage.removeItem(HINT);
  } catch {
    // Without storage, every page asks.
  }
}

function announce(account) {
  meListeners.forEach((f) => f(account));
}

/**
 * The signed-in account, or null when signed out. `refresh` asks again; `verify` asks even
 * when this browser has no sign-in on record (a session made elsewhere).
 */
export function currentAccount(refresh = false, verify = false) {
  if (!me || refresh) {
    if (!hinted() && !verify) {
      me = Promise.resolve(null);
    } else {
      me = api("/v1/me").then(
        (account) => {
          setHint(account);
          return account;
        },
        (error) => {
          if (error instanceof ApiError && error.status === 401) {
            setHint(null);
            return null;
          }
          me = undefined;
          throw error;
        },
      );
    }
    me.then(announce, () => {});
  }
  return me;
}

/** Records a sign-in just made, then reads the account. */
export function signedIn() {
  setHint({ account_id: "1" });
  return currentAccount(true);
}

export function onAccountChange(listener) {
  meListeners.add(listener);
}

export function setSignedOut() {
  setHint(null);
  me = Promise.resolve(null);
  announce(null);
}

// Signing in or out in another tab shows here too.
window.addEventListener("storage", (event) => {
  if (event.key === HINT || event.key === null) currentAccount(true).catch(() => {});
});

// Catalog reads (events, shows) are public and change rarely: kept for half a minute, and
// never tied to one page's abort signal, since the next page may share them.
const catalogCache = new Map();

export function catalog(path) {
  const hit = catalogCache.get(path);
  if (hit && hit.at > Date.now() - 30000) return hit.value;
  const value = api(path);
  catalogCache.set(path, { at: Date.now(), value });
  value.catch(() => catalogCache.delete(path));
  return value;
}
