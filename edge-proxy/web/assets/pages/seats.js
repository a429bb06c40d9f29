// Seat selection: the seat map (layout snapshot coloured by the availability snapshot), a
// best-available picker, and a seat list per section that works by keyboard and screen
// reader. Both hold with the show's admission token.

import { h, replace, field, money, count, countdown, notice, link } from "../dom.js";
import {
  api,
  catalog,
  serverNow,
  admission,
  admissionToken,
  spendAdmission,
  write,
  ApiError,
} from "../api.js";
import { loadLayout, dropLayout, seatLabel, indexOf, rememberSeats } from "../layout.js";

/** Seats one hold may take (the origin's `max_seats_per_hold`; it says so if it differs). */
const MAX_SEATS = 8;

export async function render(ctx) {
  const [showId] = ctx.params;
  const showPath = `/shows/${encodeURIComponent(showId)}`;
  ctx.title("Choose your seats");
  const seatmapModule = import("../seatmap.js");

  const about = h("p", { class: "lead" });
  const window_ = h("p", { class: "hint", testid: "admission-window" });
  const loading = notice();
  loading.textContent = "Loading the seat map…";
  ctx.main.append(about, window_, loading);

  // Admission: how long the fan has to choose and pay.
  function admissionNote() {
    const a = admission(showId);
    if (!a) {
      replace(window_, "You can look at the map; to hold seats, ", link(`${showPath}/queue`, "join the queue"), " first.");
      return false;
    }
    const left = a.expires_at_ms - serverNow("edge");
    window_.textContent = `Your turn to buy: ${countdown(left)} left to hold and pay for seats.`;
    return true;
  }
  admissionNote();
  const tick = setInterval(() => ctx.live && admissionNote(), 1000);
  ctx.onLeave(() => clearInterval(tick));

  let show;
  let layout;
  let avail;
  try {
    const showRead = catalog(`/v1/shows/${encodeURIComponent(showId)}`);
    [show, layout, avail] = await Promise.all([
      showRead,
      loadLayout(showId, ctx.signal),
      api(`/v1/shows/${encodeURIComponent(showId)}/availability`, { signal: ctx.signal, cache: "no-cache" }),
    ]);
    if (avail.layout_version !== layout.version) {
      dropLayout(showId);
      layout = await loadLayout(showId, ctx.signal);
    }
  } catch (error) {
    loading.textContent = "";
    ctx.fail(error);
    return;
  }
  if (!ctx.live) return;
  catalog(`/v1/events/${encodeURIComponent(show.event_id)}`)
    .then((event) => {
      if (ctx.live) {
        ctx.title("Choose your seats", `Seats: ${event.name}`);
        about.textContent = `${event.name} · ${show.seat_count ? `${count(show.seat_count)} seats` : ""}`;
      }
    })
    .catch(() => {});

  const prices = new Map((show.price_tiers || []).map((t) => [t.tier, t]));
  const sectionIndex = new Map(layout.sections.map((s, i) => [s.id, i]));
  let status = avail.seat_status || "";
  let counts = new Map(avail.sections.map((s) => [s.section_id, s]));
  let selected = -1;
  const chosen = new Set();

  // The map.
  const canvas = h("canvas", {
    class: "seatmap__canvas",
    testid: "seat-map",
    tabindex: "0",
    role: "application",
    "aria-roledescription": "seat map",
    "aria-label": "Seat map",
    "aria-describedby": "seatmap-help",
  }, "A map of the venue's seats. Use the section list to choose seats.");
  const button = (label, text, onClick) => {
    const b = h("button", { type: "button", class: "button button--icon", "aria-label": label, title: label }, text);
    b.addEventListener("click", onClick);
    return b;
  };
  const legend = h("ul", { class: "legend", "aria-label": "Key" });
  const { COLOURS, createSeatMap } = await seatmapModule;
  if (!ctx.live) return;
  for (const c of COLOURS) {
    const swatch = h("span", { class: "legend__swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = c.colour;
    legend.append(h("li", {}, swatch, c.label));
  }
  legend.append(h("li", {}, h("span", { class: "legend__swatch legend__swatch--outline", "aria-hidden": "true" }), "Selected section (outlined)"));

  const toolbar = h("div", { class: "seatmap__tools", role: "group", "aria-label": "Map controls" });
  const help = h("p", { class: "hint", id: "seatmap-help" },
    "Drag or use the arrow keys to move, the wheel or + and − to zoom. Click a section to choose it; zoomed in, click a seat to select it. The seat list below does the same by keyboard.");
  const mapBox = h("section", { class: "seatmap", "aria-labelledby": "map-h" },
    h("h2", { id: "map-h" }, "Seat map"), toolbar, canvas, help, legend);

  // Best available.
  const sectionSelect = h("select", { testid: "section-select", name: "section_id" });
  const quantitySelect = h("select", { testid: "quantity-select", name: "quantity" });
  for (let q = 1; q <= MAX_SEATS; q++) quantitySelect.append(h("option", { value: String(q) }, String(q)));
  const holdBest = h("button", { type: "submit", class: "button button--primary", testid: "hold-submit" }, "Hold the best seats");
  const bestStatus = notice();
  const bestForm = h("form", { class: "form form--inline", "aria-labelledby": "best-h", novalidate: true },
    h("h2", { id: "best-h" }, "Best available"),
    h("p", { class: "hint" }, "We pick the best seats together in one row where we can."),
    h("div", { class: "form__row" },
      field("section-select", "Section", sectionSelect),
      field("quantity-select", "Number of seats", quantitySelect)),
    holdBest, bestStatus);

  // The seat list: the keyboard and screen-reader way to pick seats.
  const listHeading = h("h2", { id: "list-h" }, "Choose seats yourself");
  const rowFilter = h("select", { name: "row" });
  const rowField = field("row-filter", "Show row", rowFilter);
  rowField.hidden = true;
  const seatList = h("div", { class: "seat-list" },
    h("p", { class: "hint" }, "Choose a section on the map or in the best-available list to see its free seats here."));
  const picked = h("p", { class: "picked", "aria-live": "polite" }, "No seats selected.");
  const holdPicked = h("button", { type: "submit", class: "button", testid: "hold-selected-submit", disabled: true }, "Hold selected seats");
  const pickedStatus = notice();
  const listForm = h("form", { class: "form", "aria-labelledby": "list-h", novalidate: true },
    listHeading, rowField, seatList, picked, holdPicked, pickedStatus);

  loading.textContent = "";
  ctx.main.append(mapBox, bestForm, listForm, h("p", {}, link(showPath, "Back to the show")));

  const map = createSeatMap(canvas, layout, { status, onPick: picked_ });
  ctx.onLeave(() => map.destroy());
  toolbar.append(
    button("Zoom in", "+", () => map.zoom(1.5)),
    button("Zoom out", "−", () => map.zoom(1 / 1.5)),
    button("Show the whole venue", "⤢", () => map.reset()),
    button("Move left", "←", () => map.pan(80, 0)),
    button("Move right", "→", () => map.pan(-80, 0)),
    button("Move up", "↑", () => map.pan(0, 80)),
    button("Move down", "↓", () => map.pan(0, -80)),
  );

  function sectionOptions() {
    const keep = sectionSelect.value;
    sectionSelect.replaceChildren(h("option", { value: "" }, "Choose a section"));
    for (const s of layout.sections) {
      const c = counts.get(s.id);
      const tier = prices.get(s.tier);
      const parts = [s.name];
      if (tier) parts.push(money(tier.price_cents, show.currency));
      parts.push(c ? (c.available ? `${count(c.available)} left` : "sold out") : "");
      sectionSelect.append(h("option", { value: s.id }, parts.filter(Boolean).join(" · ")));
    }
    for (const p of layout.places) {
      const c = counts.get(p.id);
      const tier = prices.get(p.tier);
      const parts = [`${p.name}: standing, general admission`];
      if (tier) parts.push(money(tier.price_cents, show.currency));
      parts.push(c ? (c.available ? `${count(c.available)} places left` : "sold out") : "");
      sectionSelect.append(h("option", { value: p.id }, parts.filter(Boolean).join(" · ")));
    }
    sectionSelect.value = keep;
  }
  sectionOptions();

  function pickedSummary() {
    const labels = [...chosen].map((i) => seatLabel(layout, i));
    picked.textContent = labels.length
      ? `${labels.length} seat${labels.length === 1 ? "" : "s"} selected: ${labels.join("; ")}.`
      : "No seats selected.";
    holdPicked.disabled = labels.length === 0;
    holdPicked.textContent = labels.length ? `Hold ${labels.length} selected seat${labels.length === 1 ? "" : "s"}` : "Hold selected seats";
    const full = chosen.size >= MAX_SEATS;
    for (const box of seatList.querySelectorAll("input[type=checkbox]")) {
      if (!box.checked) box.disabled = full;
    }
    map.setChosen(new Set(chosen));
  }

  function seatRows() {
    const s = layout.sections[selected];
    const only = rowFilter.value;
    const groups = [];
    s.rows.forEach((r, ri) => {
      if (only !== "" && String(ri) !== only) return;
      const boxes = [];
      for (let i = r.start; i < r.end; i++) {
        if (status.charCodeAt(i) !== 65) continue;
        const id = `seat-${i}`;
        const box = h("input", { type: "checkbox", id, value: String(layout.ids[i]), checked: chosen.has(i) });
        box.dataset.index = String(i);
        boxes.push(h("div", { class: "check" }, box, h("label", { for: id }, seatLabel(layout, i))));
      }
      if (boxes.length) groups.push(h("fieldset", { class: "seat-row" }, h("legend", {}, `Row ${r.label}`), boxes));
    });
    return groups;
  }

  function showSeatList() {
    if (selected < 0) return;
    const s = layout.sections[selected];
    const c = counts.get(s.id);
    listHeading.textContent = `Choose seats yourself: ${s.name}`;
    const keepRow = rowFilter.value;
    rowFilter.replaceChildren(h("option", { value: "" }, "All rows"),
      s.rows.map((r, ri) => h("option", { value: String(ri) }, `Row ${r.label}`)));
    rowFilter.value = [...rowFilter.options].some((o) => o.value === keepRow) ? keepRow : "";
    rowField.hidden = s.rows.length < 2;
    const rows = seatRows();
    replace(seatList,
      h("p", { class: "hint" }, c ? `${count(c.available)} of ${count(c.total)} seats free in ${s.name}. Select up to ${MAX_SEATS}.` : ""),
      rows.length ? rows : h("p", {}, `No free seats in ${s.name}${rowFilter.value ? " in this row" : ""} right now.`));
    pickedSummary();
  }

  function selectSection(index, focusMap) {
    if (index === selected) {
      if (focusMap) map.selectSection(index, true);
      return;
    }
    selected = index;
    rowFilter.value = "";
    sectionSelect.value = index >= 0 ? layout.sections[index].id : "";
    map.selectSection(index, focusMap);
    showSeatList();
  }

  function picked_(i) {
    if (i < 0) return;
    const detailed = map.detailed();
    const si = layout.section[i];
    if (si !== selected) selectSection(si, !detailed);
    if (!detailed || status.charCodeAt(i) !== 65) return;
    if (chosen.has(i)) chosen.delete(i);
    else if (chosen.size < MAX_SEATS) chosen.add(i);
    const box = seatList.querySelector(`#seat-${i}`);
    if (box) box.checked = chosen.has(i);
    pickedSummary();
  }

  sectionSelect.addEventListener("change", () => {
    const standing = layout.places.some((p) => p.id === sectionSelect.value);
    holdBest.textContent = standing ? "Hold standing places" : "Hold the best seats";
    const index = sectionIndex.has(sectionSelect.value) ? sectionIndex.get(sectionSelect.value) : -1;
    selectSection(index, index >= 0);
  });
  rowFilter.addEventListener("change", showSeatList);
  seatList.addEventListener("change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== "checkbox") return;
    const i = Number(box.dataset.index);
    if (box.checked && chosen.size < MAX_SEATS) chosen.add(i);
    else {
      box.checked = false;
      chosen.delete(i);
    }
    pickedSummary();
  });

  // Availability, read again when the builder's next build is due.
  let refreshTimer = null;
  ctx.onLeave(() => clearTimeout(refreshTimer));
  async function refresh() {
    clearTimeout(refreshTimer);
    let next = 30000;
    try {
      const doc = await api(`/v1/shows/${encodeURIComponent(showId)}/availability`, { signal: ctx.signal, cache: "no-cache" });
      if (!ctx.live) return;
      if (doc.layout_version === layout.version) applyAvailability(doc);
      if (doc.next_build_at_ms) next = doc.next_build_at_ms - serverNow() + 500 + Math.random() * 2000;
    } catch (error) {
      if (!ctx.live || error.name === "AbortError") return;
    }
    refreshTimer = setTimeout(refresh, Math.min(60000, Math.max(5000, next)));
  }

  function applyAvailability(doc) {
    status = doc.seat_status || "";
    counts = new Map(doc.sections.map((s) => [s.section_id, s]));
    const lost = [...chosen].filter((i) => status.charCodeAt(i) !== 65);
    lost.forEach((i) => chosen.delete(i));
    if (lost.length) pickedStatus.textContent = `No longer free: ${lost.map((i) => seatLabel(layout, i)).join("; ")}.`;
    map.setStatus(status);
    sectionOptions();
    if (selected >= 0) {
      const focused = document.activeElement;
      const keepId = focused && seatList.contains(focused) ? focused.id : null;
      showSeatList();
      if (keepId) {
        const again = document.getElementById(keepId);
        if (again) again.focus();
      }
    } else pickedSummary();
  }
  refreshTimer = setTimeout(refresh, Math.min(60000, Math.max(5000, (avail.next_build_at_ms || 0) - serverNow() + 1000)));

  // Holding.
  async function hold(body, statusEl, submit) {
    ctx.error.clear();
    statusEl.textContent = "Holding your seats…";
    submit.disabled = true;
    try {
      const held = await write(`hold:${showId}:${JSON.stringify(body)}`, `/v1/shows/${encodeURIComponent(showId)}/holds`, {
        method: "POST",
        body,
        token: admissionToken(showId),
        signal: ctx.signal,
      });
      rememberSeats(held.hold_id, layout, held.seat_ids);
      statusEl.textContent = "Seats held.";
      ctx.navigate(`${showPath}/holds/${encodeURIComponent(held.hold_id)}`);
    } catch (error) {
      submit.disabled = false;
      statusEl.textContent = "";
      if (!ctx.live || error.name === "AbortError") return;
      holdFailed(error);
    }
  }

  function holdFailed(error) {
    const queue = link(`${showPath}/queue`, "Go to the queue");
    switch (error.code) {
      case "admission_spent":
        spendAdmission(showId);
        ctx.error.show(error.message, " ", queue);
        return;
      case "admission_required":
      case "wrong_show":
        ctx.error.show(`${error.message} You need your turn in the queue to hold seats.`, " ", queue);
        return;
      case "seats_unavailable": {
        const ids = (error.problem.unavailable_seat_ids || []).map((id) => indexOf(layout, id)).filter((i) => i >= 0);
        ids.forEach((i) => chosen.delete(i));
        const names = ids.map((i) => seatLabel(layout, i));
        ctx.error.show(names.length ? `${error.message} Taken: ${names.join("; ")}.` : error.message);
        refresh();
        pickedSummary();
        return;
      }
      case "not_enough_seats":
        ctx.error.show(error.message);
        refresh();
        return;
      default:
    }
    if (error instanceof ApiError && error.status === 429 && error.retryAfterS) {
      ctx.error.show(`${error.message} Try again in ${Math.ceil(error.retryAfterS)} seconds.`);
      return;
    }
    if (error.status === 0) {
      ctx.error.show(`${error.message} Your choice is kept: press the button again.`);
      return;
    }
    ctx.fail(error);
  }

  bestForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!sectionSelect.value) {
      ctx.error.show("Choose a section first.");
      sectionSelect.focus();
      return;
    }
    hold({ section_id: sectionSelect.value, quantity: Number(quantitySelect.value) }, bestStatus, holdBest);
  });
  listForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!chosen.size) {
      ctx.error.show("Select at least one seat.");
      return;
    }
    const seatIds = [...chosen].map((i) => layout.ids[i]).sort((a, b) => a - b);
    hold({ seat_ids: seatIds }, pickedStatus, holdPicked);
  });

  await map.firstPaint;
}
