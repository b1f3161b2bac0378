/**
 * `GatewayAgentRunner`: a CopilotKit `AgentRunner` (@copilotkit/runtime 1.75.0,
 * `src/v2/runtime/runner/agent-runner.ts`) whose threads live in an agui-gateway.
 *
 * CopilotKit's own runners keep a thread in one process (in memory, or SQLite on
 * its disk). This one keeps nothing: `run` posts the run to the gateway, which runs
 * the agent, stores every event and serves the run to any number of clients;
 * `connect` asks the gateway for the thread's compacted history and follows a run
 * in progress, whichever runtime instance (on whichever host) started it. Both
 * streams resume by event id across cut connections with the same code as
 * `GatewayAgent` (stream.ts), so the runtime's client sees every event once.
 *
 * Only types come from @copilotkit/runtime (an optional peer dependency): nothing
 * of the runtime is loaded by this module.
 */
import type {
  AgentRunner,
  AgentRunnerConnectRequest,
  AgentRunnerIsRunningRequest,
  AgentRunnerRunRequest,
  AgentRunnerStopRequest,
} from "@copilotkit/runtime/v2";
import type { BaseEvent as ClientEvent, RunAgentInput as ClientInput } from "@ag-ui/client";
import { defer, from, map, switchMap, type Observable } from "rxjs";
import { DEFAULT_MAX_ATTEMPTS, resolveBackoff, type BackoffOptions } from "./backoff.js";
import { httpError, resumableStream, type ReconnectInfo, type StreamMode } from "./stream.js";

/** The event type of the runtime's @ag-ui/client (0.0.59 for @copilotkit/runtime 1.75.0). */
type RunnerEvent = ReturnType<AgentRunner["run"]> extends Observable<infer E> ? E : never;
/** The message type of the runtime's @ag-ui/client. */
type RunnerMessage = AgentRunnerRunRequest["input"]["messages"][number];

/** Which gateway agent runs a request: its name, or a function of the run request. */
export type GatewayAgentSelector = string | ((request: AgentRunnerRunRequest) => string | Promise<string>);

export interface GatewayAgentRunnerConfig {
  /** The gateway's base URL (`http://host:8000`, or the prefix it is served under). */
  baseUrl: string;
  /** The gateway agent a run goes to (`/agents/{agent}/run`), or a function choosing it per request. */
  agent: GatewayAgentSelector;
  /**
   * The agent name used for `connect` (`/agents/{agent}/connect`). The gateway streams
   * the thread whichever agent the route names, so any configured one will do. Default:
   * `agent` when it is a name, else the first name of the gateway's `GET /agents`.
   */
  connectAgent?: string;
  /** Headers sent with every request to the gateway (e.g. `Authorization: Bearer ...`). */
  headers?: Record<string, string>;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Connection attempts in a row that may fail before a stream errors (default 8), as in GatewayAgent. */
  maxAttempts?: number;
  /** Delays between attempts, as in GatewayAgent. */
  backoff?: BackoffOptions;
  /** Called before each reconnection of a run or connect stream. */
  onReconnect?: (info: ReconnectInfo) => void;
  /**
   * Pass AG-UI 1.0's cancelled outcome (`RUN_FINISHED` with `outcome: {type: "cancelled"}`,
   * a stopped run) through as stored. Default false: the outcome is dropped, because
   * CopilotKit 1.75.0's front end (@ag-ui/client 0.0.59) rejects it and fails the whole
   * stream; a bare `RUN_FINISHED` is what CopilotKit's own runners emit for a stop.
   */
  keepCancelledOutcome?: boolean;
}

/** A thread as `listThreads()` reports it (the fields of CopilotKit's thread records it can fill). */
export interface GatewayThreadRecord {
  id: string;
  name: null;
  /** The agent of this runner when it is one name; "" when runs choose their agent. */
  agentId: string;
  organizationId: "";
  createdById: "";
  archived: false;
  /** The gateway keeps no creation time: the time of the last activity, as `updatedAt`. */
  createdAt: string;
  updatedAt: string;
  /** Whether a run is open on the thread (on any replica). */
  running: boolean;
  /** Stored events and bytes of the thread's log. */
  events: number;
  bytes: number;
}

