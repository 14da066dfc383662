/**
 * Rebuilds files from chunks, durably and atomically.
 *
 * Design (resume after a crash): a **durable journal per generation in progress**. Each
 * generation being rebuilt lives in the state folder as `partial/<id>.data`, with
 * `partial/<id>.json` (its path, file hash, chunk count, mtime and upload time, written
 * atomically) and `partial/<id>.offsets` (one line per accepted chunk: `offset length`, see
 * `journal.ts`). {@linkcode FileAssembler.flush} syncs the data, then the journal lines, then
 * the folders; the caller commits Kafka offsets only after `flush` returns. So every committed
 * chunk is on disk and known to the journal, and a restart after SIGKILL picks each file up where
 * it was, while commits keep moving during a large file.
 *
 * A generation is its file hash and its chunk layout (the chunk count): the same content uploaded
 * twice with different chunk sizes is rebuilt in two partial files, and whichever completes first
 * is published; the other's chunks are then duplicates. A generation completes only when its
 * chunks tile the file exactly (no gap, no overlap, as many as it announced). Which of two
 * contents wins is the generation policy's (`generation.ts`).
 *
 * The whole-file SHA-512 is computed as the chunks become contiguous (the chunk just written from
 * memory, chunks that arrived early from the partial file), so completing a file reads little or
 * nothing back. A file appears under its final name only after the hash matched: it gets the
 * source mtime and is renamed into place (same file system, so atomic) after its folder was
 * checked once more to lie inside the output directory; the folder is then synced. A file that
 * fails the check goes to the quarantine and is not remembered: a later upload is rebuilt.
 *
 * In-progress generations are bounded (count, bytes, idle time); past a bound the generation idle
 * the longest is given up, logged, and its partial file goes to the quarantine.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type FileHasher, InlineFileHasher, WorkerFileHasher } from "./file_hasher.ts";
import { dirname, join, relative, sep } from "node:path";
import { existsSync } from "node:fs";
import { bytesEqual, copyBytes, type DataFileChunk, toHex } from "../wire/chunk_codec.ts";
import { createSha512, sha512 } from "../wire/sha512.ts";
import { type CompletedRecord, CompletedStore } from "./completed_store.ts";
import { decideGeneration, type KnownGeneration } from "./generation.ts";
import { HandlePool, type Opener } from "./handle_pool.ts";
import { LibcFiles } from "../system/libc_files.ts";
import { isPathError, isPlaceError, isTooLargeError } from "./io_errors.ts";
import { appendLines, readJournal } from "./journal.ts";
import type { Logger } from "../console/logger.ts";
import type { Quarantine } from "./quarantine.ts";
import { type RelativeTarget, STATE_DIR_NAME } from "./safe_path.ts";
import { type CrashHook, fsyncDir, TEMP_SUFFIX, writeStateFile } from "./state_file.ts";
import { fileSystemSync, SyncGroups } from "./sync_groups.ts";

/** A chunk whose fields cannot describe a real file; the caller quarantines its record. */
export class BadChunkError extends Error {
  override name = "BadChunkError";
}

/** Largest chunk a message can carry (far above Kafka's limits), used to bound offsets. */
export const MAX_CHUNK_BYTES = 64 * 1024 * 1024;
/** Length of a SHA-512 digest. */
const HASH_BYTES = 64;
const HASH_READ_BYTES = 1024 * 1024;
/** Milliseconds between two calls of the caller's `tick` (a consumer heartbeat) while a file's hash is awaited. */
const HASH_TICK_MS = 1000;

/** Bounds on what is in progress at once. */
export interface InProgressLimits {
  /** Generations in progress at once (default 10,000). */
  maxFiles: number;
  /** Bytes of chunks held in partial files (default 512 GiB). */
  maxBytes: number;
  /** Seconds a generation may go without a new chunk while the program runs (default 7 days). */
  maxIdleSeconds: number;
}

/** The default {@linkcode InProgressLimits}. */
export const DEFAULT_LIMITS: InProgressLimits = {
  maxFiles: 10_000,
  maxBytes: 512 * 1024 ** 3,
  maxIdleSeconds: 7 * 24 * 3600,
};

/** Checks the fields the generation policy and the writer rely on. */
function checkChunkFields(chunk: DataFileChunk): void {
  const { chunkOffsetWrite: offset, chunkI: i, nTotalChunks: n, data } = chunk;
  if (n < 1) throw new BadChunkError(`n_total_chunks is ${n}`);
  if (i < 1 || i > n) throw new BadChunkError(`chunk_i ${i} is outside 1..${n}`);
  if (offset < 0) throw new BadChunkError(`chunk_offset_write is negative (${offset})`);
  if (data.length > MAX_CHUNK_BYTES) {
    throw new BadChunkError(`it carries ${data.length} bytes, more than a chunk can hold`);
  }
  if (offset + data.length > n * MAX_CHUNK_BYTES) {
    throw new BadChunkError(
      `chunk_offset_write ${offset} + ${data.length} bytes is past any size a file of ${n} chunks can have`,
    );
  }
  if (n > 1 && data.length === 0) throw new BadChunkError("it is empty in a file of many chunks");
  if (chunk.fileHash.length !== HASH_BYTES) {
    throw new BadChunkError(
      `file_hash has ${chunk.fileHash.length} bytes; a SHA-512 digest has ${HASH_BYTES}`,
    );
  }
}

/** What happened to one chunk. */
export type ChunkOutcome =
  | { status: "written" }
  | { status: "duplicate" }
  | { status: "stale" }
  | { status: "completed"; path: string; bytes: number }
  | { status: "mismatch"; path: string; keptAt: string | null };

