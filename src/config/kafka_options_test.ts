import assert from "node:assert/strict";
import { ConfigError } from "./config_file.ts";
import {
  AUTO_COMMIT_WARNING,
  IGNORED_KEYS,
  type KafkaSettings,
  kafkaSettings,
  type ReadTextFile,
} from "./kafka_options.ts";

const WHERE = "t.config";

/** A reader that must not be called. */
const NO_FILES: ReadTextFile = (path) => {
  throw new Error(`unexpected read of ${path}`);
};

/** Maps keys with the minimum a config needs (brokers, auto-commit off) plus `extra`. */
function settings(
  extra: Record<string, string>,
  readTextFile: ReadTextFile = NO_FILES,
): KafkaSettings {
  return kafkaSettings(
    new Map(Object.entries({
      "bootstrap.servers": "localhost:9092",
      "enable.auto.commit": "False",
      ...extra,
    })),
    WHERE,
    readTextFile,
  );
}

/** Asserts that `fn` throws a ConfigError whose message contains every fragment. */
function assertConfigError(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    for (const fragment of fragments) {
      assert.ok(
        error.message.includes(fragment),
        `message ${JSON.stringify(error.message)} should contain ${JSON.stringify(fragment)}`,
      );
    }
    return true;
  });
}

Deno.test("kafkaSettings() maps a minimal plaintext config with no warning", () => {
  const s = settings({});
  assert.deepEqual(s.client, { brokers: ["localhost:9092"] });
  assert.deepEqual(s.consumer, {});
  assert.equal(s.groupId, undefined);
  assert.equal(s.offsetReset, "latest");
  assert.deepEqual(s.warnings, []);
});

Deno.test("kafkaSettings() splits bootstrap.servers at commas and drops blanks", () => {
  assert.deepEqual(
    settings({ "bootstrap.servers": " b1:9092 , b2:9093,,b3:9094 " }).client.brokers,
    [
      "b1:9092",
      "b2:9093",
      "b3:9094",
    ],
  );
  assert.deepEqual(settings({ "bootstrap.servers": "solo:1" }).client.brokers, ["solo:1"]);
  // librdkafka's older name works too.
  const legacy = kafkaSettings(
    new Map([["metadata.broker.list", "m:1"], ["enable.auto.commit", "false"]]),
    WHERE,
    NO_FILES,
  );
  assert.deepEqual(legacy.client.brokers, ["m:1"]);
});

Deno.test("kafkaSettings() refuses a config without brokers", () => {
  assertConfigError(
    () => kafkaSettings(new Map([["group.id", "g"]]), WHERE, NO_FILES),
    WHERE,
    "bootstrap.servers",
  );
  assertConfigError(() => settings({ "bootstrap.servers": " , " }), "bootstrap.servers");
  assertConfigError(() => settings({ "bootstrap.servers": "" }), "bootstrap.servers");
});

Deno.test("kafkaSettings() maps client.id and group.id verbatim", () => {
  const s = settings({ "client.id": "me", "group.id": "12345" });
  assert.equal(s.client.clientId, "me");
  // Numbers stay strings: the reference sent "12345.0".
  assert.equal(s.groupId, "12345");
  assert.equal(settings({ "group.id": "create_new" }).groupId, "create_new");
});

Deno.test("kafkaSettings() accepts every security.protocol spelling", () => {
  assert.equal(settings({ "security.protocol": "PLAINTEXT" }).client.ssl, undefined);
  assert.equal(settings({ "security.protocol": "plaintext" }).client.sasl, undefined);
  assert.deepEqual(settings({ "security.protocol": "SSL" }).client.ssl, {});
  assert.deepEqual(settings({ "security.protocol": " ssl " }).client.ssl, {});
  assertConfigError(
    () => settings({ "security.protocol": "TLS" }),
    WHERE,
    "security.protocol",
    '"TLS"',
    "SASL_SSL",
  );
});

