/**
 * Broker outages: a broker that is down at start gives a clear, repeating "waiting" message, and a
 * broker stopped and restarted mid-stream loses nothing. These tests run their own broker (with a
 * data folder that survives a restart), not the shared test broker.
 */
import assert from "node:assert/strict";
import { CompressionTypes, Kafka, logLevel } from "kafkajs";
import { registerCodecs } from "../src/wire/compression.ts";
import { freePort, startBroker } from "../tools/broker.ts";
import {
  assertSameTree,
  chunkMessagesOfTree,
  CliProcess,
  fastRejoinConfig,
  join,
  tempDir,
  writeRandomFile,
} from "./_cli.ts";

Deno.test("a broker down at start, then stopped and restarted mid-stream: nothing is lost", async () => {
  const root = await tempDir("src");
  for (let i = 0; i < 5; i++) await writeRandomFile(join(root, `o/${i}.dat`), 2_000_000 + i);
  const out = await tempDir("out");
  const dataDir = await tempDir("kafka_data");
  const port = freePort();
  let controllerPort = freePort();
  while (controllerPort === port) controllerPort = freePort();
  const bootstrap = `127.0.0.1:${port}`;
  const cfg = await fastRejoinConfig(bootstrap);
  const topic = "outage";
  const group = "outage-group";

  // Down at start: the program says so, repeatedly, and waits.
  const cli = new CliProcess([
    out,
    "--config",
    cfg,
    "--topic_name",
    topic,
    "--consumer_group_id",
    group,
  ]);
  await cli.waitFor(/WARNING: Waiting for the Kafka broker/, 60_000, 2);

  const brokerOptions = { dataDir, port, controllerPort, log: () => {} };
  let broker = await startBroker(brokerOptions);
  const kafka = new Kafka({
    clientId: "outage-test",
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic, numPartitions: 4, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  await admin.disconnect();

  const messages = await chunkMessagesOfTree(root);
  registerCodecs();
  const half = Math.ceil(messages.length / 2);
  const produce = async (part: typeof messages) => {
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, compression: CompressionTypes.LZ4, messages: part });
    await producer.disconnect();
  };
  try {
    await produce(messages.slice(0, half));
    await cli.waitFor(/joined the group/, 60_000);
    await cli.waitFor(/successfully reconstructed from stream/, 60_000);

    // Stopped mid-stream, then back on the same port with the same data.
    await broker.stop();
    await new Promise((resolve) => setTimeout(resolve, 8000));
    broker = await startBroker(brokerOptions);
    await produce(messages.slice(half));
    await cli.waitFor(/successfully reconstructed from stream/, 180_000, 5);
    assert.equal(await cli.quit(), 0);
    await assertSameTree(root, out);
  } finally {
    await cli.kill().catch(() => {});
    await broker.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
