/**
 * Classification of file-system errors. Errors that concern one path only (a name too long, a
 * file where a folder should be) make that record fail; every other error (a full disk, an I/O
 * error, a permission or a read-only remount) stops the writing until it clears, so that no
 * record is committed without its data on disk.
 *
 * @module
 */

const PATH_CODES = new Set(["ENAMETOOLONG", "ENOTDIR", "EISDIR", "ELOOP", "EINVAL"]);
// Linux errno values of ENAMETOOLONG 36, ENOTDIR 20, EISDIR 21, ELOOP 40, EINVAL 22, as Deno prints
// them ("os error N"); other systems are recognised by the error's code or class.
const PATH_OS_ERRORS = new Set([36, 20, 21, 40, 22]);

/** True when `error` comes from the path itself (its length, a file in the way…): that record cannot be written. */
export function isPathError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && PATH_CODES.has(code)) return true;
  if (error instanceof Deno.errors.IsADirectory || error instanceof Deno.errors.NotADirectory) {
    return true;
  }
  const os = /\(os error (\d+)\)/.exec(error.message);
  return os !== null && PATH_OS_ERRORS.has(Number(os[1]));
}
