/**
 * Classification of file-system errors: whose fault is it?
 *
 * - {@linkcode isPathError}: the path itself (a name too long, a file where a folder should be);
 *   that record cannot be written.
 * - {@linkcode isTooLargeError}: the write is past the largest file the file system takes (a
 *   record with an absurd offset); that record cannot be written.
 * - {@linkcode isPlaceError}: publishing into one folder of the output tree is refused (no
 *   permission there, another file system mounted there); that file cannot be placed.
 *
 * Every other error (a full disk, an I/O error, the state folder unwritable, a read-only
 * remount) concerns the whole machine: the writing stops until it clears, so that no record is
 * committed without its data on disk.
 *
 * @module
 */

/** Linux errno values as Deno prints them ("os error N"); other systems match by code or class. */
const ERRNO: Record<string, number> = {
  EPERM: 1,
  EACCES: 13,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENAMETOOLONG: 36,
  ELOOP: 40,
};

function hasCode(error: unknown, codes: string[]): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && codes.includes(code)) return true;
  const os = /\(os error (\d+)\)/.exec(error.message);
  return os !== null && codes.some((c) => ERRNO[c] === Number(os[1]));
}

/** True when `error` comes from the path itself (its length, a file in the way…): that record cannot be written. */
export function isPathError(error: unknown): boolean {
  if (error instanceof Deno.errors.IsADirectory || error instanceof Deno.errors.NotADirectory) {
    return true;
  }
  return hasCode(error, ["ENAMETOOLONG", "ENOTDIR", "EISDIR", "ELOOP", "EINVAL"]);
}

/** True when a write failed for being past the largest file size (EFBIG) or an invalid offset. */
export function isTooLargeError(error: unknown): boolean {
  return hasCode(error, ["EFBIG", "EINVAL"]);
}

/** True when placing a file into its folder of the output tree is refused for that folder only. */
export function isPlaceError(error: unknown): boolean {
  if (error instanceof Deno.errors.PermissionDenied) return true;
  return hasCode(error, ["EACCES", "EPERM", "EXDEV", "EFBIG"]);
}
