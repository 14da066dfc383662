/**
 * Sync groups: one-chunk files made durable together by one `syncfs(2)` instead of one
 * `fdatasync` each.
 *
 * A file system writes many small files out far faster in one go than one at a time: 20,000 files
 * of 4 KiB took 3.1–3.8 s with one `fdatasync` each on the benchmark machine (ext4), and 1.3–2.3 s
 * with one `syncfs` per group. And each `fdatasync` costs the event loop a hop to a blocking thread
 * and back.
 *
 * `syncfs` writes out and waits for everything dirty on the file system, then flushes the disk's
 * cache; since Linux 5.8 it also reports any write-back error on that file system since the last
 * call on the same descriptor. So a file joins the group forming now
 * ({@linkcode SyncGroups.join}), whose `syncfs` starts once the running one has ended (one at a
 * time) and the files written meanwhile have joined; when it succeeds, the file's data is on disk.
 * Where that cannot be said, the file is synced on its own (`join` resolves `false`):
 *
 * - no `syncfs`: not Linux 5.8 or later, or no FFI permission for libc;
 * - a file system other than ext4, XFS and Btrfs, whose `syncfs` also makes the data durable: a
 *   FUSE or network file system may only hand its dirty pages over, where `fdatasync` asks it to
 *   make them durable;
 * - after a `syncfs` failed, for good: the error it reported may belong to a file of a later
 *   group, and that file's own descriptor reports it to its `fdatasync`;
 * - for {@linkcode PAUSE_MS} after a `syncfs` took longer than {@linkcode SLOW_SYNC_MS}: it also
 *   waits for what other programs wrote to the same file system, so it is left alone while they do.
 *
 * @module
 */

import { LIBC_PATHS, openNativeLibrary } from "../system/native_library.ts";

/** Writes out the dirty data of one file system, and releases what it holds when closed. */
export interface FileSystemSync {
  /** Resolves once the file system's dirty data is on disk; rejects with its write-back error. */
  sync(): Promise<void>;
  close(): void;
}

/** A `syncfs` slower than this means other writers share the file system. */
export const SLOW_SYNC_MS = 250;
/** How long files are synced one by one after a slow `syncfs`. */
export const PAUSE_MS = 60_000;

/** File systems (`statfs` magic numbers) whose `syncfs` makes what it writes out durable. */
export const SYNCFS_FILE_SYSTEMS: ReadonlyMap<bigint, string> = new Map([
  [0xef53n, "ext4"], // also ext2 and ext3
  [0x58465342n, "XFS"],
  [0x9123683en, "Btrfs"],
]);

/** True for a Linux release (`uname -r`) whose `syncfs` reports write-back errors: 5.8 and later. */
export function reportsSyncfsErrors(release: string): boolean {
  const match = /^(\d+)\.(\d+)/.exec(release);
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 5 || (major === 5 && minor >= 8);
}

/**
 * `syncfs(2)` on the file system holding `dir`, or `undefined` where it cannot be trusted or used
 * (not Linux 5.8 or later, no FFI permission for libc, `dir` cannot be opened, or its file system is
 * not one of {@linkcode SYNCFS_FILE_SYSTEMS}). Never prompts.
 * Write-back errors are those since this call.
 */
export function fileSystemSync(dir: string): FileSystemSync | undefined {
  const lib = openNativeLibrary(["libc.so.6"], LIBC_PATHS, {
    uname: { parameters: ["buffer"], result: "i32" },
    open: { parameters: ["buffer", "i32"], result: "i32" },
    fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
    syncfs: { parameters: ["i32"], result: "i32", nonblocking: true },
    close: { parameters: ["i32"], result: "i32" },
  });
  if (!lib) return undefined;
  // struct utsname: six fields of 65 bytes; the release is the third.
  const names = new Uint8Array(6 * 65);
  const release = lib.symbols.uname(names) === 0
    ? new TextDecoder().decode(names.subarray(130, 195)).replace(/\0.*$/s, "")
    : "";
  if (!reportsSyncfsErrors(release)) {
    lib.close();
    return undefined;
  }
  // O_RDONLY | O_CLOEXEC, as on x86-64 and ARM64 Linux.
  const fd = lib.symbols.open(new TextEncoder().encode(`${dir}\0`), 0o2000000);
  // struct statfs (120 bytes on x86-64 and ARM64) starts with the file system's type, 8 bytes.
  const stats = new Uint8Array(256);
  if (
    fd < 0 || lib.symbols.fstatfs(fd, stats) !== 0 ||
    !SYNCFS_FILE_SYSTEMS.has(new DataView(stats.buffer).getBigInt64(0, true))
  ) {
    if (fd >= 0) lib.symbols.close(fd);
    lib.close();
    return undefined;
  }
  return {
    sync: async () => {
      if (await lib.symbols.syncfs(fd) !== 0) {
        throw new Error(`syncfs failed on the file system of ${dir}`);
      }
    },
    close: () => {
      lib.symbols.close(fd);
      lib.close();
    },
  };
}

/** Makes one-chunk files durable in groups (see the module documentation). */
export class SyncGroups {
  readonly #fs: FileSystemSync | undefined;
  readonly #now: () => number;
  readonly #tell: (message: string, failure: boolean) => void;
  /** The group running its `syncfs`, if any. */
  #running: Promise<boolean> | undefined;
  /** The group forming, which starts after the running one. */
  #forming: Promise<boolean> | undefined;
  #pausedUntil = -Infinity;
  #failed = false;
  #closed = false;
  /** Groups made durable so far. */
  groups = 0;

  /** `tell` hears, in a sentence, when groups stop for good (`failure`) or for a while. */
  constructor(
    fs: FileSystemSync | undefined,
    now: () => number = Date.now,
    tell: (message: string, failure: boolean) => void = () => {},
  ) {
    this.#fs = fs;
    this.#now = now;
    this.#tell = tell;
  }

  /** True while a file joining now would be grouped (not failed, paused or closed, and a `syncfs`). */
  get grouping(): boolean {
    return this.#fs !== undefined && !this.#failed && !this.#closed &&
      this.#now() >= this.#pausedUntil;
  }

  /**
   * Call once a file's writes have returned: resolves `true` once a `syncfs` that started after
   * this call has succeeded (the file is on disk), `false` when the file must be synced on its own.
   * Never rejects.
   */
  join(): Promise<boolean> {
    const fs = this.#fs;
    if (!fs || !this.grouping) return Promise.resolve(false);
    if (this.#forming) return this.#forming;
    const run = async () => {
      this.#forming = undefined;
      if (this.#failed || this.#closed) return false;
      const start = this.#now();
      try {
        await fs.sync();
      } catch (error) {
        this.#failed = true;
        this.#tell(
          `${
            error instanceof Error ? error.message : error
          }: a write to that file system failed. Files of one chunk are now synced one by one, and each reports its own error`,
          true,
        );
        return false;
      }
      this.groups++;
      const took = this.#now() - start;
      if (took > SLOW_SYNC_MS) {
        this.#pausedUntil = this.#now() + PAUSE_MS;
        this.#tell(
          `syncfs took ${
            Math.round(took)
          } ms (other programs are writing to the same file system): files of one chunk are synced one by one for the next ${
            PAUSE_MS / 1000
          } s`,
          false,
        );
      }
      return true;
    };
    // Files written on this turn of the event loop join before it starts.
    const forming = (this.#running ?? Promise.resolve(true))
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, 0)))
      .then(run);
    this.#forming = forming;
    this.#running = forming;
    return forming;
  }

  /** Stops grouping; the file system handle is released once the running group has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#running;
    this.#fs?.close();
  }
}
