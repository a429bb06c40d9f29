// One event and its shows.

import { h, dateTime, words, link } from "../dom.js";
import { catalog } from "../api.js";

export async function render(ctx) {
  const [id] = ctx.params;
  ctx.title("Event");
  const path = `/v1/events/${encodeURIComponent(id)}`;
  let event;
  let shows;
  try {
    [event, shows] = await Promise.all([catalog(path), catalog(`${path}/shows`)]);
  } catch (error) {
    if (error.status === 404) ctx.title("Event not found");
    ctx.fail(error);
    ctx.main.append(h("p", {}, link("/events", "Back to all events")));
    return;
  }
  if (!ctx.live) return;
  const venue = event.venue || {};
  ctx.title(event.name);
  const list = h("ul", { class: "shows", "aria-label": "Shows" });
  for (const show of shows.items) {
    const bookable = show.status === "on_sale" || show.status === "scheduled" || show.status === "sold_out";
    list.append(
      h("li", { class: "show-row" },
        h("div", {},
          h("p", { class: "show-row__when" }, dateTime(show.starts_at, venue.timezone)),
          h("p", { class: "show-row__status" }, words(show.status),
            show.status === "scheduled" ? ` · on sale ${dateTime(show.on_sale_at, venue.timezone)}` : ""),
        ),
        bookable
          ? link(`/shows/${encodeURIComponent(show.id)}`, "Tickets", { class: "button", "aria-label": `Tickets for ${dateTime(show.starts_at, venue.timezone)}` })
          : null,
      ),
    );
  }
  ctx.main.append(
    h("p", { class: "lead" }, event.performer),
    h("p", {}, [venue.name, venue.city].filter(Boolean).join(", ")),
    event.description ? h("p", {}, event.description) : null,
    h("h2", {}, "Shows"),
    shows.items.length ? list : h("p", {}, "No shows are scheduled yet."),
    h("p", {}, link("/events", "Back to all events")),
  );
}
