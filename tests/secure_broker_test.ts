/**
 * Config files with SASL and SSL, end to end: one real broker with SASL_PLAINTEXT (PLAIN,
 * SCRAM-SHA-256, SCRAM-SHA-512), SSL, SASL_SSL and mutual-TLS listeners (certificates made at
 * test time), a tree produced over PLAINTEXT, and the real CLI rebuilding it through each secure
 * listener with an OpenMSIStream-style config file whose secrets come from `$VAR` values. Wrong
 * credentials and untrusted certificates must show up as a clear "Waiting for the Kafka broker
 * (...)" warning naming the cause, and `q` must still exit 0.
 *
 * Runs its own broker, not the shared test broker.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { listFiles, produceFiles } from "../src/wire/chunk_producer.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import { type Broker, startBroker } from "../tools/broker.ts";
import { assertSameTree, CliProcess, join, tempDir, treeDigest, writeRandomFile } from "./_cli.ts";
import { makeTestCertificates, type TestCertificates } from "./_tls_fixtures.ts";

const USER = "alice";
const PASSWORD = "alice-Secret-42";
const TOPIC = "secure-tree";
const ENV = {
  DFDD_TEST_SASL_USER: USER,
  DFDD_TEST_SASL_PASSWORD: PASSWORD,
  DFDD_TEST_WRONG_PASSWORD: "not-alice-secret",
};

/** Temporary directories made by this test, removed at its end. */
const made: string[] = [];
async function scratch(prefix: string): Promise<string> {
  const dir = await tempDir(prefix);
  made.push(dir);
  return dir;
}

/** One CLI run: the listener it connects to and the security lines of its `[broker]` section. */
interface Case {
  name: string;
  listener: string;
  lines: string[];
  env?: Record<string, string>;
}

async function startSecureBroker(certs: TestCertificates): Promise<Broker> {
  const ssl = { keystoreLocation: certs.brokerKeystore, keystorePassword: certs.keystorePassword };
  return await startBroker({
    log: () => {},
    listeners: [
      { name: "SASL", protocol: "SASL_PLAINTEXT" },
      { name: "SSL", protocol: "SSL" },
      { name: "SASL_SSL", protocol: "SASL_SSL" },
      {
        name: "WRONG_HOST",
        protocol: "SSL",
        ssl: {
          keystoreLocation: certs.wrongHostKeystore,
          keystorePassword: certs.keystorePassword,
        },
      },
      {
        name: "MTLS",
        protocol: "SSL",
        ssl: {
          ...ssl,
          truststoreLocation: certs.truststore,
          truststorePassword: certs.truststorePassword,
          clientAuth: "required",
        },
      },
    ],
    sasl: {
      mechanisms: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
      users: { [USER]: PASSWORD, bob: "bob-secret" },
    },
    ssl,
  });
}

