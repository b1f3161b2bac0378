#!/usr/bin/env node
// GatewayAgentRunner against CopilotKit's own InMemoryAgentRunner, side by side in one
// process (driven by bench/copilotkit_bench.py, which starts the gateway and stores the
// thread; see there for the figures it prints).
//
//   node bench/copilotkit.mjs --gateway URL --gateway-agent NAME --agent-port P
//        --log THREAD.jsonl --thread ID [--connects 3] [--ticks 300] [--interval-ms 5] [--trials 3]
//
// 1. Connect to a finished thread: a CopilotKit runtime whose runner is GatewayAgentRunner
//    (the thread stored in the gateway), and one whose runner is the InMemoryAgentRunner
//    holding the same runs (fed in-process, one runner.run per stored run). A client
//    POSTs {runtime}/agent/{agent}/connect as CopilotKit's front end does and reads the
//    whole answer: bytes, events, time to the last event.
// 2. Per-event latency of a run: a paced agent on --agent-port (in this process) sends
//    CUSTOM "tick" events carrying their send time; through the gateway and the runner,
//    and straight into the in-memory runner; the client reads the runtime's run stream
//    and notes each tick's delay (one clock: every party is in this process, bar the
//    gateway).
// Prints one JSON object on stdout.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { AbstractAgent, HttpAgent } from "@ag-ui/client-0059";
import { CopilotRuntime, InMemoryAgentRunner } from "@copilotkit/runtime/v2";
import { createCopilotNodeListener } from "@copilotkit/runtime/v2/node";
import { from, lastValueFrom } from "rxjs";
import { GatewayAgentRunner } from "../dist/copilotkit.js";
import { SseFrameParser } from "../dist/sse.js";

const options = {
  gateway: "",
  gatewayAgent: "paced",
  agentPort: 0,
  log: "",
  thread: "",
  connects: 3,
  ticks: 300,
  intervalMs: 5,
  trials: 3,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(key in options)) throw new Error(`unknown option ${argv[i]}`);
  options[key] = typeof options[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
}
for (const key of ["gateway", "log", "thread"]) if (!options[key]) throw new Error(`--${key} is required`);

const BASE_PATH = "/api/copilotkit";
// The JSON Patch library the client itself applies deltas with.
const { applyPatch, deepClone } = createRequire(import.meta.resolve("@ag-ui/client-0059"))("fast-json-patch");

