/**
 * Confinement of paths that come from messages: a chunk's `subdir_str`, `filename` and
 * `filename_append` become a relative path that is guaranteed to stay inside the output
 * directory and never to name the program's own files.
 *
 * What a safe name is depends on the output directory's file system, so the checks follow one of
 * three rule sets ({@linkcode PathRules}); {@linkcode HOST_PATH_RULES} is the one of the machine
 * the program runs on, and every rule set can be used (and is tested) anywhere:
 *
 * - {@linkcode POSIX_RULES}: `/` separates folders; names that differ in any way are different
 *   files.
 * - {@linkcode DARWIN_RULES}: as POSIX, but names that differ only in case or Unicode
 *   normalisation (NFC/NFD) are the same file, and a name may not pass 255 UTF-16 units once
 *   decomposed (HFS+).
 * - {@linkcode WIN32_RULES}: `\` separates folders too (it is refused: OpenMSIStream sends `/`);
 *   `< > : " | ? *`, control characters, a trailing dot or space, device names (`CON`, `PRN`,
 *   `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`, `COM¹²³`, `LPT¹²³`, `CONIN$`, `CONOUT$`, with
 *   any extension) and, at the top, 8.3 short names (`DATAFI~1`) are refused; names that differ
 *   only in case are the same file; names are limited to 255 UTF-16 units.
 *
 * All rule sets refuse absolute paths, `..`, NUL, names over 255 bytes (UTF-16 units on
 * Windows), text that is not valid Unicode, and the program's state folder and log file at the
 * top level (compared without case, and on Windows without trailing dots and spaces).
 *
 * @module
 */

/** Name of the hidden folder that holds the program's state inside the output directory. */
export const STATE_DIR_NAME = ".DataFileDownloadDirectory";

/** Default name of the log file in the output directory. */
export const LOG_FILE_NAME = "DataFileDownloadDirectory.log";

/** A path from a message that must not be used; the message says why. */
export class UnsafePathError extends Error {
  override name = "UnsafePathError";
}

/** The naming rules of the output directory's file system. */
export interface PathRules {
  /**
   * - `posix`: `/` separates folders; names are bytes compared exactly (Linux, BSD).
   * - `darwin`: as `posix`, but names differing only in case or Unicode normalisation (NFC/NFD)
   *   are the same file (APFS and HFS+ by default).
   * - `win32`: `\` separates folders too, Windows' reserved characters and device names are
   *   refused, and names differing only in case are the same file (NTFS, FAT, ReFS).
   */
  readonly platform: "posix" | "darwin" | "win32";
}

/** Linux and other POSIX file systems: case-sensitive, any byte but `/` and NUL. */
export const POSIX_RULES: PathRules = Object.freeze({ platform: "posix" });
/** macOS (APFS, HFS+): case- and normalisation-insensitive. */
export const DARWIN_RULES: PathRules = Object.freeze({ platform: "darwin" });
/** Windows (NTFS, FAT, ReFS): `\` separates, reserved names and characters, case-insensitive. */
export const WIN32_RULES: PathRules = Object.freeze({ platform: "win32" });

/** The rules of the machine this runs on (`Deno.build.os`). */
export const HOST_PATH_RULES: PathRules = Deno.build.os === "windows"
  ? WIN32_RULES
  : Deno.build.os === "darwin"
  ? DARWIN_RULES
  : POSIX_RULES;

/** Where a chunk's file goes, relative to the output directory. */
export interface RelativeTarget {
  /** Path of the file as the reference names it (`subdir/filename`, no append): the regex and the file's identity. */
  key: string;
  /** Path under the output directory where the file is written (`subdir/<name with append>`). */
  path: string;
  /** Directory parts of {@linkcode RelativeTarget.path}. */
  dirs: string[];
  /** Final name of the file. */
  name: string;
  /**
   * The key under which two paths are the same file on the output file system: the path itself
   * (posix), lower-cased (win32), or NFC-normalised and lower-cased (darwin).
   */
  identity: string;
}

const MAX_NAME = 255;
const encoder = new TextEncoder();

