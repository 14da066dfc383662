/**
 * The download directory: a group of kafkajs consumers that read chunk messages from a topic and
 * rebuild the files they carry in an output directory.
 *
 * Every record is handled exactly one way: a good chunk is written; a duplicate or stale chunk is
 * skipped; a chunk whose path does not match the regex is skipped; anything else (undecodable,
 * failing its chunk hash, a tombstone, absurd fields, a hostile path) is logged with its topic,
 * partition and offset, kept in the quarantine, and skipped. After each batch the written data is
 * synced ({@linkcode FileAssembler.flush}) and only then is the batch's offset committed, so every
 * committed chunk is on disk; that sync and commit run while the partition's next batches are
 * fetched and handled, one at a time per partition (one not started yet gives way to a later
 * batch's, which covers it). A full disk (or another transient I/O error) stops the
 * writing with a clear error and retries; nothing past the failed chunk is committed meanwhile.
 *
 * @module
 */
import type {
  Admin,
  Consumer,
  ConsumerConfig,
  EachBatchPayload,
  Kafka,
  KafkaMessage,
} from "kafkajs";
import { join } from "node:path";
import {
  ChunkDecodeError,
  type DataFileChunk,
  decodeChunkFields,
  fileKey,
  isPerChunkKey,
  verifyChunkHash,
} from "../wire/chunk_codec.ts";
import { parseOversizeMarker } from "../wire/compression.ts";
import { handledMetadata } from "./drain.ts";
import { BadChunkError, FileAssembler, type InProgressLimits } from "../store/file_assembler.ts";
import { isPathError } from "../store/io_errors.ts";
import { isolateConsumerOffsets, joinedText } from "./group_membership.ts";
import type { Logger } from "../console/logger.ts";
import { pythonMatch } from "../config/python_regex.ts";
import { type ConsumerLimits, type FetchLimits, FetchSizer } from "./fetch_sizer.ts";
import { PartitionPacer } from "./partition_pacer.ts";
import { Quarantine } from "../store/quarantine.ts";
import { relativeTarget, STATE_DIR_NAME, UnsafePathError } from "../store/safe_path.ts";
import type { CrashHook } from "../store/state_file.ts";

/** Bytes fetched per partition at most (kafkajs `maxBytesPerPartition`): 2 MiB and 16 KiB. */
const FETCH_BYTES_PER_PARTITION = 2 * 1024 * 1024 + 16 * 1024;

/**
 * Bytes one consumer fetches per partition at most, by default. A consumer that holds a single
 * partition (as many consumers as partitions, or more) fetches half as much again of it: 3 MiB
 * and 24 KiB, six of OpenMSIStream's 512 KiB chunks. The broker handles each fetch request at a
 * cost of its own: at 2 MiB, four consumers on four partitions made twice the requests of two for
 * the same bytes, and were slower than two on a machine whose cores were all busy. Twice as much
 * (as many bytes per request as two partitions) took W2's peak RSS with four consumers to 250 MiB;
 * half as much again kept it under 230 MiB, and four consumers were as fast against two
 * (BENCHMARKS.md, "A consumer with one partition fetches more").
 */
export function fetchBytesPerPartition(partitions: number, consumers: number): number {
  const perConsumer = Math.ceil(partitions / Math.max(1, consumers));
  return perConsumer <= 1 ? FETCH_BYTES_PER_PARTITION * 3 / 2 : FETCH_BYTES_PER_PARTITION;
}

/** Bytes one consumer fetches at most (kafkajs `maxBytes`) beside the broker. */
const FETCH_BYTES_PER_REQUEST = 8 * 1024 * 1024;

/**
 * The fetch limits while the broker is far away or records are large ({@linkcode FetchSizer}):
 * twice the base limit per partition (at least `near`'s) and twice `near`'s per request. A broker
 * 20 ms away left W1 at 6.0–6.6 s with the limits beside it and took it to 4.9–5.2 s with these,
 * for a peak RSS of 203–211 MiB against 181–183 MiB (BENCHMARKS.md, "Fetch sizes that follow the
 * broker's distance"); beside the broker, W1 (512 KiB records) took 3.12 s against 3.27 s with two
 * consumers (BENCHMARKS.md, "Larger fetches for large records").
 */
export function largerFetchLimits(near: FetchLimits): FetchLimits {
  return {
    perPartition: Math.max(near.perPartition, 2 * FETCH_BYTES_PER_PARTITION),
    perRequest: 2 * near.perRequest,
  };
}

/** kafkajs's fetch limits from fixed limits or a consumer's number-like ones. */
function limitsOf(
  limits: FetchLimits | ConsumerLimits,
): Pick<ConsumerConfig, "maxBytesPerPartition" | "maxBytes"> {
  // kafkajs writes them with Buffer.writeInt32BE, which takes a number-like object's valueOf().
  return {
    maxBytesPerPartition: limits.perPartition as number,
    maxBytes: limits.perRequest as number,
  };
}

/** `bytes` in MiB for a person, e.g. "4.0 MiB". */
function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Partitions one consumer handles at once (kafkajs `partitionsConsumedConcurrently`). */
const PARTITIONS_IN_FLIGHT = 4;

/** Records of one batch handled at once (different files' disk work overlaps). */
const RECORDS_IN_FLIGHT = 32;

/** How often a batch waiting for a commit sends a heartbeat; also kafkajs `heartbeatInterval`. */
const HEARTBEAT_MS = 500;

/** How often a consumer held back by the pacer looks again (milliseconds). */
const PACE_POLL_MS = 5;

/** A consumer says that it waits for the others at most this often (milliseconds, debug log). */
const PACE_NOTE_MS = 10_000;

/** How many completed files the status remembers. */
export const RECENT_FILES = 50;

