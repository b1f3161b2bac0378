// The gateway's HTTP API as the /ui page calls it: the token, JSON calls, agents and runs.
import { errorOf } from "./sse.js";
import { $, el, randomId } from "./dom.js";

export const API = new URL("../", window.location.href.split("#")[0]); // the page lives at /ui/
const TOKEN_KEY = "agui-gateway-token";

const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
};

export function authHeaders() {
  const value = token.get();
  return value ? { authorization: `Bearer ${value}` } : {};
}

class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = authHeaders();
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["content-type"] = "application/json"; // the gateway refuses other bodies
    init.body = JSON.stringify(body);
  }
  const response = await fetch(new URL(path, API), init);
  if (!response.ok) {
    const failure = new ApiFailure(response.status, await errorOf(response));
    if (response.status === 401) askForToken(failure.message);
    throw failure;
  }
  return raw ? response : response.json();
}

export function askForToken(reason) {
  const dialog = $("#auth");
  $("#auth-reason").textContent = reason || "This gateway needs a bearer token.";
  $("#auth-token").value = "";
  dialog.hidden = false;
  $("#auth-token").focus();
}

/** The token dialog; `onToken` runs once the user has entered one. */
export function setupAuth(onToken) {
  $("#auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token.set($("#auth-token").value.trim());
    $("#auth").hidden = true;
    onToken();
  });
  $("#auth-forget").addEventListener("click", () => {
    token.set(null);
    askForToken("Token forgotten. Enter a token to continue.");
  });
}

// -- agents and runs ----------------------------------------------------------------------

export async function loadAgents() {
  try {
    const { agents } = await api("agents");
    for (const select of document.querySelectorAll("select.agents")) {
      const current = select.value;
      select.replaceChildren(...agents.map((name) => el("option", { value: name, text: name })));
      if (agents.length === 0) select.append(el("option", { value: "", text: "no agents configured" }));
      if (agents.includes(current)) select.value = current;
      else if (agents.includes("demo")) select.value = "demo";
      // Runs need an agent: serve with --demo or --agent NAME=URL.
      select.form.querySelector("button[type=submit]").disabled = agents.length === 0;
    }
  } catch {
    // shown by the list/thread error already (e.g. a missing token)
  }
}

/** POST /agents/{agent}/run; the run's events reach the page through the thread stream. */
export async function startRun(agent, threadId, messages, state, text) {
  const input = {
    threadId,
    runId: randomId("run"),
    state: state ?? {},
    messages: [...messages, { id: randomId("user"), role: "user", content: text }],
    tools: [],
    context: [],
    forwardedProps: {},
  };
  const response = await api(`agents/${encodeURIComponent(agent)}/run`, { method: "POST", body: input, raw: true });
  // The run goes on without its caller: the thread stream shows it, so its own stream is not read.
  await response.body?.cancel();
}
