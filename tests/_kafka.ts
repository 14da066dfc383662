/**
 * Helpers for tests that talk to the real Kafka test broker.
 *
 * The broker's address comes from `KAFKA_BOOTSTRAP_SERVERS`, which `deno task test`
 * (tools/test.ts) sets after starting a broker with tools/broker.ts. Every test creates its own
 * uniquely named topics and consumer groups ({@linkcode createTopic}, {@linkcode uniqueGroupId}),
 * so tests never see each other's data and need no cleanup (the broker is thrown away after the
 * run; {@linkcode deleteTopic} exists for tests that want to tidy up anyway).
 *
 * The broker has `auto.create.topics.enable=false`: a topic must be created before use.
 *
 * Not a test module itself (the leading underscore keeps `deno test` from collecting it).
 *
 * @module
 */

import {
  type Admin,
  CompressionTypes,
  Kafka,
  type KafkaConfig,
  logLevel,
  type Message,
  type Producer,
} from "kafkajs";
import { quietKafkajsTimerWarnings } from "../src/console/process_warnings.ts";

quietKafkajsTimerWarnings();

/**
 * `host:port[,host:port...]` of the test broker, from `KAFKA_BOOTSTRAP_SERVERS`.
 * Throws a clear error when it is not set.
 */
export function bootstrapServers(): string {
  const value = Deno.env.get("KAFKA_BOOTSTRAP_SERVERS")?.trim();
  if (!value) {
    throw new Error(
      "KAFKA_BOOTSTRAP_SERVERS is not set. Run the tests with `deno task test` (it starts a " +
        "throw-away Kafka broker), or start one with `deno task broker` and set " +
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port> before `deno test`.",
    );
  }
  return value;
}

/** The bootstrap servers as a list, for kafkajs' `brokers`. */
export function brokerList(): string[] {
  return bootstrapServers().split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * A kafkajs client for the test broker, with logging quiet (errors only unless `logLevel` is
 * given) and short retries so that failures surface quickly.
 */
export function testKafka(config: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({
    clientId: "kafka-rebuild-tests",
    brokers: brokerList(),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    ...config,
  });
}

/** Run `fn` with a connected admin client, always disconnecting it afterwards. */
export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

let counter = 0;

/** A short random suffix that also orders names by creation. */
function uniqueSuffix(): string {
  counter += 1;
  const random = crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36);
  return `${Date.now().toString(36)}-${counter}-${random}`;
}

/** Keeps only characters legal in topic names / readable in group ids. */
function sanitize(hint: string): string {
  return hint.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 60) || "t";
}

/** A consumer group id no other test uses, e.g. `g-<hint>-<time>-<n>-<random>`. */
export function uniqueGroupId(hint = "test"): string {
  return `g-${sanitize(hint)}-${uniqueSuffix()}`;
}

/** A producer of the test broker that writes in transactions (idempotent, a unique transactional id). */
export function transactionalProducer(): Producer {
  return testKafka().producer({
    transactionalId: uniqueGroupId("txn"),
    idempotent: true,
    maxInFlightRequests: 1,
  });
}

/**
 * Sends `messages` to `topic` (LZ4) in one transaction of a fresh {@linkcode transactionalProducer},
 * then commits or aborts it.
 */
export async function sendInTransaction(
  topic: string,
  messages: Message[],
  end: "commit" | "abort" = "commit",
): Promise<void> {
  const producer = transactionalProducer();
  await producer.connect();
  try {
    const transaction = await producer.transaction();
    await transaction.send({ topic, compression: CompressionTypes.LZ4, messages });
    await (end === "commit" ? transaction.commit() : transaction.abort());
  } finally {
    await producer.disconnect();
  }
}

/** A topic name no other test uses (does not create it), e.g. `t-<hint>-<time>-<n>-<random>`. */
export function uniqueTopicName(hint = "test"): string {
  return `t-${sanitize(hint)}-${uniqueSuffix()}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Create a new uniquely named topic with `partitions` partitions (replication factor 1) and wait
 * until the broker's metadata shows a leader for every partition. Returns the topic name.
 *
 * @param hint a readable part of the name, e.g. the test's name.
 */
export async function createTopic(
  partitions: number,
  hint = "test",
  configEntries: { name: string; value: string }[] = [],
): Promise<string> {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new Error(`createTopic: partitions must be a positive integer, got ${partitions}`);
  }
  const topic = uniqueTopicName(hint);
  await withAdmin(async (admin) => {
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: partitions, replicationFactor: 1, configEntries }],
      waitForLeaders: true,
      timeout: 30000,
    });
    if (!created) throw new Error(`createTopic: topic ${topic} already existed`);
    const deadline = Date.now() + 30000;
    for (;;) {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      const parts = metadata.topics.find((t) => t.name === topic)?.partitions ?? [];
      if (
        parts.length === partitions &&
        parts.every((p) => p.partitionErrorCode === 0 && p.leader >= 0)
      ) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `createTopic: ${topic} has no leader for all ${partitions} partitions after 30 s: ` +
            JSON.stringify(parts),
        );
      }
      await sleep(100);
    }
  });
  return topic;
}

/** Delete topics (missing ones are ignored). */
export async function deleteTopic(...topics: string[]): Promise<void> {
  await withAdmin(async (admin) => {
    const existing = new Set(await admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length > 0) await admin.deleteTopics({ topics: present, timeout: 30000 });
  });
}

/** Whether a topic exists on the broker. */
export async function topicExists(topic: string): Promise<boolean> {
  return await withAdmin(async (admin) => (await admin.listTopics()).includes(topic));
}

/**
 * The offsets `groupId` has committed on `topic`, by partition. Partitions without a committed
 * offset are left out (so an empty map means nothing was committed).
 */
export async function committedOffsets(
  groupId: string,
  topic: string,
): Promise<Map<number, bigint>> {
  return await withAdmin(async (admin) => {
    const result = await admin.fetchOffsets({ groupId, topics: [topic] });
    const offsets = new Map<number, bigint>();
    for (const entry of result) {
      if (entry.topic !== topic) continue;
      for (const p of entry.partitions) {
        const offset = BigInt(p.offset);
        if (offset >= 0n) offsets.set(p.partition, offset);
      }
    }
    return offsets;
  });
}

/** The end offset (high watermark) of each partition of `topic`. */
export async function endOffsets(topic: string): Promise<Map<number, bigint>> {
  return await withAdmin(async (admin) => {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  });
}
