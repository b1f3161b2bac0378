// The thread list: one page at a time, newest activity first, kept current by the
// changes feed (GET /threads/changes) rather than by polling every thread.
import { errorOf, sseFrames } from "./sse.js";
import { API, api, askForToken, authHeaders, startRun } from "./api.js";
import { $, el, formatAgo, formatBytes, randomId, showError } from "./dom.js";

const PAGE_SIZE = 25;

const list = {
  rows: [],
  prefix: "",
  cursors: [null], // cursor of each page visited; the last is the current page's
  next: null,
  feed: null,
  loading: 0,
};

function sortKey(row) {
  return [-(row.lastActivity || 0), row.threadId];
}

function compareRows(a, b) {
  const ka = sortKey(a);
  const kb = sortKey(b);
  if (ka[0] !== kb[0]) return ka[0] - kb[0];
  return ka[1] < kb[1] ? -1 : ka[1] > kb[1] ? 1 : 0;
}

export async function loadList() {
  const ticket = ++list.loading;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (list.prefix) params.set("prefix", list.prefix);
  const cursor = list.cursors[list.cursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  try {
    const page = await api(`threads?${params}`);
    if (ticket !== list.loading) return;
    list.rows = page.threads;
    list.next = page.next;
    $("#list-error").hidden = true;
    renderList();
  } catch (error) {
    if (ticket !== list.loading) return;
    showError($("#list-error"), error);
  }
}

function applyChange(row) {
  if (!row.threadId.startsWith(list.prefix)) return;
  const index = list.rows.findIndex((r) => r.threadId === row.threadId);
  const firstPage = list.cursors.length === 1;
  if (index >= 0) list.rows[index] = row;
  else if (firstPage) list.rows.push(row);
  else return;
  if (firstPage) {
    list.rows.sort(compareRows);
    if (list.rows.length > PAGE_SIZE) {
      list.rows.length = PAGE_SIZE;
      if (!list.next) loadList(); // a page follows now: ask for its cursor
    }
  }
  renderList(row.threadId);
}

// A thread deleted (DELETE /threads/{t}, the CLI, retention) leaves the list at once.
function applyDeletion(threadId) {
  const index = list.rows.findIndex((r) => r.threadId === threadId);
  if (index < 0) return;
  list.rows.splice(index, 1);
  renderList(null);
}

export function renderList(changed) {
  const body = $("#thread-rows");
  body.replaceChildren(
    ...list.rows.map((row) =>
      el(
        "tr",
        { dataset: { threadId: row.threadId }, class: row.threadId === changed ? "changed" : null },
        el("td", {}, el("a", { href: `#/threads/${encodeURIComponent(row.threadId)}`, text: row.threadId })),
        el("td", { class: "num", text: row.events.toLocaleString("en") }),
        el("td", { class: "num", text: formatBytes(row.bytes) }),
        el("td", { text: formatAgo(row.lastActivity), title: row.lastActivity ? new Date(row.lastActivity).toISOString() : "" }),
        el("td", {}, row.running ? el("span", { class: "badge open", text: "running" }) : ""),
      ),
    ),
  );
  $("#list-empty").hidden = list.rows.length > 0;
  $("#list-empty").textContent = list.prefix ? `No thread id starts with “${list.prefix}”.` : "No threads yet.";
  $("#page-prev").disabled = list.cursors.length === 1;
  $("#page-next").disabled = !list.next;
  $("#page-number").textContent = `page ${list.cursors.length}`;
}

export function openFeed() {
  if (list.feed) return;
  const feed = { stopped: false, connection: null };
  list.feed = feed;
  feed.stop = () => {
    feed.stopped = true;
    feed.connection?.abort();
  };
  (async () => {
    let backoff = 250;
    while (!feed.stopped) {
      feed.connection = new AbortController();
      try {
        const response = await fetch(new URL("threads/changes", API), {
          headers: authHeaders(),
          signal: feed.connection.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const message = await errorOf(response);
          if (response.status === 401) askForToken(message);
          if (response.status >= 400 && response.status < 500) {
            if (list.feed === feed) list.feed = null; // opened again once a token is entered
            return;
          }
          throw new Error(message);
        }
        backoff = 250;
        $("#feed-status").textContent = "live";
        for await (const frame of sseFrames(response.body)) {
          if (frame.event === "ready") loadList(); // after the feed is open: no change is missed
          else if (frame.event === "thread") applyChange(JSON.parse(frame.data));
          else if (frame.event === "thread_deleted") applyDeletion(JSON.parse(frame.data).threadId);
        }
      } catch {
        if (feed.stopped) return;
      }
      $("#feed-status").textContent = "reconnecting";
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 4000);
    }
  })();
}

export function closeFeed() {
  list.feed?.stop();
  list.feed = null;
}

// Going offline leaves a streaming response hanging in some browsers: drop it, and
// reconnect (the thread view resumes after the last event id it applied).
window.addEventListener("offline", () => list.feed?.connection?.abort());

export function setupList() {
  let timer = null;
  $("#filter").addEventListener("input", (event) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      list.prefix = event.target.value.trim();
      list.cursors = [null];
      loadList();
    }, 150);
  });
  $("#page-next").addEventListener("click", () => {
    if (!list.next) return;
    list.cursors.push(list.next);
    loadList();
  });
  $("#page-prev").addEventListener("click", () => {
    if (list.cursors.length > 1) list.cursors.pop();
    loadList();
  });
  $("#new-run").addEventListener("submit", async (event) => {
    event.preventDefault();
    const threadId = $("#new-thread-id").value.trim() || randomId("thread");
    const text = $("#new-message").value.trim();
    if (!text) return;
    try {
      await startRun($("#new-agent").value, threadId, [], null, text);
      $("#new-message").value = "";
      $("#new-thread-id").value = "";
      window.location.hash = `#/threads/${encodeURIComponent(threadId)}`;
    } catch (error) {
      showError($("#list-error"), error);
    }
  });
}
