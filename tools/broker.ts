/**
 * Real Apache Kafka test broker for this project's tests and for manual runs.
 *
 * {@linkcode startBroker} runs one single-node Kafka broker in KRaft mode (broker and controller
 * in the same JVM) on free loopback ports, in a fresh temporary directory, and resolves once the
 * broker answers metadata requests. {@linkcode Broker.stop} shuts it down and removes the
 * directory.
 *
 * The broker's jars are not vendored: the first call runs Maven once
 * (`mvn -f tools/kafka/pom.xml dependency:copy-dependencies`) to copy Kafka and its runtime
 * dependencies from Maven Central into `.cache/kafka/<version>/libs` (git-ignored). Later calls
 * reuse them. Needs `java` (17+) and, for that first fetch, `mvn` on the PATH.
 *
 * The JVM runs in its own session / process group behind a tiny `sh` watchdog, so that
 * - stopping kills the whole group (SIGTERM, then SIGKILL after a grace period), and
 * - no `java` process outlives the Deno process that started it, even if that process is killed
 *   with SIGKILL: the watchdog polls the Deno pid once a second and stops the broker when it is
 *   gone.
 *
 * Permissions: `--allow-read --allow-write --allow-run --allow-env --allow-net=127.0.0.1`.
 * `--allow-run` must be unrestricted: `Deno.kill` of a process group requires it.
 *
 * @example
 * ```ts
 * import { startBroker } from "./tools/broker.ts";
 * const broker = await startBroker();
 * try {
 *   console.log(broker.bootstrapServers); // e.g. "127.0.0.1:40123"
 * } finally {
 *   await broker.stop();
 * }
 * ```
 *
 * @module
 */

import { Kafka, logLevel } from "kafkajs";
import { quietKafkajsTimerWarnings } from "../src/console/process_warnings.ts";

quietKafkajsTimerWarnings();

/** Kafka version fetched and run. Must match a version served by Maven Central. */
export const KAFKA_VERSION = "4.4.0";

/** A running test broker. */
export interface Broker {
  /** `host:port` of the PLAINTEXT listener, for clients' `brokers` / `bootstrap.servers`. */
  readonly bootstrapServers: string;
  /**
   * `host:port` of every client listener by name: `PLAINTEXT` (= {@linkcode Broker.bootstrapServers})
   * and each of {@linkcode StartBrokerOptions.listeners}.
   */
  readonly addresses: Readonly<Record<string, string>>;
  /** Kafka cluster id the storage was formatted with. */
  readonly clusterId: string;
  /** Temporary directory holding the config, the data (`data/`) and the log (`broker.log`). */
  readonly dir: string;
  /** Path of the broker's combined stdout/stderr log. */
  readonly logFile: string;
  /** Process group id (the watchdog's pid): signal `-pgid` to reach every process. */
  readonly pgid: number;
  /** Pid of the `java` process. */
  readonly javaPid: number;
  /** Milliseconds from the start of {@linkcode startBroker} until the broker answered. */
  readonly startupMs: number;
  /** Resolves when the broker's process group leader (the watchdog) has exited. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Resident memory of the `java` process in bytes (via `ps`), `undefined` if it is gone. */
  rssBytes(): Promise<number | undefined>;
  /** The last `lines` lines of the broker log. */
  logTail(lines?: number): Promise<string>;
  /**
   * Stop the broker: SIGTERM to its process group, SIGKILL after `graceMs` (default 10 s), wait
   * for the exit, remove {@linkcode Broker.dir}. Safe to call more than once.
   */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@linkcode startBroker}. */
