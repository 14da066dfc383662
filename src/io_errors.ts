/**
 * Classification of file-system errors: transient ones (a full disk, an I/O error, a read-only
 * remount) stop the writing until they clear; every other error concerns one file only.
 *
 * @module
 */

const TRANSIENT_CODES = new Set(["ENOSPC", "EDQUOT", "EIO", "EROFS", "EMFILE", "ENFILE", "ENOMEM"]);
// Linux errno values as Deno prints them: "(os error N)".
const TRANSIENT_OS_ERRORS = new Set([28, 122, 5, 30, 24, 23, 12]);

/** True when `error` is a file-system condition that may clear by itself (disk full, EIO…). */
export function isTransientIoError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && TRANSIENT_CODES.has(code)) return true;
  const os = /\(os error (\d+)\)/.exec(error.message);
  return os !== null && TRANSIENT_OS_ERRORS.has(Number(os[1]));
}
