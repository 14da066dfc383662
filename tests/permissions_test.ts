/**
 * The CLI run with the narrow permissions README.md documents ("Permissions"): it rebuilds files
 * against the real broker, and each permission left out ends the run with one line naming the
 * flag to add, exit status 1 and no stack trace.
 */
import assert from "node:assert/strict";
import {
  assertSameTree,
  join,
  produceTree,
  RUNS_BINARY,
  sleep,
  tempDir,
  treeDigest,
  writeRandomFile,
} from "./_cli.ts";
import { bootstrapServers, createTopic, uniqueGroupId, uniqueTopicName } from "./_kafka.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const README = new URL("../README.md", import.meta.url);

/** What kafkajs 2.2.4 reads from the environment (README's list). */
const KAFKAJS_ENV = [
  "NODE_ENV",
  "KAFKAJS_LOG_LEVEL",
  "KAFKAJS_DEBUG_PROTOCOL_BUFFERS",
  "KAFKAJS_DEBUG_EXTENDED_PROTOCOL_BUFFERS",
];
/** The variable the test config takes its bootstrap servers from. */
const BOOTSTRAP_VAR = "DFDD_PERMISSIONS_TEST_BOOTSTRAP";

/** The documented narrow flags for a run writing to `out` with `config`. */
function narrowFlags(out: string, config: string, env = [...KAFKAJS_ENV, BOOTSTRAP_VAR]) {
  return {
    prompt: "--no-prompt",
    read: `--allow-read=${out},${config}`,
    write: `--allow-write=${out}`,
    net: `--allow-net=${bootstrapServers()}`,
    env: `--allow-env=${env.join(",")}`,
  };
}

/** Flags by name; an undefined one is left out. */
type Flags = Record<string, string | undefined>;

/** A config whose bootstrap servers come from `$DFDD_PERMISSIONS_TEST_BOOTSTRAP`. */
async function writeConfig(dir: string): Promise<string> {
  const path = join(dir, "download.config");
  await Deno.writeTextFile(
    path,
    `[broker]\nbootstrap.servers = $${BOOTSTRAP_VAR}\n\n[consumer]\nauto.offset.reset = earliest\nenable.auto.commit = False\n`,
  );
  return path;
}

function command(flags: Flags, args: string[], stdin: "piped" | "null") {
  const given = Object.values(flags).filter((flag) => flag !== undefined);
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...given, CLI, ...args],
    env: { NO_COLOR: "1", [BOOTSTRAP_VAR]: bootstrapServers() },
    stdin,
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs the CLI to its end (stdin closed) and returns its exit status and output. */
async function runToEnd(flags: Flags, args: string[]) {
  const child = command(flags, args, "null").spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    return { code: out.code, output: decoder.decode(out.stderr) + decoder.decode(out.stdout) };
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts a run that ended with exit 1 on one line matching `line`, with no stack trace. */
function assertRefused(run: { code: number; output: string }, line: RegExp): void {
  assert.equal(run.code, 1, run.output);
  const last = run.output.trimEnd().split("\n").at(-1) ?? "";
  assert.match(last, /^DataFileDownloadDirectory: error: Cannot run: this program needs /);
  assert.match(last, line);
  assert.match(last, /see "Permissions" in README\.md$/);
  assert.doesNotMatch(run.output, /\n\s+at /, "no stack trace");
  assert.doesNotMatch(run.output, /Uncaught|NotCapable/);
}

/** Escapes `text` for a RegExp. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * These tests are about `deno run`'s permission flags: a compiled binary (DFDD_PROGRAM) has its
 * permissions baked in, so they do not apply to it.
 */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: RUNS_BINARY, fn });
}

