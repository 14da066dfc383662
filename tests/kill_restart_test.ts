/**
 * SIGKILL at random moments, restart with the same group: every file completes byte-identical and
 * no partial or state file is left behind.
 */
import assert from "node:assert/strict";
import { registerCodecs } from "../src/wire/compression.ts";
import { STATE_DIR_NAME } from "../src/store/safe_path.ts";
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
import { CompressionTypes } from "kafkajs";

const KILLS = 10;

Deno.test(`${KILLS} SIGKILLs at random moments, each followed by a restart, lose nothing`, async () => {
  const root = await tempDir("src");
  const sizes = [9_000_000, 5_000_000, 3_000_000, 1_000_000, 300_000, 70_000, 1];
  for (const [i, size] of sizes.entries()) {
    await writeRandomFile(join(root, `d${i % 3}/sub ${i}/f${i}.bin`), size);
  }
  const out = await tempDir("out");
  const config = await fastRejoinConfig(bootstrapServers());
  const topic = await createTopic(4, "kill");
  const group = uniqueGroupId("kill");

  // Every chunk of every file (64 KiB chunks), shuffled, produced in KILLS + 1 slices: one before
  // each run, so that files are in flight across the kills.
  const messages = await chunkMessagesOfTree(root);
  for (let i = messages.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [messages[i], messages[j]] = [messages[j]!, messages[i]!];
  }
  registerCodecs();
  const producer = testKafka().producer();
  await producer.connect();
  const slice = Math.ceil(messages.length / (KILLS + 1));
  const args = [
    out,
    "--config",
    config,
    "--topic_name",
    topic,
    "--consumer_group_id",
    group,
    "--n_threads",
    "2",
  ];
  let resumedRuns = 0;
  let toldWait = 0;
  for (let run = 0; run < KILLS; run++) {
    await producer.send({
      topic,
      compression: CompressionTypes.LZ4,
      messages: messages.slice(run * slice, (run + 1) * slice),
    });
    const cli = new CliProcess(args);
    if (
      /Resuming \d+ files? left in progress/.test(
        (await cli.waitFor(/joined the group/, 120_000), cli.output),
      )
    ) {
      resumedRuns++;
    }
    // A restart waits for the killed members to time out, and says so.
    if (
      /Consumer 1 is waiting to join the group "[^"]+": Kafka assigns partitions once the members of an earlier run have rejoined or timed out, at most 6 s \(session\.timeout\.ms\)/
        .test(cli.output)
    ) {
      await cli.waitFor(/Consumer 1 joined after \d+\.\d s/, 10_000);
      toldWait++;
    }
    await sleep(Math.random() * 1500);
    await cli.kill("SIGKILL");
  }
  await producer.send({
    topic,
    compression: CompressionTypes.LZ4,
    messages: messages.slice(KILLS * slice),
  });
  await producer.disconnect();

  const last = new CliProcess(args);
  await waitForCommitted(group, topic, 180_000);
  await last.send("check");
  await last.waitFor(/files completely reconstructed so far/);
  assert.equal(await last.quit(), 0);
  await assertSameTree(root, out);
  const partial: string[] = [];
  for await (const e of Deno.readDir(join(out, STATE_DIR_NAME, "partial"))) partial.push(e.name);
  assert.deepEqual(partial, []);
  assert.doesNotMatch(last.output, /\(in progress/);
  // The kills really interrupted files in flight.
  assert.ok(resumedRuns > 0, "no run found files left in progress by the previous kill");
  assert.ok(toldWait > 0, "no restart said what it waited for while joining the group");
  console.log(
    `${messages.length} chunks, ${resumedRuns} of ${KILLS} restarts resumed files in progress`,
  );
});