export interface StartBrokerOptions {
  /** PLAINTEXT listener port; default: a free port on 127.0.0.1. */
  port?: number;
  /** CONTROLLER listener port; default: a free port on 127.0.0.1. */
  controllerPort?: number;
  /**
   * Port on 127.0.0.1 that the broker tells clients to use for its PLAINTEXT listener, where a
   * proxy in front of it listens (the benchmark's `--broker-rtt-ms`); default: the listener's own.
   * Clients may bootstrap on either: the broker's metadata sends every connection after that one
   * to this port.
   */
  advertisedPort?: number;
  /** Give up (and print the tail of the broker log) after this long. Default 90 000 ms. */
  startupTimeoutMs?: number;
  /** JVM maximum heap (`-Xmx`). Default `"512m"`. */
  maxHeap?: string;
  /** Extra `key=value` lines for server.properties (override the defaults). */
  extraProperties?: Record<string, string | number | boolean>;
  /** Log level of the broker's own log file. Default `"INFO"`. */
  brokerLogLevel?: "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR";
  /** Keep {@linkcode Broker.dir} after stop / failed start (for debugging). Default false. */
  keepDir?: boolean;
  /**
   * Keep the broker's data in this folder instead of the temporary directory, and do not delete
   * it on stop: a broker started again with the same `dataDir` and ports has the same topics,
   * records and committed offsets (for broker restart tests). Formatted only when new.
   */
  dataDir?: string;
  /** Where progress lines go. Default `console.error`; pass `() => {}` to silence. */
  log?: (line: string) => void;
  /**
   * Listeners with security, added next to the PLAINTEXT one (which stays, for admin clients and
   * producers). Default none. SASL_* listeners need {@linkcode StartBrokerOptions.sasl}, SSL and
   * SASL_SSL ones {@linkcode StartBrokerOptions.ssl}. Their addresses are in
   * {@linkcode Broker.addresses}.
   */
  listeners?: SecureListener[];
  /** Users and mechanisms of the SASL_* listeners. */
  sasl?: BrokerSasl;
  /** Keystore (and truststore, for client certificates) of the SSL and SASL_SSL listeners. */
  ssl?: BrokerSsl;
}

/** A listener with security (see {@linkcode StartBrokerOptions.listeners}). */
export interface SecureListener {
  /** Listener name: upper-case letters, digits and `_`, e.g. `"SASL"`; not PLAINTEXT or CONTROLLER. */
  name: string;
  /** Its security protocol. */
  protocol: "SASL_PLAINTEXT" | "SSL" | "SASL_SSL";
  /** Port on 127.0.0.1; default: a free port. */
  port?: number;
  /** TLS settings of this listener instead of {@linkcode StartBrokerOptions.ssl}. */
  ssl?: BrokerSsl;
}

/** SASL mechanisms the test broker can enable. */
export type SaslMechanism = "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512";

/** SASL settings of every SASL_PLAINTEXT / SASL_SSL listener. */
export interface BrokerSasl {
  /** Mechanisms enabled on each SASL listener (at least one). */
  mechanisms: SaslMechanism[];
  /**
   * User name → password, accepted by every enabled mechanism: PLAIN users go into the
   * listener's JAAS config, SCRAM credentials are added when the storage is formatted (a reused,
   * already formatted {@linkcode StartBrokerOptions.dataDir} keeps the ones it has). Names and
   * passwords may not contain white space, quotes, backslashes, `,`, `=`, `[` or `]`.
   */
  users: Record<string, string>;
}

/** TLS settings of every SSL / SASL_SSL listener. */
export interface BrokerSsl {
  /** Keystore with the broker's private key and certificate (chain). */
  keystoreLocation: string;
  /** Password of the keystore. */
  keystorePassword: string;
  /** Password of the key in the keystore; default {@linkcode BrokerSsl.keystorePassword}. */
  keyPassword?: string;
  /** Keystore type. Default `"PKCS12"`. */
  keystoreType?: "PKCS12" | "JKS";
  /** Truststore for client certificates (needed when {@linkcode BrokerSsl.clientAuth} is not "none"). */
  truststoreLocation?: string;
  /** Password of the truststore (not for `"PEM"`). */
  truststorePassword?: string;
  /** Truststore type. Default `"PKCS12"`; `"PEM"` reads a file of CA certificates. */
  truststoreType?: "PKCS12" | "JKS" | "PEM";
  /** `ssl.client.auth`: whether clients must present a certificate. Default `"none"`. */
  clientAuth?: "none" | "requested" | "required";
}

