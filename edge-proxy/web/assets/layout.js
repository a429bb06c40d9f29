// A show's seat layout snapshot, flattened into typed arrays in layout order (the order of
// the availability snapshot's `seat_status`), kept for the tab's life; and the labels of
// held seats, kept per hold so later pages need not load the layout again.

import { api, load, save } from "./api.js";

export const ACCESSIBLE = 1;
export const OBSTRUCTED = 2;

const layouts = new Map();

/** The show's layout: `{version, n, ids, x, y, flags, section, row, number, sections}`. */
export function loadLayout(showId, signal) {
  let entry = layouts.get(showId);
  if (!entry) {
    entry = api(`/v1/shows/${encodeURIComponent(showId)}/seat-map`).then(flatten);
    layouts.set(showId, entry);
    entry.catch(() => layouts.delete(showId));
  }
  if (!signal) return entry;
  return new Promise((resolve, reject) => {
    const abort = () => reject(new DOMException("The page was left.", "AbortError"));
    if (signal.aborted) return abort();
    signal.addEventListener("abort", abort, { once: true });
    entry.then(resolve, reject);
  });
}

/** Forgets a cached layout (a new layout version was published). */
export function dropLayout(showId) {
  layouts.delete(showId);
}

function flatten(doc) {
  let n = 0;
  for (const s of doc.sections) for (const r of s.rows) n += r.seats.length;
  const ids = new Float64Array(n);
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  const flags = new Uint8Array(n);
  const section = new Uint16Array(n);
  const row = new Uint16Array(n);
  const number = new Int32Array(n);
  const sections = [];
  let i = 0;
  doc.sections.forEach((s, si) => {
    const rows = [];
    const start = i;
    s.rows.forEach((r, ri) => {
      const rowStart = i;
      for (const seat of r.seats) {
        ids[i] = seat.id;
        x[i] = seat.x;
        y[i] = seat.y;
        number[i] = seat.number;
        section[i] = si;
        row[i] = ri;
        let f = 0;
        for (const flag of seat.flags || []) {
          if (flag === "accessible") f |= ACCESSIBLE;
          else if (flag === "obstructed") f |= OBSTRUCTED;
        }
        flags[i] = f;
        i += 1;
      }
      rows.push({ label: r.row, start: rowStart, end: i });
    });
    sections.push({ id: s.section_id, name: s.name, tier: s.price_tier, start, end: i, rows });
  });
  // General-admission sections: places sold by count, not drawn.
  const places = (doc.general_admission || []).map((p) => ({ id: p.section_id, name: p.name, tier: p.price_tier, capacity: p.capacity }));
  const layout = { version: doc.layout_version, n, ids, x, y, flags, section, row, number, sections, places, byId: null };
  return layout;
}

/** The index of seat `id` in the layout, or -1. */
export function indexOf(layout, id) {
  if (!layout.byId) {
    layout.byId = new Map();
    for (let i = 0; i < layout.n; i++) layout.byId.set(layout.ids[i], i);
  }
  const i = layout.byId.get(id);
  return i === undefined ? -1 : i;
}

/** "Section 101, row C, seat 12, accessible". */
export function seatLabel(layout, i) {
  const s = layout.sections[layout.section[i]];
  const parts = [s.name, `row ${s.rows[layout.row[i]].label}`, `seat ${layout.number[i]}`];
  if (layout.flags[i] & ACCESSIBLE) parts.push("accessible");
  if (layout.flags[i] & OBSTRUCTED) parts.push("restricted view");
  return parts.join(", ");
}

/** "2 standing places, Floor (standing)": a hold's or order's `general_admission`, named
 * from the layout when it loads. */
export async function placesLabel(showId, places, signal) {
  let name = places.section_id;
  try {
    const layout = await loadLayout(showId, signal);
    const section = layout.places.find((p) => p.id === places.section_id);
    if (section) name = section.name;
  } catch (error) {
    if (error.name === "AbortError") throw error;
  }
  return `${places.quantity} standing place${places.quantity === 1 ? "" : "s"}, ${name}`;
}

/** Remembers the labels of a hold's seats (by seat id) for the hold and checkout pages. */
export function rememberSeats(holdId, layout, seatIds) {
  const labels = {};
  for (const id of seatIds) {
    const i = indexOf(layout, id);
    if (i >= 0) labels[id] = seatLabel(layout, i);
  }
  save(`seats.${holdId}`, labels);
}

/** Labels for `seatIds` of a hold: remembered ones, else from the layout, else by id. */
export async function seatLabels(showId, holdId, seatIds, signal) {
  const remembered = load(`seats.${holdId}`) || {};
  if (seatIds.every((id) => remembered[id])) return seatIds.map((id) => remembered[id]);
  try {
    const layout = await loadLayout(showId, signal);
    rememberSeats(holdId, layout, seatIds);
    return seatIds.map((id) => {
      const i = indexOf(layout, id);
      return i >= 0 ? seatLabel(layout, i) : `Seat ${id}`;
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return seatIds.map((id) => remembered[id] || `Seat ${id}`);
  }
}
