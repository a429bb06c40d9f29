// The shell: client-side routing over the History API, the header's account area, and the
// page lifecycle (one page at a time, its requests aborted and timers cleared on leaving).

import { h, replace, errorSlot, link } from "./dom.js";
import {
  api,
  currentAccount,
  onAccountChange,
  setSignedOut,
  forgetAll,
  isAbort,
} from "./api.js";

const ID = "([A-Za-z0-9_-]{1,64})";
const route = (pattern, load, name = "render") => ({ re: new RegExp(`^${pattern}/?$`), load, name });

// Page modules load on demand, so a page fetches only its own code.
const ROUTES = [
  route("(?:/events)?", () => import("./pages/events.js")),
  route(`/events/${ID}`, () => import("./pages/event.js")),
  route(`/shows/${ID}`, () => import("./pages/show.js")),
  route(`/shows/${ID}/queue`, () => import("./pages/queue.js")),
  route(`/shows/${ID}/seats`, () => import("./pages/seats.js")),
  route(`/shows/${ID}/holds/${ID}`, () => import("./pages/hold.js")),
  route(`/shows/${ID}/checkout/${ID}`, () => import("./pages/checkout.js")),
  route("/orders", () => import("./pages/orders.js")),
  route(`/orders/${ID}`, () => import("./pages/order.js")),
  route("/signin", () => import("./pages/auth.js"), "signIn"),
  route("/signup", () => import("./pages/auth.js"), "signUp"),
  route("/account", () => import("./pages/account.js")),
];

const APP_SECTIONS = new Set(["events", "shows", "signin", "signup", "orders", "account"]);

/** Whether the shell serves `path` (the edge serves the app for exactly these). */
export function isAppPath(path) {
  if (path === "/") return true;
  const segments = path.replace(/\/$/, "").split("/").slice(1);
  return (
    segments.length >= 1 &&
    segments.length <= 6 &&
    APP_SECTIONS.has(segments[0]) &&
    segments.every((s) => /^[A-Za-z0-9_-]+$/.test(s))
  );
}

/** A same-origin app path from untrusted input (e.g. `?next=`), else `fallback`. */
export function safeNext(value, fallback = "/") {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//")) return fallback;
  try {
    const url = new URL(value, location.origin);
    if (url.origin !== location.origin || !isAppPath(url.pathname)) return fallback;
    return url.pathname + url.search;
  } catch {
    return fallback;
  }
}

let current = null;
let firstRender = true;

function pageError(message) {
  if (current && current.error) current.error.show(message);
}

/** Goes to `to` (a path), adding a history entry unless `replace` is set. */
export function navigate(to, { replace: replaceEntry = false } = {}) {
  const url = new URL(to, location.href);
  const target = url.pathname + url.search + url.hash;
  if (replaceEntry) history.replaceState(null, "", target);
  else if (target !== location.pathname + location.search + location.hash) {
    history.pushState(null, "", target);
  }
  render();
}

