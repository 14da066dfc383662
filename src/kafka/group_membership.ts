/**
 * The consumers of one process as members of a consumer group: what a join says, and keeping
 * kafkajs's per-client state of one consumer out of the others' way. Imports kafkajs's types only
 * (loading kafkajs needs environment access, which `--version` and `-h` do not have).
 *
 * @module
 */
import type { Kafka } from "kafkajs";

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
