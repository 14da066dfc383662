/**
 * The command line as a user meets it: help, usage errors, config errors, the console, signals,
 * the alive line and the log file. Spawns the real CLI.
 */
import assert from "node:assert/strict";
import {
  CliProcess,
  join,
  produceTree,
  programCommand,
  RUNS_BINARY,
  sleep,
  startDownloader,
  tempDir,
  writeRandomFile,
} from "./_cli.ts";
import { bootstrapServers, createTopic, uniqueGroupId } from "./_kafka.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const README = new URL("../README.md", import.meta.url);

async function run(args: string[], env: Record<string, string> = {}) {
  const program = programCommand(args);
  const out = await new Deno.Command(program.command, {
    args: program.args,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A closed port: nothing listens there. */
function deadBroker(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return `127.0.0.1:${port}`;
}

Deno.test("-h lists every option with its default, and the README lists the same options", async () => {
  const { code, stdout } = await run(["-h"]);
  assert.equal(code, 0);
  const inHelp = new Set(stdout.match(/--[a-z_]+/g));
  for (
    const flag of [
      "--config",
      "--topic_name",
      "--n_threads",
      "--consumer_group_id",
      "--download_regex",
    ]
  ) {
    assert.ok(inHelp.has(flag), flag);
  }
  assert.match(stdout, /--n_threads N_THREADS\s+.*\(default = 2\)/);
  assert.match(stdout, /--config CONFIG\s+.*\(default = test\)/);
  const readme = await Deno.readTextFile(README);
  const table = readme.slice(
    readme.search(/^\| option /m),
    readme.indexOf("Long options may be shortened"),
  );
  assert.deepEqual(new Set(table.match(/--[a-z_]+/g)), inHelp);
});

Deno.test("--version prints the program's version and Deno's and kafkajs's, with no permission at all", async () => {
  const program = RUNS_BINARY
    ? programCommand(["--version"])
    : { command: Deno.execPath(), args: ["run", "--no-prompt", CLI, "--version"] };
  const out = await new Deno.Command(program.command, {
    args: program.args,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const kafkajs = String(config.imports.kafkajs).replace("npm:kafkajs@", "");
  assert.equal(
    stdout,
    `DataFileDownloadDirectory ${config.version} (Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript}, kafkajs ${kafkajs})\n`,
  );
});

Deno.test("usage mistakes print the usage line and exit 2", async () => {
  const out = await tempDir("usage");
  for (
    const [args, message] of [
      [[], /the following arguments are required: output_dir/],
      [[out, "--n_threads", "0"], /argument --n_threads: invalid positive_int value: '0'/],
      [[out, "--bogus"], /unrecognized arguments: --bogus/],
      [[out, "--log", "x"], /ambiguous option: --log could match/],
      [
        [out, "--download_regex", "(unclosed"],
        /argument --download_regex: invalid regular expression/,
      ],
    ] as const
  ) {
    const { code, stderr } = await run([...args]);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^usage: DataFileDownloadDirectory/);
    assert.match(stderr, message);
  }
});

Deno.test("config and output-directory problems are clear errors with exit 1", async () => {
  const dir = await tempDir("cfgerr");
  const file = join(dir, "not_a_dir");
  await Deno.writeTextFile(file, "x");
  const crypto = join(dir, "crypto.config");
  await Deno.writeTextFile(
    crypto,
    "[broker]\nbootstrap.servers = localhost:9092\n[kafkacrypto]\nnode_id = n1\n",
  );
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      [file, "--config", "local_broker_test"],
      { LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: "x:1" },
      /exists but is not a directory/,
    ],
    [[join(dir, "o"), "--config", crypto], {}, /encrypted topics are not supported yet/],
    [
      [join(dir, "o"), "--config", "no_such_config"],
      {},
      /Cannot find the config file "no_such_config"/,
    ],
    [[join(dir, "o")], {}, /environment variable KAFKA_TEST_CLUSTER_BOOTSTRAP_SERVERS is not set/],
  ];
  for (const [args, env, message] of cases) {
    const { code, stderr } = await run(args, env);
    assert.equal(code, 1, stderr);
    assert.match(stderr, message);
    assert.doesNotMatch(stderr, /\n\s+at /); // no stack trace
  }
});

Deno.test("EOF on stdin is not a quit; the alive line repeats; SIGTERM stops cleanly with exit 0", async () => {
  const out = await tempDir("alive");
  const cli = new CliProcess([out, "--config", "local_broker_test", "--update_seconds", "1"], {
    LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: deadBroker(),
  });
  await cli.child.stdin.close().catch(() => {});
  await cli.waitFor(/\] \.\n/, 30_000, 2);
  await cli.waitFor(/WARNING: Waiting for the Kafka broker/, 60_000);
  cli.child.kill("SIGTERM");
  assert.equal(await cli.exit(), 0);
  assert.match(cli.output, /Shutting down \(SIGTERM\)/);
  // Warnings also went to the log file in the output directory.
  const log = await Deno.readTextFile(join(out, "DataFileDownloadDirectory.log"));
  assert.match(log, /WARNING: Waiting for the Kafka broker/);
  assert.doesNotMatch(log, /\] \.\n/); // info lines stay out of the file at the default level
});

