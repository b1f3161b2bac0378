#!/usr/bin/env node
// Drives an unmodified official HttpAgent (@ag-ui/client) through what chat UIs do,
// against an AG-UI endpoint (the gateway), and prints what the caller ends with.
//
//   node harness/ui-session.mjs < plan.json
//
// plan: {"url", "threadId", "steps": [...]}, each step one of
//   {"op": "say", "id", "text"}              the user types a message
//   {"op": "run", "runId", "tools"?, "approve"?}
//                                             runAgent(); "approve": answer every pending
//                                             interrupt with RunAgentInput.resume
//   {"op": "keepThrough", "id"}               setMessages(): drop every message after id
//                                             (regenerate: keep the user message, run again)
//   {"op": "keepBefore", "id"}                setMessages(): drop id and everything after
//                                             (edit: then "say" the edited message)
//   {"op": "delete", "id"}                    setMessages(): drop one message
//   {"op": "setState", "state"}               setState()
//   {"op": "toolResult", "id", "content"}     add the result of the last pending tool call
//                                             (a frontend tool, as CopilotKit's actions do)
// Output (one JSON object): {messages, state, pendingInterrupts, errors,
//   runs: [{runId, sse, messages, state, pendingInterrupts}]}: "sse" is the raw text of
//   the run's response stream exactly as the agent's fetch received it.
import { HttpAgent } from "@ag-ui/client";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const plan = JSON.parse(Buffer.concat(chunks).toString("utf8"));

// Tee every response body: the agent reads one branch, we keep the other's text.
const realFetch = globalThis.fetch;
let captured = null;
globalThis.fetch = async (input, init) => {
  const response = await realFetch(input, init);
  if (!response.body) return response;
  const [mine, theirs] = response.body.tee();
  captured = new Response(mine).text();
  return new Response(theirs, { status: response.status, statusText: response.statusText, headers: response.headers });
};

const agent = new HttpAgent({ url: plan.url, threadId: plan.threadId });
const errors = [];
const subscriber = { onRunFailed: ({ error }) => { errors.push(String(error)); } };
const runs = [];
const clone = (value) => JSON.parse(JSON.stringify(value));

function indexOf(id) {
  const index = agent.messages.findIndex((m) => m.id === id);
  if (index < 0) throw new Error(`no message ${id}`);
  return index;
}

for (const step of plan.steps) {
  switch (step.op) {
    case "say":
      agent.addMessage({ id: step.id, role: "user", content: step.text });
      break;
    case "keepThrough":
      agent.setMessages(agent.messages.slice(0, indexOf(step.id) + 1));
      break;
    case "keepBefore":
      agent.setMessages(agent.messages.slice(0, indexOf(step.id)));
      break;
    case "delete":
      agent.setMessages(agent.messages.filter((m) => m.id !== step.id));
      break;
    case "setState":
      agent.setState(step.state);
      break;
    case "toolResult": {
      const answered = new Set(agent.messages.filter((m) => m.role === "tool").map((m) => m.toolCallId));
      const calls = agent.messages.flatMap((m) => (m.role === "assistant" && m.toolCalls) || []);
      const pending = calls.filter((c) => !answered.has(c.id));
      if (pending.length === 0) throw new Error("no pending tool call to answer");
      agent.addMessage({ id: step.id, role: "tool", toolCallId: pending[pending.length - 1].id, content: step.content });
      break;
    }
    case "run": {
      const parameters = { runId: step.runId };
      if (step.tools) parameters.tools = step.tools;
      if (step.approve) {
        parameters.resume = agent.pendingInterrupts.map((i) => ({
          interruptId: i.id,
          status: "resolved",
          payload: { approved: true },
        }));
      }
      captured = null;
      await agent.runAgent(parameters, subscriber);
      runs.push({
        runId: step.runId,
        sse: captured === null ? "" : await captured,
        messages: clone(agent.messages),
        state: clone(agent.state),
        pendingInterrupts: clone(agent.pendingInterrupts),
      });
      break;
    }
    default:
      throw new Error(`unknown step ${JSON.stringify(step)}`);
  }
}
process.stdout.write(
  JSON.stringify({
    messages: agent.messages,
    state: agent.state,
    pendingInterrupts: agent.pendingInterrupts,
    errors,
    runs,
  }),
);
