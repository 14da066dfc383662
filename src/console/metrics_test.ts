import assert from "node:assert/strict";
import type { DownloaderHealth, DownloadStatus } from "../kafka/downloader.ts";
import { healthOf, type MetricsSnapshot, renderMetrics, serveMetrics } from "./metrics.ts";

const status: DownloadStatus = {
  messagesRead: 12,
  messagesProcessed: 11,
  bytesRead: 1000,
  bytesProcessed: 900,
  filesCompleted: 3,
  badRecords: 1,
  givenUp: 0,
  recent: [],
  inProgress: [{ path: "a", chunks: 1, total: 2, bytes: 10 }],
  rejected: [{ path: "b", reason: "hash" }],
  committed: { 0: "12" },
  splitWarning: null,
};
const health: DownloaderHealth = {
  stalledSince: null,
  stalledOn: null,
  consumersInGroup: 2,
  consumers: 2,
  lastCommitAt: 10_000,
  quarantineBytes: 4096,
};

function snapshot(over: Partial<MetricsSnapshot> = {}): MetricsSnapshot {
  return {
    status,
    health,
    lags: [{ partition: 0, end: 20, committed: 12, handled: null, lag: 8 }, {
      partition: 1,
      end: 0,
      committed: null,
      handled: null,
      lag: 0,
    }],
    lastErrorAt: null,
    now: 12_500,
    ...over,
  };
}

Deno.test("/metrics text has one HELP and TYPE per metric and a sample per partition", () => {
  const text = renderMetrics(snapshot());
  for (
    const sample of [
      "dfdd_records_read_total 12",
      "dfdd_records_processed_total 11",
      "dfdd_bad_records_total 1",
      "dfdd_bytes_written_total 900",
      "dfdd_files_published_total 3",
      "dfdd_files_rejected 1",
      "dfdd_files_in_progress 1",
      "dfdd_quarantine_bytes 4096",
      "dfdd_writes_stalled 0",
      "dfdd_topic_split 0",
      "dfdd_last_commit_age_seconds 2.500",
      "dfdd_last_error_timestamp_seconds 0.000",
      'dfdd_consumer_lag{partition="0"} 8',
      'dfdd_consumer_lag{partition="1"} 0',
    ]
  ) {
    assert.ok(text.split("\n").includes(sample), sample);
  }
  const names = [...text.matchAll(/^# TYPE (\S+) (counter|gauge)$/gm)].map((m) => m[1]);
  assert.equal(new Set(names).size, names.length);
  // Every sample belongs to a declared metric.
  for (const sample of text.split("\n").filter((l) => l && !l.startsWith("#"))) {
    assert.ok(names.includes(sample.split(/[{ ]/)[0]!), sample);
  }
  // Before the first lag poll and the first commit.
  const early = renderMetrics(
    snapshot({ lags: undefined, health: { ...health, lastCommitAt: null } }),
  );
  assert.doesNotMatch(early, /dfdd_consumer_lag/);
  assert.match(early, /^dfdd_last_commit_age_seconds NaN$/m);
});

Deno.test("health is bad while writing is stalled or no consumer is in the group", () => {
  assert.deepEqual(healthOf(snapshot()), {
    ok: true,
    text: "ok: 2 of 2 consumers in the group, last commit 3 s ago",
  });
  const stalled = healthOf(snapshot({
    health: { ...health, stalledSince: 2_500, stalledOn: "Cannot write chunk 1: No space" },
  }));
  assert.equal(stalled.ok, false);
  assert.match(stalled.text, /^stuck for 10 s: writing is stopped .*No space/);
  const out = healthOf(snapshot({ health: { ...health, consumersInGroup: 0 } }));
  assert.deepEqual(out, { ok: false, text: "out of the group: none of its 2 consumers is in it" });
});

Deno.test("the endpoint serves /metrics, /healthz with 200 or 503, and 404 elsewhere", async () => {
  let current = snapshot();
  const server = serveMetrics({ hostname: "127.0.0.1", port: 0, snapshot: () => current });
  try {
    const metrics = await fetch(`${server.url}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    assert.match(await metrics.text(), /^dfdd_files_published_total 3$/m);
    const ok = await fetch(`${server.url}/healthz`);
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /^ok: /);
    current = snapshot({ health: { ...health, stalledSince: 0, stalledOn: "full" } });
    const stuck = await fetch(`${server.url}/healthz`);
    assert.equal(stuck.status, 503);
    assert.match(await stuck.text(), /^stuck for 13 s/);
    const other = await fetch(`${server.url}/`);
    assert.equal(other.status, 404);
    await other.body?.cancel();
  } finally {
    await server.shutdown();
  }
});
