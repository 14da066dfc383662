/**
 * The generation policy: what a chunk means for its file when several uploads ("generations")
 * of the same path meet.
 *
 * A generation is one upload of one content: its whole-file hash, its chunk layout (the chunk
 * count) and, from the records, *when* it was uploaded (the Kafka record timestamps). Uploads
 * are ordered by that time, so the file ends up with the content uploaded last, whatever order
 * the partitions deliver the records in and whatever the source files' mtimes say (a file
 * restored from a backup keeps an old mtime but is uploaded later). Equal or unknown times fall
 * back to the source mtime, then to the chunk count (the reference's "the file grew"), and then
 * the generation seen first stays.
 *
 * | the chunk's content                                                          | decision    |
 * | ---------------------------------------------------------------------------- | ----------- |
 * | same hash as the generation in progress (any chunk layout)                   | `accept`    |
 * | same hash as the published file, uploaded no later than it                   | `duplicate` |
 * | same hash as the published file, uploaded after it and after what is in progress | `reupload` |
 * | another hash, uploaded after the generation in progress (or the published one) | `newer`   |
 * | another hash, uploaded before it                                             | `stale`     |
 * | nothing known for the path                                                   | `newer`     |
 *
 * "After" compares the records' timestamps with the earliest one seen of the other generation;
 * on a tie or without timestamps, the newer source mtime wins, then the larger chunk count, and
 * otherwise the generation seen first stays. Against a published file whose upload time is not
 * known, any other content is `newer` unless its source mtime is older.
 *
 * The assembler turns `reupload` into `duplicate` while the published file is still in place
 * and into a rebuild when it was deleted or moved; `newer` discards what is in progress and
 * starts the new generation with the chunk.
 *
 * @module
 */
import { bytesEqual } from "../wire/chunk_codec.ts";

/** What identifies a generation's content and layout. */
export interface Generation {
  fileHash: Uint8Array;
  nTotalChunks: number;
  /** Source mtime in epoch seconds, or `null` when unknown. */
  mtime: number | null;
}

/** A chunk's generation and the timestamp of its record. */
export interface Upload extends Generation {
  /** The record's Kafka timestamp in milliseconds, or `null` when the record has none. */
  time: number | null;
}

/** A generation the assembler knows, with the span of its records' timestamps. */
export interface KnownGeneration extends Generation {
  /** Earliest record timestamp seen for this upload, or `null`. */
  firstTime: number | null;
  /** Latest record timestamp seen for this upload, or `null`. */
  lastTime: number | null;
}

/** See the module documentation's table. */
export type GenerationDecision = "accept" | "duplicate" | "reupload" | "newer" | "stale";

/** True when a chunk of `incoming` comes from a later upload than generation `current`. */
export function isNewerUpload(incoming: Upload, current: KnownGeneration): boolean {
  if (incoming.time !== null && current.firstTime !== null && incoming.time !== current.firstTime) {
    return incoming.time > current.firstTime;
  }
  if (incoming.mtime !== null && current.mtime !== null && incoming.mtime !== current.mtime) {
    return incoming.mtime > current.mtime;
  }
  return incoming.nTotalChunks > current.nTotalChunks;
}

/**
 * Decides what a chunk of `incoming` means for a path with generation `inProgress` being
 * rebuilt and generation `published` in the output directory (either may be `null`).
 */
export function decideGeneration(
  inProgress: KnownGeneration | null,
  published: KnownGeneration | null,
  incoming: Upload,
): GenerationDecision {
  if (inProgress && bytesEqual(inProgress.fileHash, incoming.fileHash)) return "accept";
  if (published && bytesEqual(published.fileHash, incoming.fileHash)) {
    const later = incoming.time !== null && published.lastTime !== null &&
      incoming.time > published.lastTime;
    if (!later) return "duplicate";
    return inProgress === null || isNewerUpload(incoming, inProgress) ? "reupload" : "stale";
  }
  if (inProgress) return isNewerUpload(incoming, inProgress) ? "newer" : "stale";
  if (published === null) return "newer";
  if (incoming.time === null || published.firstTime === null) {
    // Without upload times, anything but an older source file replaces the published one.
    const older = incoming.mtime !== null && published.mtime !== null &&
      incoming.mtime < published.mtime;
    return older ? "stale" : "newer";
  }
  return isNewerUpload(incoming, published) ? "newer" : "stale";
}
