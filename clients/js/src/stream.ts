/**
 * The resumable event stream behind GatewayAgent.run() and GatewayAgent.connect().
 *
 * One `ResumableStream` reads one run (or one connect) to its end across any
 * number of connections. Its output is the event sequence the uncut stream
 * would have carried, which the official pipeline (compatibility boundary,
 * enforcement, chunk expansion, verification, apply) then consumes unchanged.
 *
 * Exactness rests on the gateway's id rule: a frame carries `id: N` exactly
 * when a client holding everything up to that frame holds the effect of every
 * stored event up to seq N, and resuming after N yields exactly the stored
 * events after N. So events are handed on only when a frame with an id closes
 * them (frames without an id, inside a compacted stretch of a replay, wait in
 * `pending`); after a cut, whatever is pending is dropped and the next
 * connection asks for the events after the last id. Nothing is applied twice
 * and nothing is skipped. Frames cut in the middle never count (see sse.ts).
 *
 * An id is `EPOCH:SEQ`: the thread's epoch (changed when the thread is deleted and
 * created again) and the seq. It is kept as the opaque string received and sent back
 * verbatim; progress is compared by its SEQ. A gateway that answers a resume with 409
 * `thread_recreated` no longer has the thread those ids belong to: a run cannot be
 * followed any further (`ThreadRecreatedError`), a connect starts over (see agent.ts).
 */

import { Observable, type Subscriber } from "rxjs";
import type { BaseEvent, DebugLogger, HttpAgentFetchFn, RunAgentInput } from "@ag-ui/client";
import { SseFrameParser, type SseFrame } from "./sse.js";
import { abortReason, backoffDelay, sleep, type BackoffOptions } from "./backoff.js";

const RUN_STARTED = "RUN_STARTED";
const RUN_FINISHED = "RUN_FINISHED";
const RUN_ERROR = "RUN_ERROR";

/** What `onReconnect` is told before each reconnection. */
export interface ReconnectInfo {
  /** Which reconnection this is since the stream last delivered something (1, 2, ...). */
  attempt: number;
  /** How long the client waits before it. */
  delayMs: number;
  /** The last event id received (the resume position, `EPOCH:SEQ`), if any. */
  lastEventId: string | undefined;
  /** Why the previous connection ended. */
  error: unknown;
  /** "run" for runAgent(), "connect" for connectAgent(). */
  mode: StreamMode;
}

export type StreamMode = "run" | "connect";

/** The routes of one gateway, derived from an agent's run URL. */
export interface GatewayRoutes {
  /** The gateway's base URL (what precedes `/agents/{agent}/run`). */
  base: string;
  /** `POST {base}/agents/{agent}/connect` */
  connect: string;
}

export interface StreamContext {
  mode: StreamMode;
  input: RunAgentInput;
  fetch: HttpAgentFetchFn;
  /** The first request: `POST .../run` (mode "run") or `POST .../connect` (mode "connect"). */
  url: string;
  /** Its init (method, headers, body, credentials...); the signal is replaced. */
  init: RequestInit;
  routes: GatewayRoutes | undefined;
  maxAttempts: number;
  backoff: Required<BackoffOptions>;
  /** The agent's abort signal (HttpAgent.abortRun()). */
  signal: AbortSignal;
  onReconnect?: (info: ReconnectInfo) => void;
  /**
   * Connect mode: told when the thread turned out deleted and created again under the
   * stream (409 `thread_recreated`); the stream then completes, so the caller can start
   * over from a fresh replay. Without it (and in run mode) the stream errors with
   * `ThreadRecreatedError`.
   */
  onThreadRecreated?: () => void;
  logger?: DebugLogger;
}

/** Raised when the stream gave up: the last error is its `cause`. */
export class GatewayConnectionError extends Error {
  readonly attempts: number;
  readonly lastEventId: string | undefined;
  constructor(message: string, attempts: number, lastEventId: string | undefined, cause: unknown) {
    super(message);
    this.name = "GatewayConnectionError";
    this.attempts = attempts;
    this.lastEventId = lastEventId;
    (this as { cause?: unknown }).cause = cause;
  }
}

/**
 * The thread the stream followed was deleted (and maybe created again) since its ids were
 * given: the gateway answered a resume with 409 `thread_recreated`. Its events at those
 * positions belong to another thread; the run cannot be followed any further.
 */
