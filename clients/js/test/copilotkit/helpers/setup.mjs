// What the CopilotKit tests are given by their pytest driver (tests/clients/test_copilotkit_runner.py):
// two gateway replicas on one Redis (AGUI_GATEWAY_A, AGUI_GATEWAY_B) whose agent AGUI_GATEWAY_AGENT
// is the suite's scripted agent, scripted and released through AGUI_AGENT_CONTROL
// (tests/support/agent_control.py). And the helpers they share.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { readLog, servedEvent } from "../../helpers/truth.mjs";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: these tests run from pytest (tests/clients/test_copilotkit_runner.py), ` +
        "which starts the gateway replicas and the scripted agent",
    );
  }
  return value;
}

export const GATEWAY_A = required("AGUI_GATEWAY_A");
export const GATEWAY_B = required("AGUI_GATEWAY_B");
export const AGENT = required("AGUI_GATEWAY_AGENT");
const CONTROL = required("AGUI_AGENT_CONTROL");

async function control(path, body) {
  const response = await fetch(`${CONTROL}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`agent control ${path}: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

/**
 * The scripted agent answers `runId` with a full run on `threadId`, held after `holdAt`
 * events, its RUN_FINISHED carrying `outcome` when given; resolves to the run's length.
 */
export async function scriptRun(threadId, runId, { holdAt, textDeltas, outcome } = {}) {
  return (await control("/script", { threadId, runId, holdAt, textDeltas, outcome })).events;
}

/** The held run goes on to its end. */
export function release(runId) {
  return control("/release", { runId });
}

/** Waits until `predicate()` (sync or async) is truthy, polling; fails after `timeoutMs`. */
export async function waitFor(predicate, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Subscribes to an observable of events: what it emitted so far, and its end. */
export function collect(observable) {
  const events = [];
  let subscription;
  const done = new Promise((resolve, reject) => {
    subscription = observable.subscribe({
      next: (event) => events.push(event),
      error: reject,
      complete: () => resolve(events),
    });
  });
  return { events, done, unsubscribe: () => subscription.unsubscribe() };
}

/** The thread's stored events as the gateway serves them (annotations merged), in log order. */
export async function servedLog(base, threadId, after = 0) {
  return (await readLog(base, threadId, after)).map(servedEvent);
}

/** The thread's runs as the gateway's log shows them (`GET /threads/{t}/runs`). */
export async function runsOf(base, threadId) {
  const response = await fetch(`${base}/threads/${encodeURIComponent(threadId)}/runs`);
  if (!response.ok) throw new Error(`/runs: HTTP ${response.status}`);
  return (await response.json()).runs;
}

let counter = 0;
/** A thread id of this test process's own. */
export function uniqueThread(label) {
  counter += 1;
  return `ck-${label}-${process.pid}-${counter}`;
}

const RUNTIME_SERVER = join(dirname(fileURLToPath(import.meta.url)), "runtime-server.mjs");

/** A CopilotKit runtime process (runtime-server.mjs) on `gateway`; resolves once it listens. */
export async function startRuntime(gateway, ...flags) {
  const child = spawn(process.execPath, [RUNTIME_SERVER, gateway, AGENT, ...flags], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, COPILOTKIT_TELEMETRY_DISABLED: "true", DO_NOT_TRACK: "1" },
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  const exited = once(child, "exit");
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    once(lines, "line").then(([line]) => line),
    exited.then(([code]) => {
      throw new Error(`the runtime exited (${code}) before listening:\n${stderr}`);
    }),
  ]);
  const { url } = JSON.parse(first);
  return {
    url,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
