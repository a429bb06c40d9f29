// A ticket's QR code for the gate. A fixed code is the origin's image. A rotating one is
// drawn here, from the ticket's secret, at each step of the origin's clock: the screen is
// live, and a screenshot stops getting in within a minute. Once the page has loaded no
// network is needed, which is what a stadium's gate gives. The steps follow the clock of
// the ticket list that delivered the secret (its `server_time_ms`), the clock the gate
// checks codes against, whatever the device's own clock says.

import { h } from "./dom.js";
import { draw } from "./qr.js";
import { importSecret, codeAt } from "./totp.js";

/** How far the origin's clock is ahead of this device's, from a ticket list requested at
 * `sentAt` (`Date.now()`) and answered now. */
export function listClock(list, sentAt) {
  return list.server_time_ms - (sentAt + Date.now()) / 2;
}

/** The QR code of `ticket` (an item of `GET /v1/me/tickets`, or `{ ticket_id }`), for the
 * seat called `place`, `size` CSS pixels wide; `offset` is the list's [`listClock`]. */
export function ticketQr(ctx, ticket, place, size, offset) {
  const alt = `Ticket QR code, ${place}`;
  const image = () => h("img", {
    testid: "ticket-qr",
    src: `/v1/tickets/${encodeURIComponent(ticket.ticket_id)}/qr.svg`,
    alt,
    width: String(size),
    height: String(size),
    loading: "lazy",
  });
  const rotating = ticket.rotating;
  if (!rotating) return image();
  const canvas = h("canvas", {
    testid: "ticket-qr",
    role: "img",
    "aria-label": `${alt}. It changes every ${rotating.rotate_s} seconds, so a screenshot will not get in.`,
    width: String(size),
    height: String(size),
  });
  const box = h("div", { class: "ticket__live" }, canvas,
    h("p", { class: "hint" }, `Live code: it changes every ${rotating.rotate_s} seconds. Show this screen at the gate; a screenshot will not work.`));
  const period = rotating.rotate_s * 1000;
  const originNow = () => Date.now() + offset;
  const key = importSecret(rotating.secret);
  let drawn = null;
  let timer = null;
  async function show() {
    // A re-rendered page drops its old codes: their turns stop here.
    if (!ctx.live || (drawn !== null && !canvas.isConnected)) return;
    const step = Math.floor(originNow() / period);
    if (step !== drawn) {
      const code = await codeAt(await key, step);
      if (!ctx.live) return;
      draw(canvas, `${rotating.payload}.${step}.${code}`);
      canvas.dataset.step = String(step);
      drawn = step;
    }
    clearTimeout(timer);
    timer = ctx.later(() => { turn(); }, (step + 1) * period - originNow() + 20);
  }
  // Without Web Crypto (not a secure context) the origin's image still shows this step.
  const turn = () => show().catch(() => box.replaceWith(image()));
  // A phone woken at the gate redraws at once rather than when a throttled timer fires.
  const woken = () => {
    if (document.visibilityState === "visible") turn();
  };
  document.addEventListener("visibilitychange", woken);
  ctx.onLeave(() => document.removeEventListener("visibilitychange", woken));
  turn();
  return box;
}
