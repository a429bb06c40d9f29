// A rotating ticket code, computed on the device from the ticket's secret: RFC 6238 (TOTP)
// with HMAC-SHA256, T0 = 0, 8 digits, the step being the origin's Unix seconds divided by
// the show's period. The gate computes the same from the same secret.

function bytesOf(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

/** The ticket's secret (base64url, as the ticket list gives it) as an HMAC key. */
export function importSecret(secret) {
  return crypto.subtle.importKey("raw", bytesOf(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

/** The 8-digit code of `step` under `key`. */
export async function codeAt(key, step) {
  const counter = new DataView(new ArrayBuffer(8));
  counter.setBigInt64(0, BigInt(step));
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, counter.buffer));
  const at = mac[mac.length - 1] & 0x0f;
  const value = (((mac[at] & 0x7f) << 24) | (mac[at + 1] << 16) | (mac[at + 2] << 8) | mac[at + 3]) % 100000000;
  return String(value).padStart(8, "0");
}
