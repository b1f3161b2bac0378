// One thread: its events through the official client (a resumable stream of
// GET /threads/{t}/events?turns=N: its latest turns, the older messages paged in from
// GET /threads/{t}/messages as the reader scrolls up), the conversation, state, run
// badge, reconnect figures, actions.
import { AbstractAgent, Observable } from "./vendor/agui-client.js";
import { BranchStream, ResumableStream } from "./sse.js";
import { renderJsonTree } from "./tree.js";
import { API, api, authHeaders, startRun } from "./api.js";
import { $, el, formatBytes, prettyJson, showError, textOf } from "./dom.js";
import { renderRuns } from "./runs-timeline.js";

const MESSAGE_WINDOW = 60; // messages rendered at first; more as the reader scrolls up
const OPEN_TURNS = 10; // the turns a thread opens with; older messages come in pages of MESSAGE_WINDOW
const HISTORY_WINDOW_EVENT = "agui_gateway.history_window";
const INTERRUPTED_CODES = new Set(["gateway_restarted"]);
// A stop: RUN_FINISHED with AG-UI 1.0's cancelled outcome, or (logs written before it) RUN_ERROR "stopped".
const STOPPED_CODE = "stopped";

/** An agent whose transport is the gateway's thread stream (resumable, never a duplicate). */
class GatewayThreadAgent extends AbstractAgent {
  constructor(threadId, stream) {
    super({ threadId });
    this.stream = stream;
  }

  connect() {
    return new Observable((subscriber) => {
      this.stream.onEvents = (events) => {
        performance.mark("agui:events");
        for (const event of events) subscriber.next(event);
      };
      this.stream.onEnd = () => subscriber.complete(); // a branch's stream ends; the live one never does
      this.stream.run();
      return () => this.stream.stop();
    });
  }

  run() {
    throw new Error("runs are started with POST /agents/{agent}/run; this agent only watches");
  }
}

export class ThreadView {
  /** `runId`: the thread as it was right after that run (`?run=`), read once; otherwise live.
   * `onRecreated`: the thread was deleted and written again under the view (its ids are of
   * the old thread): the page opens it afresh. */
  constructor(threadId, runId = null, { wholeHistory = false, onRecreated = null } = {}) {
    this.threadId = threadId;
    this.runId = runId;
    this.stats = { connects: 0, frames: 0, events: 0, bytes: 0, dropped: 0, firstPaintMs: null };
    this.opened = performance.now();
    this.messages = [];
    this.state = {};
    this.stateDirty = true; // shown even when no state event ever comes
    this.run = null; // {status, message}
    this.runErrors = []; // {after, message, code, stopped}
    this.window = MESSAGE_WINDOW;
    this.olderCursor = null; // the page of messages before those held (null: none older)
    this.loadingOlder = null;
    this.nodes = new Map(); // message id -> {sig, node}
    this.frame = 0;
    this.closed = false;
    const url = new URL(`threads/${encodeURIComponent(threadId)}/events`, API);
    // A run's branch replays whole (time travel); the live thread opens with its latest turns.
    if (runId !== null) url.searchParams.set("run", runId);
    else if (!wholeHistory) url.searchParams.set("turns", String(OPEN_TURNS));
    this.stream = new (runId === null ? ResumableStream : BranchStream)(url, {
      headers: authHeaders,
      stats: this.stats,
      onStatus: (status) => this.setStatus(status),
      onFatal: (error) => this.fail(error),
      onRecreated: () => {
        if (!this.closed) onRecreated?.();
      },
    });
    this.agent = new GatewayThreadAgent(threadId, this.stream);
    this.agent.subscribe({
      onMessagesChanged: ({ messages }) => {
        performance.mark("agui:messages");
        this.messages = messages;
        this.schedule();
      },
      onCustomEvent: ({ event }) => {
        if (event.name === HISTORY_WINDOW_EVENT) {
          this.olderCursor = event.value?.before ?? null;
          this.schedule();
        }
      },
      onStateChanged: ({ state }) => {
        this.state = state;
        this.stateDirty = true;
        this.schedule();
      },
      onRunStartedEvent: ({ event }) => {
        this.run = { status: "open", runId: event.runId };
        this.schedule();
      },
      onRunFinishedEvent: ({ outcome }) => {
        const status = { success: "finished", cancelled: "stopped" }[outcome] ?? "interrupted";
        this.run = { status, outcome };
        if (status === "stopped") this.runErrors.push({ after: this.messages.length, stopped: true, key: this.runErrors.length });
        this.schedule();
        this.refreshInfo();
      },
      onRunErrorEvent: ({ event }) => {
        const stopped = event.code === STOPPED_CODE;
        const status = stopped ? "stopped" : INTERRUPTED_CODES.has(event.code) ? "interrupted" : "error";
        this.run = { status, message: event.message, code: event.code };
        this.runErrors.push({ after: this.messages.length, message: event.message, code: event.code, stopped, key: this.runErrors.length });
        this.schedule();
        this.refreshInfo();
      },
    });
  }

