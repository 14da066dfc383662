/**
 * Letting the kernel drop the pages of rebuilt files from its cache once they are on disk.
 *
 * Every byte the program writes lands in the page cache first. Left there, a run of 100 GB fills
 * the cache with files nobody is reading and pushes out what other programs were using; and on a
 * virtual machine whose idle memory goes back to the host (a memory balloon), every fresh page the
 * cache takes is expensive to write into the first time: 1.5–2 s of kernel time per GiB here,
 * against 0.1–0.2 s for pages the cache just gave back. Telling the kernel that written bytes are
 * not needed any more (`posix_fadvise(POSIX_FADV_DONTNEED)`) lets it reuse those pages.
 *
 * The kernel drops only clean pages: bytes not yet on disk stay cached (it starts writing them
 * out), so nothing is ever lost, and a dropped page is read back from the disk if it is needed
 * again. It is a hint and its failures are ignored.
 *
 * This needs libc, on Linux, through FFI: with `--allow-ffi`, or `--allow-ffi=` a libc path in
 * `LIBC_PATHS` (`native_library.ts`), it is used, and otherwise {@linkcode pageCacheDropper}
 * returns `undefined` without prompting and everything else works the same.
 *
 * @module
 */

import { openNativeLibrary } from "../system/native_library.ts";

/** Drops the cached pages of bytes `[0, length)` of `path` that are on disk already. */
export type DropCached = (path: string, length: number) => void;

/**
 * The page-cache dropper, or `undefined` where there is none: not Linux on x86-64 or ARM64, no
 * FFI permission for libc, or no libc found. Never prompts.
 *
 * It refers to nothing outside itself but {@linkcode openNativeLibrary}: the hashing worker runs
 * their source, with `paths` = `LIBC_PATHS` (`native_library.ts`).
 */
export function pageCacheDropper(paths: readonly string[]): DropCached | undefined {
  const lib = openNativeLibrary(["libc.so.6"], paths, {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
  });
  if (!lib) return undefined;
  const encoder = new TextEncoder();
  // O_RDONLY | O_CLOEXEC, and POSIX_FADV_DONTNEED, as on x86-64 and ARM64 Linux.
  const openFlags = 0o2000000;
  const dontNeed = 4;
  return (path, length) => {
    if (length <= 0) return;
    const fd = lib.symbols.open(encoder.encode(`${path}\0`), openFlags);
    if (fd < 0) return;
    lib.symbols.posix_fadvise(fd, 0n, BigInt(length), dontNeed);
    lib.symbols.close(fd);
  };
}
