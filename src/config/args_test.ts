import assert from "node:assert/strict";
import {
  type CliOptions,
  EXIT_CODES,
  helpText,
  LEVELS,
  parseArgs,
  parseLevel,
  PROGRAM,
  usage,
  UsageError,
  versionText,
} from "./args.ts";
import { pythonMatch } from "./python_regex.ts";

/** Parses `argv`, which must give options (not help). */
function options(...argv: string[]): CliOptions {
  const result = parseArgs(argv);
  assert.equal(result.help, false, `${JSON.stringify(argv)} should not ask for help`);
  if (!("options" in result)) throw new Error(`${JSON.stringify(argv)} gives no options`);
  return result.options;
}

/** Asserts that `argv` is refused with a UsageError whose message contains every fragment. */
function assertUsageError(argv: string[], ...fragments: string[]): void {
  assert.throws(() => parseArgs(argv), (error: unknown) => {
    assert.ok(error instanceof UsageError, `expected UsageError, got ${error}`);
    assert.equal(error.name, "UsageError");
    for (const fragment of fragments) {
      assert.ok(
        error.message.includes(fragment),
        `message ${JSON.stringify(error.message)} should contain ${JSON.stringify(fragment)}`,
      );
    }
    return true;
  }, JSON.stringify(argv));
}

Deno.test("parseArgs() fills in the reference's defaults", () => {
  assert.deepEqual(options("out"), {
    outputDir: "out",
    config: "test",
    topicName: "test",
    consumerTopicName: "test",
    consumerGroupId: undefined,
    nThreads: 2,
    downloadRegex: undefined,
    updateSeconds: 300,
    loggerStreamLevel: 20,
    loggerFileLevel: 30,
    loggerFilePath: undefined,
    loggerStreamFormat: "text",
    treatUndecryptableAsPlaintext: false,
    maxWaitPerDecrypt: 5,
    maxInitialWaitPerDecrypt: 60,
    heartbeatTopicName: undefined,
    heartbeatProgramId: undefined,
    heartbeatIntervalSecs: 900,
    logTopicName: undefined,
    logProgramId: undefined,
    logIntervalSecs: 60,
    exitWhenDone: false,
    summaryJson: undefined,
    metricsPort: undefined,
    metricsHost: "127.0.0.1",
    rekeyTo: undefined,
  });
});

Deno.test("parseArgs() reads every option, as '--opt value' and as '--opt=value'", () => {
  const argv = [
    ["--config", "local_broker_test"],
    ["--topic_name", "tn"],
    ["--consumer_topic_name", "ctn"],
    ["--consumer_group_id", "group"],
    ["--n_threads", "5"],
    ["--update_seconds", "10"],
    ["--logger_stream_level", "debug"],
    ["--logger_file_level", "ERROR"],
    ["--logger_file_path", "/tmp/x.log"],
    ["--logger_stream_format", "json"],
    ["--max_wait_per_decrypt", "2.5"],
    ["--max_initial_wait_per_decrypt", "0"],
    ["--heartbeat_topic_name", "hb"],
    ["--heartbeat_program_id", "hid"],
    ["--heartbeat_interval_secs", "1e1"],
    ["--log_topic_name", "lt"],
    ["--log_program_id", "lid"],
    ["--log_interval_secs", ".5"],
    ["--summary_json", "s.json"],
    ["--metrics_port", "9464"],
    ["--metrics_host", "0.0.0.0"],
    ["--rekey_to", "by_file"],
  ];
  const expected = {
    outputDir: "out",
    config: "local_broker_test",
    topicName: "tn",
    consumerTopicName: "ctn",
    consumerGroupId: "group",
    nThreads: 5,
    downloadRegex: undefined,
    updateSeconds: 10,
    loggerStreamLevel: 10,
    loggerFileLevel: 40,
    loggerFilePath: "/tmp/x.log",
    loggerStreamFormat: "json",
    treatUndecryptableAsPlaintext: true,
    maxWaitPerDecrypt: 2.5,
    maxInitialWaitPerDecrypt: 0,
    heartbeatTopicName: "hb",
    heartbeatProgramId: "hid",
    heartbeatIntervalSecs: 10,
    logTopicName: "lt",
    logProgramId: "lid",
    logIntervalSecs: 0.5,
    exitWhenDone: true,
    summaryJson: "s.json",
    metricsPort: 9464,
    metricsHost: "0.0.0.0",
    rekeyTo: "by_file",
  };
  const spaced = argv.flat();
  const flags = ["--treat_undecryptable_as_plaintext", "--exit_when_done"];
  assert.deepEqual(options("out", ...flags, ...spaced), expected);
  const joined = argv.map(([flag, value]) => `${flag}=${value}`);
  assert.deepEqual(options(...joined, ...flags, "out"), expected);
  // A port is a whole number from 0 to 65535.
  for (const bad of ["-1", "65536", "x"]) {
    assert.throws(() => options("out", "--metrics_port", bad), /invalid port value/);
  }
  assert.throws(
    () => options("out", "--logger_stream_format", "xml"),
    /argument --logger_stream_format: invalid choice: 'xml' \(choose from 'text', 'json'\)/,
  );
});

