/**
 * The per-file chunk journal: one line `offset length` per chunk whose bytes are durable in the
 * partial file. Lines are appended only after the data is synced, and the journal is synced
 * before Kafka offsets are committed.
 *
 * A crash or a full disk can cut the last line short. {@linkcode readJournal} ignores a last
 * line without its newline, and {@linkcode appendJournal} first cuts the file back to the length
 * it knows to be whole lines, so a torn line is never glued to the next one.
 *
 * @module
 */
import { open } from "node:fs/promises";

/** What a journal holds: chunks as `[offset, length]`, and the bytes of its whole lines. */
export interface JournalContent {
  entries: [number, number][];
  bytes: number;
}

const LINE = /^(\d+) (\d+)$/;

/** Reads a journal; a missing file is an empty journal. */
export async function readJournal(path: string): Promise<JournalContent> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { entries: [], bytes: 0 };
    throw error;
  }
  const whole = bytes.lastIndexOf(0x0a) + 1;
  const entries: [number, number][] = [];
  for (const line of new TextDecoder().decode(bytes.subarray(0, whole)).split("\n")) {
    const m = LINE.exec(line);
    if (m) entries.push([Number(m[1]), Number(m[2])]);
  }
  return { entries, bytes: whole };
}

/**
 * Appends `lines` (each ending with a newline) durably to a line file (a journal, the completed
 * log) whose whole lines take `knownBytes`, and returns its new length.
 */
export async function appendLines(
  path: string,
  knownBytes: number,
  lines: string,
): Promise<number> {
  const bytes = new TextEncoder().encode(lines);
  const journal = await open(path, "a");
  try {
    // A write that failed half-way (a full disk) must not leave a partial line behind.
    if ((await journal.stat()).size !== knownBytes) await journal.truncate(knownBytes);
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await journal.write(bytes, written, bytes.length - written);
      written += bytesWritten;
    }
    await journal.datasync();
  } finally {
    await journal.close();
  }
  return knownBytes + bytes.length;
}
