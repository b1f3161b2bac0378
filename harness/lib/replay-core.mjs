// Replays a list of AG-UI events through the official @ag-ui/client exactly as
// a (re)connecting UI would, and reports where the agent ended up.
import { CLIENT_VERSION, client } from "./client.mjs";
// rxjs is the client's own dependency (pinned 7.8.1 by it) and is hoisted to
// harness/node_modules, so this is the very instance the client's pipeline uses.
import { Observable, lastValueFrom, from } from "rxjs";
import { captureInto } from "./capture.mjs";

const { AbstractAgent, verifyEvents } = client;

export const MODES = ["connect", "run", "verify"];

/**
 * Emits one event per macrotask, like events arriving off a socket. The
 * client's reducer is an async concatMap; with a synchronous source a verify
 * error would overtake events still queued for the reducer, and the state
 * reported at an error would depend on scheduling. One event per macrotask lets
 * every earlier event finish applying (its microtasks drain) before the next
 * is seen, so a failing stream reports the state just before the bad event.
 */
export function pacedEvents(events, beforeEvent = () => {}) {
  return new Observable((subscriber) => {
    let index = 0;
    let pending = setImmediate(function step() {
      pending = null;
      // Every earlier event has been applied (its microtasks drained): a sample
      // taken here is what the client holds after events[0 .. index - 1].
      beforeEvent(index);
      if (index >= events.length) {
        subscriber.complete();
        return;
      }
      subscriber.next(events[index++]);
      if (!subscriber.closed) pending = setImmediate(step);
    });
    return () => {
      if (pending !== null) clearImmediate(pending);
    };
  });
}

/** What the agent holds now, as plain JSON (a copy the client cannot change later). */
function holding(agent) {
  return JSON.parse(
    JSON.stringify({ messages: agent.messages, state: agent.state ?? null, pendingInterrupts: agent.pendingInterrupts }),
  );
}

/**
 * An agent whose transport is a recorded event list; both entry points replay it.
 * `sampleAfter` (counts of events) records what the agent holds once that many
 * events of the list have been applied, mid-stream: no completion has run yet.
 */
class ReplayAgent extends AbstractAgent {
  constructor(events, sampleAfter = []) {
    super({ threadId: "replay" });
    this.replayEvents = events;
    this.sampleAfter = new Set(sampleAfter);
    this.samples = new Map();
  }

  paced() {
    return pacedEvents(this.replayEvents, (index) => {
      if (this.sampleAfter.has(index)) this.samples.set(index, holding(this));
    });
  }

  connect() {
    return this.paced();
  }

  run() {
    return this.paced();
  }
}

function errorMessage(error) {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Rejects when the process reports an error nobody awaited while `promise` is
 * pending (an exception thrown from an rxjs teardown or a floating promise in
 * the client), so such a stream is reported instead of hanging.
 */
function failOnStrayErrors(promise) {
  let detach = () => {};
  const stray = new Promise((_, reject) => {
    const onError = (error) => reject(error);
    process.on("uncaughtException", onError);
    process.on("unhandledRejection", onError);
    detach = () => {
      process.off("uncaughtException", onError);
      process.off("unhandledRejection", onError);
    };
  });
  return Promise.race([promise, stray]).finally(detach);
}

/** Lets work the client left floating (onFinalize, background notifications) settle. */
const nextMacrotask = () => new Promise((resolve) => setImmediate(resolve));

async function drive(agent, events, mode) {
  if (mode === "connect") {
    await agent.connectAgent();
  } else if (mode === "run") {
    await agent.runAgent();
  } else {
    // The official verifier alone, on the events as given: no enforcement,
    // no chunk expansion, no reducer.
    await lastValueFrom(from(events).pipe(verifyEvents()), { defaultValue: undefined });
  }
}

/**
 * Replays `events` through a fresh agent.
 * @param {object} [options]
 * @param {number[]} [options.sampleAfter] counts of events after which to record
 *   what the agent holds (mid-stream, before the stream completes)
 * @param {object[][]} [options.then] further event lists, each replayed by one more
 *   connection of the same agent (a client that reconnects), in order; the first
 *   error ends the replay
 * @returns {Promise<{messages, state, pendingInterrupts, error, warnings, events, samples, client}>}
 *   `error` is the message of whatever ended the pipeline (null when it
 *   completed); messages/state are what the agent held at that point;
 *   `samples` one `{after, messages, state, pendingInterrupts}` per reached count.
 */
export async function replayEvents(events, mode = "connect", { sampleAfter = [], then = [] } = {}) {
  if (!MODES.includes(mode)) throw new Error(`unknown mode '${mode}' (expected ${MODES.join("|")})`);
  const warnings = [];
  const release = captureInto(warnings);
  let agent;
  let error = null;
  try {
    agent = new ReplayAgent(events, sampleAfter);
    await failOnStrayErrors(drive(agent, events, mode));
    for (const more of then) {
      // The same agent connects again: what it holds carries over, the stream is new.
      agent.replayEvents = more;
      agent.sampleAfter = new Set();
      await nextMacrotask(); // the previous connection's onFinalize settles first
      await failOnStrayErrors(drive(agent, more, mode));
    }
  } catch (caught) {
    error = errorMessage(caught);
  }
  try {
    await nextMacrotask();
  } finally {
    release();
  }
  const samples = [...(agent?.samples ?? new Map()).entries()]
    .sort(([a], [b]) => a - b)
    .map(([after, held]) => ({ after, ...held }));
  return {
    messages: agent?.messages ?? [],
    state: agent?.state ?? null,
    pendingInterrupts: agent?.pendingInterrupts ?? [],
    error,
    warnings,
    events: events.length + then.reduce((sum, more) => sum + more.length, 0),
    samples,
    client: CLIENT_VERSION,
  };
}
