/**
 * `deno task bench [--gib N] [--mb N] [--skip-memory] [--skip-reference]`: speed and memory of
 * DataFileDownloadDirectory against baselines measured in the same run, on a real broker (started
 * here unless `KAFKA_BOOTSTRAP_SERVERS` is set).
 *
 * 1. Throughput: `--mb` MB of files (512 KiB chunks, LZ4) are rebuilt by our CLI; the baseline is a
 *    bare kafkajs consumer group that only reads the same records (no decoding, hashing or disk),
 *    and, when the OpenMSIStream venv is installed, the reference Python `DataFileDownloadDirectory`.
 *    Printed: MB/s of each and the ratios.
 * 2. Memory: one file of `--gib` GiB (default 4) is rebuilt by our CLI while its resident memory is
 *    sampled; printed: peak RSS, the idle RSS of the same CLI before any record (the baseline), and
 *    the ratio of the peak to the 256 MB budget.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CompressionTypes, Kafka, logLevel, type Producer } from "kafkajs";
import { quietKafkajsTimerWarnings } from "../src/process_warnings.ts";
import { chunkKey, encodeChunk, sha512 } from "../src/chunk_codec.ts";
import { listFiles, produceFiles } from "../src/chunk_producer.ts";
import { registerCodecs } from "../src/compression.ts";
import { type Broker, processRssBytes, startBroker } from "./broker.ts";
import { VENV_DIR } from "./openmsistream_venv.ts";

quietKafkajsTimerWarnings();

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const say = (line: string) => console.log(line);

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

async function createTopic(kafka: Kafka, topic: string, partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  await admin.disconnect();
}

/** Runs the CLI until `done` matches its output `count` times, sampling its RSS; returns seconds and peak RSS. */
/** Our CLI, run by this Deno with the permissions the README gives. */
const OURS = [
  Deno.execPath(),
  "run",
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-sys",
  CLI,
];

/**
 * Runs a downloader (`command` with `args`) until `done` matches its output `count` times, then
 * types `q`, sampling its RSS meanwhile; returns seconds to done, peak RSS and RSS once joined.
 */
async function runDownloader(
  command: string[],
  args: string[],
  env: Record<string, string>,
  done: RegExp,
  count: number,
): Promise<{ seconds: number; peakRss: number; idleRss: number }> {
  const t0 = performance.now();
  const [program, ...programArgs] = command;
  const child = new Deno.Command(program!, {
    args: [...programArgs, ...args],
    env,
    stdin: "piped",
    stderr: "piped",
    stdout: "null",
  }).spawn();
  let peakRss = 0;
  let idleRss = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const rss = await processRssBytes(child.pid);
      if (rss !== undefined) peakRss = Math.max(peakRss, rss);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let output = "";
  let seconds = 0;
  const decoder = new TextDecoder();
  const stdin = child.stdin.getWriter();
  for await (const bytes of child.stderr) {
    output += decoder.decode(bytes, { stream: true });
    if (idleRss === 0 && /joined the group/.test(output)) {
      idleRss = (await processRssBytes(child.pid)) ?? 0;
    }
    if (seconds === 0 && (output.match(new RegExp(done.source, "g"))?.length ?? 0) >= count) {
      seconds = (performance.now() - t0) / 1000;
      await stdin.write(new TextEncoder().encode("q\n"));
      await stdin.close();
    }
  }
  await child.status;
  sampling = false;
  await sampler;
  if (seconds === 0) throw new Error(`The CLI stopped before it finished:\n${output.slice(-3000)}`);
  return { seconds, peakRss, idleRss };
}

/** Seconds for a bare kafkajs group to read `expected` records of `topic` (the baseline). */
async function bareConsume(kafka: Kafka, topic: string, expected: number): Promise<number> {
  const t0 = performance.now();
  const groupId = `bench-bare-${crypto.randomUUID()}`;
  let read = 0;
  let resolveDone: () => void = () => {};
  const allRead = new Promise<void>((resolve) => (resolveDone = resolve));
  const group = [0, 1].map(() =>
    kafka.consumer({
      groupId,
      maxBytesPerPartition: 8 * 1024 * 1024,
      maxBytes: 32 * 1024 * 1024,
      maxWaitTimeInMs: 500,
    })
  );
  for (const consumer of group) {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        read += batch.messages.length;
        if (read >= expected) resolveDone();
        await Promise.resolve();
      },
    });
  }
  await allRead;
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(group.map((c) => c.disconnect()));
  return seconds;
}

async function writeTree(root: string, megabytes: number): Promise<void> {
  const sizes = [0.37, 0.25, 0.2, 0.1, 0.05, 0.03].map((f) =>
    Math.floor(f * megabytes * 1_000_000)
  );
  for (const [i, size] of sizes.entries()) {
    const dir = join(root, `run_${i % 3}`);
    await Deno.mkdir(dir, { recursive: true });
    const bytes = new Uint8Array(size);
    for (let o = 0; o < size; o += 65536) {
      crypto.getRandomValues(bytes.subarray(o, Math.min(size, o + 65536)));
    }
    await Deno.writeFile(join(dir, `file_${i}.dat`), bytes);
  }
}