export class ThreadRecreatedError extends Error {
  readonly status = 409;
  readonly lastEventId: string | undefined;
  readonly payload: unknown;
  constructor(message: string, lastEventId: string | undefined, payload: unknown) {
    super(message);
    this.name = "ThreadRecreatedError";
    this.lastEventId = lastEventId;
    this.payload = payload;
  }
}

function isThreadRecreated(error: HttpError): boolean {
  const payload = error.payload as { code?: unknown } | null;
  return error.status === 409 && typeof payload === "object" && payload !== null && payload.code === "thread_recreated";
}

/** An HTTP error answer, shaped like the official client's (`status`, `payload`). */
export interface HttpError extends Error {
  status: number;
  payload: unknown;
}

const FATAL = Symbol("agui-gateway.fatal");

function fatal<E>(error: E): E {
  if (error !== null && typeof error === "object") (error as Record<symbol, unknown>)[FATAL] = true;
  return error;
}

function isFatal(error: unknown): boolean {
  return error !== null && typeof error === "object" && (error as Record<symbol, unknown>)[FATAL] === true;
}

function isAbortError(error: unknown): boolean {
  return (error as { name?: unknown } | null)?.name === "AbortError";
}

/** Retrying can help: the gateway is restarting or overloaded, or a proxy timed out. */
function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

export async function httpError(response: Response): Promise<HttpError> {
  const contentType = response.headers.get("content-type") || "";
  let text = "";
  try {
    text = await response.text();
  } catch {
    /* the body is gone too */
  }
  let payload: unknown = text;
  if (contentType.includes("application/json")) {
    try {
      payload = JSON.parse(text);
    } catch {
      /* keep the raw text */
    }
  }
  const error = new Error(
    `HTTP ${response.status}: ${typeof payload === "string" ? payload : JSON.stringify(payload)}`,
  ) as HttpError;
  error.status = response.status;
  error.payload = payload;
  return error;
}

/** An event id as the gateway writes it (`EPOCH:SEQ`, or a bare seq): its seq; anything
 * else is not a position. */
