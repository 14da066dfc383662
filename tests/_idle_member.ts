/**
 * A second member of a consumer group, as a separate process, for rebalance tests: it joins the
 * group, takes the partitions it is given, reads their records without committing anything, and
 * leaves the group cleanly on SIGTERM. It prints `joined <partitions>` and, at exit, `read <n>`.
 *
 * Usage: deno run --allow-net --allow-env tests/_idle_member.ts BOOTSTRAP TOPIC GROUP
 */
import { Kafka, logLevel } from "kafkajs";
import { quietKafkajsTimerWarnings } from "../src/console/process_warnings.ts";
import { registerCodecs } from "../src/wire/compression.ts";

quietKafkajsTimerWarnings();

const [bootstrap, topic, groupId] = Deno.args;
if (!bootstrap || !topic || !groupId) {
  throw new Error("usage: _idle_member.ts BOOTSTRAP TOPIC GROUP");
}
registerCodecs();
const kafka = new Kafka({
  clientId: "idle-member",
  brokers: bootstrap.split(","),
  logLevel: logLevel.NOTHING,
});
const consumer = kafka.consumer({
  groupId,
  sessionTimeout: 6000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 250,
});
let read = 0;
consumer.on(consumer.events.GROUP_JOIN, (e) => {
  console.log(`joined ${Object.values(e.payload.memberAssignment).flat().join(",") || "nothing"}`);
});
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  autoCommit: false,
  eachBatch: async ({ batch }) => {
    read += batch.messages.length;
    await Promise.resolve();
  },
});
await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
await consumer.disconnect();
console.log(`read ${read}`);
Deno.exit(0);
