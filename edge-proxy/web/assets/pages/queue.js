// The waiting room: join (with proof of work when the show asks for it), then poll at the
// edge's `poll_after_ms` until admitted; the status area is updated in place.

import { h, replace, clockTime, time, dateTime, count, link } from "../dom.js";
import {
  api,
  catalog,
  serverNow,
  queueToken,
  saveQueueToken,
  saveAdmission,
  isSpent,
  load,
  save,
  forget,
} from "../api.js";

const MAX_POW_ATTEMPTS = 3;

// Shows seen asking for proof of work: later joins solve a challenge first instead of
// being refused once.
function powKnown(show) {
  try {
    return window.localStorage.getItem(`onsale.pow.${show}`) === "1";
  } catch {
    return false;
  }
}

function rememberPow(show, needed) {
  try {
    if (needed) window.localStorage.setItem(`onsale.pow.${show}`, "1");
    else window.localStorage.removeItem(`onsale.pow.${show}`);
  } catch {
    // Only costs one refused join next time.
  }
}

/** "about 2–4 minutes" from an estimate in seconds. */
export function etaWords(seconds) {
  if (seconds == null) return "No estimate while admission is paused";
  if (seconds < 45) return "less than a minute";
  const lo = Math.max(1, Math.floor((seconds * 0.8) / 60));
  const hi = Math.max(lo + 1, Math.ceil((seconds * 1.25) / 60));
  if (hi <= 90) return `about ${lo}–${hi} minutes`;
  const hours = (m) => Math.round((m / 60) * 2) / 2;
  const loH = Math.max(1, hours(lo));
  const hiH = Math.max(loH + 0.5, hours(hi));
  return `about ${loH}–${hiH} hours`;
}

