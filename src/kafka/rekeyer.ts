/**
 * The re-keying stage (`--rekey_to TOPIC`): consumes a topic keyed per chunk (OpenMSIStream's
 * uploader) and forwards every record, its value's bytes and its timestamp unchanged, to a topic
 * keyed by file ({@linkcode fileKey}), so that all of a file's chunks land in one partition and
 * several downloader processes can share it (see "More than one machine" in README.md).
 *
 * Each consumer forwards a batch in one Kafka transaction with the batch's offsets
 * (`sendOffsets`), so a batch is forwarded and consumed together or not at all; downstream
 * consumers read committed records only (kafkajs's default). Only the chunk's small fields are
 * decoded, for the key. A record that is not a chunk is forwarded with its key unchanged (the
 * downloader quarantines it).
 *
 * @module
 */
import {
  CompressionTypes,
  type Consumer,
  type ConsumerConfig,
  type Kafka,
  type Producer,
} from "kafkajs";
import { decodeChunkFields, fileKey } from "../wire/chunk_codec.ts";
import { isolateConsumerOffsets, joinedText } from "./group_membership.ts";
import type { Logger } from "../console/logger.ts";
import type { CrashHook } from "../store/state_file.ts";

/**
 * How long a transaction may stay open before the broker aborts it. A re-keyer that dies with a
 * transaction open holds back the consumers of the partitions it wrote to (they read committed
 * records only) until then, unless it restarts first (its transactional id fences the old one).
 * A batch's transaction takes well under a second.
 */
export const REKEY_TRANSACTION_TIMEOUT_MS = 15_000;

/** Options of {@linkcode Rekeyer}. */
export interface RekeyerOptions {
  kafka: Kafka;
  /** The topic keyed per chunk. */
  from: string;
  /** The topic keyed by file (created with `from`'s partition count when missing). */
  to: string;
  /** Consumer group of the re-keyers. */
  groupId: string;
  /** Consumers (and transactional producers) in this process. */
  consumers: number;
  logger: Logger;
  /** Transactional ids are `<prefix>-<consumer>`; the same id fences an earlier incarnation. */
  transactionalIdPrefix: string;
  /** Consumer settings from the config file (session timeout, fetch sizes…). */
  consumerConfig?: Omit<ConsumerConfig, "groupId">;
  /** Test hook called at each dangerous step (a crash test kills the process there). */
  crashHook?: CrashHook;
}

/** Counts of the re-keyer. */
export interface RekeyStatus {
  forwarded: number;
  batches: number;
  /** Records forwarded with their own key (not chunks). */
  unkeyed: number;
}

/** The key a chunk record gets on the file-keyed topic, or `null` when it is not a chunk. */
export function fileKeyOf(value: Uint8Array | null): string | null {
  try {
    return fileKey(decodeChunkFields(value));
  } catch {
    return null;
  }
}

/** Forwards records from a per-chunk-keyed topic to a file-keyed one, exactly once per batch. */
export class Rekeyer {
  readonly #o: RekeyerOptions;
  readonly #consumers: Consumer[] = [];
  readonly #producers: Producer[] = [];
  readonly #status: RekeyStatus = { forwarded: 0, batches: 0, unkeyed: 0 };
  #stopping = false;

  constructor(options: RekeyerOptions) {
    this.#o = options;
    // kafkajs shares committed offsets among a client's consumers; see isolateConsumerOffsets.
    isolateConsumerOffsets(options.kafka);
  }

  status(): RekeyStatus {
    return { ...this.#status };
  }

  /** Creates the target topic if needed, then starts the consumers. */
  async start(): Promise<void> {
    const admin = this.#o.kafka.admin();
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      if (!topics.includes(this.#o.from)) {
        throw new Error(`Cannot re-key: the topic "${this.#o.from}" does not exist`);
      }
      if (!topics.includes(this.#o.to)) {
        const partitions = (await admin.fetchTopicOffsets(this.#o.from)).length;
        await admin.createTopics({
          topics: [{ topic: this.#o.to, numPartitions: partitions }],
          waitForLeaders: true,
        });
        this.#o.logger.info(
          `Created the topic "${this.#o.to}" with ${partitions} partitions (as "${this.#o.from}")`,
        );
      }
    } finally {
      await admin.disconnect().catch(() => {});
    }
    for (let i = 0; i < this.#o.consumers && !this.#stopping; i++) {
      const producer = this.#o.kafka.producer({
        transactionalId: `${this.#o.transactionalIdPrefix}-${i}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: REKEY_TRANSACTION_TIMEOUT_MS,
      });
      await producer.connect();
      this.#producers.push(producer);
      const consumer = this.#o.kafka.consumer({
        heartbeatInterval: 500,
        maxWaitTimeInMs: 500,
        // Large fetches: a transaction costs several round trips, whatever it carries.
        maxBytesPerPartition: 8 * 1024 * 1024,
        maxBytes: 32 * 1024 * 1024,
        ...this.#o.consumerConfig,
        groupId: this.#o.groupId,
        readUncommitted: false,
        allowAutoTopicCreation: false,
      });
      this.#consumers.push(consumer);
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        this.#o.logger.info(
          joinedText(
            `Re-keyer ${i + 1} of ${this.#o.consumers}`,
            event.payload.memberAssignment[this.#o.from] ?? [],
          ),
        );
      });
      consumer.on(consumer.events.CRASH, (event) => {
        const { error, restart } = event.payload;
        this.#o.logger.error(
          `Re-keyer ${i + 1} stopped on an error: ${error.message}${
            restart ? "; it restarts" : ""
          }`,
        );
      });
      await consumer.connect();
      await consumer.subscribe({ topic: this.#o.from, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          if (batch.messages.length === 0 || !isRunning() || isStale()) return;
          const messages = batch.messages.map((m) => {
            const key = fileKeyOf(m.value);
            if (key === null) this.#status.unkeyed++;
            return {
              key: key ?? m.key,
              value: m.value,
              timestamp: m.timestamp,
              ...(m.headers ? { headers: m.headers } : {}),
            };
          });
          // The batch's last offset also covers transaction markers after its last record.
          const last = batch.lastOffset();
          const transaction = await producer.transaction();
          try {
            await transaction.send({
              topic: this.#o.to,
              compression: CompressionTypes.LZ4,
              messages,
            });
            await transaction.sendOffsets({
              consumerGroupId: this.#o.groupId,
              topics: [{
                topic: batch.topic,
                partitions: [{
                  partition: batch.partition,
                  offset: (BigInt(last) + 1n).toString(),
                }],
              }],
            });
            this.#o.crashHook?.("rekey-before-commit");
            await transaction.commit();
          } catch (error) {
            await transaction.abort().catch(() => {});
            throw error;
          }
          resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
          this.#status.forwarded += messages.length;
          this.#status.batches++;
          await heartbeat().catch(() => {});
        },
      });
    }
  }

  /** Finishes the batches in flight (their transactions), then leaves the group. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#consumers.map((c) => c.disconnect().catch(() => {})));
    await Promise.all(this.#producers.map((p) => p.disconnect().catch(() => {})));
  }
}