  open() {
    $("#thread-title").textContent = this.threadId;
    const past = this.runId !== null;
    $("#composer").hidden = past;
    $("#stop-run").hidden = past;
    $("#run-view-note").hidden = !past;
    if (past) {
      $("#run-view-run").textContent = this.runId;
      $("#run-view-live").href = `#/threads/${encodeURIComponent(this.threadId)}`;
    }
    $("#thread-error").hidden = true;
    $("#messages").replaceChildren();
    $("#state-tree").replaceChildren();
    $("#thread-body").hidden = false;
    this.expanded = new Set([""]);
    this.refreshInfo();
    this.agent.connectAgent().catch((error) => {
      if (!this.closed) this.fail(error);
    });
    this.render();
  }

  close() {
    this.closed = true;
    this.stream.stop();
    this.agent.detachActiveRun?.().catch(() => {});
    cancelAnimationFrame(this.frame);
    clearTimeout(this.infoTimer);
  }

  setStatus(status) {
    const node = $("#stream-status");
    node.textContent = status;
    node.className = `status ${status}`;
  }

  fail(error) {
    const box = $("#thread-error");
    const status = error.status ? `${error.status}: ` : "";
    box.textContent =
      error.status === 403
        ? `Access denied: ${error.message}. This token cannot read thread “${this.threadId}”.`
        : `${status}${error.message}`;
    box.hidden = false;
    if (error.status === 403 || error.status === 401) $("#thread-body").hidden = true;
  }

  async refreshRuns() {
    try {
      const { runs } = await api(`threads/${encodeURIComponent(this.threadId)}/runs`);
      if (!this.closed) renderRuns($("#run-rows"), this.threadId, runs, this.runId);
    } catch (error) {
      // A network failure (offline, a restart) is passing: the next refresh, at the next run
      // event or in 2 s, tries again while the stream itself resumes. An answer is shown.
      if (error.status !== undefined && error.status !== 404 && error.status !== 403) {
        showError($("#thread-error"), error);
      }
    }
  }

  async refreshInfo() {
    clearTimeout(this.infoTimer);
    this.refreshRuns();
    try {
      const info = await api(`threads/${encodeURIComponent(this.threadId)}/info`);
      if (this.closed) return;
      this.info = info;
      this.renderNumbers();
    } catch (error) {
      if (error.status === 404) this.info = null;
      else if (error.status === 403) this.fail(error);
    }
    if (!this.closed && this.run?.status === "open") this.infoTimer = setTimeout(() => this.refreshInfo(), 2000);
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    if (this.closed) return;
    performance.mark("agui:render-start");
    this.renderBadge();
    this.renderMessages();
    performance.mark("agui:messages-rendered");
    if (this.stateDirty) {
      this.stateDirty = false;
      renderJsonTree($("#state-tree"), this.state, this.expanded);
    }
    this.renderNumbers();
    performance.mark("agui:render");
    if (this.stats.firstPaintMs === null && this.stats.events > 0) {
      this.stats.firstPaintMs = Math.round(performance.now() - this.opened);
    }
  }

  renderBadge() {
    const badge = $("#run-badge");
    const status = this.run?.status ?? "none";
    badge.className = `badge ${status}`;
    badge.textContent = { none: "no run yet", open: "run open", finished: "finished", error: "error", interrupted: "interrupted", stopped: "stopped" }[status];
    badge.title = this.run?.message ? `${this.run.code ?? ""} ${this.run.message}` : "";
    $("#stop-run").disabled = status !== "open";
  }

