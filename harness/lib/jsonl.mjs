// Reading AG-UI event logs: one JSON value per line, where a line may be a bare
// event or a stored-record envelope {"seq", "runId", "ts", "source", "event"}.
import { readFileSync } from "node:fs";

/**
 * A stored-record envelope carries the event under "event" next to its "seq";
 * an AG-UI event always has a "type" at top level, so the two cannot be confused.
 */
export function isEnvelope(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    !("type" in value) &&
    "seq" in value &&
    value.event !== null &&
    typeof value.event === "object" &&
    !Array.isArray(value.event)
  );
}

/** The event itself, whether `value` is a bare event or an envelope. */
export function unwrapEvent(value) {
  return isEnvelope(value) ? value.event : value;
}

/**
 * Parses JSONL text into events. Blank lines are skipped; a line that is not
 * JSON, or is JSON but not an object, is counted in `badLines` and skipped, so
 * one damaged line never hides the rest of the log.
 */
export function parseJsonl(text) {
  const events = [];
  let badLines = 0;
  for (const rawLine of text.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line.trim() === "") continue;
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      badLines += 1;
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      badLines += 1;
      continue;
    }
    events.push(unwrapEvent(value));
  }
  return { events, badLines };
}

export function readJsonlFile(path) {
  return parseJsonl(readFileSync(path, "utf8"));
}