Deno.test("Ctrl-C (SIGINT) stops cleanly with exit 0, and --logger_file_path takes a directory", async () => {
  const out = await tempDir("sigint");
  const logs = await tempDir("logs");
  const cli = new CliProcess([
    out,
    "--config",
    "local_broker_test",
    "--logger_file_path",
    logs,
    "--logger_file_level",
    "info",
  ], {
    LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: deadBroker(),
  });
  await cli.waitFor(/Listening for files/);
  await sleep(500);
  cli.child.kill("SIGINT");
  assert.equal(await cli.exit(), 0);
  const log = await Deno.readTextFile(join(logs, "DataFileDownloadDirectory.log"));
  assert.match(log, /Listening for files to reconstruct in/);
  await assert.rejects(Deno.stat(join(out, "DataFileDownloadDirectory.log")));
});

Deno.test("without --consumer_group_id, the config's group.id is used; create_new makes a fresh one", async () => {
  const topic = await createTopic(1, "group");
  const dir = await tempDir("group");
  const cfg = join(dir, "g.config");
  await Deno.writeTextFile(
    cfg,
    `[broker]\nbootstrap.servers = $LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS\n[consumer]\ngroup.id = lab-archive\nauto.offset.reset = earliest\nenable.auto.commit = False\n`,
  );
  const fromConfig = new CliProcess([join(dir, "a"), "--config", cfg, "--topic", topic]);
  await fromConfig.waitFor(/consumer group lab-archive;/);
  assert.equal(await fromConfig.quit(), 0);
  const fresh = new CliProcess([
    join(dir, "b"),
    "--config",
    cfg,
    "--topic",
    topic,
    "--consumer_group_id",
    "CREATE_NEW",
  ]);
  await fresh.waitFor(/consumer group [0-9a-f-]{36}, new for this run/);
  assert.equal(await fresh.quit(), 0);
  assert.doesNotMatch(fresh.output, /enable.auto.commit has not been set/);
});

Deno.test("--logger_stream_level hides lower levels from the console while the file keeps its own level", async () => {
  const out = await tempDir("levels");
  const cli = new CliProcess([
    out,
    "--config",
    "local_broker_test",
    "--update_seconds",
    "1",
    "--logger_stream_level",
    "error",
  ], { LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: deadBroker() });
  const log = join(out, "DataFileDownloadDirectory.log");
  const deadline = Date.now() + 60_000;
  while (!(await Deno.readTextFile(log).catch(() => "")).includes("Waiting for the Kafka broker")) {
    assert.ok(Date.now() < deadline, "no warning reached the log file");
    await sleep(200);
  }
  cli.child.kill("SIGTERM");
  assert.equal(await cli.exit(), 0);
  assert.doesNotMatch(cli.output, /WARNING|\] \.\n|Listening for files/);
});

