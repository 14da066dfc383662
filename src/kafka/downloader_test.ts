/**
 * Unit tests of the Downloader without a broker: a fake kafkajs client hands it batches of real
 * chunk messages and records every commit together with what was on disk at that moment.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import type {
  Admin,
  Consumer,
  ConsumerConfig,
  ConsumerEvents,
  ConsumerRunConfig,
  ConsumerSubscribeTopic,
  ConsumerSubscribeTopics,
  EachBatchPayload,
  Kafka,
  KafkaMessage,
} from "kafkajs";
import { bytesEqual, type DataFileChunk, encodeChunk, fileKey } from "../wire/chunk_codec.ts";
import { sha512 } from "../wire/sha512.ts";
import { chunksOfFile } from "../wire/chunk_producer.ts";
import { Downloader, fetchBytesPerPartition } from "./downloader.ts";
import { Logger } from "../console/logger.ts";
import { STATE_DIR_NAME } from "../store/safe_path.ts";
import type { CrashHook } from "../store/state_file.ts";

const TOPIC = "chunks";
const CHUNK_SIZE = 1024;

// ---------------------------------------------------------------------------------------------
// The fake kafkajs client: only what Downloader calls (admin: connect, listTopics,
// fetchTopicOffsets, disconnect;
// consumer: on, connect, subscribe, run with eachBatch, commitOffsets, disconnect). Downloader
// never calls eachMessage, pause, resume or the payload's commitOffsetsIfNecessary: the fake
// throws if it ever does, so such a change is noticed here.
// ---------------------------------------------------------------------------------------------

/** The consumer methods Downloader uses. */
type UsedConsumer = Pick<
  Consumer,
  "on" | "events" | "connect" | "subscribe" | "run" | "commitOffsets" | "disconnect"
>;
/** The admin methods Downloader uses. */
type UsedAdmin = Pick<
  Admin,
  "connect" | "listTopics" | "disconnect" | "fetchOffsets" | "fetchTopicOffsets"
>;
type OffsetEntry = Parameters<Consumer["commitOffsets"]>[0][number];

/** One call of `commitOffsets`, as the broker would have stored it. */
interface Commit {
  consumer: number;
  topic: string;
  partition: number;
  offset: string;
}

const EVENTS: ConsumerEvents = {
  HEARTBEAT: "consumer.heartbeat",
  COMMIT_OFFSETS: "consumer.commit_offsets",
  GROUP_JOIN: "consumer.group_join",
  FETCH_START: "consumer.fetch_start",
  FETCH: "consumer.fetch",
  START_BATCH_PROCESS: "consumer.start_batch_process",
  END_BATCH_PROCESS: "consumer.end_batch_process",
  CONNECT: "consumer.connect",
  DISCONNECT: "consumer.disconnect",
  STOP: "consumer.stop",
  CRASH: "consumer.crash",
  REBALANCING: "consumer.rebalancing",
  RECEIVED_UNSUBSCRIBED_TOPICS: "consumer.received_unsubscribed_topics",
  REQUEST: "consumer.network.request",
  REQUEST_TIMEOUT: "consumer.network.request_timeout",
  REQUEST_QUEUE_SIZE: "consumer.network.request_queue_size",
};

function unused(name: string): () => never {
  return () => {
    throw new Error(`Downloader is not expected to call ${name}`);
  };
}

class FakeConsumer implements UsedConsumer {
  readonly events = EVENTS;
  readonly index: number;
  readonly config: ConsumerConfig;
  readonly #kafka: FakeKafka;
  /** Names of the calls, in order. */
  readonly calls: string[] = [];
  readonly listeners: string[] = [];
  subscription: ConsumerSubscribeTopic | ConsumerSubscribeTopics | undefined;
  runConfig: ConsumerRunConfig | undefined;
  running = false;
  readonly resolved: string[] = [];
  heartbeats = 0;
  /** When set, every heartbeat fails with it (kafkajs: the group is rebalancing). */
  heartbeatError: Error | undefined;

  constructor(kafka: FakeKafka, index: number, config: ConsumerConfig) {
    this.#kafka = kafka;
    this.index = index;
    this.config = config;
  }

  readonly #handlers = new Map<string, ((event: never) => void)[]>();

  on(eventName: string, listener: (event: never) => void): () => void {
    this.listeners.push(eventName);
    this.#handlers.set(eventName, [...(this.#handlers.get(eventName) ?? []), listener]);
    return () => {};
  }

  /** Emits an instrumentation event, as kafkajs does (`payload` as kafkajs gives it). */
  emit(eventName: string, payload: unknown): void {
    for (const handler of this.#handlers.get(eventName) ?? []) {
      (handler as (event: unknown) => void)({ id: 0, type: eventName, timestamp: 0, payload });
    }
  }

  connect(): Promise<void> {
    this.calls.push("connect");
    this.#kafka.joinLog.push(`connect ${this.index}`);
    return Promise.resolve();
  }

  subscribe(subscription: ConsumerSubscribeTopic | ConsumerSubscribeTopics): Promise<void> {
    this.calls.push("subscribe");
    this.subscription = subscription;
    return Promise.resolve();
  }

  /** Resolves once the consumer has joined the group (a few milliseconds later), as kafkajs does. */
  async run(config?: ConsumerRunConfig): Promise<void> {
    this.calls.push("run");
    this.runConfig = config;
    this.running = true;
    this.#kafka.joinLog.push(`run ${this.index}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
    this.#kafka.joinLog.push(`joined ${this.index}`);
  }

  async commitOffsets(offsets: OffsetEntry[]): Promise<void> {
    this.calls.push("commitOffsets");
    for (const { topic, partition, offset } of offsets) {
      const commit = { consumer: this.index, topic, partition, offset };
      // What is on disk now is what a crash right after this commit would leave.
      await this.#kafka.onCommit?.(commit);
      this.#kafka.commits.push(commit);
    }
  }

  disconnect(): Promise<void> {
    this.calls.push("disconnect");
    this.running = false;
    return Promise.resolve();
  }

