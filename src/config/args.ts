/**
 * The command line of `DataFileDownloadDirectory`, parsed as Python's argparse parses the
 * reference's: options in any order, `--opt value` or `--opt=value`, unambiguous prefixes of
 * long options, usage errors that print the usage line and exit with status 2.
 *
 * @module
 */
import { Level } from "../console/logger.ts";
import { compilePythonRegex } from "./python_regex.ts";

/** The program's name, as users type it. */
export const PROGRAM = "DataFileDownloadDirectory";

/** A command-line mistake: the CLI prints usage and this message, then exits with status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Log thresholds, as numbers (Python logging levels). */
export const LEVELS: Readonly<Record<string, number>> = {
  notset: 0,
  ...Object.fromEntries(Object.entries(Level).map(([name, value]) => [name.toLowerCase(), value])),
};

/** Parsed and validated command-line options. */
export interface CliOptions {
  outputDir: string;
  config: string;
  topicName: string;
  consumerTopicName: string;
  /** `undefined` when the flag is absent (the config's `group.id`, or a fresh id, is used). */
  consumerGroupId: string | undefined;
  nThreads: number;
  downloadRegex: RegExp | undefined;
  updateSeconds: number;
  loggerStreamLevel: number;
  loggerFileLevel: number;
  loggerFilePath: string | undefined;
  loggerStreamFormat: "text" | "json";
  treatUndecryptableAsPlaintext: boolean;
  maxWaitPerDecrypt: number;
  maxInitialWaitPerDecrypt: number;
  heartbeatTopicName: string | undefined;
  heartbeatProgramId: string | undefined;
  heartbeatIntervalSecs: number;
  logTopicName: string | undefined;
  logProgramId: string | undefined;
  logIntervalSecs: number;
  /** Drain mode: stop once the group has consumed the topic up to its end at start. */
  exitWhenDone: boolean;
  /** Where to write the end-of-run summary as JSON, or `undefined`. */
  summaryJson: string | undefined;
  /** Port of the metrics endpoint (0: any free port), or `undefined` for none. */
  metricsPort: number | undefined;
  /** Address the metrics endpoint listens on. */
  metricsHost: string;
  /** Re-key the topic into this one (keyed by file) instead of rebuilding files, or `undefined`. */
  rekeyTo: string | undefined;
}

type Kind =
  | "string"
  | "format"
  | "positive_int"
  | "int"
  | "port"
  | "level"
  | "nonneg_float"
  | "regex"
  | "flag";

interface OptionSpec {
  flag: string;
  key: Exclude<keyof CliOptions, "outputDir">;
  kind: Kind;
  default?: string;
  metavar?: string;
  help: string;
}

