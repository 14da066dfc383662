import assert from "node:assert/strict";
import { FAR_MS, FetchSizer, LARGE_RECORD_BYTES, SMALL_RECORD_BYTES } from "./fetch_sizer.ts";

const NEAR = { perPartition: 2 * 2 ** 20, perRequest: 8 * 2 ** 20 };
const FAR = { perPartition: 4 * 2 ** 20, perRequest: 16 * 2 ** 20 };

function sizer() {
  const changes: string[] = [];
  const s = new FetchSizer(NEAR, FAR, {
    changed: (far, ms, limits) =>
      changes.push(`${far ? "far" : "near"} ${ms} ${limits.perPartition}`),
    recordsChanged: (large, mean, limits) =>
      changes.push(`${large ? "large" : "small"} ${mean} ${limits.perPartition}`),
  });
  return { s, changes };
}

Deno.test("FetchSizer: far while every quick answer so far took 5 ms or more", () => {
  const { s, changes } = sizer();
  assert.equal(s.far, false);
  assert.equal(s.distanceMs, undefined);
  assert.equal(+s.perPartition, NEAR.perPartition);
  assert.equal(+s.perRequest, NEAR.perRequest);

  s.observe("ApiVersions", 30);
  assert.equal(s.far, true);
  assert.equal(s.distanceMs, 30);
  assert.equal(+s.perPartition, FAR.perPartition);
  assert.equal(+s.perRequest, FAR.perRequest);
  s.observe("Metadata", FAR_MS); // at the threshold: still far
  s.observe("Heartbeat", 200); // a slower answer changes nothing
  assert.equal(s.far, true);
  assert.equal(s.distanceMs, FAR_MS);

  s.observe("Heartbeat", FAR_MS - 1);
  assert.equal(s.far, false);
  assert.equal(+s.perPartition, NEAR.perPartition);
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

Deno.test("FetchSizer: larger limits from a batch of large records until one of small records", () => {
  const { s, changes } = sizer();
  const KiB = 1024;
  // OpenMSIStream's 512 KiB chunks, four to a fetch: large.
  s.observeBatch(4, 4 * 512 * KiB);
  assert.equal(s.largeRecords, true);
  assert.equal(s.far, false);
  assert.equal(+s.perPartition, FAR.perPartition);
  assert.equal(+s.perRequest, FAR.perRequest);
  // In between (a topic of both kinds): no switch either way.
  s.observeBatch(10, 10 * 64 * KiB);
  assert.equal(s.largeRecords, true);
  // Small records (16 KiB chunks): the limits beside the broker again.
  s.observeBatch(128, 128 * 16 * KiB);
  assert.equal(s.largeRecords, false);
  assert.equal(+s.perPartition, NEAR.perPartition);
  assert.equal(+s.perRequest, NEAR.perRequest);
  s.observeBatch(10, 10 * 64 * KiB);
  assert.equal(s.largeRecords, false, "in between: stays small");
  // The thresholds: at LARGE_RECORD_BYTES large, at SMALL_RECORD_BYTES not yet small.
  s.observeBatch(2, 2 * LARGE_RECORD_BYTES);
  s.observeBatch(3, 3 * SMALL_RECORD_BYTES);
  assert.equal(s.largeRecords, true);
  s.observeBatch(3, 3 * SMALL_RECORD_BYTES - 3);
  assert.equal(s.largeRecords, false);
  // Empty batches and nonsense count for nothing.
  s.observeBatch(0, 0);
  s.observeBatch(1, Number.NaN);
  s.observeBatch(-1, LARGE_RECORD_BYTES);
  assert.equal(s.largeRecords, false);
  assert.deepEqual(changes, [
    `large ${512 * KiB} ${FAR.perPartition}`,
    `small ${16 * KiB} ${NEAR.perPartition}`,
    `large ${LARGE_RECORD_BYTES} ${FAR.perPartition}`,
    `small ${SMALL_RECORD_BYTES - 1} ${NEAR.perPartition}`,
  ]);
});

Deno.test("FetchSizer: far or large records, either one keeps the larger limits", () => {
  const { s } = sizer();
  s.observe("ApiVersions", 20);
  s.observeBatch(1, 1024 * 1024);
  assert.equal(+s.perPartition, FAR.perPartition);
  s.observe("Heartbeat", 1); // near again, records still large
  assert.equal(s.far, false);
  assert.equal(+s.perPartition, FAR.perPartition);
  s.observeBatch(100, 100 * 4096); // small records too
  assert.equal(+s.perPartition, NEAR.perPartition);
  assert.equal(+s.perRequest, NEAR.perRequest);
});
