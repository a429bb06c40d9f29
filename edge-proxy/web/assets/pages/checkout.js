// Checkout: the hold becomes an order (one per hold; its key is kept so a reload finds the
// same order), then the payment is confirmed with a sandbox test card. 3-D Secure asks the
// fan to approve and confirms again; a slow payment is followed on the order until settled.

import { h, replace, money, link, notice, field } from "../dom.js";
import {
  api,
  write,
  admissionToken,
  spendAdmission,
  load,
  save,
  uuid,
} from "../api.js";
import { seatLabels, placesLabel } from "../layout.js";
import { holdCountdown, seatList } from "./hold.js";

export const METHODS = [
  ["pm_card_ok", "Test card that pays straight away"],
  ["pm_card_3ds", "Test card that needs a bank check (3-D Secure)"],
  ["pm_card_slow", "Test card that takes a little while to process"],
  ["pm_card_declined", "Test card that is declined"],
];

const POLL_MS = 2000;
const POLL_LIMIT_MS = 5 * 60 * 1000;

export async function render(ctx) {
  const [showId, holdId] = ctx.params;
  const showPath = `/shows/${encodeURIComponent(showId)}`;
  const token = () => admissionToken(showId);
  ctx.title("Checkout");
  const status = notice();
  ctx.main.append(status);
  status.textContent = "Preparing your order…";

  // The order for this hold, made once: the same key answers with the same order.
  const orderKey = load(`order-key.${holdId}`) || uuid();
  save(`order-key.${holdId}`, orderKey);
  let order;
  try {
    order = await api("/v1/orders", {
      method: "POST",
      body: { hold_id: holdId },
      idempotencyKey: orderKey,
      token: token(),
      signal: ctx.signal,
    });
    save(`order.${holdId}`, order.order_id);
    // A replayed answer is the order as it was made: read it as it is now.
    order = await api(`/v1/orders/${encodeURIComponent(order.order_id)}`, { signal: ctx.signal }).catch((error) => {
      if (error.name === "AbortError") throw error;
      return order;
    });
  } catch (error) {
    if (!ctx.live || error.name === "AbortError") return;
    status.textContent = "";
    const known = load(`order.${holdId}`);
    if (known && ["hold_already_ordered", "admission_required", "admission_spent"].includes(error.code)) {
      ctx.navigate(`/orders/${encodeURIComponent(known)}`, { replace: true });
      return;
    }
    const more = {
      hold_already_ordered: link("/orders", "See your orders"),
      hold_not_active: link(`${showPath}/seats`, "Choose seats again"),
      hold_not_found: link(`${showPath}/seats`, "Choose seats again"),
      admission_required: link(`${showPath}/queue`, "Go to the queue"),
      admission_spent: link(`${showPath}/queue`, "Go to the queue"),
    }[error.code];
    if (error.code === "admission_spent") spendAdmission(showId);
    ctx.error.show(error.message, more ? " " : "", more || "");
    return;
  }
  if (!ctx.live) return;
  status.textContent = "";

  const labels = order.general_admission
    ? [await placesLabel(showId, order.general_admission, ctx.signal)]
    : await seatLabels(showId, holdId, order.items.map((i) => i.seat_id), ctx.signal)
      .catch(() => order.items.map((i) => `Seat ${i.seat_id}`));
  if (!ctx.live) return;

  const orderPath = `/orders/${encodeURIComponent(order.order_id)}`;
  if (order.status !== "pending_payment") {
    ctx.navigate(orderPath, { replace: true });
    return;
  }

  const paymentId = order.payment.payment_id;
  const method = h("select", { name: "payment_method", testid: "payment-method" },
    METHODS.map(([value, label]) => h("option", { value }, label)));
  const pay = h("button", { type: "submit", class: "button button--primary", testid: "pay-submit" }, `Pay ${money(order.total_cents, order.currency)}`);
  const form = h("form", { class: "form", "aria-labelledby": "pay-h", novalidate: true },
    h("h2", { id: "pay-h" }, "Payment"),
    h("p", { class: "hint" }, "This is a test checkout: pick a test card to see how each kind of payment goes. No money moves."),
    field("payment-method", "Card", method),
    pay);
  const challenge = h("section", { class: "panel", hidden: true, "aria-labelledby": "tds-h", testid: "three-ds" });
  const processing = h("section", { class: "panel", hidden: true, "aria-labelledby": "processing-h", testid: "payment-processing" });
  const outcome = notice("outcome");
  const timer = holdCountdown(ctx, order.expires_at_ms, {
    label: "Time left to pay",
    onEnd() {
      form.hidden = true;
      challenge.hidden = true;
    },
  });

  ctx.title("Checkout");
  ctx.main.append(
    timer.el,
    h("h2", {}, "Your order"),
    seatList(labels),
    h("p", { class: "total" }, "Total ", h("strong", {}, money(order.total_cents, order.currency))),
    form,
    challenge,
    processing,
    outcome,
  );

  function busy(on) {
    pay.disabled = on;
    method.disabled = on;
  }

  function declined(text) {
    timer.stop();
    timer.el.hidden = true;
    form.hidden = true;
    challenge.hidden = true;
    processing.hidden = true;
    ctx.error.show(text || "Your card was declined.",
      " Your seats were released and are back on sale. While your turn lasts you can ",
      link(`${showPath}/seats`, "choose seats again"), ".");
  }

  function paid() {
    timer.stop();
    spendAdmission(showId);
    outcome.textContent = "Payment accepted. Your tickets are ready.";
    ctx.navigate(orderPath, { replace: true });
  }

  // The order and payment as they stand: where to go next.
  function follow(current) {
    if (current.status === "confirmed") return paid();
    if (current.status === "payment_failed") return declined("Your card was declined.");
    if (current.status === "cancelled") {
      timer.stop();
      form.hidden = true;
      ctx.error.show("This order was cancelled because its time to pay ran out.", " ", link(`${showPath}/seats`, "Choose seats again"));
      return undefined;
    }
    const payment = current.payment && current.payment.status;
    if (payment === "processing") return waitForSettlement();
    if (payment === "requires_action") return askForApproval("pm_card_3ds");
    busy(false);
    return undefined;
  }

  async function confirm(chosen) {
    ctx.error.clear();
    outcome.textContent = "Paying…";
    busy(true);
    try {
      const answer = await write(`confirm:${paymentId}:${chosen}`, `/v1/payments/${encodeURIComponent(paymentId)}/confirm`, {
        method: "POST",
        body: { payment_method: chosen },
        token: token(),
        signal: ctx.signal,
      });
      if (!ctx.live) return;
      outcome.textContent = "";
      if (answer.order.status === "confirmed") return paid();
      if (answer.status === "failed" || answer.order.status === "payment_failed") return declined("Your card was declined.");
      if (answer.status === "requires_action" || answer.next_action) return askForApproval(chosen);
      if (answer.status === "processing") return waitForSettlement();
      follow(answer.order);
    } catch (error) {
      if (!ctx.live || error.name === "AbortError") return;
      outcome.textContent = "";
      busy(false);
      await confirmFailed(error);
    }
    return undefined;
  }

  async function confirmFailed(error) {
    switch (error.code) {
      case "admission_spent":
      case "payment_not_confirmable": {
        // Paid, or already being processed (another tab, an earlier click): read the order.
        try {
          const current = await api(orderPath.replace("/orders/", "/v1/orders/"), { signal: ctx.signal });
          if (ctx.live) follow(current);
          if (current.status === "pending_payment" && error.code === "payment_not_confirmable") ctx.error.show(error.message);
        } catch (inner) {
          ctx.fail(inner);
        }
        return;
      }
      case "order_expired":
        declined(error.message);
        return;
      case "admission_required":
      case "wrong_show":
        ctx.error.show(`${error.message} Your time to buy has ended.`, " ", link(`${showPath}/queue`, "Go to the queue"));
        return;
      default:
    }
    if (error.status === 0 || error.status >= 500) {
      ctx.error.show(`${error.message} You have not been charged twice: press Pay again to retry.`);
      return;
    }
    ctx.fail(error);
  }

  function askForApproval(chosen) {
    form.hidden = true;
    const approve = h("button", { type: "button", class: "button button--primary", testid: "three-ds-approve" }, "Approve payment");
    const other = h("button", { type: "button", class: "button button--quiet" }, "Use another card");
    replace(challenge,
      h("h2", { id: "tds-h" }, "Confirm it's you"),
      h("p", {}, "Your bank asks you to approve this payment (3-D Secure). In this test checkout, approving stands in for the check your bank's app or a text message would do."),
      h("div", { class: "actions" }, approve, other));
    challenge.hidden = false;
    approve.focus();
    approve.addEventListener("click", async () => {
      approve.disabled = true;
      other.disabled = true;
      await confirm(chosen);
      if (ctx.live && !challenge.hidden) {
        approve.disabled = false;
        other.disabled = false;
      }
    });
    other.addEventListener("click", () => {
      challenge.hidden = true;
      form.hidden = false;
      busy(false);
      method.focus();
    });
  }

  async function waitForSettlement() {
    form.hidden = true;
    challenge.hidden = true;
    replace(processing,
      h("h2", { id: "processing-h" }, "Processing your payment"),
      h("p", {}, "Your bank is taking a little while. Keep this page open: it updates by itself, and your seats stay held meanwhile."));
    processing.hidden = false;
    outcome.textContent = "Processing your payment…";
    const started = Date.now();
    while (ctx.live && Date.now() - started < POLL_LIMIT_MS) {
      await new Promise((resolve) => {
        const id = setTimeout(resolve, POLL_MS);
        ctx.onLeave(() => clearTimeout(id));
      });
      if (!ctx.live) return;
      try {
        const current = await api(`/v1/orders/${encodeURIComponent(order.order_id)}`, { signal: ctx.signal, cache: "no-store" });
        if (!ctx.live) return;
        if (current.status !== "pending_payment" || current.payment.status !== "processing") {
          processing.hidden = true;
          outcome.textContent = "";
          follow(current);
          return;
        }
      } catch (error) {
        if (!ctx.live || error.name === "AbortError") return;
        if (error.status === 401) {
          ctx.error.show(`${error.message} Your payment is still going through; sign in to see your order.`);
          return;
        }
      }
    }
    if (ctx.live) {
      outcome.textContent = "";
      replace(processing,
        h("h2", { id: "processing-h" }, "Still processing"),
        h("p", {}, "Your payment is taking longer than usual. We will finish it for you: ", link(orderPath, "follow your order"), "."));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    confirm(method.value);
  });

  follow(order);
}
