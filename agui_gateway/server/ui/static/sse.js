// Server-sent events over fetch (EventSource cannot send an Authorization header),
// and a thread's event stream that resumes with Last-Event-ID after a dropped
// connection without ever delivering an event twice.

/** Yields {id, event, data} per SSE frame of a fetch Response body (comments skipped). */
export async function* sseFrames(body, onBytes) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let frame = { id: null, event: null, data: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      if (onBytes) onBytes(value.byteLength);
      buffer += decoder.decode(value, { stream: true });
      let start = 0;
      for (;;) {
        const end = buffer.indexOf("\n", start);
        if (end < 0) break;
        let line = buffer.slice(start, end);
        start = end + 1;
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (frame.data !== null || frame.event !== null) yield frame;
          frame = { id: null, event: null, data: null };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") frame.data = frame.data === null ? value : `${frame.data}\n${value}`;
        else if (field === "id") frame.id = value;
        else if (field === "event") frame.event = value;
      }
      buffer = buffer.slice(start);
    }
  } finally {
    reader.releaseLock();
  }
}

/** An HTTP answer the page cannot fix by retrying (401, 403, 404, 400): shown to the user. */
export class FatalHttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function errorOf(response) {
  return (await failureOf(response)).message;
}

/** An error answer's message and stable code (`{"error", "code"}`; the status line if not JSON). */
export async function failureOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = null;
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
    else if (body && typeof body.message === "string") message = body.message;
    if (body && typeof body.code === "string") code = body.code;
  } catch {
    // not JSON: keep the status line
  }
  return { message, code };
}

const SILENCE_MS = 45_000; // the gateway sends a heartbeat every 15 s: a quieter connection is dead

/**
 * Follows `GET {url}` forever: history, then the live tail.
 *
 * A frame's events are delivered only once a frame with an `id:` covers them
 * (frames inside a compacted stretch carry none); after a drop the stream
 * resumes with `Last-Event-ID` = the last id delivered, and the uncovered rest,
 * which the gateway sends again, is dropped here first. So no event is ever
 * delivered twice and none is skipped.
 *
 * A connection is dropped (and resumed) when the browser goes offline, when it
 * stays silent past two heartbeats, or when `drop()` is called.
 *
 * Ids are `EPOCH:SEQ`, kept as received and sent back verbatim. A thread deleted and
 * written again since (409 `thread_recreated`: the ids are of the old thread) is not
 * resumed: `onRecreated` is called and the stream ends, for the page to open the new
 * thread afresh. Named frames (`event: thread_deleted`) are the gateway's own signals,
 * not AG-UI events: skipped (the next connection tells what became of the thread).
 */
export class ResumableStream {
  constructor(url, { headers, onEvents, onStatus, onFatal, onRecreated, stats }) {
    this.url = url;
    this.headers = headers;
    this.onEvents = onEvents;
    this.onStatus = onStatus ?? (() => {});
    this.onFatal = onFatal ?? (() => {});
    this.onRecreated = onRecreated ?? null;
    this.stats = stats;
    this.lastId = null;
    this.stopped = false;
    this.connection = null;
    this.wake = null;
    this.lastByte = 0;
    this.onOffline = () => this.drop();
    this.onOnline = () => this.wake?.();
  }

  stop() {
    this.stopped = true;
    this.connection?.abort();
    this.wake?.();
    window.removeEventListener("offline", this.onOffline);
    window.removeEventListener("online", this.onOnline);
    clearInterval(this.watchdog);
  }

  /** Drops the current connection; the stream resumes after the last id it delivered. */
  drop() {
    this.connection?.abort();
  }

  pause(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async run() {
    window.addEventListener("offline", this.onOffline);
    window.addEventListener("online", this.onOnline);
    this.watchdog = setInterval(() => {
      if (this.connection && performance.now() - this.lastByte > SILENCE_MS) this.drop();
    }, 5000);
    let backoff = 250;
    while (!this.stopped) {
      const pending = [];
      const connection = (this.connection = new AbortController());
      try {
        if (!navigator.onLine) throw new Error("offline");
        const headers = { ...this.headers() };
        if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
        this.onStatus(this.stats.connects === 0 ? "connecting" : "reconnecting");
        this.lastByte = performance.now();
        const response = await fetch(this.url, { headers, signal: connection.signal, cache: "no-store" });
        if (!response.ok) {
          const { message, code } = await failureOf(response);
          if (response.status === 409 && code === "thread_recreated" && this.onRecreated) {
            this.stopped = true;
            this.onStatus("recreated");
            this.onRecreated();
            return;
          }
          if (response.status >= 400 && response.status < 500 && response.status !== 429) {
            throw new FatalHttpError(response.status, message);
          }
          throw new Error(message);
        }
        this.stats.connects += 1;
        this.onStatus("live");
        backoff = 250;
        const counted = (n) => {
          this.stats.bytes += n;
          this.lastByte = performance.now();
        };
        for await (const frame of sseFrames(response.body, counted)) {
          if (frame.data === null || (frame.event !== null && frame.event !== "message")) continue;
          this.stats.frames += 1;
          pending.push(JSON.parse(frame.data));
          if (frame.id !== null && frame.id !== "") {
            this.lastId = frame.id;
            const events = pending.splice(0, pending.length);
            this.stats.events += events.length;
            this.onEvents(events, this.lastId);
          }
        }
        throw new Error("the stream ended");
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof FatalHttpError) {
          this.onStatus("failed");
          this.onFatal(error);
          return;
        }
        this.stats.dropped += pending.length;
        this.onStatus(navigator.onLine ? "reconnecting" : "offline");
        // Offline: wait for the "online" event (it wakes the pause) rather than spin.
        await this.pause(navigator.onLine ? backoff : 60_000);
        backoff = Math.min(backoff * 2, 4000);
      } finally {
        this.connection = null;
      }
    }
  }
}

/**
 * One read of a stream that ends by itself and carries no ids (GET /threads/{t}/events?run=R,
 * a branch as it was right after run R): nothing to resume, so a cut read is read again whole.
 * Same interface as ResumableStream, plus `onEnd` once every event is delivered.
 */
export class BranchStream {
  constructor(url, { headers, onStatus, onFatal, stats }) {
    this.url = url;
    this.headers = headers;
    this.onEvents = () => {};
    this.onEnd = () => {};
    this.onStatus = onStatus ?? (() => {});
    this.onFatal = onFatal ?? (() => {});
    this.stats = stats;
    this.connection = null;
    this.stopped = false;
  }

  stop() {
    this.stopped = true;
    this.connection?.abort();
  }

  async run() {
    for (let attempt = 0; !this.stopped; attempt += 1) {
      const connection = (this.connection = new AbortController());
      try {
        this.onStatus("connecting");
        const response = await fetch(this.url, { headers: this.headers(), signal: connection.signal, cache: "no-store" });
        if (!response.ok) throw new FatalHttpError(response.status, await errorOf(response));
        this.stats.connects += 1;
        const events = [];
        for await (const frame of sseFrames(response.body, (n) => (this.stats.bytes += n))) {
          if (frame.data === null) continue;
          this.stats.frames += 1;
          events.push(JSON.parse(frame.data));
        }
        this.stats.events += events.length;
        this.onEvents(events);
        this.onStatus("ended");
        this.onEnd();
        return;
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof FatalHttpError || attempt >= 3) {
          this.onStatus("failed");
          this.onFatal(error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
      } finally {
        this.connection = null;
      }
    }
  }
}