/** Where a chunk came from and what to call while long work runs. */
export interface ChunkContext {
  /** The record's Kafka timestamp in milliseconds, or `null`. */
  time: number | null;
  /** Called every so often during long hashing (a consumer heartbeat). */
  tick?: () => Promise<void>;
  /**
   * The check of the chunk's own hash, when it runs while the chunk waits for its file (see
   * `verifyChunkHash`): awaited before the chunk is used; its error is thrown from `addChunk`.
   */
  verified?: Promise<void>;
}

/** One generation being rebuilt. */
interface InProgress extends KnownGeneration {
  id: string;
  target: RelativeTarget;
  /** Start offsets of the accepted chunks, sorted. */
  starts: number[];
  lengths: Map<number, number>;
  /** Sum of the accepted chunks' lengths. */
  bytes: number;
  /** End of the furthest accepted chunk. */
  extent: number;
  /**
   * A one-chunk file's whole-file SHA-512 once its chunk is written at offset 0: the chunk's own
   * hash when that was checked, else hashed here (`null` for the others, which the file hasher
   * reads back from the partial file).
   */
  digest: Uint8Array | null;
  /** Bytes covered by `digest`, or given to the file hasher as contiguous on disk. */
  hashedUpTo: number;
  /** Journal lines of chunks written but not yet synced. */
  pending: string[];
  /** Writes so far; a sync clears `dirty` only when none came in meanwhile. */
  writes: number;
  dirty: boolean;
  metaWritten: boolean;
  /** Bytes of the journal known to be whole lines on disk. */
  journalBytes: number;
  /** `Date.now()` of the last accepted chunk (or of the start of this run). */
  lastActive: number;
  state: "open" | "completing" | "gone";
  /** Syncs of this generation, one at a time. */
  syncing: Promise<void>;
}

/** Counts and files for the console's `check`. */
export interface AssemblerStatus {
  inProgress: { path: string; chunks: number; total: number; bytes: number }[];
  /** Generations given up (over a bound, or idle too long) in this run. */
  givenUp: number;
}

/** Per-key promise chains: one task at a time per file. */
class KeyedMutex {
  #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }
}

/** Syncs issued at once by a flush. */
const SYNCS_IN_FLIGHT = 32;

/** True for a generation of one chunk: its record alone describes it (no description or journal). */
function isSingleChunk(file: { nTotalChunks: number }): boolean {
  return file.nTotalChunks === 1;
}

/**
 * Runs `task` on every item, at most `limit` at a time; waits for all of them and then throws the
 * first error, if any.
 */
async function inParallel<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}

function generationId(identity: string, fileHash: Uint8Array, n: number): string {
  return createHash("sha256").update(`${identity}\0${toHex(fileHash)}\0${n}`).digest("hex")
    .slice(0, 32);
}

