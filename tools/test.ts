/**
 * `deno task test [deno test args...]`: run the test suite against a real Kafka broker.
 *
 * - If `KAFKA_BOOTSTRAP_SERVERS` is set, the tests use that broker (e.g. one started with
 *   `deno task broker`).
 * - Otherwise a throw-away single-node broker is started with tools/broker.ts (Kafka's jars are
 *   fetched with Maven the first time), and stopped when the tests end, fail, or this process
 *   gets SIGINT / SIGTERM.
 *
 * `deno test` runs as a child with explicit permissions (see {@linkcode TEST_PERMISSIONS}) and
 * `KAFKA_BOOTSTRAP_SERVERS` and a `TMPDIR` of its own (removed at the end) in its environment;
 * extra arguments are passed through, e.g.
 * `deno task test tests/broker_test.ts` or `deno task test --filter roundtrip`.
 * The exit code is `deno test`'s.
 *
 * Note: `deno test`'s default globs match any file named `test.ts`; deno.json's `test.include`
 * (src/, tests/) keeps this file from being collected as a test module.
 *
 * @module
 */

import { type Broker, startBroker } from "./broker.ts";

/** Permissions the test suite runs with (explicit, not `-A`). */
export const TEST_PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-net=127.0.0.1,localhost",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
  "--allow-ffi",
];

if (import.meta.main) {
  let broker: Broker | undefined;
  let bootstrap = Deno.env.get("KAFKA_BOOTSTRAP_SERVERS")?.trim();
  if (bootstrap) {
    console.error(`Using the Kafka broker at ${bootstrap} (KAFKA_BOOTSTRAP_SERVERS).`);
  } else {
    try {
      broker = await startBroker();
    } catch (e) {
      console.error(`error: ${(e as Error).message}`);
      Deno.exit(1);
    }
    bootstrap = broker.bootstrapServers;
  }

  // Every temporary file and folder of the run (the tests', the CLI's, OpenMSIStream's) goes in
  // one folder, removed at the end whatever happened: /tmp is as clean after the run as before.
  const scratch = await Deno.makeTempDir({ prefix: "dfdd-test-run-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", ...TEST_PERMISSIONS, ...Deno.args],
    env: {
      TMPDIR: scratch,
      KAFKA_BOOTSTRAP_SERVERS: bootstrap,
      // kafkajs 2.x warns about its changed default partitioner on every producer.
      KAFKAJS_NO_PARTITIONER_WARNING: "1",
    },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();

  let signalled: Deno.Signal | undefined;
  const onSignal = (signal: Deno.Signal) => () => {
    if (signalled !== undefined) return;
    signalled = signal;
    // Ctrl-C already reaches `deno test` (same process group); SIGTERM may have come to us only.
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  };
  Deno.addSignalListener("SIGINT", onSignal("SIGINT"));
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM"));

  let code = 1;
  try {
    const status = await child.status;
    code = status.signal !== null ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch((error) =>
      console.error(`Cannot remove the tests' temporary folder ${scratch}: ${error.message}`)
    );
    if (broker !== undefined) {
      const rss = await broker.rssBytes();
      if (rss !== undefined) {
        console.error(
          `Kafka broker RSS at the end of the tests: ${(rss / 2 ** 20).toFixed(0)} MiB`,
        );
      }
      await broker.stop();
      console.error("Kafka broker stopped.");
    }
  }
  if (signalled !== undefined && code === 0) code = 128 + signalNumber(signalled);
  Deno.exit(code);
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGABRT: 6,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 1;
}
