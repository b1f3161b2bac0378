#!/usr/bin/env node
// The benchmark baseline: a Node process that reads an AG-UI event log and runs
// the official compactEvents() from @ag-ui/client over it.
//
//   node harness/compact.mjs FILE.jsonl [-o OUT.jsonl]
//
// Envelopes are unwrapped and bad lines skipped (count on stderr), as in replay.mjs.
// The compacted events are written one per line to stdout, or to OUT.
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { compactEvents } from "@ag-ui/client";
import { readJsonlFile } from "./lib/jsonl.mjs";

const USAGE = "usage: node compact.mjs FILE.jsonl [-o OUT.jsonl]";

function parseArgs(argv) {
  let file = null;
  let out = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-o" || arg === "--output") out = argv[++i] ?? null;
    else if (file === null && !arg.startsWith("-")) file = arg;
    else throw new Error(`unexpected argument '${arg}'`);
  }
  if (file === null) throw new Error("missing FILE.jsonl");
  if (out === null && argv.some((a) => a === "-o" || a === "--output")) throw new Error("-o needs a path");
  return { file, out };
}

/** Writes each event as one line, waiting on backpressure so large outputs stream. */
async function writeEvents(stream, events) {
  for (const event of events) {
    if (!stream.write(JSON.stringify(event) + "\n")) await once(stream, "drain");
  }
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    return 2;
  }
  let parsed;
  try {
    parsed = readJsonlFile(options.file);
  } catch (error) {
    process.stderr.write(`cannot read ${options.file}: ${error.message}\n`);
    return 2;
  }
  if (parsed.badLines > 0) process.stderr.write(`skipped ${parsed.badLines} bad line(s)\n`);
  const compacted = compactEvents(parsed.events);
  if (options.out === null) {
    await writeEvents(process.stdout, compacted);
    return 0;
  }
  const stream = createWriteStream(options.out);
  await writeEvents(stream, compacted);
  stream.end();
  await once(stream, "finish");
  return 0;
}

process.exitCode = await main();