  /**
   * Hands one fetched batch to the `eachBatch` given to `run()`, as kafkajs does, and waits for
   * it; a batch still running after `timeoutMs` fails the test (stopping the downloader ends it).
   * The partition's log ends after the batch unless `logEnd` (its high watermark) says otherwise.
   */
  async deliver(
    partition: number,
    messages: KafkaMessage[],
    timeoutMs = 20_000,
    logEnd?: number,
  ): Promise<void> {
    const eachBatch = this.runConfig?.eachBatch;
    assert.ok(this.running && eachBatch, "deliver() before run()");
    const last = messages.at(-1)?.offset ?? "-1";
    const payload: EachBatchPayload = {
      batch: {
        topic: TOPIC,
        partition,
        highWatermark: logEnd === undefined ? String(BigInt(last) + 1n) : String(logEnd),
        messages,
        isEmpty: () => messages.length === 0,
        firstOffset: () => messages[0]?.offset ?? null,
        lastOffset: () => last,
        offsetLag: () => "0",
        offsetLagLow: () => "0",
      },
      resolveOffset: (offset) => {
        this.resolved.push(offset);
      },
      heartbeat: () => {
        this.heartbeats++;
        return this.heartbeatError ? Promise.reject(this.heartbeatError) : Promise.resolve();
      },
      isRunning: () => this.running,
      isStale: () => false,
      pause: unused("pause"),
      commitOffsetsIfNecessary: unused("commitOffsetsIfNecessary"),
      uncommittedOffsets: unused("uncommittedOffsets"),
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        eachBatch(payload),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`The batch of partition ${partition} did not finish`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

class FakeKafka {
  readonly consumers: FakeConsumer[] = [];
  readonly commits: Commit[] = [];
  /** `connect i`, `run i` and `joined i` of the consumers, in the order they happened. */
  readonly joinLog: string[] = [];
  /** Called inside `commitOffsets`, before the commit counts. */
  onCommit: ((commit: Commit) => Promise<void>) | undefined;

  admin(): UsedAdmin {
    return {
      connect: () => Promise.resolve(),
      listTopics: () => Promise.resolve([TOPIC, "__consumer_offsets"]),
      disconnect: () => Promise.resolve(),
      fetchOffsets: unused("admin.fetchOffsets"),
      fetchTopicOffsets: () =>
        Promise.resolve([0, 1].map((partition) => ({
          partition,
          offset: "0",
          high: "0",
          low: "0",
        }))),
    };
  }

  consumer(config: ConsumerConfig): UsedConsumer {
    const consumer = new FakeConsumer(this, this.consumers.length, config);
    this.consumers.push(consumer);
    return consumer;
  }

  /** The client, as the type Downloader takes (only the methods above are ever called). */
  asKafka(): Kafka {
    return this as unknown as Kafka;
  }
}

// ---------------------------------------------------------------------------------------------
// Records, files and what is on disk.
// ---------------------------------------------------------------------------------------------

function record(offset: number, value: Uint8Array | null, key: string | null = null): KafkaMessage {
  return {
    key: key === null ? null : Buffer.from(key),
    value: value === null ? null : Buffer.from(value.buffer, value.byteOffset, value.byteLength),
    timestamp: String(Date.now()),
    attributes: 0,
    offset: String(offset),
    headers: {},
  };
}

/** Records of `chunks` at consecutive offsets from `first`. */
function records(first: number, chunks: DataFileChunk[]): KafkaMessage[] {
  return chunks.map((chunk, i) => record(first + i, encodeChunk(chunk)));
}

function random(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A single-chunk file's chunk, hashes right. */
function singleChunk(data: Uint8Array, filename: string, subdirStr = ""): DataFileChunk {
  return {
    filename,
    fileHash: sha512(data),
    chunkHash: sha512(data),
    chunkOffsetWrite: 0,
    chunkI: 1,
    nTotalChunks: 1,
    subdirStr,
    filenameAppend: "",
    data,
    fileMtime: 1700000000,
  };
}

function relPath(chunk: DataFileChunk): string {
  return chunk.subdirStr === "" ? chunk.filename : `${chunk.subdirStr}/${chunk.filename}`;
}

async function readOrUndefined(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** A generation in progress as found in `partial/`: its path (once described), journal and data. */
interface PartialFile {
  path: string | undefined;
  /** Whole journal lines (`offset length`). */
  journal: Set<string>;
  data: Uint8Array | undefined;
}

async function readPartials(out: string): Promise<PartialFile[]> {
  const dir = join(out, STATE_DIR_NAME, "partial");
  const ids = new Set<string>();
  for await (const entry of Deno.readDir(dir)) {
    const m = /^([0-9a-f]{32})\.(data|offsets|json)$/.exec(entry.name);
    if (m) ids.add(m[1]!);
  }
  const found: PartialFile[] = [];
  for (const id of ids) {
    const meta = await readOrUndefined(join(dir, `${id}.json`));
    const journal = await readOrUndefined(join(dir, `${id}.offsets`));
    const text = new TextDecoder().decode(journal ?? new Uint8Array());
    // Only lines with their newline: a line being appended right now does not count.
    const lines = text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter((l) => l !== "");
    found.push({
      path: meta === undefined
        ? undefined
        : (JSON.parse(new TextDecoder().decode(meta)) as { target: { path: string } }).target.path,
      journal: new Set(lines),
      data: await readOrUndefined(join(dir, `${id}.data`)),
    });
  }
  return found;
}

function journalLine(chunk: DataFileChunk): string {
  return `${chunk.chunkOffsetWrite} ${chunk.data.length}`;
}

/**
 * Asserts that `chunk` is durable: journaled (the journal is appended only after its data was
 * synced) with its bytes in the partial file, or part of a published file with the right hash.
 * Partial files are read before the published one, so a file published meanwhile is still found.
 */
async function assertDurable(out: string, chunk: DataFileChunk, when: string): Promise<void> {
  const path = relPath(chunk);
  const partial = (await readPartials(out)).find((p) => p.path === path);
  const { chunkOffsetWrite: at, data } = chunk;
  if (partial?.journal.has(journalLine(chunk)) && partial.data !== undefined) {
    assert.ok(
      bytesEqual(partial.data.subarray(at, at + data.length), data),
      `${when}: chunk ${chunk.chunkI} of ${path} is journaled but its bytes are not in the partial file`,
    );
    return;
  }
  const published = await readOrUndefined(join(out, path));
  assert.ok(
    published !== undefined && bytesEqual(sha512(published), chunk.fileHash),
    `${when}: chunk ${chunk.chunkI} of ${path} is neither journaled nor in a published file`,
  );
}

/** Quarantined records by offset: the description's fields and the kept value, if any. */
async function quarantinedRecords(
  out: string,
): Promise<Map<string, { fields: Map<string, string>; value: Uint8Array | undefined }>> {
  const dir = join(out, STATE_DIR_NAME, "quarantine");
  const found = new Map<string, { fields: Map<string, string>; value: Uint8Array | undefined }>();
  for await (const entry of Deno.readDir(dir)) {
    if (!/-p\d+-o\d+\.txt$/.test(entry.name)) continue;
    const text = await Deno.readTextFile(join(dir, entry.name));
    const fields = new Map(
      text.trimEnd().split("\n").map((line) => {
        const colon = line.indexOf(": ");
        return [line.slice(0, colon), line.slice(colon + 2)] as [string, string];
      }),
    );
    const value = await readOrUndefined(join(dir, entry.name.replace(/\.txt$/, ".value")));
    found.set(fields.get("offset")!, { fields, value });
  }
  return found;
}

async function until(what: string, test: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The error Deno's file system raises on a full disk. */
function noSpace(syscall: string): Error {
  return Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), {
    code: "ENOSPC",
    errno: -28,
    syscall,
  });
}

// ---------------------------------------------------------------------------------------------
// Setup: a temp folder with `src/` (source files) and `out/` (the output directory).
// ---------------------------------------------------------------------------------------------

interface Setup {
  out: string;
  kafka: FakeKafka;
  downloader: Downloader;
  /** Every log line. */
  lines: string[];
  /** Writes a source file with this content and mtime, and returns its chunks. */
  source(
    relative: string,
    bytes: Uint8Array,
    mtime?: Date,
  ): Promise<{ path: string; chunks: DataFileChunk[] }>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  options: {
    consumers?: number;
    crashHook?: CrashHook;
    pacing?: { budget?: number; slackMs?: number };
    consumerConfig?: Omit<ConsumerConfig, "groupId">;
  } = {},
): Promise<Setup> {
  const root = await Deno.makeTempDir({ prefix: "downloader_test_" });
  let downloader: Downloader | undefined;
  const dispose = async () => {
    try {
      await downloader?.stop();
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  };
  try {
    const out = join(root, "out");
    const src = join(root, "src");
    await Deno.mkdir(out);
    await Deno.mkdir(src);
    const lines: string[] = [];
    const logger = new Logger({ name: "test", streamLevel: 0, stream: (l) => lines.push(l) });
    const kafka = new FakeKafka();
    const consumers = options.consumers ?? 1;
    downloader = new Downloader({
      kafka: kafka.asKafka(),
      topic: TOPIC,
      groupId: "downloader-test",
      consumers,
      outputDir: out,
      logger,
      retrySeconds: 0.05,
      ...(options.crashHook ? { crashHook: options.crashHook } : {}),
      ...(options.pacing ? { pacing: options.pacing } : {}),
      ...(options.consumerConfig ? { consumerConfig: options.consumerConfig } : {}),
    });
    await downloader.start();
    assert.equal(kafka.consumers.length, consumers);
    return {
      out,
      kafka,
      downloader,
      lines,
      async source(relative, bytes, mtime) {
        const path = join(src, relative);
        await Deno.mkdir(join(path, ".."), { recursive: true });
        await Deno.writeFile(path, bytes);
        if (mtime) await Deno.utime(path, mtime, mtime);
        return { path, chunks: await Array.fromAsync(chunksOfFile(path, src, CHUNK_SIZE)) };
      },
      [Symbol.asyncDispose]: dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Commits come after the data is on disk.
// ---------------------------------------------------------------------------------------------

Deno.test("the first consumer joins the group alone, then the others join together", async () => {
  await using t = await setup({ consumers: 3 });
  const log = t.kafka.joinLog;
  assert.ok(log.indexOf("joined 0") < log.indexOf("connect 1"), log.join(", "));
  assert.ok(log.indexOf("run 2") < log.indexOf("joined 1"), log.join(", "));
  assert.ok(log.includes("joined 2"), log.join(", "));
});

Deno.test("the consumer is run with manual commits only, and a batch is committed as its last offset + 1", async () => {
  await using t = await setup();
  const consumer = t.kafka.consumers[0]!;
  assert.deepEqual(consumer.calls, ["connect", "subscribe", "run"]);
  assert.equal(consumer.config.groupId, "downloader-test");
  assert.deepEqual(consumer.subscription, { topic: TOPIC, fromBeginning: true });
  // kafkajs would otherwise commit resolved offsets on its own, before the data is synced.
  assert.equal(consumer.runConfig?.autoCommit, false);
  assert.equal(consumer.runConfig?.eachBatchAutoResolve, false);
  assert.ok(consumer.listeners.includes(EVENTS.CRASH));

  const { chunks } = await t.source("a.dat", random(2 * CHUNK_SIZE + 10, 1));
  await consumer.deliver(3, records(40, chunks.slice(0, 2)));
  await t.downloader.settled();
  await consumer.deliver(3, records(42, chunks.slice(2)));
  await t.downloader.settled();
  assert.deepEqual(t.kafka.commits, [
    { consumer: 0, topic: TOPIC, partition: 3, offset: "42" },
    { consumer: 0, topic: TOPIC, partition: 3, offset: "43" },
  ]);
  assert.deepEqual(consumer.resolved, ["40", "41", "42"]);
});

Deno.test("a fetch holds four OpenMSIStream 512 KiB chunks whole, with long paths, where 2 MiB cut the fourth", async () => {
  await using t = await setup();
  const limit = t.kafka.consumers[0]!.config.maxBytesPerPartition;
  assert.ok(limit !== undefined);
  // librdkafka sends such a chunk as a record batch of its own: the batch header (61 bytes), the
  // record's own fields (at most 32 bytes of varints and flags), its key and its value.
  const batchBytes = (subdir: string, filename: string) => {
    const value = encodeChunk({
      ...singleChunk(new Uint8Array(512 * 1024), filename, subdir),
      chunkI: 7,
      nTotalChunks: 32,
    });
    const key = `${subdir}_${filename}_7_of_32`;
    return 61 + 32 + key.length + value.length;
  };
  const longPath = batchBytes("instrument-07/2026-12-04/run-0042/".repeat(12), "x".repeat(200));
  assert.ok(4 * longPath <= limit, `four batches of ${longPath} bytes in ${limit}`);
  const shortPath = batchBytes("", "a.dat");
  assert.ok(4 * (shortPath - 32) > 2 * 1024 * 1024, `${shortPath} bytes: four fill 2 MiB`);
});

Deno.test("a consumer that holds one partition fetches half as much again of it", async () => {
  const base = fetchBytesPerPartition(4, 2);
  assert.equal(base, 2 * 1024 * 1024 + 16 * 1024);
  // Two partitions or more per consumer: the base limit.
  assert.equal(fetchBytesPerPartition(4, 1), base);
  assert.equal(fetchBytesPerPartition(8, 4), base);
  assert.equal(fetchBytesPerPartition(4, 3), base);
  // One partition per consumer (or none): half as much again, a whole number of bytes.
  const one = fetchBytesPerPartition(4, 4);
  assert.equal(one, 3 * 1024 * 1024 + 24 * 1024);
  assert.equal(fetchBytesPerPartition(4, 8), one);
  assert.equal(fetchBytesPerPartition(1, 1), one);
  // Six of OpenMSIStream's 512 KiB chunks (batches of about 524.6 KB) fit, where the base holds four.
  assert.equal(Math.floor(one / 524_600), 6);
  // The fake topic has two partitions: one consumer fetches both, two take one each.
  const limits: number[] = [];
  for (const consumers of [1, 2]) {
    await using t = await setup({ consumers });
    limits.push(...t.kafka.consumers.map((c) => Number(c.config.maxBytesPerPartition)));
  }
  assert.deepEqual(limits, [base, one, one]);
});

const MiB = 2 ** 20;

/** A fake consumer's fetch limits as kafkajs reads them at each fetch: per partition, per request. */
function limits(c: FakeConsumer): number[] {
  return [Number(c.config.maxBytesPerPartition), Number(c.config.maxBytes)];
}

/** The limits of two consumers on the fake topic's two partitions (one each), beside the broker. */
const NEAR_LIMITS = [fetchBytesPerPartition(2, 2), 8 * MiB];
/** Their limits while the broker is far away or records are large. */
const LARGER_LIMITS = [4 * MiB + 32 * 1024, 16 * MiB];

/** Fails unless a log line contains `text`. */
function assertLogged(lines: string[], text: string): void {
  assert.ok(lines.some((l) => l.includes(text)), `no log line has "${text}":\n${lines.join("\n")}`);
}

Deno.test("a broker far away (quick answers of 5 ms or more) doubles the fetch limits, and the log says so", async () => {
  await using t = await setup({ consumers: 2 });
  const [a, b] = t.kafka.consumers;
  assert.ok(a && b);
  const near = NEAR_LIMITS;
  assert.deepEqual(limits(a), near);
  a.emit(EVENTS.HEARTBEAT, {});
  a.emit(EVENTS.REQUEST, { apiName: "Fetch", duration: 480 }); // waits for data: not a measure
  assert.deepEqual(limits(a), near);

  a.emit(EVENTS.REQUEST, { apiName: "ApiVersions", duration: 21 });
  const far = LARGER_LIMITS;
  assert.deepEqual(limits(a), far);
  assert.deepEqual(limits(b), far, "one measure for all the consumers of the process");
  assertLogged(
    t.lines,
    "The broker is far away (its quickest answer took 21 ms): fetching up to 4.0 MiB per partition and 16.0 MiB per request",
  );

  b.emit(EVENTS.REQUEST, { apiName: "Heartbeat", duration: 1 });
  assert.deepEqual(limits(a), near);
  assertLogged(t.lines, "The broker is near again (its quickest answer took 1 ms)");
});

Deno.test("a consumer whose partitions all carry large records fetches twice as much, until one carries small records", async () => {
  await using t = await setup({ consumers: 2 });
  const [a, b] = t.kafka.consumers;
  assert.ok(a && b);
  const [near, larger] = [NEAR_LIMITS, LARGER_LIMITS];
  const assign = (c: FakeConsumer, partitions: number[]) =>
    c.emit(EVENTS.GROUP_JOIN, {
      groupId: "downloader-test",
      memberId: `m${partitions[0]}`,
      leaderId: "m0",
      isLeader: c === a,
      memberAssignment: { [TOPIC]: partitions },
      groupProtocol: "RoundRobinAssigner",
      duration: 1,
    });
  assign(a, [0]);
  assign(b, [1]);
  assert.deepEqual(limits(a), near);
  // Files of one 512 KiB chunk each (OpenMSIStream's chunk size) and of 4 KiB.
  const big = [0, 1, 2, 3].map((i) => singleChunk(random(512 * 1024, i + 1), `big${i}.dat`));
  const small = Array.from(
    { length: 40 },
    (_, i) => singleChunk(random(4096, i + 10), `small${i}.dat`),
  );
  await a.deliver(0, records(0, big.slice(0, 2)), undefined, 100);
  assert.deepEqual(limits(a), larger);
  assert.deepEqual(limits(b), near, "b's partition has shown no large records");
  assertLogged(
    t.lines,
    "Records of partition 0 are large (512 KiB on average in its last batch): a consumer whose partitions all carry large records is fetching up to 4.0 MiB per partition and 16.0 MiB per request",
  );
  // Small records on b's partition leave a's limits as they are.
  await b.deliver(1, records(0, small.slice(0, 20)), undefined, 100);
  assert.deepEqual(limits(b), near);
  assert.deepEqual(limits(a), larger);
  // A batch of tombstones says nothing of the size.
  await a.deliver(0, [record(2, null), record(3, null)], undefined, 100);
  assert.deepEqual(limits(a), larger);
  // One consumer holding both partitions fetches more only while both carry large records.
  assign(a, [0, 1]);
  assert.deepEqual(limits(a), near);
  await b.deliver(1, records(20, big.slice(2)), undefined, 100);
  assert.deepEqual(limits(a), larger);
  await a.deliver(0, records(4, small.slice(20)), undefined, 100);
  assert.deepEqual(limits(a), near);
  assertLogged(t.lines, "Records of partition 0 are small (4 KiB on average");
  // Every file was rebuilt all the same.
  for (const chunk of [...big, ...small]) {
    assert.deepEqual(await Deno.readFile(join(t.out, chunk.filename)), chunk.data);
  }
});

Deno.test("fetch limits from the config file stay as they are, however far the broker", async () => {
  await using t = await setup({ consumerConfig: { maxBytesPerPartition: 1024 * 1024 } });
  const c = t.kafka.consumers[0]!;
  c.emit(EVENTS.REQUEST, { apiName: "ApiVersions", duration: 40 });
  await c.deliver(0, records(0, [singleChunk(random(512 * 1024, 7), "big.dat")]));
  assert.equal(c.config.maxBytesPerPartition, 1024 * 1024);
  assert.equal(c.config.maxBytes, 8 * 1024 * 1024);
  assert.ok(
    !t.lines.some((l) => l.includes("The broker is") || l.includes("Records of partition")),
  );
});

Deno.test("every committed offset covers only chunks already synced to the journal or published", async () => {
  // At each chunk's write (before any flush), how many journal lines the partial files hold.
  const journaledAtWrite: number[] = [];
  let out = "";
  await using t = await setup({
    crashHook: (point) => {
      if (point !== "after-data-write") return;
      let lines = 0;
      const dir = join(out, STATE_DIR_NAME, "partial");
      for (const entry of Deno.readDirSync(dir)) {
        if (!entry.name.endsWith(".offsets")) continue;
        lines += Deno.readTextFileSync(join(dir, entry.name)).split("\n").length - 1;
      }
      journaledAtWrite.push(lines);
    },
  });
  out = t.out;
  const consumer = t.kafka.consumers[0]!;
  const bytes = random(4 * CHUNK_SIZE + 512, 2);
  const { chunks } = await t.source("run/a.dat", bytes);
  assert.equal(chunks.length, 5);
  const checked: string[] = [];
  t.kafka.onCommit = async ({ partition, offset }) => {
    assert.equal(partition, 0);
    for (const chunk of chunks.slice(0, Number(offset))) {
      await assertDurable(t.out, chunk, `commit of offset ${offset}`);
    }
    checked.push(offset);
  };

  const all = records(0, chunks);
  await consumer.deliver(0, all.slice(0, 2));
  await t.downloader.settled();
  await consumer.deliver(0, all.slice(2, 3));
  await t.downloader.settled();
  await consumer.deliver(0, all.slice(3));
  await t.downloader.settled();
  // A written chunk is not journaled until its batch is flushed: the journal then holds only the
  // chunks of earlier batches, so the check at commit time would catch a commit before the flush.
  assert.deepEqual(journaledAtWrite, [0, 0, 2, 3, 3]);
  assert.deepEqual(checked, ["2", "3", "5"]);
  assert.deepEqual(t.kafka.commits.map((c) => c.offset), ["2", "3", "5"]);
  assert.deepEqual(await Deno.readFile(join(t.out, "run/a.dat")), bytes);
});

Deno.test("a batch is synced and committed while the partition's next batches are handled; a commit not yet started gives way to a later one, and a stop waits for them", async () => {
  // Resolves when the given number of chunks have been written.
  let written = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  await using t = await setup({
    crashHook: (point) => {
      if (point !== "after-data-write") return;
      written++;
      for (const w of waiters.filter((w) => w.n <= written)) w.resolve();
    },
  });
  const writtenAtLeast = (n: number) =>
    n <= written ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }));
  const consumer = t.kafka.consumers[0]!;
  const bytes = random(4 * CHUNK_SIZE + 512, 12);
  const { chunks } = await t.source("overlap/a.dat", bytes);
  const all = records(0, chunks);
  const events: string[] = [];
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let releaseLast!: () => void;
  const lastHeld = new Promise<void>((resolve) => (releaseLast = resolve));
  t.kafka.onCommit = async ({ offset }) => {
    if (offset === "2") await held;
    if (offset === "5") await lastHeld;
    for (const chunk of chunks.slice(0, Number(offset))) {
      await assertDurable(t.out, chunk, `commit of offset ${offset}`);
    }
    events.push(`commit ${offset}`);
  };
  // Released on failure too, so that the test ends.
  try {
    // The first batch returns before its commit is over (it is held here)...
    await consumer.deliver(0, all.slice(0, 2));
    assert.equal(t.kafka.commits.length, 0);
    // ...and the partition's next batches are handled and return meanwhile: their commits wait
    // for the first, and the later one replaces the one queued before it (its flush covers both).
    const returns = async (batch: Promise<void>, what: string) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        batch,
        new Promise((_, reject) =>
          timer = setTimeout(() => reject(new Error(`${what} waited for the held commit`)), 5000)
        ),
      ]).finally(() => clearTimeout(timer));
    };
    await returns(consumer.deliver(0, all.slice(2, 4)), "the second batch");
    await returns(consumer.deliver(0, all.slice(4)), "the third batch");
    await writtenAtLeast(5);
    events.push("5 chunks written");
    assert.equal(t.kafka.commits.length, 0);
    release();
    while (!events.includes("commit 2")) await new Promise((resolve) => setTimeout(resolve, 5));
    // The last commit is still held when the stop begins: the stop waits for it.
    const stopped = t.downloader.stop();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(events, ["5 chunks written", "commit 2"]);
    releaseLast();
    await stopped;
    assert.deepEqual(events, ["5 chunks written", "commit 2", "commit 5"]);
    assert.deepEqual(t.kafka.commits.map((c) => c.offset), ["2", "5"]);
  } finally {
    release();
    releaseLast();
  }
  assert.deepEqual(await Deno.readFile(join(t.out, "overlap/a.dat")), bytes);
});

Deno.test("with two consumers on two partitions, each commit covers only chunks already on disk", async () => {
  await using t = await setup({ consumers: 2 });
  const a = await t.source("a.dat", random(4 * CHUNK_SIZE + 512, 3));
  const b = await t.source("sub/b.dat", random(2 * CHUNK_SIZE + 52, 4));
  const [a1, a2, a3, a4, a5] = a.chunks as [DataFileChunk, ...DataFileChunk[]];
  const [b1, b2, b3] = b.chunks as [DataFileChunk, ...DataFileChunk[]];
  // Each file's chunks are spread over both partitions, as keyed chunks are.
  const partitions = new Map<number, DataFileChunk[]>([
    [0, [a1, a3!, a5!, b2!]],
    [1, [a2!, a4!, b1!, b3!]],
  ]);
  let checks = 0;
  t.kafka.onCommit = async ({ partition, offset }) => {
    const chunks = partitions.get(partition)!.slice(0, Number(offset));
    for (const chunk of chunks) {
      await assertDurable(t.out, chunk, `commit of offset ${offset} of partition ${partition}`);
      checks++;
    }
  };
  const [c0, c1] = t.kafka.consumers as [FakeConsumer, FakeConsumer];
  const p0 = records(0, partitions.get(0)!);
  const p1 = records(0, partitions.get(1)!);
  await Promise.all([
    (async () => {
      await c0.deliver(0, p0.slice(0, 2));
      await t.downloader.settled();
      await c0.deliver(0, p0.slice(2));
      await t.downloader.settled();
    })(),
    (async () => {
      await c1.deliver(1, p1.slice(0, 1));
      await t.downloader.settled();
      await c1.deliver(1, p1.slice(1));
      await t.downloader.settled();
    })(),
  ]);
  const byPartition = (p: number) =>
    t.kafka.commits.filter((c) => c.partition === p).map((c) => [c.consumer, c.offset]);
  assert.deepEqual(byPartition(0), [[0, "2"], [0, "4"]]);
  assert.deepEqual(byPartition(1), [[1, "1"], [1, "4"]]);
  assert.equal(checks, 2 + 4 + 1 + 4);
  assert.deepEqual(await Deno.readFile(join(t.out, "a.dat")), await Deno.readFile(a.path));
  assert.deepEqual(await Deno.readFile(join(t.out, "sub/b.dat")), await Deno.readFile(b.path));
  assert.equal(t.downloader.status().filesCompleted, 2);
});

// ---------------------------------------------------------------------------------------------
// A complete file.
// ---------------------------------------------------------------------------------------------

Deno.test("a file whose chunks all arrive, out of order and some twice, is published byte-identical with its mtime", async () => {
  await using t = await setup();
  const consumer = t.kafka.consumers[0]!;
  const mtime = new Date(Date.UTC(2021, 2, 4, 5, 6, 7, 250));
  const bytes = random(5 * CHUNK_SIZE + 77, 5);
  const { path, chunks } = await t.source("run 7/ü data/file.raw", bytes, mtime);
  assert.equal(chunks.length, 6);
  assert.equal(chunks[0]!.fileMtime, mtime.getTime() / 1000);
  const [c1, c2, c3, c4, c5, c6] = chunks as [DataFileChunk, ...DataFileChunk[]];
  const order = [c4!, c1, c6!, c1, c3!, c2!, c4!, c5!];
  const final = join(t.out, "run 7/ü data/file.raw");

  await consumer.deliver(0, records(0, order.slice(0, 5)));
  await t.downloader.settled();
  await assert.rejects(Deno.stat(final), Deno.errors.NotFound, "published before it was whole");
  await consumer.deliver(0, records(5, order.slice(5)));
  await t.downloader.settled();

  const published = await Deno.readFile(final);
  assert.equal(published.length, bytes.length);
  assert.ok(bytesEqual(published, await Deno.readFile(path)), "content differs from the source");
  assert.ok(bytesEqual(sha512(published), c1.fileHash));
  assert.equal((await Deno.stat(final)).mtime?.getTime(), mtime.getTime());
  // Nothing left in progress, nothing quarantined, no stray file in the output folder.
  assert.deepEqual(await readPartials(t.out), []);
  assert.equal((await quarantinedRecords(t.out)).size, 0);
  const names: string[] = [];
  for await (const e of Deno.readDir(join(t.out, "run 7/ü data"))) names.push(e.name);
  assert.deepEqual(names, ["file.raw"]);
  assert.deepEqual(t.kafka.commits.map((c) => c.offset), ["5", "8"]);
  const status = t.downloader.status();
  assert.equal(status.filesCompleted, 1);
  assert.equal(status.badRecords, 0);
  assert.equal(status.messagesProcessed, order.length);
  assert.deepEqual(status.recent, ["run 7/ü data/file.raw"]);
  assert.deepEqual(status.inProgress, []);
  assert.ok(
    t.lines.some((l) =>
      l.includes(
        `File run 7/ü data/file.raw successfully reconstructed from stream (${bytes.length} bytes)`,
      )
    ),
  );
});

/** Records of `chunks` at consecutive offsets from `first`, sent at `time` (ms since the epoch). */
function recordsAt(first: number, chunks: DataFileChunk[], time: number): KafkaMessage[] {
  return records(first, chunks).map((r) => ({ ...r, timestamp: String(time) }));
}

/** Chunks written of the file in progress at `path` (0 when it is not in progress). */
function chunksWritten(t: Setup, path: string): number {
  return t.downloader.status().inProgress.find((f) => f.path === path)?.chunks ?? 0;
}

Deno.test("a consumer further on in the topic waits while bytes wait behind a gap, until the consumer behind fills it", async () => {
  await using t = await setup({ consumers: 2, pacing: { budget: 0, slackMs: 0 } });
  const [ahead, behind] = t.kafka.consumers as [FakeConsumer, FakeConsumer];
  const { path, chunks } = await t.source("spread.bin", random(4 * CHUNK_SIZE, 11));
  const [c1, c2, c3, c4] = chunks as [DataFileChunk, DataFileChunk, DataFileChunk, DataFileChunk];
  const other = singleChunk(random(100, 12), "other.bin");

  // The consumer behind is at 1 000 ms; the one ahead writes chunk 2, past the gap of chunk 1.
  // Both partitions have more to read (their logs end at offset 10).
  await behind.deliver(1, recordsAt(0, [other], 1_000), undefined, 10);
  await ahead.deliver(0, recordsAt(0, [c2], 5_000), undefined, 10);
  assert.equal(chunksWritten(t, "spread.bin"), 1);
  const waiting = ahead.deliver(0, recordsAt(1, [c4], 5_001), undefined, 10);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(chunksWritten(t, "spread.bin"), 1, "chunk 4 was written while chunk 2 waited");
  // The consumer behind brings chunks 1 and 3: nothing waits behind a gap any more.
  await behind.deliver(1, recordsAt(1, [c1, c3], 1_500), undefined, 10);
  await waiting;
  await t.downloader.settled();
  assert.ok(bytesEqual(await Deno.readFile(join(t.out, "spread.bin")), await Deno.readFile(path)));
  assert.equal(t.downloader.status().filesCompleted, 2);
  assert.deepEqual(
    t.kafka.commits.filter((c) => c.partition === 0).map((c) => c.offset).at(-1),
    "2",
  );
});

Deno.test("a consumer further on does not wait for a consumer behind that stopped reading", async () => {
  await using t = await setup({ consumers: 2, pacing: { budget: 0, slackMs: 0 } });
  const [ahead, behind] = t.kafka.consumers as [FakeConsumer, FakeConsumer];
  const { chunks } = await t.source("spread.bin", random(4 * CHUNK_SIZE, 13));
  const [, c2, , c4] = chunks as [DataFileChunk, DataFileChunk, DataFileChunk, DataFileChunk];
  const other = singleChunk(random(100, 14), "other.bin");
  await behind.deliver(1, recordsAt(0, [other], 1_000), undefined, 10);
  const start = Date.now();
  await ahead.deliver(0, recordsAt(0, [c2], 5_000), undefined, 10);
  await ahead.deliver(0, recordsAt(1, [c4], 5_001), undefined, 10);
  const waited = Date.now() - start;
  assert.equal(chunksWritten(t, "spread.bin"), 2);
  assert.ok(waited >= 500, `it did not wait (${waited} ms)`);
  assert.ok(waited < 5_000, `it waited ${waited} ms`);
});

// ---------------------------------------------------------------------------------------------
// Bad records: quarantined, committed, skipped.
// ---------------------------------------------------------------------------------------------

Deno.test("garbage, a tombstone, a corrupt chunk, a hostile path and a chunk its folder cannot take are quarantined and committed, and the good chunks after them are rebuilt", async () => {
  await using t = await setup();
  const consumer = t.kafka.consumers[0]!;
  const bytes = random(2 * CHUNK_SIZE + 300, 6);
  const { chunks } = await t.source("good.dat", bytes);
  const [g1, g2, g3] = chunks as [DataFileChunk, DataFileChunk, DataFileChunk];

  const garbage = new Uint8Array([0xc1, 0x00, 0xff, 0x13, 0x37]);
  // Chunk 2 with one byte flipped but its original chunk hash.
  const flipped = g2.data.slice();
  flipped[10]! ^= 0xff;
  const corrupt = encodeChunk({ ...g2, data: flipped });
  const hostile = encodeChunk(singleChunk(new Uint8Array([1, 2, 3]), "x.dat", "../outside"));
  // A real I/O error of this record only: its folder goes through a symlink to a regular file,
  // so the file system answers ENOTDIR.
  await Deno.writeTextFile(join(t.out, "blocker"), "a file, not a folder");
  await Deno.symlink(join(t.out, "blocker"), join(t.out, "link"));
  const notDir = encodeChunk(singleChunk(new Uint8Array([4, 5, 6]), "y.dat", "link/sub"));

  const batch = [
    record(0, garbage, "garbage"),
    record(1, null, "tombstone"),
    record(2, corrupt, "corrupt"),
    record(3, hostile, "hostile"),
    record(4, notDir, "notdir"),
    ...records(5, [g1, g2, g3]),
  ];
  await consumer.deliver(0, batch);
  await t.downloader.settled();

  assert.deepEqual(t.kafka.commits.map((c) => [c.partition, c.offset]), [[0, "8"]]);
  assert.deepEqual(await Deno.readFile(join(t.out, "good.dat")), bytes);
  await assert.rejects(Deno.stat(join(t.out, "..", "outside")), Deno.errors.NotFound);
  assert.equal(await Deno.readTextFile(join(t.out, "blocker")), "a file, not a folder");

  const kept = await quarantinedRecords(t.out);
  assert.deepEqual([...kept.keys()].sort(), ["0", "1", "2", "3", "4"]);
  const reasons: [string, RegExp][] = [
    ["0", /^it is not a valid chunk: the value is not valid msgpack/],
    ["1", /^it is not a valid chunk: the message has no value \(a tombstone\)/],
    ["2", /^it is not a valid chunk: chunk 2 failed its SHA-512 check$/],
    ["3", /^its path is refused: .*"\.\." component/],
    ["4", /^chunk 1\/1 of "link\/sub\/y\.dat" cannot be written: .*(Not a directory|ENOTDIR)/],
  ];
  for (const [offset, reason] of reasons) {
    const { fields } = kept.get(offset)!;
    assert.equal(fields.get("topic"), TOPIC);
    assert.equal(fields.get("partition"), "0");
    assert.match(fields.get("reason")!, reason, `offset ${offset}`);
    assert.ok(
      t.lines.some((l) =>
        l.includes(`WARNING: Skipping the record at offset ${offset} of partition 0 of "${TOPIC}"`)
      ),
      `no warning for offset ${offset}`,
    );
  }
  assert.deepEqual(kept.get("0")!.value, garbage);
  assert.equal(kept.get("1")!.value, undefined);
  assert.equal(kept.get("1")!.fields.get("value bytes"), "(none: tombstone)");
  assert.deepEqual(kept.get("2")!.value, corrupt);
  assert.deepEqual(kept.get("3")!.value, hostile);
  assert.deepEqual(kept.get("4")!.value, notDir);
  assert.equal(kept.get("4")!.fields.get("key"), '"notdir"');
  // Record faults are never waited out.
  assert.ok(!t.lines.some((l) => l.includes("retrying in")), t.lines.join(""));
  const status = t.downloader.status();
  assert.equal(status.badRecords, 5);
  assert.equal(status.messagesProcessed, 3);
  assert.equal(status.filesCompleted, 1);
});

// ---------------------------------------------------------------------------------------------
// Machine-wide faults: waited out, never committed. Downloader and FileAssembler take no file
// system to fake; the seam used is the existing `crashHook`, which FileAssembler calls right after
// a chunk's bytes are written ("after-data-write") and in the middle of a state-file write during
// a sync ("during-state-file-write"). Throwing ENOSPC there fails that step exactly as a full disk
// failing the surrounding write would.
// ---------------------------------------------------------------------------------------------

Deno.test("a full disk while a chunk is written is retried until it clears, and the batch is committed only then", async () => {
  let failures = 0;
  await using t = await setup({
    crashHook: (point) => {
      if (point === "after-data-write" && failures < 2) {
        failures++;
        throw noSpace("write");
      }
    },
  });
  const consumer = t.kafka.consumers[0]!;
  const bytes = random(2 * CHUNK_SIZE + 1, 7);
  const { chunks } = await t.source("full.dat", bytes);
  t.kafka.onCommit = async ({ offset }) => {
    assert.equal(failures, 2, "committed while the disk was full");
    for (const chunk of chunks.slice(0, Number(offset))) {
      await assertDurable(t.out, chunk, `commit of ${offset}`);
    }
  };
  await consumer.deliver(0, records(0, chunks));
  await t.downloader.settled();

  const retries = t.lines.filter((l) =>
    /ERROR: Cannot write chunk \d of "full\.dat": ENOSPC: no space left on device, write\. Writing is stopped and nothing more is committed until this is fixed; retrying in 0\.05 s$/
      .test(l.trimEnd())
  );
  assert.equal(retries.length, 2, t.lines.join(""));
  assert.deepEqual(t.kafka.commits.map((c) => c.offset), ["3"]);
  assert.deepEqual(await Deno.readFile(join(t.out, "full.dat")), bytes);
  assert.equal(
    (await quarantinedRecords(t.out)).size,
    0,
    "a machine-wide fault is not the record's",
  );
  assert.equal(t.downloader.status().badRecords, 0);
});

Deno.test("a full disk while syncing holds the commit back until the sync succeeds", async () => {
  let failures = 0;
  await using t = await setup({
    crashHook: (point) => {
      if (point === "during-state-file-write" && failures < 3) {
        failures++;
        throw noSpace("write");
      }
    },
  });
  const consumer = t.kafka.consumers[0]!;
  const bytes = random(2 * CHUNK_SIZE + 5, 8);
  const { chunks } = await t.source("sync.dat", bytes);
  t.kafka.onCommit = async ({ offset }) => {
    assert.equal(failures, 3, "committed before the sync succeeded");
    for (const chunk of chunks.slice(0, Number(offset))) {
      await assertDurable(t.out, chunk, `commit of ${offset}`);
    }
  };
  const all = records(0, chunks);
  // Two of three chunks: the batch's flush writes the file's description, which fails three times.
  await consumer.deliver(0, all.slice(0, 2));
  await t.downloader.settled();
  assert.equal(
    t.lines.filter((l) =>
      l.includes("ERROR: Cannot sync the rebuilt data to disk: ENOSPC: no space left on device")
    ).length,
    3,
    t.lines.join(""),
  );
  assert.deepEqual(t.kafka.commits.map((c) => c.offset), ["2"]);
  await consumer.deliver(0, all.slice(2));
  await t.downloader.settled();
  assert.deepEqual(t.kafka.commits.map((c) => c.offset), ["2", "3"]);
  assert.deepEqual(await Deno.readFile(join(t.out, "sync.dat")), bytes);
  assert.equal((await quarantinedRecords(t.out)).size, 0);
});

Deno.test("a full disk that never clears: stopping commits only the records before the one that could not be written", async () => {
  let writes = 0;
  await using t = await setup({
    crashHook: (point) => {
      // The first chunk is written; every write after it finds the disk full.
      if (point === "after-data-write" && ++writes > 1) throw noSpace("write");
    },
  });
  const consumer = t.kafka.consumers[0]!;
  const { chunks } = await t.source("stuck.dat", random(3 * CHUNK_SIZE, 9));
  t.kafka.onCommit = async ({ offset }) => {
    await assertDurable(t.out, chunks[0]!, `commit of ${offset}`);
  };
  const delivery = consumer.deliver(0, records(0, chunks));
  const failed = () => t.lines.filter((l) => l.includes('Cannot write chunk 2 of "stuck.dat"'));
  await until("two failed writes of chunk 2", () => failed().length >= 2);
  assert.equal(t.kafka.commits.length, 0, "committed while the disk was full");

  await t.downloader.stop();
  await delivery;
  assert.deepEqual(t.kafka.commits.map((c) => c.offset), ["1"]);
  // The commit came before the consumer left the group (kafkajs drops later commits).
  assert.deepEqual(consumer.calls.slice(-2), ["commitOffsets", "disconnect"]);
  assert.deepEqual(consumer.resolved, ["0"]);
  await assert.rejects(Deno.stat(join(t.out, "stuck.dat")), Deno.errors.NotFound);
  assert.equal((await quarantinedRecords(t.out)).size, 0);
  assert.ok(!t.lines.some((l) => l.includes("Skipping the record")), t.lines.join(""));
});

Deno.test("a heartbeat that reports a rebalance mid-batch does not abandon the batch: it is still flushed and committed", async () => {
  await using t = await setup();
  const consumer = t.kafka.consumers[0]!;
  consumer.heartbeatError = new Error("The group is rebalancing, so a rejoin is needed");
  // More records than are handled at once, so that heartbeats come in the middle of the batch.
  const bytes = random(80 * CHUNK_SIZE + 3, 12);
  const { chunks } = await t.source("rebalanced.dat", bytes);
  await consumer.deliver(2, records(100, chunks));
  assert.ok(consumer.heartbeats >= 1, `${consumer.heartbeats} heartbeats`);
  assert.deepEqual(t.kafka.commits.map((c) => [c.partition, c.offset]), [
    [2, String(100 + chunks.length)],
  ]);
  assert.deepEqual(await Deno.readFile(join(t.out, "rebalanced.dat")), bytes);
});

Deno.test("after a heartbeat reports a rebalance, a batch asks again only every 500 ms, not after each record", async () => {
  await using t = await setup();
  const consumer = t.kafka.consumers[0]!;
  consumer.heartbeatError = new Error("The group is rebalancing, so a rejoin is needed");
  // 200 one-chunk files: the batch asks for a heartbeat after each record past the first 32.
  const contents = Array.from({ length: 200 }, (_, i) => random(100 + i, i));
  const chunks = [];
  for (const [i, bytes] of contents.entries()) {
    chunks.push(...(await t.source(`many/${i}.dat`, bytes)).chunks);
  }
  const started = Date.now();
  await consumer.deliver(1, records(0, chunks));
  const elapsed = Date.now() - started;
  // kafkajs would send one after each of the 168 records past the window (plus the batch's end).
  assert.ok(
    consumer.heartbeats <= 2 + Math.ceil(elapsed / 500),
    `${consumer.heartbeats} heartbeats in ${elapsed} ms`,
  );
  assert.deepEqual(t.kafka.commits.map((c) => [c.partition, c.offset]), [[1, "200"]]);
  for (const [i, bytes] of contents.entries()) {
    assert.deepEqual(await Deno.readFile(join(t.out, "many", `${i}.dat`)), bytes);
  }
});

Deno.test("a partition that moves away gives up its files in progress at the join, before any further batch", async () => {
  await using t = await setup();
  const consumer = t.kafka.consumers[0]!;
  const join0 = (partitions: number[]) =>
    consumer.emit(EVENTS.GROUP_JOIN, {
      groupId: "downloader-test",
      memberId: "m",
      leaderId: "m",
      isLeader: true,
      memberAssignment: { [TOPIC]: partitions },
      groupProtocol: "RoundRobinAssigner",
      duration: 1,
    });
  join0([0, 1]);
  const { chunks } = await t.source("moving/a.dat", random(3 * CHUNK_SIZE + 5, 9));
  const key = fileKey(chunks[0]!);
  // Two of its four chunks, keyed by file: the commit stays at its first record.
  await consumer.deliver(
    1,
    records(7, chunks.slice(0, 2)).map((r) => ({ ...r, key: Buffer.from(key) })),
  );
  await t.downloader.settled();
  assert.deepEqual(t.kafka.commits.map((c) => c.offset), ["7"]);
  assert.ok(
    (await Array.fromAsync(Deno.readDir(join(t.out, STATE_DIR_NAME, "partial")))).length > 0,
  );
  // Partition 1 goes to another member: the file is given up now, not seconds later, so that a
  // drain ending soon after does not count it as incomplete here.
  join0([0]);
  await consumer.deliver(0, []);
  await t.downloader.settled();
  assert.deepEqual(await Array.fromAsync(Deno.readDir(join(t.out, STATE_DIR_NAME, "partial"))), []);
  assert.ok(
    t.lines.some((l) =>
      /Partition 1 moved to another member of the group: 1 file in progress/.test(l)
    ),
    t.lines.join("\n"),
  );
});
