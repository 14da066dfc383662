/**
 * How much of a file is in the page cache, for tests of `src/store/page_cache.ts`: `mincore(2)`
 * on a read-only mapping of the file, through libc (Linux only; needs `--allow-ffi`).
 *
 * @module
 */

const symbols = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  mincore: { parameters: ["pointer", "usize", "buffer"], result: "i32" },
} as const;

let lib: Deno.DynamicLibrary<typeof symbols> | undefined;

/** True where {@linkcode residentPages} works (Linux on x86-64 or ARM64). */
export const CAN_SEE_PAGE_CACHE = Deno.build.os === "linux" &&
  ["x86_64", "aarch64"].includes(Deno.build.arch);

/** The number of 4 KiB pages of `path`'s first `length` bytes that are in the page cache. */
export function residentPages(path: string, length: number): number {
  lib ??= Deno.dlopen("libc.so.6", symbols);
  const fd = lib.symbols.open(new TextEncoder().encode(`${path}\0`), 0);
  if (fd < 0) throw new Error(`Cannot open ${path} to look at its pages`);
  try {
    // PROT_READ, MAP_SHARED; a failed mapping (MAP_FAILED) makes mincore fail below.
    const map = lib.symbols.mmap(null, BigInt(length), 1, 1, fd, 0n);
    if (map === null) throw new Error(`Cannot map ${path}`);
    try {
      const pages = new Uint8Array(Math.ceil(length / 4096));
      if (lib.symbols.mincore(map, BigInt(length), pages) !== 0) {
        throw new Error(`mincore failed on ${path}`);
      }
      return pages.reduce((count, page) => count + (page & 1), 0);
    } finally {
      lib.symbols.munmap(map, BigInt(length));
    }
  } finally {
    lib.symbols.close(fd);
  }
}
