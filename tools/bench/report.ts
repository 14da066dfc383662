/**
 * The table `deno task bench` prints: per workload and tool, the median time of its runs and what
 * follows from it.
 *
 * @module
 */
import type { ToolId } from "./tools.ts";
import { OURS, REBUILDS, TOOL_LABELS } from "./tools.ts";
import type { WorkloadId } from "./workloads.ts";

/** One run of one tool on one workload. */
export interface RunRecord {
  workload: WorkloadId;
  tool: ToolId;
  run: number;
  /** Undefined when the run failed. */
  seconds?: number;
  peakRss?: number;
  /** Rebuilding tools: the tree matched the source. Readers: every record was read. */
  checked: boolean;
  problem?: string;
}

/** What the table needs about a workload. */
export interface WorkloadFacts {
  id: WorkloadId;
  bytes: number;
  files: number;
}

/** The median of a non-empty list. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

interface Row {
  workload: WorkloadId;
  tool: ToolId;
  seconds?: number;
  range: string;
  mbps?: number;
  filesPerSecond?: number;
  peakRssMiB?: number;
  check: string;
}

function rows(workloads: WorkloadFacts[], tools: ToolId[], records: RunRecord[]): Row[] {
  const out: Row[] = [];
  for (const w of workloads) {
    for (const tool of tools) {
      const runs = records.filter((r) => r.workload === w.id && r.tool === tool);
      if (runs.length === 0) continue;
      const ok = runs.filter((r) => r.seconds !== undefined);
      const secs = ok.map((r) => r.seconds!);
      const rss = runs.map((r) => r.peakRss).filter((v): v is number => v !== undefined);
      const failed = runs.length - ok.length;
      const bad = runs.filter((r) => r.seconds !== undefined && !r.checked).length;
      const row: Row = {
        workload: w.id,
        tool,
        range: secs.length > 1
          ? `${Math.min(...secs).toFixed(2)}–${Math.max(...secs).toFixed(2)}`
          : "",
        check: failed > 0
          ? `FAILED ${failed}/${runs.length}`
          : bad > 0
          ? `BAD ${bad}/${runs.length}`
          : REBUILDS[tool]
          ? "bytes ok"
          : "records ok",
      };
      if (secs.length > 0) {
        const s = median(secs);
        row.seconds = s;
        row.mbps = w.bytes / 1e6 / s;
        row.filesPerSecond = w.files / s;
      }
      if (rss.length > 0) row.peakRssMiB = Math.max(...rss) / 2 ** 20;
      out.push(row);
    }
  }
  return out;
}

const fixed = (v: number | undefined, digits: number) => v === undefined ? "—" : v.toFixed(digits);

/** The table as aligned Markdown, followed by what its columns mean. */
export function formatTable(
  workloads: WorkloadFacts[],
  tools: ToolId[],
  records: RunRecord[],
  runs: number,
): string {
  const all = rows(workloads, tools, records);
  const secondsOf = (w: WorkloadId, t: ToolId) =>
    all.find((r) => r.workload === w && r.tool === t)?.seconds;
  const ratio = (r: Row, other: ToolId) => {
    if (!OURS.has(r.tool) || r.seconds === undefined) return "";
    const o = secondsOf(r.workload, other);
    return o === undefined ? "—" : (o / r.seconds).toFixed(2);
  };
  const header = [
    "workload",
    "tool",
    `s (median of ${runs})`,
    "s (min–max)",
    "MB/s",
    "files/s",
    "peak RSS MiB",
    "ours/OpenMSIStream",
    "ours/ConsumerPerformance",
    "ours/kafkajs read-only",
    "check",
  ];
  const body = all.map((r) => [
    r.workload,
    TOOL_LABELS[r.tool],
    fixed(r.seconds, 2),
    r.range,
    fixed(r.mbps, 1),
    fixed(r.filesPerSecond, 1),
    fixed(r.peakRssMiB, 0),
    ratio(r, "openmsistream"),
    ratio(r, "cperf"),
    ratio(r, "bare"),
    r.check,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const numeric = new Set([2, 3, 4, 5, 6, 7, 8, 9]);
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join(
        " | ",
      )
    } |`;
  const rule = `| ${
    widths.map((w, i) => numeric.has(i) ? "-".repeat(w - 1) + ":" : "-".repeat(w)).join(" | ")
  } |`;
  return [
    line(header),
    rule,
    ...body.map(line),
    "",
    "- s: from starting the process to the last file published (the rebuilding programs: their",
    "  per-file log line), to its exit (ConsumerPerformance), or to the last record read (kafkajs",
    "  group). Each run uses a fresh consumer group (and a fresh output folder).",
    "- MB/s and files/s: the workload's file bytes (10^6) and files over the median time.",
    "- re-keying: `rekey` forwards the topic to a new one keyed by file and exits when done",
    "  (`--rekey_to --exit_when_done`); `keyed1`/`keyed3` rebuild that topic with one process or",
    "  three in one group (`--exit_when_done`), timed from their start to the last one's exit.",
    "- peak RSS: the highest VmHWM of the process over the runs (of any one of several processes).",
    "- ours/X: the rate of this program over X's rate on the same topic (above 1: faster).",
    "- check: `bytes ok` = every rebuilt file matched its source's SHA-512 in every run;",
    "  `records ok` = every record of the topic was read (or forwarded, for the re-keyer).",
  ].join("\n");
}