Deno.test("parseArgs() takes options in any order around output_dir", () => {
  assert.equal(options("--n_threads", "4", "out").nThreads, 4);
  assert.equal(options("--n_threads", "4", "out").outputDir, "out");
  assert.equal(options("out", "--n_threads=4").nThreads, 4);
  // The last occurrence wins.
  assert.equal(options("out", "--n_threads", "2", "--n_threads", "3").nThreads, 3);
  // "-" is a positional; "--" ends the options.
  assert.equal(options("-", "--n_threads", "2").outputDir, "-");
  assert.equal(options("--", "out").outputDir, "out");
  assert.equal(options("--n_threads", "3", "--", "-out").outputDir, "-out");
});

Deno.test("parseArgs() keeps a value with '=' after the first one", () => {
  assert.equal(options("out", "--consumer_group_id=a=b").consumerGroupId, "a=b");
  assert.equal(options("out", "--topic_name=").topicName, "");
});

Deno.test("parseArgs() accepts unambiguous prefixes of long options", () => {
  assert.equal(options("out", "--topic", "t").topicName, "t");
  assert.equal(options("out", "--topic=t").topicName, "t");
  assert.equal(options("out", "--consumer_t", "ct").consumerTopicName, "ct");
  assert.equal(options("out", "--n", "7").nThreads, 7);
  assert.equal(options("out", "--treat").treatUndecryptableAsPlaintext, true);
  const regex = options("out", "--download", "x").downloadRegex;
  assert.ok(regex);
  assert.equal(pythonMatch(regex, "xyz"), true);
  assert.equal(pythonMatch(regex, "yx"), false);
});

Deno.test("parseArgs() refuses ambiguous prefixes, naming the candidates", () => {
  assertUsageError(
    ["out", "--log", "x"],
    "ambiguous option: --log could match",
    "--logger_stream_level",
    "--logger_file_level",
    "--logger_file_path",
    "--log_topic_name",
    "--log_program_id",
    "--log_interval_secs",
  );
  assertUsageError(
    ["out", "--con", "x"],
    "--config",
    "--consumer_topic_name",
    "--consumer_group_id",
  );
  assertUsageError(["out", "--log=x"], "ambiguous option: --log=x");
  // "--help" takes part: "--h" and "--he" are ambiguous, "--hel" is help.
  assertUsageError(["out", "--h"], "ambiguous option: --h could match --help, --heartbeat_");
  assertUsageError(["out", "--he"], "ambiguous option: --he could match --help");
  assert.deepEqual(parseArgs(["out", "--hel"]), { help: true, version: false });
  // Ambiguity is found before anything is consumed, so even after -h.
  assertUsageError(["-h", "--log", "x"], "ambiguous option");
});

Deno.test("parseArgs() returns help for -h and --help", () => {
  assert.deepEqual(parseArgs(["-h"]), { help: true, version: false });
  assert.deepEqual(parseArgs(["--help"]), { help: true, version: false });
  assert.deepEqual(parseArgs(["out", "-h"]), { help: true, version: false });
  assert.deepEqual(parseArgs(["out", "--n_threads", "3", "--help"]), {
    help: true,
    version: false,
  });
  // Help comes before a missing output_dir and unrecognized words, as in argparse.
  assert.deepEqual(parseArgs(["--bogus", "-h"]), { help: true, version: false });
  assert.deepEqual(parseArgs(["out", "extra", "-h"]), { help: true, version: false });
  // An invalid value before -h is an error; after it, help wins.
  assertUsageError(["out", "--n_threads", "0", "-h"], "invalid positive_int value: '0'");
  assert.deepEqual(parseArgs(["out", "-h", "--n_threads", "0"]), { help: true, version: false });
  assertUsageError(["out", "--help=x"], "ignored explicit argument 'x'");
  assertUsageError(["out", "-hx"], "ignored explicit argument 'x'");
});