Deno.test("kafkaSettings() builds kafkajs SASL options for SASL_SSL", () => {
  const base = {
    "security.protocol": "SASL_SSL",
    "sasl.username": "user",
    "sasl.password": "12345",
  };
  const plain = settings({ ...base, "sasl.mechanism": "PLAIN" });
  assert.deepEqual(plain.client.sasl, { mechanism: "plain", username: "user", password: "12345" });
  assert.deepEqual(plain.client.ssl, {});
  assert.deepEqual(plain.warnings, []);
  assert.deepEqual(settings({ ...base, "sasl.mechanism": "SCRAM-SHA-256" }).client.sasl, {
    mechanism: "scram-sha-256",
    username: "user",
    password: "12345",
  });
  assert.deepEqual(settings({ ...base, "sasl.mechanisms": "scram-sha-512" }).client.sasl, {
    mechanism: "scram-sha-512",
    username: "user",
    password: "12345",
  });
  // Without a mechanism, PLAIN is used.
  assert.equal(settings(base).client.sasl?.mechanism, "plain");
});

Deno.test("kafkaSettings() builds SASL without TLS for SASL_PLAINTEXT", () => {
  const s = settings({
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "u",
    "sasl.password": "p",
  });
  assert.deepEqual(s.client.sasl, { mechanism: "scram-sha-512", username: "u", password: "p" });
  assert.equal(s.client.ssl, undefined);
});

Deno.test("kafkaSettings() refuses SASL without credentials or with an unknown mechanism", () => {
  assertConfigError(
    () => settings({ "security.protocol": "SASL_SSL", "sasl.username": "u" }),
    "SASL_SSL",
    "sasl.username",
    "sasl.password",
  );
  assertConfigError(
    () => settings({ "security.protocol": "SASL_SSL", "sasl.password": "p" }),
    "sasl.password",
  );
  assertConfigError(
    () =>
      settings({
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "GSSAPI",
        "sasl.username": "u",
        "sasl.password": "p",
      }),
    "sasl.mechanism",
    '"GSSAPI"',
  );
});

Deno.test("kafkaSettings() warns about sasl.* keys without a SASL protocol", () => {
  for (
    const extra of [{ "sasl.mechanism": "PLAIN" }, { "sasl.username": "u" }, {
      "sasl.password": "p",
    }]
  ) {
    const s = settings(extra);
    assert.equal(s.client.sasl, undefined);
    assert.equal(s.warnings.length, 1, JSON.stringify(extra));
    assert.match(s.warnings[0] ?? "", /sasl\.\* keys in t\.config are not used.*PLAINTEXT/);
  }
});

Deno.test("kafkaSettings() reads ssl.*.location files through the injected reader", () => {
  const read: string[] = [];
  const files: Record<string, string> = { "ca.pem": "CA", "cert.pem": "CERT", "key.pem": "KEY" };
  const reader: ReadTextFile = (path) => {
    read.push(path);
    const text = files[path];
    if (text === undefined) throw new Error("No such file");
    return text;
  };
  const s = settings({
    "security.protocol": "SSL",
    "ssl.ca.location": "ca.pem",
    "ssl.certificate.location": "cert.pem",
    "ssl.key.location": "key.pem",
    "ssl.key.password": "pw",
  }, reader);
  assert.deepEqual(s.client.ssl, { ca: ["CA"], cert: "CERT", key: "KEY", passphrase: "pw" });
  assert.deepEqual(read, ["ca.pem", "cert.pem", "key.pem"]);
  assert.deepEqual(s.warnings, []);
  assertConfigError(
    () => settings({ "security.protocol": "SSL", "ssl.ca.location": "gone.pem" }, reader),
    WHERE,
    "ssl.ca.location",
    "gone.pem",
    "No such file",
  );
});

