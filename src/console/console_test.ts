import assert from "node:assert/strict";
import { checkReport, parseCommand, readCommands, shutdownSummary } from "./console.ts";
import type { DownloadStatus } from "../kafka/downloader.ts";

Deno.test("commands are whole lines, case-insensitive; anything else is ignored", () => {
  for (const line of ["c", "C", "check", " CHECK \r"]) assert.equal(parseCommand(line), "check");
  for (const line of ["q", "Q", "quit", "Quit\r"]) assert.equal(parseCommand(line), "quit");
  for (const line of ["", "qq", "quiet", "cc", "checks", "x"]) {
    assert.equal(parseCommand(line), undefined);
  }
});

Deno.test("readCommands reads every line, split anywhere, and returns at end of input without quitting", async () => {
  const parts = ["ch", "eck\nnoise\nQ", "UIT\nc"];
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const p of parts) controller.enqueue(new TextEncoder().encode(p));
      controller.close();
    },
  });
  const seen: string[] = [];
  await readCommands(input, (c) => seen.push(c));
  assert.deepEqual(seen, ["check", "quit", "check"]);
});

const status: DownloadStatus = {
  messagesRead: 12,
  messagesProcessed: 11,
  bytesRead: 100,
  bytesProcessed: 90,
  filesCompleted: 2,
  badRecords: 1,
  givenUp: 0,
  recent: ["a/b.dat", "c.dat"],
  inProgress: [{ path: "big/x.raw", chunks: 3, total: 8, bytes: 3 }],
  rejected: [],
  committed: {},
  splitWarning: null,
};

Deno.test("check reports counts, each file in progress with its share, and the recent files", () => {
  assert.equal(
    checkReport(status),
    "12 messages read, 11 messages processed, 2 files completely reconstructed so far (1 bad record skipped and quarantined)\n" +
      "Files recognized so far (up to 50 most recent completed files shown):\n" +
      "\tbig/x.raw (in progress: 3/8 chunks, 37%)\n" +
      "\ta/b.dat (completed)\n" +
      "\tc.dat (completed)",
  );
  assert.equal(
    checkReport({ ...status, badRecords: 0, recent: [], inProgress: [] }),
    "12 messages read, 11 messages processed, 2 files completely reconstructed so far",
  );
  assert.equal(
    checkReport({ ...status, badRecords: 0, givenUp: 2, recent: [], inProgress: [] }),
    "12 messages read, 11 messages processed, 2 files completely reconstructed so far; 2 files given up (see the log and the quarantine)",
  );
});

Deno.test("the shutdown summary has the reference's wording", () => {
  const start = new Date(2026, 0, 2, 3, 4, 5, 6);
  const stop = new Date(2026, 0, 2, 3, 5, 0, 0);
  assert.equal(
    shutdownSummary(status, start, stop),
    "12 total messages were consumed, 11 messages were successfully processed, and 2 files were successfully reconstructed from 2026-01-02 03:04:05.006000 to 2026-01-02 03:05:00.000000\n" +
      "Most recent completed files (up to 50):\n\ta/b.dat\n\tc.dat",
  );
  assert.match(
    shutdownSummary({ ...status, filesCompleted: 1, recent: ["one.dat"] }, start, stop),
    /and 1 file was successfully reconstructed/,
  );
  assert.match(
    shutdownSummary({ ...status, recent: [] }, start, stop),
    /consumed and 11 messages were successfully processed from/,
  );
});