Deno.test("parseArgs() refuses --n_threads values that are not positive integers", () => {
  for (const value of ["0", "x", "-1", "3.0", "", "1e3", "0x10"]) {
    assertUsageError(
      ["out", "--n_threads", value],
      `argument --n_threads: invalid positive_int value: '${value}'`,
    );
  }
  assertUsageError(["out", "--n_threads="], "invalid positive_int value: ''");
  // Python int() accepts a sign, surrounding spaces and digit separators.
  assert.equal(options("out", "--n_threads", "+3").nThreads, 3);
  assert.equal(options("out", "--n_threads", " 3 ").nThreads, 3);
  assert.equal(options("out", "--n_threads", "1_0").nThreads, 10);
  assert.equal(options("out", "--n_threads", "007").nThreads, 7);
});

Deno.test("parseArgs() takes negative numbers as values and accepts --update_seconds -1", () => {
  assert.equal(options("out", "--update_seconds", "-1").updateSeconds, -1);
  assert.equal(options("out", "--update_seconds=-5").updateSeconds, -5);
  assert.equal(options("out", "--update_seconds", "0").updateSeconds, 0);
  assertUsageError(
    ["out", "--update_seconds", "x"],
    "argument --update_seconds: invalid int value",
  );
  assertUsageError(["out", "--update_seconds", "-.5"], "invalid int value: '-.5'");
  // "-1x" is not a number: it looks like an option, so the value is missing.
  assertUsageError(["out", "--update_seconds", "-1x"], "--update_seconds: expected one argument");
});

Deno.test("parseArgs() refuses an option without its value", () => {
  assertUsageError(["out", "--n_threads"], "argument --n_threads: expected one argument");
  assertUsageError(["out", "--consumer_group_id", "-g"], "expected one argument");
  assertUsageError(["out", "--consumer_group_id", "--"], "expected one argument");
  assertUsageError(["out", "--topic_name", "--n_threads", "2"], "--topic_name: expected one");
  // argparse takes "-" and words with a space as values even though they start with "-".
  assert.equal(options("out", "--consumer_group_id", "-").consumerGroupId, "-");
  assert.equal(options("out", "--consumer_group_id", "-a b").consumerGroupId, "-a b");
  assert.equal(options("out", "--consumer_group_id=-g").consumerGroupId, "-g");
});

Deno.test("parseArgs() requires output_dir", () => {
  assertUsageError([], "the following arguments are required: output_dir");
  assertUsageError(["--n_threads", "3"], "required: output_dir");
  // A missing output_dir is reported before unrecognized words.
  assertUsageError(["--bogus"], "required: output_dir");
});

Deno.test("parseArgs() refuses unknown options and extra positionals", () => {
  assertUsageError(["out", "--bogus"], "unrecognized arguments: --bogus");
  assertUsageError(["out", "-x"], "unrecognized arguments: -x");
  assertUsageError(["out", "other"], "unrecognized arguments: other");
  assertUsageError(["out", "-1"], "unrecognized arguments: -1");
  assertUsageError(
    ["out", "--bogus", "x", "--n_threads", "2"],
    "unrecognized arguments: --bogus x",
  );
  assertUsageError(["out", "--", "-x"], "unrecognized arguments: -x");
  assertUsageError(
    ["out", "--treat_undecryptable_as_plaintext=1"],
    "ignored explicit argument '1'",
  );
});

Deno.test("parseArgs() reads logger levels by name in any case or as numbers ≥ 0", () => {
  const level = (value: string) => options("out", "--logger_stream_level", value).loggerStreamLevel;
  assert.equal(level("notset"), 0);
  assert.equal(level("DEBUG"), 10);
  assert.equal(level("Info"), 20);
  assert.equal(level("warning"), 30);
  assert.equal(level("error"), 40);
  assert.equal(level("CRITICAL"), 50);
  assert.equal(level("5"), 5);
  assert.equal(level(" 7 "), 7);
  assert.equal(options("out", "--logger_file_level", "debug").loggerFileLevel, 10);
  for (const bad of ["-5", "verbose", "warn", "1.5", ""]) {
    assertUsageError(
      ["out", "--logger_stream_level", bad],
      `argument --logger_stream_level: invalid logging level value: '${bad}'`,
    );
  }
});