Deno.test("kafkaSettings() turns off host name checks for ssl.endpoint.identification.algorithm=none", () => {
  const s = settings({
    "security.protocol": "SSL",
    "ssl.endpoint.identification.algorithm": "none",
  });
  const ssl = s.client.ssl as { checkServerIdentity?: (host: string, cert: unknown) => unknown };
  assert.equal(typeof ssl.checkServerIdentity, "function");
  assert.equal(ssl.checkServerIdentity?.("wrong.host", {}), undefined);
  const upper = settings({
    "security.protocol": "SASL_SSL",
    "ssl.endpoint.identification.algorithm": "NONE",
    "sasl.username": "u",
    "sasl.password": "p",
  }).client.ssl as { checkServerIdentity?: unknown };
  assert.equal(typeof upper.checkServerIdentity, "function");
  // "https" (librdkafka's default) keeps the check.
  assert.deepEqual(
    settings({ "security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "https" })
      .client.ssl,
    {},
  );
});

Deno.test("kafkaSettings() maps enable.ssl.certificate.verification", () => {
  assert.deepEqual(
    settings({ "security.protocol": "SSL", "enable.ssl.certificate.verification": "false" }).client
      .ssl,
    { rejectUnauthorized: false },
  );
  assertConfigError(
    () => settings({ "security.protocol": "SSL", "enable.ssl.certificate.verification": "maybe" }),
    "enable.ssl.certificate.verification",
    "true or false",
  );
});

Deno.test("kafkaSettings() warns about ssl.* keys without a TLS protocol", () => {
  const s = settings({ "ssl.key.password": "pw" });
  assert.equal(s.client.ssl, undefined);
  assert.deepEqual(s.warnings, [
    "ssl.* keys in t.config are not used because security.protocol is PLAINTEXT",
  ]);
});

Deno.test("kafkaSettings() maps auto.offset.reset", () => {
  for (const v of ["earliest", "EARLIEST", "smallest", "beginning"]) {
    assert.equal(settings({ "auto.offset.reset": v }).offsetReset, "earliest", v);
  }
  for (const v of ["latest", "largest", "end"]) {
    assert.equal(settings({ "auto.offset.reset": v }).offsetReset, "latest", v);
  }
  for (const v of ["none", "None", "error"]) {
    assert.equal(settings({ "auto.offset.reset": v }).offsetReset, "none", v);
  }
  assertConfigError(
    () => settings({ "auto.offset.reset": "oldest" }),
    WHERE,
    "auto.offset.reset",
    '"oldest"',
  );
});

Deno.test("kafkaSettings() warns about auto-commit unless enable.auto.commit is false", () => {
  assert.deepEqual(settings({ "enable.auto.commit": "False" }).warnings, []);
  assert.deepEqual(settings({ "enable.auto.commit": "false" }).warnings, []);
  assert.deepEqual(settings({ "enable.auto.commit": "True" }).warnings, [AUTO_COMMIT_WARNING]);
  assert.deepEqual(settings({ "enable.auto.commit": "true" }).warnings, [AUTO_COMMIT_WARNING]);
  const absent = kafkaSettings(new Map([["bootstrap.servers", "h:1"]]), WHERE, NO_FILES);
  assert.deepEqual(absent.warnings, [AUTO_COMMIT_WARNING]);
  assertConfigError(() => settings({ "enable.auto.commit": "nope" }), "enable.auto.commit");
});

Deno.test("AUTO_COMMIT_WARNING is the reference's text", () => {
  assert.equal(
    AUTO_COMMIT_WARNING,
    'enable.auto.commit has not been set to False for a Consumer that will manually commit offsets. Missed or duplicate messages could result. You can set "enable.auto.commit"=False in the "consumer" section of the config file to re-enable manual offset commits (recommended).',
  );
});

Deno.test("kafkaSettings() maps consumer numbers", () => {
  const s = settings({
    "fetch.min.bytes": "100000",
    "fetch.max.bytes": "52428800",
    "max.partition.fetch.bytes": "1048576",
    "fetch.wait.max.ms": "500",
    "session.timeout.ms": "45000",
    "heartbeat.interval.ms": "3000",
    "max.poll.interval.ms": "300000",
  });
  assert.deepEqual(s.consumer, {
    minBytes: 100000,
    maxBytes: 52428800,
    maxBytesPerPartition: 1048576,
    maxWaitTimeInMs: 500,
    sessionTimeout: 45000,
    heartbeatInterval: 3000,
    rebalanceTimeout: 300000,
  });
  assert.deepEqual(s.warnings, []);
  assert.equal(settings({ "fetch.min.bytes": " 0 " }).consumer.minBytes, 0);
});

Deno.test("kafkaSettings() maps client timeouts", () => {
  const s = settings({
    "socket.connection.setup.timeout.ms": "10000",
    "request.timeout.ms": "30000",
  });
  assert.equal(s.client.connectionTimeout, 10000);
  assert.equal(s.client.requestTimeout, 30000);
  assert.equal(settings({ "socket.timeout.ms": "60000" }).client.requestTimeout, 60000);
});

Deno.test("kafkaSettings() refuses numbers that are not whole and non-negative, naming the key", () => {
  for (const key of ["fetch.min.bytes", "session.timeout.ms", "request.timeout.ms"]) {
    for (const value of ["", "abc", "-1", "1.5", "10 MB"]) {
      assertConfigError(
        () => settings({ [key]: value }),
        WHERE,
        key,
        JSON.stringify(value),
        "whole number",
      );
    }
  }
});

Deno.test("kafkaSettings() maps isolation.level", () => {
  assert.equal(
    settings({ "isolation.level": "read_uncommitted" }).consumer.readUncommitted,
    true,
  );
  assert.equal(settings({ "isolation.level": "READ_COMMITTED" }).consumer.readUncommitted, false);
  assertConfigError(() => settings({ "isolation.level": "dirty" }), "isolation.level");
});

Deno.test("kafkaSettings() accepts OpenMSIStream deserializer names silently", () => {
  for (const name of ["StringDeserializer", "DataFileChunkDeserializer"]) {
    assert.deepEqual(
      settings({ "key.deserializer": "StringDeserializer", "value.deserializer": name }).warnings,
      [],
    );
  }
  assert.deepEqual(
    settings({
      "key.deserializer": "IntegerDeserializer",
      "value.deserializer": "DoubleDeserializer",
    })
      .warnings,
    [],
  );
  const odd = settings({ "value.deserializer": "JSONDeserializer" });
  assert.equal(odd.warnings.length, 1);
  assert.match(odd.warnings[0] ?? "", /value\.deserializer = JSONDeserializer in t\.config/);
});

Deno.test("kafkaSettings() names every unknown key in one warning", () => {
  const s = settings({
    "compression.type": "lz4",
    "some.unknown": "1",
    "node_id": "testing_node",
    "enable.partition.eof": "false",
    "api.version.request": "true",
  });
  assert.deepEqual(s.warnings, [
    "These config keys in t.config are not used by this program: compression.type, some.unknown",
  ]);
  for (const key of IGNORED_KEYS.keys()) {
    assert.deepEqual(settings({ [key]: "x" }).warnings.filter((w) => w.includes("not used")), []);
  }
});

Deno.test("kafkaSettings() maps the shipped test.config", () => {
  const s = kafkaSettings(
    new Map([
      ["bootstrap.servers", "b1:9092,b2:9092"],
      ["sasl.mechanism", "PLAIN"],
      ["security.protocol", "SASL_SSL"],
      ["sasl.username", "user"],
      ["sasl.password", "secret"],
      ["group.id", "create_new"],
      ["auto.offset.reset", "earliest"],
      ["enable.auto.commit", "False"],
      ["fetch.min.bytes", "100000"],
      ["key.deserializer", "StringDeserializer"],
      ["value.deserializer", "DataFileChunkDeserializer"],
    ]),
    "test.config",
    NO_FILES,
  );
  assert.deepEqual(s, {
    client: {
      brokers: ["b1:9092", "b2:9092"],
      ssl: {},
      sasl: { mechanism: "plain", username: "user", password: "secret" },
    },
    consumer: { minBytes: 100000 },
    groupId: "create_new",
    offsetReset: "earliest",
    warnings: [],
  });
});