const OPTIONS: readonly OptionSpec[] = [
  {
    flag: "--config",
    key: "config",
    kind: "string",
    default: "test",
    help:
      "Name of a built-in config file (local_broker_test, test, prod), or path to a config file",
  },
  {
    flag: "--topic_name",
    key: "topicName",
    kind: "string",
    default: "test",
    help: "Name of the topic to consume from",
  },
  {
    flag: "--consumer_topic_name",
    key: "consumerTopicName",
    kind: "string",
    default: "test",
    help: 'Name of the topic to consume from; wins over --topic_name when it is not "test"',
  },
  {
    flag: "--producer_topic_name",
    key: "topicName",
    kind: "string",
    default: "test",
    help: "Accepted for compatibility and ignored",
  },
  {
    flag: "--consumer_group_id",
    key: "consumerGroupId",
    kind: "string",
    default: "create_new",
    help:
      'ID of the consumer group; "create_new" makes a fresh one. When absent, the config\'s group.id is used if it has one',
  },
  {
    flag: "--n_threads",
    key: "nThreads",
    kind: "positive_int",
    default: "2",
    help: "Number of consumers (parallel workers) in the group",
  },
  {
    flag: "--download_regex",
    key: "downloadRegex",
    kind: "regex",
    metavar: "REGEX",
    help:
      "Only rebuild files whose relative path matches this (Python) regular expression, from its start",
  },
  {
    flag: "--update_seconds",
    key: "updateSeconds",
    kind: "int",
    default: "300",
    help: 'Print a "." alive line this often; -1 turns it off',
  },
  {
    flag: "--logger_stream_level",
    key: "loggerStreamLevel",
    kind: "level",
    default: "info",
    help:
      "Level of messages printed to the console (debug, info, warning, error, critical, or a number)",
  },
  {
    flag: "--logger_file_level",
    key: "loggerFileLevel",
    kind: "level",
    default: "warning",
    help: "Level of messages written to the log file",
  },
  {
    flag: "--logger_file_path",
    key: "loggerFilePath",
    kind: "string",
    metavar: "PATH",
    help:
      "Log file, or a directory for DataFileDownloadDirectory.log (default: in the output directory)",
  },
  {
    flag: "--logger_stream_format",
    key: "loggerStreamFormat",
    kind: "format",
    metavar: "{text,json}",
    default: "text",
    help:
      "Console log lines as text, or as one JSON object per line (time, level, logger, message) for log shippers",
  },
  {
    flag: "--treat_undecryptable_as_plaintext",
    key: "treatUndecryptableAsPlaintext",
    kind: "flag",
    help: "Accepted for compatibility; encrypted topics are not supported",
  },
  {
    flag: "--max_wait_per_decrypt",
    key: "maxWaitPerDecrypt",
    kind: "nonneg_float",
    default: "5.0",
    help: "Accepted for compatibility; encrypted topics are not supported",
  },
  {
    flag: "--max_initial_wait_per_decrypt",
    key: "maxInitialWaitPerDecrypt",
    kind: "nonneg_float",
    default: "60.0",
    help: "Accepted for compatibility; encrypted topics are not supported",
  },
  {
    flag: "--heartbeat_topic_name",
    key: "heartbeatTopicName",
    kind: "string",
    metavar: "TOPIC",
    help: "Produce heartbeat messages to this topic",
  },
  {
    flag: "--heartbeat_program_id",
    key: "heartbeatProgramId",
    kind: "string",
    metavar: "ID",
    help: "Key prefix of heartbeat messages (default: a random id)",
  },
  {
    flag: "--heartbeat_interval_secs",
    key: "heartbeatIntervalSecs",
    kind: "nonneg_float",
    default: "900",
    help: "Seconds between heartbeat messages",
  },
  {
    flag: "--log_topic_name",
    key: "logTopicName",
    kind: "string",
    metavar: "TOPIC",
    help: "Produce log messages to this topic",
  },
  {
    flag: "--log_program_id",
    key: "logProgramId",
    kind: "string",
    metavar: "ID",
    help: "Key prefix of log messages (default: as for heartbeats)",
  },
  {
    flag: "--log_interval_secs",
    key: "logIntervalSecs",
    kind: "nonneg_float",
    default: "60",
    help: "Seconds between log messages",
  },
  {
    flag: "--exit_when_done",
    key: "exitWhenDone",
    kind: "flag",
    help:
      "Drain mode: note each partition's end offset at start, and exit once the consumer group has consumed every partition up to it (exit status 0, or 3 when files stayed incomplete or were rejected; with --rekey_to, once every record up to it is forwarded)",
  },
  {
    flag: "--summary_json",
    key: "summaryJson",
    kind: "string",
    metavar: "PATH",
    help:
      "Write the end-of-run summary (files published, rejected and incomplete, bytes, seconds, offsets reached) to this file as JSON",
  },
  {
    flag: "--metrics_port",
    key: "metricsPort",
    kind: "port",
    metavar: "PORT",
    help:
      "Serve /metrics (Prometheus text) and /healthz (200, or 503 when stuck) on this port (0: any free port; the address is logged)",
  },
  {
    flag: "--metrics_host",
    key: "metricsHost",
    kind: "string",
    metavar: "HOST",
    default: "127.0.0.1",
    help: "Address the metrics endpoint listens on",
  },
  {
    flag: "--rekey_to",
    key: "rekeyTo",
    kind: "string",
    metavar: "TOPIC",
    help:
      "Instead of rebuilding files, forward every record of the topic to TOPIC keyed by file (in Kafka transactions), so that several downloader processes can share TOPIC; output_dir then only holds the log",
  },
];

