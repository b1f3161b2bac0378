import {
  HttpAgent,
  enforceOutgoingInput,
  type AgentSubscriber,
  type BaseEvent,
  type HttpAgentConfig,
  type Message,
  type RunAgentInput,
  type RunAgentParameters,
  type RunAgentResult,
} from "@ag-ui/client";
import { defer, tap, type Observable } from "rxjs";
import {
  DEFAULT_MAX_ATTEMPTS,
  resolveBackoff,
  type BackoffOptions,
} from "./backoff.js";
import { resumableStream, type GatewayRoutes, type ReconnectInfo, type StreamMode } from "./stream.js";

export interface GatewayAgentConfig extends HttpAgentConfig {
  /**
   * How many connection attempts in a row may fail (deliver no event) before
   * the run errors. Counted afresh after every connection that delivered
   * something. Default 8.
   */
  maxAttempts?: number;
  /** Delays between attempts (exponential, with jitter). Default: 100 ms, x2, at most 5 s. */
  backoff?: BackoffOptions;
  /**
   * The gateway's base URL, for the routes beside the run URL (`/threads/...`,
   * `/agents/{agent}/connect`). Default: derived from `url`
   * (`{base}/agents/{agent}/run`).
   */
  gatewayUrl?: string;
  /** The connect route. Default: `url` with its final `/run` replaced by `/connect`. */
  connectUrl?: string;
  /** Called before each reconnection (e.g. to show "reconnecting..."). */
  onReconnect?: (info: ReconnectInfo) => void;
  /**
   * Open threads with their latest turns only: `connectAgent()` asks the gateway
   * for the messages of the last `turns` runs (`forwardedProps.aguiGateway.turns`),
   * and `loadOlder()` fetches the older ones page by page. Default: the whole thread.
   */
  turns?: number;
}

/** The CUSTOM event a windowed replay starts with (`agui_gateway.history_window`). */
export const HISTORY_WINDOW_EVENT_NAME = "agui_gateway.history_window";

/** One page of older messages (`GET /threads/{thread}/messages`). */
export interface MessagePage {
  /** Oldest first; already put in front of the agent's messages. */
  messages: Message[];
  /** The cursor of the page before it; null when this page starts the conversation. */
  before: string | null;
}

type HttpRunParameters = Parameters<HttpAgent["runAgent"]>[0];
/** @ag-ui/core's AgentCapabilities, as HttpAgent's optional getCapabilities() returns it. */
export type Capabilities = Awaited<ReturnType<NonNullable<HttpAgent["getCapabilities"]>>>;

