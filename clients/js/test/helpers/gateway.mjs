// Starts the real agui-gateway (Python) with its scripted demo agent on a free loopback port.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const CLIENT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const REPO_ROOT = resolve(CLIENT_DIR, "..", "..");

export function pythonExecutable() {
  const python = process.env.AGUI_PYTHON || resolve(CLIENT_DIR, "../../.venv/bin/python");
  if (python.includes("/") && !existsSync(python)) {
    throw new Error(
      `no Python at ${python}: set AGUI_PYTHON, or create the venv (bash scripts/test.sh, or ` +
        `python3 -m venv .venv && .venv/bin/pip install -e '.[test]' in the repository root)`,
    );
  }
  return python;
}

/** A port nothing listens on right now (the kernel's pick, released at once). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * `python -m agui_gateway serve --demo --port P --data DIR` and waits for /healthz.
 * `pace` scales the demo agent's pauses (1: like a model streaming; 0: none).
 */
export async function startGateway({ pace = 0.2, extraArgs = [] } = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "agui-js-client-"));
  const args = [
    "-m", "agui_gateway", "serve", "--demo",
    "--host", "127.0.0.1", "--port", String(port), "--data", dataDir,
    "--demo-pace", String(pace), "--fsync", "never", "--log-level", "warning",
    ...extraArgs,
  ];
  const child = spawn(pythonExecutable(), args, {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
  });
  let output = "";
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  const exit = new Promise((r) => child.on("exit", (code, signal) => { exited = { code, signal }; r(exited); }));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`the gateway exited (${JSON.stringify(exited)}):\n${output}`);
    try {
      const response = await fetch(`${base}/healthz`);
      if (response.ok) {
        await response.text();
        break;
      }
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the gateway did not answer /healthz within 30 s:\n${output}`);
    }
    await sleep(50);
  }
  return {
    port,
    base,
    dataDir,
    runUrl: `${base}/agents/demo/run`,
    output: () => output,
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exit;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
