import assert from "node:assert/strict";
import { FAR_MS, FetchSizer, LARGE_RECORD_BYTES, SMALL_RECORD_BYTES } from "./fetch_sizer.ts";

const NEAR = { perPartition: 2 * 2 ** 20, perRequest: 8 * 2 ** 20 };
const FAR = { perPartition: 4 * 2 ** 20, perRequest: 16 * 2 ** 20 };

function sizer() {
  const changes: string[] = [];
  const s = new FetchSizer(NEAR, FAR, {
    changed: (far, ms, limits) =>
      changes.push(`${far ? "far" : "near"} ${ms} ${limits.perPartition}`),
    recordsChanged: (partition, large, mean) =>
      changes.push(`${partition} ${large ? "large" : "small"} ${mean}`),
  });
  // A consumer of partition 0, as kafkajs sees its limits.
  const c = s.forConsumer(() => [0]);
  return { s, c, changes };
}

Deno.test("FetchSizer: far while every quick answer so far took 5 ms or more", () => {
  const { s, c, changes } = sizer();
  assert.equal(s.far, false);
  assert.equal(s.distanceMs, undefined);
  assert.equal(+c.perPartition, NEAR.perPartition);
  assert.equal(+c.perRequest, NEAR.perRequest);

  s.observe("ApiVersions", 30);
  assert.equal(s.far, true);
  assert.equal(s.distanceMs, 30);
  assert.equal(+c.perPartition, FAR.perPartition);
  assert.equal(+c.perRequest, FAR.perRequest);
  s.observe("Metadata", FAR_MS); // at the threshold: still far
  s.observe("Heartbeat", 200); // a slower answer changes nothing
  assert.equal(s.far, true);
  assert.equal(s.distanceMs, FAR_MS);

  s.observe("Heartbeat", FAR_MS - 1);
  assert.equal(s.far, false);
  assert.equal(+c.perPartition, NEAR.perPartition);
  assert.deepEqual(changes, [`far 30 ${FAR.perPartition}`, `near 4 ${NEAR.perPartition}`]);
});

Deno.test("FetchSizer: once an answer was quick, a busy event loop's slow answers keep it near", () => {
  const { s, changes } = sizer();
  s.observe("ApiVersions", 1); // a new connection, the event loop quiet
  for (let i = 0; i < 1000; i++) s.observe("Heartbeat", 6 + (i % 40)); // then a long, busy run
  assert.equal(s.far, false);
  assert.equal(s.distanceMs, 1);
  assert.deepEqual(changes, []);
});

Deno.test("FetchSizer: only answers the broker gives at once count", () => {
  const { s, changes } = sizer();
  // A fetch waits for data, a join for the other members, a commit for the log.
  s.observe("Fetch", 500);
  s.observe("JoinGroup", 3000);
  s.observe("SyncGroup", 200);
  s.observe("OffsetCommit", 50);
  s.observe("Heartbeat", Number.NaN);
  s.observe("Heartbeat", -3);
  assert.equal(s.distanceMs, undefined);
  assert.equal(s.far, false);
  s.observe("GroupCoordinator", 25); // kafkajs's name of FindCoordinator
  assert.equal(s.far, true);
  assert.deepEqual(changes, [`far 25 ${FAR.perPartition}`]);
});

