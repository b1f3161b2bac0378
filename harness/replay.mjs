#!/usr/bin/env node
// Replays AG-UI events through the official @ag-ui/client and prints the final
// messages and state as JSON.
//
//   node harness/replay.mjs [--mode connect|run|verify] FILE.jsonl
//       one JSON object: {messages, state, pendingInterrupts, error, warnings, events, badLines}
//   node harness/replay.mjs --serve
//       one request per stdin line: {"id", "events": [...]} or {"id", "path": "f.jsonl"},
//       optional "mode" (default: --mode), "sampleAfter": [counts] (what the agent holds
//       mid-stream once that many events are applied: "samples" in the result) and
//       "then": [[events], ...] (more connections of the same agent, one per list);
//       one result line (the same fields plus "id") per request, or {"id", "requestError"}
//       for a request that could not be read.
//
// connect (default) replays through connectAgent(), run through runAgent() (the
// middleware chain too), verify through the official verifyEvents() alone.
// Events are fed one per macrotask (see lib/replay-core.mjs) and the platform's
// structuredClone is replaced by a string-sharing equivalent (lib/fast-clone.mjs;
// AGUI_HARNESS_NATIVE_CLONE=1 turns that off).
import { createInterface } from "node:readline";
import { once } from "node:events";
import { installConsoleCapture } from "./lib/capture.mjs";
import { installFastClone } from "./lib/fast-clone.mjs";
import { readJsonlFile, unwrapEvent } from "./lib/jsonl.mjs";
import { MODES, replayEvents } from "./lib/replay-core.mjs";

const USAGE =
  "usage: node replay.mjs [--mode connect|run|verify] FILE.jsonl\n" +
  "       node replay.mjs --serve";

/**
 * Writes one result line, honouring backpressure so multi-MB results are never
 * dropped. A result JSON cannot express (nesting deeper than the stack) becomes
 * a requestError for that request instead of killing the server.
 */
async function writeLine(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    text = JSON.stringify({ id: value.id ?? null, requestError: `result is not serialisable: ${error.message}` });
  }
  if (!process.stdout.write(text + "\n")) {
    await once(process.stdout, "drain");
  }
}

function isCountList(value) {
  return Array.isArray(value) && value.every((n) => Number.isInteger(n) && n >= 0);
}

/** Turns one request into the events to replay; throws a message for a bad request. */
function eventsOfRequest(request) {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw new Error("a request must be a JSON object");
  }
  if (request.mode !== undefined && !MODES.includes(request.mode)) {
    throw new Error(`unknown mode '${request.mode}' (expected ${MODES.join("|")})`);
  }
  if (request.sampleAfter !== undefined && !isCountList(request.sampleAfter)) {
    throw new Error("'sampleAfter' must be an array of non-negative integers");
  }
  if (request.then !== undefined && !(Array.isArray(request.then) && request.then.every(Array.isArray))) {
    throw new Error("'then' must be an array of event arrays");
  }
  if (Array.isArray(request.events)) {
    return { events: request.events.map(unwrapEvent), badLines: 0 };
  }
  if (typeof request.path === "string") {
    return readJsonlFile(request.path);
  }
  throw new Error("a request needs either 'events' (an array) or 'path' (a string)");
}

async function handleRequestLine(line, defaultMode) {
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    return { id: null, requestError: `request is not JSON: ${error.message}` };
  }
  const id = request?.id ?? null;
  let parsed;
  try {
    parsed = eventsOfRequest(request);
  } catch (error) {
    return { id, requestError: error.message };
  }
  try {
    const options = {
      sampleAfter: request.sampleAfter ?? [],
      then: (request.then ?? []).map((more) => more.map(unwrapEvent)),
    };
    const result = await replayEvents(parsed.events, request.mode ?? defaultMode, options);
    return { id, ...result, badLines: parsed.badLines };
  } catch (error) {
    return { id, requestError: `harness failure: ${error?.message ?? String(error)}` };
  }
}

async function serve(defaultMode) {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    await writeLine(await handleRequestLine(line, defaultMode));
  }
}

function parseArgs(argv) {
  const options = { mode: "connect", serve: false, file: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--serve") options.serve = true;
    else if (arg === "--mode") options.mode = argv[++i];
    else if (arg.startsWith("--mode=")) options.mode = arg.slice("--mode=".length);
    else if (arg === "-h" || arg === "--help") return null;
    else if (options.file === null && !arg.startsWith("--")) options.file = arg;
    else throw new Error(`unexpected argument '${arg}'`);
  }
  if (!MODES.includes(options.mode)) throw new Error(`unknown mode '${options.mode}'`);
  if (!options.serve && options.file === null) throw new Error("missing FILE.jsonl");
  return options;
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    return 2;
  }
  if (options === null) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  installConsoleCapture();
  installFastClone();
  if (options.serve) {
    await serve(options.mode);
    return 0;
  }
  let parsed;
  try {
    parsed = readJsonlFile(options.file);
  } catch (error) {
    process.stderr.write(`cannot read ${options.file}: ${error.message}\n`);
    return 2;
  }
  const result = await replayEvents(parsed.events, options.mode);
  await writeLine({ ...result, badLines: parsed.badLines });
  return 0;
}

process.exitCode = await main();