Deno.test("parseLevel() and LEVELS follow Python logging", () => {
  assert.deepEqual(LEVELS, {
    notset: 0,
    debug: 10,
    info: 20,
    warning: 30,
    error: 40,
    critical: 50,
  });
  assert.equal(parseLevel("WARNING"), 30);
  assert.equal(parseLevel("0"), 0);
  assert.equal(parseLevel("+15"), 15);
  assert.equal(parseLevel("-1"), undefined);
  assert.equal(parseLevel("fatal"), undefined);
});

Deno.test("parseArgs() reads non-negative floats as Python float() does", () => {
  const wait = (value: string) => options("out", "--max_wait_per_decrypt", value).maxWaitPerDecrypt;
  assert.equal(wait("2.5"), 2.5);
  assert.equal(wait("0"), 0);
  assert.equal(wait("1."), 1);
  assert.equal(wait(" 3 "), 3);
  assert.equal(wait("1_0.5"), 10.5);
  assert.equal(options("out", "--heartbeat_interval_secs", "0").heartbeatIntervalSecs, 0);
  for (const bad of ["-1", "0x10", "", "abc", "inf", "nan", "1e999"]) {
    assertUsageError(
      ["out", "--max_wait_per_decrypt", bad],
      `argument --max_wait_per_decrypt: invalid non-negative float value: '${bad}'`,
    );
  }
});

Deno.test("parseArgs() resolves the consumer topic as the reference does", () => {
  assert.equal(options("out").consumerTopicName, "test");
  assert.equal(options("out", "--topic_name", "tn").consumerTopicName, "tn");
  // A consumer topic other than "test" wins over --topic_name.
  const both = options("out", "--consumer_topic_name", "ct", "--topic_name", "tn");
  assert.equal(both.consumerTopicName, "ct");
  assert.equal(both.topicName, "tn");
  // "test" given explicitly counts as absent.
  assert.equal(
    options("out", "--consumer_topic_name", "test", "--topic_name", "tn").consumerTopicName,
    "tn",
  );
  assert.equal(options("out", "--consumer_topic_name", "ct").consumerTopicName, "ct");
});

Deno.test("parseArgs() accepts and ignores --producer_topic_name", () => {
  const o = options("out", "--producer_topic_name", "p");
  assert.equal(o.topicName, "test");
  assert.equal(o.consumerTopicName, "test");
  assert.equal(options("out", "--topic_name", "t", "--producer_topic_name", "p").topicName, "t");
  assert.equal(options("out", "--producer_topic_name", "p", "--topic_name", "t").topicName, "t");
  // Its value still has to be there.
  assertUsageError(["out", "--producer_topic_name"], "expected one argument");
});

Deno.test("parseArgs() leaves consumerGroupId undefined unless given", () => {
  assert.equal(options("out").consumerGroupId, undefined);
  assert.equal("consumerGroupId" in options("out"), true);
  assert.equal(options("out", "--consumer_group_id", "create_new").consumerGroupId, "create_new");
  assert.equal(options("out", "--consumer_group_id", "g1").consumerGroupId, "g1");
});

Deno.test("parseArgs() compiles --download_regex as a Python pattern", () => {
  const regex = options("out", "--download_regex", "^(?P<d>sub)/.*\\.dat$").downloadRegex;
  assert.ok(regex);
  assert.equal(pythonMatch(regex, "sub/x.dat"), true);
  assert.equal(pythonMatch(regex, "x.dat"), false);
  assert.equal(pythonMatch(regex, "sub/x.dat.bak"), false);
  assertUsageError(
    ["out", "--download_regex", "("],
    "argument --download_regex: invalid regular expression '('",
    "missing )",
  );
  assertUsageError(["out", "--download_regex", "[a"], "invalid regular expression");
  assertUsageError(["out", "--download_regex", "\\q"], "bad escape");
});

