// The parts of the official client the /ui page uses, bundled into one ES module
// (static/vendor/agui-client.js). rxjs is the client's own dependency: the page
// must build its event Observables with this very instance for the client's pipeline.
export { AbstractAgent, verifyEvents } from "@ag-ui/client";
export { Observable } from "rxjs";