/** Threads per `GET /threads` page (the gateway's maximum). */
const LIST_PAGE = 1000;

interface ThreadRow {
  threadId: string;
  events: number;
  bytes: number;
  lastActivity: number | null;
  running: boolean;
}

interface RunRow {
  runId: string;
  status: string;
}

/**
 * CopilotKit's `AgentRunner` over an agui-gateway: durable, resumable threads shared
 * by every runtime instance that points at the same gateway (or its replicas).
 *
 * ```ts
 * new CopilotRuntime({
 *   agents: { support: new HttpAgent({ url: "http://gateway:8000/agents/support/run" }) },
 *   runner: new GatewayAgentRunner({ baseUrl: "http://gateway:8000", agent: "support" }),
 * });
 * ```
 *
 * The runtime's agent object is not run: the gateway runs its agent (the request's
 * `agent` is passed to a selector function, which may use `agent.agentId`).
 * The thread-listing methods (`listThreads`, `getThreadMessages`, `getThreadEvents`,
 * `getThreadState`) return promises: the runtime 1.75.0 calls its local thread
 * endpoints' methods synchronously, so this runner does not claim those endpoints
 * (`ɵsupportsLocalThreadEndpoints`); an application serves them itself.
 */
export class GatewayAgentRunner implements AgentRunner {
  readonly baseUrl: string;
  private readonly agent: GatewayAgentSelector;
  private readonly connectAgentName: string | undefined;
  private readonly headers: Record<string, string>;
  private readonly fetchFn: typeof fetch;
  private readonly maxAttempts: number;
  private readonly backoff: Required<BackoffOptions>;
  private readonly onReconnect: ((info: ReconnectInfo) => void) | undefined;
  private readonly keepCancelledOutcome: boolean;
  private anyAgent: Promise<string> | undefined;

