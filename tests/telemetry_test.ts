/**
 * Heartbeat and log messages reach their topics in OpenMSIStream's JSON layout, and the heartbeat
 * counts add up to what was consumed.
 */
import assert from "node:assert/strict";
import {
  join,
  produceTree,
  sleep,
  startDownloader,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { createTopic, testKafka, uniqueGroupId } from "./_kafka.ts";
import { registerCodecs } from "../src/wire/compression.ts";

async function readAll(
  topic: string,
  until: (values: { key: string; value: string }[]) => boolean,
) {
  registerCodecs();
  const consumer = testKafka().consumer({ groupId: uniqueGroupId("reader"), maxWaitTimeInMs: 250 });
  const seen: { key: string; value: string }[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.push({ key: message.key?.toString() ?? "", value: message.value?.toString() ?? "" });
      await Promise.resolve();
    },
  });
  const deadline = Date.now() + 60_000;
  while (!until(seen)) {
    assert.ok(
      Date.now() < deadline,
      `timed out reading ${topic}: ${JSON.stringify(seen).slice(0, 1000)}`,
    );
    await sleep(200);
  }
  await consumer.disconnect();
  return seen;
}

Deno.test("heartbeats and log messages are produced with OpenMSIStream's keys and JSON", async () => {
  const root = await tempDir("src");
  await writeRandomFile(join(root, "hb/x.dat"), 1_200_000);
  const [topic, heartbeats, logs] = await Promise.all([
    createTopic(2, "data"),
    createTopic(1, "heartbeats"),
    createTopic(1, "logs"),
  ]);
  const group = uniqueGroupId("telemetry");
  const chunks = await produceTree(topic, root);
  const out = await tempDir("out");
  const cli = startDownloader(
    out,
    topic,
    group,
    "--heartbeat_topic_name",
    heartbeats,
    "--heartbeat_program_id",
    "station7",
    "--heartbeat_interval_secs",
    "1",
    "--log_topic_name",
    logs,
    "--log_program_id",
    "station7",
    "--log_interval_secs",
    "1",
  );
  await cli.waitFor(/successfully reconstructed from stream/);
  await waitForCommitted(group, topic);
  // The first heartbeat and at least two periodic ones while it runs, then the last one at shutdown.
  const running = (await readAll(heartbeats, (s) => s.length >= 3)).length;
  assert.equal(await cli.quit(), 0);
  assert.match(
    cli.output,
    new RegExp(`Heartbeat messages will be produced to the '${heartbeats}' topic every 1 seconds`),
  );

  const beats = await readAll(heartbeats, (s) => s.length > running);
  let read = 0;
  let processed = 0;
  let bytes = 0;
  for (const { key, value } of beats) {
    assert.equal(key, "station7_heartbeat");
    assert.match(
      value,
      /^\{"timestamp": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00", "n_messages_read": \d+, "n_messages_processed": \d+, "n_bytes_read": \d+, "n_bytes_processed": \d+\}$/,
    );
    const v = JSON.parse(value);
    read += v.n_messages_read;
    processed += v.n_messages_processed;
    bytes += v.n_bytes_processed;
  }
  assert.equal(read, chunks);
  assert.equal(processed, chunks);
  assert.equal(bytes, 1_200_000);

  const logMessages = await readAll(
    logs,
    (s) => s.some((m) => m.value.includes("successfully reconstructed")),
  );
  for (const { key, value } of logMessages) {
    assert.equal(key, "station7_log");
    assert.match(value, /^\{"timestamp": \d+\.\d+, "messages": \[.*\]\}$/);
  }
  const texts = logMessages.flatMap((m) => JSON.parse(m.value).messages as string[]);
  assert.ok(
    texts.some((t) => t === "File hb/x.dat successfully reconstructed from stream (1200000 bytes)"),
  );
});
