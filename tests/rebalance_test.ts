/**
 * Consumers joining and leaving the group mid-stream lose nothing: a second consumer process joins
 * the downloader's group, takes partitions (reading without committing), then leaves; the
 * downloader gets them back and rebuilds every file. A second downloader on the same output
 * directory is refused.
 */
import assert from "node:assert/strict";
import { CompressionTypes } from "kafkajs";
import { registerCodecs } from "../src/compression.ts";
import {
  assertSameTree,
  chunkMessagesOfTree,
  CliProcess,
  fastRejoinConfig,
  join,
  sleep,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { bootstrapServers, createTopic, testKafka, uniqueGroupId } from "./_kafka.ts";

const MEMBER = new URL("./_idle_member.ts", import.meta.url).pathname;

async function lines(stream: ReadableStream<Uint8Array>, seen: string[]): Promise<void> {
  const decoder = new TextDecoder();
  for await (const bytes of stream) {
    seen.push(...decoder.decode(bytes).split("\n").filter((l) => l !== ""));
  }
}

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
  const cli = new CliProcess([
    out,
    "--config",
    cfg,
    "--topic_name",
    topic,
    "--consumer_group_id",
    group,
    "--n_threads",
    "2",
  ]);
  await cli.waitFor(/joined the group/);
  await send(1);

  const member = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      MEMBER,
      bootstrapServers(),
      topic,
      group,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const said: string[] = [];
  const reading = lines(member.stdout, said);
  const deadline = Date.now() + 60_000;
  while (!said.some((l) => /^joined \d/.test(l))) {
    assert.ok(Date.now() < deadline, `the second member never got a partition: ${said}`);
    await sleep(100);
  }
  await send(2);
  await sleep(3000);
  member.kill("SIGTERM");
  await member.status;
  await reading;
  await send(3);
  await producer.disconnect();

  // Meanwhile a second downloader on the same output directory is refused.
  const intruder = new CliProcess([
    out,
    "--config",
    cfg,
    "--topic_name",
    topic,
    "--consumer_group_id",
    uniqueGroupId("x"),
  ]);
  assert.equal(await intruder.exit(), 1);
  assert.match(intruder.output, /Another DataFileDownloadDirectory is already writing to/);

  await waitForCommitted(group, topic, 180_000);
  assert.equal(await cli.quit(), 0);
  await assertSameTree(root, out);
  assert.ok(said.some((l) => /^read [1-9]/.test(l)), `the second member read nothing: ${said}`);
});