  renderNumbers() {
    const info = this.info;
    const parts = [];
    if (info) {
      parts.push(`stored: ${info.events.toLocaleString("en")} events, ${formatBytes(info.bytes)}`);
      const ratio = info.bytes ? ((info.replay.bytes / info.bytes) * 100).toFixed(1) : "0";
      parts.push(`fresh replay: ${info.replay.frames.toLocaleString("en")} frames, ${formatBytes(info.replay.bytes)} (${ratio}% of the log)`);
    }
    const s = this.stats;
    parts.push(
      `this page: ${s.frames.toLocaleString("en")} frames, ${formatBytes(s.bytes)} received, ${s.events.toLocaleString("en")} events applied` +
        (s.connects > 1 ? `, resumed ${s.connects - 1}×` : "") +
        (s.firstPaintMs !== null ? `, first paint ${s.firstPaintMs} ms` : ""),
    );
    $("#numbers").replaceChildren(...parts.map((text) => el("li", { text })));
  }

  /** Messages as rendered: tool results sit beside their calls, not on their own. */
  visibleItems() {
    const results = new Map();
    const callIds = new Set();
    for (const message of this.messages) {
      if (message.role === "tool" && message.toolCallId) results.set(message.toolCallId, message);
      if (message.role === "assistant") for (const call of message.toolCalls ?? []) callIds.add(call.id);
    }
    const items = [];
    let errorIndex = 0;
    const errors = this.runErrors;
    this.messages.forEach((message, index) => {
      while (errorIndex < errors.length && errors[errorIndex].after <= index) items.push({ error: errors[errorIndex++] });
      if (message.role === "tool" && callIds.has(message.toolCallId)) return;
      items.push({ message, results });
    });
    while (errorIndex < errors.length) items.push({ error: errors[errorIndex++] });
    return items;
  }

  renderMessages() {
    const container = $("#messages");
    const items = this.visibleItems();
    const start = Math.max(0, items.length - this.window);
    const wanted = [];
    if (start > 0 || this.olderCursor !== null) {
      wanted.push(this.moreButton(start));
    }
    const pinned = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    const seen = new Set();
    for (const item of items.slice(start)) {
      const key = item.error ? `error:${item.error.key}` : `m:${item.message.id}`;
      seen.add(key);
      const sig = item.error ? "e" : signature(item.message, item.results);
      let entry = this.nodes.get(key);
      if (!entry || entry.sig !== sig) {
        const node = item.error ? renderRunError(item.error) : renderMessage(item.message, item.results);
        entry = { sig, node };
        this.nodes.set(key, entry);
      }
      wanted.push(entry.node);
    }
    for (const key of this.nodes.keys()) if (!seen.has(key)) this.nodes.delete(key);
    // Move only what moved: streaming a long thread touches one node per frame.
    let current = container.firstChild;
    for (const node of wanted) {
      if (current === node) {
        current = current.nextSibling;
      } else {
        container.insertBefore(node, current);
      }
    }
    while (current) {
      const next = current.nextSibling;
      current.remove();
      current = next;
    }
    $("#messages-empty").hidden = items.length > 0;
    if (pinned) container.scrollTop = container.scrollHeight;
  }

  moreButton(hidden) {
    if (!this.more) {
      this.more = el("button", { class: "more", type: "button" });
      this.more.addEventListener("click", async () => {
        const container = $("#messages");
        const hidden = this.visibleItems().length > this.window;
        if (!hidden && this.olderCursor !== null) await this.loadOlder();
        const before = container.scrollHeight - container.scrollTop;
        this.window += MESSAGE_WINDOW;
        this.renderMessages();
        container.scrollTop = container.scrollHeight - before;
      });
      // Reaching the top loads the next batch: long threads render lazily, in windows.
      this.moreObserver = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting) && this.more.isConnected) this.more.click();
      });
      this.moreObserver.observe(this.more);
    }
    this.more.textContent =
      hidden > 0 ? `show ${Math.min(hidden, MESSAGE_WINDOW)} earlier (${hidden} hidden)` : "load earlier messages";
    return this.more;
  }

  /** The page of messages before those held, put in front of them (once at a time). */
  loadOlder() {
    this.loadingOlder ??= (async () => {
      const before = this.olderCursor;
      try {
        const query = new URLSearchParams({ before, limit: String(MESSAGE_WINDOW) });
        const page = await api(`threads/${encodeURIComponent(this.threadId)}/messages?${query}`);
        if (this.closed || this.olderCursor !== before) return;
        const held = new Set(this.agent.messages.map((m) => m.id));
        // A branch's snapshot may have brought the whole conversation in meanwhile.
        const older = page.messages.filter((m) => !held.has(m.id));
        this.olderCursor = older.length === page.messages.length ? page.before : null;
        for (const error of this.runErrors) error.after += older.length;
        this.agent.setMessages([...older, ...this.agent.messages]);
      } catch (error) {
        if (!this.closed) this.fail(error);
      } finally {
        this.loadingOlder = null;
      }
    })();
    return this.loadingOlder;
  }
}

