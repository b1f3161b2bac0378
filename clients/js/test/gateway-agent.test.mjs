// GatewayAgent against the real gateway (Python, demo agent) through a TCP proxy that
// cuts connections at chosen and at random (seeded) byte offsets.
//
// The truth a cut run is held to:
//   - the official HttpAgent's uncut run of the same input (same runId; the demo agent's
//     messages and state depend only on the input and the runId, not on the thread), and
//   - the raw stored log of the cut run's own thread, replayed through the official
//     pipeline: the events GatewayAgent applied must be exactly those, once each, in order.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { HttpAgent } from "@ag-ui/client";
import { GatewayAgent, ThreadRecreatedError } from "../dist/index.js";
import { freePort, startGateway } from "./helpers/gateway.mjs";
import { CutProxy } from "./helpers/proxy.mjs";
import { pool, readLog, replayRecords, rng } from "./helpers/truth.mjs";

const SEED = Number(process.env.AGUI_TEST_SEED ?? 20261126);
const CONCURRENCY = 4;
const clone = (value) => structuredClone(value);

const SCENARIOS = [
  {
    name: "weather",
    runId: "run-weather",
    initialMessages: [
      { id: "u1", role: "user", content: "What is the weather in Lima and Oslo? ¿Qué tal? 🚀" },
    ],
    initialState: {},
  },
  {
    name: "notes",
    runId: "run-notes",
    initialMessages: [
      { id: "u0", role: "user", content: "Earlier question" },
      { id: "a0", role: "assistant", content: "Earlier answer" },
      { id: "u1", role: "user", content: "Summarise the résumé notes, please — ünïcödé ✓ 世界 👩‍💻" },
    ],
    initialState: { runs: 4, keep: "me" },
  },
];

let gateway;
const truths = new Map();

before(async () => {
  gateway = await startGateway({ pace: 0.12 });
  // The uncut truth of each scenario: the official client, straight to the gateway.
  for (const scenario of SCENARIOS) {
    const official = new HttpAgent({
      url: gateway.runUrl,
      threadId: `truth-${scenario.name}`,
      initialMessages: clone(scenario.initialMessages),
      initialState: clone(scenario.initialState),
    });
    await official.runAgent({ runId: scenario.runId });
    truths.set(scenario.name, { messages: official.messages, state: official.state });
  }
});

after(async () => {
  await gateway?.stop();
});

/** Runs a scenario with GatewayAgent through a proxy following `plan`; returns what to check. */
async function cutRun(scenario, label, plan, { rest = null, noClose = false, maxAttempts = 8 } = {}) {
  const t0 = Date.now();
  const proxy = new CutProxy(gateway.port, plan, { rest });
  proxy.noClose = noClose;
  await proxy.listen();
  const threadId = `cut-${label}`;
  const agent = new GatewayAgent({
    url: proxy.url("/agents/demo/run"),
    threadId,
    initialMessages: clone(scenario.initialMessages),
    initialState: clone(scenario.initialState),
    maxAttempts,
  });
  const events = [];
  const reconnects = [];
  agent.onReconnect = (info) => reconnects.push(info);
  let error;
  try {
    await agent.runAgent({ runId: scenario.runId }, { onEvent: ({ event }) => void events.push(event) });
  } catch (caught) {
    error = caught;
  } finally {
    await proxy.close();
  }
  const records = await readLog(gateway.base, threadId);
  const replay = await replayRecords(records, {
    threadId,
    initialMessages: scenario.initialMessages,
    initialState: scenario.initialState,
    runId: scenario.runId,
  });
  if (process.env.AGUI_TEST_VERBOSE) console.log(label, Date.now() - t0, "ms", proxy.describe().join(" | "));
  return { label, scenario, agent, events, replay, proxy, reconnects, error, plan };
}

function checkRun(result) {
  const { label, scenario, agent, events, replay, proxy, error, plan } = result;
  const where = `case ${label} (plan ${JSON.stringify(plan)}; requests: ${proxy.describe().join(" | ")})`;
  assert.equal(error, undefined, `${where}: runAgent failed: ${error?.stack ?? error}`);
  const truth = truths.get(scenario.name);
  assert.deepStrictEqual(agent.messages, truth.messages, `${where}: messages differ from the uncut run`);
  assert.deepStrictEqual(agent.state, truth.state, `${where}: state differs from the uncut run`);
  assert.deepStrictEqual(events, replay.events, `${where}: applied events differ from the stored log`);
  assert.deepStrictEqual(agent.messages, replay.messages, `${where}: messages differ from the log replay`);
  assert.deepStrictEqual(agent.state, replay.state, `${where}: state differs from the log replay`);
  assert.equal(events.at(-1).type, "RUN_FINISHED", `${where}: the run did not end with RUN_FINISHED`);
}

