/**
 * The end-of-run summary for pipelines (`--summary_json`), and the drain verdict.
 *
 * @module
 */
import type { DownloadStatus } from "../kafka/downloader.ts";
import type { PartitionLag } from "../kafka/drain.ts";
import { writeStateFile } from "../store/state_file.ts";

/** What ended the run. */
export type StopReason = "drained" | "quit" | "Ctrl-C" | "SIGTERM" | "error" | string;

/** The summary written by `--summary_json`. */
export interface RunSummary {
  program: string;
  version: string;
  topic: string;
  consumerGroup: string;
  outputDir: string;
  started: string;
  ended: string;
  seconds: number;
  /** What ended the run. */
  reason: StopReason;
  exitCode: number;
  records: { read: number; processed: number; bad: number };
  bytes: { read: number; written: number };
  files: {
    published: number;
    /** The most recent published files (up to 50). */
    recent: string[];
    rejected: { path: string; reason: string }[];
    incomplete: { path: string; chunks: number; total: number; bytes: number }[];
    /** Files given up in this run (over a bound on what may be in progress). */
    givenUp: number;
  };
  /**
   * By partition: the offset this process committed last, the group's committed offset and the
   * end offset at the end of the run, and, in drain mode, the end offset noted at start.
   */
  offsets: Record<
    string,
    {
      committedHere: string | null;
      committed: number | null;
      end: number | null;
      drainMark?: number;
    }
  >;
}

/** The summary of a run. */
export function runSummary(o: {
  program: string;
  version: string;
  topic: string;
  consumerGroup: string;
  outputDir: string;
  started: Date;
  ended: Date;
  reason: StopReason;
  exitCode: number;
  status: DownloadStatus;
  lags?: PartitionLag[] | undefined;
  drainMarks?: Map<number, number> | undefined;
}): RunSummary {
  const s = o.status;
  const partitions = new Set<number>([
    ...Object.keys(s.committed).map(Number),
    ...(o.lags ?? []).map((l) => l.partition),
    ...(o.drainMarks?.keys() ?? []),
  ]);
  const offsets: RunSummary["offsets"] = {};
  for (const p of [...partitions].sort((a, b) => a - b)) {
    const lag = o.lags?.find((l) => l.partition === p);
    const mark = o.drainMarks?.get(p);
    offsets[String(p)] = {
      committedHere: s.committed[p] ?? null,
      committed: lag?.committed ?? null,
      end: lag?.end ?? null,
      ...(mark === undefined ? {} : { drainMark: mark }),
    };
  }
  return {
    program: o.program,
    version: o.version,
    topic: o.topic,
    consumerGroup: o.consumerGroup,
    outputDir: o.outputDir,
    started: o.started.toISOString(),
    ended: o.ended.toISOString(),
    seconds: Math.round((o.ended.getTime() - o.started.getTime()) / 10) / 100,
    reason: o.reason,
    exitCode: o.exitCode,
    records: { read: s.messagesRead, processed: s.messagesProcessed, bad: s.badRecords },
    bytes: { read: s.bytesRead, written: s.bytesProcessed },
    files: {
      published: s.filesCompleted,
      recent: [...s.recent],
      rejected: [...s.rejected],
      incomplete: [...s.inProgress],
      givenUp: s.givenUp,
    },
    offsets,
  };
}

/** The drain verdict in words: everything published, or the files left incomplete or rejected. */
export function drainReport(status: DownloadStatus): { complete: boolean; text: string } {
  const incomplete = status.inProgress;
  const rejected = status.rejected;
  if (incomplete.length === 0 && rejected.length === 0 && status.givenUp === 0) {
    return {
      complete: true,
      text:
        `Drained: the topic is consumed up to its end at start, and every file begun was published (${status.filesCompleted} in this run)`,
    };
  }
  const lines = [
    `Drained with files not rebuilt: ${incomplete.length} incomplete, ${rejected.length} rejected${
      status.givenUp > 0 ? `, ${status.givenUp} given up` : ""
    } (${status.filesCompleted} published in this run)`,
  ];
  for (const f of incomplete) {
    lines.push(`\t${f.path} (incomplete: ${f.chunks}/${f.total} chunks)`);
  }
  for (const f of rejected) lines.push(`\t${f.path} (rejected: ${f.reason})`);
  return { complete: false, text: lines.join("\n") };
}

/** Writes the summary as JSON, atomically (a reader never sees half of it). */
export async function writeRunSummary(path: string, summary: RunSummary): Promise<void> {
  await writeStateFile(path, new TextEncoder().encode(JSON.stringify(summary, null, 2) + "\n"));
}
