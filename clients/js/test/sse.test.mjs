// The frame parser on its own: only complete frames count, wherever the bytes are split or cut.
import assert from "node:assert/strict";
import test from "node:test";
import { SseFrameParser } from "../dist/index.js";

const encoder = new TextEncoder();

const STREAM =
  "retry: 1000\n\n" +
  'data: {"type":"RUN_STARTED","threadId":"t","runId":"r"}\n\n' +
  ": ping\n\n" +
  'id: 7\ndata: {"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"h\u00e9llo \u{1F680} \u4e16\u754c"}\n\n' +
  'data: {"a":\ndata: 1}\n\n' +
  "id: 8\n\n" +
  'id\ndata:{"no":"space"}\n\n';

const FRAMES = [
  { data: '{"type":"RUN_STARTED","threadId":"t","runId":"r"}' },
  { id: "7", data: '{"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"h\u00e9llo \u{1F680} \u4e16\u754c"}' },
  { data: '{"a":\n1}' },
  { id: "8" },
  { id: "", data: '{"no":"space"}' },
];

function parseAll(chunks) {
  const parser = new SseFrameParser();
  const frames = [];
  for (const chunk of chunks) frames.push(...parser.push(chunk));
  return { frames, parser };
}

test("whole stream in one chunk", () => {
  assert.deepEqual(parseAll([encoder.encode(STREAM)]).frames, FRAMES);
});

test("split at every byte offset (inside multi-byte characters too) gives the same frames", () => {
  const bytes = encoder.encode(STREAM);
  for (let split = 0; split <= bytes.length; split++) {
    const { frames } = parseAll([bytes.subarray(0, split), bytes.subarray(split)]);
    assert.deepEqual(frames, FRAMES, `split at ${split}`);
  }
});

test("one byte at a time", () => {
  const bytes = encoder.encode(STREAM);
  const chunks = Array.from(bytes, (byte) => Uint8Array.of(byte));
  assert.deepEqual(parseAll(chunks).frames, FRAMES);
});

test("a stream cut at any offset yields exactly the frames completed before the cut", () => {
  const bytes = encoder.encode(STREAM);
  // Where each frame's terminating blank line ends, in bytes.
  const ends = [];
  const text = STREAM;
  let from = 0;
  for (;;) {
    const at = text.indexOf("\n\n", from);
    if (at === -1) break;
    ends.push(encoder.encode(text.slice(0, at + 2)).length);
    from = at + 2;
  }
  const counted = [0, 1, 1, 2, 3, 4, 5]; // frames complete after each blank line (retry and ping give none)
  for (let cut = 0; cut <= bytes.length; cut++) {
    const { frames, parser } = parseAll([bytes.subarray(0, cut)]);
    let expected = 0;
    ends.forEach((end, index) => {
      if (end <= cut) expected = counted[index];
    });
    assert.deepEqual(frames, FRAMES.slice(0, expected), `cut at ${cut}`);
    if (cut === bytes.length) assert.equal(parser.partial, false);
  }
});

test("CRLF and CR line endings, a CR split from its LF", () => {
  const crlf = STREAM.replace(/\n/g, "\r\n");
  const cr = STREAM.replace(/\n/g, "\r");
  for (const variant of [crlf, cr]) {
    const bytes = encoder.encode(variant);
    for (let split = 0; split <= bytes.length; split++) {
      const { frames } = parseAll([bytes.subarray(0, split), bytes.subarray(split)]);
      assert.deepEqual(frames, FRAMES, `split at ${split}`);
    }
  }
});

test("an id with NUL is ignored; a long line arriving in pieces", () => {
  const big = "x".repeat(100_000);
  const stream = `id: 1\u00002\ndata: {"big":"${big}"}\n\n`;
  const bytes = encoder.encode(stream);
  const chunks = [];
  for (let at = 0; at < bytes.length; at += 4096) chunks.push(bytes.subarray(at, at + 4096));
  const { frames } = parseAll(chunks);
  assert.deepEqual(frames, [{ data: `{"big":"${big}"}` }]);
});
