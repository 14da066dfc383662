/**
 * Linux `errno` values (the same numbers on x86-64 and ARM64), by name: the file calls made
 * through libc name their errors with them, and errors Deno reports as "(os error N)" are
 * recognised by them.
 *
 * @module
 */

/** Linux `errno` values by name. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ENAMETOOLONG: 36,
  ELOOP: 40,
  EDQUOT: 122,
} as const satisfies Record<string, number>;

/** The name of a Linux `errno` value (`28` → `"ENOSPC"`), or undefined for one not in {@linkcode ERRNO}. */
export function errnoName(errno: number): string | undefined {
  return NAMES.get(errno);
}

const NAMES = new Map<number, string>(Object.entries(ERRNO).map(([name, value]) => [value, name]));
