/**
 * Turns the librdkafka-style `[broker]` and `[consumer]` keys of an OpenMSIStream config file
 * into kafkajs client and consumer options.
 *
 * Every key is either mapped, deliberately ignored (named in {@linkcode IGNORED_KEYS} with the
 * reason), or reported in one warning; values are never altered beyond parsing numbers and
 * booleans for the options that need them.
 *
 * @module
 */
import type { ConsumerConfig, KafkaConfig, SASLOptions } from "kafkajs";
import { ConfigError } from "./config_file.ts";

/** What a config file asks of the Kafka client. */
export interface KafkaSettings {
  /** Client options (brokers, TLS, SASL, timeouts). */
  client: Pick<
    KafkaConfig,
    "brokers" | "clientId" | "ssl" | "sasl" | "connectionTimeout" | "requestTimeout"
  >;
  /** Consumer options other than the group id. */
  consumer: Omit<ConsumerConfig, "groupId">;
  /** `group.id` from the config file, if any (`create_new` included as written). */
  groupId: string | undefined;
  /** `auto.offset.reset`: where to start a partition the group has no committed offset for. */
  offsetReset: "earliest" | "latest" | "none";
  /** Warnings to log once: unused keys, auto-commit. */
  warnings: string[];
}

/** The warning of OpenMSIStream 1.8 when auto-commit is not switched off. */
export const AUTO_COMMIT_WARNING =
  'enable.auto.commit has not been set to False for a Consumer that will manually commit offsets. Missed or duplicate messages could result. You can set "enable.auto.commit"=False in the "consumer" section of the config file to re-enable manual offset commits (recommended).';

/** Keys accepted but not needed by this program, with the reason. */
export const IGNORED_KEYS: ReadonlyMap<string, string> = new Map([
  ["key.deserializer", "keys are read as UTF-8 strings"],
  ["value.deserializer", "values are always decoded as data file chunks"],
  ["node_id", "dropped, as in OpenMSIStream"],
  ["auto.commit.interval.ms", "offsets are committed manually"],
  ["enable.auto.offset.store", "offsets are committed manually"],
  ["enable.partition.eof", "not needed"],
  ["api.version.request", "kafkajs always negotiates API versions"],
  ["broker.version.fallback", "kafkajs always negotiates API versions"],
]);

const DESERIALIZER_NAMES = new Set([
  "StringDeserializer",
  "IntegerDeserializer",
  "DoubleDeserializer",
  "DataFileChunkDeserializer",
]);

/** Reads a file named by a config key (a CA bundle, a certificate, a key). */
export type ReadTextFile = (path: string) => string;

/**
 * Maps merged `[broker]` + `[consumer]` keys (consumer keys win) to kafkajs options.
 *
 * @param keys the merged keys, already interpolated and expanded.
 * @param where the config file, for messages.
 * @param readTextFile reads certificate files named by `ssl.*.location` keys.
 * @throws {ConfigError} for values that cannot work (a bad number, an unknown protocol).
 */
