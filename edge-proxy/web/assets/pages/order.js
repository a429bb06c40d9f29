// An order: its status, one QR code per valid ticket (live for a show whose codes rotate), the
// refund if any, and cancellation under the show's refund policy while the API allows it.

import { h, replace, money, words, dateTime, link, notice } from "../dom.js";
import { api, catalog, write, load, admission } from "../api.js";
import { ticketQr, listClock } from "../ticketqr.js";

const REASONS = {
  fan_cancelled: "You cancelled this order.",
  organizer_cancelled: "The organizer cancelled this order.",
  hold_expired: "The time to pay ran out before the payment went through.",
};

/** The order's valid tickets from the account's ticket list (newest first), by ticket
 * id, and the list's clock ([`listClock`]). */
async function ticketPlaces(order, signal) {
  const wanted = new Set(order.tickets.filter((t) => t.status === "valid").map((t) => t.ticket_id));
  const found = new Map();
  let cursor = null;
  let offset = 0;
  for (let page = 0; page < 5 && wanted.size > found.size; page++) {
    const q = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : "?limit=100";
    const sentAt = Date.now();
    const result = await api(`/v1/me/tickets${q}`, { signal });
    offset = listClock(result, sentAt);
    for (const t of result.items) if (wanted.has(t.ticket_id)) found.set(t.ticket_id, t);
    cursor = result.next_cursor;
    if (!cursor) break;
  }
  return { found, offset };
}

