// The official client the harness replays through: @ag-ui/client 1.0.0 (the reference),
// or, with AGUI_HARNESS_CLIENT=0.0.59, the 0.0.59 line that @copilotkit/runtime 1.75.0
// bundles (installed beside it under the npm alias @ag-ui/client-0059).
import { createRequire } from "node:module";

export const CLIENT_VERSIONS = { "1.0.0": "@ag-ui/client", "0.0.59": "@ag-ui/client-0059" };

const wanted = process.env.AGUI_HARNESS_CLIENT || "1.0.0";
const specifier = CLIENT_VERSIONS[wanted];
if (specifier === undefined) {
  throw new Error(
    `AGUI_HARNESS_CLIENT=${wanted}: unknown client (expected ${Object.keys(CLIENT_VERSIONS).join(" or ")})`,
  );
}

/** The chosen package's exports (AbstractAgent, verifyEvents, ...). */
export const client = await import(specifier);
/** Its version as installed (checked, so an alias pointing elsewhere is noticed). */
export const CLIENT_VERSION = createRequire(import.meta.url)(`${specifier}/package.json`).version;
if (CLIENT_VERSION !== wanted) {
  throw new Error(`${specifier} is ${CLIENT_VERSION}, not ${wanted}: run npm ci --prefix harness`);
}