export async function render(ctx) {
  const [showId] = ctx.params;
  const showPath = `/shows/${encodeURIComponent(showId)}`;
  const firstKey = `queue-first.${showId}`;
  ctx.title("Waiting room");

  const about = h("p", { class: "lead" });
  const state = h("p", { class: "queue__state" }, "Joining the queue…");
  const position = h("dd", { testid: "queue-position" }, "—");
  const eta = h("dd", { testid: "queue-eta" }, "—");
  const status = h(
    "section",
    { class: "queue-status", role: "status", "aria-live": "polite", "aria-label": "Your place in the queue", testid: "queue-status" },
    state,
    h("dl", { class: "queue__facts" },
      h("div", {}, h("dt", {}, "People ahead of you"), position),
      h("div", {}, h("dt", {}, "Estimated wait"), eta)),
  );
  const progressLabel = h("p", { id: "queue-progress-label", class: "queue__progress-label" }, "Your progress in the queue");
  const progress = h("progress", { testid: "queue-progress", max: "1", value: 0, "aria-labelledby": "queue-progress-label" }, "0%");
  const updated = h("p", { class: "hint", testid: "queue-updated" }, "Not updated yet.");
  const banners = h("div", { class: "banners" });
  const pauseNote = h("div", { class: "banners" });
  const powText = h("p", {}, "Checking your browser before you join. This takes a few seconds.");
  const powBar = h("progress", { max: "1", value: 0, "aria-label": "Browser check progress" });
  const powPanel = h("div", { class: "banner banner--info", hidden: true, testid: "pow-progress" }, powText, powBar);
  const pause = h("button", { type: "button", class: "button button--quiet", "aria-pressed": "false", testid: "queue-pause" }, "Pause live updates");
  const actions = h("div", { class: "actions" }, pause);

  ctx.main.append(
    about,
    h("p", { class: "keep-open" }, "Keep this tab open — don't refresh, you keep your place."),
    powPanel,
    status,
    h("div", { class: "queue__progress" }, progressLabel, progress),
    updated,
    banners,
    pauseNote,
    actions,
    h("p", {}, link(showPath, "Back to the show")),
  );

  catalog(`/v1/shows/${encodeURIComponent(showId)}`)
    .then(async (show) => {
      const event = await catalog(`/v1/events/${encodeURIComponent(show.event_id)}`);
      if (!ctx.live) return;
      const venue = event.venue || {};
      ctx.title(`Waiting room: ${event.name}`);
      about.textContent = `${dateTime(show.starts_at, venue.timezone)} at ${venue.name}.`;
    })
    .catch(() => {});

  let timer = null;
  let due = 0;
  let pending = null;
  let paused = false;
  let done = false;
  let failures = 0;
  let powAttempts = 0;

  ctx.onLeave(() => clearTimeout(timer));

  function schedule(fn, ms) {
    clearTimeout(timer);
    pending = fn;
    due = Date.now() + ms;
    if (!paused) timer = setTimeout(() => ctx.live && fn(), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
  }

  function stamp() {
    const now = Date.now();
    replace(updated, "Last updated at ", time(now, clockTime(now)), ".");
  }

  function banner(kind, ...content) {
    const el = h("div", { class: `banner banner--${kind}`, testid: "queue-banner", "data-kind": kind }, content);
    replace(banners, el);
    return el;
  }

  function clearBanner(kind) {
    const el = banners.firstElementChild;
    if (el && (!kind || el.dataset.kind === kind)) banners.replaceChildren();
  }

  function setProgress(current) {
    let first = load(firstKey);
    if (typeof first !== "number" || current > first) {
      first = current;
      save(firstKey, first);
    }
    const moved = Math.max(0, first - current);
    const ratio = first > 0 ? moved / first : 1;
    progress.max = Math.max(1, first);
    progress.value = first > 0 ? moved : 1;
    progress.textContent = `${Math.round(ratio * 100)}%`;
    progressLabel.textContent =
      moved > 0
        ? `Your progress in the queue: ${count(moved)} place${moved === 1 ? "" : "s"} closer since you joined (${Math.round(ratio * 100)}%).`
        : "Your progress in the queue";
  }

  function handle(answer) {
    failures = 0;
    powAttempts = 0;
    ctx.error.clear();
    if (answer.queue_token) saveQueueToken(showId, answer.queue_token);
    stamp();
    const opens = answer.opens_at_ms;
    switch (answer.status) {
      case "closed": {
        state.textContent = `The waiting room is not open yet. It opens ${dateTime(opens, undefined, true)}.`;
        position.textContent = "Not open yet";
        eta.textContent = "—";
        banner("closed", h("p", {}, "The waiting room opens ", time(opens, dateTime(opens, undefined, true)),
          ". Stay on this page: you join by yourself the moment it opens."));
        const wait = opens - serverNow("edge") + Math.random() * 3000;
        schedule(join, Math.max(1000, Math.min(wait, 5 * 60 * 1000)));
        break;
      }
      case "pre_queue": {
        state.textContent = "You're in the pre-queue. Everyone here gets a random place when the sale opens.";
        position.textContent = "Drawn when the sale opens";
        eta.textContent = "—";
        banner("pre-queue", h("p", {}, "The sale opens ", time(opens, dateTime(opens, undefined, true)),
          ". Everyone who joins before then gets a random place at the opening, so there is no need to rush."));
        schedule(poll, answer.poll_after_ms || 5000);
        break;
      }
      case "queued": {
        const ahead = answer.position;
        state.textContent =
          ahead === 0
            ? "You're next in line."
            : `You're in the queue. ${count(ahead)} ${ahead === 1 ? "person is" : "people are"} ahead of you.`;
        position.textContent = count(ahead);
        eta.textContent = etaWords(answer.estimated_wait_s);
        setProgress(ahead);
        if (answer.estimated_wait_s == null) {
          banner("paused", h("p", {}, "Admission is paused for the moment. You keep your place, and the queue moves again as soon as it resumes."));
        } else clearBanner();
        schedule(poll, answer.poll_after_ms || 5000);
        break;
      }
      case "admitted": {
        if (isSpent(showId, answer.admission_token)) {
          // The turn that bought the last order: the next one comes once it has run out.
          const ends = answer.admission_expires_at_ms;
          state.textContent = "Your last order used this turn.";
          position.textContent = "—";
          eta.textContent = "—";
          banner("turn-used", h("p", {}, "To buy more, you need a new turn. It can start when this one ends, at ",
            time(ends, clockTime(ends)), "; stay on this page and you join again by yourself."));
          schedule(join, Math.max(2000, ends - serverNow("edge") + 1000 + Math.random() * 3000));
          break;
        }
        done = true;
        clearTimeout(timer);
        saveAdmission(showId, answer.admission_token, answer.admission_expires_at_ms);
        forget(firstKey);
        state.textContent = "It's your turn! Taking you to choose your seats…";
        position.textContent = "0";
        eta.textContent = "Now";
        progress.max = 1;
        progress.value = 1;
        progress.textContent = "100%";
        clearBanner();
        pause.disabled = true;
        ctx.navigate(`${showPath}/seats`, { replace: true });
        break;
      }
      case "sold_out": {
        state.textContent = "Sold out for now.";
        position.textContent = "—";
        eta.textContent = "—";
        banner("sold-out", h("p", {}, "Every seat is sold or held. Seats held by other fans come back if they are not bought, so you can stay in line: we keep checking."));
        schedule(poll, answer.poll_after_ms || 15000);
        break;
      }
      default:
        schedule(poll, answer.poll_after_ms || 5000);
    }
  }

  function retryLater(fn, error, message) {
    failures += 1;
    const backoff = Math.min(15000, 1000 * 2 ** Math.min(failures, 4));
    const hinted = error && error.retryAfterS ? error.retryAfterS * 1000 : 0;
    const wait = Math.max(hinted, backoff) * (0.8 + Math.random() * 0.4);
    state.textContent = message;
    schedule(fn, wait);
  }

  function turnMissed(error) {
    done = true;
    clearTimeout(timer);
    forget(firstKey);
    state.textContent = "Your turn has passed.";
    position.textContent = "—";
    eta.textContent = "—";
    const again = h("button", { type: "button", class: "button button--primary" }, "Join the queue again");
    again.addEventListener("click", () => {
      done = false;
      again.disabled = true;
      clearBanner();
      join();
    });
    banner("turn-missed",
      h("p", {}, error.message),
      h("p", {}, "This page checks in for you while it stays open. Joining again puts you at the back of the queue."),
      again);
    again.focus();
  }

  async function failed(error, retry) {
    if (!ctx.live || error.name === "AbortError") return;
    switch (error.code) {
      case "sign_in_required":
        ctx.navigate(`/signin?next=${encodeURIComponent(`${showPath}/queue`)}`, { replace: true });
        return;
      case "pow_required":
      case "pow_invalid":
      case "pow_reused": {
        rememberPow(showId, true);
        if (powAttempts >= MAX_POW_ATTEMPTS) {
          state.textContent = "The browser check did not go through.";
          ctx.error.show("We could not complete the check this queue asks of browsers. Try again.");
          offerRetry();
          return;
        }
        powAttempts += 1;
        let pow;
        try {
          pow = await proofOfWork();
        } catch (inner) {
          powPanel.hidden = true;
          if (inner.name !== "AbortError" && ctx.live) failed(inner, () => join());
          return;
        }
        join(pow);
        return;
      }
      case "turn_missed":
        turnMissed(error);
        return;
      case "queue_token_required":
      case "wrong_show":
        // The place belongs to the account: joining again gets it back.
        forget(`queue.${showId}`);
        join();
        return;
      default:
    }
    if (error.status === 0) {
      retryLater(retry, error, "Connection lost. Retrying — you keep your place.");
      return;
    }
    if (error.status === 429 || error.status >= 500) {
      retryLater(retry, error, "The queue is very busy. Retrying in a moment — you keep your place.");
      return;
    }
    state.textContent = "We could not check your place in the queue.";
    ctx.fail(error);
    offerRetry();
  }

  function offerRetry() {
    const again = h("button", { type: "button", class: "button" }, "Try again");
    again.addEventListener("click", () => {
      again.remove();
      ctx.error.clear();
      powAttempts = 0;
      join();
    });
    actions.append(again);
  }

  async function proofOfWork() {
    let challenge;
    try {
      challenge = await api(`/v1/waiting-room/challenge?show_id=${encodeURIComponent(showId)}`, { signal: ctx.signal });
    } catch (error) {
      if (error.code === "no_challenge") {
        rememberPow(showId, false);
        return undefined;
      }
      throw error;
    }
    powPanel.hidden = false;
    powBar.value = 0;
    state.textContent = "Checking your browser before you join…";
    const { solve } = await import("../pow.js");
    const solution = await solve(challenge.challenge, challenge.difficulty, (tries, expected) => {
      powBar.value = Math.min(0.99, tries / (expected * 2));
    }, ctx.signal);
    powBar.value = 1;
    powPanel.hidden = true;
    return { challenge: challenge.challenge, solution };
  }

  async function join(pow) {
    if (!ctx.live) return;
    if (!pow && powKnown(showId) && powAttempts < MAX_POW_ATTEMPTS) {
      powAttempts += 1;
      try {
        pow = await proofOfWork();
      } catch (error) {
        powPanel.hidden = true;
        if (error.name !== "AbortError" && ctx.live) failed(error, () => join());
        return;
      }
      if (!ctx.live) return;
    }
    if (!pow) state.textContent = "Joining the queue…";
    const body = { show_id: showId };
    if (pow) body.pow = pow;
    try {
      const answer = await api("/v1/waiting-room/sessions", {
        method: "POST",
        body,
        token: queueToken(showId),
        signal: ctx.signal,
      });
      if (ctx.live) handle(answer);
    } catch (error) {
      powPanel.hidden = true;
      try {
        await failed(error, () => join());
      } catch (inner) {
        ctx.fail(inner);
      }
    }
  }

  async function poll() {
    if (!ctx.live || paused || done) return;
    try {
      const answer = await api(`/v1/waiting-room/sessions/current?show_id=${encodeURIComponent(showId)}`, {
        token: queueToken(showId),
        signal: ctx.signal,
        cache: "no-store",
      });
      if (ctx.live && !done) handle(answer);
    } catch (error) {
      try {
        await failed(error, poll);
      } catch (inner) {
        ctx.fail(inner);
      }
    }
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume live updates" : "Pause live updates";
    if (paused) {
      clearTimeout(timer);
      replace(pauseNote, h("div", { class: "banner banner--updates-paused", testid: "queue-banner", "data-kind": "updates-paused" },
        h("p", {}, "Live updates are paused. While they are, you are not seen in line: if your turn comes, you may miss it. Resume soon.")));
    } else {
      pauseNote.replaceChildren();
      if (!done && pending) {
        const fn = pending;
        schedule(fn, 0);
      }
    }
  });

  // Hidden tabs run timers late: check in at once when the fan comes back or reconnects.
  const wake = (event) => {
    const overdue = event.type === "online" || Date.now() >= due - 250;
    if (document.visibilityState === "visible" && !paused && !done && pending && overdue) {
      schedule(pending, 0);
    }
  };
  document.addEventListener("visibilitychange", wake);
  window.addEventListener("online", wake);
  ctx.onLeave(() => {
    document.removeEventListener("visibilitychange", wake);
    window.removeEventListener("online", wake);
  });

  if (queueToken(showId)) poll();
  else join();
}