/** Exit statuses of the program, as `-h` and README list them. */
export const EXIT_CODES = {
  /** Stopped as asked (q, Ctrl-C, SIGTERM), or drained with every file begun published. */
  ok: 0,
  /** Could not run: a bad config, a missing permission, a broker or topic that failed at start. */
  error: 1,
  /** Bad command-line arguments. */
  usage: 2,
  /** Drain mode ended with files left incomplete or rejected (named in the summary). */
  incomplete: 3,
} as const;

/** The one-line usage. */
export function usage(): string {
  return `usage: ${PROGRAM} [-h] output_dir [--config CONFIG] [--topic_name TOPIC] [--n_threads N] [--consumer_group_id ID] [--download_regex REGEX] [options]`;
}

/** The full help text: every option with its default. */
export function helpText(): string {
  const lines = [
    usage(),
    "",
    "Rebuild data files from OpenMSIStream chunk messages consumed from a Kafka topic.",
    'While running, type "c" or "check" for progress and "q" or "quit" to stop.',
    "",
    "positional arguments:",
    "  output_dir            Directory to put the rebuilt files in (created if missing)",
    "",
    "options:",
    "  -h, --help            Show this help and exit",
    "  --version             Show the program's version (and Deno's, TypeScript's and kafkajs's)",
  ];
  for (const o of OPTIONS) {
    const meta = o.kind === "flag" ? "" : ` ${o.metavar ?? o.flag.slice(2).toUpperCase()}`;
    const head = `  ${o.flag}${meta}`;
    const help = o.default !== undefined ? `${o.help} (default = ${o.default})` : o.help;
    lines.push(head.length < 24 ? head.padEnd(24) + help : `${head}\n${" ".repeat(24)}${help}`);
  }
  lines.push(
    "",
    "exit status:",
    `  ${EXIT_CODES.ok}  stopped as asked, or (--exit_when_done) drained with every file begun published`,
    `  ${EXIT_CODES.error}  could not run: a config error, a missing permission, a failure at start`,
    `  ${EXIT_CODES.usage}  bad command-line arguments`,
    `  ${EXIT_CODES.incomplete}  (--exit_when_done) files stayed incomplete or were rejected; the summary names them`,
  );
  return lines.join("\n");
}

/**
 * The `--version` line: this program's version and those of what it runs on, e.g.
 * `DataFileDownloadDirectory 0.1.0 (Deno 2.9.6, V8 14.0, TypeScript 5.9.2, kafkajs 2.2.4)`.
 */
export function versionText(
  version: string,
  runtime: { deno: string; v8: string; typescript: string },
  kafkajs: string,
): string {
  return `${PROGRAM} ${version} (Deno ${runtime.deno}, V8 ${runtime.v8}, TypeScript ${runtime.typescript}, kafkajs ${kafkajs})`;
}

/** Python `int()` of a string: optional sign, digits with single `_` between them, spaces around. */
function pythonInt(text: string): number | undefined {
  return /^\s*[+-]?\d+(?:_\d+)*\s*$/.test(text) ? Number(text.replace(/_/g, "")) : undefined;
}

/** Python `float()` of a decimal string (`inf` and `nan` are refused: they make no sense here). */
function pythonFloat(text: string): number | undefined {
  const digits = "\\d+(?:_\\d+)*";
  const decimal = new RegExp(
    `^\\s*[+-]?(?:${digits}(?:\\.(?:${digits})?)?|\\.${digits})(?:[eE][+-]?${digits})?\\s*$`,
  );
  return decimal.test(text) ? Number(text.replace(/_/g, "")) : undefined;
}