export function kafkaSettings(
  keys: ReadonlyMap<string, string>,
  where: string,
  readTextFile: ReadTextFile,
): KafkaSettings {
  const warnings: string[] = [];
  const unused: string[] = [];
  const bad = (key: string, value: string, want: string) =>
    new ConfigError(`Cannot use ${where}: ${key} = ${JSON.stringify(value)} is not ${want}`);
  const int = (key: string, value: string): number => {
    const n = Number(value.trim());
    if (value.trim() === "" || !Number.isInteger(n) || n < 0) {
      throw bad(key, value, "a whole number ≥ 0");
    }
    return n;
  };
  const bool = (key: string, value: string): boolean => {
    const v = value.trim().toLowerCase();
    if (["true", "1", "yes", "on"].includes(v)) return true;
    if (["false", "0", "no", "off"].includes(v)) return false;
    throw bad(key, value, "true or false");
  };
  const file = (key: string, path: string): string => {
    try {
      return readTextFile(path);
    } catch (error) {
      throw new ConfigError(
        `Cannot use ${where}: ${key} names ${path}, which cannot be read (${
          error instanceof Error ? error.message : error
        })`,
      );
    }
  };

  const client: KafkaSettings["client"] = { brokers: [] };
  const consumer: KafkaSettings["consumer"] = {};
  const ssl: {
    ca?: string[];
    cert?: string;
    key?: string;
    passphrase?: string;
    rejectUnauthorized?: boolean;
  } = {};
  let checkHostname = true;
  let protocol = "plaintext";
  let mechanism: string | undefined;
  let username: string | undefined;
  let password: string | undefined;
  let groupId: string | undefined;
  let offsetReset: KafkaSettings["offsetReset"] = "latest";
  let autoCommitOff = false;

  for (const [key, value] of keys) {
    switch (key) {
      case "bootstrap.servers":
      case "metadata.broker.list":
        client.brokers = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
        break;
      case "client.id":
        client.clientId = value;
        break;
      case "security.protocol": {
        const p = value.trim().toLowerCase();
        if (!["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].includes(p)) {
          throw bad(key, value, "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL");
        }
        protocol = p;
        break;
      }
      case "sasl.mechanism":
      case "sasl.mechanisms": {
        const m = value.trim().toUpperCase();
        if (!["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].includes(m)) {
          throw bad(key, value, "a supported SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)");
        }
        mechanism = m;
        break;
      }
      case "sasl.username":
        username = value;
        break;
      case "sasl.password":
        password = value;
        break;
      case "ssl.ca.location":
        ssl.ca = [file(key, value)];
        break;
      case "ssl.certificate.location":
        ssl.cert = file(key, value);
        break;
      case "ssl.key.location":
        ssl.key = file(key, value);
        break;
      case "ssl.key.password":
        ssl.passphrase = value;
        break;
      case "ssl.endpoint.identification.algorithm":
        checkHostname = value.trim().toLowerCase() !== "none";
        break;
      case "enable.ssl.certificate.verification":
        ssl.rejectUnauthorized = bool(key, value);
        break;
      case "socket.connection.setup.timeout.ms":
        client.connectionTimeout = int(key, value);
        break;
      case "request.timeout.ms":
      case "socket.timeout.ms":
        client.requestTimeout = int(key, value);
        break;
      case "group.id":
        groupId = value;
        break;
      case "auto.offset.reset": {
        const v = value.trim().toLowerCase();
        if (["earliest", "smallest", "beginning"].includes(v)) offsetReset = "earliest";
        else if (["latest", "largest", "end"].includes(v)) offsetReset = "latest";
        else if (["none", "error"].includes(v)) offsetReset = "none";
        else throw bad(key, value, "earliest, latest or none");
        break;
      }
      case "enable.auto.commit":
        autoCommitOff = !bool(key, value);
        break;
      case "fetch.min.bytes":
        consumer.minBytes = int(key, value);
        break;
      case "fetch.max.bytes":
        consumer.maxBytes = int(key, value);
        break;
      case "max.partition.fetch.bytes":
        consumer.maxBytesPerPartition = int(key, value);
        break;
      case "fetch.wait.max.ms":
        consumer.maxWaitTimeInMs = int(key, value);
        break;
      case "session.timeout.ms":
        consumer.sessionTimeout = int(key, value);
        break;
      case "heartbeat.interval.ms":
        consumer.heartbeatInterval = int(key, value);
        break;
      case "max.poll.interval.ms":
        consumer.rebalanceTimeout = int(key, value);
        break;
      case "isolation.level": {
        const v = value.trim().toLowerCase();
        if (v !== "read_committed" && v !== "read_uncommitted") {
          throw bad(key, value, "read_committed or read_uncommitted");
        }
        consumer.readUncommitted = v === "read_uncommitted";
        break;
      }
      case "key.deserializer":
      case "value.deserializer":
        if (!DESERIALIZER_NAMES.has(value.trim())) {
          warnings.push(
            `${key} = ${value} in ${where} is not an OpenMSIStream deserializer name; values are always decoded as data file chunks`,
          );
        }
        break;
      default:
        if (!IGNORED_KEYS.has(key)) unused.push(key);
    }
  }

  if (client.brokers.length === 0) {
    throw new ConfigError(
      `Cannot use ${where}: [broker] has no bootstrap.servers; add a line such as "bootstrap.servers = localhost:9092"`,
    );
  }
  if (protocol === "ssl" || protocol === "sasl_ssl") {
    client.ssl = checkHostname ? ssl : { ...ssl, checkServerIdentity: () => undefined };
  } else if (Object.keys(ssl).length > 0) {
    warnings.push(
      `ssl.* keys in ${where} are not used because security.protocol is ${protocol.toUpperCase()}`,
    );
  }
  if (protocol.startsWith("sasl_")) {
    if (username === undefined || password === undefined) {
      throw new ConfigError(
        `Cannot use ${where}: security.protocol ${protocol.toUpperCase()} needs sasl.username and sasl.password`,
      );
    }
    const m = (mechanism ?? "PLAIN").toLowerCase() as "plain" | "scram-sha-256" | "scram-sha-512";
    client.sasl = { mechanism: m, username, password } as SASLOptions;
  } else if (mechanism !== undefined || username !== undefined || password !== undefined) {
    warnings.push(
      `sasl.* keys in ${where} are not used because security.protocol is ${protocol.toUpperCase()}; set it to SASL_SSL or SASL_PLAINTEXT`,
    );
  }
  if (!autoCommitOff) warnings.push(AUTO_COMMIT_WARNING);
  if (unused.length > 0) {
    warnings.push(
      `These config keys in ${where} are not used by this program: ${unused.join(", ")}`,
    );
  }
  return { client, consumer, groupId, offsetReset, warnings };
}
