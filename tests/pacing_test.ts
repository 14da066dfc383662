/**
 * Consumers of one process kept near each other in the topic (`src/kafka/partition_pacer.ts`),
 * against the broker: with no budget and no slack, a consumer ahead of another waits at nearly
 * every record, and the group must still rebuild every file and commit every partition to its end.
 */
import assert from "node:assert/strict";
import { Downloader } from "../src/kafka/downloader.ts";
import { Logger } from "../src/console/logger.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import {
  assertSameTree,
  join,
  produceTree,
  sleep,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { createTopic, deleteTopic, testKafka, uniqueGroupId } from "./_kafka.ts";

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
    // 16 KiB chunks keyed per chunk: every file's chunks are spread over the 4 partitions.
    await produceTree(topic, root, undefined, 16384);
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
