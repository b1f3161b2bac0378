// GatewayAgentRunner's AgentRunner contract, driven directly (as the CopilotKit runtime
// calls it) against two real gateway replicas on one Redis and the suite's scripted agent.
//
// The truth: the thread's stored log, served as the gateway serves it (the run stream
// must be exactly that, once each, in order) and replayed through the official client
// (@ag-ui/client 1.0.0), which every connect's events must end equal to.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { GatewayAgentRunner } from "../../dist/copilotkit.js";
import { CutProxy } from "../helpers/proxy.mjs";
import { replayRecords } from "../helpers/truth.mjs";
import {
  AGENT,
  GATEWAY_A,
  GATEWAY_B,
  collect,
  release,
  runsOf,
  scriptRun,
  servedLog,
  uniqueThread,
  waitFor,
} from "./helpers/setup.mjs";

const proxies = [];
after(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

function runRequest(threadId, runId, text = "hello") {
  return {
    threadId,
    agent: { agentId: "copilot" },
    input: {
      threadId,
      runId,
      messages: [{ id: `${runId}-u`, role: "user", content: text }],
      state: {},
      tools: [],
      context: [],
      forwardedProps: {},
    },
  };
}

/** What the official client holds after `events` (bare events, as a stream carries them). */
async function officialEnd(events, threadId) {
  const { messages, state } = await replayRecords(
    events.map((event) => ({ event })),
    { threadId },
  );
  return { messages, state };
}

describe("GatewayAgentRunner against two gateway replicas", () => {
  test("run emits the stored run; a runner on the other replica connects mid-run and after; isRunning follows", async () => {
    const threadId = uniqueThread("contract");
    const runId = `${threadId}-r1`;
    const total = await scriptRun(threadId, runId, { holdAt: 8 });
    // A selector function on A, a plain name on B: both name the gateway's agent.
    const onA = new GatewayAgentRunner({ baseUrl: GATEWAY_A, agent: (request) => (request.agent.agentId ? AGENT : "") });
    const onB = new GatewayAgentRunner({ baseUrl: GATEWAY_B, agent: AGENT });

    assert.equal(await onB.isRunning({ threadId }), false);
    const run = collect(onA.run(runRequest(threadId, runId)));
    await waitFor(() => run.events.length >= 8, "the run's first 8 events");
    assert.equal(await onB.isRunning({ threadId }), true, "B sees A's run open");

    const midRun = collect(onB.connect({ threadId }));
    await waitFor(() => midRun.events.length > 0, "the mid-run connect's history");
    assert.equal(await onA.isRunning({ threadId }), true, "the agent is still held");
    await release(runId);
    const runEvents = await run.done;
    const midRunEvents = await midRun.done;
    assert.equal(await onA.isRunning({ threadId }), false);
    assert.equal(await onB.isRunning({ threadId }), false);
    const laterEvents = await collect(new GatewayAgentRunner({ baseUrl: GATEWAY_B, agent: AGENT }).connect({ threadId }))
      .done;

    const log = await servedLog(GATEWAY_A, threadId);
    assert.equal(log.length, total, "the log holds the agent's run");
    assert.deepEqual(runEvents, log, "run() emits exactly the stored run");
    const truth = await officialEnd(log, threadId);
    assert.deepEqual(
      truth.messages.map((m) => m.id),
      [`${runId}-u`, `${runId}-m1`, `${runId}-r1`, `${runId}-r0`, `${runId}-m2`],
    );
    for (const [label, events] of [
      ["connect mid-run", midRunEvents],
      ["connect after the run", laterEvents],
    ]) {
      const end = await officialEnd(events, threadId);
      assert.deepEqual(end.messages, truth.messages, `${label}: messages`);
      assert.deepEqual(end.state, truth.state, `${label}: state`);
    }
    assert.ok(laterEvents.length < log.length, "a connect after the run gets the compacted history");
  });

  test("stop with the request's runId stops that run only, from another replica", async () => {
    const threadId = uniqueThread("stop");
    const runId = `${threadId}-r1`;
    await scriptRun(threadId, runId, { holdAt: 5 });
    const onA = new GatewayAgentRunner({ baseUrl: GATEWAY_A, agent: AGENT });
    const onB = new GatewayAgentRunner({ baseUrl: GATEWAY_B, agent: AGENT });
    const run = collect(onA.run(runRequest(threadId, runId)));
    try {
      await waitFor(() => run.events.length >= 5, "the run's first 5 events");

      assert.equal(await onB.stop({ threadId, runId: `${threadId}-another` }), false, "another run id stops nothing");
      assert.equal(await onB.isRunning({ threadId }), true, "the run goes on");
      assert.equal(await onB.stop({ threadId, runId }), true, "its own run id stops it");
      // stop() resolves once the gateway stored the run's end: the thread is idle now.
      assert.equal(await onA.isRunning({ threadId }), false);
      assert.equal(await onB.stop({ threadId }), false, "nothing left to stop");

      const events = await run.done;
      const log = await servedLog(GATEWAY_A, threadId);
      // The gateway stores a stop as AG-UI 1.0's cancelled outcome (what the run left open
      // closed first); the runner hands CopilotKit that end as a bare RUN_FINISHED.
      const { outcome, ...bare } = log.at(-1);
      assert.deepEqual(log.at(-1), { type: "RUN_FINISHED", threadId, runId, outcome: { type: "cancelled" } });
      assert.equal(outcome.type, "cancelled");
      assert.deepEqual(events, [...log.slice(0, -1), bare], "the run stream ends with the stored end of the run");
      const runs = await runsOf(GATEWAY_B, threadId);
      assert.deepEqual(
        runs.map((r) => [r.runId, r.status]),
        [[runId, "cancelled"]],
      );
    } finally {
      await release(runId); // the scripted agent's answer ends (the gateway has left it)
    }
  });

  test("a run's cancelled outcome reaches CopilotKit as a bare RUN_FINISHED (kept on request)", async () => {
    const threadId = uniqueThread("cancelled");
    const runId = `${threadId}-r1`;
    await scriptRun(threadId, runId, { outcome: { type: "cancelled" } });
    const events = await collect(new GatewayAgentRunner({ baseUrl: GATEWAY_A, agent: AGENT }).run(runRequest(threadId, runId)))
      .done;
    const log = await servedLog(GATEWAY_A, threadId);
    assert.deepEqual(log.at(-1).outcome, { type: "cancelled" }, "stored as the agent sent it");
    const { outcome: _dropped, ...bare } = log.at(-1);
    assert.deepEqual(events, [...log.slice(0, -1), bare]);
    const kept = await collect(
      new GatewayAgentRunner({ baseUrl: GATEWAY_B, agent: AGENT, keepCancelledOutcome: true }).connect({ threadId }),
    ).done;
    assert.deepEqual(kept.at(-1).outcome, { type: "cancelled" });
  });

  test("a success outcome reaches CopilotKit in the strict form its 0.0.59 schema accepts", async () => {
    // @ag-ui/client 0.0.59's outcome schemas are strict: 1.0.0's pendingToolCallIds on a
    // success fails the front end's run; the gateway stores and serves the outcome as sent.
    const threadId = uniqueThread("success");
    const runId = `${threadId}-r1`;
    await scriptRun(threadId, runId, { outcome: { type: "success", pendingToolCallIds: [] } });
    const events = await collect(new GatewayAgentRunner({ baseUrl: GATEWAY_A, agent: AGENT }).run(runRequest(threadId, runId)))
      .done;
    const log = await servedLog(GATEWAY_A, threadId);
    assert.deepEqual(log.at(-1).outcome, { type: "success", pendingToolCallIds: [] }, "stored as the agent sent it");
    assert.deepEqual(events, [...log.slice(0, -1), { ...log.at(-1), outcome: { type: "success" } }]);
  });

  test("connections cut inside run and connect resume by event id", async () => {
    const threadId = uniqueThread("cut");
    const runId = `${threadId}-r1`;
    await scriptRun(threadId, runId, { textDeltas: 30 });
    const port = Number(new URL(GATEWAY_A).port);
    const backoff = { initialDelayMs: 5, maxDelayMs: 50 };
    // The run's POST cut inside its fourth text delta, the resumed tail cut again.
    const runProxy = new CutProxy(port, [
      { at: '"TEXT_MESSAGE_CONTENT"', offset: 10, occurrence: 4 },
      { at: '"TEXT_MESSAGE_CONTENT"', offset: 3, occurrence: 6 },
    ]);
    proxies.push(runProxy);
    await runProxy.listen();
    const reconnects = [];
    const runner = new GatewayAgentRunner({
      baseUrl: runProxy.url(),
      agent: AGENT,
      backoff,
      onReconnect: (info) => reconnects.push(info),
    });
    const events = await collect(runner.run(runRequest(threadId, runId))).done;
    assert.ok(runProxy.cuts.length >= 2, "the run's connections were cut");
    assert.ok(reconnects.length >= 2 && reconnects.every((info) => info.mode === "run"));
    const log = await servedLog(GATEWAY_A, threadId);
    assert.deepEqual(events, log, "every stored event once, in order, across the cuts");

    // A connect cut inside the compacted replay starts over from its last id.
    const connectProxy = new CutProxy(port, [{ at: '"MESSAGES_SNAPSHOT"', offset: 20 }]);
    proxies.push(connectProxy);
    await connectProxy.listen();
    const connected = await collect(
      new GatewayAgentRunner({ baseUrl: connectProxy.url(), agent: AGENT, backoff }).connect({ threadId }),
    ).done;
    assert.equal(connectProxy.cuts.length, 1, "the connect was cut");
    assert.deepEqual(await officialEnd(connected, threadId), await officialEnd(log, threadId));
  });

  test("the thread-listing methods read the gateway's threads, snapshot and compacted log", async () => {
    const threadId = uniqueThread("listing");
    const runId = `${threadId}-r1`;
    await scriptRun(threadId, runId);
    const runner = new GatewayAgentRunner({ baseUrl: GATEWAY_B, agent: AGENT });
    await collect(runner.run(runRequest(threadId, runId))).done;

    const threads = await runner.listThreads();
    const row = threads.find((thread) => thread.id === threadId);
    assert.ok(row, "the thread is listed");
    assert.equal(row.running, false);
    assert.equal(row.agentId, AGENT);
    const log = await servedLog(GATEWAY_A, threadId);
    assert.equal(row.events, log.length);

    const truth = await officialEnd(log, threadId);
    assert.deepEqual(await runner.getThreadMessages(threadId), truth.messages);
    assert.deepEqual(await runner.getThreadState(threadId), truth.state);
    const compacted = await runner.getThreadEvents(threadId);
    assert.equal(compacted[0].type, "RUN_STARTED");
    assert.deepEqual(await officialEnd(compacted, threadId), truth);
  });
});
