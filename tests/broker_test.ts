/**
 * Checks the real Kafka test broker itself (and kafkajs 2.2.4 against it): topic creation,
 * produce / consume through a consumer group, offset commits, and that topics are never
 * auto-created.
 */

import assert from "node:assert/strict";
import {
  committedOffsets,
  createTopic,
  endOffsets,
  testKafka,
  topicExists,
  uniqueGroupId,
  uniqueTopicName,
} from "./_kafka.ts";

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

Deno.test("broker: 100 messages through a 4-partition topic and a consumer group", async () => {
  const topic = await createTopic(4, "broker-roundtrip");
  const kafka = testKafka();

  const expected = Array.from({ length: 100 }, (_, i) => `message-${i}`);
  const producer = kafka.producer();
  await producer.connect();
  try {
    await producer.send({
      topic,
      messages: expected.map((value, i) => ({ key: `key-${i}`, value })),
    });
  } finally {
    await producer.disconnect();
  }

  const ends = await endOffsets(topic);
  assert.equal(ends.size, 4);
  assert.equal([...ends.values()].reduce((a, b) => a + b, 0n), 100n);
  // The default partitioner spreads 100 distinct keys over more than one partition.
  assert.ok([...ends.values()].filter((n) => n > 0n).length > 1, "all keys went to one partition");

  const groupId = uniqueGroupId("broker-roundtrip");
  // A short fetch long-poll: disconnect() waits for the fetch in flight (default 5 s).
  const consumer = kafka.consumer({
    groupId,
    heartbeatInterval: 500,
    sessionTimeout: 10000,
    maxWaitTimeInMs: 250,
  });
  const received: string[] = [];
  const lastOffset = new Map<number, bigint>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let allReceived!: () => void;
    const done = new Promise<void>((resolve) => allReceived = resolve);
    await consumer.run({
      autoCommit: false,
      eachMessage: ({ partition, message }) => {
        received.push(message.value?.toString() ?? "<null>");
        lastOffset.set(partition, BigInt(message.offset));
        if (received.length >= expected.length) allReceived();
        return Promise.resolve();
      },
    });
    await withTimeout(done, 60000, `consuming ${expected.length} messages`);

    // Commit explicitly (the application commits by hand too) and read the commits back.
    await consumer.commitOffsets(
      [...lastOffset].map(([partition, offset]) => ({
        topic,
        partition,
        offset: (offset + 1n).toString(),
      })),
    );
  } finally {
    await consumer.disconnect();
  }

  assert.equal(received.length, expected.length);
  assert.deepEqual([...received].sort(), [...expected].sort());

  const committed = await committedOffsets(groupId, topic);
  const nonEmpty = new Map([...ends].filter(([, end]) => end > 0n));
  assert.deepEqual(committed, nonEmpty);
});

Deno.test("broker: topics are not auto-created", async () => {
  const missing = uniqueTopicName("never-created");
  const producer = testKafka({ retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 } })
    .producer({ allowAutoTopicCreation: true }); // asks the broker to create it
  await producer.connect();
  let error: unknown;
  try {
    await producer.send({ topic: missing, messages: [{ value: "x" }] });
  } catch (e) {
    error = e;
  } finally {
    await producer.disconnect();
  }
  assert.ok(error instanceof Error, "producing to a missing topic must fail");
  assert.equal(await topicExists(missing), false);
});
