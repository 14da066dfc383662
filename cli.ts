/**
 * `DataFileDownloadDirectory`: the command line. This is the only module that reads `Deno.args`
 * and standard input, handles signals and exits.
 *
 * @module
 */
import { helpText, parseArgs, PROGRAM, usage, UsageError } from "./src/args.ts";
import { toHex } from "./src/chunk_codec.ts";
import { ConfigError } from "./src/config_file.ts";
import { checkReport, readCommands, shutdownSummary } from "./src/console.ts";
import { Downloader } from "./src/downloader.ts";
import { CompressionTypes, Partitioners } from "kafkajs";
import { Telemetry } from "./src/telemetry.ts";
import { createKafka } from "./src/kafka_client.ts";
import { Logger } from "./src/logger.ts";
import { LOG_FILE_NAME } from "./src/safe_path.ts";
import { resolveSettings } from "./src/settings.ts";
import { dirname, join, resolve } from "node:path";
import process from "node:process";

const encoder = new TextEncoder();
const printErr = (text: string) => Deno.stderr.writeSync(encoder.encode(text));

async function logFilePath(given: string | undefined, outputDir: string): Promise<string> {
  if (given === undefined) return join(outputDir, LOG_FILE_NAME);
  const path = resolve(given);
  try {
    if ((await Deno.stat(path)).isDirectory) return join(path, LOG_FILE_NAME);
  } catch {
    await Deno.mkdir(dirname(path), { recursive: true });
  }
  return path;
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    printErr(`${usage()}\n${PROGRAM}: error: ${error.message}\n`);
    return 2;
  }
  if (parsed.help) {
    console.log(helpText());
    return 0;
  }
  const options = parsed.options;
  let settings;
  try {
    settings = await resolveSettings(options, (name) => Deno.env.get(name), Deno.cwd());
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof Deno.errors.PermissionDenied)) {
      throw error;
    }
    printErr(`${PROGRAM}: error: ${error.message}\n`);
    return 1;
  }
  const logger = new Logger({
    name: PROGRAM,
    streamLevel: options.loggerStreamLevel,
    stream: printErr,
    fileLevel: options.loggerFileLevel,
    filePath: await logFilePath(options.loggerFilePath, settings.outputDir),
  });
  for (const warning of settings.kafka.warnings) logger.warning(warning);
  const kafka = createKafka({ clientId: PROGRAM, ...settings.kafka.client }, logger);
  const downloader = new Downloader({
    kafka,
    topic: options.consumerTopicName,
    groupId: settings.groupId,
    consumers: options.nThreads,
    consumerConfig: settings.kafka.consumer,
    offsetReset: settings.kafka.offsetReset,
    outputDir: settings.outputDir,
    regex: options.downloadRegex,
    logger,
  });

  const programId = toHex(crypto.getRandomValues(new Uint8Array(6)));
  const codecs = {
    gzip: CompressionTypes.GZIP,
    snappy: CompressionTypes.Snappy,
    lz4: CompressionTypes.LZ4,
    zstd: CompressionTypes.ZSTD,
  };
  const telemetry = new Telemetry({
    producer: kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }),
    compression: settings.producerCompression && codecs[settings.producerCompression],
    heartbeat: options.heartbeatTopicName === undefined ? undefined : {
      topic: options.heartbeatTopicName,
      programId: options.heartbeatProgramId ?? programId,
      intervalSeconds: options.heartbeatIntervalSecs,
    },
    log: options.logTopicName === undefined ? undefined : {
      topic: options.logTopicName,
      programId: options.logProgramId ?? programId,
      intervalSeconds: options.logIntervalSecs,
    },
    counts: () => downloader.status(),
    onError: (message) => logger.warning(message),
  });
  logger.listener = (_level, text) => telemetry.capture(text);
  if (options.heartbeatTopicName !== undefined) {
    logger.info(
      `Heartbeat messages will be produced to the '${options.heartbeatTopicName}' topic every ${options.heartbeatIntervalSecs} seconds`,
    );
  }
  if (options.logTopicName !== undefined) {
    logger.info(
      `log messages will be produced to the '${options.logTopicName}' topic every ${options.logIntervalSecs} seconds`,
    );
  }

  const start = new Date();
  let requestStop: (reason: string) => void = () => {};
  const stopRequested = new Promise<string>((resolve) => (requestStop = resolve));
  const onSignal = (name: string) => () => requestStop(name);
  const signals = [["SIGINT", onSignal("Ctrl-C")], ["SIGTERM", onSignal("SIGTERM")]] as const;
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  readCommands(Deno.stdin.readable, (command) => {
    if (command === "quit") requestStop("quit");
    else logger.info(checkReport(downloader.status()));
  }).catch(() => {});

  logger.info(`Listening for files to reconstruct in ${settings.outputDir}`);
  logger.info(
    `Will reconstruct files from messages in the ${options.consumerTopicName} topic using ${options.nThreads} thread${
      options.nThreads === 1 ? "" : "s"
    } (consumer group ${settings.groupId}${
      settings.groupIdGenerated ? ", new for this run" : ""
    }; config ${settings.configSource})`,
  );
  const alive = options.updateSeconds > 0
    ? setInterval(() => logger.info("."), options.updateSeconds * 1000)
    : undefined;

  let code = 0;
  const started = downloader.start().then(() => telemetry.start()).then(
    () => ({ started: true as const }),
    (error: unknown) => ({ error }),
  );
  const outcome = await Promise.race([started, stopRequested.then((reason) => ({ reason }))]);
  if ("error" in outcome) {
    const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    logger.error(message.startsWith("Cannot") ? message : `Cannot start: ${message}`);
    code = 1;
  } else {
    const reason = "reason" in outcome ? outcome.reason : await stopRequested;
    logger.info(`Shutting down (${reason}): finishing and committing the current batches`);
  }
  clearInterval(alive);
  await downloader.stop();
  if (options.heartbeatTopicName !== undefined) logger.info("Cleaning up heartbeat producer");
  if (options.logTopicName !== undefined) logger.info("Cleaning up log producer");
  await telemetry.stop();
  logger.info(`File reconstructor writing to ${settings.outputDir} shut down`);
  logger.info(shutdownSummary(downloader.status(), start, new Date()));
  for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
  logger.close();
  return code;
}

if (import.meta.main) {
  // kafkajs 2.2.4 schedules a timer with a negative delay on every connection, which Node's timers
  // report as a TimeoutNegativeWarning; it is harmless and says nothing to a user.
  process.removeAllListeners("warning");
  process.on("warning", (warning) => {
    if (warning.name !== "TimeoutNegativeWarning") {
      printErr(`${PROGRAM}: ${warning.name}: ${warning.message}\n`);
    }
  });
  Deno.exit(await main(Deno.args));
}
