import assert from "node:assert/strict";
import {
  DrainWatch,
  handledMetadata,
  handledOffset,
  lagText,
  type OffsetsAdmin,
  partitionLags,
} from "./drain.ts";

/** A fake admin whose end and committed offsets the test moves. */
function fakeAdmin(ends: Record<number, [low: number, high: number]>) {
  const committed = new Map<number, number>();
  const metadata = new Map<number, string>();
  let calls = 0;
  const admin: OffsetsAdmin = {
    fetchTopicOffsets: (topic) => {
      assert.equal(topic, "t");
      calls++;
      return Promise.resolve(
        Object.entries(ends).map(([p, [low, high]]) => ({
          partition: Number(p),
          offset: String(high),
          low: String(low),
          high: String(high),
        })),
      );
    },
    fetchOffsets: ({ groupId, topics }) => {
      assert.equal(groupId, "g");
      assert.deepEqual(topics, ["t"]);
      return Promise.resolve([{
        topic: "t",
        partitions: Object.keys(ends).map((p) => ({
          partition: Number(p),
          offset: String(committed.get(Number(p)) ?? -1),
          metadata: metadata.get(Number(p)) ?? null,
        })),
      }]);
    },
  };
  return { admin, committed, metadata, ends, calls: () => calls };
}

Deno.test("lag is the end offset less the committed one, or less the first offset kept", async () => {
  const { admin, committed } = fakeAdmin({ 0: [0, 10], 1: [5, 8], 2: [0, 0] });
  committed.set(0, 4);
  const lags = await partitionLags(admin, "t", "g");
  assert.deepEqual(lags, [
    { partition: 0, end: 10, committed: 4, handled: null, lag: 6 },
    { partition: 1, end: 8, committed: null, handled: null, lag: 3 },
    { partition: 2, end: 0, committed: null, handled: null, lag: 0 },
  ]);
  assert.equal(lagText(lags), "consumer lag 9 records (partition 0: 6, 1: 3, 2: 0)");
});

Deno.test("a commit held back at a file in progress counts as consumed up to the offset its metadata says", async () => {
  assert.equal(handledOffset(handledMetadata(1234n)), 1234);
  for (const other of [null, undefined, "", "dfdd-handled=", "handled=5", "dfdd-handled=5 "]) {
    assert.equal(handledOffset(other), null, String(other));
  }
  const fake = fakeAdmin({ 0: [0, 10], 1: [0, 6] });
  fake.committed.set(0, 3);
  fake.metadata.set(0, handledMetadata(10));
  fake.committed.set(1, 2);
  fake.metadata.set(1, "someone else's");
  const lags = await partitionLags(fake.admin, "t", "g");
  assert.deepEqual(lags, [
    { partition: 0, end: 10, committed: 3, handled: 10, lag: 0 },
    { partition: 1, end: 6, committed: 2, handled: null, lag: 4 },
  ]);
  const watch = new DrainWatch({ admin: fake.admin, topic: "t", groupId: "g" });
  await watch.begin();
  assert.deepEqual(await watch.remaining(), [{ partition: 1, left: 4 }]);
  fake.metadata.set(1, handledMetadata(6));
  assert.equal(await watch.done(), true);
});

Deno.test("a drain ends when every partition is committed up to its end at start, not later ends", async () => {
  const fake = fakeAdmin({ 0: [0, 10], 1: [0, 3], 2: [0, 0] });
  let looks = 0;
  const watch = new DrainWatch({
    admin: fake.admin,
    topic: "t",
    groupId: "g",
    sleep: () => {
      looks++;
      // Records keep coming after the start; the group commits step by step.
      fake.ends[0] = [0, 10 + looks];
      if (looks === 1) fake.committed.set(0, 10);
      if (looks === 2) fake.committed.set(1, 2);
      if (looks === 3) fake.committed.set(1, 3);
      return Promise.resolve();
    },
  });
  assert.deepEqual([...(await watch.begin())], [[0, 10], [1, 3], [2, 0]]);
  assert.deepEqual(await watch.remaining(), [{ partition: 0, left: 10 }, {
    partition: 1,
    left: 3,
  }]);
  assert.equal(await watch.done(), true);
  assert.equal(looks, 3);
  // Partition 0 still has records past its mark: they are not waited for.
  assert.ok(watch.lastLags()[0]!.lag > 0);
});

Deno.test("a drain whose records were deleted by retention counts them as consumed", async () => {
  const fake = fakeAdmin({ 0: [7, 7] });
  const watch = new DrainWatch({ admin: fake.admin, topic: "t", groupId: "g" });
  await watch.begin();
  assert.equal(await watch.done(), true);
});

Deno.test("a drain looks again when the broker does not answer, and stop() ends the wait", async () => {
  const fake = fakeAdmin({ 0: [0, 5] });
  let fail = true;
  const failing: OffsetsAdmin = {
    fetchTopicOffsets: (topic) => fake.admin.fetchTopicOffsets(topic),
    fetchOffsets: (o) => fail ? Promise.reject(new Error("down")) : fake.admin.fetchOffsets(o),
  };
  let looks = 0;
  const watch = new DrainWatch({
    admin: failing,
    topic: "t",
    groupId: "g",
    sleep: () => {
      if (++looks === 2) fail = false;
      if (looks === 4) watch.stop();
      return Promise.resolve();
    },
  });
  await watch.begin();
  assert.equal(await watch.done(), false);
  assert.equal(looks, 4);
  fake.committed.set(0, 5);
  await assert.rejects(new DrainWatch({ admin: failing, topic: "t", groupId: "g" }).remaining());
});
