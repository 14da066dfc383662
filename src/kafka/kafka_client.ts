/**
 * Creation of the kafkajs client: codecs registered, plaintext connections through
 * {@linkcode frameSocketFactory} (whole responses, read once), and the client's own log lines
 * routed through the program's logger in a readable form, with repeats held back.
 *
 * @module
 */
import { Kafka, type KafkaConfig, logLevel } from "kafkajs";
import { registerCodecs } from "../wire/compression.ts";
import { frameSocketFactory } from "./frame_socket.ts";
import type { Logger } from "../console/logger.ts";

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
    socketFactory: frameSocketFactory(),
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
