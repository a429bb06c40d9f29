// Proof of work for shows that ask for it, solved off the main thread in pow-worker.js.

/**
 * Finds `solution` such that SHA-256(`challenge` ":" `solution`) starts with `difficulty`
 * zero bits. `onProgress(tries, expectedTries)` reports along the way; `signal` stops it.
 */
export function solve(challenge, difficulty, onProgress, signal) {
  return new Promise((resolve, reject) => {
    let worker;
    try {
      worker = new Worker(new URL("./pow-worker.js", import.meta.url), { type: "module" });
    } catch {
      reject(new Error("This browser cannot run the check the queue asks for."));
      return;
    }
    const stop = () => worker.terminate();
    if (signal) {
      if (signal.aborted) {
        stop();
        reject(new DOMException("The page was left.", "AbortError"));
        return;
      }
      signal.addEventListener("abort", () => {
        stop();
        reject(new DOMException("The page was left.", "AbortError"));
      }, { once: true });
    }
    worker.addEventListener("message", (event) => {
      const m = event.data || {};
      if (m.type === "progress") {
        if (onProgress) onProgress(m.tries, m.expected);
      } else if (m.type === "done") {
        stop();
        resolve(m.solution);
      } else if (m.type === "error") {
        stop();
        reject(new Error(m.message || "The browser check failed."));
      }
    });
    worker.addEventListener("error", (event) => {
      event.preventDefault();
      stop();
      reject(new Error("The browser check could not run."));
    });
    worker.postMessage({ challenge, difficulty });
  });
}