function signature(message, results) {
  let sig = `${message.role}:${textOf(message.content).length}`;
  if (message.role === "assistant") {
    for (const call of message.toolCalls ?? []) {
      const result = results.get(call.id);
      sig += `|${call.function?.arguments?.length ?? 0}:${result ? textOf(result.content).length : -1}`;
    }
  }
  if (message.role === "activity") sig += JSON.stringify(message.content).length;
  return sig;
}

function renderMessage(message, results) {
  const role = message.role;
  const box = el("article", { class: `message ${role}`, dataset: { messageId: message.id, role } });
  if (role === "reasoning") {
    box.append(el("details", {}, el("summary", { text: "reasoning" }), el("div", { class: "text", text: textOf(message.content) })));
    return box;
  }
  if (role === "activity") {
    box.append(el("div", { class: "role", text: `activity · ${message.activityType ?? ""}` }));
    const tree = el("div", { class: "tree" });
    renderJsonTree(tree, message.content, new Set([""]), "content");
    box.append(tree);
    return box;
  }
  box.append(el("div", { class: "role", text: role === "tool" ? `tool result · ${message.toolCallId ?? ""}` : role }));
  const text = textOf(message.content);
  if (text) box.append(el("div", { class: "text", text }));
  if (role === "assistant") {
    for (const call of message.toolCalls ?? []) {
      const result = results.get(call.id);
      box.append(
        el(
          "div",
          { class: "tool-call", dataset: { toolCallId: call.id } },
          el("div", { class: "call" }, el("div", { class: "label", text: `${call.function?.name ?? "tool"}(…)` }), el("pre", { text: prettyJson(call.function?.arguments ?? "") })),
          el(
            "div",
            { class: `result ${result ? "" : "pending"}` },
            el("div", { class: "label", text: result ? "result" : "waiting for result" }),
            el("pre", { text: result ? prettyJson(textOf(result.content)) : "" }),
          ),
        ),
      );
    }
  }
  return box;
}

function renderRunError(error) {
  if (error.stopped) {
    // A user's own stop is no failure: said plainly, without the code of a fault.
    return el("div", { class: "run-error stopped", role: "status" }, el("strong", { text: "run stopped" }), error.message ? `: ${error.message}` : "");
  }
  const interrupted = INTERRUPTED_CODES.has(error.code);
  return el(
    "div",
    { class: `run-error ${interrupted ? "interrupted" : ""}`, role: "alert" },
    el("strong", { text: interrupted ? "run interrupted" : "run error" }),
    error.code ? ` (${error.code})` : "",
    `: ${error.message ?? ""}`,
  );
}

async function download(view, compact) {
  const threadId = view.threadId;
  const query = compact ? "?compact=1" : "";
  try {
    const response = await api(`threads/${encodeURIComponent(threadId)}/log.jsonl${query}`, { raw: true });
    const blob = await response.blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: `${threadId}${compact ? ".compact" : ""}.jsonl` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (error) {
    view.fail(error);
  }
}

/** The thread view's controls; `currentView()` is the open thread's ThreadView. */
export function setupThread(currentView) {
  $("#composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("#composer-text").value.trim();
    const view = currentView();
    if (!text || !view) return;
    $("#composer-error").hidden = true;
    try {
      await startRun($("#composer-agent").value, view.threadId, view.messages, view.state, text);
      $("#composer-text").value = "";
    } catch (error) {
      showError($("#composer-error"), error);
    }
  });
  $("#composer-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#composer").requestSubmit();
  });
  $("#stop-run").addEventListener("click", async () => {
    try {
      // Names the run shown open: a run that ended meanwhile is not mistaken for the next one.
      const view = currentView();
      const runId = view.run?.status === "open" ? view.run.runId : undefined;
      const query = runId ? `?runId=${encodeURIComponent(runId)}` : "";
      await api(`threads/${encodeURIComponent(view.threadId)}/stop${query}`, { method: "POST", body: {} });
    } catch (error) {
      showError($("#composer-error"), error);
    }
  });
  $("#download-raw").addEventListener("click", () => download(currentView(), false));
  $("#download-compact").addEventListener("click", () => download(currentView(), true));
}
