// The event list with search: city, date and artist, filtered by the catalog API
// (`city`, `from`/`to`, `q`, paged by `cursor`).

import { h, field, shortDate, notice } from "../dom.js";
import { api } from "../api.js";

export async function render(ctx) {
  ctx.title("Find an event", "Events");
  const q = ctx.query;
  const city = h("input", { type: "text", name: "city", autocomplete: "address-level2", value: q.get("city") || "" });
  const date = h("input", { type: "date", name: "date", value: q.get("date") || "" });
  const artist = h("input", { type: "search", name: "q", value: q.get("q") || "" });
  const form = h(
    "form",
    { class: "search", role: "search", "aria-label": "Search events" },
    field("search-artist", "Artist or event", artist),
    field("search-city", "City", city),
    field("search-date", "Date", date),
    h("div", { class: "search__actions" },
      h("button", { type: "submit", class: "button" }, "Search"),
      h("button", { type: "reset", class: "button button--quiet" }, "Clear"),
    ),
  );
  const status = notice();
  const list = h("ul", { class: "cards", "aria-label": "Events" });
  const more = h("button", { type: "button", class: "button button--quiet", hidden: true }, "Show more events");
  ctx.main.append(form, status, list, more);

  let cursor = null;

  function params() {
    const p = new URLSearchParams();
    if (artist.value.trim()) p.set("q", artist.value.trim());
    if (city.value.trim()) p.set("city", city.value.trim());
    if (date.value) p.set("date", date.value);
    return p;
  }

  function apiQuery(page) {
    const p = new URLSearchParams();
    const ours = params();
    if (ours.get("q")) p.set("q", ours.get("q"));
    if (ours.get("city")) p.set("city", ours.get("city"));
    if (ours.get("date")) {
      // One calendar day (UTC), as the catalog reads plain dates.
      p.set("from", ours.get("date"));
      p.set("to", ours.get("date"));
    }
    if (page) p.set("cursor", page);
    const s = p.toString();
    return s ? `/v1/events?${s}` : "/v1/events";
  }

  async function search(page = null) {
    ctx.error.clear();
    status.textContent = "Searching…";
    more.disabled = true;
    try {
      const result = await api(apiQuery(page), { signal: ctx.signal });
      if (!page) list.replaceChildren();
      for (const event of result.items) list.append(card(event));
      cursor = result.next_cursor;
      more.hidden = !cursor;
      const shown = list.children.length;
      status.textContent =
        shown === 0
          ? "No events match your search."
          : `${shown} event${shown === 1 ? "" : "s"} found${cursor ? ", more available" : ""}.`;
    } catch (error) {
      status.textContent = "";
      ctx.fail(error);
    } finally {
      more.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const s = params().toString();
    history.replaceState(null, "", s ? `/events?${s}` : location.pathname);
    search();
  });
  form.addEventListener("reset", () => {
    setTimeout(() => {
      history.replaceState(null, "", location.pathname);
      search();
    });
  });
  more.addEventListener("click", () => search(cursor));
  await search();
}

function card(event) {
  const venue = event.venue || {};
  return h(
    "li",
    {},
    h(
      "a",
      { class: "card", href: `/events/${encodeURIComponent(event.id)}`, testid: "event-card" },
      h("h2", { class: "card__title" }, event.name),
      h("p", { class: "card__performer" }, event.performer),
      h("p", { class: "card__meta" },
        [venue.name, venue.city].filter(Boolean).join(", "),
        event.first_show_at ? ` · from ${shortDate(event.first_show_at, venue.timezone)}` : "",
      ),
    ),
  );
}
