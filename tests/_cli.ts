/**
 * Helpers for end-to-end tests: spawn the real CLI with explicit permissions, talk to its
 * console, make file trees, produce them as chunk messages and compare trees.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { dirname, join, relative } from "node:path";
import {
  chunkMessagesOfFile,
  type Keying,
  listFiles,
  produceFiles,
} from "../src/wire/chunk_producer.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import { LOG_FILE_NAME, STATE_DIR_NAME } from "../src/store/safe_path.ts";
import { bootstrapServers, committedOffsets, endOffsets, testKafka } from "./_kafka.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** The permissions the CLI runs with in tests (and in the README, and `deno task start`). */
export const CLI_PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-sys",
  "--allow-ffi",
];

/**
 * The program under test, as a command: the compiled binary named by `DFDD_PROGRAM` (the release
 * workflow runs the end-to-end tests against it), or `deno run` with `permissions` on cli.ts.
 */
export function programCommand(
  args: string[],
  permissions: string[] = CLI_PERMISSIONS,
): { command: string; args: string[] } {
  const binary = Deno.env.get("DFDD_PROGRAM");
  if (binary) return { command: binary, args };
  return { command: Deno.execPath(), args: ["run", ...permissions, CLI, ...args] };
}

/** True when the tests run a compiled binary (`DFDD_PROGRAM`) rather than `deno run`. */
export const RUNS_BINARY = Boolean(Deno.env.get("DFDD_PROGRAM"));

/** A running CLI process. */
export class CliProcess {
  readonly child: Deno.ChildProcess;
  #stderr = "";
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly done: Promise<Deno.CommandStatus>;
  #reading: Promise<void>;

  constructor(args: string[], env: Record<string, string> = {}) {
    const program = programCommand(args);
    this.child = new Deno.Command(program.command, {
      args: program.args,
      env: { LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: bootstrapServers(), NO_COLOR: "1", ...env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    const decoder = new TextDecoder();
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const bytes of stream) {
        const text = decoder.decode(bytes, { stream: true });
        this.#stderr += text;
        if (Deno.env.get("TEST_VERBOSE")) Deno.stderr.writeSync(bytes);
      }
    };
    this.#reading = Promise.all([collect(this.child.stderr), collect(this.child.stdout)]).then(
      () => {},
    );
    this.done = this.child.status;
  }

  /** Everything the process printed so far. */
  get output(): string {
    return this.#stderr;
  }

  /** Types a line on the console. */
  async send(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Waits until the output matches `pattern` `count` times. */
  async waitFor(pattern: RegExp, timeoutMs = 120_000, count = 1): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const global = new RegExp(
      pattern.source,
      pattern.flags.includes("g") ? pattern.flags : pattern.flags + "g",
    );
    while ((this.#stderr.match(global)?.length ?? 0) < count) {
      if (Date.now() > deadline) {
        throw new Error(
          `Timed out waiting for ${pattern} x${count}; output so far:\n${
            this.#stderr.slice(-4000)
          }`,
        );
      }
      const exited = await Promise.race([this.done.then(() => true), sleep(100).then(() => false)]);
      if (exited && (this.#stderr.match(global)?.length ?? 0) < count) {
        await this.#reading;
        throw new Error(`The CLI exited before ${pattern}; output:\n${this.#stderr.slice(-4000)}`);
      }
    }
  }

  /** Sends `q` and waits for the exit; returns the exit code. */
  async quit(timeoutMs = 60_000): Promise<number> {
    await this.send("q");
    return await this.exit(timeoutMs);
  }

  /** Waits for the exit; returns the exit code. */
  async exit(timeoutMs = 60_000): Promise<number> {
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const status = await this.done;
    clearTimeout(timer);
    await this.#writer.close().catch(() => {});
    await this.#reading;
    return status.code;
  }

  /** Kills the process (SIGKILL by default) and waits for it. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
    await this.exit();
  }
}

/**
 * Starts the CLI on `topic` with the built-in `local_broker_test` config (the test broker) and
 * consumer group `group`, rebuilding into `out`; `extra` arguments follow.
 */
export function startDownloader(
  out: string,
  topic: string,
  group: string,
  ...extra: string[]
): CliProcess {
  return startDownloaderWith("local_broker_test", out, topic, group, ...extra);
}

/** {@linkcode startDownloader} with the config file (or built-in config name) `config`. */
export function startDownloaderWith(
  config: string,
  out: string,
  topic: string,
  group: string,
  ...extra: string[]
): CliProcess {
  return new CliProcess([
    out,
    "--config",
    config,
    "--topic_name",
    topic,
    "--consumer_group_id",
    group,
    ...extra,
  ]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes `size` pseudo-random bytes to `path` (parents created). */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const block = new Uint8Array(1 << 16);
    for (let left = size; left > 0; left -= block.length) {
      crypto.getRandomValues(block);
      const n = Math.min(left, block.length);
      let written = 0;
      while (written < n) written += await file.write(block.subarray(written, n));
    }
  } finally {
    file.close();
  }
}

/** SHA-256 of every regular file under `dir` (relative path → hex), leaving out the program's own files. */
export async function treeDigest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const path of await listFiles(dir)) {
    const rel = relative(dir, path);
    if (rel.startsWith(STATE_DIR_NAME + "/") || rel === LOG_FILE_NAME) continue;
    out.set(rel, createHash("sha256").update(await Deno.readFile(path)).digest("hex"));
  }
  return out;
}

/** Asserts that `out` holds exactly the files of `src` whose relative path passes `filter`, byte-identical. */
export async function assertSameTree(
  src: string,
  out: string,
  filter: (rel: string) => boolean = () => true,
) {
  const expected = new Map([...await treeDigest(src)].filter(([rel]) => filter(rel)));
  const actual = await treeDigest(out);
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [rel, digest] of expected) assert.equal(actual.get(rel), digest, `${rel} differs`);
}