/** Creates the topic and produces every file under `root` over the PLAINTEXT listener. */
async function produceTreeTo(broker: Broker, root: string): Promise<number> {
  registerCodecs();
  const kafka = new Kafka({
    clientId: "secure-broker-test",
    brokers: [broker.bootstrapServers],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic: TOPIC, numPartitions: 2, replicationFactor: 1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer();
  await producer.connect();
  try {
    return await produceFiles(producer, TOPIC, root, await listFiles(root), {
      chunkSize: 16384,
      keying: "chunk",
    });
  } finally {
    await producer.disconnect();
  }
}

async function writeConfig(broker: Broker, c: Case): Promise<string> {
  const address = broker.addresses[c.listener];
  assert.ok(address, `no listener ${c.listener}`);
  const path = join(await scratch("cfg"), `${c.name.replaceAll(/\W+/g, "_")}.config`);
  await Deno.writeTextFile(
    path,
    [
      "[broker]",
      `bootstrap.servers = ${address}`,
      ...c.lines,
      "",
      "[consumer]",
      "auto.offset.reset = earliest",
      "enable.auto.commit = False",
      "",
    ].join("\n"),
  );
  return path;
}

function startCli(out: string, config: string, c: Case): CliProcess {
  const group = `secure-${c.name.replaceAll(/\W+/g, "-")}-${crypto.randomUUID().slice(0, 8)}`;
  return new CliProcess(
    [out, "--config", config, "--topic_name", TOPIC, "--consumer_group_id", group],
    { ...ENV, ...c.env },
  );
}

/** The CLI rebuilds the whole tree through the case's listener and exits 0 on `q`. */
async function assertRebuilds(broker: Broker, c: Case, root: string, files: number) {
  const out = await scratch("out");
  const cli = startCli(out, await writeConfig(broker, c), c);
  try {
    await cli.waitFor(/successfully reconstructed from stream/, 60_000, files);
    assert.equal(await cli.quit(), 0, cli.output);
  } finally {
    await cli.kill().catch(() => {});
  }
  assert.doesNotMatch(cli.output, /Waiting for the Kafka broker/, cli.output);
  assert.doesNotMatch(cli.output, /not used/, cli.output); // every key was understood
  await assertSameTree(root, out);
}

/**
 * The CLI says why it cannot connect (and keeps waiting), writes nothing, and exits 0 on `q`.
 * `cause` must be in the "Waiting for the Kafka broker (...)" line, or with `anywhere` in some
 * line before it.
 */
async function assertRefused(broker: Broker, c: Case, cause: RegExp, anywhere = false) {
  const out = await scratch("out");
  const cli = startCli(out, await writeConfig(broker, c), c);
  try {
    await cli.waitFor(/WARNING: Waiting for the Kafka broker \(/, 60_000);
    assert.equal(await cli.quit(), 0, cli.output);
  } finally {
    await cli.kill().catch(() => {});
  }
  const waiting = cli.output.split("\n").find((l) => l.includes("Waiting for the Kafka broker ("));
  assert.match(anywhere ? cli.output : waiting ?? "", cause, cli.output);
  assert.match(waiting ?? "", /retrying in \d+ s \(q to quit\)/);
  assert.equal((await treeDigest(out)).size, 0);
}

Deno.test("config files with SASL and SSL: every mechanism and TLS mode rebuilds the tree; bad credentials are named", async (t) => {
  const t0 = performance.now();
  const certs = await makeTestCertificates(await scratch("tls"));
  const root = await scratch("src");
  const sizes = [1, 20_000, 150_000, 70_000]; // no empty file: it has no chunk to send
  for (const [i, size] of sizes.entries()) {
    await writeRandomFile(join(root, `run_${i % 2}/file_${i}.bin`), size);
  }
  const timings: string[] = [];
  const timed = async (name: string, fn: () => Promise<void>) => {
    const started = performance.now();
    await t.step(name, fn);
    timings.push(`${name} ${((performance.now() - started) / 1000).toFixed(1)} s`);
  };
  let started: Broker | undefined;
  try {
    const broker = started = await startSecureBroker(certs);
    timings.push(`certificates + broker ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(Object.keys(broker.addresses).sort(), [
      "MTLS",
      "PLAINTEXT",
      "SASL",
      "SASL_SSL",
      "SSL",
      "WRONG_HOST",
    ]);
    assert.equal(broker.addresses.PLAINTEXT, broker.bootstrapServers);
    assert.equal(new Set(Object.values(broker.addresses)).size, 6);
    await produceTreeTo(broker, root);

    const sasl = (listener: string, mechanism: string, password = "$DFDD_TEST_SASL_PASSWORD") => ({
      name: `${listener} ${mechanism}`,
      listener,
      lines: [
        `security.protocol = ${listener === "SASL" ? "SASL_PLAINTEXT" : "SASL_SSL"}`,
        `sasl.mechanism = ${mechanism}`,
        "sasl.username = $DFDD_TEST_SASL_USER",
        `sasl.password = ${password}`,
        ...(listener === "SASL_SSL" ? [`ssl.ca.location = ${certs.caPem}`] : []),
      ],
    });
    const good: Case[] = [
      sasl("SASL", "PLAIN"),
      sasl("SASL", "SCRAM-SHA-256"),
      sasl("SASL", "SCRAM-SHA-512"),
      sasl("SASL_SSL", "SCRAM-SHA-512"),
      {
        name: "SSL with the CA, host name checked",
        listener: "SSL",
        lines: ["security.protocol = SSL", `ssl.ca.location = ${certs.caPem}`],
      },
      {
        name: "SSL with the CA, host name not checked",
        listener: "WRONG_HOST",
        lines: [
          "security.protocol = SSL",
          `ssl.ca.location = ${certs.caPem}`,
          "ssl.endpoint.identification.algorithm = none",
        ],
      },
      {
        name: "SSL with a client certificate",
        listener: "MTLS",
        lines: [
          "security.protocol = SSL",
          `ssl.ca.location = ${certs.caPem}`,
          `ssl.certificate.location = ${certs.clientCertPem}`,
          `ssl.key.location = ${certs.clientKeyPem}`,
        ],
      },
      {
        name: "SSL with a client certificate and an encrypted key",
        listener: "MTLS",
        lines: [
          "security.protocol = SSL",
          `ssl.ca.location = ${certs.caPem}`,
          `ssl.certificate.location = ${certs.clientCertPem}`,
          `ssl.key.location = ${certs.clientKeyEncryptedPem}`,
          "ssl.key.password = $DFDD_TEST_KEY_PASSWORD",
        ],
        env: { DFDD_TEST_KEY_PASSWORD: certs.clientKeyPassword },
      },
    ];
    for (const c of good) {
      await timed(`rebuilds over ${c.name}`, () => assertRebuilds(broker, c, root, sizes.length));
    }

    const bad: [Case, RegExp, boolean?][] = [
      [
        { ...sasl("SASL", "PLAIN", "$DFDD_TEST_WRONG_PASSWORD"), name: "wrong PLAIN password" },
        /SASL PLAIN authentication failed/i,
      ],
      [
        {
          ...sasl("SASL", "SCRAM-SHA-512", "$DFDD_TEST_WRONG_PASSWORD"),
          name: "wrong SCRAM-SHA-512 password",
        },
        /SASL SCRAM SHA512 authentication failed/i,
      ],
      [
        {
          name: "SSL with an unrelated CA",
          listener: "SSL",
          lines: ["security.protocol = SSL", `ssl.ca.location = ${certs.otherCaPem}`],
        },
        /self-signed certificate in certificate chain/,
      ],
      [
        {
          name: "SSL with a certificate for another host",
          listener: "WRONG_HOST",
          lines: ["security.protocol = SSL", `ssl.ca.location = ${certs.caPem}`],
        },
        /Hostname\/IP does not match certificate's altnames/,
      ],
      [
        {
          name: "SSL with the host name not checked: the CA still is",
          listener: "WRONG_HOST",
          lines: [
            "security.protocol = SSL",
            `ssl.ca.location = ${certs.otherCaPem}`,
            "ssl.endpoint.identification.algorithm = none",
          ],
        },
        /self-signed certificate in certificate chain/,
      ],
      [
        {
          name: "SSL without the client certificate the broker requires",
          listener: "MTLS",
          lines: ["security.protocol = SSL", `ssl.ca.location = ${certs.caPem}`],
        },
        // With TLS 1.3 the broker's alert comes after the client's first write, so the last
        // error kafkajs reports (the one in the "Waiting" line) is sometimes only "write after
        // end"; the alert itself is always in a "Kafka client: Connection error" warning.
        /WARNING: Kafka client: Connection error: received fatal alert: BadCertificate/,
        true,
      ],
    ];
    // Side by side: kafkajs retries a failed TLS connection for ~10 s before giving up.
    await timed("names the cause of each refusal", async () => {
      const failures = await Promise.all(bad.map(async ([c, cause, anywhere]) => {
        try {
          await assertRefused(broker, c, cause, anywhere);
          return [];
        } catch (error) {
          return [`${c.name}: ${error instanceof Error ? error.message : error}`];
        }
      }));
      assert.deepEqual(failures.flat(), []);
    });
  } finally {
    await started?.stop();
    for (const dir of made) await Deno.remove(dir, { recursive: true }).catch(() => {});
    timings.push(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    console.error(`secure_broker_test timings: ${timings.join("; ")}`);
  }
});