/** Windows device names, refused as a name's stem whatever its extension (compared lower-cased). */
const WINDOWS_DEVICES = new Set([
  "con",
  "prn",
  "aux",
  "nul",
  "conin$",
  "conout$",
  ...["com", "lpt"].flatMap((p) => [..."0123456789\u00b9\u00b2\u00b3"].map((digit) => p + digit)),
]);

/** Characters Windows refuses in a name (besides the separators and control characters). */
const WINDOWS_RESERVED_CHARS = /[<>:"|?*]/;
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f]/;

/** How the file system compares names under `rules` (the identity of a path). */
export function foldPath(path: string, rules: PathRules = HOST_PATH_RULES): string {
  switch (rules.platform) {
    case "posix":
      return path;
    case "darwin":
      return path.normalize("NFC").toLowerCase();
    case "win32":
      // NTFS compares with an upper-case table and keeps NFC and NFD names apart.
      return path.toLowerCase();
  }
}

/** A name compared with the program's own names: always without case, and as Windows resolves it. */
function reservedFold(name: string, rules: PathRules): string {
  const folded = name.normalize("NFC").toLowerCase();
  return rules.platform === "win32" ? folded.replace(/[. ]+$/, "") : folded;
}

/** At most `max` code points of `text`, with `…` when cut. */
function clip(text: string, max = 60): string {
  const points = [...text];
  return points.length <= max ? text : points.slice(0, max).join("") + "…";
}

function quote(text: string): string {
  return JSON.stringify(clip(text));
}

/** `the name "b" in "a/b"`, or `the name "b"` for a top-level name. */
function nameIn(part: string, path: string): string {
  return part === path ? `the name ${quote(part)}` : `the name ${quote(part)} in ${quote(path)}`;
}

/** The problem with one component of a path under `rules`, or `undefined` when it is fine. */
function partProblem(part: string, rules: PathRules): string | undefined {
  if (part.includes("\0")) return "contains a NUL byte";
  if (!part.isWellFormed()) return "is not valid Unicode (a lone surrogate)";
  const win = rules.platform === "win32";
  const length = win ? part.length : encoder.encode(part).length;
  const unit = win ? "UTF-16 code units" : "bytes";
  if (length > MAX_NAME) {
    return `is ${length} ${unit} long; names are limited to ${MAX_NAME} ${unit}`;
  }
  if (rules.platform === "darwin") {
    const decomposed = part.normalize("NFD").length;
    if (decomposed > MAX_NAME) {
      return `is ${decomposed} UTF-16 code units long once decomposed; names are limited to ${MAX_NAME} on macOS`;
    }
  }
  if (!win) return undefined;
  const control = CONTROL_CHARS.exec(part);
  if (control) {
    return `contains the control character U+${
      control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")
    }, which Windows refuses in names`;
  }
  const reserved = WINDOWS_RESERVED_CHARS.exec(part);
  if (reserved) {
    const why = reserved[0] === ":"
      ? "which names a drive or an alternate data stream on Windows"
      : "which Windows refuses in names";
    return `contains ${JSON.stringify(reserved[0])}, ${why}`;
  }
  if (part.endsWith(".") || part.endsWith(" ")) {
    return `ends with ${
      part.endsWith(".") ? "a dot" : "a space"
    }, which Windows drops (it would name another file)`;
  }
  const stem = part.split(".")[0]!.replace(/ +$/, "").toLowerCase();
  if (WINDOWS_DEVICES.has(stem)) return "is a reserved device name on Windows";
  return undefined;
}

/** True for a name shaped like a Windows 8.3 short name (`DATAFI~1`, `LONGNA~12.TXT`). */
function isShortName(name: string): boolean {
  return /^[^.~]{0,6}~[0-9]{1,6}(\.[^.]{1,3})?$/.test(name) &&
    name.split(".")[0]!.length <= 8;
}

/**
 * The reference's name with `filename_append` inserted before the last extension:
 * `name.tar.gz` + `_copy` → `name.tar_copy.gz`; `.bashrc` → `.bashrc_copy`.
 */