Deno.test("helpText() lists every option, with '(default = X)' where there is a default", () => {
  const text = helpText();
  assert.ok(text.startsWith(usage()));
  assert.ok(usage().startsWith(`usage: ${PROGRAM} [-h] output_dir`));
  assert.equal(PROGRAM, "DataFileDownloadDirectory");
  assert.match(text, /^ {2}output_dir {2,}/m);
  assert.match(text, /^ {2}-h, --help {2,}/m);
  const defaults: Record<string, string> = {
    "--config": "test",
    "--topic_name": "test",
    "--consumer_topic_name": "test",
    "--producer_topic_name": "test",
    "--consumer_group_id": "create_new",
    "--n_threads": "2",
    "--update_seconds": "300",
    "--logger_stream_level": "info",
    "--logger_file_level": "warning",
    "--max_wait_per_decrypt": "5.0",
    "--max_initial_wait_per_decrypt": "60.0",
    "--heartbeat_interval_secs": "900",
    "--log_interval_secs": "60",
    "--metrics_host": "127.0.0.1",
    "--logger_stream_format": "text",
  };
  const withoutDefault = [
    "--download_regex",
    "--logger_file_path",
    "--treat_undecryptable_as_plaintext",
    "--heartbeat_topic_name",
    "--heartbeat_program_id",
    "--log_topic_name",
    "--log_program_id",
    "--exit_when_done",
    "--summary_json",
    "--metrics_port",
    "--rekey_to",
  ];
  const lines = text.split("\n");
  /** The help of `flag`: its line and the continuation line, if any. */
  const entry = (flag: string): string => {
    const at = lines.findIndex((line) => line.startsWith(`  ${flag} `) || line === `  ${flag}`);
    assert.ok(at >= 0, `${flag} should be in the help`);
    const next = lines[at + 1] ?? "";
    return (lines[at] ?? "") + (next.startsWith(" ".repeat(24)) ? next : "");
  };
  for (const [flag, value] of Object.entries(defaults)) {
    assert.ok(entry(flag).endsWith(`(default = ${value})`), `${flag}: ${entry(flag)}`);
  }
  for (const flag of withoutDefault) {
    assert.ok(!entry(flag).includes("(default = "), `${flag}: ${entry(flag)}`);
  }
  // The flag takes no metavar; the others do.
  assert.match(
    entry("--treat_undecryptable_as_plaintext"),
    /^ {2}--treat_undecryptable_as_plaintext\s/,
  );
  assert.match(entry("--n_threads"), /^ {2}--n_threads N_THREADS /);
  assert.match(entry("--download_regex"), /^ {2}--download_regex REGEX /);
  assert.match(entry("--exit_when_done"), /^ {2}--exit_when_done\s/);
  assert.match(entry("--summary_json"), /^ {2}--summary_json PATH\s/);
  // Every exit status is listed with its meaning.
  const statuses = text.slice(text.indexOf("\nexit status:\n"));
  for (const code of Object.values(EXIT_CODES)) {
    assert.match(statuses, new RegExp(`^ {2}${code} {2}\\S`, "m"), `exit status ${code}`);
  }
  // Every option of the help is one parseArgs() knows.
  const flags = [...text.matchAll(/^ {2}(--\w+)/gm)].map((m) => m[1]).filter((f) =>
    f !== "--version"
  );
  assert.equal(flags.length, Object.keys(defaults).length + withoutDefault.length);
  for (const flag of flags) {
    assert.doesNotThrow(
      () =>
        parseArgs([
          "out",
          flag as string,
          ...(["--treat_undecryptable_as_plaintext", "--exit_when_done"].includes(flag!)
            ? []
            : [flag === "--logger_stream_format" ? "json" : "1"]),
        ]),
      flag,
    );
  }
});

Deno.test("--version (or a prefix of it) asks for the version wherever it stands; a value is refused", () => {
  for (
    const argv of [["--version"], ["out", "--vers"], ["out", "--n_threads", "3", "--version"]]
  ) {
    assert.deepEqual(parseArgs(argv), { help: false, version: true }, JSON.stringify(argv));
  }
  assert.deepEqual(parseArgs(["-h", "--version"]), { help: true, version: false });
  assert.throws(
    () => parseArgs(["--version=2"]),
    /argument --version: ignored explicit argument '2'/,
  );
  assert.match(helpText(), /^ {2}--version {13}Show the program's version/m);
  assert.equal(
    versionText("1.2.3", { deno: "2.9.6", v8: "15.0", typescript: "6.0.3" }, "2.2.4"),
    "DataFileDownloadDirectory 1.2.3 (Deno 2.9.6, V8 15.0, TypeScript 6.0.3, kafkajs 2.2.4)",
  );
});
