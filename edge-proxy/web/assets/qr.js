// QR codes (ISO/IEC 18004), drawn on the device so a rotating ticket code needs no round
// trip: byte mode, error correction M (as the origin's own images), the smallest version
// that holds the text, and the mask with the lowest penalty score.

// Error correction M, by version: codewords per block, and blocks.
const ECC_PER_BLOCK = [-1, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28,
  26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28];
const BLOCKS = [-1, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17,
  18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49];
// Error correction M's two format bits.
const LEVEL_M = 0;

/** Modules left for data and error correction in a symbol of `version`. */
function rawModules(version) {
  let modules = (16 * version + 128) * version + 64;
  if (version >= 2) {
    const aligns = Math.floor(version / 7) + 2;
    modules -= (25 * aligns - 10) * aligns - 55;
    if (version >= 7) modules -= 36;
  }
  return modules;
}

const dataCodewords = (v) => Math.floor(rawModules(v) / 8) - ECC_PER_BLOCK[v] * BLOCKS[v];

function alignmentCentres(version) {
  if (version === 1) return [];
  const aligns = Math.floor(version / 7) + 2;
  const step = Math.floor((version * 8 + aligns * 3 + 5) / (aligns * 4 - 4)) * 2;
  const centres = [6];
  for (let at = version * 4 + 10; centres.length < aligns; at -= step) centres.splice(1, 0, at);
  return centres;
}

// Reed-Solomon over GF(2^8) with the field polynomial x^8 + x^4 + x^3 + x^2 + 1.
function gfMultiply(x, y) {
  let z = 0;
  for (let i = 7; i >= 0; i--) {
    z = (z << 1) ^ ((z >>> 7) * 0x11d);
    z ^= ((y >>> i) & 1) * x;
  }
  return z;
}

function generator(degree) {
  const coefficients = new Array(degree).fill(0);
  coefficients[degree - 1] = 1;
  let root = 1;
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < degree; j++) {
      coefficients[j] = gfMultiply(coefficients[j], root);
      if (j + 1 < degree) coefficients[j] ^= coefficients[j + 1];
    }
    root = gfMultiply(root, 0x02);
  }
  return coefficients;
}

function remainder(data, divisor) {
  const result = divisor.map(() => 0);
  for (const byte of data) {
    const factor = byte ^ result.shift();
    result.push(0);
    divisor.forEach((c, i) => { result[i] ^= gfMultiply(c, factor); });
  }
  return result;
}

/** The data codewords: mode, length, bytes, terminator and padding. */
function codewords(bytes, version) {
  const bits = [];
  const put = (value, length) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  put(0b0100, 4);
  put(bytes.length, version <= 9 ? 8 : 16);
  for (const byte of bytes) put(byte, 8);
  const capacity = dataCodewords(version) * 8;
  put(0, Math.min(4, capacity - bits.length));
  put(0, (8 - (bits.length % 8)) % 8);
  for (let pad = 0xec; bits.length < capacity; pad ^= 0xec ^ 0x11) put(pad, 8);
  const words = [];
  for (let i = 0; i < bits.length; i += 8) words.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  return words;
}

/** The codewords split into blocks, each with its error correction, interleaved. */
function interleaved(data, version) {
  const blocks = BLOCKS[version];
  const ecc = ECC_PER_BLOCK[version];
  const raw = Math.floor(rawModules(version) / 8);
  const short = blocks - (raw % blocks);
  const shortLength = Math.floor(raw / blocks);
  const divisor = generator(ecc);
  const all = [];
  for (let i = 0, at = 0; i < blocks; i++) {
    const block = data.slice(at, at + shortLength - ecc + (i < short ? 0 : 1));
    at += block.length;
    const check = remainder(block, divisor);
    if (i < short) block.push(0);
    all.push(block.concat(check));
  }
  const result = [];
  for (let i = 0; i < all[0].length; i++) {
    all.forEach((block, j) => {
      if (i !== shortLength - ecc || j >= short) result.push(block[i]);
    });
  }
  return result;
}

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

