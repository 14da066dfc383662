/**
 * Crash-consistent state files: a file is replaced whole or not at all.
 *
 * {@linkcode writeStateFile} writes a temporary sibling, syncs it, renames it over the target and
 * syncs the folder, so a crash or a full disk at any moment leaves either the old content or the
 * new one, never an empty or half-written file. Temporaries (`*.tmp`) left by a crash are
 * removed by the owner of the folder at start.
 *
 * @module
 */
import { open } from "node:fs/promises";
import { dirname } from "node:path";

/** Suffix of the temporary file written before the rename. */
export const TEMP_SUFFIX = ".tmp";

/** Syncs a folder, so that names created, renamed or removed in it are durable. */
export async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Points where a crash test may stop the process on purpose (see {@linkcode CrashHook}). */
export type CrashPoint =
  | "after-data-write"
  | "after-journal-write"
  | "during-state-file-write"
  | "before-publish"
  | "after-publish"
  | "between-flush-and-commit"
  | "rekey-before-commit";

/** Called at each dangerous step; a crash test kills the process from it. */
export type CrashHook = (point: CrashPoint) => void;

/**
 * Replaces `path` with `bytes` atomically and durably (temp file, sync, rename, folder sync).
 *
 * @throws {Error} from the file system; `path` then still holds its previous content (or does
 * not exist), and the temporary file is removed when possible.
 */
export async function writeStateFile(
  path: string,
  bytes: Uint8Array,
  crashHook?: CrashHook,
): Promise<void> {
  const tmp = path + TEMP_SUFFIX;
  try {
    const handle = await open(tmp, "w");
    try {
      let written = 0;
      while (written < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, written, bytes.length - written);
        written += bytesWritten;
      }
      crashHook?.("during-state-file-write");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  await fsyncDir(dirname(path));
}
