// Resume latency of GatewayAgent at its default backoff: from the moment a connection is
// cut to the first event of the resumed stream reaching the application (onEvent).
//
//   node bench/resume-latency.mjs [--cuts 20] [--pace 1] [--seed 7]
//
// Starts the real gateway (AGUI_PYTHON, default ../../.venv/bin/python) with its demo agent
// on loopback, puts a cutting TCP proxy in front of it, and runs demo runs through
// GatewayAgent; every connection of a run (the POST and each resumed /events stream) is
// cut after 600-1600 bytes of events until the wanted number of cuts is reached.
import { performance } from "node:perf_hooks";
import { GatewayAgent } from "../dist/index.js";
import { startGateway } from "../test/helpers/gateway.mjs";
import { CutProxy } from "../test/helpers/proxy.mjs";
import { rng } from "../test/helpers/truth.mjs";

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(process.argv[index + 1]);
}

const wantedCuts = option("cuts", 20);
const pace = option("pace", 1);
const random = rng(option("seed", 7));

function percentile(sorted, p) {
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

const gateway = await startGateway({ pace });
const latencies = [];
const noticed = [];
let runs = 0;
try {
  while (latencies.length < wantedCuts) {
    runs++;
    const cutsLeft = wantedCuts - latencies.length;
    let connections = 0;
    const proxy = new CutProxy(gateway.port, ({ path }) => {
      if (!path.includes("/run") && !path.includes("/events")) return null;
      if (connections++ >= cutsLeft) return null;
      // Cut once 600-1600 bytes of events have passed the end of the response headers.
      return { at: "\r\n\r\n", offset: 600 + Math.floor(random() * 1000) };
    });
    await proxy.listen();
    const reconnects = []; // performance.now() when the client noticed each cut
    const firstAfter = []; // first event after each reconnect
    const agent = new GatewayAgent({
      url: proxy.url("/agents/demo/run"),
      threadId: `bench-${runs}-${Date.now()}`,
      initialMessages: [{ id: "u1", role: "user", content: "What is the weather in Paris and Lima?" }],
      onReconnect: () => reconnects.push(performance.now()),
    });
    await agent.runAgent(
      {},
      {
        onEvent: () => {
          if (reconnects.length > firstAfter.length) firstAfter.push(performance.now());
        },
      },
    );
    await proxy.close();
    const count = Math.min(proxy.cuts.length, reconnects.length, firstAfter.length);
    for (let i = 0; i < count && latencies.length < wantedCuts; i++) {
      latencies.push(firstAfter[i] - proxy.cuts[i].time);
      noticed.push(reconnects[i] - proxy.cuts[i].time);
    }
    if (proxy.cuts.length === 0) throw new Error("the proxy cut nothing");
  }
} finally {
  await gateway.stop();
}

const sorted = [...latencies].sort((a, b) => a - b);
const fmt = (ms) => `${ms.toFixed(1)} ms`;
const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
const noticedSorted = [...noticed].sort((a, b) => a - b);
console.log(`GatewayAgent resume latency, default backoff (first retry after 80-100 ms), demo pace ${pace}`);
console.log(`${latencies.length} cuts over ${runs} runs on loopback`);
console.log(
  `cut -> first resumed event: median ${fmt(percentile(sorted, 50))}, p95 ${fmt(percentile(sorted, 95))}, ` +
    `min ${fmt(sorted[0])}, max ${fmt(sorted.at(-1))}, mean ${fmt(mean)}`,
);
console.log(
  `cut -> cut noticed by the client: median ${fmt(percentile(noticedSorted, 50))}, ` +
    `max ${fmt(noticedSorted.at(-1))}`,
);
console.log(`all: ${latencies.map((ms) => Math.round(ms)).join(" ")}`);
const target = 1000;
if (percentile(sorted, 95) >= target) {
  console.log(`p95 is not under the ${target} ms target`);
  process.exitCode = 1;
}