function seqOf(id: string): number | undefined {
  const match = /^(?:[0-9a-z]{1,32}:)?(\d{1,15})$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

/** The epoch part of an id (undefined for a bare seq). */
function epochOf(id: string | undefined): string | undefined {
  const colon = id === undefined ? -1 : id.lastIndexOf(":");
  return colon < 0 ? undefined : id!.slice(0, colon);
}

/**
 * Where THIS run ends, told from the events alone where possible.
 *
 * Logs written before the gateway's issue 7 record the caller's new messages in
 * a RUN_STARTED of the gateway's own (carrying `input`); when the agent then sends
 * its own RUN_STARTED, the gateway first closed its run with a bare RUN_FINISHED
 * of the same runId. That interim RUN_FINISHED is byte-for-byte what an agent's
 * final one may look like, so such a candidate is settled from the stored
 * record's `source` ("gateway", and no `outcome`, only for the interim one: a stop's
 * RUN_FINISHED is the gateway's too, with the cancelled outcome) when a stream that is
 * not bounded to the run (the resumed /events tail) reaches it. Since issue 7 a
 * run has one RUN_STARTED (the input rides on it), so the stored record of such
 * a candidate is always the run's own end.
 */
class RunEnd {
  done = false;
  /** An unresolved RUN_FINISHED that may be the gateway's interim one; its seq if known. */
  candidate: { seq: number | undefined } | undefined;
  private seen = 0;
  private gatewayOpened = false;
  private agentStarted = false;

  constructor(private readonly runId: string) {}

  observe(event: BaseEvent & Record<string, unknown>, seq: number | undefined): void {
    // An event after the candidate on the same run-bounded stream: it was the interim one.
    this.candidate = undefined;
    const type = event.type as string;
    const first = this.seen === 0;
    this.seen++;
    if (type === RUN_STARTED) {
      if (first && event.runId === this.runId && event.input !== undefined) this.gatewayOpened = true;
      else this.agentStarted = true;
      return;
    }
    if (type === RUN_ERROR) {
      this.done = true;
      return;
    }
    if (type === RUN_FINISHED) {
      // The interim one was bare; one with an outcome (a stop's cancelled one, which the
      // gateway writes itself since issue 20) is the run's end.
      if (this.gatewayOpened && !this.agentStarted && event.runId === this.runId && event.outcome === undefined) {
        this.candidate = { seq };
      } else {
        this.done = true;
      }
    }
  }

  resolve(interim: boolean): void {
    this.candidate = undefined;
    if (!interim) this.done = true;
  }
}

const DONE = "done" as const;
const ENDED = "ended" as const;
type Outcome = typeof DONE | typeof ENDED;

export function resumableStream(context: StreamContext): Observable<BaseEvent> {
  return new Observable<BaseEvent>((subscriber) => {
    const controller = new AbortController();
    const outer = context.signal;
    const onOuterAbort = () => controller.abort(abortReason(outer));
    if (outer.aborted) onOuterAbort();
    else outer.addEventListener("abort", onOuterAbort, { once: true });
    const stream = new ResumableStream(context, subscriber, controller.signal);
    void stream.start().finally(() => outer.removeEventListener("abort", onOuterAbort));
    return () => {
      outer.removeEventListener("abort", onOuterAbort);
      controller.abort();
    };
  });
}

class ResumableStream {
  /** The last id received, exactly as sent (`EPOCH:SEQ`), and its seq. */
  private lastId: string | undefined;
  private lastSeq: number | undefined;
  /** Run mode, no id seen yet: the id just before this run (found in the log). */
  private startAfter: string | undefined;
  private pending: BaseEvent[] = [];
  private progress = 0;
  private emitted = 0;
  private lastEmittedType: string | undefined;
  private readonly runEnd: RunEnd;
  /** Run mode: the POST is still to be sent (again). */
  private needPost = true;
  /** Run mode: the gateway answered the POST, so it holds the run. */
  private accepted = false;

  constructor(
    private readonly ctx: StreamContext,
    private readonly sub: Subscriber<BaseEvent>,
    private readonly signal: AbortSignal,
  ) {
    this.runEnd = new RunEnd(ctx.input.runId);
  }

  async start(): Promise<void> {
    try {
      await this.loop();
    } catch (error) {
      if (this.sub.closed) return;
      if (this.signal.aborted && (isAbortError(error) || error === abortReason(this.signal))) {
        this.aborted(error);
        return;
      }
      this.sub.error(error);
    }
  }

  /** The agent's abortRun(): like the official client, a stream already flowing ends in RUN_ERROR. */
  private aborted(error: unknown): void {
    if (this.emitted > 0 && this.lastEmittedType !== RUN_ERROR) {
      this.sub.next({
        type: RUN_ERROR,
        message: (error as { message?: string } | null)?.message || "Request aborted",
        code: "abort",
        rawEvent: error,
      } as BaseEvent);
      this.sub.complete();
    } else {
      this.sub.error(error);
    }
  }

  private async loop(): Promise<void> {
    const { maxAttempts, backoff } = this.ctx;
    let failures = 0; // attempts in a row that delivered nothing
    let reconnects = 0;
    for (;;) {
      const progressBefore = this.progress;
      let error: unknown;
      try {
        const outcome = await this.attempt();
        if (outcome === DONE) {
          if (!this.sub.closed) this.sub.complete();
          return;
        }
        error = new Error("the stream ended before the run did");
      } catch (caught) {
        if (this.signal.aborted || this.sub.closed) throw caught;
        if (caught instanceof ThreadRecreatedError && this.ctx.mode === "connect" && this.ctx.onThreadRecreated) {
          this.ctx.logger?.lifecycle("GATEWAY", "Thread recreated, starting over:", { lastEventId: this.lastId });
          this.ctx.onThreadRecreated();
          this.sub.complete();
          return;
        }
        if (isFatal(caught)) throw caught;
        error = caught;
      }
      failures = this.progress > progressBefore ? 0 : failures + 1;
      if (failures >= maxAttempts) {
        throw new GatewayConnectionError(
          `agui-gateway: gave up after ${failures} failed attempt(s) in a row: ${describe(error)}`,
          failures,
          this.lastId,
          error,
        );
      }
      reconnects++;
      const delayMs = backoffDelay(backoff, failures + 1);
      this.ctx.logger?.lifecycle("GATEWAY", "Connection lost, resuming:", {
        mode: this.ctx.mode,
        reconnects,
        delayMs,
        lastEventId: this.lastId,
        error: describe(error),
      });
      this.ctx.onReconnect?.({
        attempt: failures + 1,
        delayMs,
        lastEventId: this.lastId,
        error,
        mode: this.ctx.mode,
      });
      await sleep(delayMs, this.signal);
    }
  }

  // -- one attempt --------------------------------------------------------------------

  private async attempt(): Promise<Outcome> {
    this.pending = []; // what a cut connection left unconfirmed is sent again
    if (this.ctx.mode === "connect") {
      return this.consume(await this.send(this.ctx.url, this.postInit(this.lastId)), "bounded");
    }
    if (this.runEnd.candidate) {
      await this.settleCandidate();
    }
    if (this.runEnd.done) return DONE;
    if (!this.needPost && this.lastId === undefined && this.startAfter === undefined) {
      await this.locateRun();
    }
    if (this.needPost) {
      let response: Response;
      try {
        response = await this.ctx.fetch(this.ctx.url, this.postInit(undefined));
      } catch (error) {
        // The request may or may not have reached the gateway: find out in the log.
        this.needPost = false;
        throw error;
      }
      if (!response.ok) {
        if (response.status === 502 || response.status === 503 || response.status === 504) {
          this.needPost = false; // an intermediary's answer: the run may exist all the same
          throw await httpError(response);
        }
        throw fatal(await httpError(response));
      }
      this.needPost = false;
      this.accepted = true;
      return this.consume(response, "bounded");
    }
    const after = this.lastId ?? this.startAfter!;
    const response = await this.send(this.eventsUrl(), this.getInit("text/event-stream", after));
    return this.consume(response, "tail");
  }

  private async send(url: string, init: RequestInit): Promise<Response> {
    const response = await this.ctx.fetch(url, init);
    if (!response.ok) {
      const error = await httpError(response);
      if (isThreadRecreated(error)) throw this.recreated(error.message, error.payload);
      throw retryableStatus(response.status) ? error : fatal(error);
    }
    return response;
  }

  private recreated(message: string, payload: unknown): ThreadRecreatedError {
    return fatal(
      new ThreadRecreatedError(
        `agui-gateway: thread ${this.ctx.input.threadId} was deleted since event ${this.lastId}: ${message}`,
        this.lastId,
        payload,
      ),
    );
  }

  /**
   * Reads one response. "bounded": the gateway ends it at the run's end (POST
   * run) or once the thread is idle (POST connect). "tail": the /events tail,
   * which never ends by itself; this run's end is recognised in the events.
   */
  private async consume(response: Response, kind: "bounded" | "tail"): Promise<Outcome> {
    const parser = new SseFrameParser();
    const body = response.body;
    if (!body) {
      // No streaming body in this environment: the whole response at once.
      const text = await response.text();
      for (const frame of parser.pushText(text)) {
        const result = this.frame(frame, kind);
        if ((result instanceof Promise ? await result : result) === DONE) return DONE;
      }
      return this.ended(response, parser);
    }
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!value || value.length === 0) continue;
        for (const frame of parser.push(value)) {
          const result = this.frame(frame, kind);
          if ((result instanceof Promise ? await result : result) === DONE) return DONE;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    return this.ended(response, parser);
  }

  /**
   * The response body ended without an error. That is no proof that the server
   * ended it: over a connection the response declared `Connection: close`,
   * Node's fetch reports a connection closed in the middle of a chunked body as
   * a normal end. So an end is taken for the end only when the events say so.
   */
  private async ended(response: Response, parser: SseFrameParser): Promise<Outcome> {
    // A frame, or a stretch of frames without an id, left unfinished: cut.
    if (this.pending.length > 0 || parser.partial) return ENDED;
    if (this.ctx.mode === "run") {
      if (this.runEnd.done) return DONE;
      if (this.runEnd.candidate) {
        await this.settleCandidate();
        return this.runEnd.done ? DONE : ENDED;
      }
      return ENDED;
    }
    // A connect ends once the thread is idle: its last event ended a run (or
    // the thread has none).
    if (this.emitted > 0 && !isTerminal(this.lastEmittedType)) return ENDED;
    const connection = response.headers.get("connection");
    if (connection === null || !/\bclose\b/i.test(connection)) return DONE;
    // The end may have been a cut: ask the thread (a self-delimiting JSON answer).
    const snapshot = (await this.getJson(`${this.threadPath()}/snapshot`)) as {
      seq?: unknown;
      epoch?: unknown;
      running?: unknown;
    };
    const epoch = epochOf(this.lastId);
    if (epoch !== undefined && snapshot.epoch !== epoch) {
      throw this.recreated("the snapshot is of another epoch", snapshot);
    }
    const idle = snapshot.running === false && snapshot.seq === (this.lastSeq ?? 0);
    this.ctx.logger?.lifecycle("GATEWAY", "Connect end confirmed:", { idle, seq: snapshot.seq, lastEventId: this.lastId });
    return idle ? DONE : ENDED;
  }

  private frame(frame: SseFrame, kind: "bounded" | "tail"): Outcome | undefined | Promise<Outcome | undefined> {
    // A named frame is the gateway's own signal (`thread_deleted`, `error`), no AG-UI event:
    // the stream ends after it, and the next connection tells what became of the thread.
    if (frame.event !== undefined && frame.event !== "message") return undefined;
    if (frame.data !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(frame.data);
      } catch (error) {
        throw fatal(error);
      }
      if (typeof json !== "object" || json === null || Array.isArray(json)) {
        throw fatal(new Error("Invalid event: the frame is not a JSON object."));
      }
      const type = (json as { type?: unknown }).type;
      if (typeof type !== "string" || type.length === 0) {
        throw fatal(new Error("Invalid event: the frame carries no event type."));
      }
      this.pending.push(json as BaseEvent);
    }
    if (frame.id !== undefined) {
      const seq = seqOf(frame.id);
      if (seq !== undefined) {
        if (this.lastSeq === undefined || seq > this.lastSeq) this.progress++;
        this.lastId = frame.id;
        this.lastSeq = seq;
        return this.flush(seq, kind);
      }
    }
    return undefined;
  }

  /** Hands on the pending events, now confirmed; stops at this run's end. */
  private flush(seq: number | undefined, kind: "bounded" | "tail"): Outcome | undefined | Promise<Outcome | undefined> {
    const events = this.pending;
    this.pending = [];
    for (let index = 0; index < events.length; index++) {
      if (this.sub.closed) return DONE;
      const event = events[index];
      this.sub.next(event);
      this.emitted++;
      this.progress++;
      this.lastEmittedType = event.type as string;
      if (this.ctx.mode !== "run") continue;
      const last = index === events.length - 1;
      this.runEnd.observe(event as BaseEvent & Record<string, unknown>, last ? seq : undefined);
      if (this.runEnd.done) return DONE;
      if (this.runEnd.candidate && kind === "tail") {
        if (!last) {
          // Not at a frame with an id (never so on the gateway's tail): the next event decides.
          this.runEnd.resolve(events[index + 1].type === RUN_STARTED);
          if (this.runEnd.done) return DONE;
          continue;
        }
        return this.settleCandidate().then(() => (this.runEnd.done ? DONE : undefined));
      }
    }
    return undefined;
  }

  // -- finding positions in the log ---------------------------------------------------

  private routes(): GatewayRoutes {
    const routes = this.ctx.routes;
    if (!routes) {
      throw fatal(
        new Error(
          "agui-gateway: cannot resume, the gateway's base URL is unknown " +
            "(the agent URL is not of the form {base}/agents/{agent}/run; pass gatewayUrl)",
        ),
      );
    }
    return routes;
  }

  private threadPath(): string {
    return `${this.routes().base}/threads/${encodeURIComponent(this.ctx.input.threadId)}`;
  }

  private eventsUrl(): string {
    return `${this.threadPath()}/events`;
  }

  /** Settles a RUN_FINISHED that may be the gateway's interim one: its stored record says. */
  private async settleCandidate(): Promise<void> {
    const candidate = this.runEnd.candidate!;
    if (candidate.seq === undefined || candidate.seq < 1) {
      this.runEnd.resolve(false);
      return;
    }
    let record: StoredRecord | undefined;
    await this.readLog(candidate.seq - 1, (line) => {
      record = line;
      return true;
    });
    if (record === undefined || record.seq !== candidate.seq) {
      // The record exists (its frame arrived): this answer was cut short.
      throw new Error(`agui-gateway: the log did not return record ${candidate.seq}`);
    }
    const interim =
      record.source === "gateway" &&
      record.event?.type === RUN_FINISHED &&
      record.event.outcome === undefined;
    this.ctx.logger?.lifecycle("GATEWAY", "RUN_FINISHED settled:", { seq: candidate.seq, interim });
    this.runEnd.resolve(interim);
  }

  /**
   * No id was received: find where this run starts in the thread's log (the
   * records of the run carry its runId), searching back from the end.
   */
  private async locateRun(): Promise<void> {
    const snapshot = (await this.getJson(`${this.threadPath()}/snapshot`)) as {
      seq?: unknown;
      epoch?: unknown;
      running?: unknown;
    };
    const latest = typeof snapshot.seq === "number" ? snapshot.seq : 0;
    // Positions of the incarnation the snapshot describes: the resume checks it is still there.
    const idOf = (seq: number) => (typeof snapshot.epoch === "string" ? `${snapshot.epoch}:${seq}` : String(seq));
    const runId = this.ctx.input.runId;
    let window = 64;
    for (;;) {
      const after = Math.max(0, latest - window);
      let first: number | undefined;
      let reached = after;
      await this.readLog(after, (record) => {
        if (typeof record.seq !== "number") return false;
        reached = Math.max(reached, record.seq);
        if (record.runId === runId) {
          first = record.seq;
          return true;
        }
        return false;
      });
      if (first === undefined && reached < latest) {
        // Records up to `latest` exist: this answer was cut short.
        throw new Error("agui-gateway: the thread's log was cut short");
      }
      if (first !== undefined) {
        if (first > after + 1 || after === 0) {
          this.startAfter = idOf(first - 1);
          this.ctx.logger?.lifecycle("GATEWAY", "Run located in the log:", { startAfter: this.startAfter });
          return;
        }
        window *= 8; // the run may begin before this window
        continue;
      }
      if (snapshot.running === true) {
        if (this.accepted) {
          // Ours, and nothing of it is stored yet.
          this.startAfter = idOf(latest);
          return;
        }
        throw new Error("agui-gateway: a run is in progress on the thread but this one is not in its log yet");
      }
      if (this.accepted) {
        throw fatal(new Error(`agui-gateway: run ${runId} is not in the log of thread ${this.ctx.input.threadId}`));
      }
      // The POST never reached the gateway: send it again.
      this.needPost = true;
      return;
    }
  }

  private async getJson(url: string): Promise<unknown> {
    const response = await this.send(url, this.getInit("application/json", undefined));
    // A body that does not parse was cut short (the answer is self-delimiting): retried.
    return JSON.parse(await response.text());
  }

  /** Streams `log.jsonl?after=N`; `visit` returns true to stop. */
  private async readLog(after: number, visit: (record: StoredRecord) => boolean): Promise<void> {
    const url = `${this.threadPath()}/log.jsonl?after=${after}`;
    const response = await this.send(url, this.getInit("application/x-ndjson", undefined));
    const visitLine = (line: string): boolean => {
      if (line.trim() === "") return false;
      let record: StoredRecord;
      try {
        record = JSON.parse(line) as StoredRecord;
      } catch {
        return false;
      }
      return visit(record);
    };
    const body = response.body;
    if (!body) {
      const lines = (await response.text()).split("\n");
      lines.pop(); // unterminated (empty when the text ends with a newline)
      for (const line of lines) if (visitLine(line)) return;
      return;
    }
    const reader = body.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf("\n")) !== -1) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (visitLine(line)) return;
        }
      }
      // An unterminated last line is a record cut short: not used.
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  // -- request inits ------------------------------------------------------------------

  /** The POST of the run or connect, with `Last-Event-ID` when resuming a connect. */
  private postInit(lastEventId: string | undefined): RequestInit {
    const headers = new Headers(this.ctx.init.headers);
    if (lastEventId !== undefined) headers.set("Last-Event-ID", lastEventId);
    return { ...this.ctx.init, headers, signal: this.signal };
  }

  /** A GET on the gateway with the agent's headers and credentials settings. */
  private getInit(accept: string, lastEventId: string | undefined): RequestInit {
    const headers = new Headers(this.ctx.init.headers);
    headers.delete("Content-Type");
    headers.set("Accept", accept);
    if (lastEventId !== undefined) headers.set("Last-Event-ID", lastEventId);
    const init: RequestInit = { ...this.ctx.init, method: "GET", headers, signal: this.signal };
    delete init.body;
    return init;
  }
}

interface StoredRecord {
  seq?: number;
  runId?: string;
  source?: string;
  event?: { type?: string; outcome?: unknown };
}

function isTerminal(type: string | undefined): boolean {
  return type === RUN_FINISHED || type === RUN_ERROR;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    const causeText = cause instanceof Error ? ` (${cause.message})` : "";
    return `${error.message}${causeText}`;
  }
  return String(error);
}
