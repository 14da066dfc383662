/**
 * `DataFileDownloadDirectory`: the command line. This is the only module that reads `Deno.args`
 * and standard input, handles signals and exits.
 *
 * @module
 */
import denoConfig from "./deno.json" with { type: "json" };
import {
  type CliOptions,
  EXIT_CODES,
  helpText,
  parseArgs,
  PROGRAM,
  usage,
  UsageError,
  versionText,
} from "./src/config/args.ts";
import { toHex } from "./src/wire/chunk_codec.ts";
import { ConfigError } from "./src/config/config_file.ts";
import { checkReport, readCommands, shutdownSummary } from "./src/console/console.ts";
import { CRASH_ENV, crashHookFromSpec } from "./src/store/crash_points.ts";
import type { CrashHook } from "./src/store/state_file.ts";
import { DrainWatch, lagText, type OffsetsAdmin, partitionLags } from "./src/kafka/drain.ts";
import {
  permissionMessage,
  type RefusedPermission,
  refusedPermission,
} from "./src/store/io_errors.ts";
import { BatchedWriter } from "./src/console/batched_writer.ts";
import { Level, Logger } from "./src/console/logger.ts";
import { quietKafkajsTimerWarnings } from "./src/console/process_warnings.ts";
import { LOG_FILE_NAME, STATE_DIR_NAME } from "./src/store/safe_path.ts";
import { type MetricsSnapshot, serveMetrics } from "./src/console/metrics.ts";
import { RateMeter } from "./src/console/rate_meter.ts";
import { StatusLine } from "./src/console/status_line.ts";
import { drainReport, runSummary, writeRunSummary } from "./src/console/run_summary.ts";
import { resolveSettings, type RunSettings } from "./src/config/settings.ts";
import type { Kafka } from "kafkajs";
import { dirname, join, resolve } from "node:path";

/** Exit status of a run stopped dead by an armed crash point. */
const CRASH_EXIT_CODE = 86;

/** Standard error: log lines in one write per turn of the event loop, anything else at once. */
const stderr = new BatchedWriter((bytes) => Deno.stderr.writeSync(bytes));
const printErr = (text: string) => stderr.writeNow(text);

/**
 * The modules that load kafkajs, which reads environment variables as it loads (`NODE_ENV`):
 * imported once the arguments and the config are read, so that a refused `--allow-env` is a clear
 * error rather than a failure to load this module.
 */
async function loadKafkaModules() {
  const [{ Downloader }, { Telemetry }, { createKafka }, { CompressionTypes, Partitioners }] =
    await Promise.all([
      import("./src/kafka/downloader.ts"),
      import("./src/kafka/telemetry.ts"),
      import("./src/kafka/kafka_client.ts"),
      import("kafkajs"),
    ]);
  return { Downloader, Telemetry, createKafka, CompressionTypes, Partitioners };
}

/** Directories whose refused paths are reported as the directory (see permissionMessage). */
const permissionDirs: string[] = [];

/** The one-line message for an error that is (or wraps) a refused Deno permission, if it is one. */
function permissionProblem(error: unknown): string | undefined {
  const refused = refusedPermission(error);
  return refused && permissionMessage(refused, permissionDirs);
}

/**
 * Asks for network access to every bootstrap server up front (Deno prompts on a terminal unless
 * `--no-prompt`): without it the program would only wait for a broker it may not reach.
 */
