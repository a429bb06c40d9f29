// The account's order history, newest first, a page at a time.

import { h, money, words, shortDate, dateTime, notice } from "../dom.js";
import { api, catalog } from "../api.js";

export async function render(ctx) {
  ctx.title("My orders");
  const status = notice();
  const list = h("ul", { class: "order-list", testid: "orders-list", "aria-label": "Your orders" });
  const empty = h("p", { hidden: true }, "You have no orders yet. ", h("a", { href: "/events" }, "Find an event"), ".");
  const more = h("button", { type: "button", class: "button button--quiet", hidden: true }, "Show older orders");
  ctx.main.append(status, list, empty, more);
  let cursor = null;

  async function page() {
    more.disabled = true;
    status.textContent = "Loading your orders…";
    try {
      const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
      const result = await api(`/v1/orders${q}`, { signal: ctx.signal });
      if (!ctx.live) return;
      for (const order of result.items) list.append(row(order));
      cursor = result.next_cursor;
      more.hidden = !cursor;
      empty.hidden = list.children.length > 0;
      status.textContent = list.children.length
        ? `${list.children.length} order${list.children.length === 1 ? "" : "s"} shown.`
        : "";
    } catch (error) {
      if (!ctx.live) return;
      status.textContent = "";
      if (error.code === "sign_in_required") {
        ctx.navigate(`/signin?next=${encodeURIComponent("/orders")}`, { replace: true });
        return;
      }
      ctx.fail(error);
    } finally {
      more.disabled = false;
    }
  }

  function row(order) {
    const title = h("span", { class: "order-list__title" }, "Order");
    const whenShow = h("span", { class: "order-list__show" });
    catalog(`/v1/shows/${encodeURIComponent(order.show_id)}`)
      .then(async (show) => {
        const event = await catalog(`/v1/events/${encodeURIComponent(show.event_id)}`);
        title.textContent = event.name;
        whenShow.textContent = ` · ${dateTime(show.starts_at, (event.venue || {}).timezone)}`;
      })
      .catch(() => {});
    return h("li", {},
      h("a", { class: "order-list__link", href: `/orders/${encodeURIComponent(order.order_id)}`, "data-status": order.status },
        title, whenShow,
        h("span", { class: "order-list__meta" },
          `${words(order.status)} · ${money(order.total_cents, order.currency)} · ${order.tickets} ticket${order.tickets === 1 ? "" : "s"} · ordered ${shortDate(order.created_at_ms)}`)));
  }

  more.addEventListener("click", page);
  await page();
}