export async function render(ctx) {
  const [orderId] = ctx.params;
  const path = `/v1/orders/${encodeURIComponent(orderId)}`;
  ctx.title("Your order");
  let order;
  try {
    order = await api(path, { signal: ctx.signal });
  } catch (error) {
    if (!ctx.live) return;
    if (error.code === "sign_in_required") {
      ctx.navigate(`/signin?next=${encodeURIComponent(`/orders/${orderId}`)}`, { replace: true });
      return;
    }
    if (error.status === 404) ctx.title("Order not found");
    ctx.fail(error);
    ctx.main.append(h("p", {}, link("/orders", "See all your orders")));
    return;
  }
  if (!ctx.live) return;

  const statusEl = h("p", { class: "order-status", role: "status", testid: "order-status" });
  const about = h("p", { class: "lead" });
  const body = h("div");
  const cancelBox = h("section", { class: "panel", "aria-labelledby": "cancel-h", hidden: true });
  const outcome = notice("outcome");
  ctx.main.append(about, statusEl, body, cancelBox, outcome, h("p", {}, link("/orders", "See all your orders")));

  catalog(`/v1/shows/${encodeURIComponent(order.show_id)}`)
    .then(async (s) => {
      const event = await catalog(`/v1/events/${encodeURIComponent(s.event_id)}`);
      if (!ctx.live) return;
      const venue = event.venue || {};
      replace(about, link(`/shows/${encodeURIComponent(s.id)}`, event.name), ` · ${dateTime(s.starts_at, venue.timezone)} · ${venue.name}`);
    })
    .catch(() => {});

  async function show(current) {
    order = current;
    statusEl.dataset.status = order.status;
    const state = words(order.status);
    statusEl.textContent = order.status === "pending_payment" && order.payment.status === "processing"
      ? `${state}: your payment is processing`
      : state;
    ctx.title(order.status === "confirmed" ? "You're going! Your tickets" : "Your order");
    let places = new Map();
    let clock = 0;
    if (order.tickets.some((t) => t.status === "valid")) {
      ({ found: places, offset: clock } = await ticketPlaces(order, ctx.signal).catch((error) => {
        if (error.name === "AbortError") throw error;
        return { found: new Map(), offset: 0 };
      }));
      if (!ctx.live) return;
    }
    const held = load(`seats.${order.hold_id}`) || {};
    const seatName = (seatId, ticketId) => {
      const t = places.get(ticketId);
      if (t) {
        return t.seat_id === null
          ? `${t.section_id}, standing, place ${t.ga_number}`
          : `section ${t.section_id}, row ${t.row}, seat ${t.number}`;
      }
      if (seatId === null) return "standing place";
      return held[seatId] || `seat ${seatId}`;
    };
    const parts = [];
    const paid = order.payment.status === "succeeded" ? "paid" : `payment ${words(order.payment.status).toLowerCase()}`;
    parts.push(h("p", { class: "total" }, "Total ", h("strong", {}, money(order.total_cents, order.currency)), ` · ${paid}`));
    if (order.cancel_reason) parts.push(h("p", {}, REASONS[order.cancel_reason] || "This order was cancelled."));
    if (order.refund) {
      parts.push(h("p", { class: "banner", testid: "refund" },
        `Refund of ${money(order.refund.amount_cents, order.currency)}: `,
        order.refund.status === "succeeded" ? "paid back to your card." : "on its way to your card."));
    }
    if (order.status === "pending_payment" && order.payment.status !== "processing") {
      parts.push(h("p", {}, admission(order.show_id)
        ? link(`/shows/${encodeURIComponent(order.show_id)}/checkout/${encodeURIComponent(order.hold_id)}`, "Continue to payment", { class: "button button--primary" })
        : "This order is waiting for payment. If it is not paid in time, the seats go back on sale."));
    }
    if (order.status === "payment_failed") {
      parts.push(h("p", {}, "The payment was declined, so the seats were released and are back on sale."));
    }
    const valid = order.tickets.filter((t) => t.status === "valid");
    if (valid.length) {
      parts.push(h("h2", {}, `Your tickets (${valid.length})`),
        h("p", { class: "hint" }, "Show each code at the gate. Keep them private: a code gets one person in."),
        h("ul", { class: "tickets" }, valid.map((t) => {
          const place = seatName(t.seat_id, t.ticket_id);
          return h("li", { class: "ticket" },
            ticketQr(ctx, places.get(t.ticket_id) || t, place, 256, clock),
            h("p", { class: "ticket__seat" }, place.charAt(0).toUpperCase() + place.slice(1)));
        })));
    } else if (order.items.length) {
      parts.push(h("h2", {}, "Seats"),
        h("ul", { class: "seats" }, order.items.map((item) => {
          const ticket = order.tickets.find((t) => t.seat_id === item.seat_id);
          const name = seatName(item.seat_id, ticket && ticket.ticket_id);
          return h("li", {}, `${name.charAt(0).toUpperCase()}${name.slice(1)} · ${money(item.price_cents, order.currency)}`,
            ticket ? ` · ticket ${words(ticket.status).toLowerCase()}` : "");
        })));
    } else if (order.general_admission) {
      const places = order.general_admission;
      parts.push(h("h2", {}, "General admission"),
        h("p", {}, `${places.quantity} standing place${places.quantity === 1 ? "" : "s"}, ${places.section_id}`));
    }
    replace(body, parts);
    cancellable(places);
    if (order.status === "pending_payment" && order.payment.status === "processing") {
      ctx.later(refresh, 2000);
    }
  }

  async function refresh() {
    try {
      const current = await api(path, { signal: ctx.signal, cache: "no-store" });
      if (ctx.live) await show(current);
    } catch (error) {
      if (ctx.live && error.name !== "AbortError") ctx.later(refresh, 5000);
    }
  }

  function cancellable(places) {
    const scanned = [...places.values()].some((t) => t.scanned);
    if (order.status !== "confirmed") {
      cancelBox.hidden = true;
      return;
    }
    const heading = h("h2", { id: "cancel-h" }, "Cancel this order");
    if (scanned) {
      replace(cancelBox, heading, h("p", {}, "A ticket of this order was scanned at the door, so it can no longer be cancelled here. Contact the organizer."));
      cancelBox.hidden = false;
      return;
    }
    const start = h("button", { type: "button", class: "button button--quiet", testid: "cancel-order" }, "Cancel order");
    replace(cancelBox, heading,
      h("p", {}, "Your refund depends on how long before the show you cancel, under the show's refund policy: the earlier, the more comes back. All tickets of the order stop working at once, and the seats go back on sale."),
      start);
    cancelBox.hidden = false;
    start.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "button button--danger", testid: "cancel-order-confirm" }, "Yes, cancel my order");
      const no = h("button", { type: "button", class: "button button--quiet" }, "Keep my tickets");
      const ask = h("div", { class: "actions", role: "group", "aria-label": "Confirm cancellation" },
        h("p", {}, "Cancel the whole order? This cannot be undone."), yes, no);
      start.replaceWith(ask);
      yes.focus();
      no.addEventListener("click", () => {
        ask.replaceWith(start);
        start.focus();
      });
      yes.addEventListener("click", async () => {
        yes.disabled = true;
        no.disabled = true;
        ctx.error.clear();
        outcome.textContent = "Cancelling…";
        try {
          const answer = await write(`cancel:${orderId}`, `${path}/cancel`, { method: "POST", signal: ctx.signal });
          if (!ctx.live) return;
          outcome.textContent = answer.refund_cents > 0
            ? `Your order is cancelled. A refund of ${money(answer.refund_cents, answer.order.currency)} is on its way to your card.`
            : "Your order is cancelled. Under the show's refund policy, no refund is due this close to the show.";
          await show(answer.order);
          statusEl.focus();
        } catch (error) {
          if (!ctx.live) return;
          outcome.textContent = "";
          yes.disabled = false;
          no.disabled = false;
          ctx.fail(error);
        }
      });
    });
  }

  statusEl.tabIndex = -1;
  await show(order);
}