/** Options of {@linkcode Downloader}, validated by the caller. */
export interface DownloaderOptions {
  /** A kafkajs client for the broker. */
  kafka: Kafka;
  /** Topic to consume. */
  topic: string;
  /** Consumer group of all the consumers. */
  groupId: string;
  /** Number of consumers in the group. */
  consumers: number;
  /** Consumer options other than the group id. */
  consumerConfig?: Omit<ConsumerConfig, "groupId">;
  /** Where a partition with no committed offset starts. */
  offsetReset?: "earliest" | "latest" | "none";
  /** Absolute path of the output directory (it must exist). */
  outputDir: string;
  /** Only files whose relative path matches (Python `re.match`) are rebuilt. */
  regex?: RegExp | undefined;
  logger: Logger;
  /** Largest total size of the quarantine folder. */
  quarantineBytes?: number;
  /** Seconds between retries of a write that failed on a transient error (a full disk). */
  retrySeconds?: number;
  /** Seconds between "waiting for broker" messages. */
  brokerWaitSeconds?: number;
  /** Bounds on the files in progress at once. */
  limits?: Partial<InProgressLimits>;
  /** Test hook called at each dangerous step (a crash test kills the process there). */
  crashHook?: CrashHook;
  /**
   * On a partition whose records are keyed by file, commit no further than the first record of a
   * file still in progress, so that another process that takes the partition over rebuilds that
   * file from its start (default `true`).
   */
  safeOffsets?: boolean;
  /** When consumers further on in the topic wait for the others (`partition_pacer.ts`). */
  pacing?: { budget?: number; slackMs?: number };
}

/** Counts and files, for `check` and the shutdown summary. */
export interface DownloadStatus {
  messagesRead: number;
  messagesProcessed: number;
  bytesRead: number;
  bytesProcessed: number;
  filesCompleted: number;
  badRecords: number;
  /** Files given up in this run (over a bound of what may be in progress, or idle too long). */
  givenUp: number;
  /** Paths of the most recent completed files, oldest first. */
  recent: string[];
  inProgress: { path: string; chunks: number; total: number; bytes: number }[];
  /**
   * Files of this run that could not be rebuilt (a whole-file hash that did not match, a chunk
   * refused), with why; a file rebuilt later in the run leaves the list. At most
   * {@linkcode REJECTED_FILES} are kept.
   */
  rejected: { path: string; reason: string }[];
  /** The offsets this process committed last, by partition. */
  committed: Record<number, string>;
  /**
   * Set while another process of the group holds some of the partitions of a topic keyed per
   * chunk (so multi-chunk files cannot complete here): the warning that says so.
   */
  splitWarning: string | null;
}

/** What a health check needs ({@linkcode Downloader.health}). */
export interface DownloaderHealth {
  /** `Date.now()` since when writing has been stopped by a transient error (a full disk), or `null`. */
  stalledSince: number | null;
  /** The latest such error, or `null`. */
  stalledOn: string | null;
  /** Consumers that joined the group and did not stop for good. */
  consumersInGroup: number;
  consumers: number;
  /** `Date.now()` of the last commit of this process, or `null`. */
  lastCommitAt: number | null;
  /** Bytes kept in the quarantine folder. */
  quarantineBytes: number;
}

/** Milliseconds of waiting to join the group before the program says what it waits for. */
const JOIN_NOTICE_MS = 3000;

/**
 * Milliseconds after the last join before the split check runs (the group settles), on top of
 * the session timeout: a member of an earlier run that died keeps its partitions until Kafka drops
 * it, at most a session timeout after its last heartbeat, which came before this join.
 */
const SPLIT_CHECK_MS = 5000;

/** kafkajs's default `sessionTimeout`. */
const DEFAULT_SESSION_TIMEOUT_MS = 30_000;

/** Rejected files remembered for the status. */
export const REJECTED_FILES = 1000;

/** The record's Kafka timestamp in milliseconds, or `null` when it has none. */
function recordTime(message: KafkaMessage): number | null {
  const time = Number(message.timestamp);
  return Number.isSafeInteger(time) && time >= 0 ? time : null;
}

/** Stop was requested while waiting. */
class Stopped extends Error {}