async function render() {
  const path = location.pathname;
  if (current) {
    current.controller.abort();
    for (const cleanup of current.cleanups) {
      try {
        cleanup();
      } catch {
        // A page's cleanup must not stop the next page.
      }
    }
  }
  // The header's sign-in link returns to the page; the account is asked once.
  currentAccount().then(showAccount, () => showAccount(null));
  for (const a of document.querySelectorAll(".site-nav a")) {
    const section = a.getAttribute("href");
    const here = section === "/events" ? path === "/" || path.startsWith("/events") : path.startsWith(section);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const controller = new AbortController();
  const page = { controller, cleanups: [], error: errorSlot() };
  current = page;
  const main = document.getElementById("main");
  const heading = h("h1", { tabindex: "-1" }, "Loading…");
  let match = null;
  let params = [];
  for (const r of ROUTES) {
    const m = r.re.exec(path);
    if (m) {
      match = r;
      params = m.slice(1);
      break;
    }
  }
  const ctx = {
    main,
    heading,
    params,
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    error: page.error,
    navigate,
    safeNext,
    /** Sets the h1 and the document title. */
    title(text, docTitle) {
      heading.textContent = text;
      document.title = `${docTitle || text} · onsale`;
    },
    /** Runs `fn` when the fan leaves the page. */
    onLeave(fn) {
      page.cleanups.push(fn);
    },
    /** Whether the fan is still on this page. */
    get live() {
      return current === page && !controller.signal.aborted;
    },
    /** `setTimeout` cleared on leaving. */
    later(fn, ms) {
      const id = setTimeout(() => {
        if (current === page) fn();
      }, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      page.cleanups.push(() => clearTimeout(id));
      return id;
    },
    /** Shows a failure in words, unless it is the page being left. */
    fail(error) {
      if (isAbort(error) || current !== page) return;
      page.error.show(error && error.message ? error.message : "Something went wrong.");
    },
  };
  if (!match) {
    replace(main, heading, page.error.el);
    ctx.title("Page not found");
    main.append(h("p", {}, "There is no page at this address. ", link("/", "See all events"), "."));
    finish(heading);
    return;
  }
  let mod;
  // A new build replaces this one's assets: a page module that no longer loads is loaded
  // afresh with the page, once.
  const retry = `onsale.reloaded:${path}`;
  try {
    mod = await match.load();
  } catch {
    if (current !== page) return;
    try {
      if (!sessionStorage.getItem(retry)) {
        sessionStorage.setItem(retry, "1");
        location.reload();
        return;
      }
      sessionStorage.removeItem(retry);
    } catch {
      // Without storage, say so instead.
    }
    replace(main, heading, page.error.el);
    ctx.title("Page could not load");
    page.error.show("This page could not be loaded. Check your connection and reload the page.");
    finish(heading);
    return;
  }
  try {
    sessionStorage.removeItem(retry);
  } catch {
    // Nothing was kept.
  }
  if (current !== page) return;
  replace(main, heading, page.error.el);
  let rendering;
  try {
    rendering = mod[match.name](ctx);
  } catch (error) {
    ctx.fail(error);
  }
  finish(heading);
  if (rendering && typeof rendering.then === "function") rendering.catch((error) => ctx.fail(error));
}

function finish(heading) {
  if (firstRender) {
    firstRender = false;
    return;
  }
  window.scrollTo(0, 0);
  heading.focus({ preventScroll: true });
}

// Same-origin links to app pages navigate in place.
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target instanceof Element ? event.target.closest("a[href]") : null;
  if (!a || (a.target && a.target !== "_self") || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !isAppPath(url.pathname)) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});

window.addEventListener("popstate", () => render());

// Failures nobody caught are shown on the page rather than left in the console.
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  if (!isAbort(event.reason)) pageError(event.reason && event.reason.message);
});
window.addEventListener("error", (event) => {
  if (event.error) {
    event.preventDefault();
    pageError("Something went wrong on this page. Reloading it may help.");
  }
});

// The header: who is signed in, and the way in or out.
const who = document.getElementById("who");

let shown;

function showAccount(account) {
  if (!who) return;
  const state = account ? `in:${account.account_id}:${account.display_name}` : `out:${location.pathname}${location.search}`;
  if (state === shown) return;
  shown = state;
  if (account) {
    const out = h("button", { type: "button", class: "link-button", testid: "signout" }, "Sign out");
    out.addEventListener("click", signOut);
    replace(who, h("span", { class: "who__name" }, "Signed in as ", h("strong", {}, account.display_name)), " ", out);
  } else {
    const next = encodeURIComponent(location.pathname + location.search);
    const onAuthPage = /^\/sign(in|up)/.test(location.pathname);
    replace(
      who,
      link(onAuthPage ? "/signin" : `/signin?next=${next}`, "Sign in"),
      " ",
      link(onAuthPage ? "/signup" : `/signup?next=${next}`, "Sign up", { class: "button button--small" }),
    );
  }
}

async function signOut() {
  try {
    await api("/v1/sessions/current", { method: "DELETE" });
  } catch (error) {
    if (!(error && error.status === 401)) {
      pageError(`You could not be signed out: ${error.message}`);
      return;
    }
  }
  forgetAll();
  setSignedOut();
  navigate("/");
}

onAccountChange(showAccount);

render();
