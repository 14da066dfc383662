/**
 * Rebuilds files from chunks, durably and atomically.
 *
 * Design (resume after a crash): a **durable journal per in-progress file**. Each file being
 * rebuilt lives in the state folder as `partial/<id>.data`, with `partial/<id>.json` (its
 * generation: path, file hash, chunk count, mtime) and `partial/<id>.offsets` (one line per
 * accepted chunk: `offset length`). {@linkcode FileAssembler.flush} syncs the data, then the
 * journal lines, then the folders; the caller commits Kafka offsets only after `flush` returns.
 * So every committed chunk is on disk and known to the journal, and a restart after SIGKILL picks
 * each file up where it was, while commits keep moving during a large file. (The alternative,
 * committing only up to the oldest incomplete file per partition, stalls commits for as long as a
 * large file is in flight and forces re-reading it after a crash.)
 *
 * A file appears under its final name only after its whole-file SHA-512 matched: the partial
 * file gets the source mtime and is renamed into place (same file system, so atomic), and the
 * folder is synced. A file that fails the check goes to the quarantine. Completed generations
 * are remembered in `completed.log`, so redelivered chunks of a finished file are recognised as
 * duplicates, even after a restart.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { bytesEqual, type DataFileChunk, toHex } from "./chunk_codec.ts";
import { decideAfterCompletion, decideGeneration, type Generation } from "./generation.ts";
import type { Logger } from "./logger.ts";
import type { Quarantine } from "./quarantine.ts";
import { isPathError } from "./io_errors.ts";
import { type RelativeTarget, STATE_DIR_NAME } from "./safe_path.ts";

/** A chunk whose fields cannot describe a real file; the caller quarantines its record. */
export class BadChunkError extends Error {
  override name = "BadChunkError";
}

/** Largest chunk a message can carry (far above Kafka's limits), used to bound offsets. */
const MAX_CHUNK_BYTES = 64 * 1024 * 1024;
const HASH_READ_BYTES = 1024 * 1024;
const MAX_OPEN_FILES = 64;
const COMPLETED_KEEP = 20_000;

/** Checks the fields the generation policy and the writer rely on. */
function checkChunkFields(chunk: DataFileChunk): void {
  const { chunkOffsetWrite: offset, chunkI: i, nTotalChunks: n, data } = chunk;
  if (n < 1) throw new BadChunkError(`n_total_chunks is ${n}`);
  if (i < 1 || i > n) throw new BadChunkError(`chunk_i ${i} is outside 1..${n}`);
  if (offset < 0) throw new BadChunkError(`chunk_offset_write is negative (${offset})`);
  if (offset + data.length > n * MAX_CHUNK_BYTES) {
    throw new BadChunkError(
      `chunk_offset_write ${offset} + ${data.length} bytes is past any size a file of ${n} chunks can have`,
    );
  }
  if (chunk.fileHash.length === 0) throw new BadChunkError("file_hash is empty");
}

/** What happened to one chunk. */
export type ChunkOutcome =
  | { status: "written"; reset: boolean }
  | { status: "duplicate" }
  | { status: "stale" }
  | { status: "completed"; reset: boolean; path: string; bytes: number }
  | { status: "mismatch"; path: string; keptAt: string | null };

/** One file being rebuilt. */
interface InProgress extends Generation {
  id: string;
  target: RelativeTarget;
  accepted: Map<number, number>;
  bytes: number;
  size: number;
  handle: FileHandle | null;
  /** Journal lines not yet on disk. */
  pending: string[];
  dirty: boolean;
  metaWritten: boolean;
  lastUsed: number;
  /** Operations using `handle` right now: the open-file limit never closes it under them. */
  users: number;
  /** Bytes of the `.offsets` journal known to be whole lines on disk. */
  journalBytes: number;
}

interface Completed extends Generation {
  path: string;
}

