/**
 * `deno task bench [options]`: this program against OpenMSIStream and against what the broker
 * can deliver, on topics made the way OpenMSIStream's uploader makes them, in one invocation.
 * `deno task bench --help` lists the options.
 *
 * For each workload (W1: 16 MiB files at 512 KiB chunks, W2: the same bytes at 16 KiB chunks, W3:
 * many 4 KiB files in 100 folders, W4: one big file):
 *
 * 1. a tree of random files is written to a temporary folder, with each file's SHA-512;
 * 2. it is produced to a new 4-partition topic by OpenMSIStream 1.8.8's own uploader classes on
 *    librdkafka (tools/bench/produce.py in the venv of tools/openmsistream_venv.ts: its shipped
 *    `batch.size = 2000000`, `linger.ms = 100`, `compression.type = lz4`, one message per chunk
 *    with the uploader's key), then the tree is deleted (see 3 for trees of many files);
 * 3. `--runs` times, each tool reads the whole topic with a fresh consumer group (and a fresh
 *    output folder), in an order that changes from run to run (`runOrder`): this program with `--n_threads 2` and `4`, OpenMSIStream's
 *    `DataFileDownloadDirectory --n_threads 2`, Kafka's `ConsumerPerformance` (the `kafka-tools`
 *    jar of the broker's version, fetched once with Maven from tools/kafka/tools-pom.xml) and a
 *    bare kafkajs group that only counts records. Time runs from starting the process to its last
 *    file published (to its exit for ConsumerPerformance, to the last record for the kafkajs
 *    group); peak RSS is the process's VmHWM. Every rebuilt tree is checked against the source's
 *    SHA-512s, then deleted; a tree of 1,000 files or more (W3) is deleted only after the workload's
 *    last run, with the source tree: ext4 without a journal (this machine's file system) skips
 *    inodes freed in the last 60-300 s when it allocates new ones, and deleting 20,000 files just
 *    before a run made that run's file creations take seconds longer, whichever tool it was.
 *    Before each run, `sync` (not timed) writes out what the producer or the last run left dirty
 *    in the page cache, so that no run pays for another's writes: the reference does not sync the
 *    files it writes, and this program's sync groups (`syncfs`) would write them out;
 * 4. the topic and the consumer groups are deleted.
 *
 * Then one table: medians, MB/s, files/s, peak RSS and the ratios ours/OpenMSIStream and
 * ours/ConsumerPerformance. Everything it made (topics, groups, temporary folders, processes) is
 * removed at the end, on failure and on Ctrl-C / SIGTERM. It uses the broker at
 * `KAFKA_BOOTSTRAP_SERVERS` when set, otherwise starts one (tools/broker.ts) and stops it. With
 * `--broker-rtt-ms N`, it starts its own broker behind a proxy (tools/bench/delay_proxy.ts) that
 * adds N ms to every round trip while the tools read, as a broker across a network would.
 * Exits 1 if any run failed or any rebuilt tree differed.
 *
 * @module
 */
import { join } from "node:path";
import { type Admin, Kafka, logLevel } from "kafkajs";
import { quietKafkajsTimerWarnings } from "../src/console/process_warnings.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import {
  type Broker,
  freePort,
  KAFKA_VERSION,
  startBroker,
  type StartBrokerOptions,
} from "./broker.ts";
import { type DelayProxy, startDelayProxy } from "./bench/delay_proxy.ts";
import { ensureOpenMsiStream, OPENMSISTREAM_VERSION, VENV_DIR } from "./openmsistream_venv.ts";
import { killAllChildren, RunFailed, timedRun } from "./bench/process.ts";
import { type ProducerKind, produceTree } from "./bench/produce.ts";
import { formatTable, formatTargets, type RunRecord, type WorkloadFacts } from "./bench/report.ts";
import {
  consumerPerformanceReport,
  ensureKafkaToolsJars,
  ON_REKEYED,
  outDirsOf,
  REBUILDS,
  runOrder,
  TOOL_IDS,
  TOOL_LABELS,
  type ToolId,
  toolRun,
} from "./bench/tools.ts";
import {
  totalBytes,
  verifyTrees,
  WORKLOAD_IDS,
  type WorkloadId,
  workloadSpec,
  writeSourceTree,
} from "./bench/workloads.ts";

