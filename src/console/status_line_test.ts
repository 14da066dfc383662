import assert from "node:assert/strict";
import type { DownloadStatus } from "../kafka/downloader.ts";
import { CLEAR_LINE, type StatusFacts, StatusLine, statusText } from "./status_line.ts";

const status: DownloadStatus = {
  messagesRead: 0,
  messagesProcessed: 0,
  bytesRead: 0,
  bytesProcessed: 0,
  filesCompleted: 12,
  badRecords: 0,
  givenUp: 0,
  recent: [],
  inProgress: [
    { path: "small.dat", chunks: 1, total: 2, bytes: 1 },
    { path: "big/x.raw", chunks: 42, total: 100, bytes: 1 },
  ],
  rejected: [],
  committed: {},
  splitWarning: null,
};
const facts: StatusFacts = { status, bytesPerSecond: 48_230_000, lag: 1200 };

Deno.test("the status text: files done and in flight, rate, the largest file in flight, lag", () => {
  assert.equal(
    statusText(facts),
    "12 files done, 2 in flight | 48.2 MB/s | largest in flight: big/x.raw 42% | lag 1200 records",
  );
  assert.equal(
    statusText({
      status: { ...status, filesCompleted: 1, inProgress: [] },
      bytesPerSecond: 0,
      lag: undefined,
    }),
    "1 file done, 0 in flight | 0.0 MB/s",
  );
  // Never wider than the terminal (one column left for the cursor).
  const cut = statusText(facts, 30);
  assert.equal(cut.length, 29);
  assert.ok(cut.endsWith("…"));
});

Deno.test("log lines are written above the status line, which is redrawn after each", () => {
  const out: string[] = [];
  const line = new StatusLine({ write: (t) => out.push(t), facts: () => facts, intervalMs: 0 });
  line.print("first log line\n");
  line.print("second\n");
  line.stop();
  line.print("after stop\n");
  const text = statusText(facts);
  assert.deepEqual(out, [
    "first log line\n",
    `${CLEAR_LINE}${text}`,
    CLEAR_LINE,
    "second\n",
    `${CLEAR_LINE}${text}`,
    CLEAR_LINE,
    "after stop\n",
  ]);
});