/** Counts and files for the console's `check`. */
export interface AssemblerStatus {
  inProgress: { path: string; chunks: number; total: number; bytes: number }[];
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

function fileId(path: string): string {
  return createHash("sha256").update(path).digest("hex").slice(0, 32);
}

async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function hashFile(path: string): Promise<Uint8Array> {
  const handle = await open(path, "r");
  try {
    const hash = createHash("sha512");
    const buffer = new Uint8Array(HASH_READ_BYTES);
    let position = 0;
    while (true) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    return new Uint8Array(hash.digest());
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function completedLine(c: Completed): string {
  return `${toHex(c.fileHash)} ${c.nTotalChunks} ${c.mtime ?? "-"} ${JSON.stringify(c.path)}\n`;
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Options of {@linkcode FileAssembler}. */
export interface FileAssemblerOptions {
  /** Absolute path of the output directory. */
  outputDir: string;
  /** Absolute path of the program's state folder (inside the output directory). */
  stateDir: string;
  logger: Logger;
  quarantine: Quarantine;
}

/** Writes chunks into partial files, completes files atomically, and keeps a crash-safe journal. */
export class FileAssembler {
  readonly #outputDir: string;
  readonly #partialDir: string;
  readonly #completedLog: string;
  readonly #logger: Logger;
  readonly #quarantine: Quarantine;
  readonly #mutex = new KeyedMutex();
  readonly #files = new Map<string, InProgress>();
  readonly #completed = new Map<string, Completed>();
  #completedPending: Completed[] = [];
  #dirsToSync = new Set<string>();
  #realOutputDir = "";
  #safeDirs = new Set<string>();
  #clock = 0;
  #flushing: Promise<void> = Promise.resolve();

  constructor(options: FileAssemblerOptions) {
    this.#outputDir = options.outputDir;
    this.#partialDir = join(options.stateDir, "partial");
    this.#completedLog = join(options.stateDir, "completed.log");
    this.#logger = options.logger;
    this.#quarantine = options.quarantine;
  }

  /** Creates the state folders and resumes the files an earlier run left in progress. */
  async open(): Promise<void> {
    await Deno.mkdir(this.#partialDir, { recursive: true });
    this.#realOutputDir = await Deno.realPath(this.#outputDir);
    await this.#loadCompleted();
    const names = new Set<string>();
    for await (const entry of Deno.readDir(this.#partialDir)) names.add(entry.name);
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      await this.#resume(name.slice(0, -5)).catch((error) => {
        // Its chunks may already be committed: deleting it could lose the file. Stop instead.
        throw new Error(
          `Cannot resume the in-progress file ${join(this.#partialDir, name)}: ${
            error instanceof Error ? error.message : error
          }. Fix the cause and start again, or move ${this.#partialDir} aside to start over`,
        );
      });
    }
    // Anything else in partial/ belongs to no journal.
    for (const name of names) {
      const id = name.replace(/\.(json|data|offsets|tmp)$/, "");
      if (!this.#files.has(id)) await Deno.remove(join(this.#partialDir, name)).catch(() => {});
    }
    if (this.#files.size > 0) {
      this.#logger.info(
        `Resuming ${this.#files.size} file${this.#files.size === 1 ? "" : "s"} left in progress`,
      );
    }
    // A file whose every chunk was journaled but which was not published before the crash.
    for (const file of [...this.#files.values()]) {
      if (file.accepted.size < file.nTotalChunks) continue;
      await this.#mutex.run(file.id, () => this.#complete(file, false)).catch((error) => {
        this.#logger.error(`${error instanceof Error ? error.message : error}`);
      });
    }
    await this.flush();
  }

  async #loadCompleted(): Promise<void> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#completedLog);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    const lines = text.split("\n");
    for (const line of lines) {
      const m = /^([0-9a-f]+) (\d+) (\S+) (".*")$/.exec(line);
      if (!m) continue;
      const path = JSON.parse(m[4] ?? '""') as string;
      this.#completed.delete(path);
      this.#completed.set(path, {
        path,
        fileHash: fromHex(m[1] ?? ""),
        nTotalChunks: Number(m[2]),
        mtime: m[3] === "-" ? null : Number(m[3]),
      });
    }
    this.#trimCompleted();
    if (lines.length > COMPLETED_KEEP * 2) {
      const tmp = `${this.#completedLog}.tmp`;
      await Deno.writeTextFile(tmp, [...this.#completed.values()].map(completedLine).join(""));
      await Deno.rename(tmp, this.#completedLog);
    }
  }

  #trimCompleted(): void {
    for (const key of this.#completed.keys()) {
      if (this.#completed.size <= COMPLETED_KEEP) break;
      this.#completed.delete(key);
    }
  }

  async #resume(id: string): Promise<void> {
    const base = join(this.#partialDir, id);
    const meta = JSON.parse(await Deno.readTextFile(`${base}.json`)) as {
      target: RelativeTarget;
      fileHash: string;
      nTotalChunks: number;
      mtime: number | null;
    };
    const generation: Generation = {
      fileHash: fromHex(meta.fileHash),
      nTotalChunks: meta.nTotalChunks,
      mtime: meta.mtime,
    };
    if (!(await exists(`${base}.data`))) {
      // Crashed between the rename into place and the journal update.
      const final = join(this.#outputDir, meta.target.path);
      if (await exists(final) && toHex(await hashFile(final)) === meta.fileHash) {
        this.#rememberCompleted({ ...generation, path: meta.target.path });
      }
      await this.#removeJournal(id);
      return;
    }
    const accepted = new Map<number, number>();
    let journal = "";
    try {
      journal = await Deno.readTextFile(`${base}.offsets`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    // A last line without its newline was cut short by a crash: it is not part of the journal.
    for (const line of journal.slice(0, journal.lastIndexOf("\n") + 1).split("\n")) {
      const m = /^(\d+) (\d+)$/.exec(line);
      if (m) accepted.set(Number(m[1]), Number(m[2]));
    }
    let bytes = 0;
    let size = 0;
    for (const [offset, length] of accepted) {
      bytes += length;
      size = Math.max(size, offset + length);
    }
    this.#files.set(id, {
      ...generation,
      id,
      target: meta.target,
      accepted,
      bytes,
      size,
      handle: null,
      pending: [],
      dirty: false,
      metaWritten: true,
      lastUsed: ++this.#clock,
      users: 0,
      journalBytes:
        new TextEncoder().encode(journal.slice(0, journal.lastIndexOf("\n") + 1)).length,
    });
  }

  #rememberCompleted(completed: Completed): void {
    const c = { ...completed, fileHash: completed.fileHash.slice() };
    this.#completed.delete(c.path);
    this.#completed.set(c.path, c);
    this.#completedPending.push(c);
    this.#trimCompleted();
  }

  /** Files in progress, for the console. */
  status(): AssemblerStatus {
    return {
      inProgress: [...this.#files.values()].map((f) => ({
        path: f.target.path,
        chunks: f.accepted.size,
        total: f.nTotalChunks,
        bytes: f.bytes,
      })),
    };
  }

  /**
   * Writes one chunk (not yet synced: call {@linkcode FileAssembler.flush} before committing)
   * and completes its file when it was the last one missing.
   *
   * @throws {BadChunkError} when the chunk contradicts its own generation.
   * @throws {Error} from the file system (the chunk is then not accepted).
   */
  addChunk(chunk: DataFileChunk, target: RelativeTarget): Promise<ChunkOutcome> {
    checkChunkFields(chunk);
    const id = fileId(target.path);
    return this.#mutex.run(id, () => this.#add(id, chunk, target));
  }

  async #add(id: string, chunk: DataFileChunk, target: RelativeTarget): Promise<ChunkOutcome> {
    const incoming: Generation = {
      fileHash: chunk.fileHash,
      nTotalChunks: chunk.nTotalChunks,
      mtime: chunk.fileMtime,
    };
    // A redelivered chunk of the generation already published is a duplicate, whatever is in progress.
    const published = this.#completed.get(target.path);
    if (published && bytesEqual(published.fileHash, incoming.fileHash)) {
      return { status: "duplicate" };
    }
    let file = this.#files.get(id);
    let reset = false;
    if (file) {
      const decision = decideGeneration(file, incoming);
      if (decision === "conflict") {
        throw new BadChunkError(
          `it has the file hash of the generation in progress but ${chunk.nTotalChunks} chunks instead of ${file.nTotalChunks}`,
        );
      }
      if (decision === "stale") {
        this.#logger.warning(
          `Skipping a chunk of "${target.path}" from an older or indeterminate generation (${chunk.nTotalChunks} chunks, hash ${
            toHex(chunk.fileHash).slice(0, 8)
          }); the generation in progress has ${file.nTotalChunks} chunks, hash ${
            toHex(file.fileHash).slice(0, 8)
          }`,
        );
        return { status: "stale" };
      }
      if (decision === "reset") {
        this.#logger.warning(
          `"${target.path}" has a newer generation (had ${file.nTotalChunks} chunks with hash ${
            toHex(file.fileHash).slice(0, 8)
          }, now ${chunk.nTotalChunks} chunks with hash ${
            toHex(chunk.fileHash).slice(0, 8)
          }). Discarding ${file.accepted.size} chunks of the previous generation and starting fresh.`,
        );
        await this.#discard(file);
        file = undefined;
        reset = true;
      }
    }
    if (!file) {
      const done = this.#completed.get(target.path) ??
        await this.#completedOnDisk(target, incoming);
      if (done) {
        const decision = decideAfterCompletion(done, incoming);
        if (decision === "duplicate") return { status: "duplicate" };
        if (decision === "stale") return { status: "stale" };
      }
      file = await this.#startGeneration(id, target, incoming);
    }
    file.users++;
    try {
      return await this.#write(file, chunk, reset);
    } finally {
      file.users--;
    }
  }

  async #write(file: InProgress, chunk: DataFileChunk, reset: boolean): Promise<ChunkOutcome> {
    if (file.accepted.has(chunk.chunkOffsetWrite)) {
      // A completion that failed on a transient error is retried when its chunk comes again.
      return file.accepted.size >= file.nTotalChunks
        ? await this.#complete(file, reset)
        : { status: "duplicate" };
    }
    const handle = await this.#handle(file);
    let written = 0;
    while (written < chunk.data.length) {
      const { bytesWritten } = await handle.write(
        chunk.data,
        written,
        chunk.data.length - written,
        chunk.chunkOffsetWrite + written,
      );
      written += bytesWritten;
    }
    file.accepted.set(chunk.chunkOffsetWrite, chunk.data.length);
    file.bytes += chunk.data.length;
    file.size = Math.max(file.size, chunk.chunkOffsetWrite + chunk.data.length);
    file.pending.push(`${chunk.chunkOffsetWrite} ${chunk.data.length}\n`);
    file.dirty = true;
    if (file.accepted.size < file.nTotalChunks) return { status: "written", reset };
    return await this.#complete(file, reset);
  }

  /** A final file already on disk with the chunk's hash counts as completed (a crash before its journal entry). */
  async #completedOnDisk(
    target: RelativeTarget,
    incoming: Generation,
  ): Promise<Completed | undefined> {
    const final = join(this.#outputDir, target.path);
    try {
      const info = await Deno.lstat(final);
      if (!info.isFile) return undefined;
    } catch {
      return undefined;
    }
    if (!bytesEqual(await hashFile(final), incoming.fileHash)) return undefined;
    const completed: Completed = { ...incoming, path: target.path };
    this.#rememberCompleted(completed);
    return completed;
  }

  async #startGeneration(id: string, target: RelativeTarget, g: Generation): Promise<InProgress> {
    // Refuse a path that cannot be published (a symlink out, a file in the way) before accepting anything.
    await this.#makeSafeDir(dirname(join(this.#outputDir, target.path)));
    const base = join(this.#partialDir, id);
    const handle = await open(`${base}.data`, "w+");
    const file: InProgress = {
      ...g,
      // A copy: the chunk's hash is a view into a whole fetched batch, which must not stay alive.
      fileHash: g.fileHash.slice(),
      id,
      target,
      accepted: new Map(),
      bytes: 0,
      size: 0,
      handle,
      pending: [],
      dirty: true,
      metaWritten: false,
      lastUsed: ++this.#clock,
      users: 0,
      journalBytes: 0,
    };
    this.#files.set(id, file);
    await this.#limitOpenFiles();
    return file;
  }

  async #handle(file: InProgress): Promise<FileHandle> {
    file.lastUsed = ++this.#clock;
    if (file.handle) return file.handle;
    file.handle = await open(join(this.#partialDir, `${file.id}.data`), "r+");
    await this.#limitOpenFiles();
    return file.handle;
  }

  async #limitOpenFiles(): Promise<void> {
    const open = [...this.#files.values()].filter((f) =>
      f.handle !== null && !f.dirty && f.users === 0
    );
    let count = [...this.#files.values()].filter((f) => f.handle !== null).length;
    open.sort((a, b) => a.lastUsed - b.lastUsed);
    for (const f of open) {
      if (count <= MAX_OPEN_FILES) break;
      // Checked again: an earlier close awaited, and another operation may have taken this one.
      const handle = f.handle;
      if (handle === null || f.dirty || f.users > 0) continue;
      f.handle = null;
      count--;
      await handle.close();
    }
  }

  async #discard(file: InProgress): Promise<void> {
    await file.handle?.close().catch(() => {});
    file.handle = null;
    this.#files.delete(file.id);
    await this.#removeJournal(file.id);
  }

  async #removeJournal(id: string): Promise<void> {
    const base = join(this.#partialDir, id);
    for (const ext of [".json", ".offsets", ".data"]) await Deno.remove(base + ext).catch(() => {});
  }

  async #complete(file: InProgress, reset: boolean): Promise<ChunkOutcome> {
    const handle = await this.#handle(file);
    await handle.truncate(file.size);
    await handle.datasync();
    await handle.close();
    file.handle = null;
    const partial = join(this.#partialDir, `${file.id}.data`);
    const digest = await hashFile(partial);
    const path = file.target.path;
    if (!bytesEqual(digest, file.fileHash)) {
      const reason =
        `Cannot rebuild "${path}": its whole-file SHA-512 does not match after all ${file.nTotalChunks} chunks were written (expected ${
          toHex(file.fileHash).slice(0, 16)
        }…, got ${toHex(digest).slice(0, 16)}…)`;
      const keptAt = await this.#retire(file, reason);
      this.#logger.error(
        `${reason}; ${keptAt ? `the file was moved to ${keptAt}` : "the file was deleted"}`,
      );
      return { status: "mismatch", path, keptAt };
    }
    const final = join(this.#outputDir, path);
    try {
      await this.#makeSafeDir(dirname(final));
      if (file.mtime !== null) {
        const mtime = new Date(file.mtime * 1000);
        await Deno.utime(partial, mtime, mtime);
      }
      await Deno.rename(partial, final);
    } catch (error) {
      // A path that cannot take the file fails it; anything else (a permission, a full disk) is retried.
      if (!(error instanceof BadChunkError) && !isPathError(error)) throw error;
      const reason = `Cannot place "${path}" in the output directory: ${
        error instanceof Error ? error.message : error
      }`;
      const keptAt = await this.#retire(file, reason);
      throw new BadChunkError(
        `${reason}; the rebuilt file was ${keptAt ? `moved to ${keptAt}` : "deleted"}`,
      );
    }
    this.#files.delete(file.id);
    this.#dirsToSync.add(dirname(final));
    this.#rememberCompleted({ ...file, path });
    await Deno.remove(join(this.#partialDir, `${file.id}.json`)).catch(() => {});
    await Deno.remove(join(this.#partialDir, `${file.id}.offsets`)).catch(() => {});
    return { status: "completed", reset, path, bytes: file.size };
  }

  /** Moves a rebuilt file that cannot be published to the quarantine and forgets its journal. */
  async #retire(file: InProgress, reason: string): Promise<string | null> {
    const keptAt = await this.#quarantine.keepFile(
      join(this.#partialDir, `${file.id}.data`),
      file.target.name,
      reason,
    );
    this.#files.delete(file.id);
    await this.#removeJournal(file.id);
    this.#rememberCompleted({ ...file, path: file.target.path });
    return keptAt;
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
        await Deno.mkdir(current).catch((error) => {
          if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
        });
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

  /**
   * Makes every chunk written so far durable: file data, journal lines, completed renames.
   * Call before committing the offsets of those chunks.
   */
  flush(): Promise<void> {
    // One at a time: a flush returns only when everything written before it is durable, including
    // what a concurrent flush had taken over (folders to sync, completed records).
    const next = this.#flushing.then(() => this.#flushOnce(), () => this.#flushOnce());
    this.#flushing = next.catch(() => {});
    return next;
  }

  async #flushOnce(): Promise<void> {
    let metaCreated = false;
    for (const file of [...this.#files.values()]) {
      if (!file.dirty) continue;
      await this.#mutex.run(file.id, async () => {
        if (!file.dirty || this.#files.get(file.id) !== file) return;
        const base = join(this.#partialDir, file.id);
        if (!file.metaWritten) {
          const meta = {
            target: file.target,
            fileHash: toHex(file.fileHash),
            nTotalChunks: file.nTotalChunks,
            mtime: file.mtime,
          };
          await Deno.writeTextFile(`${base}.json`, JSON.stringify(meta));
          const m = await open(`${base}.json`, "r");
          await m.sync().finally(() => m.close());
          file.metaWritten = true;
          metaCreated = true;
        }
        file.users++;
        try {
          await (await this.#handle(file)).datasync();
        } finally {
          file.users--;
        }
        const lines = new TextEncoder().encode(file.pending.join(""));
        const journal = await open(`${base}.offsets`, "a");
        try {
          // A write that failed half-way (a full disk) must not leave a partial line behind.
          if ((await journal.stat()).size !== file.journalBytes) {
            await journal.truncate(file.journalBytes);
          }
          await journal.write(lines);
          await journal.datasync();
        } finally {
          await journal.close();
        }
        file.journalBytes += lines.length;
        file.pending = [];
        file.dirty = false;
      });
    }
    if (metaCreated) await fsyncDir(this.#partialDir);
    const dirs = [...this.#dirsToSync];
    this.#dirsToSync.clear();
    for (const dir of dirs) await fsyncDir(dir);
    if (this.#completedPending.length > 0) {
      const records = [...this.#completedPending];
      const log = await open(this.#completedLog, "a");
      try {
        await log.write(records.map(completedLine).join(""));
        await log.datasync();
      } finally {
        await log.close();
      }
      this.#completedPending = this.#completedPending.slice(records.length);
    }
    await this.#limitOpenFiles();
  }

  /** Flushes and closes every open file. */
  async close(): Promise<void> {
    await this.flush();
    for (const file of this.#files.values()) {
      await file.handle?.close().catch(() => {});
      file.handle = null;
    }
  }
}