/** Reads chunk messages with a consumer group and rebuilds their files. */
export class Downloader {
  readonly #o: DownloaderOptions;
  readonly #logger: Logger;
  readonly #quarantine: Quarantine;
  readonly #assembler: FileAssembler;
  readonly #consumers: Consumer[] = [];
  readonly #pacer: PartitionPacer;
  /** Per consumer: when it last said that it waits for the others (see #paced). */
  readonly #pacedSaid = new Map<number, number>();
  #stopping = false;
  #starting: Promise<void> | undefined;
  #lock: Deno.FsFile | undefined;
  /** Batches being handled and commits being made now, and who waits for them to finish. */
  #active = 0;
  /** Per partition: its latest flush and commit, still running after its batch returned. */
  readonly #commits = new Map<number, Promise<void>>();
  /** Per partition: the flush and commit waiting for the running one (a later batch's replaces it). */
  readonly #queuedCommits = new Map<number, { commit: () => Promise<void>; done: Promise<void> }>();
  #drained: (() => void) | undefined;
  /** Wakes every retry that is waiting (see #sleep). */
  readonly #sleepers = new Set<() => void>();
  #counts = {
    messagesRead: 0,
    messagesProcessed: 0,
    bytesRead: 0,
    bytesProcessed: 0,
    filesCompleted: 0,
    badRecords: 0,
  };
  #recent: string[] = [];
  readonly #rejected = new Map<string, string>();
  /** Tasks waiting out a transient error (a full disk), since when, and the latest error. */
  readonly #stalled = { tasks: 0, since: null as number | null, what: "" };
  /** The topic's partition count, each consumer's partitions, and whether chunks come keyed per chunk. */
  #topicPartitions = 0;
  /** Chooses the fetch limits, unless the config file sets them. */
  #sizer: FetchSizer | undefined;
  readonly #assigned = new Map<number, number[]>();
  #perChunkKeys = false;
  /** Per partition: the first offset of each file (path identity) begun from it, on file-keyed partitions. */
  readonly #firstOffsets = new Map<number, Map<string, bigint>>();
  /** Files being given up after a rebalance; batches wait for it (see GROUP_JOIN). */
  #releasing: Promise<void> = Promise.resolve();
  /** Partitions where a record keyed per chunk was seen: no safe offsets there. */
  readonly #perChunkPartitions = new Set<number>();
  #splitCheck: ReturnType<typeof setTimeout> | undefined;
  /** The group's session timeout: how long a dead member keeps its partitions. */
  readonly #sessionTimeoutMs: number;
  /** The warning about a topic split between processes, while it holds. */
  #splitWarning: string | null = null;
  /** Consumers in the group (joined and not crashed for good), and the last commit's time. */
  readonly #members = new Set<number>();
  #lastCommitAt: number | null = null;
  readonly #committed = new Map<number, string>();

  constructor(options: DownloaderOptions) {
    this.#o = options;
    this.#sessionTimeoutMs = options.consumerConfig?.sessionTimeout ?? DEFAULT_SESSION_TIMEOUT_MS;
    // kafkajs shares committed offsets among a client's consumers; see isolateConsumerOffsets.
    isolateConsumerOffsets(options.kafka);
    this.#logger = options.logger;
    const stateDir = join(options.outputDir, STATE_DIR_NAME);
    this.#quarantine = new Quarantine(
      join(stateDir, "quarantine"),
      options.quarantineBytes ?? 256 * 1024 * 1024,
    );
    this.#assembler = new FileAssembler({
      hashing: "worker",
      outputDir: options.outputDir,
      stateDir,
      logger: options.logger,
      quarantine: this.#quarantine,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.crashHook ? { crashHook: options.crashHook } : {}),
    });
    const assembler = this.#assembler;
    this.#pacer = new PartitionPacer({
      pastGaps: () => assembler.bytesPastGaps,
      ...options.pacing,
    });
  }

  /** Whether it is consuming and committing (for a health check). */
  health(): DownloaderHealth {
    return {
      stalledSince: this.#stalled.since,
      stalledOn: this.#stalled.since === null ? null : this.#stalled.what,
      consumersInGroup: this.#members.size,
      consumers: this.#o.consumers,
      lastCommitAt: this.#lastCommitAt,
      quarantineBytes: this.#quarantine.bytes,
    };
  }

  /** Counts and files so far. */
  status(): DownloadStatus {
    const { inProgress, givenUp } = this.#assembler.status();
    return {
      ...this.#counts,
      givenUp,
      recent: [...this.#recent],
      inProgress,
      rejected: [...this.#rejected].map(([path, reason]) => ({ path, reason })),
      committed: Object.fromEntries(this.#committed),
      splitWarning: this.#splitWarning,
    };
  }

  #sleep(seconds: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, seconds * 1000);
      this.#sleepers.add(done);
    });
  }

  /** Prepares the output directory, waits for the broker and starts the consumers. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    await this.#lockOutputDir();
    await this.#quarantine.open();
    await this.#assembler.open();
    const admin = this.#o.kafka.admin({
      retry: { retries: 1, initialRetryTime: 300, maxRetryTime: 1000 },
    });
    try {
      await this.#waitForTopic(admin);
      this.#topicPartitions = (await admin.fetchTopicOffsets(this.#o.topic)).length;
      if (this.#o.offsetReset === "none") await this.#requireCommittedOffsets(admin);
    } finally {
      await admin.disconnect().catch(() => {});
    }
    if (this.#stopping) return;
    const near = {
      perPartition: fetchBytesPerPartition(this.#topicPartitions, this.#o.consumers),
      perRequest: FETCH_BYTES_PER_REQUEST,
    };
    const larger = largerFetchLimits(near);
    const limitsText = (limits: FetchLimits) =>
      `fetching up to ${mib(limits.perPartition)} per partition and ${
        mib(limits.perRequest)
      } per request`;
    // Fetch sizes set in the config file are kept as they are, near or far, large records or not.
    const sizer = this.#o.consumerConfig?.maxBytesPerPartition === undefined &&
        this.#o.consumerConfig?.maxBytes === undefined
      ? new FetchSizer(near, larger, {
        changed: (far, ms, limits) =>
          this.#logger.info(
            `The broker is ${far ? "far away" : "near again"} (its quickest answer took ${
              Math.round(ms)
            } ms): ${limitsText(limits)}${
              far
                ? " (set max.partition.fetch.bytes and fetch.max.bytes in [consumer] to choose)"
                : `, or ${mib(larger.perPartition)} and ${
                  mib(larger.perRequest)
                } for a consumer whose partitions all carry large records`
            }`,
          ),
        recordsChanged: (partition, large, mean) =>
          this.#logger.debug(
            `Records of partition ${partition} are ${large ? "large" : "small"} (${
              Math.round(mean / 1024)
            } KiB on average in its last batch)${
              large
                ? `: a consumer whose partitions all carry large records is ${limitsText(larger)}`
                : ""
            }`,
          ),
      })
      : undefined;
    this.#sizer = sizer;
    // The i-th consumer's config: its fetch limits follow the partitions it holds.
    const config = (i: number): ConsumerConfig => ({
      // Fetch sizes bound memory: with two consumers, a 4 GiB file is rebuilt in well under 256 MB.
      // The broker cuts a fetch at this many bytes, through a record batch if it must (the partial
      // batch is dropped and fetched again). OpenMSIStream's default 512 KiB chunks arrive one per
      // batch of about 524.6 KB: four fit here with room for long paths; at exactly 2 MiB, three
      // did and most of a fourth was sent for nothing. Larger fetches are faster still for large
      // records, but took many small files (W3 in BENCHMARKS.md) past 256 MB. A consumer with one
      // partition fetches half as much again of it (fetchBytesPerPartition).
      // While the broker is far away, or the records of every partition the consumer holds are
      // large, twice as much (FetchSizer: kafkajs takes its number-like limits for numbers).
      ...limitsOf(sizer?.forConsumer(() => this.#assigned.get(i) ?? []) ?? near),
      // librdkafka's fetch.wait.max.ms default; also bounds how long a shutdown waits for a fetch.
      maxWaitTimeInMs: 500,
      // kafkajs's 3 s default makes a member wait that long to learn of a rebalance (another
      // consumer joining): a heartbeat is a small request.
      heartbeatInterval: HEARTBEAT_MS,
      ...this.#o.consumerConfig,
      groupId: this.#o.groupId,
      allowAutoTopicCreation: false,
    });
    const joins: Promise<void>[] = [];
    for (let i = 0; i < this.#o.consumers && !this.#stopping; i++) {
      const consumer = this.#o.kafka.consumer(config(i));
      this.#consumers.push(consumer);
      consumer.on(consumer.events.CRASH, (event) => {
        const { error, restart } = event.payload;
        if (!restart) this.#members.delete(i);
        this.#pacer.leave(i);
        this.#logger.error(
          `Consumer ${i + 1} stopped on an error: ${error.message}${
            restart ? "; it restarts" : ""
          }`,
        );
      });
      // A fetch of transaction markers or aborted records only never reaches eachBatch: its
      // offsets are committed here, so that the group's offsets reach the partition's end.
      consumer.on(consumer.events.END_BATCH_PROCESS, (event) => {
        const { topic, partition, batchSize, lastOffset } = event.payload;
        if (batchSize === 0 && topic === this.#o.topic) {
          this.#commitFiltered(consumer, partition, lastOffset);
        }
      });
      if (sizer) {
        consumer.on(consumer.events.REQUEST, (event) => {
          sizer.observe(event.payload.apiName, event.payload.duration);
        });
      }
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        this.#members.add(i);
        const assigned = event.payload.memberAssignment[this.#o.topic] ?? [];
        this.#assigned.set(i, assigned);
        this.#pacer.assign(i, assigned);
        // Files in progress from partitions that left this process are given up at once: their
        // new owner starts from the committed offset, which never passed their first record.
        const held = new Set([...this.#assigned.values()].flat());
        this.#releasing = this.#releasing.then(() => this.#releaseMovedFiles(held)).catch(() => {});
        this.#scheduleSplitCheck();
        this.#logger.info(
          joinedText(
            `Consumer ${i + 1} of ${this.#o.consumers}`,
            Object.values(event.payload.memberAssignment).flat(),
          ),
        );
      });
      await consumer.connect();
      await consumer.subscribe({
        topic: this.#o.topic,
        fromBeginning: this.#o.offsetReset !== "latest",
      });
      // The first consumer joins alone and starts reading at once: a group of one forms in a few
      // milliseconds, where several consumers joining at the same moment took 0.3-0.6 s on the
      // benchmark's machine. The others then join together, in one rebalance that moves
      // partitions only between consumers of this process (no file in progress is given up);
      // joining one after the other would make a rebalance per consumer.
      const joined = this.#join(consumer, i);
      if (i === 0) await joined;
      else joins.push(joined);
    }
    await Promise.all(joins);
  }

  /** Runs `consumer` (the `i`-th), which joins the group; resolves once it has joined. */
  async #join(consumer: Consumer, i: number): Promise<void> {
    // Joining can take up to a session timeout (a group whose members died with an earlier run
    // waits for them): say so rather than sit silent.
    const sessionSeconds = Math.round(this.#sessionTimeoutMs / 1000);
    const joinStart = Date.now();
    const slowJoin = setTimeout(() => {
      this.#logger.info(
        `Consumer ${
          i + 1
        } is waiting to join the group "${this.#o.groupId}": Kafka assigns partitions once the members of an earlier run have rejoined or timed out, at most ${sessionSeconds} s (session.timeout.ms) after they stopped (q to quit)`,
      );
    }, JOIN_NOTICE_MS);
    try {
      await consumer.run({
        // The partitions of one fetch are handled together, so that one slow file does not hold
        // the others up (memory is bounded by the fetch sizes either way).
        partitionsConsumedConcurrently: PARTITIONS_IN_FLIGHT,
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.#eachBatch(consumer, payload),
      });
    } finally {
      clearTimeout(slowJoin);
    }
    const waited = Date.now() - joinStart;
    if (waited >= JOIN_NOTICE_MS) {
      this.#logger.info(`Consumer ${i + 1} joined after ${(waited / 1000).toFixed(1)} s`);
    }
  }

  /** One process per output directory: two would overwrite each other's partial files. */
  async #lockOutputDir(): Promise<void> {
    const stateDir = join(this.#o.outputDir, STATE_DIR_NAME);
    await Deno.mkdir(stateDir, { recursive: true });
    const file = await Deno.open(join(stateDir, "lock"), { create: true, write: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const locked = await Promise.race([
      file.lock(true).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000))),
    ]);
    clearTimeout(timer);
    if (!locked) {
      throw new Error(
        `Another DataFileDownloadDirectory is already writing to ${this.#o.outputDir} (it holds ${STATE_DIR_NAME}/lock); stop it, or give this one another output directory`,
      );
    }
    this.#lock = file;
  }

  /** Waits, with a repeating message, until the broker answers and the topic exists. */
  async #waitForTopic(admin: Admin): Promise<void> {
    const wait = this.#o.brokerWaitSeconds ?? 5;
    let connected = false;
    while (!this.#stopping) {
      let problem: string;
      try {
        if (!connected) {
          await admin.connect();
          connected = true;
        }
        const topics = await admin.listTopics();
        if (topics.includes(this.#o.topic)) return;
        problem =
          `Waiting: the topic "${this.#o.topic}" does not exist on the broker yet (check --topic_name; topics there: ${
            topics.filter((t) => !t.startsWith("__")).slice(0, 10).join(", ") || "none"
          })`;
      } catch (error) {
        problem = `Waiting for the Kafka broker (${
          error instanceof Error ? error.message : error
        })`;
        connected = false;
        await admin.disconnect().catch(() => {});
      }
      this.#logger.warning(`${problem}; retrying in ${wait} s (q to quit)`);
      await this.#sleep(wait);
    }
  }

  async #requireCommittedOffsets(admin: Admin): Promise<void> {
    const [entry] = await admin.fetchOffsets({ groupId: this.#o.groupId, topics: [this.#o.topic] });
    const missing = (entry?.partitions ?? []).filter((p) => p.offset === "-1").map((p) =>
      p.partition
    );
    if (missing.length > 0) {
      throw new Error(
        `auto.offset.reset is "none" and the group "${this.#o.groupId}" has no committed offset for partition(s) ${
          missing.join(", ")
        } of "${this.#o.topic}"; use a group that has consumed this topic, or set auto.offset.reset to earliest or latest`,
      );
    }
  }

  async #eachBatch(consumer: Consumer, payload: EachBatchPayload): Promise<void> {
    this.#active++;
    try {
      await this.#processBatch(consumer, payload);
    } finally {
      if (--this.#active === 0) this.#drained?.();
    }
  }

  async #processBatch(consumer: Consumer, payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
    const messages = batch.messages;
    if (this.#sizer) {
      // Tombstones (no value) say nothing of the records' size.
      let [records, bytes] = [0, 0];
      for (const message of messages) {
        if (message.value === null) continue;
        records++;
        bytes += message.value.length;
      }
      this.#sizer.observeBatch(batch.partition, records, bytes);
    }
    // A partition that came from another consumer of this process starts from the committed
    // offset: the files it had in progress are given up first, then read again from their start.
    await this.#releasing;
    // Records are handled concurrently, a window at a time, so that the disk works on several
    // files at once; the chunks of one file still go in record order (the assembler's per-file
    // lock is taken in the order the records start). Offsets are resolved, flushed and committed
    // up to the first record not yet handled, never past it.
    // A heartbeat that reports a rebalance must not abandon the batch: what was handled is still
    // flushed and committed before the batch returns (the group accepts commits of the current
    // generation while it rebalances), so that the partition's next owner starts after it.
    // kafkajs sends a heartbeat only once one is due, but after a failed one (the group is
    // rebalancing) at every call until one succeeds, and the loop below asks after each record:
    // the batch would then start one record per round trip to the broker (730 records at 50 ms:
    // 36 s) and hold up the rebalance all that time. So after a failure it asks again only after
    // HEARTBEAT_MS.
    let rebalancing = false;
    let failedAt = -Infinity;
    const keepAlive = async () => {
      if (Date.now() - failedAt < HEARTBEAT_MS) return;
      await heartbeat().catch(() => {
        rebalancing = true;
        failedAt = Date.now();
      });
    };
    const handled = new Array<boolean>(messages.length).fill(false);
    const running = new Set<Promise<void>>();
    let resolved = 0;
    let stopped = false;
    let failure: { error: unknown } | undefined;
    const advance = () => {
      while (resolved < messages.length && handled[resolved]) {
        resolveOffset(messages[resolved]!.offset);
        resolved++;
      }
    };
    const member = this.#consumers.indexOf(consumer);
    const halted = () =>
      stopped || failure !== undefined || !isRunning() || isStale() || this.#stopping;
    for (let i = 0; i < messages.length; i++) {
      if (halted()) break;
      if (this.#pacer.shouldWait(member)) {
        // A rebalance ends the wait and the batch: the partition's next owner reads on from here.
        await this.#paced(member, () => halted() || rebalancing, keepAlive);
        if (halted() || rebalancing) break;
      }
      this.#pacer.starting(member, batch.partition, Number(messages[i]!.timestamp));
      const task: Promise<void> = this.#handle(
        batch.topic,
        batch.partition,
        messages[i]!,
        heartbeat,
      )
        .then(
          () => {
            handled[i] = true;
          },
          (error) => {
            if (error instanceof Stopped) stopped = true;
            else failure ??= { error };
          },
        )
        .finally(() => running.delete(task));
      running.add(task);
      if (running.size >= RECORDS_IN_FLIGHT) {
        await Promise.race(running);
        advance();
        await keepAlive();
      }
    }
    await Promise.all(running);
    advance();
    if (
      resolved === messages.length && BigInt(batch.lastOffset()) + 1n >= BigInt(batch.highWatermark)
    ) {
      this.#pacer.caughtUp(member, batch.partition);
    }
    if (failure) throw failure.error;
    await keepAlive();
    // Every record handled: the batch's last offset also covers the transaction markers and
    // aborted records after them (a topic written in transactions, such as a re-keyed one).
    const last = resolved === 0
      ? undefined
      : resolved === messages.length
      ? batch.lastOffset()
      : messages[resolved - 1]!.offset;
    if (last === undefined) return;
    const next = BigInt(last) + 1n;
    const offset = this.#safeOffset(batch.partition, next);
    // The flush and commit run while kafkajs fetches and this program handles the partition's next
    // records (kafkajs fetches only once a batch has returned): one at a time per partition, in
    // order, and a commit not started yet gives way to a later batch's, which covers it (a flush
    // syncs everything written before it; a failed one was logged and is covered likewise). A stop
    // waits for them; a rebalance seen by a heartbeat, or kafkajs stopping, waits here, so that
    // the next owner of the partition starts after what was handled. This batch sends the
    // heartbeats while it waits (a commit may be waiting out a full disk).
    const committed = this.#commitLater(consumer, batch.topic, batch.partition, offset, next);
    if (rebalancing || !isRunning() || isStale() || this.#stopping) {
      await this.#heartbeatingUntil(committed, keepAlive);
    }
  }

  /**
   * Flushes and commits in the background (see `#commitInBackground`). Built here, not in the
   * batch's scope: what the commit holds on to must not keep the batch's records in memory while
   * the next ones are fetched.
   */
  #commitLater(
    consumer: Consumer,
    topic: string,
    partition: number,
    safe: bigint,
    handled: bigint,
  ): Promise<void> {
    return this.#commitInBackground(
      partition,
      () => this.#flushAndCommit(consumer, topic, partition, safe, handled),
    );
  }

  /** Waits while the pacer holds `member` back (and nothing halts the batch), sending heartbeats. */
  async #paced(
    member: number,
    halted: () => boolean,
    keepAlive: () => Promise<void>,
  ): Promise<void> {
    const now = Date.now();
    if (now - (this.#pacedSaid.get(member) ?? -Infinity) >= PACE_NOTE_MS) {
      this.#pacedSaid.set(member, now);
      this.#logger.debug(
        `Consumer ${member + 1} waits for the consumers behind it: ${
          Math.round(this.#assembler.bytesPastGaps / 2 ** 20)
        } MiB of rebuilt data wait for chunks they have not read yet`,
      );
    }
    const released = (async () => {
      while (!halted() && this.#pacer.shouldWait(member)) {
        await new Promise((resolve) => setTimeout(resolve, PACE_POLL_MS));
      }
    })();
    await this.#heartbeatingUntil(released, keepAlive);
  }

  /** Waits for `task`, calling `keepAlive` every `HEARTBEAT_MS` meanwhile; settles as `task` does. */
  async #heartbeatingUntil(task: Promise<void>, keepAlive: () => Promise<void>): Promise<void> {
    let done = false;
    const over = task.then(() => {
      done = true;
    }, () => {
      done = true;
    });
    while (!done) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        over,
        new Promise((resolve) => (timer = setTimeout(resolve, HEARTBEAT_MS))),
      ]);
      clearTimeout(timer);
      if (!done) await keepAlive();
    }
    return await task;
  }

  /**
   * Runs `commit` after the partition's commit in progress, without waiting for it. A commit still
   * waiting to start is replaced by `commit` (a later offset, whose flush covers the earlier one's
   * records), and both callers get the promise of the one that runs. It counts as activity (a stop
   * waits for it); its failure is logged here, and rejects the returned promise.
   */
  #commitInBackground(partition: number, commit: () => Promise<void>): Promise<void> {
    const queued = this.#queuedCommits.get(partition);
    if (queued) {
      queued.commit = commit;
      return queued.done;
    }
    this.#active++;
    const previous = this.#commits.get(partition)?.catch(() => {}) ?? Promise.resolve();
    const slot = { commit, done: Promise.resolve() };
    this.#queuedCommits.set(partition, slot);
    const start = () => {
      if (this.#queuedCommits.get(partition) === slot) this.#queuedCommits.delete(partition);
      return slot.commit();
    };
    const done: Promise<void> = previous.then(start).finally(() => {
      if (this.#commits.get(partition) === done) this.#commits.delete(partition);
      if (--this.#active === 0) this.#drained?.();
    });
    slot.done = done;
    this.#commits.set(partition, done);
    done.catch((error) =>
      this.#logger.error(
        `Cannot sync and commit what was read from partition ${partition}: ${
          error instanceof Error ? error.message : error
        }; it is committed with the partition's next batch, whose sync covers it`,
      )
    );
    return done;
  }

  /** Commits past a fetch whose records were all filtered out (markers, aborted records). */
  #commitFiltered(consumer: Consumer, partition: number, lastOffset: string): void {
    if (this.#stopping) return;
    const next = BigInt(lastOffset) + 1n;
    const offset = this.#safeOffset(partition, next);
    this.#commitInBackground(
      partition,
      () =>
        this.#flushAndCommit(consumer, this.#o.topic, partition, offset, next)
          .catch((error) =>
            this.#logger.warning(
              `Cannot commit partition ${partition} past its transaction markers and aborted records (to offset ${offset}): the rebuilt data could not be synced first (${
                error instanceof Error ? error.message : error
              }); they will be read and skipped again`,
            )
          ),
    ).catch(() => {});
  }

  /**
   * Makes everything written so far durable, then commits `safe` of the partition. When a file in
   * progress holds the commit back (`safe` < `handled`), the commit's metadata says how far the
   * records were handled ({@linkcode handledMetadata}): drain mode and lag count from there.
   */
  async #flushAndCommit(
    consumer: Consumer,
    topic: string,
    partition: number,
    safe: bigint,
    handled: bigint,
  ): Promise<void> {
    const offset = safe.toString();
    try {
      // It runs after its batch returned: the partition's next batch sends the heartbeats while
      // this waits out a full disk.
      await this.#retrying(
        "sync the rebuilt data to disk",
        () => this.#assembler.flush(),
        () => Promise.resolve(),
      );
    } catch (error) {
      // Nothing is committed: a stop leaves it to the next start, anything else is logged by
      // #commitInBackground and covered by the partition's next flush.
      if (error instanceof Stopped) return;
      throw error;
    }
    this.#o.crashHook?.("between-flush-and-commit");
    try {
      await consumer.commitOffsets([{
        topic,
        partition,
        offset,
        metadata: safe < handled ? handledMetadata(handled) : null,
      }]);
      this.#committed.set(partition, offset);
      this.#lastCommitAt = Date.now();
    } catch (error) {
      this.#logger.warning(
        `Cannot commit offset ${offset} of partition ${partition} (${
          error instanceof Error ? error.message : error
        }); its records will be read again and recognised as duplicates`,
      );
    }
  }

  /** Runs `task`, waiting and retrying while it fails on a transient I/O error (a full disk). */
  async #retrying<T>(
    what: string,
    task: () => Promise<T>,
    heartbeat: () => Promise<void>,
  ): Promise<T> {
    const seconds = this.#o.retrySeconds ?? 10;
    let stalled = false;
    try {
      while (true) {
        try {
          return await task();
        } catch (error) {
          // A record's own fault fails that record; anything else (a full disk, a permission, an
          // I/O error) is waited out, so that nothing is committed that is not on disk.
          if (
            error instanceof BadChunkError || error instanceof ChunkDecodeError ||
            isPathError(error)
          ) throw error;
          if (!stalled) {
            stalled = true;
            if (this.#stalled.tasks++ === 0) this.#stalled.since = Date.now();
          }
          this.#stalled.what = `Cannot ${what}: ${error instanceof Error ? error.message : error}`;
          this.#logger.error(
            `Cannot ${what}: ${
              error instanceof Error ? error.message : error
            }. Writing is stopped and nothing more is committed until this is fixed; retrying in ${seconds} s`,
          );
          // Wait in short steps, staying in the group meanwhile.
          for (let waited = 0; waited < seconds && !this.#stopping; waited += 2) {
            await this.#sleep(Math.min(2, seconds - waited));
            await heartbeat().catch(() => {});
          }
          if (this.#stopping) throw new Stopped();
        }
      }
    } finally {
      if (stalled && --this.#stalled.tasks === 0) this.#stalled.since = null;
    }
  }

  async #reject(
    topic: string,
    partition: number,
    message: KafkaMessage,
    reason: string,
  ): Promise<void> {
    this.#counts.badRecords++;
    let where = "";
    try {
      const kept = await this.#quarantine.keepRecord(
        { topic, partition, offset: message.offset },
        message.key,
        message.value,
        reason,
      );
      where = ` (kept in ${kept})`;
    } catch (error) {
      where = ` (not kept: ${error instanceof Error ? error.message : error})`;
    }
    this.#logger.warning(
      `Skipping the record at offset ${message.offset} of partition ${partition} of "${topic}": ${reason}${where}`,
    );
  }

  async #handle(
    topic: string,
    partition: number,
    message: KafkaMessage,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    // A batch that decompresses past the cap arrives as marker records (see compression.ts): the
    // first is quarantined with the compressed batch, the others stand for its other records.
    const marker = parseOversizeMarker(message.value);
    if (marker !== undefined) {
      this.#counts.messagesRead++;
      if (!marker.first) {
        this.#counts.badRecords++;
        return;
      }
      return await this.#reject(
        topic,
        partition,
        { ...message, value: marker.compressed },
        `Cannot ${
          marker.kind === "malformed" ? "read" : "decompress"
        } a ${marker.codec} batch on partition ${partition} at offset ${message.offset}: ${marker.reason}`,
      );
    }
    let chunk: DataFileChunk;
    try {
      chunk = decodeChunkFields(message.value);
    } catch (error) {
      if (!(error instanceof ChunkDecodeError)) throw error;
      this.#counts.messagesRead++;
      return await this.#reject(
        topic,
        partition,
        message,
        `it is not a valid chunk: ${error.message}`,
      );
    }
    let target;
    try {
      target = relativeTarget(chunk.subdirStr, chunk.filename, chunk.filenameAppend);
    } catch (error) {
      if (!(error instanceof UnsafePathError)) throw error;
      this.#counts.messagesRead++;
      return await this.#reject(topic, partition, message, `its path is refused: ${error.message}`);
    }
    if (chunk.nTotalChunks > 1 && message.key !== null) {
      const key = message.key.toString();
      if (isPerChunkKey(key, chunk)) {
        this.#perChunkPartitions.add(partition);
        if (!this.#perChunkKeys) {
          this.#perChunkKeys = true;
          this.#scheduleSplitCheck();
        }
      } else if (key === fileKey(chunk) && this.#o.safeOffsets !== false) {
        let firsts = this.#firstOffsets.get(partition);
        if (!firsts) this.#firstOffsets.set(partition, firsts = new Map());
        if (!firsts.has(target.identity)) firsts.set(target.identity, BigInt(message.offset));
      }
    }
    if (this.#o.regex && !pythonMatch(this.#o.regex, target.key)) return;
    this.#counts.messagesRead++;
    this.#counts.bytesRead += chunk.data.length;
    // The chunk's hash is checked while it waits for its file; the assembler awaits the check
    // before using the chunk.
    const verified = verifyChunkHash(chunk);
    verified.catch(() => {}); // observed by the assembler; never an unhandled rejection
    const context = { time: recordTime(message), tick: heartbeat, verified };
    let outcome;
    try {
      outcome = await this.#retrying(
        `write chunk ${chunk.chunkI} of "${target.path}"`,
        () => this.#assembler.addChunk(chunk, target, context),
        heartbeat,
      );
    } catch (error) {
      if (error instanceof Stopped) throw error;
      if (error instanceof ChunkDecodeError) {
        this.#counts.bytesRead -= chunk.data.length;
        return await this.#reject(
          topic,
          partition,
          message,
          `it is not a valid chunk: ${error.message}`,
        );
      }
      const reason = error instanceof BadChunkError
        ? `chunk ${chunk.chunkI}/${chunk.nTotalChunks} of "${target.path}" is invalid: ${error.message}`
        : `chunk ${chunk.chunkI}/${chunk.nTotalChunks} of "${target.path}" cannot be written: ${
          error instanceof Error ? error.message : error
        }`;
      this.#reportRejected(target.path, reason);
      return await this.#reject(topic, partition, message, reason);
    }
    this.#counts.messagesProcessed++;
    this.#counts.bytesProcessed += chunk.data.length;
    if (outcome.status === "mismatch") {
      this.#reportRejected(outcome.path, "its whole-file SHA-512 did not match");
    }
    if (outcome.status === "completed") {
      this.#rejected.delete(outcome.path);
      this.#counts.filesCompleted++;
      this.#recent.push(outcome.path);
      if (this.#recent.length > RECENT_FILES) this.#recent.shift();
      this.#logger.info(
        `File ${outcome.path} successfully reconstructed from stream (${outcome.bytes} bytes)`,
      );
    }
  }

  /**
   * Checks, once the group has settled (a few seconds after the last join), whether another
   * process holds some of the topic's partitions while chunks come keyed per chunk: then a file's
   * chunks are split between the processes and multi-chunk files cannot complete on either.
   */
  #scheduleSplitCheck(): void {
    clearTimeout(this.#splitCheck);
    this.#splitCheck = setTimeout(
      () => this.#checkSplit(),
      this.#sessionTimeoutMs + SPLIT_CHECK_MS,
    );
  }

  #checkSplit(): void {
    if (this.#stopping || this.#topicPartitions === 0) return;
    // Until every consumer of this process has joined, the "other member" may be one of them:
    // look again later. (A member of an earlier run is dropped before the check: see
    // SPLIT_CHECK_MS.)
    if (this.#members.size < this.#o.consumers) return this.#scheduleSplitCheck();
    const held = new Set([...this.#assigned.values()].flat());
    this.#releaseMovedFiles(held).catch(() => {});
    const split = this.#perChunkKeys && held.size < this.#topicPartitions;
    if (!split) {
      if (this.#splitWarning !== null) {
        this.#logger.info(
          `This process now holds all ${this.#topicPartitions} partitions of "${this.#o.topic}": files can complete here again`,
        );
      }
      this.#splitWarning = null;
      return;
    }
    const mine = [...held].sort((a, b) => a - b);
    const warning = `This process holds ${
      mine.length === 0 ? "none" : `partition${mine.length === 1 ? "" : "s"} ${mine.join(", ")}`
    } of the ${this.#topicPartitions} of "${this.#o.topic}"; another member of the group "${this.#o.groupId}" holds the others. The topic's chunks are keyed per chunk (as OpenMSIStream's uploader keys them), so every file's chunks are spread over all partitions, and files of more than one chunk cannot complete in either process. Run one downloader per group on such a topic (use --n_threads for more consumers), or make the topic file-affine (see "More than one machine" in README.md)`;
    if (this.#splitWarning !== warning) this.#logger.warning(warning);
    this.#splitWarning = warning;
  }

  /**
   * The offset to commit for `partition` after handling up to `next`: on a partition keyed by file,
   * no further than the first record of a file still in progress (a process that takes the
   * partition over then reads that file again from its start).
   */
  #safeOffset(partition: number, next: bigint): bigint {
    const firsts = this.#firstOffsets.get(partition);
    if (!firsts || this.#perChunkPartitions.has(partition)) return next;
    let safe = next;
    for (const [identity, first] of firsts) {
      if (!this.#assembler.isInProgress(identity)) firsts.delete(identity);
      else if (first < safe) safe = first;
    }
    return safe;
  }

  /**
   * Gives up the files in progress that came from partitions this process no longer holds: their
   * new owner reads them again from their first record (the offsets committed here never passed it).
   */
  async #releaseMovedFiles(held: Set<number>): Promise<void> {
    // Commits still running first: they land before the files they cover are given up.
    await Promise.allSettled([...this.#commits.values()]);
    for (const [partition, firsts] of [...this.#firstOffsets]) {
      if (held.has(partition)) continue;
      this.#firstOffsets.delete(partition);
      const moving = [...firsts.keys()].filter((identity) =>
        this.#assembler.isInProgress(identity)
      );
      if (moving.length === 0) continue;
      let given = 0;
      for (const identity of moving) {
        given += await this.#assembler.abandon(identity).catch((error) => {
          this.#logger.warning(
            `Cannot give up a file of partition ${partition}: ${
              error instanceof Error ? error.message : error
            }`,
          );
          return 0;
        });
      }
      this.#logger.info(
        `Partition ${partition} moved to another member of the group: ${given} file${
          given === 1 ? "" : "s"
        } in progress from it given up here; the new owner rebuilds ${
          given === 1 ? "it" : "them"
        } from ${given === 1 ? "its" : "their"} first record`,
      );
    }
  }

  #reportRejected(path: string, reason: string): void {
    this.#rejected.delete(path);
    if (this.#rejected.size >= REJECTED_FILES) {
      this.#rejected.delete(this.#rejected.keys().next().value!);
    }
    this.#rejected.set(path, reason);
  }

  /**
   * Resolves once the flushes and commits of the batches handled so far are over (they run after
   * their batch returns, while the next records are fetched).
   */
  async settled(): Promise<void> {
    while (this.#commits.size > 0) await Promise.allSettled([...this.#commits.values()]);
  }

  /** Stops the consumers (each finishes and commits its current batch), then syncs and closes files. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#splitCheck);
    for (const wake of [...this.#sleepers]) wake();
    await this.#starting?.catch(() => {});
    // Let the batches in flight finish and commit while their consumers still run (kafkajs drops
    // commits once a consumer is stopping), then leave the group.
    if (this.#active > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    await Promise.all(this.#consumers.map((c) => c.disconnect().catch(() => {})));
    if (this.#lock) {
      try {
        await this.#assembler.close();
      } catch (error) {
        this.#logger.error(
          `Cannot sync the last chunks to disk while stopping: ${
            error instanceof Error ? error.message : error
          }. Their offsets were not committed: they are read again at the next start`,
        );
      }
      this.#lock.close();
      this.#lock = undefined;
    }
  }
}