export function appendToName(filename: string, append: string): string {
  if (append === "") return filename;
  const dot = filename.lastIndexOf(".");
  // Python's PurePath.suffix: a leading dot alone is not an extension, nor is a trailing dot.
  if (dot <= 0 || dot === filename.length - 1) return filename + append;
  return filename.slice(0, dot) + append + filename.slice(dot);
}

/**
 * Validates and normalises a chunk's path fields, as `PurePosixPath(subdir).parts + filename`
 * does, but refusing anything that could leave the output directory, hit the program's files,
 * or not be a plain name on the file system `rules` describe (default: this machine's).
 *
 * OpenMSIStream sends folders with `/` whatever the uploader's system, so under
 * {@linkcode WIN32_RULES} a `\` can only be part of a name (legal on POSIX) and is refused
 * rather than taken as a separator.
 *
 * @throws {UnsafePathError} with the reason.
 */
export function relativeTarget(
  subdirStr: string,
  filename: string,
  filenameAppend: string,
  rules: PathRules = HOST_PATH_RULES,
): RelativeTarget {
  const win = rules.platform === "win32";
  if (filename === "" || filename === "." || filename === "..") {
    throw new UnsafePathError(`the filename ${JSON.stringify(filename)} is not a file name`);
  }
  if (filename.includes("/")) {
    throw new UnsafePathError(`the filename ${quote(filename)} contains "/"`);
  }
  if (win && filename.includes("\\")) {
    throw new UnsafePathError(
      filename.split("\\").includes("..")
        ? `the filename ${
          quote(filename)
        } contains a ".." component (with "\\", a separator on Windows)`
        : `the filename ${quote(filename)} contains "\\", a folder separator on Windows`,
    );
  }
  if (filenameAppend.includes("/") || filenameAppend.includes("\0")) {
    throw new UnsafePathError(
      `the filename_append ${quote(filenameAppend)} contains "/" or NUL`,
    );
  }
  if (win && filenameAppend.includes("\\")) {
    throw new UnsafePathError(
      `the filename_append ${quote(filenameAppend)} contains "\\", a folder separator on Windows`,
    );
  }
  const subdir = `the subdirectory ${quote(subdirStr)}`;
  if (subdirStr.startsWith("/") || (win && subdirStr.startsWith("\\"))) {
    throw new UnsafePathError(`${subdir} is absolute`);
  }
  const dirs = subdirStr.split("/").filter((p) => p !== "" && p !== ".");
  for (const part of dirs) {
    if (part === ".." || (win && part.split("\\").includes(".."))) {
      throw new UnsafePathError(`${subdir} contains a ".." component`);
    }
  }
  if (win && subdirStr.includes("\\")) {
    throw new UnsafePathError(
      `${subdir} contains "\\", a folder separator on Windows (OpenMSIStream sends folders with "/")`,
    );
  }
  const name = appendToName(filename, filenameAppend);
  const path = [...dirs, name].join("/");
  const top = reservedFold(dirs[0] ?? name, rules);
  if (top === reservedFold(STATE_DIR_NAME, rules)) {
    throw new UnsafePathError(
      `the path ${quote(path)} would write into the program's state folder ${STATE_DIR_NAME}`,
    );
  }
  if (dirs.length === 0 && reservedFold(name, rules) === reservedFold(LOG_FILE_NAME, rules)) {
    throw new UnsafePathError(
      `the file ${quote(path)} would replace the program's log file ${LOG_FILE_NAME}`,
    );
  }
  for (const part of [...dirs, name]) {
    const problem = partProblem(part, rules);
    if (problem !== undefined) {
      throw new UnsafePathError(`${nameIn(part, path)} ${problem}; rename it at the source`);
    }
  }
  if (win && isShortName(dirs[0] ?? name)) {
    throw new UnsafePathError(
      `${
        nameIn(dirs[0] ?? name, path)
      } has the shape of a Windows short (8.3) name, which could be the program's state folder or log file at the top of the output directory; rename it at the source`,
    );
  }
  return {
    key: [...dirs, filename].join("/"),
    path,
    dirs,
    name,
    identity: foldPath(path, rules),
  };
}
