// The official client reports deviations (stripped fields, failed patches,
// "Agent execution failed") through console.warn / console.error. The harness
// turns them into data: while a capture is active they are collected as
// strings instead of printed, and stdout stays reserved for results.
import { format } from "node:util";

/** An Error is reported by name and message: its stack names harness paths and differs per run. */
function describe(arg) {
  return arg instanceof Error ? `${arg.name}: ${arg.message}` : arg;
}

function formatArgs(args) {
  return format(...args.map(describe));
}

let sink = null;

/**
 * Installs the console hooks once. warn/error go to the active capture (or to
 * stderr when none is active); log/info/debug always go to stderr, so nothing
 * the client prints can corrupt the one-JSON-per-line stdout protocol.
 */
export function installConsoleCapture() {
  const toStderr = (...args) => process.stderr.write(formatArgs(args) + "\n");
  const toSink = (...args) => {
    if (sink) sink.push(formatArgs(args));
    else toStderr(...args);
  };
  console.warn = toSink;
  console.error = toSink;
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}

/**
 * Routes warn/error into `warnings` until the returned function is called.
 * Replays run one at a time, so a single active sink is enough.
 */
export function captureInto(warnings) {
  const previous = sink;
  sink = warnings;
  return () => {
    sink = previous;
  };
}
