import assert from "node:assert/strict";
import { BatchedWriter } from "./batched_writer.ts";

function recorder(maxPerWrite = Infinity) {
  const writes: string[] = [];
  const decoder = new TextDecoder();
  const sink = (bytes: Uint8Array) => {
    const n = Math.min(bytes.length, maxPerWrite);
    writes.push(decoder.decode(bytes.subarray(0, n)));
    return n;
  };
  return { writes, sink };
}

Deno.test("lines of one turn go out in one write, in order, once the turn is over", async () => {
  const { writes, sink } = recorder();
  const out = new BatchedWriter(sink);
  out.write("a\n");
  out.write("b\n");
  assert.deepEqual(writes, [], "nothing before the turn ends");
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(writes, ["a\nb\n"]);
  out.write("c\n");
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(writes, ["a\nb\n", "c\n"]);
});

Deno.test("an urgent text follows what waits, at once; a full batch goes out at once", () => {
  const { writes, sink } = recorder();
  const scheduled: (() => void)[] = [];
  const out = new BatchedWriter(sink, (flush) => scheduled.push(flush), 10);
  out.write("one\n");
  out.writeNow("error\n");
  assert.deepEqual(writes, ["one\nerror\n"]);
  out.write("12345");
  out.write("67890");
  assert.deepEqual(writes, ["one\nerror\n", "1234567890"]);
  for (const flush of scheduled) flush(); // nothing left: no empty write
  assert.equal(writes.length, 2);
});

Deno.test("a sink that takes part of the bytes is called until all are written", () => {
  const { writes, sink } = recorder(3);
  const out = new BatchedWriter(sink, () => {});
  out.writeNow("abcdefgh");
  assert.deepEqual(writes, ["abc", "def", "gh"]);
});
