/**
 * Creation of the kafkajs client: codecs registered, and the client's own log lines routed
 * through the program's logger in a readable form, with repeats held back.
 *
 * @module
 */
import { Kafka, type KafkaConfig, logLevel } from "kafkajs";
import { registerCodecs } from "./compression.ts";
import type { Logger } from "./logger.ts";

/** Seconds during which the same client message is not repeated. */
const REPEAT_SECONDS = 30;

/** Client messages about conditions the client retries on its own. */
const ROUTINE =
  /rebalanc|coordinator is (loading|not available)|another concurrent operation on the same transaction/i;

/** Creates a kafkajs client whose diagnostics go to `logger` (errors as warnings, the rest as debug). */
export function createKafka(config: KafkaConfig, logger: Logger): Kafka {
  registerCodecs();
  const lastSeen = new Map<string, number>();
  return new Kafka({
    ...config,
    logLevel: logLevel.INFO,
    logCreator: () => ({ level, log }) => {
      const { message, broker, error } = log as {
        message: string;
        broker?: string;
        error?: string;
      };
      const text = `Kafka client: ${message}${error ? ` (${error})` : ""}${
        broker ? ` [${broker}]` : ""
      }`;
      // Rebalances are routine (consumers joining or leaving); the downloader logs assignments
      // itself. A coordinator still loading or a transaction still closing is retried by the client.
      if (level > logLevel.WARN || ROUTINE.test(text)) return logger.debug(text);
      const now = Date.now();
      const key = `${message}|${error ?? ""}`;
      if ((lastSeen.get(key) ?? -Infinity) > now - REPEAT_SECONDS * 1000) return logger.debug(text);
      lastSeen.set(key, now);
      if (lastSeen.size > 1000) lastSeen.clear();
      logger.warning(text);
    },
  });
}

/** `Consumer 2 of 4 joined the group with partitions 1, 5`: a member's share, in a log line. */
export function joinedText(member: string, partitions: readonly number[]): string {
  const sorted = partitions.toSorted((a, b) => a - b);
  return `${member} joined the group with ${
    sorted.length === 0
      ? "no partitions"
      : `partition${sorted.length === 1 ? "" : "s"} ${sorted.join(", ")}`
  }`;
}

/** kafkajs 2.2.4's key for the committed offsets a client shares among its consumers. */
const OFFSETS_KEY = "private:Kafka:offsets";

/**
 * Gives each consumer `kafka` creates from now on a committed-offsets map of its own.
 *
 * kafkajs keeps one map per group id for all the consumers of one client, and a consumer that
 * joins the group with no partitions clears every topic from it: another consumer of the same
 * process then fails its next fetch ("Cannot read properties of undefined (reading '0')") and
 * stops. That happens whenever a rebalance leaves one of a process's consumers without a partition
 * (more consumers than partitions, or another process joining). Returns `kafka`; calling it again
 * changes nothing.
 */
export function isolateConsumerOffsets(kafka: Kafka): Kafka {
  const target = kafka as unknown as Record<symbol, unknown> & { consumer: Kafka["consumer"] };
  const key = Object.getOwnPropertySymbols(target).find((s) => s.description === OFFSETS_KEY);
  if (key === undefined || !(target[key] instanceof Map) || isolated.has(kafka)) return kafka;
  const consumer = target.consumer.bind(kafka);
  target.consumer = (config) => {
    target[key] = new Map();
    return consumer(config);
  };
  isolated.add(kafka);
  return kafka;
}

const isolated = new WeakSet<Kafka>();