test("README documents the narrow flags this test runs with", async () => {
  const readme = await Deno.readTextFile(README);
  const section = readme.split(/^### Permissions$/m)[1]?.split(/^##/m)[0] ?? "";
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  assert.ok(block.includes("deno run"), "a deno run line in the Permissions section");
  const flags = [...block.matchAll(/(--[\w-]+)(?:=(\S+))?/g)].filter(([, f]) =>
    f?.startsWith("--allow-") || f === "--no-prompt"
  );
  assert.deepEqual(
    flags.map(([, f]) => f).sort(),
    Object.values(narrowFlags("o", "c")).map((f) => f.replace(/=.*/, "")).sort(),
  );
  const env = flags.find(([, f]) => f === "--allow-env")?.[2]?.split(",") ?? [];
  for (const name of KAFKAJS_ENV) assert.ok(env.includes(name), `README's --allow-env has ${name}`);
  assert.doesNotMatch(block, /--allow-sys|--allow-all|-A\b/);
});

test("with the documented narrow flags the CLI rebuilds files byte for byte", async () => {
  const dir = await tempDir("perm_ok");
  try {
    const src = join(dir, "src");
    const out = join(dir, "out");
    await writeRandomFile(join(src, "sub", "a.bin"), 300_000);
    await writeRandomFile(join(src, "b.bin"), 1000);
    const topic = await createTopic(2, "perm_ok");
    await produceTree(topic, src, undefined, 65536);
    const config = await writeConfig(dir);
    const args = [out, "--config", config, "--topic_name", topic];
    const child = command(
      narrowFlags(out, config),
      [...args, "--consumer_group_id", uniqueGroupId("perm_ok")],
      "piped",
    ).spawn();
    const output = child.output();
    try {
      const deadline = Date.now() + 120_000;
      while ((await treeDigest(out).catch(() => new Map())).size < 2) {
        assert.ok(Date.now() < deadline, "the files were not rebuilt within 120 s");
        await sleep(200);
      }
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("q\n"));
      await writer.close();
    } catch (error) {
      child.kill("SIGKILL");
      throw error;
    } finally {
      const { code, stderr } = await output;
      const text = new TextDecoder().decode(stderr);
      assert.equal(code, 0, text);
      assert.doesNotMatch(text, /Cannot run|NotCapable|\n\s+at /);
    }
    await assertSameTree(src, out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("without write access to the output directory: one line naming --allow-write, exit 1", async () => {
  const dir = await tempDir("perm_write");
  try {
    const out = join(dir, "out");
    const elsewhere = join(dir, "elsewhere");
    await Deno.mkdir(elsewhere);
    const config = await writeConfig(dir);
    const args = [
      out,
      "--config",
      config,
      "--topic_name",
      uniqueTopicName("perm_write"),
      "--consumer_group_id",
      uniqueGroupId("perm_write"),
    ];
    const want = new RegExp(
      `needs write access to "${literal(out)}" \\(run with --allow-write=${literal(out)},`,
    );
    // The output directory missing (it cannot be created), then existing (the log file in it
    // cannot be opened); --allow-write left out, then pointing elsewhere.
    for (const write of [undefined, `--allow-write=${elsewhere}`]) {
      await Deno.remove(out, { recursive: true }).catch(() => {});
      const flags = { ...narrowFlags(out, config), write };
      assertRefused(await runToEnd(flags, args), want);
      await Deno.mkdir(out);
      assertRefused(await runToEnd(flags, args), want);
    }
    assert.deepEqual([...Deno.readDirSync(out)], [], "nothing was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("without net access to the broker: one line naming --allow-net, exit 1", async () => {
  const dir = await tempDir("perm_net");
  try {
    const out = join(dir, "out");
    const config = await writeConfig(dir);
    const topic = await createTopic(1, "perm_net");
    const args = [out, "--config", config, "--topic_name", topic];
    const broker = literal(bootstrapServers());
    const want = new RegExp(`needs net access to "${broker}" \\(run with --allow-net=${broker},`);
    for (const net of [undefined, "--allow-net=127.0.0.1:1"]) {
      const flags = { ...narrowFlags(out, config), net };
      const group = uniqueGroupId("perm_net");
      assertRefused(await runToEnd(flags, [...args, "--consumer_group_id", group]), want);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("without env access to kafkajs's variables: one line naming --allow-env, exit 1", async () => {
  const dir = await tempDir("perm_kafkajs_env");
  try {
    const out = join(dir, "out");
    const config = await writeConfig(dir);
    const topic = await createTopic(1, "perm_kafkajs_env");
    const args = [out, "--config", config, "--topic_name", topic];
    // Read as kafkajs loads, as it makes its logger, and as it decodes the broker's answers.
    for (const name of KAFKAJS_ENV.filter((n) => n !== "KAFKAJS_DEBUG_EXTENDED_PROTOCOL_BUFFERS")) {
      const env = [...KAFKAJS_ENV, BOOTSTRAP_VAR].filter((n) => n !== name);
      const flags = narrowFlags(out, config, env);
      const group = uniqueGroupId("perm_kafkajs_env");
      assertRefused(
        await runToEnd(flags, [...args, "--consumer_group_id", group]),
        new RegExp(`needs env access to "${name}" \\(run with --allow-env=${name},`),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("without env access to a $VAR of the config: one line naming it, exit 1", async () => {
  const dir = await tempDir("perm_config_env");
  try {
    const out = join(dir, "out");
    const config = await writeConfig(dir);
    const flags = narrowFlags(out, config, KAFKAJS_ENV);
    const run = await runToEnd(flags, [
      out,
      "--config",
      config,
      "--topic_name",
      uniqueTopicName("perm_config_env"),
      "--consumer_group_id",
      uniqueGroupId("perm_config_env"),
    ]);
    assertRefused(
      run,
      new RegExp(
        `needs env access to "${BOOTSTRAP_VAR}" \\(run with --allow-env=${BOOTSTRAP_VAR},`,
      ),
    );
    // Without read access to the config file itself.
    assertRefused(
      await runToEnd({ ...flags, read: `--allow-read=${out}` }, [out, "--config", config]),
      new RegExp(`needs read access to "${literal(config)}" \\(run with --allow-read=`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
