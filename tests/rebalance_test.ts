/**
 * Consumers joining and leaving the group mid-stream lose nothing: a second consumer process joins
 * the downloader's group, takes partitions (reading without committing), then leaves; the
 * downloader gets them back and rebuilds every file. A second downloader on the same output
 * directory is refused. A process with more consumers than partitions goes through rebalances
 * without any of its consumers stopping.
 */
import assert from "node:assert/strict";
import { CompressionTypes } from "kafkajs";
import { registerCodecs } from "../src/wire/compression.ts";
import {
  assertSameTree,
  chunkMessagesOfTree,
  fastRejoinConfig,
  IdleMember,
  join,
  sleep,
  startDownloaderWith,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { bootstrapServers, createTopic, testKafka, uniqueGroupId } from "./_kafka.ts";

Deno.test("a second consumer process joining then leaving mid-stream loses nothing", async () => {
  const root = await tempDir("src");
  for (let i = 0; i < 6; i++) await writeRandomFile(join(root, `r/${i}.dat`), 1_500_000 + i);
  const out = await tempDir("out");
  const cfg = await fastRejoinConfig(bootstrapServers());
  const topic = await createTopic(4, "rebalance");
  const group = uniqueGroupId("rebalance");
  const messages = await chunkMessagesOfTree(root);
  registerCodecs();
  const producer = testKafka().producer();
  await producer.connect();
  const quarter = Math.ceil(messages.length / 4);
  const send = (i: number) =>
    producer.send({
      topic,
      compression: CompressionTypes.LZ4,
      messages: messages.slice(i * quarter, (i + 1) * quarter),
    });

  await send(0);
  const cli = startDownloaderWith(cfg, out, topic, group, "--n_threads", "2");
  await cli.waitFor(/joined the group/);
  await send(1);

  const member = await IdleMember.start(topic, group, { withPartition: true });
  await send(2);
  await sleep(3000);
  await member.stop();
  await send(3);
  await producer.disconnect();

  // Meanwhile a second downloader on the same output directory is refused.
  const intruder = startDownloaderWith(cfg, out, topic, uniqueGroupId("x"));
  assert.equal(await intruder.exit(), 1);
  assert.match(intruder.output, /Another DataFileDownloadDirectory is already writing to/);

  await waitForCommitted(group, topic, 180_000);
  assert.equal(await cli.quit(), 0);
  await assertSameTree(root, out);
  assert.ok(
    member.said.some((l) => /^read [1-9]/.test(l)),
    `the second member read nothing: ${member.said}`,
  );
});

Deno.test("a process with more consumers than partitions goes through rebalances with none of them stopping", async () => {
  // kafkajs shares committed offsets among a client's consumers, and a member left without a
  // partition cleared them for the others, which then failed their next fetch and stopped.
  const root = await tempDir("idle_src");
  for (let i = 0; i < 4; i++) await writeRandomFile(join(root, `i/${i}.dat`), 300_000 + i);
  const out = await tempDir("idle_out");
  const cfg = await fastRejoinConfig(bootstrapServers());
  const topic = await createTopic(1, "idle_consumer");
  const group = uniqueGroupId("idle_consumer");
  const messages = await chunkMessagesOfTree(root);
  registerCodecs();
  const producer = testKafka().producer();
  await producer.connect();
  const seventh = Math.ceil(messages.length / 7);
  const send = (i: number) =>
    producer.send({ topic, messages: messages.slice(i * seventh, (i + 1) * seventh) });
  const cli = startDownloaderWith(cfg, out, topic, group, "--n_threads", "4");
  try {
    await send(0);
    await cli.waitFor(/joined the group with no partitions/);
    // Each member that comes and goes makes two rebalances; three of the four consumers at least
    // are left without the partition.
    for (let round = 1; round <= 5; round++) {
      const member = await IdleMember.start(topic, group);
      await send(round);
      await sleep(1500);
      await member.stop();
    }
    await send(6);
    await producer.disconnect();
    await waitForCommitted(group, topic, 120_000);
    assert.doesNotMatch(cli.output, /stopped on an error|Cannot read properties/);
    assert.equal(await cli.quit(), 0);
    await assertSameTree(root, out);
  } finally {
    await producer.disconnect().catch(() => {});
    await cli.kill().catch(() => {});
    await Deno.remove(root, { recursive: true }).catch(() => {});
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
});
