// Many SSE subscribers of one gateway stream, each checking it gets every tick exactly
// once and measuring publish-to-deliver latency; prints one JSON summary line.
//
//   node bench/sse_subscribers.mjs PORT PATH CLIENTS TICKS DEADLINE_S
//
// Used by bench/replicas_bench.py. Node and not Python because the measuring process
// must stay cheap beside the gateway it measures on a small machine: a thousand Python
// subscribers parsing 200 ticks a second each took most of a core, and their own delay
// showed up as the gateway's latency. Raw sockets: the body is HTTP/1.1 chunked, and
// the gateway's sends may cut an SSE frame anywhere, so chunks are taken apart first.
import net from "node:net";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";

const [port, path, clientCount, tickCount, deadlineS] = process.argv.slice(2);
const clients = Number(clientCount);
const ticks = Number(tickCount);
const TICK = /"i":(\d+),"t":([0-9.]+)/g;
const nowSeconds = () => (performance.timeOrigin + performance.now()) / 1000;

const latencies = new Float64Array(clients * ticks);
// This process's own event-loop delay: a latency spike it also shows is the measurer's.
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
let samples = 0;
let complete = 0;
let finished = 0;

function subscribe() {
  const seen = new Uint8Array(ticks);
  let got = 0;
  let ok = true;
  let done = false;
  let headersDone = false;
  let raw = Buffer.alloc(0); // bytes not yet taken out of the chunked encoding
  let text = ""; // body text after the last complete SSE frame
  const socket = net.connect(Number(port), "127.0.0.1", () => {
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
  });
  const finish = () => {
    if (done) return;
    done = true;
    finished += 1;
    if (ok && got === ticks) complete += 1;
    socket.destroy();
    if (finished === clients) report();
  };
  socket.on("data", (chunk) => {
    const now = nowSeconds();
    raw = raw.length ? Buffer.concat([raw, chunk]) : chunk;
    let pos = 0;
    if (!headersDone) {
      const end = raw.indexOf("\r\n\r\n");
      if (end < 0) return;
      headersDone = true;
      pos = end + 4;
    }
    const parts = [];
    for (;;) {
      const lineEnd = raw.indexOf("\r\n", pos);
      if (lineEnd < 0) break;
      const size = parseInt(raw.toString("latin1", pos, lineEnd), 16);
      if (raw.length < lineEnd + 2 + size + 2) break;
      parts.push(raw.toString("latin1", lineEnd + 2, lineEnd + 2 + size));
      pos = lineEnd + 2 + size + 2;
    }
    raw = raw.subarray(pos);
    const data = text + parts.join("");
    const cut = data.lastIndexOf("\n\n");
    text = cut >= 0 ? data.slice(cut + 2) : data;
    if (cut < 0) return;
    const frames = data.slice(0, cut + 2);
    if (cpuBefore === null) {
      cpuBefore = process.cpuUsage();
      wallBefore = performance.now();
      loopDelay.enable();
    }
    for (const match of frames.matchAll(TICK)) {
      const index = Number(match[1]);
      if (seen[index]) ok = false; // a duplicate
      seen[index] = 1;
      got += 1;
      latencies[samples++] = now - Number(match[2]);
    }
    if (got >= ticks) finish();
  });
  socket.on("close", finish);
  socket.on("error", () => {
    ok = false;
  });
}

// The measuring process's own CPU, from the first tick on (not while it waits for the run).
let cpuBefore = null;
let wallBefore = 0;
function report() {
  const cpu = cpuBefore ? process.cpuUsage(cpuBefore) : { user: 0, system: 0 };
  const values = latencies.subarray(0, samples).sort();
  const n = values.length;
  const at = (q) => (n ? values[Math.min(n - 1, Math.floor(n * q))] * 1000 : null);
  console.log(
    JSON.stringify({
      samples: n,
      complete,
      clients,
      median_ms: at(0.5),
      p99_ms: at(0.99),
      max_ms: n ? values[n - 1] * 1000 : null,
      client_loop_delay_max_ms: loopDelay.max / 1e6,
      client_cpu_share: (cpu.user + cpu.system) / 1000 / Math.max(1, performance.now() - wallBefore),
    }),
  );
  process.exit(0);
}

for (let i = 0; i < clients; i += 1) subscribe();
setTimeout(report, Number(deadlineS) * 1000); // what has not arrived by then counts as lost
