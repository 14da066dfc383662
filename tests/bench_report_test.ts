import assert from "node:assert/strict";
import { formatTable, formatTargets, type RunRecord } from "../tools/bench/report.ts";
import type { ToolId } from "../tools/bench/tools.ts";
import type { WorkloadId } from "../tools/bench/workloads.ts";

const MiB = 2 ** 20;

function runs(
  workload: WorkloadId,
  tool: ToolId,
  seconds: number[],
  rssMiB = 200,
): RunRecord[] {
  return seconds.map((s, i) => ({
    workload,
    tool,
    run: i + 1,
    seconds: s,
    peakRss: rssMiB * MiB,
    checked: true,
  }));
}

const W1 = { id: "W1" as const, bytes: 1024 * MiB, files: 64 };
const W2 = { id: "W2" as const, bytes: 256 * MiB, files: 16 };
const W4 = { id: "W4" as const, bytes: 4096 * MiB, files: 1 };

Deno.test("formatTargets() says which targets a run meets, from the same medians as the table", () => {
  const records = [
    ...runs("W1", "ours2", [3.0, 3.2, 3.1]),
    ...runs("W1", "ours4", [3.0, 3.1, 3.0], 190),
    ...runs("W1", "openmsistream", [8.0, 8.2, 8.4], 320),
    ...runs("W1", "cperf", [3.1, 3.2, 3.3]),
    ...runs("W2", "ours2", [1.5, 1.6, 1.7]),
    ...runs("W2", "ours4", [1.6, 1.5, 1.8], 210),
    ...runs("W2", "openmsistream", [6.0, 6.1, 6.2]),
  ];
  const text = formatTargets([W1, W2], records);
  assert.deepEqual(text.split("\n"), [
    "Targets, from this run:",
    "- W1 ≥ 2× OpenMSIStream and ≥ 70% of ConsumerPerformance: OpenMSIStream 2.65×, ConsumerPerformance 103%: met",
    "- W2 ≥ 3× OpenMSIStream: W2 OpenMSIStream 3.81×: met",
    "- peak RSS ≤ 256 MiB (highest of --n_threads 2 and 4 in any run, MiB): W1 200, W2 210: met",
    "- --n_threads 4 never slower than 2 (medians): W1 3.2% faster (3.00 against 3.10 s; 4 the slower in 0 of 3 runs; 4's time over 2's, run by run: median 0.97), W2 as fast (1.60 against 1.60 s; 4 the slower in 2 of 3 runs; 4's time over 2's, run by run: median 1.06): met",
  ]);
  // The ratios are those of the table.
  const table = formatTable([W1, W2], ["ours2", "ours4", "openmsistream", "cperf"], records, 3);
  assert.match(table, /\| W1 +\| this program --n_threads 2 +\| +3\.10 \|.*\| +2\.65 \| +1\.03 \|/);
});

Deno.test("formatTargets() names what a run misses, and what it did not measure", () => {
  const records = [
    ...runs("W1", "ours2", [5.0, 5.0, 5.0]),
    ...runs("W1", "ours4", [5.1, 5.2, 4.9]),
    ...runs("W1", "openmsistream", [8.0, 8.0, 8.0]),
    ...runs("W4", "ours2", [4.0, 4.1], 250),
    ...runs("W4", "ours4", [4.0, 4.1], 257),
  ];
  const lines = formatTargets([W1, W4], records).split("\n");
  assert.deepEqual(
    lines[1],
    "- W1 ≥ 2× OpenMSIStream and ≥ 70% of ConsumerPerformance: OpenMSIStream 1.60×, ConsumerPerformance: not measured (run ours2 and cperf)",
  );
  assert.deepEqual(
    lines[2],
    "- W4 ≥ 2× OpenMSIStream: OpenMSIStream: not measured (run ours2 and openmsistream)",
  );
  assert.deepEqual(
    lines[3],
    "- peak RSS ≤ 256 MiB (highest of --n_threads 2 and 4 in any run, MiB): W1 200, W4 (4.0 GiB) 257: NOT MET",
  );
  assert.ok(
    lines[4]!.includes(
      "W1 2.0% slower (5.10 against 5.00 s; 4 the slower in 2 of 3 runs; 4's time over 2's, run by run: median 1.02)",
    ),
    lines[4]!,
  );
  assert.ok(lines[4]!.includes("W4 as fast"), lines[4]!);
  assert.match(lines[4]!, /: NOT MET$/);
  // A slower W1 alone (the ratio under 2×) is not met either.
  const slow = formatTargets([W1], [
    ...runs("W1", "ours2", [4.5]),
    ...runs("W1", "openmsistream", [8.0]),
    ...runs("W1", "cperf", [3.0]),
  ]);
  assert.ok(slow.includes("OpenMSIStream 1.78×, ConsumerPerformance 67%: NOT MET"), slow);
});

Deno.test("formatTargets() leaves failed runs out of its medians, as the table does, and says nothing without runs", () => {
  const records: RunRecord[] = [
    ...runs("W2", "ours2", [1.0, 1.2]),
    { workload: "W2", tool: "ours2", run: 3, checked: false, problem: "timed out" },
    ...runs("W2", "openmsistream", [4.0, 4.0, 4.0]),
  ];
  assert.ok(
    formatTargets([W2], records).includes("W2 OpenMSIStream 3.64×: met"),
    formatTargets([W2], records),
  );
  assert.deepEqual(formatTargets([W2], []), "");
});
