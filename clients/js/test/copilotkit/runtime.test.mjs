// CopilotKit runtimes (@copilotkit/runtime 1.75.0) served over HTTP with GatewayAgentRunner,
// one process per gateway replica (the replicas share Redis), reached by an unmodified
// HttpAgent of @ag-ui/client 0.0.59 (what CopilotKit 1.75.0's front end bundles) the way
// CopilotKit's front end reaches a runtime: POST {runtime}/agent/{agent}/run for a run,
// POST .../connect for a connect, POST .../stop/{thread} with {runId} for a stop.
//
// The truth: the thread's stored log, as the gateway serves it, replayed through the same
// client (0.0.59) with nothing between: every front end must end holding what it holds.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AbstractAgent, HttpAgent } from "@ag-ui/client-0059";
import { from } from "rxjs";
import {
  AGENT,
  GATEWAY_A,
  GATEWAY_B,
  release,
  runsOf,
  scriptRun,
  servedLog,
  startRuntime,
  uniqueThread,
  waitFor,
} from "./helpers/setup.mjs";

let first; // on replica A
let second; // on replica B
const runtimes = [];

before(async () => {
  [first, second] = await Promise.all([startRuntime(GATEWAY_A), startRuntime(GATEWAY_B)]);
  runtimes.push(first, second);
});

after(async () => {
  await Promise.all(runtimes.map((runtime) => runtime.stop()));
});

/** A front end's agent for one route of a runtime, counting the events it applied. */
function frontEnd(runtime, route, threadId, initialMessages = []) {
  const agent = new HttpAgent({ url: `${runtime.url}/agent/${AGENT}/${route}`, threadId, initialMessages });
  agent.applied = [];
  agent.subscribe({ onEvent: ({ event }) => void agent.applied.push(event) });
  return agent;
}

class LogAgent extends AbstractAgent {
  constructor(events, threadId) {
    super({ threadId });
    this.events = events;
  }
  run() {
    return from(this.events);
  }
}

/** What @ag-ui/client 0.0.59 holds after the thread's stored log, fed to it directly. */
async function truthOf(threadId) {
  const agent = new LogAgent(await servedLog(GATEWAY_A, threadId), threadId);
  await agent.runAgent();
  return { messages: agent.messages, state: agent.state };
}

async function stopThrough(runtime, threadId, runId) {
  const response = await fetch(`${runtime.url}/agent/${AGENT}/stop/${encodeURIComponent(threadId)}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ runId }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

describe("CopilotKit runtimes on two gateway replicas", () => {
  test("a run through one runtime, a connect through the other mid-run and a reload after end with the caller's messages", async () => {
    const threadId = uniqueThread("runtime");
    const runId = `${threadId}-r1`;
    await scriptRun(threadId, runId, { holdAt: 8 });
    const caller = frontEnd(first, "run", threadId, [{ id: "u1", role: "user", content: "Hello from the caller" }]);
    const running = caller.runAgent({ runId });
    await waitFor(() => caller.applied.length >= 8, "the caller's first 8 events");

    const watcher = frontEnd(second, "connect", threadId);
    const watching = watcher.runAgent();
    await waitFor(() => watcher.applied.length > 0, "the watcher's history");
    assert.ok(caller.isRunning, "the run is held open while the watcher joins");
    await release(runId);
    await Promise.all([running, watching]);

    const truth = await truthOf(threadId);
    assert.deepEqual(caller.messages, truth.messages, "the caller holds the stored run");
    assert.equal(caller.messages[0].content, "Hello from the caller");
    assert.equal(caller.messages.length, 5);
    assert.deepEqual(watcher.messages, caller.messages, "the watcher ends with the caller's messages");
    assert.deepEqual(watcher.state, caller.state);

    // A reload after the run: a fresh front end connects through either runtime.
    for (const runtime of [second, first]) {
      const reload = frontEnd(runtime, "connect", threadId);
      await reload.runAgent();
      assert.deepEqual(reload.messages, caller.messages, "a reload shows the history");
      assert.deepEqual(reload.state, caller.state);
    }

    // A second turn through the other runtime continues the same thread.
    const secondRun = `${threadId}-r2`;
    await scriptRun(threadId, secondRun);
    const next = frontEnd(second, "run", threadId, [
      ...structuredClone(caller.messages),
      { id: "u2", role: "user", content: "And a second question" },
    ]);
    await next.runAgent({ runId: secondRun });
    assert.deepEqual(next.messages, (await truthOf(threadId)).messages);
    const reload = frontEnd(first, "connect", threadId);
    await reload.runAgent();
    assert.deepEqual(reload.messages, next.messages);
  });

  test("a stop through the other runtime stops the run, and only that run", async () => {
    const threadId = uniqueThread("runtime-stop");
    const runId = `${threadId}-r1`;
    await scriptRun(threadId, runId, { holdAt: 5 });
    const caller = frontEnd(first, "run", threadId, [{ id: "u1", role: "user", content: "Start something long" }]);
    const running = caller.runAgent({ runId });
    try {
      await waitFor(() => caller.applied.length >= 5, "the caller's first 5 events");
      assert.deepEqual(await stopThrough(second, threadId, `${threadId}-another`), {
        stopped: false,
        message: `Run '${threadId}-another' is not the active run for thread '${threadId}'.`,
      });
      assert.equal((await runsOf(GATEWAY_B, threadId)).at(-1).status, "running");

      const stopped = await stopThrough(second, threadId, runId);
      assert.equal(stopped.stopped, true);
      await running.catch(() => {}); // however the client reports the end, the run has one
      assert.equal(caller.isRunning, false);
      const log = await servedLog(GATEWAY_A, threadId);
      // Stored as AG-UI 1.0's cancelled outcome; 0.0.59's front end gets it bare from the runner.
      assert.deepEqual(log.at(-1), { type: "RUN_FINISHED", threadId, runId, outcome: { type: "cancelled" } });
      assert.equal(caller.applied.at(-1).type, "RUN_FINISHED", "the caller got the stored end of the run");
      assert.equal(caller.applied.at(-1).outcome, undefined);
      const runs = await runsOf(GATEWAY_B, threadId);
      assert.deepEqual(
        runs.map((r) => r.status),
        ["cancelled"],
      );
      assert.deepEqual(await stopThrough(first, threadId, runId), {
        stopped: false,
        message: `Run '${runId}' is not the active run for thread '${threadId}'.`,
      });
    } finally {
      await release(runId);
    }
  });

  test("a run's cancelled outcome ends the front end's run (kept as stored, 0.0.59 rejects it)", async () => {
    const keeping = await startRuntime(GATEWAY_B, "--keep-cancelled-outcome");
    runtimes.push(keeping);
    const threadId = uniqueThread("runtime-cancelled");
    const runId = `${threadId}-r1`;
    await scriptRun(threadId, runId, { outcome: { type: "cancelled" } });
    const caller = frontEnd(first, "run", threadId, [{ id: "u1", role: "user", content: "Hi" }]);
    await caller.runAgent({ runId });
    assert.equal(caller.applied.at(-1).type, "RUN_FINISHED");
    assert.deepEqual(caller.messages, (await truthOf(threadId)).messages);

    // The same stream with the outcome kept: the 0.0.59 front end fails on it.
    const reload = frontEnd(keeping, "connect", threadId);
    await assert.rejects(reload.runAgent(), /invalid_union_discriminator|Invalid discriminator/);
  });
});