Deno.test("FetchSizer: a partition's records are large from a batch of large records until one of small records", () => {
  const { s, c, changes } = sizer();
  const KiB = 1024;
  // OpenMSIStream's 512 KiB chunks, four to a fetch: large.
  s.observeBatch(0, 4, 4 * 512 * KiB);
  assert.equal(s.largeRecords([0]), true);
  assert.equal(s.far, false);
  assert.equal(+c.perPartition, FAR.perPartition);
  assert.equal(+c.perRequest, FAR.perRequest);
  // In between (a partition that carries both kinds): no switch either way.
  s.observeBatch(0, 10, 10 * 64 * KiB);
  assert.equal(s.largeRecords([0]), true);
  // Small records (16 KiB chunks): the limits beside the broker again.
  s.observeBatch(0, 128, 128 * 16 * KiB);
  assert.equal(s.largeRecords([0]), false);
  assert.equal(+c.perPartition, NEAR.perPartition);
  assert.equal(+c.perRequest, NEAR.perRequest);
  s.observeBatch(0, 10, 10 * 64 * KiB);
  assert.equal(s.largeRecords([0]), false, "in between: stays small");
  // The thresholds: at LARGE_RECORD_BYTES large, at SMALL_RECORD_BYTES not yet small.
  s.observeBatch(0, 2, 2 * LARGE_RECORD_BYTES);
  s.observeBatch(0, 3, 3 * SMALL_RECORD_BYTES);
  assert.equal(s.largeRecords([0]), true);
  s.observeBatch(0, 3, 3 * SMALL_RECORD_BYTES - 3);
  assert.equal(s.largeRecords([0]), false);
  assert.deepEqual(changes, [
    `0 large ${512 * KiB}`,
    `0 small ${16 * KiB}`,
    `0 large ${LARGE_RECORD_BYTES}`,
    `0 small ${SMALL_RECORD_BYTES - 1}`,
  ]);
});

Deno.test("FetchSizer: batches without records or with nonsense sizes change nothing", () => {
  const { s, changes } = sizer();
  // While small: no records (an infinite average) must not make them large.
  s.observeBatch(0, 0, LARGE_RECORD_BYTES);
  s.observeBatch(0, 1, Number.POSITIVE_INFINITY);
  assert.equal(s.largeRecords([0]), false);
  s.observeBatch(0, 1, LARGE_RECORD_BYTES);
  assert.equal(s.largeRecords([0]), true);
  // While large: a negative count or size (a negative average) must not make them small.
  s.observeBatch(0, -1, LARGE_RECORD_BYTES);
  s.observeBatch(0, 1, -5);
  s.observeBatch(0, 1, Number.NaN);
  s.observeBatch(0, 0, 0);
  assert.equal(s.largeRecords([0]), true);
  assert.deepEqual(changes, [`0 large ${LARGE_RECORD_BYTES}`]);
});

Deno.test("FetchSizer: a consumer fetches more only while every partition it holds has large records", () => {
  const { s } = sizer();
  let held: number[] = [];
  const c = s.forConsumer(() => held);
  s.observeBatch(1, 1, 512 * 1024);
  assert.equal(+c.perPartition, NEAR.perPartition, "no partition held yet");
  held = [1];
  assert.equal(+c.perPartition, FAR.perPartition, "read at each fetch: the partition held now");
  held = [1, 2]; // partition 2 not seen yet
  assert.equal(+c.perPartition, NEAR.perPartition);
  s.observeBatch(2, 100, 100 * 4096); // small records
  assert.equal(+c.perPartition, NEAR.perPartition);
  s.observeBatch(2, 2, 2 * 512 * 1024);
  assert.equal(+c.perPartition, FAR.perPartition);
  assert.equal(+c.perRequest, FAR.perRequest);
  // Another consumer, of a partition of small records, keeps its limits.
  const other = s.forConsumer(() => [3]);
  s.observeBatch(3, 100, 100 * 4096);
  assert.equal(+other.perPartition, NEAR.perPartition);
  assert.deepEqual(s.limitsFor([1, 2]), FAR);
  assert.deepEqual(s.limitsFor([3]), NEAR);
});

Deno.test("FetchSizer: far or large records, either one gives the larger limits", () => {
  const { s, c } = sizer();
  s.observe("ApiVersions", 20);
  s.observeBatch(0, 1, 1024 * 1024);
  assert.equal(+c.perPartition, FAR.perPartition);
  s.observe("Heartbeat", 1); // near again, records still large
  assert.equal(s.far, false);
  assert.equal(+c.perPartition, FAR.perPartition);
  s.observeBatch(0, 100, 100 * 4096); // small records too
  assert.equal(+c.perPartition, NEAR.perPartition);
  assert.equal(+c.perRequest, NEAR.perRequest);
  const { s: far } = sizer();
  far.observe("Metadata", 30);
  assert.deepEqual(far.limitsFor([]), FAR, "far: every consumer, whatever it holds");
});
