// A TCP proxy in front of the gateway that cuts connections at chosen byte offsets.
import { connect, createServer } from "node:net";
import { performance } from "node:perf_hooks";

/**
 * Each request (one per connection) gets the next entry of `plan` (then `rest`):
 *   - a number K: forward exactly K bytes of the response (headers included), then close;
 *   - { at: "text", offset: n, occurrence: k }: cut n bytes after the start of the k-th
 *     (default first) occurrence of "text" in the response bytes (chunk framing included);
 *   - "refuse": close the connection at once (the gateway looks gone);
 *   - null / undefined: forward everything.
 * `plan` may also be a function ({index, method, path, headers}) => entry.
 * Every request gets "Connection: close", so one connection carries one request
 * and the plan applies request by request.
 */
export class CutProxy {
  constructor(targetPort, plan = [], { rest = null } = {}) {
    this.targetPort = targetPort;
    this.plan = plan;
    this.rest = rest;
    this.connections = []; // one per request (connections that never sent one are not listed)
    this.cuts = [];
    this.noClose = false; // true: leave keep-alive alone (a cut then fails the read instead of ending it)
    this.sockets = new Set();
    this.server = createServer((client) => this.accept(client));
  }

  listen() {
    return new Promise((resolve) => {
      this.server.listen(0, "127.0.0.1", () => {
        this.port = this.server.address().port;
        resolve(this.port);
      });
    });
  }

  url(path = "") {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  entryFor(info) {
    if (typeof this.plan === "function") return this.plan(info);
    return info.index < this.plan.length ? this.plan[info.index] : this.rest;
  }

  accept(client) {
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => {});
    const record = { index: -1, method: "", path: "", headers: {}, entry: null, responseBytes: 0, cut: false, refused: false };
    let head = Buffer.alloc(0);
    let upstream = null;
    let sent = 0;
    const onClientData = (chunk) => {
      if (upstream) {
        upstream.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const endOfHead = head.indexOf("\r\n\r\n");
      if (endOfHead === -1) return;
      const lines = head.subarray(0, endOfHead).toString("latin1").split("\r\n");
      const [method, path] = lines[0].split(" ");
      const index = this.connections.length;
      record.index = index;
      this.connections.push(record);
      record.method = method;
      record.path = path;
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) record.headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const entry = this.entryFor({ index, method, path, headers: record.headers });
      record.entry = entry ?? null;
      if (entry === "refuse") {
        record.refused = true;
        client.destroy();
        return;
      }
      const firstLineEnd = head.indexOf("\r\n");
      const rewritten = Buffer.concat([
        head.subarray(0, firstLineEnd + 2),
        Buffer.from(this.noClose ? "" : "Connection: close\r\n"),
        head.subarray(firstLineEnd + 2),
      ]);
      upstream = connect(this.targetPort, "127.0.0.1");
      this.sockets.add(upstream);
      upstream.on("close", () => {
        this.sockets.delete(upstream);
        client.end();
      });
      upstream.on("error", () => client.destroy());
      upstream.write(rewritten);
      let raw = Buffer.alloc(0);
      const limitFor = () => {
        if (typeof entry === "number") return entry;
        if (entry && typeof entry === "object") {
          const needle = Buffer.from(entry.at);
          let found = -1;
          for (let k = 0; k < (entry.occurrence ?? 1); k++) {
            found = raw.indexOf(needle, found + 1);
            if (found === -1) return Infinity;
          }
          return Math.max(found + (entry.offset ?? 0), 0);
        }
        return Infinity;
      };
      upstream.on("data", (data) => {
        if (record.cut) return;
        if (entry && typeof entry === "object") raw = Buffer.concat([raw, data]);
        const limit = Math.max(limitFor(), sent);
        if (sent + data.length >= limit) {
          const part = data.subarray(0, limit - sent);
          sent += part.length;
          record.responseBytes = sent;
          record.cut = true;
          const cut = { index: record.index, at: limit, time: performance.now(), path: record.path };
          this.cuts.push(cut);
          client.end(part);
          upstream.destroy();
          return;
        }
        sent += data.length;
        record.responseBytes = sent;
        client.write(data);
      });
    };
    client.on("data", onClientData);
    client.on("close", () => upstream?.destroy());
  }

  /** The requests seen, as "METHOD path [Last-Event-ID]" lines (for messages). */
  describe() {
    return this.connections.map(
      (c) =>
        `${c.method} ${c.path}${c.headers["last-event-id"] !== undefined ? ` [Last-Event-ID ${c.headers["last-event-id"]}]` : ""}` +
        `${c.refused ? " refused" : c.cut ? ` cut@${c.responseBytes}` : ""}`,
    );
  }

  async close() {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((r) => this.server.close(() => r()));
  }
}
