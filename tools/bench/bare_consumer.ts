/**
 * `deno task bench`'s read-only baseline: a kafkajs consumer group (kafkajs and the LZ4 codec this
 * project registers, nothing else) that reads a topic from the beginning and only counts records:
 * no decoding of chunks, no hashing, no disk.
 *
 * Usage: `bare_consumer.ts BOOTSTRAP TOPIC RECORDS CONSUMERS GROUP`. Prints
 * `bench-bare: read N records` once at least RECORDS were read, then leaves the group and exits
 * when `q` or the end of its standard input arrives.
 *
 * @module
 */
import { Kafka, logLevel } from "kafkajs";
import { quietKafkajsTimerWarnings } from "../../src/console/process_warnings.ts";
import { registerCodecs } from "../../src/wire/compression.ts";

quietKafkajsTimerWarnings();

const [bootstrap, topic, recordsArg, consumersArg, groupId] = Deno.args;
if (!bootstrap || !topic || !recordsArg || !consumersArg || !groupId) {
  console.error("usage: bare_consumer.ts BOOTSTRAP TOPIC RECORDS CONSUMERS GROUP");
  Deno.exit(2);
}
const expected = Number(recordsArg);
registerCodecs();
const kafka = new Kafka({
  clientId: "bench-bare",
  brokers: bootstrap.split(","),
  logLevel: logLevel.ERROR,
});
let read = 0;
let reported = false;
const consumers = Array.from({ length: Number(consumersArg) }, () =>
  kafka.consumer({
    groupId,
    maxBytesPerPartition: 8 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
    maxWaitTimeInMs: 500,
  }));
for (const consumer of consumers) {
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      read += batch.messages.length;
      if (read >= expected && !reported) {
        reported = true;
        console.log(`bench-bare: read ${read} records`);
      }
      await Promise.resolve();
    },
  });
}
const decoder = new TextDecoder();
for await (const bytes of Deno.stdin.readable) {
  if (decoder.decode(bytes).includes("q")) break;
}
await Promise.all(consumers.map((c) => c.disconnect().catch(() => {})));
Deno.exit(0);
