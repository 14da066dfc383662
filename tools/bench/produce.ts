/**
 * Producing a workload's source tree to its topic for `deno task bench`.
 *
 * - `librdkafka` (the default): tools/bench/produce.py run by the OpenMSIStream venv's python,
 *   i.e. OpenMSIStream 1.8.8's own uploader classes on confluent-kafka (librdkafka) with its
 *   shipped producer settings. This is how real topics are made.
 * - `kafkajs`: this project's `produceFiles` (same wire format and keys, LZ4, but kafkajs's
 *   batching and partitioner), for machines without the venv.
 *
 * @module
 */
import { Kafka } from "kafkajs";
import { listFiles, produceFiles } from "../../src/wire/chunk_producer.ts";
import { pythonEnv, VENV_DIR } from "../openmsistream_venv.ts";
import { RunFailed, timedRun } from "./process.ts";

/** Which client produces the workloads. */
export type ProducerKind = "librdkafka" | "kafkajs";

const PRODUCE_PY = new URL("./produce.py", import.meta.url).pathname;

/** Options of {@linkcode produceTree}. */
export interface ProduceTreeOptions {
  kind: ProducerKind;
  bootstrap: string;
  kafka: Kafka;
  root: string;
  topic: string;
  chunkSize: number;
  timeoutSeconds: number;
  log: (line: string) => void;
}

/** Produces every file under `root` to `topic`; returns the seconds it took. */
export async function produceTree(o: ProduceTreeOptions): Promise<number> {
  const t0 = performance.now();
  if (o.kind === "kafkajs") {
    const producer = o.kafka.producer();
    await producer.connect();
    try {
      const files = await listFiles(o.root);
      let done = 0;
      let last = performance.now();
      await produceFiles(producer, o.topic, o.root, files, {
        chunkSize: o.chunkSize,
        // As OpenMSIStream's uploader keys them.
        keying: "chunk",
        onFile: () => {
          done++;
          if (performance.now() - last > 5000) {
            last = performance.now();
            o.log(`produced ${done}/${files.length} files`);
          }
        },
      });
    } finally {
      await producer.disconnect();
    }
    return (performance.now() - t0) / 1000;
  }
  const result = await timedRun({
    command: `${VENV_DIR}/bin/python`,
    args: [PRODUCE_PY, o.root, o.topic, String(o.chunkSize), "2"],
    env: pythonEnv({ LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: o.bootstrap }),
    clearEnv: true,
    timeoutSeconds: o.timeoutSeconds,
    onLine: (line) => {
      if (/^(produced |DONE |delivery failed)/.test(line)) o.log(line);
    },
  });
  if (!result.tail.some((l) => l.startsWith("DONE "))) {
    throw new RunFailed("the producer exited without its DONE line", result.tail);
  }
  return result.seconds;
}