async function hashFile(path: string): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    const hash = createSha512();
    const buffer = new Uint8Array(HASH_READ_BYTES);
    while (true) {
      const n = await file.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
    }
    return hash.digest();
  } finally {
    file.close();
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Index of the first start ≥ `offset` in a sorted array. */
function lowerBound(starts: number[], offset: number): number {
  let lo = 0;
  let hi = starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid]! < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Options of {@linkcode FileAssembler}. */
export interface FileAssemblerOptions {
  /** Absolute path of the output directory. */
  outputDir: string;
  /** Absolute path of the program's state folder (inside the output directory). */
  stateDir: string;
  logger: Logger;
  quarantine: Quarantine;
  /** Bounds on what is in progress (defaults: {@linkcode DEFAULT_LIMITS}). */
  limits?: Partial<InProgressLimits>;
  /** Test hook called at each dangerous step (a crash test kills the process there). */
  crashHook?: CrashHook;
  /** The clock, in milliseconds (default `Date.now`). */
  now?: () => number;
  /**
   * Where multi-chunk files get their whole-file SHA-512: on a worker thread of its own
   * (`"worker"`), or on this thread between chunks (`"inline"`, the default).
   */
  hashing?: "inline" | "worker";
  /**
   * How one-chunk files are made durable together (default: with `syncfs` on the file system of
   * the state folder where it can, see `sync_groups.ts`).
   */
  syncGroups?: SyncGroups;
  /**
   * libc's file calls (see `libc_files.ts`): for the partial files of one-chunk uploads while sync
   * groups make them durable (Deno's open checks its path's permission with a `readlink` per
   * folder level, a third of its cost), and for the rename that publishes a file, on another
   * thread. Default: {@linkcode LibcFiles.forFolder} of the output directory, where Deno allows
   * it; `false`: Deno's calls only. One given here is not closed.
   */
  libcFiles?: LibcFiles | false;
}

/** Writes chunks into partial files, completes files atomically, and keeps a crash-safe journal. */
export class FileAssembler {
  readonly #outputDir: string;
  readonly #partialDir: string;
  readonly #logger: Logger;
  readonly #quarantine: Quarantine;
  readonly #completed: CompletedStore;
  readonly #limits: InProgressLimits;
  readonly #crash: CrashHook | undefined;
  readonly #now: () => number;
  readonly #mutex = new KeyedMutex();
  readonly #pool = new HandlePool();
  readonly #hasher: FileHasher;
  #groups: SyncGroups;
  readonly #ownGroups: boolean;
  readonly #libcOption: LibcFiles | false | undefined;
  #libc: LibcFiles | undefined;
  #ownLibc = false;
  #libcOpener: Opener | undefined;
  /** Generations in progress by id. */
  readonly #files = new Map<string, InProgress>();
  /** Generations with bytes written past a gap (not hashed yet). */
  readonly #gapped = new Set<InProgress>();
  /** Generations in progress by path identity (several only for one content in several layouts). */
  readonly #byPath = new Map<string, Set<InProgress>>();
  /** Generations whose whole-file check failed in this run, by path identity. */
  readonly #failed = new Map<string, KnownGeneration>();
  /** Skips already logged, per path identity, so each is said once per file. */
  readonly #told = new Map<string, Set<string>>();
  /** Pairs of spellings of one path identity already warned about. */
  readonly #spellings = new Set<string>();
  #dirsToSync = new Set<string>();
  #realOutputDir = "";
  #safeDirs = new Set<string>();
  /**
   * Folders of the output tree this run created: what is in them, this run published (or someone
   * put there since).
   */
  #madeDirs = new Set<string>();
  #givenUp = 0;
  #flushing: Promise<void> = Promise.resolve();
  /** The flush queued behind the running one, not started yet. */
  #nextFlush: Promise<void> | undefined;

  constructor(options: FileAssemblerOptions) {
    this.#outputDir = options.outputDir;
    this.#partialDir = join(options.stateDir, "partial");
    this.#completed = new CompletedStore(join(options.stateDir, "completed.log"));
    this.#logger = options.logger;
    this.#quarantine = options.quarantine;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#crash = options.crashHook;
    this.#now = options.now ?? Date.now;
    this.#hasher = options.hashing === "worker" ? new WorkerFileHasher() : new InlineFileHasher();
    this.#groups = options.syncGroups ?? new SyncGroups(undefined);
    this.#ownGroups = options.syncGroups === undefined;
    this.#libcOption = options.libcFiles;
  }

  /** Creates the state folders and resumes the files an earlier run left in progress. */
  async open(): Promise<void> {
    await Deno.mkdir(this.#partialDir, { recursive: true });
    if (this.#ownGroups) {
      this.#groups = new SyncGroups(
        fileSystemSync(this.#partialDir),
        Date.now,
        (message, failure) => failure ? this.#logger.warning(message) : this.#logger.info(message),
      );
    }
    if (this.#libcOption !== false) {
      const libc = this.#libcOption ?? LibcFiles.forFolder(this.#outputDir);
      this.#ownLibc = this.#libcOption === undefined;
      this.#libc = libc;
      this.#libcOpener = libc && ((path, flags) => libc.open(path, flags));
    }
    this.#realOutputDir = await Deno.realPath(this.#outputDir);
    await this.#completed.load();
    const names = new Set<string>();
    for await (const entry of Deno.readDir(this.#partialDir)) names.add(entry.name);
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      await this.#resume(name.slice(0, -5)).catch((error) => {
        // Its chunks may already be committed: deleting it could lose the file. Stop instead.
        throw new Error(
          `Cannot resume the in-progress file ${join(this.#partialDir, name)}: ${
            messageOf(error)
          }. Fix the cause (a full disk, a permission) and start again`,
        );
      });
    }
    // Anything else in partial/ belongs to no journal: temporaries of an interrupted state-file
    // write, or the data of a generation whose description never reached the disk (so none of
    // its chunks was committed).
    for (const name of names) {
      const id = name.replace(/\.(json|data|offsets)$/, "").replace(TEMP_SUFFIX, "");
      if (this.#files.has(id)) continue;
      await Deno.remove(join(this.#partialDir, name)).catch(() => {});
    }
    if (this.#files.size > 0) {
      this.#logger.info(
        `Resuming ${this.#files.size} file${this.#files.size === 1 ? "" : "s"} left in progress`,
      );
    }
    // A generation whose every chunk was journaled but which was not published before the crash.
    for (const file of [...this.#files.values()]) {
      if (!this.#tiled(file)) continue;
      await this.#mutex.run(file.target.identity, () => this.#complete(file, undefined)).catch(
        (error) => this.#logger.error(messageOf(error)),
      );
    }
    await this.flush();
  }

  async #resume(id: string): Promise<void> {
    const base = join(this.#partialDir, id);
    let meta: {
      target: RelativeTarget;
      fileHash: string;
      nTotalChunks: number;
      mtime: number | null;
      firstTime?: number | null;
    };
    try {
      meta = JSON.parse(await Deno.readTextFile(`${base}.json`));
      if (typeof meta.target?.path !== "string" || !/^[0-9a-f]{128}$/.test(meta.fileHash)) {
        throw new SyntaxError("fields are missing");
      }
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      // Written before any chunk of it was synced; a torn one (an older version wrote it in place)
      // means nothing of the generation was committed.
      this.#logger.warning(
        `Removing the unreadable in-progress description ${base}.json (${error.message}); none of its chunks was committed`,
      );
      await this.#removeFiles(id);
      return;
    }
    const target: RelativeTarget = {
      ...meta.target,
      identity: meta.target.identity ?? meta.target.path,
    };
    const generation: KnownGeneration = {
      fileHash: Uint8Array.from(meta.fileHash.match(/../g)!.map((h) => parseInt(h, 16))),
      nTotalChunks: meta.nTotalChunks,
      mtime: meta.mtime,
      firstTime: meta.firstTime ?? null,
      lastTime: meta.firstTime ?? null,
    };
    if (!(await this.#exists(`${base}.data`))) {
      // Crashed between the rename into place and the removal of the journal.
      const final = join(this.#outputDir, target.path);
      if (await this.#exists(final) && bytesEqual(await hashFile(final), generation.fileHash)) {
        if (!this.#completed.get(target.identity)) {
          this.#completed.remember({ ...generation, path: target.path, identity: target.identity });
        }
      }
      await this.#removeFiles(id);
      return;
    }
    const journal = await readJournal(`${base}.offsets`);
    const file = this.#newInProgress(id, target, generation);
    file.metaWritten = true;
    file.dirty = false;
    file.journalBytes = journal.bytes;
    for (const [offset, length] of journal.entries) {
      if (this.#overlaps(file, offset, length) !== "free") continue;
      this.#accept(file, offset, length);
    }
    this.#track(file);
  }

  async #exists(path: string): Promise<boolean> {
    try {
      await Deno.lstat(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  #newInProgress(id: string, target: RelativeTarget, g: KnownGeneration): InProgress {
    return {
      // A copy: the chunk's hash is a view into a whole fetched batch, which must not stay alive.
      fileHash: copyBytes(g.fileHash),
      nTotalChunks: g.nTotalChunks,
      mtime: g.mtime,
      firstTime: g.firstTime,
      lastTime: g.lastTime,
      id,
      target,
      starts: [],
      lengths: new Map(),
      bytes: 0,
      extent: 0,
      digest: null,
      hashedUpTo: 0,
      pending: [],
      writes: 0,
      dirty: true,
      metaWritten: false,
      journalBytes: 0,
      lastActive: this.#now(),
      state: "open",
      syncing: Promise.resolve(),
    };
  }

  #track(file: InProgress): void {
    this.#files.set(file.id, file);
    let set = this.#byPath.get(file.target.identity);
    if (!set) this.#byPath.set(file.target.identity, set = new Set());
    set.add(file);
  }

  #untrack(file: InProgress): void {
    file.state = "gone";
    this.#files.delete(file.id);
    this.#gapped.delete(file);
    const set = this.#byPath.get(file.target.identity);
    set?.delete(file);
    if (set?.size === 0) this.#byPath.delete(file.target.identity);
  }

  /** True while a file of this path identity is being rebuilt. */
  isInProgress(identity: string): boolean {
    return this.#byPath.has(identity);
  }

  /**
   * Gives up the files of this path identity in progress (their partial files and journals go):
   * another process rebuilds them, from their first record. Returns how many were given up.
   */
  abandon(identity: string): Promise<number> {
    return this.#mutex.run(identity, async () => {
      const files = [...(this.#byPath.get(identity) ?? [])];
      for (const file of files) await this.#discard(file);
      return files.length;
    });
  }

  /** Files in progress, for the console. */
  status(): AssemblerStatus {
    return {
      inProgress: [...this.#files.values()].map((f) => ({
        path: f.target.path,
        chunks: f.starts.length,
        total: f.nTotalChunks,
        bytes: f.bytes,
      })),
      givenUp: this.#givenUp,
    };
  }

  /**
   * Writes one chunk (not yet synced: call {@linkcode FileAssembler.flush} before committing)
   * and completes its file when it was the last one missing.
   *
   * @throws {BadChunkError} when the chunk contradicts its own generation or cannot be placed.
   * @throws {Error} from the file system (the chunk is then not accepted; retry it).
   */
  addChunk(
    chunk: DataFileChunk,
    target: RelativeTarget,
    context: ChunkContext = { time: null },
  ): Promise<ChunkOutcome> {
    checkChunkFields(chunk);
    // The lock is taken now, so that one file's chunks go in the order they were given, even when
    // their hash checks end in another order.
    return this.#mutex.run(target.identity, async () => {
      await context.verified;
      return await this.#add(chunk, target, context);
    });
  }

  /** Logs a skip once per file and reason. */
  #tell(identity: string, key: string, message: string): void {
    let told = this.#told.get(identity);
    if (!told) {
      if (this.#told.size >= 10_000) this.#told.delete(this.#told.keys().next().value!);
      this.#told.set(identity, told = new Set());
    }
    if (told.has(key)) return;
    told.add(key);
    this.#logger.info(message);
  }

  /** Warns once per pair when a path names a file known under another spelling of its identity. */
  #warnSpelling(target: RelativeTarget, known: string | undefined): void {
    if (known === undefined || known === target.path) return;
    const pair = [known, target.path].sort().join("\0");
    if (this.#spellings.has(pair)) return;
    if (this.#spellings.size >= 10_000) {
      this.#spellings.delete(this.#spellings.values().next().value!);
    }
    this.#spellings.add(pair);
    this.#logger.warning(
      `"${target.path}" and "${known}" are the same file on this file system (their names differ only in case or Unicode normalisation); the later upload wins`,
    );
  }

  async #add(
    chunk: DataFileChunk,
    target: RelativeTarget,
    context: ChunkContext,
  ): Promise<ChunkOutcome> {
    const identity = target.identity;
    const incoming = {
      fileHash: chunk.fileHash,
      nTotalChunks: chunk.nTotalChunks,
      mtime: chunk.fileMtime,
      time: context.time,
    };
    const short = toHex(chunk.fileHash).slice(0, 8);
    const failed = this.#failed.get(identity);
    if (
      failed && bytesEqual(failed.fileHash, chunk.fileHash) &&
      failed.nTotalChunks === chunk.nTotalChunks &&
      (context.time === null || failed.lastTime === null || context.time <= failed.lastTime)
    ) {
      this.#tell(
        identity,
        `failed ${short}`,
        `Skipping the remaining chunks of "${target.path}" (hash ${short}): that upload failed its whole-file check`,
      );
      return { status: "stale" };
    }
    const inProgress = [...(this.#byPath.get(identity) ?? [])];
    this.#warnSpelling(target, inProgress[0]?.target.path ?? this.#completed.get(identity)?.path);
    const published = this.#completed.get(identity) ??
      (inProgress.length === 0 ? await this.#publishedOnDisk(target, chunk.fileHash) : undefined);
    const current = inProgress.length > 0 ? this.#generationOf(inProgress) : published ?? null;
    const decision = decideGeneration(
      inProgress.length > 0 ? current : null,
      published ?? null,
      incoming,
    );
    if (decision === "duplicate") return { status: "duplicate" };
    if (decision === "stale") {
      this.#tell(
        identity,
        `stale ${short}`,
        `Skipping the chunks of an earlier upload of "${target.path}" (hash ${short}, ${chunk.nTotalChunks} chunks${
          context.time === null ? "" : `, uploaded ${new Date(context.time).toISOString()}`
        }): a later upload (hash ${toHex(current!.fileHash).slice(0, 8)}) wins`,
      );
      return { status: "stale" };
    }
    if ((decision === "newer" || decision === "reupload") && inProgress.length > 0) {
      const old = this.#generationOf(inProgress);
      const chunks = inProgress.reduce((sum, f) => sum + f.starts.length, 0);
      this.#logger.warning(
        `"${target.path}" was uploaded again (had ${old.nTotalChunks} chunks with hash ${
          toHex(old.fileHash).slice(0, 8)
        }, now ${chunk.nTotalChunks} chunks with hash ${short}). Discarding ${chunks} chunks of the earlier upload and starting fresh.`,
      );
      for (const f of inProgress) await this.#discard(f);
    }
    if (decision === "reupload" && published) {
      // The published content uploaded again: rebuild it only if the file is no longer there.
      if (await this.#exists(join(this.#outputDir, published.path))) {
        this.#sawUploadAgain(published, context.time!);
        this.#tell(
          identity,
          `again ${short}`,
          `"${target.path}" was uploaded again with the content it already has; keeping it`,
        );
        return { status: "duplicate" };
      }
      this.#tell(
        identity,
        `rebuild ${short}`,
        `"${target.path}" was uploaded again and is no longer in the output directory; rebuilding it`,
      );
    }
    // The same content in the same layout continues; another layout gets its own partial file.
    const id = generationId(identity, chunk.fileHash, chunk.nTotalChunks);
    let file = this.#files.get(id);
    if (!file) {
      file = await this.#startGeneration(id, target, {
        ...incoming,
        firstTime: context.time,
        lastTime: context.time,
      });
    }
    if (context.time !== null) {
      if (file.firstTime === null || context.time < file.firstTime) file.firstTime = context.time;
      if (file.lastTime === null || context.time > file.lastTime) file.lastTime = context.time;
    }
    return await this.#write(file, chunk, context);
  }

  /** The generation in progress (several layouts share its content). */
  #generationOf(files: InProgress[]): KnownGeneration {
    const first = files[0]!;
    let firstTime = first.firstTime;
    let lastTime = first.lastTime;
    for (const f of files) {
      if (f.firstTime !== null && (firstTime === null || f.firstTime < firstTime)) {
        firstTime = f.firstTime;
      }
      if (f.lastTime !== null && (lastTime === null || f.lastTime > lastTime)) {
        lastTime = f.lastTime;
      }
    }
    return { ...first, firstTime, lastTime };
  }

  /**
   * Notes a later upload of the published content. Uploads of other content are compared with
   * it from now on; it is written down when it starts more than a minute after the previous
   * upload's last record (not for every chunk of it).
   */
  #sawUploadAgain(record: CompletedRecord, time: number): void {
    if (record.lastTime === null || time <= record.lastTime) return;
    const fresh = time - record.lastTime > 60_000;
    // Both times move: other content is from now on compared with this latest upload.
    const updated = { ...record, firstTime: time, lastTime: time };
    if (fresh) this.#completed.remember(updated);
    else this.#completed.update(updated);
  }

  /**
   * A final file on disk whose content has the chunk's hash, for a path the store does not know
   * (a crash before its record was synced, or a store that forgot it).
   */
  async #publishedOnDisk(
    target: RelativeTarget,
    fileHash: Uint8Array,
  ): Promise<CompletedRecord | undefined> {
    const final = join(this.#outputDir, target.path);
    // In a folder this run created, a file it did not publish was put there by someone else since:
    // it is rebuilt over, as a file with other content would be.
    if (this.#madeDirs.has(dirname(final))) return undefined;
    // Most paths are new: `existsSync` answers without building an error (0.6 µs against 8 µs
    // for a throwing `lstatSync` here). It follows links, so the lstat below still decides.
    if (!existsSync(final)) return undefined;
    try {
      const info = Deno.lstatSync(final); // a metadata call: see handle_pool.ts's open
      if (!info.isFile) return undefined;
    } catch {
      return undefined;
    }
    if (!bytesEqual(await hashFile(final), fileHash)) return undefined;
    const record: CompletedRecord = {
      fileHash,
      nTotalChunks: 0,
      mtime: null,
      firstTime: null,
      lastTime: null,
      path: target.path,
      identity: target.identity,
    };
    this.#completed.remember(record);
    return record;
  }

  /** Where a chunk falls among the accepted ones. */
  #overlaps(file: InProgress, offset: number, length: number): "free" | "same" | "overlap" {
    const known = file.lengths.get(offset);
    if (known !== undefined) return known === length ? "same" : "overlap";
    const i = lowerBound(file.starts, offset);
    const before = file.starts[i - 1];
    if (before !== undefined && before + file.lengths.get(before)! > offset) return "overlap";
    const after = file.starts[i];
    if (after !== undefined && offset + length > after) return "overlap";
    return "free";
  }

  #accept(file: InProgress, offset: number, length: number): void {
    file.starts.splice(lowerBound(file.starts, offset), 0, offset);
    file.lengths.set(offset, length);
    file.bytes += length;
    file.extent = Math.max(file.extent, offset + length);
  }

  /** True when the accepted chunks are as many as announced and tile `[0, extent)` exactly. */
  #tiled(file: InProgress): boolean {
    return file.starts.length === file.nTotalChunks && file.bytes === file.extent;
  }

  async #write(
    file: InProgress,
    chunk: DataFileChunk,
    context: ChunkContext,
  ): Promise<ChunkOutcome> {
    const offset = chunk.chunkOffsetWrite;
    const length = chunk.data.length;
    const place = this.#overlaps(file, offset, length);
    if (place === "same") {
      // A completion that failed on a transient error is retried when its chunk comes again.
      return this.#tiled(file) ? await this.#complete(file, context.tick) : { status: "duplicate" };
    }
    if (place === "overlap") {
      throw new BadChunkError(
        `its bytes ${offset}..${offset + length} overlap another chunk of the same upload`,
      );
    }
    if (file.starts.length >= file.nTotalChunks) {
      throw new BadChunkError(
        `the upload already has its ${file.nTotalChunks} chunks, and they leave gaps: this one does not belong to it`,
      );
    }
    // What the other chunks can still fill: each is at most MAX_CHUNK_BYTES long.
    const room = file.bytes + length +
      (file.nTotalChunks - file.starts.length - 1) * MAX_CHUNK_BYTES;
    if (Math.max(file.extent, offset + length) > room) {
      throw new BadChunkError(
        `chunk_offset_write ${offset} is past what the ${file.nTotalChunks} chunks of the upload can fill`,
      );
    }
    const path = join(this.#partialDir, `${file.id}.data`);
    await this.#pool.use(file.id, path, "r+", (handle) => handle.writeAt(chunk.data, offset))
      .catch((error) => {
        if (isTooLargeError(error)) {
          throw new BadChunkError(`it cannot be written at offset ${offset}: ${messageOf(error)}`);
        }
        throw error;
      });
    this.#pool.pin(file.id, true);
    this.#crash?.("after-data-write");
    this.#accept(file, offset, length);
    file.pending.push(`${offset} ${length}\n`);
    file.writes++;
    file.dirty = true;
    file.lastActive = this.#now();
    if (isSingleChunk(file)) {
      // Its one chunk at offset 0 is the whole file: a checked chunk hash is the file's hash.
      if (offset === 0) {
        file.digest = context.verified ? copyBytes(chunk.chunkHash) : sha512(chunk.data);
        file.hashedUpTo = length;
      }
    } else {
      this.#advanceHash(file);
    }
    this.#noteGap(file);
    if (!this.#tiled(file)) return { status: "written" };
    return await this.#complete(file, context.tick);
  }

  /**
   * Bytes written in this run that wait behind a gap in their file: they cannot be hashed before
   * the gap is filled, so they are held in the page cache meanwhile.
   */
  get bytesPastGaps(): number {
    let bytes = 0;
    for (const file of this.#gapped) bytes += file.bytes - file.hashedUpTo;
    return bytes;
  }

  #noteGap(file: InProgress): void {
    if (file.state !== "gone" && file.bytes > file.hashedUpTo) this.#gapped.add(file);
    else this.#gapped.delete(file);
  }

  /** Tells the file hasher how far the file is now contiguous on disk. */
  #advanceHash(file: InProgress): void {
    let end = file.hashedUpTo;
    for (let next = file.lengths.get(end); next !== undefined; next = file.lengths.get(end)) {
      end += next;
    }
    if (end === file.hashedUpTo) return;
    file.hashedUpTo = end;
    this.#noteGap(file);
    this.#hasher.advance(file.id, join(this.#partialDir, `${file.id}.data`), end);
  }

  /** The whole-file SHA-512 of a tiled file, with a heartbeat every second while it is awaited. */
  async #digest(file: InProgress, tick: (() => Promise<void>) | undefined): Promise<Uint8Array> {
    if (file.digest && file.hashedUpTo === file.extent) return file.digest;
    this.#advanceHash(file);
    const digest = this.#hasher.digest(
      file.id,
      join(this.#partialDir, `${file.id}.data`),
      file.extent,
    );
    if (!tick) return await digest;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let done = false;
    digest.then(() => done = true, () => done = true);
    try {
      while (!done) {
        await Promise.race([
          digest,
          new Promise<void>((resolve) => timer = setTimeout(resolve, HASH_TICK_MS)),
        ]);
        clearTimeout(timer);
        if (!done) await tick().catch(() => {});
      }
      return await digest;
    } finally {
      clearTimeout(timer);
    }
  }

  async #startGeneration(
    id: string,
    target: RelativeTarget,
    g: KnownGeneration,
  ): Promise<InProgress> {
    // Refuse a path that cannot be published (a symlink out, a file in the way) before accepting anything.
    await this.#makeSafeDir(dirname(join(this.#outputDir, target.path)));
    const file = this.#newInProgress(id, target, g);
    const base = join(this.#partialDir, id);
    // A one-chunk file joining a sync group needs no fdatasync of its own: libc's calls, which
    // skip Deno's per-path permission check, can open and write it.
    const single = isSingleChunk(file);
    const open = single && this.#groups.grouping ? this.#libcOpener : undefined;
    // A one-chunk file's one write follows: its descriptor stays until it is published (hundreds
    // of records in flight would otherwise push it out of the pool before that write, which would
    // open it again).
    await this.#pool.use(id, `${base}.data`, "w+", () => {
      if (single) this.#pool.pin(id, true);
      return Promise.resolve();
    }, open);
    // The journal exists before the description is written (whose folder sync makes both durable).
    // A one-chunk file has neither: see #syncNow.
    if (!single) await Deno.writeFile(`${base}.offsets`, new Uint8Array());
    this.#track(file);
    return file;
  }

  /** Runs `task` after the syncs of `file` queued before it. */
  #chain(file: InProgress, task: () => Promise<void>): Promise<void> {
    const next = file.syncing.then(task, task);
    file.syncing = next.catch(() => {});
    return next;
  }

  /** Makes what was written to `file` durable: its description, its data, then its journal. */
  async #syncNow(file: InProgress): Promise<void> {
    if (!file.dirty || file.state === "gone") return;
    const writes = file.writes;
    const lines = file.pending;
    file.pending = [];
    const base = join(this.#partialDir, file.id);
    // A one-chunk file needs no description or journal: its only record is not committed before
    // the file is published, so a crash before that reads it again (and the data file, which no
    // description claims, is removed at start).
    const single = isSingleChunk(file);
    try {
      if (!file.metaWritten && !single) {
        const meta = {
          target: file.target,
          fileHash: toHex(file.fileHash),
          nTotalChunks: file.nTotalChunks,
          mtime: file.mtime,
          firstTime: file.firstTime,
        };
        await writeStateFile(
          `${base}.json`,
          new TextEncoder().encode(JSON.stringify(meta)),
          this.#crash,
        );
        file.metaWritten = true;
      }
      // A one-chunk file is made durable with the others written meanwhile, where it can be.
      if (!single || !(await this.#groups.join())) {
        await this.#pool.use(file.id, `${base}.data`, "r+", (h) => h.syncData());
      }
      if (lines.length > 0 && !single) {
        file.journalBytes = await appendLines(`${base}.offsets`, file.journalBytes, lines.join(""));
        this.#crash?.("after-journal-write");
      }
    } catch (error) {
      file.pending = lines.concat(file.pending);
      throw error;
    }
    if (file.writes === writes) {
      file.dirty = false;
      // A one-chunk file is published next, which sets its mtime through this descriptor.
      if (!single) this.#pool.pin(file.id, false);
    }
  }

  async #discard(file: InProgress): Promise<void> {
    this.#untrack(file);
    await this.#chain(file, async () => {
      this.#pool.close(file.id);
      await this.#removeFiles(file.id);
    });
  }

  async #removeFiles(id: string): Promise<void> {
    await this.#hasher.forget(id);
    const base = join(this.#partialDir, id);
    for (const ext of [".json", ".offsets", ".data", `.json${TEMP_SUFFIX}`]) {
      await Deno.remove(base + ext).catch(() => {});
    }
  }

  async #complete(
    file: InProgress,
    tick: (() => Promise<void>) | undefined,
  ): Promise<ChunkOutcome> {
    // Durable first, so that syncs of other batches need not wait for this completion.
    await this.#chain(file, async () => {
      await this.#syncNow(file);
      file.state = "completing";
    });
    try {
      return await this.#publish(file, tick);
    } finally {
      if (file.state === "completing") file.state = "open";
    }
  }

  async #publish(file: InProgress, tick: (() => Promise<void>) | undefined): Promise<ChunkOutcome> {
    const digest = await this.#digest(file, tick);
    const path = file.target.path;
    const partial = join(this.#partialDir, `${file.id}.data`);
    if (!bytesEqual(digest, file.fileHash)) {
      const reason =
        `Cannot rebuild "${path}": its whole-file SHA-512 does not match after all ${file.nTotalChunks} chunks were written (expected ${
          toHex(file.fileHash).slice(0, 16)
        }…, got ${toHex(digest).slice(0, 16)}…)`;
      if (this.#failed.size >= 10_000) this.#failed.delete(this.#failed.keys().next().value!);
      this.#failed.set(file.target.identity, {
        fileHash: file.fileHash,
        nTotalChunks: file.nTotalChunks,
        mtime: file.mtime,
        firstTime: file.firstTime,
        lastTime: file.lastTime,
      });
      const keptAt = await this.#retire(file, reason);
      this.#logger.error(
        `${reason}; ${
          keptAt ? `the file was moved to ${keptAt}` : "the file was deleted"
        }. A later upload of it will be rebuilt`,
      );
      return { status: "mismatch", path, keptAt };
    }
    const final = join(this.#outputDir, path);
    try {
      // Metadata calls, made synchronously (see handle_pool.ts's open).
      if (file.mtime !== null) {
        const mtime = new Date(file.mtime * 1000);
        const handle = this.#pool.peek(file.id);
        if (handle?.setTimes) handle.setTimes(mtime);
        else Deno.utimeSync(partial, mtime, mtime);
      }
      this.#pool.close(file.id);
      await this.#makeSafeDir(dirname(final));
      this.#checkParent(final);
      this.#crash?.("before-publish");
      if (this.#libc !== undefined) await this.#libc.rename(partial, final);
      else Deno.renameSync(partial, final);
    } catch (error) {
      this.#pool.close(file.id);
      // A path that cannot take the file fails it; anything else (a full disk, the output
      // directory itself refusing) is retried.
      const placeFault = isPlaceError(error) && dirname(final) !== this.#outputDir;
      if (!(error instanceof BadChunkError) && !isPathError(error) && !placeFault) throw error;
      const reason = `Cannot place "${path}" in the output directory: ${messageOf(error)}`;
      const keptAt = await this.#retire(file, reason);
      throw new BadChunkError(
        `${reason}; the rebuilt file was ${keptAt ? `moved to ${keptAt}` : "deleted"}`,
      );
    }
    this.#crash?.("after-publish");
    this.#untrack(file);
    this.#failed.delete(file.target.identity);
    this.#dirsToSync.add(dirname(final));
    this.#completed.remember({ ...file, path, identity: file.target.identity });
    // A one-chunk file has nothing else, unless an earlier version of the program described it.
    if (file.metaWritten) await this.#removeFiles(file.id);
    // The same content in another layout is now a duplicate.
    for (const other of [...(this.#byPath.get(file.target.identity) ?? [])]) {
      await this.#discard(other);
    }
    return { status: "completed", path, bytes: file.extent };
  }

  /** Moves a generation that cannot be published to the quarantine and forgets its journal. */
  async #retire(file: InProgress, reason: string): Promise<string | null> {
    this.#untrack(file);
    await this.#hasher.forget(file.id);
    this.#pool.close(file.id);
    const data = join(this.#partialDir, `${file.id}.data`);
    let keptAt: string | null = null;
    try {
      keptAt = await this.#quarantine.keepFile(data, file.target.name, reason);
    } catch (error) {
      this.#logger.warning(`Cannot keep ${data} in the quarantine: ${messageOf(error)}`);
    }
    await this.#removeFiles(file.id);
    return keptAt;
  }

  /**
   * Checks, right before the rename, that the file's folder still lies inside the output
   * directory and outside the state folder (a folder swapped for a symlink since it was made).
   * A swap between this check and the rename is not detected.
   */
  #checkParent(final: string): void {
    const real = Deno.realPathSync(dirname(final));
    const realState = join(this.#realOutputDir, STATE_DIR_NAME);
    if (
      (real !== this.#realOutputDir && !real.startsWith(this.#realOutputDir + sep)) ||
      real === realState || real.startsWith(realState + sep)
    ) {
      this.#safeDirs.clear();
      this.#madeDirs.clear();
      throw new BadChunkError(
        `its folder ${dirname(final)} now leads outside the output directory (to ${real})`,
      );
    }
  }

  /**
   * Creates a folder under the output directory one level at a time, refusing any existing
   * level that is a symlink leading out of it (nothing is created through such a link).
   */
  async #makeSafeDir(dir: string): Promise<void> {
    if (this.#safeDirs.has(dir)) return;
    const rel = relative(this.#outputDir, dir);
    let current = this.#outputDir;
    for (const part of rel === "" ? [] : rel.split(sep)) {
      current = join(current, part);
      if (this.#safeDirs.has(current)) continue;
      let info: Deno.FileInfo | undefined;
      try {
        info = await Deno.lstat(current);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      if (info === undefined) {
        const made = await Deno.mkdir(current).then(() => true, (error) => {
          if (error instanceof Deno.errors.AlreadyExists) return false;
          // A folder of the tree refusing it is this file's problem; the output directory
          // itself refusing it concerns every file.
          if (isPlaceError(error) && dirname(current) !== this.#outputDir) {
            throw new BadChunkError(`cannot create the folder ${current}: ${messageOf(error)}`);
          }
          throw error;
        });
        if (made) this.#madeDirs.add(current);
      } else if (info.isSymlink) {
        const real = await Deno.realPath(current);
        const realState = join(this.#realOutputDir, STATE_DIR_NAME);
        if (
          (real !== this.#realOutputDir && !real.startsWith(this.#realOutputDir + sep)) ||
          real === realState || real.startsWith(realState + sep)
        ) {
          throw new BadChunkError(
            `its folder ${current} is a symlink leading outside the output directory (to ${real})`,
          );
        }
      } else if (!info.isDirectory) {
        throw new BadChunkError(`${current} is in the way: it is a file, not a folder`);
      }
      this.#safeDirs.add(current);
    }
  }

  /** Gives up generations past the bounds: idle too long first, then the least recently active. */
  async #enforceLimits(): Promise<void> {
    const now = this.#now();
    const files = [...this.#files.values()].sort((a, b) => a.lastActive - b.lastActive);
    let count = files.length;
    let bytes = files.reduce((sum, f) => sum + f.bytes, 0);
    for (const file of files) {
      const idle = (now - file.lastActive) / 1000;
      let why: string | undefined;
      if (idle > this.#limits.maxIdleSeconds) {
        why = `no chunk of it came for ${
          Math.round(idle)
        } s (the limit is ${this.#limits.maxIdleSeconds} s)`;
      } else if (count > this.#limits.maxFiles) {
        why = `${count} files are in progress (the limit is ${this.#limits.maxFiles})`;
      } else if (bytes > this.#limits.maxBytes) {
        why = `files in progress hold ${bytes} bytes (the limit is ${this.#limits.maxBytes})`;
      } else {
        continue;
      }
      const done = await this.#mutex.run(file.target.identity, async () => {
        if (file.state !== "open" || this.#files.get(file.id) !== file) return false;
        // Its chunks are committed or about to be: make them durable before moving the file.
        await this.#chain(file, () => this.#syncNow(file));
        const reason =
          `Giving up "${file.target.path}" with ${file.starts.length} of ${file.nTotalChunks} chunks: ${why}`;
        const keptAt = await this.#retire(file, reason);
        this.#logger.warning(
          `${reason}; ${
            keptAt ? `its partial file was moved to ${keptAt}` : "its partial file was deleted"
          }. A later upload of it will be rebuilt`,
        );
        return true;
      });
      if (done) {
        this.#givenUp++;
        count--;
        bytes -= file.bytes;
      }
    }
  }

  /**
   * Makes every chunk written so far durable: file data, journal lines, completed renames.
   * Call before committing the offsets of those chunks.
   */
  flush(): Promise<void> {
    // One at a time: a flush returns only when everything written before it is durable, including
    // what a concurrent flush had taken over (folders to sync, completed records). A flush that
    // has not started yet covers everything written before it starts: callers that ask meanwhile
    // share it instead of queueing one each (the partitions of a fetch end their batches together).
    if (this.#nextFlush) return this.#nextFlush;
    const run = () => {
      this.#nextFlush = undefined;
      return this.#flushOnce();
    };
    const next = this.#flushing.then(run, run);
    this.#nextFlush = next;
    this.#flushing = next.catch(() => {});
    return next;
  }

  async #flushOnce(): Promise<void> {
    // Files are synced concurrently: the file system commits concurrent syncs together.
    // A completing file made itself durable before it began.
    const dirty = [...this.#files.values()].filter((f) => f.dirty && f.state === "open");
    await inParallel(
      dirty,
      SYNCS_IN_FLIGHT,
      (file) => this.#chain(file, () => this.#syncNow(file)),
    );
    const dirs = [...this.#dirsToSync];
    this.#dirsToSync.clear();
    try {
      await inParallel(dirs, SYNCS_IN_FLIGHT, fsyncDir);
    } catch (error) {
      for (const dir of dirs) this.#dirsToSync.add(dir);
      throw error;
    }
    await this.#completed.flush();
    await this.#enforceLimits();
  }

  /** Flushes and closes every open file. */
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      this.#hasher.close();
      this.#pool.closeAll();
      if (this.#ownLibc) this.#libc?.close();
      this.#libc = undefined;
      this.#libcOpener = undefined;
      await this.#groups.close();
    }
  }
}