function refusedBroker(brokers: string[]): RefusedPermission | undefined {
  for (const broker of brokers) {
    const host = broker.replace(/^[a-z]+:\/\//i, "");
    const descriptor = { name: "net", host } as const;
    let state = Deno.permissions.querySync(descriptor).state;
    if (state === "prompt") state = Deno.permissions.requestSync(descriptor).state;
    if (state !== "granted") return { kind: "net", target: host, flag: "--allow-net" };
  }
  return undefined;
}

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
    return EXIT_CODES.usage;
  }
  if (parsed.help) {
    console.log(helpText());
    return 0;
  }
  if (parsed.version) {
    const kafkajs = denoConfig.imports.kafkajs.replace(/^npm:kafkajs@/, "");
    console.log(versionText(denoConfig.version, Deno.version, kafkajs));
    return 0;
  }
  const options = parsed.options;
  let settings;
  try {
    settings = await resolveSettings(options, (name) => Deno.env.get(name), Deno.cwd());
  } catch (error) {
    const message = permissionProblem(error) ??
      (error instanceof ConfigError || error instanceof Deno.errors.PermissionDenied
        ? error.message
        : undefined);
    if (message === undefined) throw error;
    printErr(`${PROGRAM}: error: ${message}\n`);
    return 1;
  }
  permissionDirs.push(settings.outputDir);
  const brokerRefused = refusedBroker(settings.kafka.client.brokers as string[]);
  if (brokerRefused) {
    printErr(`${PROGRAM}: error: ${permissionMessage(brokerRefused)}\n`);
    return 1;
  }
  const { Downloader, Telemetry, createKafka, CompressionTypes, Partitioners } =
    await loadKafkaModules();
  // On a terminal, log lines scroll above a live status line (see below).
  let statusLine: StatusLine | undefined;
  const logger = new Logger({
    name: PROGRAM,
    streamLevel: options.loggerStreamLevel,
    stream: (line) => statusLine ? statusLine.print(line) : stderr.write(line),
    streamFormat: options.loggerStreamFormat,
    fileLevel: options.loggerFileLevel,
    filePath: await logFilePath(options.loggerFilePath, settings.outputDir),
  });
  for (const warning of settings.kafka.warnings) logger.warning(warning);
  const kafka = createKafka({ clientId: PROGRAM, ...settings.kafka.client }, logger);
  // Crash tests only: stop dead at a chosen step, as a power cut would (see src/store/crash_points.ts).
  let crashSpec: string | undefined;
  try {
    // Asked only when granted, so that a narrowed --allow-env never prompts for it.
    const granted = Deno.permissions.querySync({ name: "env", variable: CRASH_ENV });
    crashSpec = granted.state === "granted" ? Deno.env.get(CRASH_ENV) : undefined;
  } catch {
    crashSpec = undefined; // not allowed to read it: not armed
  }
  let crashHook;
  try {
    crashHook = crashHookFromSpec(crashSpec, (point) => {
      printErr(`${PROGRAM}: ${CRASH_ENV}: stopping dead at ${point}\n`);
      Deno.exit(CRASH_EXIT_CODE);
    });
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    printErr(`${PROGRAM}: error: ${error.message}\n`);
    logger.close();
    return EXIT_CODES.usage;
  }
  if (options.rekeyTo !== undefined) {
    return await runRekeyer(options, settings, kafka, logger, crashHook);
  }
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
    ...(crashHook ? { crashHook } : {}),
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
  let requestStop: (reason: string) => void = () => {};
  const stopRequested = new Promise<string>((resolve) => (requestStop = resolve));
  // A permission refused anywhere (a broker the metadata names, a write) never clears by itself
  // and library code may only log it while it retries: stop with the message instead.
  let refusal: string | undefined;
  let lastErrorAt: number | null = null;
  logger.listener = (level, text) => {
    telemetry.capture(text);
    if (level >= Level.ERROR) lastErrorAt = Date.now();
    if (refusal === undefined && level >= Level.WARNING) {
      refusal = permissionProblem(text);
      if (refusal !== undefined) requestStop("a permission is missing");
    }
  };
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
  const onSignal = (name: string) => () => requestStop(name);
  const signals = [["SIGINT", onSignal("Ctrl-C")], ["SIGTERM", onSignal("SIGTERM")]] as const;
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  // Offsets of the group (lag in `check`, drain mode, the summary), asked with a timeout.
  const admin = kafka.admin();
  let adminReady: Promise<void> | undefined;
  const lags = async () => {
    adminReady ??= admin.connect();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        adminReady.then(() =>
          partitionLags(admin as OffsetsAdmin, options.consumerTopicName, settings.groupId)
        ),
        new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 5000)),
      ]);
    } catch {
      adminReady = undefined;
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  };
  const rate = new RateMeter(() => downloader.status().bytesProcessed);
  let metrics: { url: string; shutdown: () => Promise<void> } | undefined;
  let lagsSeen: MetricsSnapshot["lags"];
  let lagPoll: ReturnType<typeof setInterval> | undefined;
  if (options.metricsPort !== undefined) {
    try {
      metrics = serveMetrics({
        hostname: options.metricsHost,
        port: options.metricsPort,
        snapshot: () => ({
          status: downloader.status(),
          health: downloader.health(),
          lags: lagsSeen,
          lastErrorAt,
          now: Date.now(),
        }),
      });
    } catch (error) {
      const message = permissionProblem(error) ??
        `Cannot serve metrics on ${options.metricsHost}:${options.metricsPort}: ${
          error instanceof Error ? error.message : error
        }`;
      printErr(`${PROGRAM}: error: ${message}\n`);
      logger.close();
      return EXIT_CODES.error;
    }
    logger.info(`Metrics at ${metrics.url}/metrics, health at ${metrics.url}/healthz`);
  }
  if (Deno.stderr.isTerminal() && options.loggerStreamFormat === "text") {
    statusLine = new StatusLine({
      write: printErr,
      facts: () => ({
        status: downloader.status(),
        bytesPerSecond: rate.perSecond(),
        lag: lagsSeen?.reduce((sum, p) => sum + p.lag, 0),
      }),
      columns: () => {
        try {
          return Deno.consoleSize().columns;
        } catch {
          return 0;
        }
      },
    });
  }
  if (metrics || statusLine) {
    const poll = () => lags().then((found) => lagsSeen = found ?? lagsSeen);
    lagPoll = setInterval(poll, 5000);
    poll();
  }
  readCommands(Deno.stdin.readable, (command) => {
    if (command === "quit") requestStop("quit");
    else {
      const report = checkReport(downloader.status());
      lags().then((found) => {
        const extra = [rate.text()];
        if (found) extra.push(lagText(found));
        logger.info(`${report}\n${extra.join("; ")}`);
      });
    }
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

  let code: number = EXIT_CODES.ok;
  let drain: DrainWatch | undefined;
  let drainMarks: Map<number, number> | undefined;
  const startDrain = async () => {
    if (!options.exitWhenDone) return;
    adminReady ??= admin.connect();
    await adminReady;
    drain = new DrainWatch({
      admin: admin as OffsetsAdmin,
      topic: options.consumerTopicName,
      groupId: settings.groupId,
    });
    drainMarks = await drain.begin();
    const records = [...drainMarks.values()].reduce((sum, n) => sum + n, 0);
    logger.info(
      `Drain mode: exiting once the group has consumed every partition up to its end now (${
        [...drainMarks].map(([p, end]) => `partition ${p}: ${end}`).join(", ")
      }; ${records} records in all)`,
    );
    drain.done().then((done) => done && requestStop("drained"));
  };
  const started = downloader.start().then(() => telemetry.start()).then(startDrain).then(
    () => ({ started: true as const }),
    (error: unknown) => ({ error }),
  );
  const outcome = await Promise.race([started, stopRequested.then((reason) => ({ reason }))]);
  let stopReason = "error";
  if ("error" in outcome) {
    statusLine?.stop(); // from here on, plain log lines
    const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    refusal ??= permissionProblem(outcome.error);
    if (refusal === undefined) {
      logger.error(message.startsWith("Cannot") ? message : `Cannot start: ${message}`);
    }
    code = EXIT_CODES.error;
  } else {
    stopReason = "reason" in outcome ? outcome.reason : await stopRequested;
    statusLine?.stop(); // from here on, plain log lines
    logger.info(`Shutting down (${stopReason}): finishing and committing the current batches`);
  }
  drain?.stop();
  clearInterval(alive);
  clearInterval(lagPoll);
  rate.stop();
  await downloader.stop();
  const status = downloader.status();
  if (stopReason === "drained") {
    const verdict = drainReport(status);
    if (verdict.complete) logger.info(verdict.text);
    else {
      logger.warning(verdict.text);
      code = EXIT_CODES.incomplete;
    }
  }
  if (options.heartbeatTopicName !== undefined) logger.info("Cleaning up heartbeat producer");
  if (options.logTopicName !== undefined) logger.info("Cleaning up log producer");
  await telemetry.stop();
  logger.info(`File reconstructor writing to ${settings.outputDir} shut down`);
  const end = new Date();
  logger.info(shutdownSummary(status, start, end));
  if (refusal !== undefined) code = EXIT_CODES.error;
  if (options.summaryJson !== undefined) {
    const summary = runSummary({
      program: PROGRAM,
      version: denoConfig.version,
      topic: options.consumerTopicName,
      consumerGroup: settings.groupId,
      outputDir: settings.outputDir,
      started: start,
      ended: end,
      reason: refusal !== undefined ? "error" : stopReason,
      exitCode: code,
      status,
      lags: adminReady ? await lags() : undefined,
      drainMarks,
    });
    const path = resolve(options.summaryJson);
    await writeRunSummary(path, summary).then(
      () => logger.info(`Summary written to ${path}`),
      (error) => {
        logger.error(
          `Cannot write the summary to ${path}: ${error instanceof Error ? error.message : error}`,
        );
        if (code === EXIT_CODES.ok) code = EXIT_CODES.error;
      },
    );
  }
  await metrics?.shutdown();
  if (adminReady) await admin.disconnect().catch(() => {});
  for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
  logger.close();
  if (refusal !== undefined) {
    printErr(`${PROGRAM}: error: ${refusal}\n`);
    return EXIT_CODES.error;
  }
  return code;
}

/**
 * `--rekey_to`: forwards the topic's records to another one keyed by file, until `q`, Ctrl-C or
 * SIGTERM. Its transactional ids are kept in the output directory, so that a restart fences the
 * transactions a killed run left open.
 */
async function runRekeyer(
  options: CliOptions,
  settings: RunSettings,
  kafka: Kafka,
  logger: Logger,
  crashHook: CrashHook | undefined,
): Promise<number> {
  const { Rekeyer } = await import("./src/kafka/rekeyer.ts");
  const idFile = join(settings.outputDir, STATE_DIR_NAME, "rekey-id");
  let id: string;
  try {
    id = (await Deno.readTextFile(idFile)).trim();
  } catch {
    id = `${PROGRAM}-rekey-${crypto.randomUUID()}`;
    await Deno.mkdir(dirname(idFile), { recursive: true });
    await Deno.writeTextFile(idFile, id + "\n");
  }
  const rekeyer = new Rekeyer({
    kafka,
    from: options.consumerTopicName,
    to: options.rekeyTo!,
    groupId: settings.groupId,
    consumers: options.nThreads,
    logger,
    transactionalIdPrefix: id,
    consumerConfig: settings.kafka.consumer,
    ...(crashHook ? { crashHook } : {}),
  });
  let requestStop: (reason: string) => void = () => {};
  const stopRequested = new Promise<string>((resolve) => (requestStop = resolve));
  const signals = [["SIGINT", () => requestStop("Ctrl-C")], [
    "SIGTERM",
    () => requestStop("SIGTERM"),
  ]] as const;
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  const report = () => {
    const s = rekeyer.status();
    return `${s.forwarded} records forwarded in ${s.batches} transactions (${s.unkeyed} not chunks, forwarded with their own key)`;
  };
  readCommands(Deno.stdin.readable, (command) => {
    if (command === "quit") requestStop("quit");
    else logger.info(report());
  }).catch(() => {});
  logger.info(
    `Re-keying the records of "${options.consumerTopicName}" into "${options.rekeyTo}" (keyed by file) with ${options.nThreads} consumer${
      options.nThreads === 1 ? "" : "s"
    } (consumer group ${settings.groupId})`,
  );
  let code: number = EXIT_CODES.ok;
  const admin = kafka.admin();
  let drain: DrainWatch | undefined;
  const startDrain = async () => {
    if (!options.exitWhenDone) return;
    await admin.connect();
    drain = new DrainWatch({
      admin: admin as OffsetsAdmin,
      topic: options.consumerTopicName,
      groupId: settings.groupId,
    });
    const marks = await drain.begin();
    logger.info(
      `Drain mode: exiting once the re-keyers have forwarded every partition up to its end now (${
        [...marks].map(([p, end]) => `partition ${p}: ${end}`).join(", ")
      })`,
    );
    drain.done().then((done) => done && requestStop("drained"));
  };
  const started = rekeyer.start().then(startDrain).then(() => null, (error: unknown) => error);
  const outcome = await Promise.race([started, stopRequested.then(() => null)]);
  if (outcome !== null) {
    logger.error(`Cannot re-key: ${outcome instanceof Error ? outcome.message : outcome}`);
    code = EXIT_CODES.error;
  } else {
    logger.info(`Shutting down (${await stopRequested}): finishing the current transactions`);
  }
  drain?.stop();
  await rekeyer.stop();
  if (drain) await admin.disconnect().catch(() => {});
  logger.info(report());
  for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
  logger.close();
  return code;
}

/** Ends the process with the one-line message when `error` is a refused permission. */
function exitOnRefusal(error: unknown): void {
  const message = permissionProblem(error);
  if (message === undefined) return;
  printErr(`${PROGRAM}: error: ${message}\n`);
  Deno.exit(1);
}

if (import.meta.main) {
  quietKafkajsTimerWarnings((line) => printErr(`${PROGRAM}: ${line}\n`));
  // A refused permission is a setup problem: one line and exit 1, wherever it is thrown.
  globalThis.addEventListener("unhandledrejection", (event) => exitOnRefusal(event.reason));
  globalThis.addEventListener("error", (event) => exitOnRefusal(event.error));
  // Log lines still waiting go out before the process ends, however it ends.
  globalThis.addEventListener("unload", () => stderr.flush());
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    stderr.flush();
    exitOnRefusal(error);
    throw error;
  }
  stderr.flush();
  Deno.exit(code);
}
