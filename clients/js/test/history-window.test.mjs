// GatewayAgent's history windows against the real gateway (demo agent): a thread opened
// with its latest turns (`turns`), its older messages loaded with loadOlder() until
// nothing is older, ends with the messages and state of the official HttpAgent's full
// connect; and a run from the window continues the thread (no branch).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { HttpAgent } from "@ag-ui/client";
import { GatewayAgent } from "../dist/index.js";
import { startGateway } from "./helpers/gateway.mjs";

const THREAD = "windowed";
const TURNS = 4;
let gateway;
let writer; // the official HttpAgent that wrote the thread: the truth of what it holds

before(async () => {
  gateway = await startGateway({ pace: 0 });
  writer = new HttpAgent({ url: gateway.runUrl, threadId: THREAD });
  for (let turn = 0; turn < TURNS; turn++) {
    writer.addMessage({ id: `u${turn}`, role: "user", content: `question ${turn}` });
    await writer.runAgent({ runId: `r${turn}` });
  }
});

after(async () => {
  await gateway?.stop();
});

/** The whole thread, as the official pipeline applies its full fresh replay. */
async function fullThread() {
  const reader = new GatewayAgent({ url: gateway.runUrl, threadId: THREAD });
  await reader.connectAgent();
  return { messages: reader.messages, state: reader.state };
}

test("a window and loadOlder() pages end as the full thread", async () => {
  const full = { messages: writer.messages, state: writer.state };
  assert.ok(full.messages.length > 4);
  assert.deepEqual(await fullThread(), full);
  const agent = new GatewayAgent({ url: gateway.runUrl, threadId: THREAD, turns: 1 });
  await agent.connectAgent();
  const firstUser = agent.messages.findIndex((m) => m.role === "user");
  assert.equal(agent.messages[firstUser].id, `u${TURNS - 1}`, "the window starts at the last turn");
  assert.ok(agent.messages.length < full.messages.length);
  assert.equal(typeof agent.olderCursor, "string");
  assert.deepEqual(agent.state, full.state);
  const pages = [];
  for (;;) {
    const page = await agent.loadOlder(2);
    if (page.messages.length === 0) break;
    assert.ok(page.messages.length >= 2 || page.before === null);
    pages.push(page);
  }
  assert.ok(pages.length >= 2, "several pages");
  assert.equal(agent.olderCursor, null);
  assert.deepEqual(agent.messages, full.messages);
});

test("a run from the window continues the thread (no branch)", async () => {
  const agent = new GatewayAgent({ url: gateway.runUrl, threadId: THREAD, turns: 1 });
  await agent.connectAgent();
  const windowSize = agent.messages.length;
  agent.addMessage({ id: "u-next", role: "user", content: "one more" });
  await agent.runAgent({ runId: "r-next" });
  const runs = await (await fetch(`${gateway.base}/threads/${THREAD}/runs`)).json();
  const last = runs.runs.at(-1);
  assert.equal(last.runId, "r-next");
  assert.equal(last.branch, false);
  assert.equal(last.parentRunId, `r${TURNS - 1}`, "it follows the thread's last run");
  const full = await fullThread();
  // The window grew by the new turn; the thread kept everything before it.
  assert.deepEqual(agent.messages, full.messages.slice(full.messages.length - agent.messages.length));
  assert.ok(agent.messages.length > windowSize);
});

test("turns must be a positive integer", () => {
  for (const turns of [0, -1, 1.5, "2"]) {
    assert.throws(() => new GatewayAgent({ url: gateway.runUrl, threadId: THREAD, turns }), /turns/);
  }
});
