/** How long to wait before each reconnection attempt. */
export interface BackoffOptions {
  /** Delay before the first reconnection after a failure, in ms (default 100). */
  initialDelayMs?: number;
  /** Each further consecutive failure multiplies the delay by this (default 2). */
  factor?: number;
  /** The delay never exceeds this, in ms (default 5000). */
  maxDelayMs?: number;
  /**
   * Random fraction taken off each delay, 0..1 (default 0.2: a delay of 100 ms
   * becomes 80-100 ms), so that many clients cut at once do not reconnect in step.
   */
  jitter?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialDelayMs: 100,
  factor: 2,
  maxDelayMs: 5000,
  jitter: 0.2,
};

/** Default number of attempts in a row that may fail before a run gives up. */
export const DEFAULT_MAX_ATTEMPTS = 8;

export function resolveBackoff(options: BackoffOptions | undefined): Required<BackoffOptions> {
  const resolved = { ...DEFAULT_BACKOFF };
  for (const key of Object.keys(DEFAULT_BACKOFF) as (keyof BackoffOptions)[]) {
    const value = options?.[key];
    if (value !== undefined) {
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
        throw new TypeError(`backoff.${key} must be a finite number >= 0`);
      }
      resolved[key] = value;
    }
  }
  if (resolved.jitter > 1) throw new TypeError("backoff.jitter must be between 0 and 1");
  return resolved;
}

/** The delay before the reconnection that follows `failures` failed attempts in a row (>= 1). */
export function backoffDelay(
  backoff: Required<BackoffOptions>,
  failures: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, failures - 1);
  const base = Math.min(backoff.maxDelayMs, backoff.initialDelayMs * Math.pow(backoff.factor, exponent));
  return Math.round(base * (1 - backoff.jitter * random()));
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it is aborted. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

export function abortReason(signal: AbortSignal): unknown {
  const reason = (signal as AbortSignal & { reason?: unknown }).reason;
  if (reason !== undefined) return reason;
  return makeAbortError();
}

export function makeAbortError(message = "The operation was aborted."): Error {
  if (typeof DOMException === "function") {
    return new DOMException(message, "AbortError") as unknown as Error;
  }
  const error = new Error(message);
  error.name = "AbortError";
  return error;
}