quietKafkajsTimerWarnings();

const USAGE = `deno task bench [options]

Workloads (each produced once to its own 4-partition topic, then read by every tool):
  W1  files of 16 MiB at 512 KiB chunks        --w1-mib N   total MiB (default 1024)
  W2  the same at 16 KiB chunks                --w2-mib N   total MiB (default: W1's)
  W3  4 KiB files in 100 folders               --w3-files N (default 20000)
  W4  one big file at 512 KiB chunks           --w4-mib N   (default 4096)

Options:
  --only W1,W3        workloads to run (default all)
  --runs N            runs of every tool on every workload (default 3; medians are reported)
  --tools LIST        of ${TOOL_IDS.join(",")} (default all)
  --skip-reference    leave OpenMSIStream's DataFileDownloadDirectory out
  --producer KIND     librdkafka (default: OpenMSIStream's uploader classes in the venv)
                      or kafkajs (this project's producer)
  --timeout S         seconds one tool run may take (default from the workload's size)
  --mb N              W1 and W2 totals in MB (10^6), as the earlier bench had it
  --gib N             W4's size in GiB
  --skip-memory       leave W4 out
  --broker-rtt-ms N   put the broker N ms away while the tools read (a proxy that delays every
                      byte by N/2 ms each way; the topics are produced without the delay); needs
                      the benchmark's own broker, not KAFKA_BOOTSTRAP_SERVERS
  -h, --help          this text

Smoke run: deno task bench --w1-mib 64 --w2-mib 16 --w3-files 500 --w4-mib 128 --runs 1
Uses the broker at KAFKA_BOOTSTRAP_SERVERS, or starts one for the run.`;

const say = (line: string) => console.log(line);

/** Trees of at least this many files are deleted after their workload's last run (module doc, 3). */
const MANY_FILES = 1000;

interface Options {
  only: WorkloadId[];
  runs: number;
  tools: ToolId[];
  producer: ProducerKind | undefined;
  timeout: number | undefined;
  sizes: { w1MiB: number; w2MiB: number | undefined; w3Files: number; w4MiB: number };
  skipReference: boolean;
  brokerRttMs: number | undefined;
}

function usageError(message: string): never {
  console.error(`${USAGE}\n\nerror: ${message}`);
  Deno.exit(2);
}

