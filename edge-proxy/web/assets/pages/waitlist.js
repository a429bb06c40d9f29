// A sold-out show's waitlist, on the show page: join it for a number of seats, see your
// place, and buy the seats it offers you when some come back (the offer is your turn: the
// edge admits you to buy them without queueing again).

import { h, replace, link, clockTime, count } from "../dom.js";
import { api, saveAdmission, currentAccount } from "../api.js";
import { seatLabels } from "../layout.js";

const POLL_MS = 5000;
const MAX_SEATS = 8;

/** The waitlist panel of `showId`, hidden until `reveal()` (once the show has no seat on
 * sale; it stays, so an offer is not lost when seats go back on sale); `{el, reveal()}`. */
export function waitlistPanel(ctx, showId) {
  const path = `/v1/shows/${encodeURIComponent(showId)}/waitlist`;
  const body = h("div", { "aria-live": "polite" });
  const el = h("section", { class: "waitlist", "aria-labelledby": "waitlist-h", testid: "waitlist", hidden: true },
    h("h2", { id: "waitlist-h" }, "Waitlist"),
    body);
  let visible = false;
  let polling = false;

  function joinForm(lead) {
    const quantity = h("select", { id: "waitlist-quantity", testid: "waitlist-quantity" },
      Array.from({ length: MAX_SEATS }, (_, i) => h("option", { value: String(i + 1) }, String(i + 1))));
    const join = h("button", { type: "button", class: "button button--primary", testid: "join-waitlist" }, "Join the waitlist");
    join.addEventListener("click", async () => {
      join.disabled = true;
      try {
        const account = await currentAccount();
        if (!account) {
          ctx.navigate(`/signin?next=${encodeURIComponent(location.pathname)}`);
          return;
        }
        const entry = await api(path, { method: "POST", body: { quantity: Number(quantity.value) } });
        if (ctx.live) render(entry);
      } catch (error) {
        join.disabled = false;
        ctx.fail(error);
      }
    });
    return [
      h("p", {}, lead),
      h("div", { class: "field" }, h("label", { for: "waitlist-quantity" }, "Seats"), quantity),
      h("div", { class: "actions" }, join),
    ];
  }

  async function render(entry) {
    const again = "Seats that come back go to the waitlist first, in the order fans joined.";
    switch (entry && entry.status) {
      case "waiting": {
        const leave = h("button", { type: "button", class: "button button--quiet", testid: "leave-waitlist" }, "Leave the waitlist");
        leave.addEventListener("click", async () => {
          leave.disabled = true;
          try {
            await api(path, { method: "DELETE" });
            if (ctx.live) render(null);
          } catch (error) {
            leave.disabled = false;
            ctx.fail(error);
          }
        });
        replace(body,
          h("p", { testid: "waitlist-position" },
            `You are number ${count(entry.position)} on the waitlist for ${entry.quantity} seat${entry.quantity === 1 ? "" : "s"}.`),
          h("p", { class: "hint" }, "When seats come back we hold them for you and tell you; this page shows them too."),
          h("div", { class: "actions" }, leave));
        poll();
        break;
      }
      case "offered": {
        const offer = entry.offer;
        const labels = await seatLabels(showId, offer.hold_id, offer.seat_ids, ctx.signal);
        if (!ctx.live) return;
        const buy = h("button", { type: "button", class: "button button--primary", testid: "buy-offer" }, "Buy these seats");
        buy.addEventListener("click", async () => {
          buy.disabled = true;
          try {
            const admitted = await api("/v1/waiting-room/offers", { method: "POST", body: { show_id: showId } });
            saveAdmission(showId, admitted.admission_token, admitted.admission_expires_at_ms);
            ctx.navigate(`/shows/${encodeURIComponent(showId)}/holds/${encodeURIComponent(admitted.hold_id)}`);
          } catch (error) {
            buy.disabled = false;
            ctx.fail(error);
          }
        });
        replace(body,
          h("p", { class: "banner", role: "status", testid: "waitlist-offer" },
            `Seats came back for you: ${labels.join(", ")}. They are held for you until ${clockTime(offer.expires_at_ms)}.`),
          h("div", { class: "actions" }, buy));
        break;
      }
      case "bought":
        replace(body, h("p", {}, "You bought seats from the waitlist. ", link("/orders", "See your orders")));
        break;
      case "lapsed":
        replace(body, ...joinForm(`The seats held for you were not bought in time and passed on. ${again}`));
        break;
      default:
        replace(body, ...joinForm(`Every seat is sold or held. ${again}`));
    }
  }

  async function load() {
    try {
      const entry = await api(path, { signal: ctx.signal, cache: "no-cache" });
      if (ctx.live) await render(entry);
    } catch (error) {
      if (!ctx.live) return;
      if (error.status === 404 || error.status === 401) render(null);
      else ctx.fail(error);
    }
  }

  function poll() {
    if (polling) return;
    polling = true;
    ctx.later(() => {
      polling = false;
      if (visible) load();
    }, POLL_MS);
  }

  return {
    el,
    reveal() {
      if (visible) return;
      visible = true;
      el.hidden = false;
      load();
    },
  };
}
