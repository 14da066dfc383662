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
 * A permission Deno was not given ({@linkcode refusedPermission}: `NotCapable`, "Requires write
 * access to …, run again with the --allow-write flag") is none of these: it is how the program was
 * started, never a record's fault, and never clears by itself; the command line stops with
 * {@linkcode permissionMessage}.
 *
 * @module
 */

import { errnoName } from "../system/errno.ts";

function hasCode(error: unknown, codes: string[]): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && codes.includes(code)) return true;
  const os = /\(os error (\d+)\)/.exec(error.message);
  return os !== null && codes.includes(errnoName(Number(os[1])) ?? "");
}

/** True when `error` comes from the path itself (its length, a file in the way…): that record cannot be written. */
export function isPathError(error: unknown): boolean {
  if (isRefusedPermission(error)) return false;
  if (error instanceof Deno.errors.IsADirectory || error instanceof Deno.errors.NotADirectory) {
    return true;
  }
  return hasCode(error, ["ENAMETOOLONG", "ENOTDIR", "EISDIR", "ELOOP", "EINVAL"]);
}

/** True when a write failed for being past the largest file size (EFBIG) or an invalid offset. */
export function isTooLargeError(error: unknown): boolean {
  if (isRefusedPermission(error)) return false;
  return hasCode(error, ["EFBIG", "EINVAL"]);
}

/** True when placing a file into its folder of the output tree is refused for that folder only. */
export function isPlaceError(error: unknown): boolean {
  if (isRefusedPermission(error)) return false;
  if (error instanceof Deno.errors.PermissionDenied) return true;
  return hasCode(error, ["EACCES", "EPERM", "EXDEV", "EFBIG"]);
}

/** True when the process or the system has no file descriptor left (EMFILE, ENFILE). */
export function isOutOfDescriptors(error: unknown): boolean {
  return hasCode(error, ["EMFILE", "ENFILE"]);
}

/**
 * Deno's words for a permission it was not given, e.g. `Requires write access to "/x", run again
 * with the --allow-write flag` (the target is quoted, or `<CWD>`-like, or missing).
 */
const REFUSAL =
  /Requires (\w+) access(?: to ("(?:[^"\\]|\\.)*"|<[^>]*>|[^\s,]+))?,? run again with the (--allow-[\w-]+) flag/;

/** A permission the program was not given: which kind, on what, and the flag that grants it. */
export interface RefusedPermission {
  /** `read`, `write`, `net`, `env`, `sys`, `run`, `ffi` or `import`. */
  kind: string;
  /** The path, `host:port`, variable name or system call; undefined when Deno names none. */
  target: string | undefined;
  /** The flag without a value, e.g. `--allow-write`. */
  flag: string;
}

/** The permission named by Deno's refusal text in `text`, if any. */
export function refusalInText(text: string): RefusedPermission | undefined {
  const match = REFUSAL.exec(text);
  if (!match) return undefined;
  const [, kind = "", quoted, flag = `--allow-${kind}`] = match;
  let target = quoted;
  if (target?.startsWith('"')) {
    try {
      target = JSON.parse(target) as string;
    } catch {
      target = target.slice(1, -1);
    }
  } else if (target?.startsWith("<")) {
    target = undefined; // a placeholder such as <CWD>, not a value to put in a flag
  }
  return { kind, target, flag };
}

/**
 * The permission refused in `error` or in an error it wraps (`cause`, kafkajs's `originalError`,
 * `error`, an AggregateError's `errors`), from Deno's `NotCapable` or its message (kafkajs copies
 * the message of a socket error into its own); undefined when no permission was refused.
 */
export function refusedPermission(error: unknown): RefusedPermission | undefined {
  const queue: unknown[] = [error];
  const seen = new Set<unknown>();
  let capable: RefusedPermission | undefined;
  while (queue.length > 0 && seen.size < 32) {
    const current = queue.shift();
    if (current === null || current === undefined || seen.has(current)) continue;
    seen.add(current);
    if (typeof current === "string") {
      const found = refusalInText(current);
      if (found) return found;
      continue;
    }
    if (typeof current !== "object") continue;
    const fields = current as {
      message?: unknown;
      cause?: unknown;
      originalError?: unknown;
      error?: unknown;
      errors?: unknown;
    };
    if (typeof fields.message === "string") {
      const found = refusalInText(fields.message);
      if (found) return found;
    }
    if (current instanceof Deno.errors.NotCapable) {
      capable ??= { kind: "more", target: undefined, flag: "the --allow-* flag it names" };
    }
    queue.push(fields.cause, fields.originalError, fields.error);
    if (Array.isArray(fields.errors)) queue.push(...fields.errors);
  }
  return capable;
}

/** True when `error` (or an error it wraps) is a permission Deno was not given. */
export function isRefusedPermission(error: unknown): boolean {
  return refusedPermission(error) !== undefined;
}

/** `value` as one shell word. */
function shellWord(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * The one line that explains a refused permission and the flag to add, e.g. `Cannot run: this
 * program needs write access to "/data/out" (run with --allow-write=/data/out, or add it to the
 * list of --allow-write); see "Permissions" in README.md`.
 *
 * @param directories a refused path inside one of these is reported as the directory (the program
 * needs all of it: the output directory rather than one file in it).
 */
export function permissionMessage(
  refused: RefusedPermission,
  directories: string[] = [],
): string {
  let target = refused.target;
  if (target !== undefined && (refused.kind === "read" || refused.kind === "write")) {
    const inside = (dir: string) =>
      target === dir || target?.startsWith(`${dir}/`) || target?.startsWith(`${dir}\\`);
    target = directories.find(inside) ?? target;
  }
  const flag = target === undefined ? refused.flag : `${refused.flag}=${shellWord(target)}`;
  const what = target === undefined ? "" : ` to ${JSON.stringify(target)}`;
  const add = target === undefined ? "" : `, or add it to the list of ${refused.flag}`;
  return `Cannot run: this program needs ${refused.kind} access${what} (run with ${flag}${add}); see "Permissions" in README.md`;
}
