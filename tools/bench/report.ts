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

/** The performance targets the table is measured against, with their thresholds. */
export const TARGETS = {
  /** W1: this program's rate over OpenMSIStream's, and over ConsumerPerformance's. */
  w1OverOpenMsiStream: 2,
  w1OverConsumerPerformance: 0.7,
  /** W2 and W3: this program's rate over OpenMSIStream's. */
  smallChunksOverOpenMsiStream: 3,
  /** W4: this program's rate over OpenMSIStream's. */
  w4OverOpenMsiStream: 2,
  /** Peak RSS of this program on every workload, in MiB. */
  peakRssMiB: 256,
} as const;

/**
 * Whether this run meets each target, one line each: ratios of `--n_threads 2`'s median time
 * against the other tools' medians, the highest peak RSS of either setting in any run, and
 * `--n_threads 4` against 2 (medians; in how many runs 4 was the slower of the pair, and the median
 * of 4's time over 2's run by run). A target whose tools or workloads were not run says so.
 */
export function formatTargets(workloads: WorkloadFacts[], records: RunRecord[]): string {
  // The table's own rows: the same medians and peaks.
  const table = rows(workloads, ["ours2", "ours4", "openmsistream", "cperf"], records);
  const rowOf = (w: WorkloadId, t: ToolId) => table.find((r) => r.workload === w && r.tool === t);
  const medianOf = (w: WorkloadId, t: ToolId) => rowOf(w, t)?.seconds;
  const has = (w: WorkloadId) =>
    workloads.some((f) => f.id === w) && records.some((r) => r.workload === w);
  const verdict = (met: boolean) => met ? "met" : "NOT MET";
  const lines: string[] = [];
  const over = (w: WorkloadId, other: ToolId, at: number, label: string) => {
    const ours = medianOf(w, "ours2");
    const theirs = medianOf(w, other);
    if (ours === undefined || theirs === undefined) {
      return { text: `${label}: not measured (run ours2 and ${other})`, met: undefined };
    }
    const ratio = theirs / ours;
    const shown = other === "cperf" ? `${Math.round(ratio * 100)}%` : `${ratio.toFixed(2)}×`;
    return { text: `${label} ${shown}`, met: ratio >= at };
  };
  const ratioLine = (title: string, parts: ReturnType<typeof over>[]) => {
    const measured = parts.every((p) => p.met !== undefined);
    const met = parts.every((p) => p.met === true);
    lines.push(
      `- ${title}: ${parts.map((p) => p.text).join(", ")}${measured ? `: ${verdict(met)}` : ""}`,
    );
  };
  if (has("W1")) {
    ratioLine(
      `W1 ≥ ${TARGETS.w1OverOpenMsiStream}× OpenMSIStream and ≥ ${
        TARGETS.w1OverConsumerPerformance * 100
      }% of ConsumerPerformance`,
      [
        over("W1", "openmsistream", TARGETS.w1OverOpenMsiStream, "OpenMSIStream"),
        over("W1", "cperf", TARGETS.w1OverConsumerPerformance, "ConsumerPerformance"),
      ],
    );
  }
  const small = (["W2", "W3"] as const).filter(has);
  if (small.length > 0) {
    ratioLine(
      `${small.join(" and ")} ≥ ${TARGETS.smallChunksOverOpenMsiStream}× OpenMSIStream`,
      small.map((w) =>
        over(w, "openmsistream", TARGETS.smallChunksOverOpenMsiStream, `${w} OpenMSIStream`)
      ),
    );
  }
  if (has("W4")) {
    ratioLine(`W4 ≥ ${TARGETS.w4OverOpenMsiStream}× OpenMSIStream`, [
      over("W4", "openmsistream", TARGETS.w4OverOpenMsiStream, "OpenMSIStream"),
    ]);
  }
  const rss = workloads.flatMap((w) => {
    const peaks = [rowOf(w.id, "ours2")?.peakRssMiB, rowOf(w.id, "ours4")?.peakRssMiB]
      .filter((v): v is number => v !== undefined);
    if (peaks.length === 0) return [];
    const size = w.id === "W4" ? ` (${(w.bytes / 2 ** 30).toFixed(1)} GiB)` : "";
    const peak = Math.max(...peaks);
    return [{ text: `${w.id}${size} ${peak.toFixed(0)}`, peak }];
  });
  if (rss.length > 0) {
    const met = rss.every((r) => r.peak <= TARGETS.peakRssMiB);
    lines.push(
      `- peak RSS ≤ ${TARGETS.peakRssMiB} MiB (highest of --n_threads 2 and 4 in any run, MiB): ${
        rss.map((r) => r.text).join(", ")
      }: ${verdict(met)}`,
    );
  }
  const timed = records.filter((r) => r.seconds !== undefined);
  const pairs = workloads.flatMap((w) => {
    const m2 = medianOf(w.id, "ours2");
    const m4 = medianOf(w.id, "ours4");
    if (m2 === undefined || m4 === undefined) return [];
    const four = timed.filter((r) => r.workload === w.id && r.tool === "ours4");
    // 4's time over 2's in each run: the two run back to back, so a slow stretch of the machine
    // slows both, where it moves the medians.
    const paired = timed.filter((r) => r.workload === w.id && r.tool === "ours2").flatMap((a) => {
      const b = four.find((r) => r.run === a.run);
      return b ? [b.seconds! / a.seconds!] : [];
    });
    const change = (m4 / m2 - 1) * 100;
    const how = change === 0
      ? "as fast"
      : `${Math.abs(change).toFixed(1)}% ${change > 0 ? "slower" : "faster"}`;
    return [{
      text: `${w.id} ${how} (${m4.toFixed(2)} against ${m2.toFixed(2)} s; 4 the slower in ${
        paired.filter((ratio) => ratio > 1).length
      } of ${paired.length} runs${
        paired.length > 0
          ? `; 4's time over 2's, run by run: median ${median(paired).toFixed(2)}`
          : ""
      })`,
      met: m4 <= m2,
    }];
  });
  if (pairs.length > 0) {
    lines.push(
      `- --n_threads 4 never slower than 2 (medians): ${pairs.map((p) => p.text).join(", ")}: ${
        verdict(pairs.every((p) => p.met))
      }`,
    );
  }
  return lines.length === 0 ? "" : ["Targets, from this run:", ...lines].join("\n");
}
