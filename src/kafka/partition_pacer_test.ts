import assert from "node:assert/strict";
import { PartitionPacer } from "./partition_pacer.ts";

const MiB = 1024 * 1024;

/**
 * A pacer with a clock and a count of bytes behind gaps that the test sets; its own defaults
 * (64 MiB, 250 ms) unless `options` say otherwise.
 */
function pacer(options: { budget?: number; slackMs?: number } = {}) {
  const state = { now: 1_000_000, pastGaps: 100 * MiB };
  const p = new PartitionPacer({
    pastGaps: () => state.pastGaps,
    now: () => state.now,
    ...options,
  });
  return { p, state };
}

Deno.test("a consumer further on than another by more than the slack waits, only while the bytes behind gaps are over the budget", () => {
  const { p, state } = pacer();
  p.starting(0, 0, 10_000);
  p.starting(1, 1, 10_300);
  assert.equal(p.shouldWait(1), true, "300 ms ahead, 100 MiB behind gaps");
  assert.equal(p.shouldWait(0), false, "the one behind never waits");
  state.pastGaps = 64 * MiB;
  assert.equal(p.shouldWait(1), false, "at the budget");
  state.pastGaps = 65 * MiB;
  assert.equal(p.shouldWait(1), true);
  p.starting(0, 0, 10_100);
  assert.equal(p.shouldWait(1), false, "caught up to within the slack");
});

Deno.test("a consumer waits only for one that started a record within MOVING_MS", () => {
  const { p, state } = pacer();
  p.starting(0, 0, 10_000);
  p.starting(1, 1, 20_000);
  assert.equal(p.shouldWait(1), true);
  state.now += PartitionPacer.MOVING_MS - 1;
  assert.equal(p.shouldWait(1), true);
  state.now += 1;
  assert.equal(p.shouldWait(1), false, "consumer 0 has not moved for MOVING_MS");
  p.starting(0, 0, 10_010);
  assert.equal(p.shouldWait(1), true, "it moves again");
});

Deno.test("a consumer's place is its partition furthest behind, and a partition's place is the latest time it started", () => {
  const { p } = pacer();
  p.starting(0, 0, 10_000);
  p.starting(0, 2, 50_000);
  p.starting(1, 1, 30_000);
  // Consumer 0 is at 10 000 (partition 0), consumer 1 at 30 000.
  assert.equal(p.shouldWait(0), false);
  assert.equal(p.shouldWait(1), true);
  // A record sent earlier than one already started (producers interleave) does not move it back.
  p.starting(0, 0, 40_000);
  p.starting(0, 0, 5_000);
  assert.equal(p.shouldWait(1), false, "consumer 0 is at 40 000 now");
  assert.equal(p.shouldWait(0), true, "and ahead of consumer 1 by 10 s");
});

Deno.test("partitions at the end of their log, moved away, or of a consumer that left do not hold anyone back", () => {
  const { p } = pacer();
  p.starting(0, 0, 10_000);
  p.starting(0, 2, 90_000);
  p.starting(1, 1, 80_000);
  p.starting(2, 3, 5_000);
  assert.equal(p.shouldWait(1), true);
  p.leave(2);
  p.caughtUp(0, 0);
  // Consumer 0 is at 90 000 now (partition 2): consumer 1 is the one behind.
  assert.equal(p.shouldWait(1), false);
  assert.equal(p.shouldWait(0), true);
  p.assign(0, [0]);
  assert.equal(p.shouldWait(0), false, "partition 2 moved away: consumer 0 has no place");
  assert.equal(p.shouldWait(1), false);
});

Deno.test("records without a timestamp change no place", () => {
  const { p } = pacer();
  p.starting(0, 0, 10_000);
  p.starting(1, 1, -1);
  p.starting(1, 1, Number.NaN);
  assert.equal(p.shouldWait(1), false, "consumer 1 has no place");
  assert.equal(p.shouldWait(0), false);
});

Deno.test("whatever the places, the consumer furthest behind never waits (no two wait for each other)", () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 500; round++) {
    const { p } = pacer({ slackMs: rand(3) * 100 });
    const consumers = 1 + rand(4);
    const places = new Map<number, number>();
    for (let c = 0; c < consumers; c++) {
      for (let partition = c; partition < 8; partition += consumers) {
        if (rand(4) === 0) continue; // at the end of its log: no place
        const time = 10_000 + rand(2000);
        p.starting(c, partition, time);
        places.set(c, Math.min(places.get(c) ?? Infinity, time));
      }
    }
    const waiting = [...places.keys()].filter((c) => p.shouldWait(c));
    const behind = Math.min(...places.values());
    for (const c of waiting) assert.ok(places.get(c)! > behind, `round ${round}: ${c} waits`);
    if (places.size > 0) assert.ok(waiting.length < places.size, `round ${round}: all wait`);
  }
});
