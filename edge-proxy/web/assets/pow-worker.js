// Solves a waiting-room challenge: counts up from 0 until SHA-256(challenge ":" n) starts
// with `difficulty` zero bits, hashing a batch at a time with WebCrypto.

const BATCH = 256;

function zeroBits(bytes) {
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

async function solve(challenge, difficulty) {
  const encoder = new TextEncoder();
  const prefix = encoder.encode(`${challenge}:`);
  const expected = 2 ** difficulty;
  let lastReport = 0;
  for (let n = 0; n < Number.MAX_SAFE_INTEGER; n += BATCH) {
    const digests = [];
    for (let i = 0; i < BATCH; i++) {
      const suffix = encoder.encode(String(n + i));
      const data = new Uint8Array(prefix.length + suffix.length);
      data.set(prefix);
      data.set(suffix, prefix.length);
      digests.push(crypto.subtle.digest("SHA-256", data));
    }
    const done = await Promise.all(digests);
    for (let i = 0; i < BATCH; i++) {
      if (zeroBits(new Uint8Array(done[i])) >= difficulty) return String(n + i);
    }
    const now = Date.now();
    if (now - lastReport > 100) {
      lastReport = now;
      self.postMessage({ type: "progress", tries: n + BATCH, expected });
    }
  }
  throw new Error("No solution found.");
}

self.addEventListener("message", async (event) => {
  const { challenge, difficulty } = event.data || {};
  try {
    if (typeof challenge !== "string" || !(difficulty >= 0 && difficulty <= 64)) {
      throw new Error("The challenge is not one this page can solve.");
    }
    if (!self.crypto || !self.crypto.subtle) {
      throw new Error("This browser offers no secure hashing on this connection; open the site over HTTPS.");
    }
    const solution = await solve(challenge, difficulty);
    self.postMessage({ type: "done", solution });
  } catch (error) {
    self.postMessage({ type: "error", message: error.message });
  }
});