/**
 * Produces every file under `root` to `topic` as chunk messages, keyed per chunk as OpenMSIStream's
 * uploader keys them (a file's chunks spread over the partitions) unless `keying` says `file`.
 * Returns the number of chunks.
 */
export async function produceTree(
  topic: string,
  root: string,
  files?: string[],
  chunkSize?: number,
  keying: Keying = "chunk",
): Promise<number> {
  registerCodecs();
  const producer = testKafka().producer();
  await producer.connect();
  try {
    return await produceFiles(
      producer,
      topic,
      root,
      files ?? await listFiles(root),
      { keying, ...(chunkSize ? { chunkSize } : {}) },
    );
  } finally {
    await producer.disconnect();
  }
}

/** Waits until `groupId` has committed every partition of `topic` up to its end. */
export async function waitForCommitted(
  groupId: string,
  topic: string,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const [committed, end] = await Promise.all([
      committedOffsets(groupId, topic),
      endOffsets(topic),
    ]);
    if ([...end].every(([p, high]) => high === 0n || committed.get(p) === high)) return;
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for commits: committed ${[...committed]} end ${[...end]}`);
    }
    await sleep(250);
  }
}

/**
 * The chunk messages of every file under `root` (64 KiB chunks by default), file by file, keyed
 * per chunk as OpenMSIStream's uploader keys them unless `keying` says `file`.
 */
export async function chunkMessagesOfTree(
  root: string,
  chunkSize = 65536,
  keying: Keying = "chunk",
): Promise<{ key: string; value: Buffer }[]> {
  const messages: { key: string; value: Buffer }[] = [];
  for (const path of await listFiles(root)) {
    for await (const { key, value } of chunkMessagesOfFile(path, root, chunkSize, keying)) {
      messages.push({ key, value });
    }
  }
  return messages;
}

/**
 * Writes a config file for `bootstrap` whose short session timeout lets a killed or departed
 * member leave the group within seconds. Returns its path.
 */
export async function fastRejoinConfig(bootstrap: string): Promise<string> {
  const path = join(await tempDir("cfg"), "fast_rejoin.config");
  await Deno.writeTextFile(
    path,
    `[broker]
bootstrap.servers = ${bootstrap}

[consumer]
auto.offset.reset = earliest
enable.auto.commit = False
session.timeout.ms = 6000
heartbeat.interval.ms = 500
`,
  );
  return path;
}

/** A fresh temporary directory. */
export async function tempDir(prefix: string): Promise<string> {
  return await Deno.makeTempDir({ prefix: `dfdd_${prefix}_` });
}

export { join };

const IDLE_MEMBER = new URL("./_idle_member.ts", import.meta.url).pathname;

/**
 * Another member of a consumer group, in a process of its own (`tests/_idle_member.ts`): it takes
 * the partitions it is given and reads them without committing. {@linkcode IdleMember.start}
 * resolves once it has joined.
 */
export class IdleMember {
  /** Its output lines: `joined <partitions|nothing>`, and `read <n>` at exit. */
  readonly said: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  private constructor(topic: string, group: string) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-env",
        "--allow-read",
        IDLE_MEMBER,
        bootstrapServers(),
        topic,
        group,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    this.#reading = (async () => {
      const decoder = new TextDecoder();
      for await (const bytes of child.stdout) {
        this.said.push(...decoder.decode(bytes).split("\n").filter((l) => l !== ""));
      }
    })();
  }

  /** Starts a member and waits (at most 60 s) until it joined, with a partition if `withPartition`. */
  static async start(
    topic: string,
    group: string,
    { withPartition = false } = {},
  ): Promise<IdleMember> {
    const member = new IdleMember(topic, group);
    const joined = withPartition ? /^joined \d/ : /^joined /;
    const deadline = Date.now() + 60_000;
    while (!member.said.some((l) => joined.test(l))) {
      if (Date.now() > deadline) {
        await member.stop("SIGKILL");
        throw new Error(
          `The idle member never joined${withPartition ? " with a partition" : ""}: ${member.said}`,
        );
      }
      await sleep(100);
    }
    return member;
  }

  /** Leaves the group cleanly (SIGTERM), or dies (SIGKILL); waits for the process to end. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    try {
      this.#child.kill(signal);
    } catch {
      // already gone
    }
    await this.#child.status;
    await this.#reading;
  }
}
