/**
 * The handle pool: open file handles of the partial files, at most {@linkcode HandlePool.limit}
 * of them besides the pinned ones, closing the least recently used first.
 *
 * A handle is never closed while an operation uses it, nor while it is *pinned* (written since
 * its last sync: on Linux a write-back error is reported only to descriptors open when it
 * happened, so a dirty file keeps its descriptor until it is synced). When the system runs out
 * of descriptors (EMFILE, ENFILE), idle handles are closed and the open is tried once more.
 *
 * Handles are Deno files by default, whose large writes and syncs run on the runtime's worker
 * threads (the `node:fs/promises` handles write on the main thread); a caller may open a file
 * another way (`libc_files.ts`). A Deno file has one position: the caller runs one positional
 * read or write ({@linkcode PartialFile.writeAt}, {@linkcode PartialFile.readAt}) at a time per
 * file.
 *
 * @module
 */

import { isOutOfDescriptors } from "./io_errors.ts";

/** How a partial file is opened: `"w+"` creates a fresh file, `"r+"` opens an existing one. */
export type OpenFlags = "r+" | "w+";

/** An open partial file: what the pool's users do with it. */
export interface PartialFile {
  /** Writes all of `data` at `position`. */
  writeAt(data: Uint8Array, position: number): Promise<void>;
  /** Reads into `buffer` from `position`; resolves to the bytes read (0 at the end). */
  readAt(buffer: Uint8Array, position: number): Promise<number>;
  /** Makes the file's data durable. */
  syncData(): Promise<void>;
  /** Sets its access and modification times, where the handle can (otherwise: by path). */
  setTimes?(time: Date): void;
  close(): void;
}

/** Opens a partial file (synchronously; it throws as Deno's file calls do). */
export type Opener = (path: string, flags: OpenFlags) => PartialFile;

/**
 * Writes up to this many bytes synchronously: a copy into the page cache, well under a
 * millisecond, cheaper than the asynchronous hop (paired runs: W1-like 3.6-3.9 -> 3.3-3.6 s,
 * one 1 GiB file 7.3-7.6 -> 6.1-6.8 s). Larger chunks are written from a blocking thread.
 */
const SYNC_WRITE_BYTES = 1024 * 1024;

/** A Deno file, which remembers its position so that a write where the last one ended needs no seek. */
class DenoFile implements PartialFile {
  readonly #file: Deno.FsFile;
  #position = 0;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  async writeAt(data: Uint8Array, position: number): Promise<void> {
    const file = this.#file;
    const at = this.#position;
    // Unknown while a write runs: a failed one may have written part of its data.
    this.#position = -1;
    let written = 0;
    if (data.length <= SYNC_WRITE_BYTES) {
      if (position !== at) file.seekSync(position, Deno.SeekMode.Start);
      while (written < data.length) written += file.writeSync(data.subarray(written));
    } else {
      await file.seek(position, Deno.SeekMode.Start);
      while (written < data.length) written += await file.write(data.subarray(written));
    }
    this.#position = position + written;
  }

  async readAt(buffer: Uint8Array, position: number): Promise<number> {
    this.#position = -1;
    await this.#file.seek(position, Deno.SeekMode.Start);
    return (await this.#file.read(buffer)) ?? 0;
  }

  syncData(): Promise<void> {
    return this.#file.syncData();
  }

  close(): void {
    this.#file.close();
  }
}

/**
 * Opens with Deno, synchronously: an open is a metadata call of microseconds, and the asynchronous
 * call's hop to a blocking thread and back costs the event loop more than the call itself (many
 * small files).
 */
export const denoOpener: Opener = (path, flags) =>
  new DenoFile(Deno.openSync(
    path,
    flags === "w+"
      ? { read: true, write: true, create: true, truncate: true }
      : { read: true, write: true },
  ));

interface Entry {
  handle: PartialFile;
  users: number;
  pinned: boolean;
}

function closeQuietly(file: PartialFile): void {
  try {
    file.close();
  } catch {
    // already closed
  }
}

/** A bounded set of open file handles, keyed by the caller. */
export class HandlePool {
  readonly limit: number;
  /** Least recently used first: a handle moves to the end each time it is used. */
  #entries = new Map<string, Entry>();
  /** How many of them are pinned (never closed by the limit). */
  #pinned = 0;

  /** A pool that keeps at most `limit` handles open besides the pinned ones. */
  constructor(limit = 64) {
    this.limit = limit;
  }

  #open(path: string, flags: OpenFlags, open: Opener): PartialFile {
    try {
      return open(path, flags);
    } catch (error) {
      if (!isOutOfDescriptors(error)) throw error;
      this.#trim(0);
      return open(path, flags);
    }
  }

  /**
   * Runs `task` with the handle of `key` (opening `path` with `flags` when it has none: `"w+"`
   * creates a fresh file, `"r+"` opens an existing one) with `open` (default: Deno's).
   */
  async use<T>(
    key: string,
    path: string,
    flags: OpenFlags,
    task: (handle: PartialFile) => Promise<T>,
    open: Opener = denoOpener,
  ): Promise<T> {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      const handle = this.#open(path, flags, open);
      entry = { handle, users: 0, pinned: false };
      this.#entries.set(key, entry);
    }
    entry.users++;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    try {
      return await task(entry.handle);
    } finally {
      entry.users--;
      if (this.#entries.size - this.#pinned > this.limit) this.#trim(this.limit);
    }
  }

  /** The open handle of `key`, if it has one (for a call that needs no pool bookkeeping). */
  peek(key: string): PartialFile | undefined {
    return this.#entries.get(key)?.handle;
  }

  /** Marks `key` as written since its last sync (`true`) or synced (`false`). */
  pin(key: string, pinned: boolean): void {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.pinned === pinned) return;
    entry.pinned = pinned;
    this.#pinned += pinned ? 1 : -1;
  }

  /** Closes the handle of `key` (its file is finished); the caller ensures nothing uses it. */
  close(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    if (entry.pinned) this.#pinned--;
    closeQuietly(entry.handle);
  }

  /** Number of open handles. */
  get size(): number {
    return this.#entries.size;
  }

  /** Closes idle handles, least recently used first, until at most `target` are not pinned. */
  #trim(target: number): void {
    // In use order, without sorting: this runs after every use while the pool is over its limit.
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size - this.#pinned <= target) break;
      if (entry.users > 0 || entry.pinned) continue;
      this.#entries.delete(key);
      closeQuietly(entry.handle);
    }
  }

  /** Closes every handle. */
  closeAll(): void {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    this.#pinned = 0;
    for (const e of entries) closeQuietly(e.handle);
  }
}
