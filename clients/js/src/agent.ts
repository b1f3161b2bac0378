import {
  HttpAgent,
  enforceOutgoingInput,
  type AgentSubscriber,
  type BaseEvent,
  type HttpAgentConfig,
  type RunAgentInput,
  type RunAgentParameters,
  type RunAgentResult,
} from "@ag-ui/client";
import { defer, type Observable } from "rxjs";
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
 * replay and follows a run in progress to its end, resuming likewise.
 */
export class GatewayAgent extends HttpAgent {
  public maxAttempts: number;
  public backoff: Required<BackoffOptions>;
  public gatewayUrl: string | undefined;
  public connectUrl: string | undefined;
  public onReconnect: ((info: ReconnectInfo) => void) | undefined;

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
      return this.stream("connect", input, routes.connect);
    });
  }

  /** Like `runAgent()`, a fresh abort controller per connect (unless one is given). */
  public connectAgent(
    parameters?: HttpRunParameters,
    subscriber?: AgentSubscriber,
  ): Promise<RunAgentResult> {
    this.abortController = parameters?.abortController ?? new AbortController();
    return super.connectAgent(parameters as RunAgentParameters | undefined, subscriber);
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
      logger: this.debugLogger,
    });
  }
}