function serve(listener, port = 0) {
  const server = createServer(listener);
  return new Promise((resolve) => {
    server.listen(port, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

// -- the paced agent -----------------------------------------------------------------

function pacedAgentListener(request, response) {
  let body = "";
  request.on("data", (chunk) => (body += chunk));
  request.on("end", async () => {
    const input = JSON.parse(body);
    const { threadId, runId } = input;
    response.writeHead(200, { "content-type": "text/event-stream" });
    const send = (event) => response.write(`data: ${JSON.stringify(event)}\n\n`);
    send({ type: "RUN_STARTED", threadId, runId });
    for (let i = 0; i < options.ticks; i++) {
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
      send({ type: "CUSTOM", name: "tick", value: { i, sentAt: performance.now() } });
    }
    send({ type: "RUN_FINISHED", threadId, runId });
    response.end();
  });
}

// -- the in-memory runtime's replay agent ----------------------------------------------

/** Emits the stored events of the run named by the input's runId. */
class ReplayAgent extends AbstractAgent {
  constructor(runs) {
    super();
    this.runs = runs;
  }
  run(input) {
    return from(this.runs.get(input.runId) ?? []);
  }
  clone() {
    const copy = super.clone();
    copy.runs = this.runs;
    return copy;
  }
}

function readRuns(path) {
  const runs = new Map();
  const order = [];
  let current = null;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    const parsed = JSON.parse(line);
    const event = parsed.event ?? parsed;
    if (event.type === "RUN_STARTED") {
      current = event.runId;
      if (!runs.has(current)) {
        runs.set(current, []);
        order.push(current);
      }
    }
    runs.get(current).push(event);
  }
  return { runs, order };
}

/**
 * The runs as the in-memory runner can hold them. It compacts each run alone when the
 * run ends (compactEvents), from an empty state, and a STATE_DELTA against the state
 * earlier runs left, or one whose test fails (the client skips such a patch with a
 * warning), throws there and brings the process down. So each run starts with a
 * STATE_SNAPSHOT of the state it starts from and keeps the deltas that apply: the
 * client ends in the same state. Its agent client (0.0.59) also refuses any outcome field
 * but `type` (and an interrupt's `interrupts`): outcomes are fed in that form, as the
 * gateway runner hands them to CopilotKit.
 */
function withStrictOutcome(event) {
  const { outcome, ...rest } = event;
  if (outcome.type === "success") return { ...rest, outcome: { type: "success" } };
  if (outcome.type === "interrupt") return { ...rest, outcome: { type: "interrupt", interrupts: outcome.interrupts } };
  return rest;
}

function forInMemory(runs, order) {
  let state = {};
  const fed = new Map();
  for (const runId of order) {
    const events = [];
    for (const event of runs.get(runId)) {
      if (event.type === "STATE_SNAPSHOT") {
        state = deepClone(event.snapshot);
      } else if (event.type === "STATE_DELTA") {
        try {
          state = applyPatch(deepClone(state), event.delta, true, false).newDocument;
        } catch {
          continue;
        }
      }
      events.push(event.type === "RUN_FINISHED" && event.outcome ? withStrictOutcome(event) : event);
      if (event.type === "RUN_STARTED") events.push({ type: "STATE_SNAPSHOT", snapshot: deepClone(state) });
    }
    fed.set(runId, events);
  }
  return fed;
}

// -- a CopilotKit front end's requests, read raw ---------------------------------------

function runInput(threadId, runId) {
  return { threadId, runId, messages: [], state: {}, tools: [], context: [], forwardedProps: {} };
}

/** POSTs a run or connect to a runtime; reads the SSE answer to its end. */
async function readStream(url, input, onEvent = () => {}) {
  const started = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(input),
  });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${await response.text()}`);
  const parser = new SseFrameParser();
  let bytes = 0;
  let events = 0;
  let lastEventAt = started;
  const types = new Map();
  for await (const chunk of response.body) {
    bytes += chunk.length;
    for (const frame of parser.push(chunk)) {
      if (frame.data === undefined) continue;
      const event = JSON.parse(frame.data);
      events++;
      lastEventAt = performance.now();
      types.set(event.type, (types.get(event.type) ?? 0) + 1);
      onEvent(event, lastEventAt);
    }
  }
  return { bytes, events, ms: lastEventAt - started, types: Object.fromEntries(types) };
}

function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function median(values) {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

/** What @ag-ui/client 0.0.59 (CopilotKit's front end) holds after a connect stream. */
async function messagesAfter(url, threadId) {
  const agent = new HttpAgent({ url, threadId });
  await agent.runAgent();
  return agent.messages.length;
}

async function main() {
  const { runs, order } = readRuns(options.log);
  const agentServer = await serve(pacedAgentListener, options.agentPort);

  const gatewayRuntime = new CopilotRuntime({
    agents: { [options.gatewayAgent]: new HttpAgent({ url: `${options.gateway}/agents/${options.gatewayAgent}/run` }) },
    runner: new GatewayAgentRunner({ baseUrl: options.gateway, agent: options.gatewayAgent }),
  });
  // Unbounded, so that it holds every run of the thread (its default keeps 100 per thread).
  const memoryRunner = new InMemoryAgentRunner({ maxRunsPerThread: Infinity, maxBytes: Infinity });
  const replay = new ReplayAgent(forInMemory(runs, order));
  const memoryRuntime = new CopilotRuntime({
    agents: {
      replay,
      [options.gatewayAgent]: new HttpAgent({ url: `${agentServer.url}/` }),
    },
    runner: memoryRunner,
  });
  const gatewayServer = await serve(createCopilotNodeListener({ runtime: gatewayRuntime, basePath: BASE_PATH, activateChannels: false }));
  const memoryServer = await serve(createCopilotNodeListener({ runtime: memoryRuntime, basePath: BASE_PATH, activateChannels: false }));

  // The in-memory runner takes the stored runs, one run() each, as the runtime would.
  const loadStarted = performance.now();
  for (const runId of order) {
    const agent = replay.clone();
    await lastValueFrom(memoryRunner.run({ threadId: options.thread, agent, input: runInput(options.thread, runId) }), {
      defaultValue: undefined,
    });
  }
  const loadMs = performance.now() - loadStarted;

  // 1. Connects to the finished thread, alternating.
  const connect = { runner: [], memory: [] };
  const gatewayConnect = `${gatewayServer.url}${BASE_PATH}/agent/${options.gatewayAgent}/connect`;
  const memoryConnect = `${memoryServer.url}${BASE_PATH}/agent/replay/connect`;
  for (let i = 0; i < options.connects; i++) {
    connect.runner.push(await readStream(gatewayConnect, runInput(options.thread, `connect-g${i}`)));
    connect.memory.push(await readStream(memoryConnect, runInput(options.thread, `connect-m${i}`)));
  }
  const messages = {
    runner: await messagesAfter(gatewayConnect, options.thread),
    memory: await messagesAfter(memoryConnect, options.thread),
  };

  // 2. Per-event latency of a run, alternating trials on fresh threads.
  const latency = { runner: [], memory: [] };
  const runUrls = {
    runner: `${gatewayServer.url}${BASE_PATH}/agent/${options.gatewayAgent}/run`,
    memory: `${memoryServer.url}${BASE_PATH}/agent/${options.gatewayAgent}/run`,
  };
  for (let trial = 0; trial < options.trials; trial++) {
    for (const side of ["runner", "memory"]) {
      const threadId = `latency-${side}-${trial}-${Date.now()}`;
      await readStream(runUrls[side], runInput(threadId, `${threadId}-r`), (event, at) => {
        if (event.type === "CUSTOM" && event.name === "tick") latency[side].push(at - event.value.sentAt);
      });
    }
  }

  const summary = (samples) => {
    const sorted = [...samples].sort((a, b) => a - b);
    return {
      samples: sorted.length,
      medianMs: percentile(sorted, 0.5),
      p95Ms: percentile(sorted, 0.95),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted.at(-1),
    };
  };
  const connectSummary = (list) => ({
    bytes: list[0].bytes,
    events: list[0].events,
    types: list[0].types,
    medianMs: median(list.map((r) => r.ms)),
    allMs: list.map((r) => r.ms),
  });
  process.stdout.write(
    `${JSON.stringify({
      runs: order.length,
      storedEvents: [...runs.values()].reduce((n, events) => n + events.length, 0),
      memoryLoadMs: loadMs,
      connect: { runner: connectSummary(connect.runner), memory: connectSummary(connect.memory) },
      messages,
      latency: { runner: summary(latency.runner), memory: summary(latency.memory) },
      ticksPerRun: options.ticks,
      intervalMs: options.intervalMs,
    })}\n`,
  );
  for (const server of [agentServer, gatewayServer, memoryServer]) server.server.closeAllConnections?.();
  await Promise.all([agentServer, gatewayServer, memoryServer].map(({ server }) => new Promise((r) => server.close(r))));
}

await main();
