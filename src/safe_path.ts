/**
 * Confinement of paths that come from messages: a chunk's `subdir_str`, `filename` and
 * `filename_append` become a relative path that is guaranteed to stay inside the output
 * directory and never to name the program's own files.
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
  /** The key under which two paths are the same file on the output file system. */
  identity: string;
}

const MAX_NAME_BYTES = 255;
const encoder = new TextEncoder();

function checkPart(part: string, what: string): void {
  if (part === "..") throw new UnsafePathError(`${what} contains a ".." component`);
  if (part.includes("\0")) throw new UnsafePathError(`${what} contains a NUL byte`);
  if (encoder.encode(part).length > MAX_NAME_BYTES) {
    throw new UnsafePathError(`${what} has a component longer than ${MAX_NAME_BYTES} bytes`);
  }
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
 * does, but refusing anything that could leave the output directory or hit the program's files.
 *
 * @throws {UnsafePathError} with the reason.
 */
export function relativeTarget(
  subdirStr: string,
  filename: string,
  filenameAppend: string,
): RelativeTarget {
  if (filename === "" || filename === "." || filename === "..") {
    throw new UnsafePathError(`the filename ${JSON.stringify(filename)} is not a file name`);
  }
  if (filename.includes("/")) {
    throw new UnsafePathError(`the filename ${JSON.stringify(filename)} contains "/"`);
  }
  checkPart(filename, "the filename");
  if (filenameAppend.includes("/") || filenameAppend.includes("\0")) {
    throw new UnsafePathError(
      `the filename_append ${JSON.stringify(filenameAppend)} contains "/" or NUL`,
    );
  }
  if (subdirStr.startsWith("/")) {
    throw new UnsafePathError(`the subdirectory ${JSON.stringify(subdirStr)} is absolute`);
  }
  const dirs = subdirStr.split("/").filter((p) => p !== "" && p !== ".");
  for (const part of dirs) checkPart(part, `the subdirectory ${JSON.stringify(subdirStr)}`);
  const name = appendToName(filename, filenameAppend);
  checkPart(name, "the file name with its append");
  const top = (dirs[0] ?? name).toLowerCase();
  if (top === STATE_DIR_NAME.toLowerCase()) {
    throw new UnsafePathError(
      `the path would write into the program's state folder ${STATE_DIR_NAME}`,
    );
  }
  if (dirs.length === 0 && name.toLowerCase() === LOG_FILE_NAME.toLowerCase()) {
    throw new UnsafePathError(`the file would replace the program's log file ${LOG_FILE_NAME}`);
  }
  return {
    key: [...dirs, filename].join("/"),
    path: [...dirs, name].join("/"),
    dirs,
    name,
    identity: [...dirs, name].join("/"),
  };
}
