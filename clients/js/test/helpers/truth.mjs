// What the official client ends with: the stored log, served as the gateway serves it,
// replayed through @ag-ui/client 1.0.0.
import { AbstractAgent } from "@ag-ui/client";
import { from } from "rxjs";

class LogReplayAgent extends AbstractAgent {
  constructor(events, config) {
    super(config);
    this.events = events;
  }
  run() {
    return from(this.events);
  }
}

export async function readLog(base, threadId, after = 0) {
  const response = await fetch(`${base}/threads/${encodeURIComponent(threadId)}/log.jsonl?after=${after}`);
  if (!response.ok) throw new Error(`log.jsonl: HTTP ${response.status}`);
  const text = await response.text();
  return text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
}

/**
 * The event a stored record is served as (the gateway's README): a run's first
 * RUN_STARTED carries a `gateway` annotation whose `input` and `parentRunId` every
 * stream sets on the event; the stored event itself is the agent's, as sent.
 */
export function servedEvent(record) {
  const note = record.gateway ?? {};
  const served = { ...record.event };
  if (note.input !== undefined) served.input = note.input;
  if (typeof note.parentRunId === "string") served.parentRunId = note.parentRunId;
  return served;
}

/**
 * Replays stored records through the official pipeline (runAgent: middlewares,
 * enforcement, chunks, verify, apply) from the given starting point; returns
 * the final messages and state and the events the pipeline applied.
 */
export async function replayRecords(records, { threadId, initialMessages = [], initialState = {}, runId } = {}) {
  const agent = new LogReplayAgent(
    records.map(servedEvent),
    { threadId, initialMessages, initialState },
  );
  const events = [];
  await agent.runAgent({ runId }, { onEvent: ({ event }) => void events.push(event) });
  return { messages: agent.messages, state: agent.state, events };
}

/** Deterministic pseudo-random numbers (mulberry32). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `tasks` (functions returning promises) at most `limit` at a time; results in order. */
export async function pool(tasks, limit) {
  const results = new Array(tasks.length);
  let next = 0;
  async function worker() {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}