const RUN_URL = /^(.*)\/agents\/([^/?#]+)\/run\/?(?:[?#].*)?$/;

/** The gateway's routes for an agent run URL; undefined when the URL is not a gateway's. */
export function gatewayRoutes(
  url: string,
  overrides: { gatewayUrl?: string; connectUrl?: string } = {},
): GatewayRoutes | undefined {
  const match = RUN_URL.exec(url);
  const base = overrides.gatewayUrl?.replace(/\/+$/, "") ?? match?.[1];
  if (base === undefined) return undefined;
  const connect =
    overrides.connectUrl ?? (match ? `${match[1]}/agents/${match[2]}/connect` : undefined);
  if (connect === undefined) return undefined;
  return { base, connect };
}

/**
 * An `HttpAgent` for an agui-gateway that survives cut connections.
 *
 * `runAgent()` POSTs to the agent's run URL like `HttpAgent`; if the stream
 * breaks before the run's end it resumes from the thread's event log
 * (`GET /threads/{thread}/events` with `Last-Event-ID`) and hands the official
 * pipeline exactly the events the uncut stream would have carried.
 * `connectAgent()` restores a thread (after a page reload) from the gateway's
 * replay and follows a run in progress to its end, resuming likewise. Should the
 * thread be deleted and created again under it (the gateway refuses its ids with
 * 409 `thread_recreated`), it drops what it holds of the old thread (messages,
 * state, pending interrupts) and starts over from a fresh replay of the new one;
 * `runAgent()` then rejects with `ThreadRecreatedError` (its run is gone).
 */
export class GatewayAgent extends HttpAgent {
  public maxAttempts: number;
  public backoff: Required<BackoffOptions>;
  public gatewayUrl: string | undefined;
  public connectUrl: string | undefined;
  public onReconnect: ((info: ReconnectInfo) => void) | undefined;
  public turns: number | undefined;
  /**
   * The cursor of the messages older than what the agent holds: set by a windowed
   * connect, advanced by `loadOlder()`; null once nothing is older, undefined
   * before a windowed connect.
   */
  public olderCursor: string | null | undefined;
  /** Set by a connect stream that found its thread recreated (see connectAgent()). */
  private threadRecreated = false;

  constructor(config: GatewayAgentConfig) {
    super(config);
    const maxAttempts = config.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new TypeError("maxAttempts must be an integer >= 1");
    }
    this.maxAttempts = maxAttempts;
    this.backoff = resolveBackoff(config.backoff);
    this.gatewayUrl = config.gatewayUrl;
    this.connectUrl = config.connectUrl;
    this.onReconnect = config.onReconnect;
    if (config.turns !== undefined && (!Number.isInteger(config.turns) || config.turns < 1)) {
      throw new TypeError("turns must be an integer >= 1");
    }
    this.turns = config.turns;
  }

  /** The run's events, resumed across cut connections (what `runAgent()` applies). */
  run(input: RunAgentInput): Observable<BaseEvent> {
    return defer(() => this.stream("run", input, this.url));
  }

  /** A thread's replay, then its open run to the end (what `connectAgent()` applies). */
  protected connect(input: RunAgentInput): Observable<BaseEvent> {
    return defer(() => {
      const routes = this.routes();
      if (!routes) {
        throw new Error(
          "GatewayAgent.connect: the connect URL is unknown (the agent URL is not of the form " +
            "{base}/agents/{agent}/run; pass connectUrl)",
        );
      }
      if (this.turns === undefined) return this.stream("connect", input, routes.connect);
      const props = (input.forwardedProps ?? {}) as Record<string, unknown>;
      const ours = (props.aguiGateway ?? {}) as Record<string, unknown>;
      const windowed = { ...input, forwardedProps: { ...props, aguiGateway: { ...ours, turns: this.turns } } };
      return this.stream("connect", windowed, routes.connect).pipe(
        tap((event) => {
          const custom = event as BaseEvent & { name?: string; value?: { before?: string | null } };
          if (event.type === "CUSTOM" && custom.name === HISTORY_WINDOW_EVENT_NAME) {
            this.olderCursor = custom.value?.before ?? null;
          }
        }),
      );
    });
  }

  /**
   * The page of messages before the oldest the agent holds (after a windowed
   * `connectAgent()`), put in front of `messages`; an empty page once nothing is
   * older. `limit`: at most this many messages (1 to 1000, the gateway's default 100).
   */
  public async loadOlder(limit?: number): Promise<MessagePage> {
    const before = this.olderCursor;
    if (before === null || before === undefined) return { messages: [], before: null };
    const routes = this.routes();
    if (!routes) throw new Error("GatewayAgent.loadOlder: the gateway's base URL is unknown (pass gatewayUrl)");
    const query = new URLSearchParams({ before });
    if (limit !== undefined) query.set("limit", String(limit));
    const url = `${routes.base}/threads/${encodeURIComponent(this.threadId)}/messages?${query}`;
    const response = await fetch(url, { headers: this.headers });
    if (!response.ok) {
      throw new Error(`GatewayAgent.loadOlder: HTTP ${response.status} ${await response.text()}`);
    }
    const page = (await response.json()) as MessagePage;
    if (this.olderCursor === before) {
      // Not already loaded by a concurrent call: put the page in front. A branch's
      // snapshot may have brought the whole conversation in meanwhile: nothing twice.
      const held = new Set(this.messages.map((m) => m.id));
      const older = page.messages.filter((m) => !held.has(m.id));
      this.olderCursor = older.length === page.messages.length ? page.before : null;
      this.setMessages([...older, ...this.messages]);
    }
    return page;
  }

  /** Like `runAgent()`, a fresh abort controller per connect (unless one is given). */
  public async connectAgent(
    parameters?: HttpRunParameters,
    subscriber?: AgentSubscriber,
  ): Promise<RunAgentResult> {
    for (;;) {
      this.abortController = parameters?.abortController ?? new AbortController();
      this.threadRecreated = false;
      const result = await super.connectAgent(parameters as RunAgentParameters | undefined, subscriber);
      if (!this.threadRecreated) return result;
      // The thread was deleted and created again under the stream: what the agent holds
      // is the old thread's. Dropped, then the new thread is restored from a fresh replay.
      this.debugLogger?.lifecycle("GATEWAY", "Thread recreated: restoring the new thread", {
        threadId: this.threadId,
      });
      this.pendingInterrupts = [];
      this.olderCursor = undefined;
      this.setMessages([]);
      this.setState({});
    }
  }

  /**
   * The agent's AG-UI capabilities as the gateway advertises them
   * (`GET /agents/{agent}/capabilities`): what the agent declares, plus
   * `transport.resumable` and the resume mechanism under `custom.aguiGateway`.
   */
  public async getCapabilities(): Promise<Capabilities> {
    const routes = this.routes();
    if (!routes || !/\/connect$/.test(routes.connect)) {
      throw new Error("GatewayAgent.getCapabilities: the agent's gateway routes are unknown (pass connectUrl)");
    }
    const response = await fetch(routes.connect.replace(/\/connect$/, "/capabilities"), {
      headers: this.headers,
    });
    if (!response.ok) {
      throw new Error(`GatewayAgent.getCapabilities: HTTP ${response.status} ${await response.text()}`);
    }
    return (await response.json()) as Capabilities;
  }

  public clone(): GatewayAgent {
    const cloned = super.clone() as GatewayAgent;
    cloned.maxAttempts = this.maxAttempts;
    cloned.backoff = { ...this.backoff };
    cloned.gatewayUrl = this.gatewayUrl;
    cloned.connectUrl = this.connectUrl;
    cloned.onReconnect = this.onReconnect;
    cloned.turns = this.turns;
    cloned.olderCursor = this.olderCursor;
    return cloned;
  }

  private routes(): GatewayRoutes | undefined {
    return gatewayRoutes(this.url, { gatewayUrl: this.gatewayUrl, connectUrl: this.connectUrl });
  }

  private stream(mode: StreamMode, input: RunAgentInput, url: string): Observable<BaseEvent> {
    // Checked when the stream is subscribed (inside defer), as HttpAgent does,
    // so an invalid input fails the run through the pipeline's error path.
    const enforced = enforceOutgoingInput(input);
    const init = this.requestInit(enforced);
    return resumableStream({
      mode,
      input: enforced,
      fetch: this.fetch,
      url,
      init,
      routes: this.routes(),
      maxAttempts: this.maxAttempts,
      backoff: this.backoff,
      signal: init.signal ?? this.abortController.signal,
      onReconnect: this.onReconnect,
      onThreadRecreated: mode === "connect" ? () => void (this.threadRecreated = true) : undefined,
      logger: this.debugLogger,
    });
  }
}