/** Parses a level name (any case) or a whole number ≥ 0, as the reference does. */
export function parseLevel(text: string): number | undefined {
  const named = LEVELS[text.toLowerCase()];
  if (named !== undefined) return named;
  const n = pythonInt(text);
  return n !== undefined && n >= 0 ? n : undefined;
}

function convert(o: OptionSpec, raw: string): CliOptions[OptionSpec["key"]] {
  const invalid = (what: string) =>
    new UsageError(`argument ${o.flag}: invalid ${what} value: '${raw}'`);
  switch (o.kind) {
    case "string":
    case "flag":
      return raw;
    case "positive_int": {
      const n = pythonInt(raw);
      if (n === undefined || n < 1) throw invalid("positive_int");
      return n;
    }
    case "int": {
      const n = pythonInt(raw);
      if (n === undefined) throw invalid("int");
      return n;
    }
    case "format": {
      if (raw !== "text" && raw !== "json") {
        throw new UsageError(
          `argument ${o.flag}: invalid choice: '${raw}' (choose from 'text', 'json')`,
        );
      }
      return raw;
    }
    case "port": {
      const n = pythonInt(raw);
      if (n === undefined || n < 0 || n > 65535) throw invalid("port");
      return n;
    }
    case "nonneg_float": {
      const n = pythonFloat(raw);
      if (n === undefined || !Number.isFinite(n) || n < 0) throw invalid("non-negative float");
      return n;
    }
    case "level": {
      const level = parseLevel(raw);
      if (level === undefined) throw invalid("logging level");
      return level;
    }
    case "regex":
      try {
        return compilePythonRegex(raw);
      } catch (error) {
        throw new UsageError(
          `argument ${o.flag}: invalid regular expression '${raw}': ${
            error instanceof Error ? error.message : error
          }`,
        );
      }
  }
}

/** What one command-line word is, as argparse classifies it before consuming anything. */
type Word =
  | { kind: "positional" }
  | { kind: "unknown" }
  | { kind: "help"; explicit: string | undefined }
  | { kind: "version"; explicit: string | undefined }
  | { kind: "option"; spec: OptionSpec; explicit: string | undefined };

const HELP = "--help";
const VERSION = "--version";
const NEGATIVE_NUMBER = /^-\d+$|^-\d*\.\d+$/;

function resolveFlag(flag: string, explicit: string | undefined): Word | undefined {
  if (flag === "-h" || flag === HELP) return { kind: "help", explicit };
  if (flag === VERSION) return { kind: "version", explicit };
  const spec = OPTIONS.find((o) => o.flag === flag);
  return spec ? { kind: "option", spec, explicit } : undefined;
}

/**
 * Classifies a word as argparse's `_parse_optional` does: exact flags, `--flag=value`, then
 * unambiguous prefixes of long flags (`--help` included), then negative numbers and words with
 * a space as positionals.
 */
function classify(arg: string): Word {
  if (!arg.startsWith("-") || arg === "-") return { kind: "positional" };
  const exact = resolveFlag(arg, undefined);
  if (exact) return exact;
  const eq = arg.indexOf("=");
  const flag = eq >= 0 ? arg.slice(0, eq) : arg;
  const explicit = eq >= 0 ? arg.slice(eq + 1) : undefined;
  if (eq >= 0) {
    const withValue = resolveFlag(flag, explicit);
    if (withValue) return withValue;
  }
  if (arg.startsWith("--")) {
    const matches = [HELP, VERSION, ...OPTIONS.map((o) => o.flag)].filter((f) =>
      f.startsWith(flag)
    );
    if (matches.length > 1) {
      throw new UsageError(`ambiguous option: ${arg} could match ${matches.join(", ")}`);
    }
    if (matches[0] !== undefined) return resolveFlag(matches[0], explicit) as Word;
  } else if (arg.startsWith("-h")) {
    // "-hX": the short help flag with an attached argument.
    return { kind: "help", explicit: arg.slice(2) };
  }
  if (NEGATIVE_NUMBER.test(arg) || arg.includes(" ")) return { kind: "positional" };
  return { kind: "unknown" };
}

