/**
 * `deno task demo`: the whole path in one command.
 *
 * Starts a local Kafka broker (or uses `KAFKA_BOOTSTRAP_SERVERS`), creates a 4-partition topic,
 * generates a small directory tree, produces it as OpenMSIStream chunk messages (LZ4), runs the
 * real `DataFileDownloadDirectory` CLI until every file is rebuilt, checks the rebuilt files
 * against the originals, prints where they are, and stops everything.
 *
 * @module
 */
import { Kafka, logLevel } from "kafkajs";
import { quietKafkajsTimerWarnings } from "../src/console/process_warnings.ts";
import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import { listFiles, produceFiles } from "../src/wire/chunk_producer.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import { type Broker, startBroker } from "./broker.ts";

quietKafkajsTimerWarnings();

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const say = (line: string) => console.log(`demo: ${line}`);

async function makeTree(root: string): Promise<void> {
  const files: [string, number][] = [
    ["README.txt", 300],
    ["run_001/spectrum.dat", 700_000],
    ["run_001/images/frame_0001.raw", 2_000_000],
    ["run_001/images/frame_0002.raw", 2_000_000],
    ["run_002/notes with spaces.txt", 5_000],
    ["run_002/calibration/κ-values.csv", 40_000],
  ];
  for (const [rel, size] of files) {
    const path = join(root, rel);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
    }
    await Deno.writeFile(path, bytes);
  }
}

async function digest(path: string): Promise<string> {
  return createHash("sha512").update(await Deno.readFile(path)).digest("hex");
}

let broker: Broker | undefined;
let code = 0;
try {
  let bootstrap = Deno.env.get("KAFKA_BOOTSTRAP_SERVERS")?.trim();
  if (!bootstrap) {
    say("starting a local Kafka broker (the first run fetches Kafka's jars with Maven)…");
    broker = await startBroker({ log: (line) => say(line) });
    bootstrap = broker.bootstrapServers;
  }
  say(`broker at ${bootstrap}`);
  const work = await Deno.makeTempDir({ prefix: "kafka-rebuild-demo-" });
  const source = join(work, "instrument");
  const output = join(work, "rebuilt");
  await makeTree(source);
  const files = await listFiles(source);
  say(`generated ${files.length} files in ${source}`);

  const kafka = new Kafka({
    clientId: "demo",
    brokers: bootstrap.split(","),
    logLevel: logLevel.NOTHING,
  });
  const topic = `demo-${Date.now()}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic, numPartitions: 4, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  await admin.disconnect();
  registerCodecs();
  const producer = kafka.producer();
  await producer.connect();
  const sent = await produceFiles(producer, topic, source, files, {
    onFile: (path, chunks) =>
      say(`produced ${relative(source, path)} as ${chunks} chunk message(s)`),
  });
  await producer.disconnect();
  say(`produced ${sent} chunk messages to topic ${topic}; starting DataFileDownloadDirectory`);

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--allow-sys",
      "--allow-ffi",
      CLI,
      output,
      "--config",
      "local_broker_test",
      "--topic_name",
      topic,
      "--n_threads",
      "2",
    ],
    env: { LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: bootstrap },
    stdin: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = child.stdin.getWriter();
  let rebuilt = 0;
  let buffer = "";
  const decoder = new TextDecoder();
  let asked = false;
  for await (const bytes of child.stderr) {
    Deno.stderr.writeSync(bytes);
    buffer += decoder.decode(bytes, { stream: true });
    rebuilt = buffer.match(/successfully reconstructed from stream/g)?.length ?? 0;
    if (rebuilt === files.length && !asked) {
      asked = true;
      say("every file is rebuilt; typing check, then quit");
      await stdin.write(new TextEncoder().encode("check\nquit\n"));
      await stdin.close().catch(() => {});
    }
  }
  const status = await child.status;
  let identical = 0;
  for (const path of files) {
    const copy = join(output, relative(source, path));
    if (await digest(copy) === await digest(path)) identical++;
    else say(`MISMATCH: ${copy}`);
  }
  say(`DataFileDownloadDirectory exited with ${status.code}`);
  say(`${identical} of ${files.length} files rebuilt byte-identical in ${output}`);
  if (identical !== files.length || status.code !== 0) code = 1;
} catch (error) {
  console.error(`demo: error: ${error instanceof Error ? error.message : error}`);
  code = 1;
} finally {
  if (broker) {
    say("stopping the broker");
    await broker.stop();
  }
}
Deno.exit(code);
