/**
 * The programs `deno task bench` measures on every workload topic, each as a
 * {@linkcode TimedRun}: this project's CLI, OpenMSIStream's `DataFileDownloadDirectory`, Kafka's
 * `ConsumerPerformance` and a bare kafkajs group.
 *
 * @module
 */
import { ensureMavenJars, KAFKA_VERSION } from "../broker.ts";
import { OPENMSISTREAM_VERSION, pythonEnv, VENV_DIR } from "../openmsistream_venv.ts";
import { V8_FLAGS } from "../compile.ts";
import type { TimedRun } from "./process.ts";

/**
 * Tool names, in the order they run within the first run (see {@linkcode runOrder}). `rekey` forwards the workload's topic to a new
 * topic keyed by file (`--rekey_to --exit_when_done`); `keyed1` and `keyed3` rebuild that topic
 * with one downloader process or three in one group (`--exit_when_done`), as hosts would.
 */
export const TOOL_IDS = [
  "ours2",
  "ours4",
  "openmsistream",
  "cperf",
  "bare",
  "rekey",
  "keyed1",
  "keyed3",
] as const;
export type ToolId = typeof TOOL_IDS[number];

/** How each tool is shown in the table. */
export const TOOL_LABELS: Record<ToolId, string> = {
  ours2: "this program --n_threads 2",
  ours4: "this program --n_threads 4",
  openmsistream: `OpenMSIStream ${OPENMSISTREAM_VERSION} --n_threads 2`,
  cperf: `Kafka ${KAFKA_VERSION} ConsumerPerformance`,
  bare: "kafkajs group, read only (2)",
  rekey: "this program --rekey_to (2), forward only",
  keyed1: "re-keyed topic, 1 process --n_threads 2",
  keyed3: "re-keyed topic, 3 processes --n_threads 1",
};

/** Whether the tool rebuilds files (and so is verified). */
export const REBUILDS: Record<ToolId, boolean> = {
  ours2: true,
  ours4: true,
  openmsistream: true,
  cperf: false,
  bare: false,
  rekey: false,
  keyed1: true,
  keyed3: true,
};

/** This project's programs (their rates are compared with the others'). */
export const OURS: ReadonlySet<ToolId> = new Set(["ours2", "ours4", "rekey", "keyed1", "keyed3"]);

/** The tools that read the re-keyed topic (they need `rekey` in the same run, before them). */
export const ON_REKEYED: ReadonlySet<ToolId> = new Set(["keyed1", "keyed3"]);

/**
 * The order of the tools in run `run` (from 1), so that none always runs right after the same other
 * one (a run can leave the machine slower for the next one): this program's two settings run first,
 * `ours2` before `ours4` in odd runs and after it in even ones (an even number of runs puts each
 * after the other equally often); the other independent tools follow them, rotating by one place
 * per run; `rekey` and the tools reading its topic keep their order, at the end.
 */
export function runOrder(tools: readonly ToolId[], run: number): ToolId[] {
  const chained = (t: ToolId) => t === "rekey" || ON_REKEYED.has(t);
  const pair: ToolId[] = ["ours2", "ours4"];
  const ours = tools.filter((t) => pair.includes(t));
  if (run % 2 === 0) ours.reverse();
  const rest = tools.filter((t) => !chained(t) && !pair.includes(t));
  const shift = rest.length === 0 ? 0 : (run - 1) % rest.length;
  return [...ours, ...rest.slice(shift), ...rest.slice(0, shift), ...tools.filter(chained)];
}

/** The output folders of a rebuilding tool's processes (one, or three for `keyed3`). */
export function outDirsOf(tool: ToolId, outDir: string): string[] {
  return tool === "keyed3" ? [1, 2, 3].map((i) => `${outDir}-p${i}`) : [outDir];
}

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const BARE = new URL("./bare_consumer.ts", import.meta.url).pathname;
const TOOLS_POM = new URL("../kafka/tools-pom.xml", import.meta.url);

/**
 * Kafka's command-line tools (`org.apache.kafka:kafka-tools`, the broker's version) and their
 * dependencies, fetched once with Maven from tools/kafka/tools-pom.xml into
 * `.cache/kafka/<version>/tools-libs`. Returns that folder.
 */
export function ensureKafkaToolsJars(log: (line: string) => void): Promise<string> {
  return ensureMavenJars({
    pom: TOOLS_POM,
    dirName: "tools-libs",
    expectJarPrefix: `kafka-tools-${KAFKA_VERSION}`,
    what: `Kafka ${KAFKA_VERSION} command-line tools (kafka-tools)`,
    noMavenHint: ", or leave ConsumerPerformance out with --tools",
    log,
  });
}

/** What a tool run needs to know. */
export interface ToolContext {
  bootstrap: string;
  topic: string;
  /** Records in the topic. */
  records: number;
  /** Files the topic holds. */
  files: number;
  /** Where a rebuilding tool writes (fresh for each run). */
  outDir: string;
  /** Where its log file goes (outside `outDir`). */
  logPath: string;
  /** A consumer group never used before. */
  groupId: string;
  /** The topic `rekey` writes in this run (and `keyed1`/`keyed3` read). */
  rekeyedTopic: string;
  timeoutSeconds: number;
  /** `.cache/kafka/<version>/tools-libs` (for ConsumerPerformance). */
  kafkaToolsLibs?: string;
  onProgress?: (done: number, seconds: number) => void;
}

/** A rebuilt file's log line, in this program's and in the reference's words. */
const RECONSTRUCTED = /File (.+) successfully reconstructed from stream/;

