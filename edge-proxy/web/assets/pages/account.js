// The signed-in account: who, its valid tickets, and signing out.

import { h, dateTime, link, notice } from "../dom.js";
import { api, currentAccount } from "../api.js";
import { ticketQr, listClock } from "../ticketqr.js";

export async function render(ctx) {
  ctx.title("Your account");
  let me;
  try {
    me = await currentAccount(true, true);
  } catch (error) {
    ctx.fail(error);
    return;
  }
  if (!ctx.live) return;
  if (!me) {
    ctx.navigate(`/signin?next=${encodeURIComponent("/account")}`, { replace: true });
    return;
  }
  const status = notice();
  const tickets = h("ul", { class: "tickets tickets--list", "aria-label": "Your tickets" });
  const more = h("button", { type: "button", class: "button button--quiet", hidden: true }, "Show more tickets");
  ctx.main.append(
    h("dl", { class: "facts" },
      h("div", {}, h("dt", {}, "Name"), h("dd", {}, me.display_name)),
      h("div", {}, h("dt", {}, "Email"), h("dd", {}, me.email))),
    h("p", {}, link("/orders", "See your orders")),
    h("h2", {}, "Your tickets"),
    status, tickets, more,
  );
  let cursor = null;
  async function page() {
    more.disabled = true;
    status.textContent = "Loading your tickets…";
    try {
      const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
      const sentAt = Date.now();
      const result = await api(`/v1/me/tickets${q}`, { signal: ctx.signal });
      const offset = listClock(result, sentAt);
      if (!ctx.live) return;
      for (const t of result.items) {
        const place = t.seat_id === null
          ? `${t.section_id}, standing, place ${t.ga_number}`
          : `section ${t.section_id}, row ${t.row}, seat ${t.number}`;
        tickets.append(h("li", { class: "ticket" },
          ticketQr(ctx, t, place, 160, offset),
          h("div", {},
            h("p", { class: "ticket__event" }, t.event_name),
            h("p", {}, dateTime(t.starts_at_ms)),
            h("p", { class: "ticket__seat" }, place.charAt(0).toUpperCase() + place.slice(1), t.scanned ? " · scanned" : ""),
            h("p", {}, link(`/orders/${encodeURIComponent(t.order_id)}`, "See the order")))));
      }
      cursor = result.next_cursor;
      more.hidden = !cursor;
      status.textContent = tickets.children.length ? "" : "You have no tickets yet.";
    } catch (error) {
      status.textContent = "";
      ctx.fail(error);
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", page);
  await page();
}