/** A cut `extra` bytes after the end of the first occurrence of `text`. */
function justAfter(text, extra = 0) {
  return { at: text, offset: Buffer.byteLength(text) + extra };
}

/**
 * A cut `offset` bytes after the start of the `n`-th id line (`id: EPOCH:SEQ`), as if its
 * id were the bare seq: the epoch and its ':' (`EPOCH_CHARS`) are added to offsets past "id: ".
 */
const EPOCH_CHARS = 17;
function atId(n, offset) {
  return { at: "id: ", occurrence: n, offset: offset > 4 ? offset + EPOCH_CHARS : offset };
}

function finalFrameRest(scenario, threadId) {
  // Bytes from the final RUN_FINISHED's '"RUN_FINISHED"' to the end of its frame.
  return `"RUN_FINISHED","threadId":"${threadId}","runId":"${scenario.runId}"}\n\n`.length;
}

describe("runAgent through a cutting proxy", () => {
  test("ends with the messages and state of the uncut run, applying every stored event once", async (t) => {
    const random = rng(SEED);
    t.diagnostic(`seed ${SEED} (set AGUI_TEST_SEED to change)`);
    // An uncut run through the proxy tells the usual length of the POST answer.
    const calibration = await cutRun(SCENARIOS[0], "c000", []);
    checkRun(calibration);
    const length = calibration.proxy.connections[0].responseBytes;
    assert.ok(length > 3000, `the POST answer is only ${length} bytes`);

    const cases = [];
    let n = 0;
    const add = (plan, options) => {
      const scenario = SCENARIOS[n % SCENARIOS.length];
      const label = `r${String(n++).padStart(3, "0")}`; // same length: same frame offsets
      cases.push({ scenario, label, plan: typeof plan === "function" ? plan(scenario, label) : plan, options });
    };
    // Chosen places: before the answer, inside the headers, inside the first frame, a frame
    // whose data line is complete but whose blank line is not, right after the third
    // frame (the interim RUN_FINISHED of gateways before issue 7), inside the final frame,
    // after it.
    add([0]);
    add([{ at: "HTTP/1.1", offset: 5 }]);
    add([{ at: "\r\n\r\n", offset: 2 }]);
    add([{ at: "\r\n\r\n", offset: 4 }]);
    add([{ at: "retry: 1000", offset: 4 }]);
    add([atId(1, 3)]);
    add([atId(1, 90)]);
    add([justAfter('"context":[]}}\n')]); // data line done, blank line missing
    add([justAfter('"context":[]}}\n', 1)]); // frame complete, nothing after
    add([atId(2, 12)]);
    add([atId(3, 0)]); // right after the second frame
    add([atId(3, 0)]);
    add([atId(4, 40)]);
    add([{ at: "TOOL_CALL_START", offset: 5 }]);
    add([{ at: "TOOL_CALL_RESULT", offset: 40 }]);
    add([{ at: "/todos/3/done", offset: 10 }]);
    add((s, l) => [{ at: '"RUN_FINISHED"', occurrence: 2, offset: 20 }]);
    add((s, l) => [{ at: '"RUN_FINISHED"', occurrence: 2, offset: finalFrameRest(s, `cut-${l}`) - 1 }]);
    add((s, l) => [{ at: '"RUN_FINISHED"', occurrence: 2, offset: finalFrameRest(s, `cut-${l}`) }]);
    // Random offsets over the whole answer.
    for (let i = 0; i < 16; i++) add([Math.floor(random() * (length + 100))]);
    // Cut again while resuming (the resumed connections too), then let it through.
    for (let i = 0; i < 6; i++) {
      const plan = [Math.floor(random() * length)];
      const more = 1 + Math.floor(random() * 3);
      for (let j = 0; j < more; j++) plan.push(Math.floor(random() * 1500));
      add(plan, { maxAttempts: 10 });
    }
    // Keep-alive connections (a cut then fails the read instead of ending it).
    for (let i = 0; i < 4; i++) add([Math.floor(random() * length)], { noClose: true });
    // The gateway unreachable for a moment after the cut.
    add([Math.floor(length / 3), "refuse", "refuse"]);
    add([atId(1, 20), "refuse"]);
    // The POST never reaches the gateway: found nowhere in the log, it is sent again.
    add(["refuse"]);

    const started = Date.now();
    const results = await pool(
      cases.map((c) => () => cutRun(c.scenario, c.label, c.plan, c.options)),
      CONCURRENCY,
    );
    for (const result of results) checkRun(result);

    // Every path of the client was taken at least once.
    const paths = results.map((r) => r.proxy.describe());
    const any = (predicate) => paths.some((lines) => lines.some(predicate));
    const cutCount = results.filter((r) => r.proxy.cuts.length > 0).length;
    assert.ok(cutCount >= cases.length - 8, `only ${cutCount} of ${cases.length} runs were cut`);
    assert.ok(any((l) => /GET \/threads\/[^ ]+\/events \[Last-Event-ID [0-9a-f]{16}:[1-9]/.test(l)), "no resume by Last-Event-ID");
    assert.ok(any((l) => /\/snapshot/.test(l)) && any((l) => /log\.jsonl\?after=0/.test(l)), "no run located in the log");
    // A RUN_FINISHED that a resumed stream reaches is settled from its stored record (the
    // interim one of gateways before issue 7 says source "gateway"; this gateway has none).
    assert.ok(any((l) => /log\.jsonl\?after=[1-9][0-9]*$/.test(l)), "no RUN_FINISHED settled from the log");
    assert.ok(any((l) => /\/events .*cut@/.test(l)), "no resumed connection was cut");
    assert.ok(paths.some((lines) => lines.filter((l) => l.startsWith("POST")).length > 1), "no POST was re-sent");
    t.diagnostic(
      `${results.length} cut runs (+1 uncut) in ${Date.now() - started} ms; ` +
        `${results.reduce((sum, r) => sum + r.reconnects.length, 0)} reconnections`,
    );
  });

  test("a second run on a thread with history, cut at random offsets", async () => {
    const random = rng(SEED + 1);
    const tasks = [];
    for (let i = 0; i < 4; i++) {
      tasks.push(async () => {
        const threadId = `multi-${i}`;
        const first = new HttpAgent({
          url: gateway.runUrl,
          threadId,
          initialMessages: [{ id: "u1", role: "user", content: "weather in Nairobi?" }],
        });
        await first.runAgent({ runId: `m${i}-1` });
        const proxy = new CutProxy(gateway.port, [600 + Math.floor(random() * 6000), Math.floor(random() * 2000)]);
        await proxy.listen();
        const agent = new GatewayAgent({
          url: proxy.url("/agents/demo/run"),
          threadId,
          initialMessages: [...clone(first.messages), { id: "u2", role: "user", content: "And now tell me a joke ✓" }],
          initialState: clone(first.state),
        });
        try {
          await agent.runAgent({ runId: `m${i}-2` });
        } finally {
          await proxy.close();
        }
        const replay = await replayRecords(await readLog(gateway.base, threadId), { threadId });
        const where = `thread ${threadId}: ${proxy.describe().join(" | ")}`;
        assert.ok(proxy.cuts.length > 0, `${where}: not cut`);
        assert.deepStrictEqual(agent.messages, replay.messages, where);
        assert.deepStrictEqual(agent.state, replay.state, where);
        assert.equal(agent.messages.filter((m) => m.id === "u2").length, 1);
        assert.equal(agent.state.runs, 2);
      });
    }
    await pool(tasks, CONCURRENCY);
  });
});

describe("connectAgent", () => {
  let idle; // a thread with two finished runs
  before(async () => {
    const threadId = "idle-000";
    const official = new HttpAgent({
      url: gateway.runUrl,
      threadId,
      initialMessages: [{ id: "u1", role: "user", content: "weather in Lima? ünï 🚀" }],
    });
    await official.runAgent({ runId: "idle-1" });
    official.messages.push({ id: "u2", role: "user", content: "Thanks — one more thing…" });
    await official.runAgent({ runId: "idle-2" });
    const replay = await replayRecords(await readLog(gateway.base, threadId), { threadId });
    assert.deepStrictEqual(replay.messages, official.messages);
    assert.deepStrictEqual(replay.state, official.state);
    idle = { threadId, messages: official.messages, state: official.state };
  });

  test("restores an idle thread and completes (direct, one request)", async () => {
    let requests = 0;
    const agent = new GatewayAgent({
      url: gateway.runUrl,
      threadId: idle.threadId,
      fetch: (url, init) => {
        requests++;
        return fetch(url, init);
      },
    });
    await agent.connectAgent();
    assert.deepStrictEqual(agent.messages, idle.messages);
    assert.deepStrictEqual(agent.state, idle.state);
    assert.equal(agent.isRunning, false);
    assert.equal(requests, 1, "a keep-alive connect that ended cleanly needs no confirmation");
  });

  test("restores an idle thread through cuts inside the compacted replay", async () => {
    const random = rng(SEED + 2);
    const probe = new CutProxy(gateway.port, []);
    await probe.listen();
    await new GatewayAgent({ url: probe.url("/agents/demo/run"), threadId: idle.threadId }).connectAgent();
    await probe.close();
    const length = probe.connections[0].responseBytes;
    const plans = [
      [],
      [0],
      [{ at: '"type":"RUN_STARTED"', offset: 5 }],
      [justAfter('"RUN_STARTED","threadId":"idle-000","runId":"idle-2"}\n')], // data line done, no blank line
      [{ at: "MESSAGES_SNAPSHOT", offset: 50 }],
      [{ at: "MESSAGES_SNAPSHOT", offset: 900 }],
      [{ at: "STATE_SNAPSHOT", offset: 10 }],
      [{ at: "\nid: ", offset: 3 }],
      [{ at: "MESSAGES_SNAPSHOT", offset: 300 }, { at: "STATE_SNAPSHOT", offset: 3 }],
    ];
    for (let i = 0; i < 8; i++) plans.push([Math.floor(random() * length)]);
    const tasks = plans.map((plan, i) => async () => {
      const proxy = new CutProxy(gateway.port, plan);
      proxy.noClose = i % 4 === 3;
      await proxy.listen();
      const agent = new GatewayAgent({ url: proxy.url("/agents/demo/run"), threadId: idle.threadId });
      try {
        await agent.connectAgent();
      } finally {
        await proxy.close();
      }
      const where = `plan ${JSON.stringify(plan)}: ${proxy.describe().join(" | ")}`;
      assert.deepStrictEqual(agent.messages, idle.messages, where);
      assert.deepStrictEqual(agent.state, idle.state, where);
      return proxy;
    });
    const proxies = await pool(tasks, CONCURRENCY);
    assert.ok(
      proxies.some((p) => p.connections.filter((c) => c.path.endsWith("/connect")).length > 1 &&
        p.connections[1].headers["last-event-id"] === undefined),
      "no fresh replay after a cut inside the compacted stretch",
    );
  });

  test("after a reload mid-run, follows the open run to its end (cuts included)", async () => {
    const random = rng(SEED + 3);
    const plans = [
      [],
      [{ at: "REASONING_MESSAGE_CONTENT", offset: 30 }],
      [{ at: "MESSAGES_SNAPSHOT", offset: 20 }],
      [Math.floor(random() * 3000)],
      [Math.floor(random() * 3000), Math.floor(random() * 800)],
      [Math.floor(random() * 5000)],
    ];
    const tasks = plans.map((plan, i) => async () => {
      const threadId = `live-${i}`;
      // A first, finished run, so the replay has a compacted history before the open run.
      const runner = new HttpAgent({
        url: gateway.runUrl,
        threadId,
        initialMessages: [{ id: "u1", role: "user", content: "weather in Sydney?" }],
      });
      await runner.runAgent({ runId: `live-${i}-1` });
      runner.messages.push({ id: "u2", role: "user", content: "and in Tokyo? weather please" });
      const wanted = 3 + Math.floor(random() * 35);
      let seen = 0;
      let reached;
      const midRun = new Promise((resolve) => (reached = resolve));
      const running = runner.runAgent(
        { runId: `live-${i}-2` },
        { onEvent: () => void (++seen === wanted && reached()) },
      );
      await midRun;
      // "Reload": a new agent that knows only the thread id.
      const proxy = new CutProxy(gateway.port, plan);
      await proxy.listen();
      const agent = new GatewayAgent({ url: proxy.url("/agents/demo/run"), threadId });
      const reconnects = [];
      agent.onReconnect = (info) => reconnects.push(info);
      try {
        await agent.connectAgent();
      } finally {
        await proxy.close();
      }
      await running;
      const where = `plan ${JSON.stringify(plan)} after ${wanted} events: ${proxy.describe().join(" | ")}`;
      assert.deepStrictEqual(agent.messages, runner.messages, where);
      assert.deepStrictEqual(agent.state, runner.state, where);
      const replay = await replayRecords(await readLog(gateway.base, threadId), { threadId });
      assert.deepStrictEqual(agent.messages, replay.messages, where);
      assert.equal(agent.state.progress, 1, where);
    });
    await pool(tasks, CONCURRENCY);
  });

  test("a thread that has no events completes at once", async () => {
    const direct = new GatewayAgent({ url: gateway.runUrl, threadId: "never-used" });
    await direct.connectAgent();
    assert.deepStrictEqual(direct.messages, []);
    const proxy = new CutProxy(gateway.port, [{ at: "\r\n\r\n", offset: 4 }]); // headers only, then cut
    await proxy.listen();
    const viaProxy = new GatewayAgent({ url: proxy.url("/agents/demo/run"), threadId: "never-used" });
    try {
      await viaProxy.connectAgent();
    } finally {
      await proxy.close();
    }
    assert.deepStrictEqual(viaProxy.messages, []);
    assert.deepStrictEqual(viaProxy.state, {});
  });
});

describe("a thread deleted and created again under the stream", () => {
  /**
   * A fetch that, before the first request resuming by an id (or confirming a connect's
   * end with /snapshot), deletes the thread and writes it again with another run: the
   * agent's ids are then of the old thread.
   */
  function recreatingFetch(threadId, write) {
    let done = false;
    return async (url, init) => {
      const resuming = new Headers(init?.headers).has("last-event-id") || String(url).endsWith("/snapshot");
      if (resuming && !done) {
        done = true;
        const deleted = await fetch(`${gateway.base}/threads/${threadId}?stop=1`, { method: "DELETE" });
        assert.equal(deleted.status, 204);
        await write();
      }
      return fetch(url, init);
    };
  }

  async function writeThread(threadId, runId, text, initialState = {}) {
    const writer = new HttpAgent({
      url: gateway.runUrl,
      threadId,
      initialMessages: [{ id: `${runId}-u`, role: "user", content: text }],
      initialState,
    });
    await writer.runAgent({ runId });
  }

  for (const noClose of [true, false]) {
    // noClose: the cut fails the read, the agent resumes by its id (409 thread_recreated);
    // otherwise the end looks clean and the snapshot it is confirmed with is of another epoch.
    test(`connectAgent drops the old thread and restores the new one (${noClose ? "409" : "snapshot"})`, async () => {
      const threadId = `recreated-${noClose ? "a" : "b"}`;
      await writeThread(threadId, "old-1", "weather in Lima?", { old: true });
      const lastFrame = `"RUN_FINISHED","threadId":"${threadId}","runId":"old-1"}\n\n`;
      const proxy = new CutProxy(gateway.port, [{ at: '"RUN_FINISHED"', offset: lastFrame.length }]);
      proxy.noClose = noClose;
      await proxy.listen();
      const agent = new GatewayAgent({
        url: proxy.url("/agents/demo/run"),
        threadId,
        fetch: recreatingFetch(threadId, () => writeThread(threadId, "new-1", "tell me a joke", { keep: "me" })),
      });
      try {
        await agent.connectAgent();
      } finally {
        await proxy.close();
      }
      const where = proxy.describe().join(" | ");
      const fresh = new GatewayAgent({ url: gateway.runUrl, threadId });
      await fresh.connectAgent();
      assert.ok(fresh.messages.some((m) => m.id === "new-1-u"), where);
      assert.deepStrictEqual(agent.messages, fresh.messages, where);
      assert.deepStrictEqual(agent.state, fresh.state, where);
      assert.equal(agent.state.old, undefined, where);
      assert.ok(!agent.messages.some((m) => m.id === "old-1-u"), where);
      const requests = proxy.connections.map((c) => `${c.method} ${c.path.split("?")[0]} ${c.headers["last-event-id"] ?? "-"}`);
      if (noClose) assert.match(requests[1], /^POST \/agents\/demo\/connect [0-9a-f]{16}:\d+$/, where);
      assert.ok(requests.some((r, i) => i > 0 && r === "POST /agents/demo/connect -"), `${where}: no fresh connect`);
    });
  }

  test("runAgent rejects with ThreadRecreatedError: its run is gone", async () => {
    const threadId = "recreated-run";
    const proxy = new CutProxy(gateway.port, [atId(3, 0)]);
    await proxy.listen();
    const agent = new GatewayAgent({
      url: proxy.url("/agents/demo/run"),
      threadId,
      initialMessages: [{ id: "u1", role: "user", content: "weather in Oslo?" }],
      fetch: recreatingFetch(threadId, () => writeThread(threadId, "new-run", "hello again")),
    });
    try {
      const error = await agent.runAgent({ runId: "old-run" }).then(
        () => assert.fail("resolved"),
        (caught) => caught,
      );
      assert.ok(error instanceof ThreadRecreatedError, String(error));
      assert.equal(error.status, 409);
      assert.match(error.lastEventId, /^[0-9a-f]{16}:2$/);
    } finally {
      await proxy.close();
    }
  });
});

describe("bounded attempts and errors", () => {
  async function quietly(fn) {
    const original = console.error;
    console.error = () => {};
    try {
      return await fn();
    } finally {
      console.error = original;
    }
  }

  test("with the gateway gone, runAgent and connectAgent reject after maxAttempts", async () => {
    const port = await freePort(); // nothing listens there
    for (const mode of ["run", "connect"]) {
      let requests = 0;
      const waits = [];
      const agent = new GatewayAgent({
        url: `http://127.0.0.1:${port}/agents/demo/run`,
        threadId: "gone",
        initialMessages: [{ id: "u1", role: "user", content: "hello" }],
        maxAttempts: 3,
        backoff: { initialDelayMs: 20 },
        onReconnect: (info) => waits.push(info),
        fetch: (url, init) => {
          requests++;
          return fetch(url, init);
        },
      });
      const error = await quietly(() =>
        (mode === "run" ? agent.runAgent() : agent.connectAgent()).then(
          () => assert.fail(`${mode}: resolved`),
          (caught) => caught,
        ),
      );
      assert.equal(error.name, "GatewayConnectionError", `${mode}: ${error.stack}`);
      assert.equal(error.attempts, 3);
      assert.equal(requests, 3, `${mode}: one request per attempt`);
      // Bounded by its schedule, not by a clock: one wait before each of the two retries, in
      // step, each the backoff of its attempt (20 ms x 2 per further attempt, less at most
      // 20 % jitter) and nothing longer.
      assert.equal(waits.length, 2, `${mode}: one wait before each retry`);
      assert.equal(waits[1].attempt, waits[0].attempt + 1, `${mode}: attempts in step`);
      for (const { attempt, delayMs } of waits) {
        const base = 20 * 2 ** (attempt - 1);
        assert.ok(delayMs >= 0.8 * base && delayMs <= base, `${mode}: attempt ${attempt} waits ${delayMs} ms`);
      }
      assert.equal(agent.isRunning, false);
    }
  });

  test("the gateway gone in the middle of a run: rejects after maxAttempts reconnections", async () => {
    const proxy = new CutProxy(gateway.port, [{ at: "TOOL_CALL_START", offset: 3 }], { rest: "refuse" });
    await proxy.listen();
    const reconnects = [];
    const agent = new GatewayAgent({
      url: proxy.url("/agents/demo/run"),
      threadId: "gone-mid-run",
      initialMessages: [{ id: "u1", role: "user", content: "weather in Oslo?" }],
      maxAttempts: 4,
      backoff: { initialDelayMs: 20 },
      onReconnect: (info) => reconnects.push(info),
    });
    try {
      const error = await quietly(() =>
        agent.runAgent({ runId: "gone-1" }).then(
          () => assert.fail("resolved"),
          (caught) => caught,
        ),
      );
      assert.equal(error.name, "GatewayConnectionError");
      assert.match(error.lastEventId, /^[0-9a-f]{16}:\d+$/);
      assert.ok(Number(error.lastEventId.split(":")[1]) > 3);
    } finally {
      await proxy.close();
    }
    assert.equal(proxy.connections.filter((c) => c.refused).length, 4, proxy.describe().join(" | "));
    assert.deepStrictEqual(reconnects.map((r) => r.attempt), [1, 2, 3, 4]);
    assert.ok(reconnects[1].delayMs >= 16 * 2 && reconnects[1].delayMs <= 40);
    // What arrived before the cut was applied (a partial run), nothing else.
    assert.ok(agent.messages.some((m) => m.id === "gone-1-msg-1"));
    assert.ok(!agent.messages.some((m) => m.id === "gone-1-msg-2"));
  });

  test("an HTTP error answer (409: a run is in progress) is not retried", async () => {
    const runner = new HttpAgent({
      url: gateway.runUrl,
      threadId: "busy",
      initialMessages: [{ id: "u1", role: "user", content: "weather in Berlin?" }],
    });
    let started;
    const startedPromise = new Promise((resolve) => (started = resolve));
    const running = runner.runAgent({ runId: "busy-1" }, { onEvent: () => started() });
    await startedPromise;
    let requests = 0;
    const agent = new GatewayAgent({
      url: gateway.runUrl,
      threadId: "busy",
      initialMessages: [{ id: "u9", role: "user", content: "me too" }],
      fetch: (url, init) => {
        requests++;
        return fetch(url, init);
      },
    });
    const error = await quietly(() =>
      agent.runAgent({ runId: "busy-2" }).then(
        () => assert.fail("resolved"),
        (caught) => caught,
      ),
    );
    assert.equal(error.status, 409, String(error));
    assert.equal(requests, 1);
    await running;
  });

  test("abortRun() ends the run at once, without reconnecting", async () => {
    const proxy = new CutProxy(gateway.port, []);
    await proxy.listen();
    const reconnects = [];
    const agent = new GatewayAgent({
      url: proxy.url("/agents/demo/run"),
      threadId: "aborted",
      initialMessages: [{ id: "u1", role: "user", content: "weather in Oslo?" }],
      onReconnect: (info) => reconnects.push(info),
    });
    const events = [];
    try {
      await agent.runAgent(
        { runId: "abort-1" },
        {
          onEvent: ({ event }) => {
            events.push(event);
            if (events.length === 6) agent.abortRun();
          },
        },
      );
    } finally {
      await proxy.close();
    }
    assert.deepStrictEqual(reconnects, []);
    assert.equal(events.at(-1).type, "RUN_ERROR");
    assert.equal(events.at(-1).code, "abort");
    assert.equal(agent.isRunning, false);
  });
});

describe("a stop", () => {
  test("a stop mid-run ends runAgent with the cancelled outcome, across a cut connection", { timeout: 60_000 }, async () => {
    // A gateway of its own, paced so that the run is still going when the stop lands.
    const slow = await startGateway({ pace: 1 });
    // The run's stream is cut inside its first text delta: the rest, the stop's end
    // included, comes through the resumed /events tail (not bounded to the run).
    const proxy = new CutProxy(slow.port, [{ at: "TEXT_MESSAGE_CONTENT", offset: 4 }]);
    await proxy.listen();
    const threadId = "stopped-1";
    const runId = "stop-run-1";
    const initialMessages = [{ id: "u1", role: "user", content: "What is the weather in Paris?" }];
    const agent = new GatewayAgent({ url: proxy.url("/agents/demo/run"), threadId, initialMessages: clone(initialMessages) });
    const reconnects = [];
    agent.onReconnect = (info) => reconnects.push(info);
    const events = [];
    let stopped;
    try {
      await agent.runAgent(
        { runId },
        {
          onEvent: ({ event }) => {
            events.push(event);
            if (event.type === "TEXT_MESSAGE_CONTENT" && stopped === undefined) {
              stopped = fetch(`${slow.base}/threads/${threadId}/stop?runId=${runId}`, { method: "POST" });
            }
          },
        },
      );
      assert.equal((await stopped).status, 200);
      const records = await readLog(slow.base, threadId);
      const replay = await replayRecords(records, { threadId, initialMessages, runId });
      assert.ok(reconnects.length >= 1, "the run's stream was cut and resumed");
      assert.deepStrictEqual(events.at(-1), { type: "RUN_FINISHED", threadId, runId, outcome: { type: "cancelled" } });
      assert.deepStrictEqual(events, replay.events, "applied events differ from the stored log");
      assert.deepStrictEqual(agent.messages, replay.messages);
      assert.equal(agent.isRunning, false);
    } finally {
      await proxy.close();
      await slow.stop();
    }
  });
});

describe("capabilities", () => {
  test("getCapabilities() reads what the gateway advertises: resumable SSE", async () => {
    const agent = new GatewayAgent({ url: gateway.runUrl });
    const capabilities = await agent.getCapabilities();
    assert.deepStrictEqual(capabilities.transport, { streaming: true, resumable: true });
    assert.equal(capabilities.custom.aguiGateway.resume.header, "Last-Event-ID");
  });
});