/** A symbol under construction: `dark` per module, and which modules are patterns. */
function symbol(version) {
  const size = version * 4 + 17;
  const dark = new Uint8Array(size * size);
  const fixed = new Uint8Array(size * size);
  const set = (x, y, on) => {
    dark[y * size + x] = on ? 1 : 0;
    fixed[y * size + x] = 1;
  };
  for (let i = 0; i < size; i++) {
    set(6, i, i % 2 === 0);
    set(i, 6, i % 2 === 0);
  }
  for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]]) {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const x = cx + dx;
        const y = cy + dy;
        const ring = Math.max(Math.abs(dx), Math.abs(dy));
        if (x >= 0 && x < size && y >= 0 && y < size) set(x, y, ring !== 2 && ring !== 4);
      }
    }
  }
  const centres = alignmentCentres(version);
  const last = centres.length - 1;
  centres.forEach((cx, i) => centres.forEach((cy, j) => {
    if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) return;
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) set(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
    }
  }));
  if (version >= 7) {
    let rest = version;
    for (let i = 0; i < 12; i++) rest = (rest << 1) ^ ((rest >>> 11) * 0x1f25);
    const bits = (version << 12) | rest;
    for (let i = 0; i < 18; i++) {
      const on = (bits >>> i) & 1;
      const a = size - 11 + (i % 3);
      const b = Math.floor(i / 3);
      set(a, b, on);
      set(b, a, on);
    }
  }
  const format = (mask) => {
    const data = (LEVEL_M << 3) | mask;
    let rest = data;
    for (let i = 0; i < 10; i++) rest = (rest << 1) ^ ((rest >>> 9) * 0x537);
    const bits = ((data << 10) | rest) ^ 0x5412;
    const bit = (i) => (bits >>> i) & 1;
    for (let i = 0; i <= 5; i++) set(8, i, bit(i));
    set(8, 7, bit(6));
    set(8, 8, bit(7));
    set(7, 8, bit(8));
    for (let i = 9; i < 15; i++) set(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) set(size - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) set(8, size - 15 + i, bit(i));
    set(8, size - 8, 1);
  };
  format(0);
  return { size, dark, fixed, format };
}

/** Lays the codewords in the zigzag of two-module columns, bottom right first. */
function place(s, words) {
  const { size, dark, fixed } = s;
  let i = 0;
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let vert = 0; vert < size; vert++) {
      for (let j = 0; j < 2; j++) {
        const x = right - j;
        const y = ((right + 1) & 2) === 0 ? size - 1 - vert : vert;
        if (!fixed[y * size + x] && i < words.length * 8) {
          dark[y * size + x] = (words[i >>> 3] >>> (7 - (i & 7))) & 1;
          i++;
        }
      }
    }
  }
}

function applyMask(s, mask) {
  const { size, dark, fixed } = s;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!fixed[y * size + x] && MASKS[mask](x, y)) dark[y * size + x] ^= 1;
    }
  }
}

const FINDER_LIKE = [[1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1]];

/** The specification's penalty: runs, blocks, finder-like patterns and dark balance. */
function penalty({ size, dark }) {
  let score = 0;
  const line = (at) => {
    const modules = Array.from({ length: size }, (_, i) => at(i));
    let run = 1;
    for (let i = 1; i <= size; i++) {
      if (i < size && modules[i] === modules[i - 1]) {
        run++;
      } else {
        if (run >= 5) score += run - 2;
        run = 1;
      }
    }
    const padded = [0, 0, 0, 0, ...modules, 0, 0, 0, 0];
    for (let i = 0; i + 11 <= padded.length; i++) {
      for (const pattern of FINDER_LIKE) {
        if (pattern.every((m, k) => padded[i + k] === m)) score += 40;
      }
    }
  };
  for (let y = 0; y < size; y++) line((x) => dark[y * size + x]);
  for (let x = 0; x < size; x++) line((y) => dark[y * size + x]);
  for (let y = 0; y + 1 < size; y++) {
    for (let x = 0; x + 1 < size; x++) {
      const m = dark[y * size + x];
      if (m === dark[y * size + x + 1] && m === dark[(y + 1) * size + x] && m === dark[(y + 1) * size + x + 1]) score += 3;
    }
  }
  const total = size * size;
  const darkCount = dark.reduce((a, b) => a + b, 0);
  score += (Math.ceil(Math.abs(darkCount * 20 - total * 10) / total) - 1) * 10;
  return score;
}

/** `text` as a QR code: `{ size, dark }`, `dark[y * size + x]` 1 for a dark module. */
export function encode(text) {
  const bytes = new TextEncoder().encode(text);
  let version = 1;
  while (4 + (version <= 9 ? 8 : 16) + bytes.length * 8 > dataCodewords(version) * 8) {
    version++;
    if (version > 40) throw new RangeError("too long for a QR code");
  }
  const words = interleaved(codewords(bytes, version), version);
  let best = null;
  for (let mask = 0; mask < MASKS.length; mask++) {
    const s = symbol(version);
    place(s, words);
    applyMask(s, mask);
    s.format(mask);
    const score = penalty(s);
    if (!best || score < best.score) best = { score, size: s.size, dark: s.dark };
  }
  return { size: best.size, dark: best.dark };
}

/** Draws `text`'s QR code on `canvas`, a whole number of pixels per module, with the
 * four-module quiet zone scanners need. */
export function draw(canvas, text, pixelsPerModule = 4) {
  const { size, dark } = encode(text);
  const side = (size + 8) * pixelsPerModule;
  if (canvas.width !== side) canvas.width = side;
  if (canvas.height !== side) canvas.height = side;
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, side, side);
  g.fillStyle = "#000";
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (dark[y * size + x]) g.fillRect((x + 4) * pixelsPerModule, (y + 4) * pixelsPerModule, pixelsPerModule, pixelsPerModule);
    }
  }
}
