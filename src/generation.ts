/**
 * The generation policy: which upload of a file a chunk belongs to, and what to do when chunks
 * of two uploads ("generations") of the same path meet (as OpenMSIStream 1.8 decides it).
 *
 * The reference's table is kept, with its two bugs fixed (the chunk that triggers a reset is
 * written into the new generation, and a new generation starts from an empty file) and one
 * refinement: when both generations carry a source mtime and the mtimes differ, the newer
 * upload wins whatever its chunk count, so a file that shrank is not mistaken for an old one.
 * Without mtimes (9-element producers), the chunk count decides as in the reference.
 *
 * @module
 */
import { bytesEqual } from "./chunk_codec.ts";

/** What identifies a generation. */
export interface Generation {
  fileHash: Uint8Array;
  nTotalChunks: number;
  /** Source mtime in epoch seconds, or `null` when unknown. */
  mtime: number | null;
}

/**
 * - `accept`: the chunk belongs to the current generation.
 * - `reset`: the chunk belongs to a newer generation: drop the current one, start the new one with it.
 * - `stale`: the chunk belongs to an older (or indeterminate) generation: skip it.
 * - `conflict`: same file hash but a different chunk count: the chunk is malformed.
 */
export type GenerationDecision = "accept" | "reset" | "stale" | "conflict";

/** Decides what a chunk of generation `incoming` means for a file whose current generation is `current`. */
export function decideGeneration(current: Generation, incoming: Generation): GenerationDecision {
  const sameHash = bytesEqual(current.fileHash, incoming.fileHash);
  if (
    !sameHash && incoming.mtime !== null && current.mtime !== null &&
    incoming.mtime !== current.mtime
  ) {
    return incoming.mtime > current.mtime ? "reset" : "stale";
  }
  if (incoming.nTotalChunks !== current.nTotalChunks) {
    if (sameHash) return "conflict";
    return incoming.nTotalChunks > current.nTotalChunks ? "reset" : "stale";
  }
  if (sameHash) return "accept";
  if (incoming.mtime !== null && current.mtime !== null && incoming.mtime > current.mtime) {
    return "reset";
  }
  return "stale";
}

/**
 * Decides for a file whose generation `done` was already completed: its chunks are duplicates;
 * a generation with an older source mtime is stale; any other generation is a new upload (a
 * re-upload may be smaller, so the chunk count decides nothing here).
 */
export function decideAfterCompletion(
  done: Generation,
  incoming: Generation,
): "duplicate" | "stale" | "new" {
  if (bytesEqual(done.fileHash, incoming.fileHash)) return "duplicate";
  if (incoming.mtime !== null && done.mtime !== null && incoming.mtime < done.mtime) return "stale";
  return "new";
}