function parseOptions(args: string[]): Options {
  const o: Options = {
    only: [...WORKLOAD_IDS],
    runs: 3,
    tools: [...TOOL_IDS],
    producer: undefined,
    timeout: undefined,
    sizes: { w1MiB: 1024, w2MiB: undefined, w3Files: 20000, w4MiB: 4096 },
    skipReference: false,
    brokerRttMs: undefined,
  };
  let skipMemory = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = () => {
      if (eq > 0) return arg.slice(eq + 1);
      const v = args[++i];
      if (v === undefined) usageError(`${name} needs a value`);
      return v;
    };
    const number = (min: number) => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < min) usageError(`${name} needs a number of at least ${min}`);
      return v;
    };
    switch (name) {
      case "-h":
      case "--help":
        console.log(USAGE);
        Deno.exit(0);
        break;
      case "--only": {
        const ids = value().split(",").map((s) => s.trim().toUpperCase()).filter(Boolean);
        for (const id of ids) {
          if (!(WORKLOAD_IDS as readonly string[]).includes(id)) {
            usageError(`unknown workload ${id} (${WORKLOAD_IDS.join(", ")})`);
          }
        }
        o.only = WORKLOAD_IDS.filter((id) => ids.includes(id));
        break;
      }
      case "--tools": {
        const ids = value().split(",").map((s) => s.trim()).filter(Boolean);
        for (const id of ids) {
          if (!(TOOL_IDS as readonly string[]).includes(id)) {
            usageError(`unknown tool ${id} (${TOOL_IDS.join(", ")})`);
          }
        }
        o.tools = TOOL_IDS.filter((id) => ids.includes(id));
        break;
      }
      case "--runs":
        o.runs = Math.round(number(1));
        break;
      case "--w1-mib":
        o.sizes.w1MiB = number(0.001);
        break;
      case "--w2-mib":
        o.sizes.w2MiB = number(0.001);
        break;
      case "--w3-files":
        o.sizes.w3Files = Math.round(number(1));
        break;
      case "--w4-mib":
        o.sizes.w4MiB = number(0.001);
        break;
      case "--mb": {
        const mib = number(0.001) * 1e6 / 2 ** 20;
        o.sizes.w1MiB = mib;
        o.sizes.w2MiB = mib;
        break;
      }
      case "--gib":
        o.sizes.w4MiB = number(0.001) * 1024;
        break;
      case "--skip-memory":
        skipMemory = true;
        break;
      case "--skip-reference":
        o.skipReference = true;
        break;
      case "--producer": {
        const v = value();
        if (v !== "librdkafka" && v !== "kafkajs") {
          usageError("--producer is librdkafka or kafkajs");
        }
        o.producer = v;
        break;
      }
      case "--timeout":
        o.timeout = number(1);
        break;
      case "--broker-rtt-ms":
        o.brokerRttMs = number(0);
        break;
      default:
        usageError(`unknown option ${arg}`);
    }
  }
  if (skipMemory) o.only = o.only.filter((id) => id !== "W4");
  if (o.skipReference) o.tools = o.tools.filter((t) => t !== "openmsistream");
  if (!o.tools.includes("rekey") && o.tools.some((t) => ON_REKEYED.has(t))) {
    usageError("keyed1 and keyed3 read the topic that rekey writes: add rekey to --tools");
  }
  if (o.only.length === 0) usageError("no workload left to run");
  if (o.tools.length === 0) usageError("no tool left to run");
  return o;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: everything made is undone once, at the end, on failure, or on a signal.

const cleanups: { what: string; run: () => Promise<void> }[] = [];
let cleaning: Promise<void> | undefined;
let aborted = false;

function onCleanup(what: string, run: () => Promise<void>): void {
  cleanups.push({ what, run });
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await killAllChildren();
    for (const c of cleanups.reverse()) {
      try {
        await c.run();
      } catch (e) {
        console.error(`cleanup: could not ${c.what}: ${e instanceof Error ? e.message : e}`);
      }
    }
  })();
  return cleaning;
}

for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.addSignalListener(sig, () => {
    if (aborted) return;
    aborted = true;
    console.error(`\n${sig}: stopping the tools and cleaning up...`);
    cleanup().finally(() => Deno.exit(code));
  });
}

/**
 * Deletes consumer groups, retrying for `patienceMs` those that still have a member (a process
 * that was killed stays a member until its session times out). Returns the ones left.
 */
