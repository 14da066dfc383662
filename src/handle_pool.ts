/**
 * The handle pool: open file handles of the partial files, at most {@linkcode HandlePool.limit}
 * of them, closing the least recently used first.
 *
 * A handle is never closed while an operation uses it, nor while it is *pinned* (written since
 * its last sync: on Linux a write-back error is reported only to descriptors open when it
 * happened, so a dirty file keeps its descriptor until it is synced). When the system runs out
 * of descriptors (EMFILE, ENFILE), idle handles are closed and the open is tried once more.
 *
 * @module
 */
import { type FileHandle, open } from "node:fs/promises";

interface Entry {
  handle: FileHandle;
  users: number;
  pinned: boolean;
  lastUsed: number;
}

function outOfDescriptors(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return code === "EMFILE" || code === "ENFILE" || /\(os error 2[34]\)/.test(error.message);
}

/** A bounded set of open file handles, keyed by the caller. */
export class HandlePool {
  readonly limit: number;
  #entries = new Map<string, Entry>();
  #clock = 0;

  /** A pool that keeps at most `limit` idle handles open. */
  constructor(limit = 64) {
    this.limit = limit;
  }

  async #open(path: string, flags: string): Promise<FileHandle> {
    try {
      return await open(path, flags);
    } catch (error) {
      if (!outOfDescriptors(error)) throw error;
      await this.#trim(0);
      return await open(path, flags);
    }
  }

  /**
   * Runs `task` with the handle of `key` (opening `path` with `flags` when it has none: `"w+"`
   * creates a fresh file, `"r+"` opens an existing one).
   */
  async use<T>(
    key: string,
    path: string,
    flags: "r+" | "w+",
    task: (handle: FileHandle) => Promise<T>,
  ): Promise<T> {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      const handle = await this.#open(path, flags);
      // Another operation may have opened it meanwhile: keep one.
      entry = this.#entries.get(key);
      if (entry === undefined) {
        entry = { handle, users: 0, pinned: false, lastUsed: 0 };
        this.#entries.set(key, entry);
      } else {
        await handle.close();
      }
    }
    entry.users++;
    entry.lastUsed = ++this.#clock;
    try {
      return await task(entry.handle);
    } finally {
      entry.users--;
      if (this.#entries.size > this.limit) await this.#trim(this.limit);
    }
  }

  /** Marks `key` as written since its last sync (`true`) or synced (`false`). */
  pin(key: string, pinned: boolean): void {
    const entry = this.#entries.get(key);
    if (entry) entry.pinned = pinned;
  }

  /** Closes the handle of `key` (its file is finished); the caller ensures nothing uses it. */
  async close(key: string): Promise<void> {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    await entry.handle.close().catch(() => {});
  }

  /** Number of open handles. */
  get size(): number {
    return this.#entries.size;
  }

  async #trim(target: number): Promise<void> {
    const idle = [...this.#entries].filter(([, e]) => e.users === 0 && !e.pinned)
      .sort(([, a], [, b]) => a.lastUsed - b.lastUsed);
    for (const [key, entry] of idle) {
      if (this.#entries.size <= target) break;
      // Checked again: an earlier close awaited, and another operation may have taken this one.
      if (this.#entries.get(key) !== entry || entry.users > 0 || entry.pinned) continue;
      this.#entries.delete(key);
      await entry.handle.close().catch(() => {});
    }
  }

  /** Closes every handle. */
  async closeAll(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    for (const e of entries) await e.handle.close().catch(() => {});
  }
}