  constructor(config: GatewayAgentRunnerConfig) {
    if (typeof config.baseUrl !== "string" || config.baseUrl === "") {
      throw new TypeError("GatewayAgentRunner: baseUrl is required");
    }
    if (typeof config.agent !== "function" && (typeof config.agent !== "string" || config.agent === "")) {
      throw new TypeError("GatewayAgentRunner: agent must be a gateway agent name or a function returning one");
    }
    const maxAttempts = config.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new TypeError("GatewayAgentRunner: maxAttempts must be an integer >= 1");
    }
    this.baseUrl = config.baseUrl.replace(/\/+$/, "");
    this.agent = config.agent;
    this.connectAgentName = config.connectAgent ?? (typeof config.agent === "string" ? config.agent : undefined);
    this.headers = { ...config.headers };
    const fetchFn = config.fetch;
    // Looked up at call time (not bound at construction), as HttpAgent does.
    this.fetchFn = fetchFn ?? ((input, init) => fetch(input, init));
    this.maxAttempts = maxAttempts;
    this.backoff = resolveBackoff(config.backoff);
    this.onReconnect = config.onReconnect;
    this.keepCancelledOutcome = config.keepCancelledOutcome ?? false;
  }

  /**
   * Posts the request's input to the gateway (`POST /agents/{agent}/run`) and emits
   * the run's events as the gateway serves them, to the run's end. A cut connection
   * resumes from the thread's log by event id. Unsubscribing leaves the run going
   * (the gateway runs it to its end; `stop` ends it).
   */
  run(request: AgentRunnerRunRequest): Observable<RunnerEvent> {
    return defer(() => from(this.runAgentName(request))).pipe(
      switchMap((name) => {
        const input = request.input;
        return this.stream("run", input, `${this.agentPath(name)}/run`, name);
      }),
    );
  }

  /**
   * The thread's compacted history, then the run in progress (if any) to its end
   * (`POST /agents/{agent}/connect`): the same from every runner instance. Resumes
   * by event id across cut connections; completes at once on an idle thread.
   */
  connect(request: AgentRunnerConnectRequest): Observable<RunnerEvent> {
    return defer(() => from(this.connectAgent())).pipe(
      switchMap((name) => {
        // The route takes a RunAgentInput; only its threadId matters to a connect.
        const input = {
          threadId: request.threadId,
          runId: `connect-${randomId()}`,
          messages: [],
          tools: [],
          context: [],
          state: {},
          forwardedProps: {},
        } as unknown as AgentRunnerRunRequest["input"];
        return this.stream("connect", input, `${this.agentPath(name)}/connect`, name);
      }),
    );
  }

  /** Whether a run is open on the thread, on any gateway replica (the thread's `/runs`). */
  async isRunning(request: AgentRunnerIsRunningRequest): Promise<boolean> {
    return (await this.openRun(request.threadId)) !== undefined;
  }

  /**
   * Stops the thread's open run (`POST /threads/{t}/stop`); with `runId`, only when
   * that run is the open one. Resolves once the gateway has stored the run's end:
   * true when it stopped a run, false when there was none to stop (or another run
   * is open).
   */
  async stop(request: AgentRunnerStopRequest): Promise<boolean> {
    const open = await this.openRun(request.threadId);
    if (open === undefined) return false;
    if (request.runId !== undefined && open.runId !== request.runId) return false;
    // `runId` names the run meant. A gateway that checks it refuses (409) to stop a run
    // that opened since the look-up above; today's ignores it and stops the open run, so
    // a run that ends and another that starts in between could be stopped instead.
    const url = `${this.threadPath(request.threadId)}/stop?runId=${encodeURIComponent(open.runId)}`;
    const response = await this.fetchFn(url, { method: "POST", headers: this.requestHeaders("application/json") });
    if (response.status === 409) {
      await response.body?.cancel();
      return false; // the run ended (or is still starting) meanwhile
    }
    if (!response.ok) throw await httpError(response);
    const body = (await response.json()) as { stopped?: unknown; runId?: unknown };
    return body.stopped === true && body.runId === open.runId;
  }

  /** The gateway's threads, newest activity first (`GET /threads`, page by page). */
  async listThreads(): Promise<GatewayThreadRecord[]> {
    const agentId = typeof this.agent === "string" ? this.agent : "";
    const records: GatewayThreadRecord[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `limit=${LIST_PAGE}${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
      const page = (await this.getJson(`${this.baseUrl}/threads?${query}`)) as { threads: ThreadRow[]; next: string | null };
      for (const row of page.threads) {
        const at = new Date(row.lastActivity ?? 0).toISOString();
        records.push({
          id: row.threadId,
          name: null,
          agentId,
          organizationId: "",
          createdById: "",
          archived: false,
          createdAt: at,
          updatedAt: at,
          running: row.running,
          events: row.events,
          bytes: row.bytes,
        });
      }
      cursor = page.next;
    } while (cursor !== null);
    return records;
  }

  /** The thread's messages as the official client holds them after its log (`/snapshot`). */
  async getThreadMessages(threadId: string): Promise<RunnerMessage[]> {
    const snapshot = (await this.getJson(`${this.threadPath(threadId)}/snapshot`)) as { messages?: RunnerMessage[] };
    return snapshot.messages ?? [];
  }

  /** The thread's state after its log (`/snapshot`); null when it has none. */
  async getThreadState(threadId: string): Promise<Record<string, unknown> | null> {
    const snapshot = (await this.getJson(`${this.threadPath(threadId)}/snapshot`)) as { state?: unknown };
    const state = snapshot.state;
    return state !== null && typeof state === "object" && !Array.isArray(state)
      ? (state as Record<string, unknown>)
      : null;
  }

  /** The thread's events, compacted as a fresh replay is (`/log.jsonl?compact=1`). */
  async getThreadEvents(threadId: string): Promise<RunnerEvent[]> {
    const response = await this.get(`${this.threadPath(threadId)}/log.jsonl?compact=1`, "application/x-ndjson");
    const text = await response.text();
    return text
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as RunnerEvent);
  }

  // -- plumbing -----------------------------------------------------------------------

  private stream(mode: StreamMode, input: AgentRunnerRunRequest["input"], url: string, agent: string): Observable<RunnerEvent> {
    const events = resumableStream({
      mode,
      // The runtime's @ag-ui/client (0.0.59) and the 1.0.0 types the stream is written
      // against describe the same JSON; the stream only reads threadId and runId.
      input: input as unknown as ClientInput,
      fetch: this.fetchFn,
      url,
      init: { method: "POST", headers: this.requestHeaders("text/event-stream", true), body: JSON.stringify(input) },
      routes: { base: this.baseUrl, connect: `${this.agentPath(agent)}/connect` },
      maxAttempts: this.maxAttempts,
      backoff: this.backoff,
      // Never aborted: unsubscribing (the runtime's client went away) tears the stream down.
      signal: new AbortController().signal,
      onReconnect: this.onReconnect,
    });
    const served = events as Observable<ClientEvent> as unknown as Observable<RunnerEvent>;
    return this.keepCancelledOutcome ? served : served.pipe(map(forClient0059));
  }

  private async runAgentName(request: AgentRunnerRunRequest): Promise<string> {
    const name = typeof this.agent === "string" ? this.agent : await this.agent(request);
    if (typeof name !== "string" || name === "") {
      throw new TypeError("GatewayAgentRunner: the agent selector returned no agent name");
    }
    return name;
  }

  private connectAgent(): Promise<string> {
    if (this.connectAgentName !== undefined) return Promise.resolve(this.connectAgentName);
    this.anyAgent ??= this.getJson(`${this.baseUrl}/agents`).then((body) => {
      const names = (body as { agents?: unknown }).agents;
      const first = Array.isArray(names) ? names.find((name) => typeof name === "string") : undefined;
      if (first === undefined) throw new Error("GatewayAgentRunner: the gateway has no agents (GET /agents)");
      return first as string;
    });
    this.anyAgent.catch(() => {
      this.anyAgent = undefined; // asked again next time
    });
    return this.anyAgent;
  }

  /** The open run of a thread as its log shows it (`/runs`: the last run, when running). */
  private async openRun(threadId: string): Promise<RunRow | undefined> {
    const body = (await this.getJson(`${this.threadPath(threadId)}/runs`)) as { runs?: RunRow[] };
    const runs = body.runs ?? [];
    const last = runs[runs.length - 1];
    return last !== undefined && last.status === "running" ? last : undefined;
  }

  private agentPath(name: string): string {
    return `${this.baseUrl}/agents/${encodeURIComponent(name)}`;
  }

  private threadPath(threadId: string): string {
    return `${this.baseUrl}/threads/${encodeURIComponent(threadId)}`;
  }

  private requestHeaders(accept: string, json = false): Record<string, string> {
    return { ...this.headers, Accept: accept, ...(json ? { "Content-Type": "application/json" } : {}) };
  }

  private async get(url: string, accept: string): Promise<Response> {
    const response = await this.fetchFn(url, { method: "GET", headers: this.requestHeaders(accept) });
    if (!response.ok) throw await httpError(response);
    return response;
  }

  private async getJson(url: string): Promise<unknown> {
    return (await this.get(url, "application/json")).json();
  }
}

/**
 * A run's end as CopilotKit 1.75.0 can take it. Its runtime and front end bundle
 * @ag-ui/client 0.0.59, whose event schema knows only the success outcome `{type}` and
 * the interrupt outcome `{type, interrupts}`, both strict: the front end's HTTP
 * transport rejects any other outcome, or any other field of one (1.0.0's
 * `pendingToolCallIds` of a success), and fails the run (or the connect) it is in. A
 * stop's `outcome: {type: "cancelled"}` is dropped: without it the RUN_FINISHED is the
 * bare one CopilotKit's own runners emit on a stop.
 */
function forClient0059(event: RunnerEvent): RunnerEvent {
  const record = event as RunnerEvent & { outcome?: { type?: unknown; interrupts?: unknown } };
  if (record.type !== "RUN_FINISHED" || record.outcome === undefined) return event;
  const { outcome, ...rest } = record;
  if (outcome.type === "success") return { ...rest, outcome: { type: "success" } } as RunnerEvent;
  if (outcome.type === "interrupt") {
    return { ...rest, outcome: { type: "interrupt", interrupts: outcome.interrupts } } as RunnerEvent;
  }
  return rest as RunnerEvent; // cancelled, or an outcome 0.0.59 cannot know
}

function randomId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