async function deleteGroups(admin: Admin, ids: string[], patienceMs: number): Promise<string[]> {
  const deadline = performance.now() + patienceMs;
  let left = ids;
  for (;;) {
    const failed = await Promise.all(left.map((id) =>
      admin.deleteGroups([id]).then(
        () => undefined,
        (e: { groups?: { errorCode?: number }[] }) =>
          e.groups?.every((g) => g.errorCode === 69) ? undefined : id, // 69: GROUP_ID_NOT_FOUND
      )
    ));
    left = failed.filter((id): id is string => id !== undefined);
    if (left.length === 0 || performance.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Writes out everything dirty in the page cache (`sync`, not timed), so that a run does not pay for
 * what the producer or the run before it left unwritten.
 */
async function settleDisk(): Promise<void> {
  if (Deno.build.os === "windows") return;
  await new Deno.Command("sync", { stdout: "null", stderr: "null" }).output().catch(() => {});
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  const notes: string[] = [];
  let tools = options.tools;

  let bootstrap = Deno.env.get("KAFKA_BOOTSTRAP_SERVERS")?.trim();
  let proxy: DelayProxy | undefined;
  if (bootstrap && options.brokerRttMs !== undefined) {
    usageError(
      "--broker-rtt-ms puts a proxy in front of the benchmark's own broker: unset KAFKA_BOOTSTRAP_SERVERS",
    );
  }
  if (bootstrap) {
    say(`Using the Kafka broker at ${bootstrap} (KAFKA_BOOTSTRAP_SERVERS).`);
  } else {
    let brokerOptions: StartBrokerOptions = {};
    if (options.brokerRttMs !== undefined) {
      // The broker's metadata names the proxy, so that no client reaches the broker directly.
      const port = freePort();
      const started = startDelayProxy({ hostname: "127.0.0.1", port });
      proxy = started;
      onCleanup("stop the delay proxy", () => started.close());
      brokerOptions = { port, advertisedPort: started.port };
      notes.push(
        (options.brokerRttMs > 0
          ? `The broker was ${options.brokerRttMs} ms away while the tools read (a proxy on ` +
            `this machine delayed every byte by ${options.brokerRttMs / 2} ms each way)`
          : "The tools reached the broker through a proxy on this machine that adds no delay") +
          "; the targets are stated for a broker beside the program.",
      );
    }
    const broker: Broker = await startBroker({ log: say, ...brokerOptions });
    onCleanup("stop the broker", () => broker.stop());
    bootstrap = broker.bootstrapServers;
    if (proxy) {
      // Every connection through the proxy, the first one too, as with a broker far away.
      bootstrap = `127.0.0.1:${proxy.port}`;
      say(`Clients reach it through a delay proxy at ${bootstrap}.`);
    }
  }

  // The producer and the reference need the OpenMSIStream venv.
  const venvReady = await exists(`${VENV_DIR}/.openmsistream-${OPENMSISTREAM_VERSION}.installed`);
  let producer: ProducerKind = options.producer ?? "librdkafka";
  if (options.skipReference) notes.push("OpenMSIStream not measured: --skip-reference.");
  if (options.producer === undefined && options.skipReference && !venvReady) {
    producer = "kafkajs";
    notes.push(
      "Produced with kafkajs (this project's producer), not librdkafka: the OpenMSIStream venv " +
        "is not installed (`deno task venv`) and --skip-reference was given.",
    );
  } else if (producer === "librdkafka" || tools.includes("openmsistream")) {
    await ensureOpenMsiStream({ verbose: true });
  }
  if (producer === "kafkajs" && options.producer === "kafkajs") {
    notes.push("Produced with kafkajs (--producer kafkajs), not OpenMSIStream's librdkafka.");
  }

  let kafkaToolsLibs: string | undefined;
  if (tools.includes("cperf")) {
    try {
      kafkaToolsLibs = await ensureKafkaToolsJars(say);
    } catch (e) {
      tools = tools.filter((t) => t !== "cperf");
      notes.push(`ConsumerPerformance not measured: ${firstLine(e)}`);
      say(`ConsumerPerformance left out: ${firstLine(e)}`);
    }
  }

  registerCodecs();
  const kafka = new Kafka({
    clientId: "bench",
    brokers: bootstrap.split(","),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  const topics = new Set<string>();
  const groups = new Set<string>();
  onCleanup("disconnect the admin client", () => admin.disconnect());
  onCleanup("delete the benchmark's topics and consumer groups", async () => {
    const left = await deleteGroups(admin, [...groups], 15_000);
    if (left.length > 0) {
      console.error(
        `cleanup: consumer group(s) ${left.join(", ")} still had a member (a killed process) and ` +
          `were not deleted; the broker drops them after offsets.retention.minutes`,
      );
    }
    if (topics.size > 0) await admin.deleteTopics({ topics: [...topics] });
  });
  const work = await Deno.makeTempDir({ prefix: "dfdd-bench-" });
  onCleanup(`remove ${work}`, () => Deno.remove(work, { recursive: true }));
  const logs = join(work, "logs");
  await Deno.mkdir(logs);

  const sizes = { ...options.sizes, w2MiB: options.sizes.w2MiB ?? options.sizes.w1MiB };
  say(
    `Benchmark on ${navigator.hardwareConcurrency} cores: workloads ${options.only.join(", ")}; ` +
      `${options.runs} run(s) of ${tools.map((t) => TOOL_LABELS[t]).join(", ")}; ` +
      `Kafka ${KAFKA_VERSION}; producer ${
        producer === "librdkafka"
          ? `OpenMSIStream ${OPENMSISTREAM_VERSION} on librdkafka`
          : "kafkajs"
      }; work folder ${work}`,
  );

  const records: RunRecord[] = [];
  const facts: WorkloadFacts[] = [];
  const tag = `${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  for (const id of options.only) {
    const spec = workloadSpec(id, sizes);
    const bytes = totalBytes(spec);
    const nFiles = spec.files.length;
    say(`\n${id}: ${spec.title}, ${(bytes / 1e6).toFixed(1)} MB`);
    const src = join(work, id, "src");
    say(`  writing the source tree with each file's SHA-512...`);
    const manifest = await writeSourceTree(
      src,
      spec,
      (b) => say(`    ${(b / 1e6).toFixed(0)} of ${(bytes / 1e6).toFixed(0)} MB written`),
    );
    const topic = `bench-${id.toLowerCase()}-${tag}`;
    await admin.createTopics({
      topics: [{ topic, numPartitions: 4, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    topics.add(topic);
    say(`  producing it to topic ${topic} (4 partitions) with ${producer}...`);
    const produceSeconds = await produceTree({
      kind: producer,
      bootstrap,
      kafka,
      root: src,
      topic,
      chunkSize: spec.chunkSize,
      timeoutSeconds: 300 + bytes / 2e6 + nFiles / 20,
      log: (line) => say(`    ${line}`),
    });
    const offsets = await admin.fetchTopicOffsets(topic);
    const nRecords = offsets.reduce((s, p) => s + Number(p.high) - Number(p.low), 0);
    say(
      `  produced ${nRecords} records in ${produceSeconds.toFixed(1)} s ` +
        `(per partition: ${offsets.map((p) => p.high).join(", ")})`,
    );
    // Removed with the workload's folder after its last run when it has many files (see above).
    const removeLater = nFiles >= MANY_FILES;
    if (!removeLater) await Deno.remove(src, { recursive: true });
    facts.push({ id, bytes, files: nFiles });

    const timeoutSeconds = options.timeout ?? Math.round(120 + bytes / 4e6 + nFiles / 40);
    for (let run = 1; run <= options.runs; run++) {
      const rekeyedTopic = `${topic}-by-file-r${run}`;
      for (const tool of runOrder(tools, run)) {
        const groupId = `bench-${id.toLowerCase()}-${tool}-r${run}-${tag}`;
        groups.add(groupId);
        const outDir = join(work, id, `${tool}-r${run}`);
        const logPath = tool === "openmsistream"
          ? join(logs, `${id}-${tool}-r${run}`)
          : join(logs, `${id}-${tool}-r${run}.log`);
        say(`  ${id} run ${run}/${options.runs}: ${TOOL_LABELS[tool]}...`);
        const record: RunRecord = { workload: id, tool, run, checked: false };
        if (tool === "rekey") topics.add(rekeyedTopic);
        try {
          await settleDisk();
          if (proxy) proxy.rttMs = options.brokerRttMs ?? 0;
          const runs = toolRun(tool, {
            bootstrap,
            topic,
            rekeyedTopic,
            records: nRecords,
            files: nFiles,
            outDir,
            logPath,
            groupId,
            timeoutSeconds,
            ...(kafkaToolsLibs !== undefined ? { kafkaToolsLibs } : {}),
            ...(REBUILDS[tool]
              ? {
                onProgress: (done: number, s: number) =>
                  say(`    ... ${done}/${nFiles} files after ${s.toFixed(0)} s`),
              }
              : {}),
          });
          // Several processes (hosts) start together; the work is done when the last one's is.
          const results = await Promise.all(runs.map(timedRun));
          const rss = results.map((r) => r.peakRss).filter((v) => v !== undefined);
          const result = {
            seconds: Math.max(...results.map((r) => r.seconds)),
            peakRss: rss.length > 0 ? Math.max(...rss) : undefined,
            tail: results.flatMap((r) => r.tail),
          };
          record.seconds = result.seconds;
          if (result.peakRss !== undefined) record.peakRss = result.peakRss;
          let check: string;
          if (REBUILDS[tool]) {
            const problems = await verifyTrees(outDirsOf(tool, outDir), manifest);
            record.checked = problems.length === 0;
            check = record.checked
              ? `all ${nFiles} files match their source`
              : `REBUILT TREE DIFFERS: ${problems.slice(0, 5).join("; ")}`;
            if (!record.checked) record.problem = check;
          } else if (tool === "cperf") {
            const report = consumerPerformanceReport(result.tail);
            record.checked = report !== undefined && report.records >= nRecords;
            check = `read ${report?.records ?? "?"} of ${nRecords} records` +
              (report
                ? ` (its own measure, without the JVM's start: ${
                  report.seconds.toFixed(2)
                } s, of ` +
                  `which ${(report.rebalanceMs / 1000).toFixed(2)} s joining the group)`
                : "");
          } else if (tool === "rekey") {
            const forwarded = Number(
              /(\d+) records forwarded/.exec(result.tail.join("\n"))?.[1] ?? "-1",
            );
            record.checked = forwarded === nRecords;
            check = `forwarded ${forwarded} of ${nRecords} records`;
          } else {
            record.checked = true;
            check = `read all ${nRecords} records`;
          }
          say(
            `    ${result.seconds.toFixed(2)} s, ${
              (bytes / 1e6 / result.seconds).toFixed(1)
            } MB/s, ` +
              `peak RSS ${
                result.peakRss === undefined ? "?" : (result.peakRss / 2 ** 20).toFixed(0)
              } MiB; ${check}`,
          );
        } catch (e) {
          if (aborted) throw e;
          record.problem = e instanceof RunFailed ? e.message : firstLine(e);
          say(`    FAILED: ${record.problem.split("\n").join("\n      ")}`);
        } finally {
          if (proxy) proxy.rttMs = 0;
          for (const dir of removeLater ? [] : outDirsOf(tool, outDir)) {
            await Deno.remove(dir, { recursive: true }).catch(() => {});
          }
        }
        records.push(record);
      }
    }
    const left = await deleteGroups(admin, [...groups], 15_000);
    groups.clear();
    for (const g of left) groups.add(g); // tried again at the end
    for (const t of topics) await admin.deleteTopics({ topics: [t] }).catch(() => {});
    topics.clear();
    await Deno.remove(join(work, id), { recursive: true }).catch(() => {});
  }

  say(`\n${formatTable(facts, tools, records, options.runs)}`);
  for (const note of notes) say(`- ${note}`);
  const targets = formatTargets(facts, records);
  if (targets) say(`\n${targets}`);
  const failed = records.filter((r) => r.seconds === undefined || !r.checked);
  if (failed.length > 0) {
    say(`\n${failed.length} run(s) failed or did not check out:`);
    for (const r of failed) {
      say(`- ${r.workload} run ${r.run}, ${TOOL_LABELS[r.tool]}: ${firstLine(r.problem ?? "")}`);
    }
  }
  return failed.length > 0 ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  if (!aborted) console.error(`bench failed: ${e instanceof Error ? e.stack ?? e.message : e}`);
} finally {
  if (!aborted) await cleanup();
}
if (!aborted) Deno.exit(code);
