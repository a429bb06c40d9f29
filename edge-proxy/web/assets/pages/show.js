// A show: price tiers, live availability per section (the availability snapshot, read
// again when the builder's next build is due), the seat map, the way into the queue, and
// once nothing is left on sale the show's waitlist.

import { h, dateTime, money, count, clockTime, words, link, time, replace } from "../dom.js";
import { api, catalog, currentAccount, serverNow } from "../api.js";
import { waitlistPanel } from "./waitlist.js";

export async function render(ctx) {
  const [showId] = ctx.params;
  ctx.title("Show");
  let show;
  let event;
  try {
    show = await catalog(`/v1/shows/${encodeURIComponent(showId)}`);
    event = await catalog(`/v1/events/${encodeURIComponent(show.event_id)}`);
  } catch (error) {
    if (error.status === 404) ctx.title("Show not found");
    ctx.fail(error);
    ctx.main.append(h("p", {}, link("/events", "Back to all events")));
    return;
  }
  if (!ctx.live) return;
  const venue = event.venue || {};
  const when = dateTime(show.starts_at, venue.timezone);
  ctx.title(event.name, `${event.name}, ${when}`);

  const closed = show.status === "cancelled" || show.status === "completed";
  const join = h("button", { type: "button", class: "button button--primary", testid: "join-queue", disabled: closed }, "Join the queue");
  const joinNote = h("p", { class: "hint", id: "join-note" },
    closed
      ? `This show is ${words(show.status).toLowerCase()}; tickets are not on sale.`
      : "You need to be signed in. The queue keeps your place fairly; you choose seats when it is your turn.");
  join.setAttribute("aria-describedby", "join-note");
  if (!closed) {
    currentAccount().then((account) => {
      if (account && ctx.live) joinNote.textContent = "The queue keeps your place fairly; you choose seats when it is your turn.";
    }, () => {});
  }
  join.addEventListener("click", async () => {
    const queue = `/shows/${encodeURIComponent(showId)}/queue`;
    join.disabled = true;
    try {
      const account = await currentAccount();
      ctx.navigate(account ? queue : `/signin?next=${encodeURIComponent(queue)}`);
    } catch (error) {
      join.disabled = false;
      ctx.fail(error);
    }
  });

  const tiers = h("table", { class: "table" },
    h("caption", {}, "Prices"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Tier"), h("th", { scope: "col", class: "num" }, "Price per seat"))),
    h("tbody", {}, (show.price_tiers || []).map((t) =>
      h("tr", {}, h("th", { scope: "row" }, t.name), h("td", { class: "num" }, money(t.price_cents, show.currency))))),
  );

  const summary = h("p", { class: "availability__summary" }, "Loading availability…");
  const updated = h("p", { class: "hint" });
  const sections = h("tbody");
  const table = h("table", { class: "table table--compact" },
    h("caption", {}, "Seats left per section"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Section"),
      h("th", { scope: "col", class: "num" }, "Available"),
      h("th", { scope: "col", class: "num" }, "Of"))),
    sections,
  );
  table.hidden = true;
  const waitlist = waitlistPanel(ctx, showId);

  ctx.main.append(
    h("p", { class: "lead" }, when),
    h("p", {}, [venue.name, venue.city].filter(Boolean).join(", "), " · ", words(show.status)),
    h("div", { class: "actions" }, join, link(`/shows/${encodeURIComponent(showId)}/seats`, "See the seat map", { class: "button button--quiet" })),
    joinNote,
    tiers,
    h("section", { class: "availability", "aria-labelledby": "availability-h" },
      h("h2", { id: "availability-h" }, "Availability"),
      summary, updated, table),
    waitlist.el,
    h("p", {}, link(`/events/${encodeURIComponent(show.event_id)}`, `All shows of ${event.name}`)),
  );

  async function refresh() {
    let next = 30000;
    try {
      const doc = await api(`/v1/shows/${encodeURIComponent(showId)}/availability`, { signal: ctx.signal, cache: "no-cache" });
      if (!ctx.live) return;
      ctx.error.clear();
      summary.textContent =
        doc.available > 0
          ? `${count(doc.available)} of ${count(doc.total)} seats available.`
          : doc.held > 0
            ? `No seats available right now; ${count(doc.held)} held by other fans may come back.`
            : "Sold out.";
      replace(updated, "Updated ", time(doc.built_at_ms, clockTime(doc.built_at_ms)), ". This refreshes by itself.");
      sections.replaceChildren(...doc.sections.map((s) =>
        h("tr", {},
          h("th", { scope: "row" }, sectionName(s.section_id)),
          h("td", { class: "num" }, count(s.available)),
          h("td", { class: "num" }, count(s.total)))));
      table.hidden = false;
      if (doc.available === 0 && !closed) waitlist.reveal();
      if (doc.next_build_at_ms) next = doc.next_build_at_ms - serverNow() + 500 + Math.random() * 2000;
    } catch (error) {
      if (!ctx.live) return;
      summary.textContent = "Availability could not be loaded; trying again shortly.";
      if (error.status !== 503) ctx.fail(error);
    }
    ctx.later(refresh, Math.min(60000, Math.max(5000, next)));
  }
  refresh();
}

function sectionName(id) {
  return /^\d+$/.test(id) ? `Section ${id}` : id;
}