const REPO_ROOT = new URL("../", import.meta.url);
const POM = new URL("tools/kafka/pom.xml", REPO_ROOT);

/** Absolute path of `.cache/kafka/<version>/libs` in the repository. */
export function kafkaLibsDir(version: string = KAFKA_VERSION): string {
  return new URL(`.cache/kafka/${version}/libs`, REPO_ROOT).pathname;
}

/**
 * Marker written once all jars have been copied. Its first line is a hash of the pom, so editing
 * the pom (e.g. its dependencies) makes the next run fetch again.
 */
const MARKER = ".complete";

async function pomStamp(pom: URL, version: string): Promise<string> {
  const bytes = await Deno.readFile(pom);
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new Uint8Array([...new TextEncoder().encode(`${version}\n`), ...bytes]),
  );
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `pom-sha256 ${hex}`;
}

async function markerMatches(libs: string, stamp: string): Promise<boolean> {
  try {
    return (await Deno.readTextFile(`${libs}/${MARKER}`)).split("\n")[0] === stamp;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** What {@linkcode ensureMavenJars} fetches and where. */
export interface MavenJars {
  /** Fetch-only Maven project whose runtime dependencies are copied. */
  pom: URL;
  /** Folder under `.cache/kafka/<version>/` to copy them into, e.g. `"libs"`. */
  dirName: string;
  /** The fetch counts as complete only if a jar whose name starts with this was copied. */
  expectJarPrefix: string;
  /** What the jars are, for messages, e.g. `"Apache Kafka 4.4.0 jars"`. */
  what: string;
  /** Added to the message when Maven is not on the PATH. */
  noMavenHint: string;
  /** Passed to Maven as `-Dkafka.version`. Default {@linkcode KAFKA_VERSION}. */
  version?: string;
  /** Progress lines. Default `console.error`. */
  log?: (line: string) => void;
}

/**
 * Make sure the runtime dependencies of a fetch-only pom are in `.cache/kafka/<version>/<dirName>`,
 * fetching them with Maven if not (once; a marker file records a complete fetch, and a fetch goes
 * to a private folder renamed into place, so a folder in use is never half-filled). Returns the
 * folder.
 */
export async function ensureMavenJars(jars: MavenJars): Promise<string> {
  const version = jars.version ?? KAFKA_VERSION;
  const log = jars.log ?? console.error;
  const libs = new URL(`.cache/kafka/${version}/${jars.dirName}`, REPO_ROOT).pathname;
  const stamp = await pomStamp(jars.pom, version);
  if (await markerMatches(libs, stamp)) return libs;

  log(
    `Fetching ${jars.what} with Maven into .cache/kafka/${version}/${jars.dirName} ` +
      `(this happens once)...`,
  );
  const started = performance.now();
  const parent = new URL(`.cache/kafka/${version}/`, REPO_ROOT).pathname;
  await Deno.mkdir(parent, { recursive: true });
  // Copy into a private directory first, then rename: a concurrent or interrupted fetch never
  // leaves a half-filled folder behind the marker.
  const staging = await Deno.makeTempDir({ dir: parent, prefix: `${jars.dirName}.fetching-` });
  try {
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command("mvn", {
        args: [
          "-B",
          "-q",
          "-Dstyle.color=never",
          "-f",
          jars.pom.pathname,
          `-Dkafka.version=${version}`,
          "dependency:copy-dependencies",
          `-DoutputDirectory=${staging}`,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(
          `Cannot fetch the ${jars.what}: Maven (\`mvn\`) is not on the PATH. ` +
            `Install it (e.g. \`apt-get install maven\`)${jars.noMavenHint}.`,
        );
      }
      throw e;
    }
    if (!out.success) {
      const output = (decode(out.stdout) + decode(out.stderr)).trim().split("\n").slice(-40);
      throw new Error(
        `Maven failed (exit code ${out.code}) fetching ${jars.what} with\n` +
          `  mvn -f ${jars.pom.pathname} dependency:copy-dependencies\n` +
          `Is Maven Central reachable and is every dependency of that pom published for ` +
          `Kafka ${version}?\n--- last lines of Maven's output ---\n${output.join("\n")}`,
      );
    }
    const names: string[] = [];
    for await (const entry of Deno.readDir(staging)) {
      if (entry.name.endsWith(".jar")) names.push(entry.name);
    }
    if (!names.some((j) => j.startsWith(jars.expectJarPrefix))) {
      throw new Error(
        `Maven succeeded but ${jars.expectJarPrefix}*.jar is not among the fetched jars in ${staging}`,
      );
    }
    await Deno.writeTextFile(`${staging}/${MARKER}`, [stamp, ...names.sort()].join("\n") + "\n");
    try {
      await Deno.remove(libs, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    try {
      await Deno.rename(staging, libs);
    } catch (e) {
      // Another process finished the same fetch first: use its copy.
      if (!(await markerMatches(libs, stamp))) throw e;
    }
    log(
      `Fetched ${names.length} jars in ${((performance.now() - started) / 1000).toFixed(1)} s.`,
    );
    return libs;
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.remove(parent).catch(() => {}); // only if empty (a failed first fetch)
  }
}

/**
 * Make sure Kafka's broker jars are in {@linkcode kafkaLibsDir}, fetching them with Maven from
 * tools/kafka/pom.xml if not (once). Returns the libs directory.
 */
export function ensureKafkaJars(
  log: (line: string) => void = console.error,
  version: string = KAFKA_VERSION,
): Promise<string> {
  return ensureMavenJars({
    pom: POM,
    dirName: "libs",
    expectJarPrefix: `kafka_2.13-${version}`,
    what: `Apache Kafka ${version} jars`,
    noMavenHint: " or set KAFKA_BOOTSTRAP_SERVERS to use a broker you run yourself",
    version,
    log,
  });
}

/** A port that was free on 127.0.0.1 a moment ago (bind port 0, read it, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Two distinct free ports (both listeners are held open while choosing). */
function twoFreePorts(): [number, number] {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const b = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ports: [number, number] = [(a.addr as Deno.NetAddr).port, (b.addr as Deno.NetAddr).port];
  a.close();
  b.close();
  return ports;
}

/** `n` distinct free ports (all listeners are held open while choosing). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** A secure listener with its port decided. */
interface PlacedListener {
  name: string;
  protocol: SecureListener["protocol"];
  port: number;
  ssl: BrokerSsl | undefined;
}

const SASL_SAFE = /^[^\s"'\\,=[\]]+$/;

/** Checks the security options; returns the server.properties entries they need. */
function securityProperties(
  listeners: PlacedListener[],
  sasl: BrokerSasl | undefined,
): Record<string, string> {
  const props: Record<string, string> = {};
  const names = new Set(["PLAINTEXT", "CONTROLLER"]);
  for (const l of listeners) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(l.name) || names.has(l.name)) {
      throw new Error(
        `startBroker: listener name ${
          JSON.stringify(l.name)
        } must be upper-case letters, digits and _, unique, and not PLAINTEXT or CONTROLLER`,
      );
    }
    names.add(l.name);
    const prefix = `listener.name.${l.name.toLowerCase()}`;
    if (l.protocol.startsWith("SASL_")) {
      if (!sasl || sasl.mechanisms.length === 0 || Object.keys(sasl.users).length === 0) {
        throw new Error(
          `startBroker: listener ${l.name} (${l.protocol}) needs the sasl option with mechanisms and users`,
        );
      }
      props[`${prefix}.sasl.enabled.mechanisms`] = sasl.mechanisms.join(",");
      for (const m of sasl.mechanisms) {
        props[`${prefix}.${m.toLowerCase()}.sasl.jaas.config`] = m === "PLAIN"
          ? [
            "org.apache.kafka.common.security.plain.PlainLoginModule required",
            ...Object.entries(sasl.users).map(([u, p]) => `user_${u}="${p}"`),
          ].join(" ") + ";"
          : "org.apache.kafka.common.security.scram.ScramLoginModule required;";
      }
    }
    if (l.protocol.endsWith("SSL")) {
      const ssl = l.ssl;
      if (!ssl) {
        throw new Error(`startBroker: listener ${l.name} (${l.protocol}) needs the ssl option`);
      }
      props[`${prefix}.ssl.keystore.type`] = ssl.keystoreType ?? "PKCS12";
      props[`${prefix}.ssl.keystore.location`] = ssl.keystoreLocation;
      props[`${prefix}.ssl.keystore.password`] = ssl.keystorePassword;
      props[`${prefix}.ssl.key.password`] = ssl.keyPassword ?? ssl.keystorePassword;
      if (ssl.truststoreLocation !== undefined) {
        props[`${prefix}.ssl.truststore.type`] = ssl.truststoreType ?? "PKCS12";
        props[`${prefix}.ssl.truststore.location`] = ssl.truststoreLocation;
        if (ssl.truststorePassword !== undefined) {
          props[`${prefix}.ssl.truststore.password`] = ssl.truststorePassword;
        }
      }
      props[`${prefix}.ssl.client.auth`] = ssl.clientAuth ?? "none";
    }
  }
  if (sasl) {
    for (const [user, password] of Object.entries(sasl.users)) {
      if (!SASL_SAFE.test(user) || !SASL_SAFE.test(password)) {
        throw new Error(
          `startBroker: SASL user ${
            JSON.stringify(user)
          } or its password contains white space, a quote, a backslash, ",", "=", "[" or "]"`,
        );
      }
    }
  }
  return props;
}

/** `kafka-storage format --add-scram` arguments for the SCRAM mechanisms and users. */
function addScramArgs(sasl: BrokerSasl | undefined): string[] {
  const args: string[] = [];
  for (const m of sasl?.mechanisms ?? []) {
    if (!m.startsWith("SCRAM-")) continue;
    for (const [user, password] of Object.entries(sasl?.users ?? {})) {
      args.push("--add-scram", `${m}=[name=${user},password=${password}]`);
    }
  }
  return args;
}

/** A random Kafka cluster id: 16 random bytes, base64url without padding, not starting with "-". */
export function randomClusterId(): string {
  for (;;) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const id = btoa(String.fromCharCode(...bytes))
      .replaceAll("+", "-")
      .replaceAll("/", "_")
      .replace(/=+$/, "");
    if (!id.startsWith("-") && bytes.some((b) => b !== 0)) return id;
  }
}

/**
 * The watchdog (`sh`, leader of the broker's own session / process group).
 * Args: $1 pid to watch (the Deno process), $2 log file, $3 pid file, $4 directory to remove
 * if the watched process is gone when java has exited ("" for none), rest: the java command.
 * - runs the command in the background, output appended to the log file;
 * - a background subshell (ignoring TERM/INT/HUP) polls the watched pid once a second; when it
 *   is gone it sends SIGTERM to the whole group, then SIGKILL 10 s later;
 * - the watchdog forwards TERM/INT/HUP to java and exits with java's exit status once java has
 *   exited (killing the poller), removing the broker directory if the Deno process is gone.
 */
const WATCHDOG = `
watch_pid=$1; log=$2; pidfile=$3; orphan_rm=$4; shift 4
exec >>"$log" 2>&1 </dev/null
"$@" &
child=$!
echo "$child" > "$pidfile"
(
  trap '' TERM INT HUP
  while kill -0 "$watch_pid" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
  if kill -0 "$child" 2>/dev/null; then
    echo "[broker watchdog] process $watch_pid that started the broker is gone: stopping Kafka"
    kill -TERM 0
    sleep 10
    kill -KILL 0
  fi
) &
poller=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
while :; do
  wait "$child"
  rc=$?
  kill -0 "$child" 2>/dev/null || break
done
kill -KILL "$poller" 2>/dev/null
if [ -n "$orphan_rm" ] && ! kill -0 "$watch_pid" 2>/dev/null; then rm -rf "$orphan_rm"; fi
exit "$rc"
`;

function serverProperties(
  o: {
    port: number;
    controllerPort: number;
    dataDir: string;
    extra: Record<string, string | number | boolean>;
    secure?: { listeners: PlacedListener[]; props: Record<string, string> };
    advertisedPort?: number | undefined;
  },
): string {
  const secure = o.secure?.listeners ?? [];
  const listeners = secure.map((l) => `,${l.name}://127.0.0.1:${l.port}`).join("");
  const protocols = secure.map((l) => `,${l.name}:${l.protocol}`).join("");
  const props: Record<string, string | number | boolean> = {
    "process.roles": "broker,controller",
    "node.id": 1,
    "controller.quorum.bootstrap.servers": `127.0.0.1:${o.controllerPort}`,
    "listeners":
      `PLAINTEXT://127.0.0.1:${o.port},CONTROLLER://127.0.0.1:${o.controllerPort}${listeners}`,
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${o.advertisedPort ?? o.port}${listeners}`,
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": `PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${protocols}`,
    "log.dirs": o.dataDir,
    // Tests must create their topics explicitly.
    "auto.create.topics.enable": false,
    "num.partitions": 1,
    "default.replication.factor": 1,
    // Single node: every internal topic has one replica; few partitions keep startup cheap.
    "offsets.topic.replication.factor": 1,
    "offsets.topic.num.partitions": 1,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.state.log.num.partitions": 1,
    "share.coordinator.state.topic.replication.factor": 1,
    "share.coordinator.state.topic.min.isr": 1,
    "share.coordinator.state.topic.num.partitions": 1,
    "group.initial.rebalance.delay.ms": 0,
    // Room for 1 MiB file chunks plus headers / batch overhead.
    "message.max.bytes": 16 * 1024 * 1024,
    "replica.fetch.max.bytes": 16 * 1024 * 1024,
    "socket.request.max.bytes": 128 * 1024 * 1024,
    // Gentle on a 2-core machine.
    "num.network.threads": 2,
    "num.io.threads": 2,
    "num.recovery.threads.per.data.dir": 1,
    "background.threads": 2,
    "log.retention.check.interval.ms": 300000,
    ...o.secure?.props,
    ...o.extra,
  };
  return Object.entries(props).map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
}

function log4jProperties(level: string): string {
  return [
    "status = warn",
    "appender.out.type = Console",
    "appender.out.name = OUT",
    "appender.out.layout.type = PatternLayout",
    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
    `rootLogger.level = ${level}`,
    "rootLogger.appenderRef.out.ref = OUT",
    // The most chatty loggers stay at WARN unless asked for more.
    "logger.state.name = state.change.logger",
    `logger.state.level = ${level === "INFO" ? "WARN" : level}`,
    "logger.kafkaLog.name = org.apache.kafka.storage.internals.log",
    `logger.kafkaLog.level = ${level === "INFO" ? "WARN" : level}`,
    "",
  ].join("\n");
}

async function tail(path: string, lines = 60): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no broker log)";
  }
}

/** The ERROR / FATAL lines of the broker log (with a following exception line), at most 20. */
async function errorLines(path: string): Promise<string> {
  let lines: string[];
  try {
    lines = (await Deno.readTextFile(path)).split("\n");
  } catch {
    return "";
  }
  const picked: string[] = [];
  lines.forEach((line, i) => {
    if (/\] (ERROR|FATAL) /.test(line)) {
      picked.push(line);
      const next = lines[i + 1];
      if (next !== undefined && /^\S+(Exception|Error)\b/.test(next)) picked.push(next);
    }
  });
  return picked.slice(0, 20).join("\n");
}

async function tcpOpen(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** One metadata round trip with kafkajs (no retries); also creates `__consumer_offsets`. */
async function brokerAnswers(bootstrap: string, warmGroupCoordinator: boolean): Promise<boolean> {
  const kafka = new Kafka({
    clientId: "test-broker-probe",
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2000,
    requestTimeout: 5000,
    retry: { retries: warmGroupCoordinator ? 8 : 0, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0) return false;
    if (warmGroupCoordinator) {
      // Finding a group coordinator makes the broker create __consumer_offsets now, so the first
      // consumer group in a test does not wait for (and log) COORDINATOR_NOT_AVAILABLE.
      await admin.describeGroups(["test-broker-warmup"]);
    }
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Resident set size of a process in bytes (`ps -o rss=`), `undefined` if there is none. */
export async function processRssBytes(pid: number): Promise<number | undefined> {
  const out = await new Deno.Command("ps", {
    args: ["-o", "rss=", "-p", String(pid)],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const kib = Number(decode(out.stdout).trim());
  return out.success && kib > 0 ? kib * 1024 : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Start a single-node KRaft Kafka broker on 127.0.0.1 and wait until it answers.
 * Throws (after printing the tail of the broker log) if it does not within the timeout.
 */
export async function startBroker(options: StartBrokerOptions = {}): Promise<Broker> {
  const t0 = performance.now();
  const log = options.log ?? console.error;
  const libs = await ensureKafkaJars(log);
  const tJars = performance.now();

  let [port, controllerPort] = twoFreePorts();
  if (options.port !== undefined) port = options.port;
  if (options.controllerPort !== undefined) controllerPort = options.controllerPort;
  const bootstrapServers = `127.0.0.1:${port}`;
  const wanted = options.listeners ?? [];
  const spare = freePorts(wanted.filter((l) => l.port === undefined).length)
    .filter((p) => p !== port && p !== controllerPort);
  const secureListeners: PlacedListener[] = wanted.map((l) => ({
    name: l.name,
    protocol: l.protocol,
    port: l.port ?? spare.shift() ?? freePort(),
    ssl: l.ssl ?? options.ssl,
  }));
  const secureProps = securityProperties(secureListeners, options.sasl);
  const addresses: Record<string, string> = { PLAINTEXT: bootstrapServers };
  for (const l of secureListeners) addresses[l.name] = `127.0.0.1:${l.port}`;
  const dir = await Deno.makeTempDir({ prefix: "kafka-test-broker-" });
  const dataDir = options.dataDir ?? `${dir}/data`;
  let formatted = false;
  try {
    formatted = (await Deno.stat(`${dataDir}/meta.properties`)).isFile;
  } catch {
    // a new data folder
  }
  const logFile = `${dir}/broker.log`;
  const cleanup = async () => {
    if (!options.keepDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  const clusterId = randomClusterId();
  const configFile = `${dir}/server.properties`;
  await Deno.writeTextFile(
    configFile,
    serverProperties({
      port,
      controllerPort,
      dataDir,
      extra: options.extraProperties ?? {},
      advertisedPort: options.advertisedPort,
      ...(secureListeners.length > 0
        ? { secure: { listeners: secureListeners, props: secureProps } }
        : {}),
    }),
  );
  await Deno.writeTextFile(
    `${dir}/log4j2.properties`,
    log4jProperties(options.brokerLogLevel ?? "INFO"),
  );
  await Deno.writeTextFile(`${dir}/log4j2-tools.properties`, log4jProperties("WARN"));

  const jvm = [
    "-cp",
    `${libs}/*`,
    `-Xmx${options.maxHeap ?? "512m"}`,
    "-Xms64m",
    "-Xss512k",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:CICompilerCount=1",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
  ];

  // 1. Format the storage (a single-voter controller quorum: --standalone), unless it is reused.
  let format: Deno.CommandOutput | undefined;
  if (!formatted) {
    try {
      format = await new Deno.Command("java", {
        args: [
          ...jvm,
          `-Dlog4j2.configurationFile=${dir}/log4j2-tools.properties`,
          "kafka.tools.StorageTool",
          "format",
          "--cluster-id",
          clusterId,
          "--config",
          configFile,
          "--standalone",
          ...addScramArgs(options.sasl),
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (e) {
      await cleanup();
      if (e instanceof Deno.errors.NotFound) {
        throw new Error("Cannot start the Kafka broker: `java` (17 or newer) is not on the PATH.");
      }
      throw e;
    }
  }
  if (format && !format.success) {
    await cleanup();
    throw new Error(
      `Formatting Kafka storage failed (exit code ${format.code}):\n` +
        (decode(format.stdout) + decode(format.stderr)).trim().split("\n").slice(-40).join("\n"),
    );
  }

  // 2. Start the broker behind the watchdog, in its own session / process group.
  const pidFile = `${dir}/java.pid`;
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      WATCHDOG,
      "kafka-broker-watchdog",
      String(Deno.pid),
      logFile,
      pidFile,
      options.keepDir ? "" : dir,
      "java",
      ...jvm,
      `-Dlog4j2.configurationFile=${dir}/log4j2.properties`,
      `-Dkafka.logs.dir=${dir}`,
      "kafka.Kafka",
      configFile,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true, // setsid(): the watchdog leads a new session and process group
  }).spawn();
  const pgid = child.pid;
  let exited: Deno.CommandStatus | undefined;
  const statusPromise = child.status.then((s) => {
    exited = s;
    return s;
  });

  const killGroup = (signal: Deno.Signal) => {
    try {
      Deno.kill(-pgid, signal);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e; // NotFound (ESRCH): group already gone
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 10_000): Promise<void> => {
    stopping ??= (async () => {
      if (exited === undefined) {
        killGroup("SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = await Promise.race([
          statusPromise.then(() => false),
          new Promise<boolean>((r) => timer = setTimeout(() => r(true), graceMs)),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          log(`Kafka broker did not stop within ${graceMs} ms: killing it (SIGKILL).`);
        }
      }
      // Also reaches a java that outlived the watchdog, and the watchdog's poller.
      killGroup("SIGKILL");
      await statusPromise;
      await cleanup();
    })();
    return stopping;
  };

  // 3. Wait until it answers.
  const timeoutMs = options.startupTimeoutMs ?? 90_000;
  const deadline = performance.now() + timeoutMs;
  let ready = false;
  while (performance.now() < deadline) {
    if (exited !== undefined) break;
    if (await tcpOpen(port)) {
      ready = await brokerAnswers(bootstrapServers, false);
      if (ready) break;
    }
    await sleep(200);
  }
  if (ready) ready = await brokerAnswers(bootstrapServers, true);
  if (!ready) {
    const why = exited !== undefined
      ? `the broker process exited with code ${exited.code}`
      : `it did not answer on ${bootstrapServers} within ${timeoutMs} ms`;
    const logTail = await tail(logFile, 40);
    const errors = await errorLines(logFile);
    await stop(3000);
    throw new Error(
      `Kafka ${KAFKA_VERSION} test broker failed to start: ${why}.\n` +
        (errors ? `--- ERROR lines of the broker log ---\n${errors}\n` : "") +
        `--- last lines of the broker log (${logFile}) ---\n${logTail}`,
    );
  }

  const javaPid = Number((await Deno.readTextFile(pidFile)).trim());
  const startupMs = performance.now() - t0;
  const jarsMs = tJars - t0;
  log(
    `Kafka ${KAFKA_VERSION} broker ready at ${bootstrapServers}` +
      secureListeners.map((l) => `, ${l.name} (${l.protocol}) at 127.0.0.1:${l.port}`).join("") +
      ` in ` +
      `${(startupMs / 1000).toFixed(1)} s` +
      (jarsMs > 1000 ? ` (of which ${(jarsMs / 1000).toFixed(1)} s fetching jars)` : "") +
      ` (pid ${javaPid}, log ${logFile})`,
  );

  return {
    bootstrapServers,
    addresses,
    clusterId,
    dir,
    logFile,
    pgid,
    javaPid,
    startupMs,
    exited: statusPromise,
    rssBytes: () => processRssBytes(javaPid),
    logTail: (lines = 60) => tail(logFile, lines),
    stop,
  };
}
