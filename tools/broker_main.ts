/**
 * `deno task broker`: run one real Kafka test broker in the foreground until Ctrl-C / SIGTERM.
 *
 * Useful to run the tests repeatedly against one broker (skipping the broker startup each time):
 *
 * ```sh
 * deno task broker                                   # terminal 1
 * KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:NNNN deno task test   # terminal 2
 * ```
 *
 * Options: `--port N` fixes the PLAINTEXT listener port (default: a free port).
 *
 * @module
 */

import { startBroker, type StartBrokerOptions } from "./broker.ts";

function parseArgs(args: string[]): StartBrokerOptions {
  const options: StartBrokerOptions = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--port" || arg?.startsWith("--port=")) {
      const value = arg === "--port" ? args[++i] : arg.slice("--port=".length);
      const port = Number(value);
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw new Error(`--port needs a port number, got ${value}`);
      }
      options.port = port;
    } else if (arg === "-h" || arg === "--help") {
      console.log("usage: deno task broker [--port N]");
      Deno.exit(0);
    } else {
      throw new Error(`unknown argument ${arg} (usage: deno task broker [--port N])`);
    }
  }
  return options;
}

if (import.meta.main) {
  let options: StartBrokerOptions;
  try {
    options = parseArgs(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const broker = await startBroker(options);

  let stopping = false;
  let firstSignalAt = 0;
  const shutdown = async (signal: string) => {
    if (stopping) {
      // `deno task` forwards the terminal's Ctrl-C, so one Ctrl-C can arrive twice: only a
      // second one a moment later means "leave now" (the broker's watchdog then kills it).
      if (firstSignalAt > 0 && performance.now() - firstSignalAt > 1500) {
        console.log(`${signal} again: exiting without waiting for the broker.`);
        Deno.exit(130);
      }
      return;
    }
    stopping = true;
    firstSignalAt = performance.now();
    console.log(`\n${signal}: stopping the Kafka broker...`);
    await broker.stop();
    console.log("Kafka broker stopped, its data removed.");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => void shutdown("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));

  // If the broker dies on its own, say so and exit non-zero.
  broker.exited.then(async (status) => {
    if (stopping) return;
    stopping = true;
    console.error(
      `Kafka broker exited unexpectedly (code ${status.code}). Last log lines:\n` +
        (await broker.logTail(40)),
    );
    await broker.stop();
    Deno.exit(1);
  });

  const rss = await broker.rssBytes();
  console.log(`Kafka broker ready at ${broker.bootstrapServers}`);
  console.log(
    [
      `  startup ${(broker.startupMs / 1000).toFixed(1)} s` +
      (rss === undefined ? "" : `, broker RSS ${(rss / 1024 / 1024).toFixed(0)} MiB`) +
      `, java pid ${broker.javaPid}`,
      `  config, data and log in ${broker.dir}`,
      `  run the tests against it:  KAFKA_BOOTSTRAP_SERVERS=${broker.bootstrapServers} deno task test`,
      `  press Ctrl-C to stop it (its data is deleted).`,
    ].join("\n"),
  );
}