/** Result of parsing: options, or a request for help or for the version. */
export type ParseResult =
  | { help: true; version: false }
  | { help: false; version: true }
  | { help: false; version: false; options: CliOptions };

/**
 * Parses and validates the arguments in argparse's order: every word is classified first (an
 * ambiguous prefix is an error even after `-h`), then the words are consumed from left to
 * right (an invalid value before `-h` is an error, `-h` before it wins), and only then are a
 * missing `output_dir` and unrecognized words reported.
 *
 * @throws {UsageError} for anything argparse would reject.
 */
export function parseArgs(argv: readonly string[]): ParseResult {
  const dashes = argv.indexOf("--");
  const words = argv.map((arg, i) =>
    dashes >= 0 && i >= dashes ? { kind: "positional" } as const : classify(arg)
  );
  const values: Record<string, unknown> = {
    consumerGroupId: undefined,
    downloadRegex: undefined,
    loggerFilePath: undefined,
    heartbeatTopicName: undefined,
    heartbeatProgramId: undefined,
    logTopicName: undefined,
    logProgramId: undefined,
    treatUndecryptableAsPlaintext: false,
    exitWhenDone: false,
    summaryJson: undefined,
    metricsPort: undefined,
    rekeyTo: undefined,
  };
  const given = new Set<OptionSpec["key"]>();
  const positionals: string[] = [];
  const extras: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const word = words[i] as Word;
    if (i === dashes) continue;
    if (word.kind === "positional") {
      // One positional (output_dir); any further one is unrecognized.
      (positionals.length === 0 ? positionals : extras).push(arg);
      continue;
    }
    if (word.kind === "unknown") {
      extras.push(arg);
      continue;
    }
    if (word.kind === "help") {
      if (word.explicit !== undefined) {
        throw new UsageError(`argument -h/--help: ignored explicit argument '${word.explicit}'`);
      }
      return { help: true, version: false };
    }
    if (word.kind === "version") {
      if (word.explicit !== undefined) {
        throw new UsageError(`argument --version: ignored explicit argument '${word.explicit}'`);
      }
      return { help: false, version: true };
    }
    const { spec, explicit } = word;
    if (spec.kind === "flag") {
      if (explicit !== undefined) {
        throw new UsageError(`argument ${spec.flag}: ignored explicit argument '${explicit}'`);
      }
      values[spec.key] = true;
      continue;
    }
    let raw = explicit;
    if (raw === undefined && i + 1 !== dashes && words[i + 1]?.kind === "positional") {
      raw = argv[++i];
    }
    if (raw === undefined) throw new UsageError(`argument ${spec.flag}: expected one argument`);
    const value = convert(spec, raw);
    if (spec.flag === "--producer_topic_name") continue;
    values[spec.key] = value;
    given.add(spec.key);
  }
  if (positionals.length === 0) {
    throw new UsageError("the following arguments are required: output_dir");
  }
  if (extras.length > 0) throw new UsageError(`unrecognized arguments: ${extras.join(" ")}`);
  for (const o of OPTIONS) {
    if (o.flag === "--producer_topic_name" || o.kind === "flag" || given.has(o.key)) continue;
    if (o.default !== undefined && o.key !== "consumerGroupId") {
      values[o.key] = convert(o, o.default);
    }
  }
  const options = { ...values, outputDir: positionals[0] } as unknown as CliOptions;
  // Topic resolution of the reference: a consumer topic other than "test" wins.
  if (options.consumerTopicName === "test") options.consumerTopicName = options.topicName;
  return { help: false, version: false, options };
}
