// A hold: its seats, total and a live countdown (server-corrected) that warns a minute
// before the end; release it, or go on to payment.

import { h, replace, money, countdown, duration, link, notice } from "../dom.js";
import { api, serverNow, admissionToken, spendAdmission } from "../api.js";
import { seatLabels, placesLabel } from "../layout.js";

const WARN_MS = 60000;

/**
 * A countdown to `expiresAtMs` (server clock): `data-testid="hold-countdown"`, with a
 * `role="alert"` warning a minute before the end and another at the end. Returns
 * `{el, stop()}`; `onEnd` runs once when time is up.
 */
export function holdCountdown(ctx, expiresAtMs, { label = "Seats held for", onEnd } = {}) {
  const clock = h("span", { class: "countdown__clock" });
  const text = h("p", { class: "countdown", role: "timer", testid: "hold-countdown" }, `${label} `, clock);
  const alertSlot = h("div");
  const el = h("div", { class: "countdown-box" }, text, alertSlot);
  let warned = false;
  let ended = false;
  let interval = null;
  function update() {
    const left = expiresAtMs - serverNow();
    clock.textContent = countdown(left);
    text.setAttribute("aria-label", `${label} ${duration(left)}`);
    if (!warned && left <= WARN_MS && left > 0) {
      warned = true;
      text.classList.add("countdown--warn");
      replace(alertSlot, h("p", { class: "banner banner--warn", role: "alert" },
        "Less than a minute left: pay now or these seats go back on sale."));
    }
    if (!ended && left <= 0) {
      ended = true;
      clearInterval(interval);
      clock.textContent = "0:00";
      text.classList.add("countdown--warn");
      replace(alertSlot, h("p", { class: "banner banner--warn", role: "alert" },
        "Time is up: the seats were released and went back on sale."));
      if (onEnd) onEnd();
    }
  }
  update();
  interval = setInterval(() => ctx.live && update(), 500);
  ctx.onLeave(() => clearInterval(interval));
  return {
    el,
    stop() {
      clearInterval(interval);
    },
  };
}

/** A list of seat labels. */
export function seatList(labels) {
  return h("ul", { class: "seats", testid: "held-seats" }, labels.map((label) => h("li", {}, label)));
}

export async function render(ctx) {
  const [showId, holdId] = ctx.params;
  const showPath = `/shows/${encodeURIComponent(showId)}`;
  ctx.title("Your seats");
  let hold;
  try {
    hold = await api(`/v1/holds/${encodeURIComponent(holdId)}`, { token: admissionToken(showId), signal: ctx.signal });
  } catch (error) {
    if (!ctx.live) return;
    if (error.code === "admission_spent") spendAdmission(showId);
    ctx.fail(error);
    ctx.main.append(h("p", {}, link(`${showPath}/seats`, "Back to the seat map"), " · ", link(`${showPath}/queue`, "Go to the queue")));
    return;
  }
  if (!ctx.live) return;
  const labels = hold.general_admission
    ? [await placesLabel(showId, hold.general_admission, ctx.signal)]
    : await seatLabels(showId, holdId, hold.seat_ids, ctx.signal).catch(() => hold.seat_ids.map((id) => `Seat ${id}`));
  if (!ctx.live) return;

  const ended = {
    released: "You released these seats; they are back on sale.",
    expired: "This hold has ended; the seats went back on sale.",
    converted: "These seats are yours: the order is paid.",
  };
  if (hold.status !== "active") {
    ctx.title(hold.status === "converted" ? "Seats bought" : "Hold ended");
    ctx.main.append(
      h("p", { class: "banner" }, ended[hold.status] || "This hold is no longer active."),
      seatList(labels),
      h("p", {}, hold.status === "converted" ? link("/orders", "See your orders") : link(`${showPath}/seats`, "Choose seats again")),
    );
    return;
  }

  ctx.title("Your seats are held");
  const status = notice();
  const pay = link(`${showPath}/checkout/${encodeURIComponent(holdId)}`, "Continue to payment", { class: "button button--primary", testid: "continue-to-payment" });
  const release = h("button", { type: "button", class: "button button--quiet", testid: "release-hold" }, "Release these seats");
  const actions = h("div", { class: "actions" }, pay, release);
  const timer = holdCountdown(ctx, hold.expires_at_ms, {
    onEnd() {
      actions.replaceChildren(link(`${showPath}/seats`, "Choose seats again", { class: "button" }));
    },
  });
  ctx.main.append(
    timer.el,
    h("h2", {}, hold.general_admission ? "General admission" : `${labels.length} seat${labels.length === 1 ? "" : "s"}`),
    seatList(labels),
    h("p", { class: "total" }, "Total ", h("strong", {}, money(hold.total_cents, hold.currency))),
    actions,
    status,
  );

  release.addEventListener("click", async () => {
    ctx.error.clear();
    release.disabled = true;
    status.textContent = "Releasing your seats…";
    try {
      await api(`/v1/holds/${encodeURIComponent(holdId)}`, { method: "DELETE", token: admissionToken(showId), signal: ctx.signal });
      timer.stop();
      status.textContent = "Your seats were released and are back on sale.";
      const again = link(`${showPath}/seats`, "Choose other seats", { class: "button" });
      actions.replaceChildren(again);
      again.focus();
    } catch (error) {
      release.disabled = false;
      status.textContent = "";
      ctx.fail(error);
    }
  });
}
