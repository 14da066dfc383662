import assert from "node:assert/strict";
import { FAR_MS, FetchSizer, WINDOW_MS } from "./fetch_sizer.ts";

const NEAR = { perPartition: 2 * 2 ** 20, perRequest: 8 * 2 ** 20 };
const FAR = { perPartition: 4 * 2 ** 20, perRequest: 16 * 2 ** 20 };

function sizer() {
  let now = 0;
  const changes: string[] = [];
  const s = new FetchSizer(NEAR, FAR, {
    now: () => now,
    changed: (far, ms, limits) =>
      changes.push(`${far ? "far" : "near"} ${ms} ${limits.perPartition}`),
  });
  return { s, changes, advance: (ms: number) => now += ms };
}

Deno.test("FetchSizer: near until the quickest answer of the last minute takes 5 ms or more", () => {
  const { s, changes, advance } = sizer();
  assert.equal(s.far, false);
  assert.equal(s.distanceMs, undefined);
  assert.equal(+s.perPartition, NEAR.perPartition);
  assert.equal(+s.perRequest, NEAR.perRequest);

  s.observe("ApiVersions", 1);
  s.observe("Heartbeat", 40); // a busy event loop: the quickest answer still says near
  assert.equal(s.far, false);
  assert.equal(s.distanceMs, 1);

  advance(WINDOW_MS + 1); // the 1 ms answer leaves the window
  s.observe("Heartbeat", 30);
  assert.equal(s.far, true);
  assert.equal(s.distanceMs, 30);
  assert.equal(+s.perPartition, FAR.perPartition);
  assert.equal(+s.perRequest, FAR.perRequest);
  s.observe("Metadata", FAR_MS); // still far: at the threshold
  assert.equal(s.far, true);

  s.observe("Heartbeat", FAR_MS - 1);
  assert.equal(s.far, false);
  assert.equal(+s.perPartition, NEAR.perPartition);
  assert.deepEqual(changes, [`far 30 ${FAR.perPartition}`, `near 4 ${NEAR.perPartition}`]);
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