/** This program on `topic`, with `args` after the usual ones. */
function ours(c: ToolContext, outDir: string, topic: string, logPath: string, args: string[]) {
  return {
    command: Deno.execPath(),
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--allow-sys",
      "--allow-ffi",
      V8_FLAGS,
      CLI,
      outDir,
      "--config",
      "local_broker_test",
      "--topic_name",
      topic,
      "--consumer_group_id",
      c.groupId,
      "--logger_file_path",
      logPath,
      ...args,
    ],
    env: { LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: c.bootstrap, NO_COLOR: "1" },
  };
}

/**
 * The {@linkcode TimedRun}s of one tool on one topic: one process, or several started together
 * (`keyed3`), whose work is done when the last one's is.
 */
export function toolRun(tool: ToolId, c: ToolContext): TimedRun[] {
  const common = {
    timeoutSeconds: c.timeoutSeconds,
    ...(c.onProgress ? { onProgress: c.onProgress, progressSeconds: 10 } : {}),
  };
  switch (tool) {
    case "ours2":
    case "ours4":
      return [{
        ...common,
        ...ours(c, c.outDir, c.topic, c.logPath, ["--n_threads", tool === "ours2" ? "2" : "4"]),
        doneLine: RECONSTRUCTED,
        doneCount: c.files,
      }];
    case "rekey":
      // Done when it exits: every record up to the ends noted at its start is forwarded.
      return [{
        timeoutSeconds: c.timeoutSeconds,
        ...ours(c, c.outDir, c.topic, c.logPath, [
          "--rekey_to",
          c.rekeyedTopic,
          "--n_threads",
          "2",
          "--exit_when_done",
        ]),
      }];
    case "keyed1":
    case "keyed3":
      // Each process exits once the group has consumed the whole topic.
      return outDirsOf(tool, c.outDir).map((out, i, all) => ({
        timeoutSeconds: c.timeoutSeconds,
        ...ours(c, out, c.rekeyedTopic, `${c.logPath}.${i + 1}`, [
          "--n_threads",
          all.length === 1 ? "2" : "1",
          "--exit_when_done",
        ]),
      }));
    case "openmsistream":
      return [{
        ...common,
        command: `${VENV_DIR}/bin/DataFileDownloadDirectory`,
        args: [
          c.outDir,
          "--config",
          "local_broker_test",
          "--topic_name",
          c.topic,
          "--consumer_group_id",
          c.groupId,
          "--n_threads",
          "2",
          // Its per-file line is a debug line; the log file keeps its default level (warning).
          "--logger_stream_level",
          "debug",
          "--logger_file_path",
          c.logPath,
        ],
        env: pythonEnv({ LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: c.bootstrap }),
        clearEnv: true,
        doneLine: RECONSTRUCTED,
        doneCount: c.files,
      }];
    case "cperf":
      if (c.kafkaToolsLibs === undefined) throw new Error("kafka-tools jars not fetched");
      return [{
        ...common,
        command: "java",
        args: [
          // The heap and JVM options of Kafka's bin/kafka-consumer-perf-test.sh (kafka-run-class.sh).
          "-Xmx512M",
          "-server",
          "-XX:+UseG1GC",
          "-XX:MaxGCPauseMillis=20",
          "-XX:InitiatingHeapOccupancyPercent=35",
          "-XX:+ExplicitGCInvokesConcurrent",
          "-XX:MaxInlineLevel=15",
          "-Djava.awt.headless=true",
          "-cp",
          `${c.kafkaToolsLibs}/*`,
          "org.apache.kafka.tools.ConsumerPerformance",
          "--bootstrap-server",
          c.bootstrap,
          "--topic",
          c.topic,
          "--group",
          c.groupId,
          "--num-records",
          String(c.records),
          "--timeout",
          "60000",
        ],
      }];
    case "bare":
      return [{
        ...common,
        command: Deno.execPath(),
        args: [
          "run",
          "--allow-read",
          "--allow-net",
          "--allow-env",
          "--allow-sys",
          BARE,
          c.bootstrap,
          c.topic,
          String(c.records),
          "2",
          c.groupId,
        ],
        env: { NO_COLOR: "1" },
        doneLine: /^bench-bare: read (\d+) records/,
        doneCount: 1,
      }];
  }
}

/** What ConsumerPerformance reports about its own run (its result line). */
export interface ConsumerPerformanceReport {
  /** `data.consumed.in.nMsg`. */
  records: number;
  /** Its own elapsed seconds, from its start of consuming to the end (no JVM start). */
  seconds: number;
  /** `rebalance.time.ms` and `fetch.time.ms`. */
  rebalanceMs: number;
  fetchMs: number;
}

/**
 * ConsumerPerformance's result line (`start.time, end.time, data.consumed.in.MB, MB.sec,
 * data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, ...`), or `undefined` when
 * its output has none.
 */
export function consumerPerformanceReport(tail: string[]): ConsumerPerformanceReport | undefined {
  for (const line of [...tail].reverse()) {
    const f = line.split(",").map((x) => x.trim());
    if (f.length >= 8 && /^\d{4}-\d\d-\d\d /.test(f[0]!)) {
      const [mb, mbPerSec, records, rebalanceMs, fetchMs] = [2, 3, 4, 6, 7].map((i) =>
        Number(f[i])
      );
      if ([mb, mbPerSec, records, rebalanceMs, fetchMs].every(Number.isFinite)) {
        return {
          records: records!,
          seconds: mbPerSec! > 0 ? mb! / mbPerSec! : 0,
          rebalanceMs: rebalanceMs!,
          fetchMs: fetchMs!,
        };
      }
    }
  }
  return undefined;
}
