// DOM building without innerHTML: every piece of text goes in through textContent, so
// data from the API can never become markup.

/**
 * Creates an element. `props` keys: `class`, `text`, `testid`, `on<event>` listeners,
 * DOM properties (`disabled`, `checked`, `value`, `hidden`...) and any other attribute.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  let value;
  if (props) {
    for (const key of Object.keys(props)) {
      const v = props[key];
      if (v == null || v === false) continue;
      if (key === "class") el.className = v;
      else if (key === "text") el.textContent = String(v);
      else if (key === "testid") el.setAttribute("data-testid", v);
      else if (key === "value") value = v;
      else if (key.startsWith("on") && typeof v === "function") {
        el.addEventListener(key.slice(2), v);
      } else if (typeof v === "boolean") {
        if (key in el) el[key] = v;
        else el.setAttribute(key, "");
      } else el.setAttribute(key, String(v));
    }
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

/** Appends children: nodes, strings (as text), arrays of them; null and false are skipped. */
export function append(parent, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * The page's one error slot: `show(message)` puts a `role="alert"` paragraph
 * (`data-testid="error-message"`) in it, `clear()` takes it away.
 */
export function errorSlot() {
  const el = h("div", { class: "error-slot" });
  return {
    el,
    show(message, ...extra) {
      const p = h("p", { class: "error", role: "alert", testid: "error-message" });
      append(p, [String(message || "Something went wrong."), ...extra]);
      replace(el, p);
      return p;
    },
    clear() {
      el.replaceChildren();
    },
  };
}

/** A polite, visually quiet live region for progress and outcomes. */
export function notice(cls = "notice") {
  return h("p", { class: cls, role: "status", "aria-live": "polite" });
}

export function link(href, text, props) {
  return h("a", { href, ...props }, text);
}

/** A `<label>` + control pair inside a `.field` wrapper. */
export function field(id, labelText, control, hint) {
  control.id = id;
  const parts = [h("label", { for: id }, labelText)];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId }, hint));
  }
  parts.push(control);
  return h("div", { class: "field" }, parts);
}

const moneyFormats = new Map();

/** `12345, "GBP"` -> "£123.45". */
export function money(cents, currency) {
  let fmt = moneyFormats.get(currency);
  if (!fmt) {
    try {
      fmt = new Intl.NumberFormat("en-GB", { style: "currency", currency });
    } catch {
      fmt = { format: (n) => `${n.toFixed(2)} ${currency}` };
    }
    moneyFormats.set(currency, fmt);
  }
  return fmt.format(cents / 100);
}

export function count(n) {
  return new Intl.NumberFormat("en-GB").format(n);
}

/** A date and time, in `timeZone` when given (a venue's), else the fan's own. */
export function dateTime(value, timeZone, withZone = false) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const options = withZone
    ? { weekday: "long", day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" }
    : { dateStyle: "full", timeStyle: "short" };
  if (timeZone) options.timeZone = timeZone;
  try {
    return new Intl.DateTimeFormat("en-GB", options).format(date);
  } catch {
    return date.toLocaleString("en-GB");
  }
}

export function shortDate(value, timeZone) {
  const options = { dateStyle: "medium" };
  if (timeZone) options.timeZone = timeZone;
  try {
    return new Intl.DateTimeFormat("en-GB", options).format(new Date(value));
  } catch {
    return new Date(value).toDateString();
  }
}

export function clockTime(value) {
  return new Intl.DateTimeFormat("en-GB", { timeStyle: "medium" }).format(new Date(value));
}

/** `<time datetime>` with readable text. */
export function time(value, text) {
  const date = new Date(value);
  return h("time", { datetime: Number.isNaN(date.getTime()) ? "" : date.toISOString() }, text);
}

/** "4:05" or "1:02:03" for a number of milliseconds (never negative). */
export function countdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const s = total % 60;
  const m = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  const mm = hours ? String(m).padStart(2, "0") : String(m);
  return `${hours ? `${hours}:` : ""}${mm}:${String(s).padStart(2, "0")}`;
}

/** "4 minutes 5 seconds" for screen readers and plain sentences. */
export function duration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  const parts = [];
  if (m) parts.push(`${m} minute${m === 1 ? "" : "s"}`);
  if (s || !m) parts.push(`${s} second${s === 1 ? "" : "s"}`);
  return parts.join(" ");
}

export const STATUS_WORDS = {
  pending_payment: "Awaiting payment",
  confirmed: "Confirmed",
  payment_failed: "Payment failed",
  cancelled: "Cancelled",
  requires_confirmation: "Not paid yet",
  requires_action: "Waiting for your bank",
  processing: "Processing",
  succeeded: "Paid",
  failed: "Failed",
  refunded: "Refunded",
  on_sale: "On sale",
  scheduled: "Coming soon",
  sold_out: "Sold out",
  completed: "Finished",
  pending: "Pending",
  valid: "Valid",
  revoked: "Revoked",
};

export function words(status) {
  return STATUS_WORDS[status] || String(status || "").replace(/_/g, " ");
}
