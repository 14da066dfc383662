import assert from "node:assert/strict";
import { FAR_MS, FetchSizer } from "./fetch_sizer.ts";

const NEAR = { perPartition: 2 * 2 ** 20, perRequest: 8 * 2 ** 20 };
const FAR = { perPartition: 4 * 2 ** 20, perRequest: 16 * 2 ** 20 };

function sizer() {
  const changes: string[] = [];
  const s = new FetchSizer(NEAR, FAR, {
    changed: (far, ms, limits) =>
      changes.push(`${far ? "far" : "near"} ${ms} ${limits.perPartition}`),
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
