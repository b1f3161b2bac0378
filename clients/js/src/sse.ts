/**
 * A server-sent events parser that only ever yields complete frames.
 *
 * The official client's parser hands the unterminated tail of a stream to
 * `JSON.parse` when the stream ends; after a cut that tail is a frame the
 * server never finished sending. Here a frame counts only once the blank line
 * that ends it has arrived, exactly as an EventSource dispatches events, so a
 * connection cut in the middle of a frame yields nothing of that frame.
 *
 * Follows the HTML standard's event-stream interpretation: lines end in CRLF,
 * LF or CR; lines starting with ':' are comments; `data` lines are joined with
 * '\n'; an `id` containing NUL is ignored; `event` names the frame (the gateway's own
 * signals, such as `thread_deleted`, are named; AG-UI events are not); other fields are ignored. Unlike an
 * EventSource, a frame reports the id it carries itself (not an inherited one),
 * because the gateway's ids mean something only on the frames that carry them.
 */

/** One complete frame: its `data` lines joined (undefined when it had none), its own `id`,
 * and its `event` name when it has one. */
export interface SseFrame {
  data?: string;
  id?: string;
  event?: string;
}

export class SseFrameParser {
  private readonly decoder = new TextDecoder("utf-8");
  private text = "";
  private scanned = 0; // leading chars of `text` known to hold no line break
  private skipLF = false;
  private dataLines: string[] | undefined;
  private id: string | undefined;
  private event: string | undefined;

  /** Feeds bytes; returns the frames they complete, in order. */
  push(chunk: Uint8Array): SseFrame[] {
    return this.pushText(this.decoder.decode(chunk, { stream: true }));
  }

  /** Feeds already decoded text (for a body read with `Response.text()`). */
  pushText(text: string): SseFrame[] {
    const frames: SseFrame[] = [];
    let buffer = this.text.length > 0 ? this.text + text : text;
    if (this.skipLF && buffer.length > 0) {
      // The previous chunk ended in CR: an LF right after it belongs to that line end.
      if (buffer.charCodeAt(0) === 10) buffer = buffer.slice(1);
      this.skipLF = false;
    }
    let start = 0;
    const length = buffer.length;
    let end = start + this.scanned;
    for (;;) {
      // Find the next CR or LF.
      while (end < length) {
        const code = buffer.charCodeAt(end);
        if (code === 10 || code === 13) break;
        end++;
      }
      if (end >= length) break; // an unterminated line: wait for more
      let next = end + 1;
      if (buffer.charCodeAt(end) === 13) {
        if (next >= length) this.skipLF = true;
        else if (buffer.charCodeAt(next) === 10) next++;
      }
      this.line(buffer.slice(start, end), frames);
      start = next;
      end = start;
    }
    this.text = start === 0 ? buffer : buffer.slice(start);
    this.scanned = end - start;
    return frames;
  }

  /** Whether bytes of an unfinished frame are held (they are dropped if the stream ends now). */
  get partial(): boolean {
    return this.text.length > 0 || this.dataLines !== undefined || this.id !== undefined || this.event !== undefined;
  }

  private line(line: string, frames: SseFrame[]): void {
    if (line.length === 0) {
      if (this.dataLines !== undefined || this.id !== undefined) {
        const frame: SseFrame = {};
        if (this.dataLines !== undefined) frame.data = this.dataLines.join("\n");
        if (this.id !== undefined) frame.id = this.id;
        if (this.event !== undefined) frame.event = this.event;
        frames.push(frame);
      }
      this.dataLines = undefined;
      this.id = undefined;
      this.event = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return; // a comment (the gateway's heartbeat)
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.charCodeAt(colon + 1) === 32 ? line.slice(colon + 2) : line.slice(colon + 1);
    }
    if (field === "data") {
      (this.dataLines ??= []).push(value);
    } else if (field === "id") {
      if (!value.includes("\u0000")) this.id = value;
    } else if (field === "event") {
      this.event = value;
    }
    // "retry" and unknown fields carry nothing this client uses.
  }
}
