// A thread's runs as a timeline (GET /threads/{t}/runs): each run's status, start, duration,
// time to its first event, records and bytes, and the run it forks from when it is a branch
// (an edit or a regenerate). Each run links to the thread as it was right after it (?run=).
import { el, formatBytes } from "./dom.js";

const STATUS_LABEL = { running: "running", finished: "finished", cancelled: "stopped", error: "error", interrupted: "interrupted" };
const STATUS_CLASS = { running: "open", cancelled: "stopped" }; // the badge classes the page already has

function formatMs(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** The link that shows the thread right after `runId` (the live thread for `null`). */
export function runLink(threadId, runId) {
  const base = `#/threads/${encodeURIComponent(threadId)}`;
  return runId === null ? base : `${base}?run=${encodeURIComponent(runId)}`;
}

export function renderRuns(tbody, threadId, runs, selected) {
  const now = Date.now();
  const spans = runs.filter((r) => r.startedAt !== null).map((r) => [r.startedAt, r.startedAt + (r.durationMs ?? Math.max(0, now - r.startedAt))]);
  const t0 = Math.min(...spans.map((s) => s[0]));
  const t1 = Math.max(...spans.map((s) => s[1]), t0 + 1);
  const rows = runs.map((run) => {
    const status = run.status;
    const bar = el("div", { class: `bar ${STATUS_CLASS[status] ?? status}` });
    if (run.startedAt !== null) {
      const end = run.startedAt + (run.durationMs ?? Math.max(0, now - run.startedAt));
      bar.style.left = `${((run.startedAt - t0) / (t1 - t0)) * 100}%`;
      bar.style.width = `max(3px, ${((end - run.startedAt) / (t1 - t0)) * 100}%)`;
    }
    const fork = run.branch ? el("div", { class: "fork muted", text: `fork of ${run.parentRunId ?? "the empty thread"}` }) : null;
    const current = run.runId === selected;
    return el(
      "tr",
      { class: current ? "selected" : "", dataset: { runId: run.runId ?? "" }, "aria-current": current ? "true" : null },
      el("td", { class: "run-id" }, el("a", { href: runLink(threadId, run.runId), text: run.runId ?? "(no run id)" }), fork),
      el("td", {}, el("span", { class: `badge ${STATUS_CLASS[status] ?? status}`, text: STATUS_LABEL[status] ?? status })),
      el("td", { text: run.startedAt === null ? "" : new Date(run.startedAt).toLocaleTimeString("en-GB") }),
      el("td", { class: "num", text: run.durationMs === null ? "…" : formatMs(run.durationMs) }),
      el("td", { class: "num", text: formatMs(run.firstEventMs) }),
      el("td", { class: "num", text: run.events.toLocaleString("en") }),
      el("td", { class: "num", text: formatBytes(run.bytes) }),
      el("td", { class: "timeline" }, bar),
    );
  });
  tbody.replaceChildren(...rows);
}
