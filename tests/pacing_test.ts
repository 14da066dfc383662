/**
 * Consumers of one process kept near each other in the topic (`src/kafka/partition_pacer.ts`),
 * against the broker: with no budget and no slack, a consumer ahead of another waits at nearly
 * every record, and the group must still rebuild every file and commit every partition to its end.
 *
 * The chunks are published all at once (one transaction, read committed), so that every consumer
 * has a batch of its partition in hand at the same time: records that trickle in as they are
 * produced reach each consumer at the end of its log, where it is waited for by no one.
 */
import assert from "node:assert/strict";
import { Downloader } from "../src/kafka/downloader.ts";
import { Logger } from "../src/console/logger.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import {
  assertSameTree,
  chunkMessagesOfTree,
  join,
  sleep,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import {
  createTopic,
  deleteTopic,
  endOffsets,
  sendInTransaction,
  testKafka,
  uniqueGroupId,
} from "./_kafka.ts";

Deno.test("four consumers that wait for each other at every record still rebuild a topic keyed per chunk and commit it to its end", async () => {
  registerCodecs();
  const root = await tempDir("pacing_src");
  const out = await tempDir("pacing_out");
  const topic = await createTopic(4, "pacing");
  const group = uniqueGroupId("pacing");
  const lines: string[] = [];
  let downloader: Downloader | undefined;
  try {
    for (let i = 0; i < 8; i++) {
      await writeRandomFile(join(root, `d${i % 2}/f${i}.bin`), 200_000 + 7919 * i);
    }
    downloader = new Downloader({
      kafka: testKafka(),
      topic,
      groupId: group,
      consumers: 4,
      outputDir: out,
      logger: new Logger({ name: "test", streamLevel: 0, stream: (l) => lines.push(l) }),
      pacing: { budget: 0, slackMs: 0 },
    });
    await downloader.start();
    // All four hold a partition before the chunks come (a topic read by one consumer alone
    // has no one to wait for).
    while (downloader.health().consumersInGroup < 4) await sleep(50);
    await sleep(1000);
    // 4 KiB chunks keyed per chunk: every file's chunks are spread over the 4 partitions, about
    // 120 in each, more than a consumer starts at once (32). They become readable together when
    // the transaction commits; their timestamps, a millisecond apart in the order of the files'
    // chunks, say which consumer is further on.
    const messages = await chunkMessagesOfTree(root, 4096);
    const sentAt = Date.now() - messages.length;
    await sendInTransaction(
      topic,
      messages.map((m, i) => ({ ...m, timestamp: String(sentAt + i) })),
    );
    // The transaction's markers reach the partitions after commit() returns: until they do, the
    // end of each partition (for a reader of committed records) is still 0.
    const deadline = Date.now() + 30_000;
    while ([...(await endOffsets(topic)).values()].reduce((a, b) => a + b, 0n) < messages.length) {
      if (Date.now() > deadline) throw new Error("the transaction's records never became readable");
      await sleep(50);
    }
    await waitForCommitted(group, topic, 120_000);
    assert.equal(downloader.status().filesCompleted, 8);
    await downloader.stop();
    await assertSameTree(root, out);
    assert.ok(
      lines.some((l) => /Consumer \d waits for the consumers behind it/.test(l)),
      "no consumer waited for the others",
    );
  } finally {
    await downloader?.stop();
    await deleteTopic(topic);
    await Deno.remove(root, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});
