/**
 * libc's file calls for the files of one folder tree: `open`, `pwrite`, `fdatasync`, `futimens`
 * and `close` for the partial files of one-chunk uploads, and `rename` to publish files. Many small
 * files per second is where they count: each `Deno.open` pays Deno's permission check of its path
 * (a `readlink` per folder level, twice: read and write, about 11 µs of a 35 µs open on the
 * benchmark machine), a write its `seek`, and a rename 17 µs of the main thread.
 *
 * Used only where Deno would allow the same calls: {@linkcode LibcFiles.forFolder} needs read and
 * write permission for the folder (queried, never prompted) and FFI permission for libc, on Linux
 * (x86-64, ARM64). Its calls run on the calling thread, so that `errno` is the call's (a rename is
 * handed to another thread and, if it fails, made again here to learn why): errors are Deno's
 * error classes with Deno's words, e.g.
 * `No space left on device (os error 28): pwrite '/out/x.data'`, with `code` set (`"ENOSPC"`).
 *
 * @module
 */

import { LIBC_PATHS, openNativeLibrary } from "./native_library.ts";
import { ERRNO, errnoName } from "./errno.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  fdatasync: { parameters: ["i32"], result: "i32" },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  rename: { parameters: ["buffer", "buffer"], result: "i32" },
  rename_off_thread: {
    name: "rename",
    parameters: ["buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

/** Deno's error class for an `errno`, as Deno's own file calls throw them. */
const ERROR_CLASSES: Record<number, new (message: string) => Error> = {
  [ERRNO.EPERM]: Deno.errors.PermissionDenied,
  [ERRNO.ENOENT]: Deno.errors.NotFound,
  [ERRNO.EACCES]: Deno.errors.PermissionDenied,
  [ERRNO.EEXIST]: Deno.errors.AlreadyExists,
  [ERRNO.ENOTDIR]: Deno.errors.NotADirectory,
  [ERRNO.EISDIR]: Deno.errors.IsADirectory,
  [ERRNO.ELOOP]: Deno.errors.FilesystemLoop,
};

/** Open flags on Linux: `O_NOFOLLOW` differs between x86-64 and ARM64. */
const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;
const O_CLOEXEC = 0o2000000;
const O_NOFOLLOW = Deno.build.arch === "aarch64" ? 0o100000 : 0o400000;

/** An open file: positional writes and reads, `fdatasync`, close. */
export class LibcFile {
  readonly #libc: LibcFiles;
  readonly #fd: number;
  readonly path: string;

  constructor(libc: LibcFiles, fd: number, path: string) {
    this.#libc = libc;
    this.#fd = fd;
    this.path = path;
  }

  /** Writes all of `data` at `position`. */
  writeAt(data: Uint8Array, position: number): Promise<void> {
    try {
      let written = 0;
      while (written < data.length) {
        const rest = data.subarray(written);
        written += this.#libc.call(
          "pwrite",
          this.path,
          () =>
            this.#libc.lib.symbols.pwrite(
              this.#fd,
              rest,
              BigInt(rest.length),
              BigInt(position + written),
            ),
        );
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Reads into `buffer` from `position`; resolves to the bytes read (0 at the end). */
  readAt(buffer: Uint8Array, position: number): Promise<number> {
    try {
      return Promise.resolve(
        this.#libc.call(
          "pread",
          this.path,
          () =>
            this.#libc.lib.symbols.pread(this.#fd, buffer, BigInt(buffer.length), BigInt(position)),
        ),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * `fdatasync`, on this thread (so that its error is known): a file of this kind is normally made
   * durable with the others of its sync group instead.
   */
  syncData(): Promise<void> {
    try {
      this.#libc.call("fdatasync", this.path, () => this.#libc.lib.symbols.fdatasync(this.#fd));
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Sets the file's access and modification times to `time`, as `Deno.utime` would. */
  setTimes(time: Date): void {
    const ms = time.getTime();
    const seconds = Math.floor(ms / 1000);
    const nanoseconds = (ms - seconds * 1000) * 1_000_000;
    // Two struct timespec: seconds and nanoseconds, 8 bytes each on x86-64 and ARM64.
    const times = new BigInt64Array([seconds, nanoseconds, seconds, nanoseconds].map(BigInt));
    this.#libc.call(
      "futimens",
      this.path,
      () => this.#libc.lib.symbols.futimens(this.#fd, new Uint8Array(times.buffer)),
    );
  }

  /** Closes the descriptor (once). */
  close(): void {
    this.#libc.lib.symbols.close(this.#fd);
  }
}

/** libc's file calls for the files of one folder. */
export class LibcFiles {
  readonly lib: Libc;
  readonly #errno: Deno.UnsafePointerView;
  readonly #encoder = new TextEncoder();

  private constructor(lib: Libc) {
    this.lib = lib;
    this.#errno = new Deno.UnsafePointerView(lib.symbols.__errno_location()!);
  }

  /**
   * libc's file calls for files under `folder`, or `undefined` where Deno would not allow
   * writing there, without FFI permission for libc, and on other systems. Never prompts.
   */
  static forFolder(folder: string): LibcFiles | undefined {
    try {
      if (Deno.permissions.querySync({ name: "write", path: folder }).state !== "granted") {
        return undefined;
      }
      if (Deno.permissions.querySync({ name: "read", path: folder }).state !== "granted") {
        return undefined;
      }
    } catch {
      return undefined;
    }
    const lib = openNativeLibrary(["libc.so.6"], LIBC_PATHS, SYMBOLS);
    return lib ? new LibcFiles(lib) : undefined;
  }

  /**
   * Opens `path` for reading and writing, `"w+"` creating it (or emptying it), `"r+"` an existing
   * one; a symlink is refused, as Deno's own open refuses it.
   */
  open(path: string, flags: "r+" | "w+"): LibcFile {
    const name = this.#encoder.encode(`${path}\0`);
    const how = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (flags === "w+" ? O_CREAT | O_TRUNC : 0);
    const fd = this.call("open", path, () => this.lib.symbols.open(name, how, 0o666));
    return new LibcFile(this, fd, path);
  }

  /**
   * Renames `from` to `to` (replacing a file there) on one of the runtime's threads: a rename
   * takes about 17 µs of the calling thread's time, handing it over about 4. A failed rename is
   * made again on this thread, whose `errno` then says why (what failed once fails again: a
   * missing file, a folder in the way, another file system).
   */
  async rename(from: string, to: string): Promise<void> {
    const source = this.#encoder.encode(`${from}\0`);
    const target = this.#encoder.encode(`${to}\0`);
    if (await this.lib.symbols.rename_off_thread(source, target) === 0) return;
    this.call("rename", `${from}' -> '${to}`, () => this.lib.symbols.rename(source, target));
  }

  /** Runs a call that returns -1 and sets `errno` on failure (retried on EINTR); throws its error. */
  call(syscall: string, path: string, run: () => number | bigint): number {
    for (;;) {
      const result = Number(run());
      if (result >= 0) return result;
      const errno = this.#errno.getInt32();
      if (errno === ERRNO.EINTR) continue;
      throw this.error(errno, syscall, path);
    }
  }

  /** The error Deno would throw for `errno` from `syscall` on `path`. */
  error(errno: number, syscall: string, path: string): Error {
    const text = Deno.UnsafePointerView.getCString(this.lib.symbols.strerror(errno)!);
    const error = new (ERROR_CLASSES[errno] ?? Error)(
      `${text} (os error ${errno}): ${syscall} '${path}'`,
    );
    const code = errnoName(errno);
    if (code !== undefined) Object.defineProperty(error, "code", { value: code });
    return error;
  }

  /** Releases libc (after every file is closed). */
  close(): void {
    this.lib.close();
  }
}
