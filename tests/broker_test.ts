/**
 * Checks the real Kafka test broker itself (and kafkajs 2.2.4 against it): topic creation,
 * produce / consume through a consumer group, offset commits, and that topics are never
 * auto-created.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
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

Deno.test("broker: kafkajs reads a number-like fetch limit at each fetch (FetchSizer's limits)", async () => {
  const topic = await createTopic(1, "broker-fetch-limit");
  const kafka = testKafka();
  const producer = kafka.producer();
  await producer.connect();
  const recordBytes = 64 * 1024;
  const records = 48;
  try {
    // One send per record: one record batch each, which a fetch returns whole or not at all.
    for (let i = 0; i < records; i++) {
      await producer.send({
        topic,
        messages: [{ value: Buffer.alloc(recordBytes, i) }],
      });
    }
  } finally {
    await producer.disconnect();
  }

  let limit = 256 * 1024;
  const perPartition = { valueOf: () => limit };
  const consumer = kafka.consumer({
    groupId: uniqueGroupId("broker-fetch-limit"),
    maxBytesPerPartition: perPartition as unknown as number,
    maxBytes: { valueOf: () => 4 * limit } as unknown as number,
    maxWaitTimeInMs: 250,
  });
  const batches: { limit: number; bytes: number }[] = [];
  let seen = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let allSeen!: () => void;
    const done = new Promise<void>((resolve) => allSeen = resolve);
    await consumer.run({
      eachBatch: ({ batch }) => {
        const bytes = batch.messages.reduce((sum, m) => sum + (m.value?.length ?? 0), 0);
        batches.push({ limit, bytes });
        seen += batch.messages.length;
        // The next fetches may take four times as much.
        if (seen >= records / 4) limit = 1024 * 1024;
        if (seen >= records) allSeen();
        return Promise.resolve();
      },
    });
    await withTimeout(done, 60000, `consuming ${records} records`);
  } finally {
    await consumer.disconnect();
  }
  const small = batches.filter((b) => b.limit === 256 * 1024);
  const large = batches.filter((b) => b.limit === 1024 * 1024);
  assert.ok(small.length > 0 && large.length > 0, JSON.stringify(batches));
  // A fetch stops at the first record batch past its limit.
  assert.ok(small.every((b) => b.bytes <= 256 * 1024), JSON.stringify(small));
  assert.ok(large.some((b) => b.bytes > 512 * 1024), JSON.stringify(large));
});
