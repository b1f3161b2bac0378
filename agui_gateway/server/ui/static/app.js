// The gateway's thread browser: a thread list and a thread view, routed by the URL's
// hash (#/, #/threads/{id}, #/threads/{id}?run=R and #/threads/{id}?turns=all). An AG-UI client of its own gateway: a thread's events
// come from GET /threads/{t}/events (fresh replay, then the live tail) and go through
// the official @ag-ui/client pipeline (vendor/agui-client.js, built from ui/ at the
// repository root), which holds the messages and state rendered here.
import { loadAgents, setupAuth } from "./api.js";
import { $ } from "./dom.js";
import { closeFeed, openFeed, renderList, setupList } from "./threads-list.js";
import { ThreadView, setupThread } from "./thread-view.js";

let view = null; // the open thread's ThreadView

function route() {
  // #/threads/{id}: the live thread, opened with its latest turns; ?turns=all: its whole
  // history at once; ?run=R: as it was right after run R.
  const match = window.location.hash.match(/^#\/threads\/([^?]+)(?:\?(.*))?$/);
  view?.close();
  view = null;
  if (match) {
    closeFeed();
    $("#list-view").hidden = true;
    $("#thread-view").hidden = false;
    const query = new URLSearchParams(match[2] ?? "");
    const runId = query.get("run");
    view = new ThreadView(decodeURIComponent(match[1]), runId, {
      wholeHistory: query.get("turns") === "all",
      // Deleted and written again meanwhile: what the view holds is the old thread's; open the new one.
      onRecreated: () => route(),
    });
    view.open();
  } else {
    $("#thread-view").hidden = true;
    $("#list-view").hidden = false;
    openFeed();
  }
  loadAgents();
}

setupAuth(() => {
  closeFeed(); // reopened with the new token
  route();
});
setupList();
setupThread(() => view);
setInterval(() => {
  if (!$("#list-view").hidden) renderList(); // keeps "last activity" ages current
}, 10_000);
window.addEventListener("hashchange", route);
// For tests and curious operators: what the open thread view received.
window.aguiUi = {
  get view() {
    return view;
  },
};
route();