Deno.test("--logger_stream_format json: every console line is one JSON object", async () => {
  const topic = await createTopic(1, "json_log");
  const root = await tempDir("json_src");
  await writeRandomFile(join(root, "one.bin"), 100_000);
  await produceTree(topic, root);
  const out = await tempDir("json_out");
  const cli = startDownloader(
    out,
    topic,
    uniqueGroupId("json_log"),
    "--logger_stream_format",
    "json",
  );
  await cli.waitFor(/"message":"File one\.bin successfully reconstructed from stream/);
  assert.equal(await cli.quit(), 0);
  const lines = cli.output.split("\n").filter((l) => l !== "");
  const records = lines.map((l) => JSON.parse(l) as Record<string, string>);
  for (const r of records) {
    assert.deepEqual(Object.keys(r), ["time", "level", "logger", "message"]);
    assert.match(r.time!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(r.logger, "DataFileDownloadDirectory");
  }
  assert.ok(records.some((r) => r.level === "info" && /^Listening for files/.test(r.message!)));
  assert.ok(records.some((r) => /shut down$/.test(r.message!)));
});

/** The terminal's erase-line sequence, as the status line draws it. */
const ERASE_LINE = "\x1b[2K";

/** util-linux `script` runs a command under a pseudo-terminal. */
const hasScript = await new Deno.Command("script", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);

Deno.test({
  name:
    "on a terminal, a live status line sits under the log lines; off a terminal, nothing is drawn",
  ignore: !hasScript,
  fn: async () => {
    const topic = await createTopic(2, "status_line");
    const root = await tempDir("status_src");
    await writeRandomFile(join(root, "a.bin"), 400_000);
    await writeRandomFile(join(root, "b/c.bin"), 90_000);
    await produceTree(topic, root);
    const out = await tempDir("status_out");
    const program = programCommand([
      out,
      "--config",
      "local_broker_test",
      "--topic_name",
      topic,
      "--consumer_group_id",
      uniqueGroupId("status_line"),
    ]);
    const command = [program.command, ...program.args].join(" ");
    const child = new Deno.Command("script", {
      args: ["-qfec", command, "/dev/null"],
      env: {
        NO_COLOR: "1",
        TERM: "xterm",
        LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: bootstrapServers(),
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let text = "";
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const bytes of child.stdout) text += decoder.decode(bytes, { stream: true });
    })();
    const stderr = child.stderr.text();
    const writer = child.stdin.getWriter();
    let exited = false;
    child.status.then(() => exited = true);
    try {
      const deadline = Date.now() + 60_000;
      while (!/2 files done, 0 in flight \| \d+\.\d MB\/s \| lag 0 records/.test(text)) {
        assert.ok(
          Date.now() < deadline && !exited,
          `no final status line in:\n${JSON.stringify(text.slice(-2000))}`,
        );
        await sleep(200);
      }
      await writer.write(new TextEncoder().encode("q\n"));
      assert.equal((await child.status).code, 0);
    } finally {
      await writer.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
      await reading;
      await stderr;
    }
    // Each log line clears the status line before it, and the line is redrawn after it.
    text = text.replaceAll(ERASE_LINE, "<CLEAR>");
    assert.match(
      text,
      /\r<CLEAR>\[DataFileDownloadDirectory [^\]]+\] File a\.bin successfully reconstructed/,
    );
    assert.match(
      text,
      /successfully reconstructed from stream \(\d+ bytes\)\r?\n\r<CLEAR>\d+ files? done/,
    );
    // Still drawn once every consumer has joined (it was stopped then once), and erased at
    // shutdown: the last lines are plain.
    assert.match(text, /joined the group[^\n]*\n(.|\n)*\r<CLEAR>\d+ files? done/);
    assert.match(text, /\n(\r<CLEAR>)?\[DataFileDownloadDirectory [^\]]+\] Shutting down/);
    assert.doesNotMatch(text.slice(text.indexOf("Shutting down")), /files? done, /);
  },
});

Deno.test("off a terminal no status line is drawn", async () => {
  const topic = await createTopic(1, "no_status_line");
  const root = await tempDir("nostatus_src");
  await writeRandomFile(join(root, "a.bin"), 1000);
  await produceTree(topic, root);
  const cli = startDownloader(await tempDir("nostatus_out"), topic, uniqueGroupId("nostatus"));
  await cli.waitFor(/successfully reconstructed/);
  await sleep(1500);
  assert.equal(await cli.quit(), 0);
  assert.ok(!cli.output.includes(ERASE_LINE), "an erase-line sequence off a terminal");
  assert.doesNotMatch(cli.output, /files? done, \d+ in flight/);
});