/** Produces one synthetic file of `bytes` bytes as 512 KiB chunks without holding it in memory. */
async function produceBigFile(producer: Producer, topic: string, bytes: number): Promise<number> {
  const size = 524288;
  const n = Math.ceil(bytes / size);
  const block = new Uint8Array(size);
  for (let o = 0; o < size; o += 65536) crypto.getRandomValues(block.subarray(o, o + 65536));
  const chunkData = (i: number) => {
    const data = block.slice(0, Math.min(size, bytes - i * size));
    new DataView(data.buffer).setUint32(0, i); // every chunk differs
    return data;
  };
  const fileHash = createHash("sha512");
  for (let i = 0; i < n; i++) fileHash.update(chunkData(i));
  const digest = new Uint8Array(fileHash.digest());
  let batch: { key: string; value: Buffer }[] = [];
  for (let i = 0; i < n; i++) {
    const data = chunkData(i);
    const chunk = {
      filename: "big.bin",
      fileHash: digest,
      chunkHash: sha512(data),
      chunkOffsetWrite: i * size,
      chunkI: i + 1,
      nTotalChunks: n,
      subdirStr: "memory",
      filenameAppend: "",
      data,
      fileMtime: 1700000000,
    };
    const v = encodeChunk(chunk);
    batch.push({ key: chunkKey(chunk), value: Buffer.from(v.buffer, v.byteOffset, v.byteLength) });
    if (batch.length === 16) {
      await producer.send({ topic, messages: batch, compression: CompressionTypes.None });
      batch = [];
    }
    if (i % 1024 === 1023) say(`  produced ${((i + 1) * size / 2 ** 30).toFixed(1)} GiB`);
  }
  if (batch.length > 0) {
    await producer.send({ topic, messages: batch, compression: CompressionTypes.None });
  }
  return n;
}

const mb = flag("mb", 1000);
const gib = flag("gib", 4);
let broker: Broker | undefined;
try {
  let bootstrap = Deno.env.get("KAFKA_BOOTSTRAP_SERVERS")?.trim();
  if (!bootstrap) {
    broker = await startBroker({ log: () => {} });
    bootstrap = broker.bootstrapServers;
  }
  const env = { LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: bootstrap, NO_COLOR: "1" };
  registerCodecs();
  const kafka = new Kafka({
    clientId: "bench",
    brokers: bootstrap.split(","),
    logLevel: logLevel.NOTHING,
  });
  const work = await Deno.makeTempDir({ prefix: "dfdd-bench-" });
  const MiB = 1024 * 1024;

  say(`Throughput: ${mb} MB of files, 512 KiB chunks, LZ4, 4 partitions, 2 consumers`);
  const src = join(work, "src");
  await writeTree(src, mb);
  const topic = `bench-${Date.now()}`;
  await createTopic(kafka, topic, 4);
  const producer = kafka.producer();
  await producer.connect();
  const files = await listFiles(src);
  const records = await produceFiles(producer, topic, src, files);
  const bytes = (await Promise.all(files.map((f) => Deno.stat(f)))).reduce((s, i) => s + i.size, 0);
  const base = await bareConsume(kafka, topic, records);
  const ours = await runDownloader(
    OURS,
    [
      join(work, "ours"),
      "--config",
      "local_broker_test",
      "--topic_name",
      topic,
      "--n_threads",
      "2",
    ],
    env,
    /successfully reconstructed from stream/,
    files.length,
  );
  const rate = (s: number) => `${(bytes / 1e6 / s).toFixed(1)} MB/s`;
  say(`  baseline, bare kafkajs group reading the records: ${base.toFixed(2)} s, ${rate(base)}`);
  say(
    `  DataFileDownloadDirectory (this project):         ${ours.seconds.toFixed(2)} s, ${
      rate(ours.seconds)
    } (process start to last file)`,
  );
  say(`  ratio ours / baseline throughput: ${(base / ours.seconds).toFixed(2)}`);

  const python = `${VENV_DIR}/bin/DataFileDownloadDirectory`;
  if (
    !Deno.args.includes("--skip-reference") && await Deno.stat(python).then(() => true, () => false)
  ) {
    const { seconds } = await runDownloader(
      [python],
      [
        join(work, "reference"),
        "--config",
        "local_broker_test",
        "--topic_name",
        topic,
        "--logger_stream_level",
        "debug",
      ],
      env,
      /successfully reconstructed from stream/,
      files.length,
    );
    say(
      `  reference OpenMSIStream 1.8.8 (Python):          ${seconds.toFixed(2)} s, ${
        rate(seconds)
      }`,
    );
    say(`  ratio ours / reference throughput: ${(seconds / ours.seconds).toFixed(2)}`);
  } else {
    say(
      "  (reference OpenMSIStream not measured: run `deno task venv` first, or --skip-reference was given)",
    );
  }
  await producer.disconnect();

  if (!Deno.args.includes("--skip-memory")) {
    say(`Memory: one ${gib} GiB file, 512 KiB chunks, 4 partitions, 2 consumers`);
    const bigTopic = `bench-big-${Date.now()}`;
    await createTopic(kafka, bigTopic, 4);
    const p = kafka.producer();
    await p.connect();
    await produceBigFile(p, bigTopic, gib * 2 ** 30);
    await p.disconnect();
    const out = join(work, "big");
    const run = await runDownloader(
      OURS,
      [out, "--config", "local_broker_test", "--topic_name", bigTopic, "--n_threads", "2"],
      env,
      /successfully reconstructed from stream/,
      1,
    );
    const size = (await Deno.stat(join(out, "memory/big.bin"))).size;
    say(
      `  rebuilt ${(size / 2 ** 30).toFixed(2)} GiB in ${run.seconds.toFixed(1)} s (${
        (size / 1e6 / run.seconds).toFixed(1)
      } MB/s)`,
    );
    say(
      `  baseline, idle RSS of the same CLI after joining: ${(run.idleRss / MiB).toFixed(0)} MiB`,
    );
    say(
      `  peak RSS while rebuilding: ${(run.peakRss / MiB).toFixed(0)} MiB (ratio to idle ${
        (run.peakRss / Math.max(1, run.idleRss)).toFixed(2)
      }, to the 256 MB budget ${(run.peakRss / 256e6).toFixed(2)})`,
    );
  }
  await Deno.remove(work, { recursive: true });
} finally {
  await broker?.stop();
}
