// The seat map on a canvas: every seat of the layout in one pass per frame, batched by
// colour, seats off screen skipped; pixels written directly when seats are tiny. Zoom with
// the wheel, buttons, pinch or keys; pan by dragging, buttons or arrow keys. No DOM per seat.

import { ACCESSIBLE, OBSTRUCTED } from "./layout.js";

/** Seat colours; the legend uses the same. Text-free marks, each ≥ 3:1 on white. */
export const COLOURS = [
  { key: "available", colour: "#15803d", label: "Available" },
  { key: "accessible", colour: "#1d4ed8", label: "Available, wheelchair accessible" },
  { key: "obstructed", colour: "#b45309", label: "Available, restricted view" },
  { key: "taken", colour: "#c7ccd4", label: "Sold or held by another fan" },
  { key: "chosen", colour: "#a21caf", label: "Your selection" },
];
const TAKEN = 3;
const CHOSEN = 4;
const BACKGROUND = "#ffffff";
const OUTLINE = "#111827";

function rgba32(hex) {
  const v = parseInt(hex.slice(1), 16);
  const r = (v >> 16) & 255;
  const g = (v >> 8) & 255;
  const b = v & 255;
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

const FILLS = COLOURS.map((c) => c.colour);
const FILLS32 = new Uint32Array(COLOURS.map((c) => rgba32(c.colour)));
const BACKGROUND32 = rgba32(BACKGROUND);

/** Typical distance between neighbouring seats of a row, in layout units. */
function seatSpacing(layout) {
  const gaps = [];
  for (const s of layout.sections) {
    for (const r of s.rows) {
      if (r.end - r.start < 2) continue;
      const i = r.start;
      gaps.push(Math.hypot(layout.x[i + 1] - layout.x[i], layout.y[i + 1] - layout.y[i]));
      if (gaps.length > 400) break;
    }
  }
  gaps.sort((a, b) => a - b);
  return gaps.length ? Math.max(0.05, gaps[gaps.length >> 1]) : 1;
}

export function createSeatMap(canvas, layout, { status: initialStatus = "", onPick } = {}) {
  const ctx = canvas.getContext("2d", { alpha: false });
  const { n, x, y } = layout;
  const cat = new Uint8Array(n);
  const spacing = seatSpacing(layout);
  let status = initialStatus;
  let chosen = new Set();
  let selected = -1;
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    if (x[i] < minX) minX = x[i];
    if (x[i] > maxX) maxX = x[i];
    if (y[i] < minY) minY = y[i];
    if (y[i] > maxY) maxY = y[i];
  }
  if (!n) minX = minY = maxX = maxY = 0;

  let width = 0;
  let height = 0;
  let dpr = 1;
  let k = 1;
  let tx = 0;
  let ty = 0;
  let fitK = 1;
  let frame = 0;
  let painted = false;
  let image = null;
  let grid = null;
  let resolveFirst;
  const firstPaint = new Promise((resolve) => {
    resolveFirst = resolve;
  });

  function classify() {
    const flags = layout.flags;
    for (let i = 0; i < n; i++) {
      if (chosen.has(i)) cat[i] = CHOSEN;
      else if (status.charCodeAt(i) !== 65) cat[i] = TAKEN; // anything but "A"
      else if (flags[i] & ACCESSIBLE) cat[i] = 1;
      else if (flags[i] & OBSTRUCTED) cat[i] = 2;
      else cat[i] = 0;
    }
  }

  function fitTo(x0, y0, x1, y1, maxZoom) {
    const pad = 0.06;
    const w = Math.max(x1 - x0, spacing * 4);
    const h = Math.max(y1 - y0, spacing * 4);
    let scale = Math.min(width / (w * (1 + pad * 2)), height / (h * (1 + pad * 2)));
    if (maxZoom) scale = Math.min(scale, maxZoom);
    k = scale;
    tx = width / 2 - ((x0 + x1) / 2) * k;
    ty = height / 2 - ((y0 + y1) / 2) * k;
  }

  function resize() {
    const rect = canvas.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width));
    const h = Math.max(1, Math.round(rect.height));
    const ratio = Math.min(3, window.devicePixelRatio || 1);
    if (w === width && h === height && ratio === dpr) return false;
    const centre = width ? [(width / 2 - tx) / k, (height / 2 - ty) / k] : null;
    width = w;
    height = h;
    dpr = ratio;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    image = null;
    const old = k;
    fitTo(minX, minY, maxX, maxY);
    fitK = k;
    if (centre && painted) {
      k = Math.max(old, fitK * 0.5);
      tx = width / 2 - centre[0] * k;
      ty = height / 2 - centre[1] * k;
    }
    return true;
  }

  function draw() {
    frame = 0;
    if (!width) resize();
    const size = Math.max(1.2, spacing * k * 0.8);
    const devSize = size * dpr;
    if (devSize <= 3) drawPixels(Math.max(2, Math.round(devSize)));
    else drawRects(size);
    outline();
    if (!painted) {
      painted = true;
      performance.mark("seatmap-first-paint");
      resolveFirst();
    }
  }

  // Tiny seats: write pixels, one colour per seat, straight into an image.
  function drawPixels(sz) {
    const W = canvas.width;
    const H = canvas.height;
    if (!image || image.width !== W || image.height !== H) image = ctx.createImageData(W, H);
    const buf = new Uint32Array(image.data.buffer);
    buf.fill(BACKGROUND32);
    const kk = k * dpr;
    const ox = tx * dpr - sz / 2;
    const oy = ty * dpr - sz / 2;
    const lastX = W - sz;
    const lastY = H - sz;
    for (let i = 0; i < n; i++) {
      const px = (x[i] * kk + ox) | 0;
      if (px < 0 || px > lastX) continue;
      const py = (y[i] * kk + oy) | 0;
      if (py < 0 || py > lastY) continue;
      const colour = FILLS32[cat[i]];
      for (let row = 0; row < sz; row++) {
        const o = (py + row) * W + px;
        for (let col = 0; col < sz; col++) buf[o + col] = colour;
      }
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.putImageData(image, 0, 0);
  }

  // Larger seats: one path per colour, filled once.
  function drawRects(size) {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, width, height);
    const paths = FILLS.map(() => new Path2D());
    const half = size / 2;
    const gap = size > 6 ? 1 : 0;
    const side = size - gap;
    for (let i = 0; i < n; i++) {
      const px = x[i] * k + tx;
      if (px < -size || px > width + size) continue;
      const py = y[i] * k + ty;
      if (py < -size || py > height + size) continue;
      paths[cat[i]].rect(px - half, py - half, side, side);
    }
    for (let c = 0; c < paths.length; c++) {
      ctx.fillStyle = FILLS[c];
      ctx.fill(paths[c]);
    }
  }

  // The selected section: its front row one way, its back row the other.
  function outline() {
    if (selected < 0) return;
    const s = layout.sections[selected];
    const first = s.rows[0];
    const last = s.rows[s.rows.length - 1];
    if (!first) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const pad = Math.max(3, spacing * k * 0.6);
    const box = sectionBox(s);
    const cx = ((box[0] + box[2]) / 2) * k + tx;
    const cy = ((box[1] + box[3]) / 2) * k + ty;
    const points = [];
    for (let i = first.start; i < first.end; i++) points.push(i);
    for (let i = last.end - 1; i >= last.start; i--) points.push(i);
    ctx.beginPath();
    points.forEach((i, j) => {
      let px = x[i] * k + tx;
      let py = y[i] * k + ty;
      const d = Math.hypot(px - cx, py - cy) || 1;
      px += ((px - cx) / d) * pad;
      py += ((py - cy) / d) * pad;
      if (j === 0) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
    });
    ctx.closePath();
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#ffffff";
    ctx.stroke();
    ctx.lineWidth = 2;
    ctx.strokeStyle = OUTLINE;
    ctx.stroke();
  }

  const boxes = new Map();
  function sectionBox(s) {
    let box = boxes.get(s);
    if (!box) {
      box = [Infinity, Infinity, -Infinity, -Infinity];
      for (let i = s.start; i < s.end; i++) {
        box[0] = Math.min(box[0], x[i]);
        box[1] = Math.min(box[1], y[i]);
        box[2] = Math.max(box[2], x[i]);
        box[3] = Math.max(box[3], y[i]);
      }
      boxes.set(s, box);
    }
    return box;
  }

  function redraw() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function clampZoom(next) {
    return Math.min(fitK * 60, Math.max(fitK * 0.5, next));
  }

  function zoomAt(sx, sy, factor) {
    const next = clampZoom(k * factor);
    const f = next / k;
    tx = sx - (sx - tx) * f;
    ty = sy - (sy - ty) * f;
    k = next;
    redraw();
  }

  function zoomBy(factor) {
    zoomAt(width / 2, height / 2, factor);
  }

  function panBy(dx, dy) {
    tx += dx;
    ty += dy;
    redraw();
  }

  function resetView() {
    fitTo(minX, minY, maxX, maxY);
    redraw();
  }

  // Nearest seat to a point on screen, within reach of a finger or pointer.
  function pick(sx, sy) {
    const cell = spacing * 3;
    if (!grid) {
      grid = new Map();
      for (let i = 0; i < n; i++) {
        const key = `${Math.floor(x[i] / cell)},${Math.floor(y[i] / cell)}`;
        const list = grid.get(key);
        if (list) list.push(i);
        else grid.set(key, [i]);
      }
    }
    const wx = (sx - tx) / k;
    const wy = (sy - ty) / k;
    const reach = Math.max(spacing * 1.2, 8 / k);
    const span = Math.ceil(reach / cell);
    const cx = Math.floor(wx / cell);
    const cy = Math.floor(wy / cell);
    let best = -1;
    let bestD = reach * reach;
    for (let gx = cx - span; gx <= cx + span; gx++) {
      for (let gy = cy - span; gy <= cy + span; gy++) {
        const list = grid.get(`${gx},${gy}`);
        if (!list) continue;
        for (const i of list) {
          const d = (x[i] - wx) ** 2 + (y[i] - wy) ** 2;
          if (d < bestD) {
            bestD = d;
            best = i;
          }
        }
      }
    }
    return best;
  }

  // Pointers: drag pans, a tap picks, two fingers pinch.
  const pointers = new Map();
  let drag = null;
  let pinch = null;

  function local(event) {
    const rect = canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  function onDown(event) {
    if (event.button !== 0 && event.pointerType === "mouse") return;
    canvas.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, local(event));
    if (pointers.size === 1) {
      const [px, py] = local(event);
      drag = { px, py, tx, ty, moved: false };
    } else if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = { d: Math.hypot(a[0] - b[0], a[1] - b[1]), k };
      drag = null;
    }
  }

  function onMove(event) {
    if (!pointers.has(event.pointerId)) return;
    pointers.set(event.pointerId, local(event));
    if (pinch && pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
      zoomAt((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (pinch.k * (d / pinch.d)) / k);
      return;
    }
    if (!drag) return;
    const [px, py] = local(event);
    const dx = px - drag.px;
    const dy = py - drag.py;
    if (!drag.moved && Math.hypot(dx, dy) < 5) return;
    drag.moved = true;
    tx = drag.tx + dx;
    ty = drag.ty + dy;
    canvas.classList.add("is-dragging");
    redraw();
  }

  function onUp(event) {
    if (!pointers.has(event.pointerId)) return;
    pointers.delete(event.pointerId);
    if (pointers.size < 2) pinch = null;
    if (drag && !drag.moved && event.type === "pointerup" && onPick) {
      const [px, py] = local(event);
      onPick(pick(px, py));
    }
    drag = null;
    canvas.classList.remove("is-dragging");
  }

  function onWheel(event) {
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
    const [px, py] = local(event);
    zoomAt(px, py, Math.exp(-event.deltaY * unit * 0.0015));
  }

  function onKey(event) {
    const step = 60;
    const keys = {
      ArrowLeft: () => panBy(step, 0),
      ArrowRight: () => panBy(-step, 0),
      ArrowUp: () => panBy(0, step),
      ArrowDown: () => panBy(0, -step),
      "+": () => zoomBy(1.4),
      "=": () => zoomBy(1.4),
      "-": () => zoomBy(1 / 1.4),
      "0": () => resetView(),
    };
    const action = keys[event.key];
    if (action && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      action();
    }
  }

  canvas.addEventListener("pointerdown", onDown);
  canvas.addEventListener("pointermove", onMove);
  canvas.addEventListener("pointerup", onUp);
  canvas.addEventListener("pointercancel", onUp);
  canvas.addEventListener("wheel", onWheel, { passive: false });
  canvas.addEventListener("keydown", onKey);
  const observer = new ResizeObserver(() => {
    if (resize()) draw();
  });
  observer.observe(canvas);

  const view = {
    firstPaint,
    setStatus(next) {
      status = next || "";
      classify();
      redraw();
    },
    setChosen(next) {
      chosen = next;
      classify();
      redraw();
    },
    /** Outlines section `index` (-1: none); `focus` zooms to it. */
    selectSection(index, focus = false) {
      selected = index;
      if (focus && index >= 0 && width) {
        const box = sectionBox(layout.sections[index]);
        fitTo(box[0], box[1], box[2], box[3], fitK * 60);
        k = clampZoom(k);
      }
      redraw();
    },
    zoom: zoomBy,
    pan: panBy,
    reset: resetView,
    /** Seats are big enough on screen to pick one by one. */
    detailed() {
      return spacing * k >= 7;
    },
    destroy() {
      observer.disconnect();
      if (frame) cancelAnimationFrame(frame);
      canvas.removeEventListener("pointerdown", onDown);
      canvas.removeEventListener("pointermove", onMove);
      canvas.removeEventListener("pointerup", onUp);
      canvas.removeEventListener("pointercancel", onUp);
      canvas.removeEventListener("wheel", onWheel);
      canvas.removeEventListener("keydown", onKey);
    },
  };
  classify();
  resize();
  draw();
  return view;
}
