#!/usr/bin/env node
// A CopilotKit runtime (@copilotkit/runtime 1.75.0) served over HTTP whose runner is
// GatewayAgentRunner: what an application deploys, one process per instance.
//
//   node runtime-server.mjs GATEWAY_BASE_URL AGENT_NAME [--keep-cancelled-outcome]
//
// Listens on a free loopback port and prints one line, {"url": "<runtime base URL>"}.
// The runtime's agent entry is an HttpAgent of the client the runtime bundles (0.0.59);
// the runner never runs it: the gateway runs the agent.
import { createServer } from "node:http";
import { HttpAgent } from "@ag-ui/client-0059";
import { CopilotRuntime } from "@copilotkit/runtime/v2";
import { createCopilotNodeListener } from "@copilotkit/runtime/v2/node";
import { GatewayAgentRunner } from "../../../dist/copilotkit.js";

const [gateway, agentName, ...flags] = process.argv.slice(2);
if (!gateway || !agentName) {
  process.stderr.write("usage: node runtime-server.mjs GATEWAY_BASE_URL AGENT_NAME\n");
  process.exit(2);
}
export const BASE_PATH = "/api/copilotkit";

const runtime = new CopilotRuntime({
  agents: { [agentName]: new HttpAgent({ url: `${gateway}/agents/${agentName}/run` }) },
  runner: new GatewayAgentRunner({
    baseUrl: gateway,
    agent: agentName,
    keepCancelledOutcome: flags.includes("--keep-cancelled-outcome"),
  }),
});
const listener = createCopilotNodeListener({ runtime, basePath: BASE_PATH, activateChannels: false });
const server = createServer(listener);
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.address().port}${BASE_PATH}` })}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
