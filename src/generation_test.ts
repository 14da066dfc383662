import assert from "node:assert/strict";
import { decideAfterCompletion, decideGeneration, type Generation } from "./generation.ts";

const H = new Uint8Array(64).fill(0xaa);
const H2 = new Uint8Array(64).fill(0xbb);

function gen(fileHash: Uint8Array, nTotalChunks: number, mtime: number | null): Generation {
  return { fileHash, nTotalChunks, mtime };
}

const CURRENT = gen(H, 4, 1_700_000_000.5);

Deno.test("decideGeneration() accepts a chunk of the current generation (n = N, h = H)", () => {
  assert.equal(decideGeneration(CURRENT, gen(H, 4, 1_700_000_000.5)), "accept");
  // The file hash is compared by value, not by identity.
  assert.equal(decideGeneration(CURRENT, gen(H.slice(), 4, 1_700_000_000.5)), "accept");
  // Same generation: the mtime does not matter.
  assert.equal(decideGeneration(CURRENT, gen(H, 4, null)), "accept");
  assert.equal(decideGeneration(CURRENT, gen(H, 4, 1)), "accept");
  assert.equal(decideGeneration(CURRENT, gen(H, 4, 2_000_000_000)), "accept");
  assert.equal(decideGeneration(gen(H, 4, null), gen(H, 4, 5)), "accept");
});

Deno.test("decideGeneration() calls the same hash with another chunk count a conflict", () => {
  assert.equal(decideGeneration(CURRENT, gen(H, 5, 1_700_000_000.5)), "conflict");
  assert.equal(decideGeneration(CURRENT, gen(H, 3, 1_700_000_000.5)), "conflict");
  // Whatever the mtimes say.
  assert.equal(decideGeneration(CURRENT, gen(H, 5, 2_000_000_000)), "conflict");
  assert.equal(decideGeneration(CURRENT, gen(H, 1, null)), "conflict");
});

Deno.test("decideGeneration() resets for a different hash with more chunks (the file grew)", () => {
  assert.equal(decideGeneration(CURRENT, gen(H2, 5, 1_700_000_001)), "reset");
  // Without an mtime to compare, the chunk count decides, as in the reference.
  assert.equal(decideGeneration(CURRENT, gen(H2, 100, null)), "reset");
  assert.equal(decideGeneration(gen(H, 4, null), gen(H2, 5, 1)), "reset");
  // With two different mtimes, the newer upload wins even with fewer chunks: an older one loses.
  assert.equal(decideGeneration(CURRENT, gen(H2, 5, 1)), "stale");
});

Deno.test("decideGeneration() calls a different hash with fewer chunks stale", () => {
  assert.equal(decideGeneration(CURRENT, gen(H2, 3, 1)), "stale");
  assert.equal(decideGeneration(CURRENT, gen(H2, 1, null)), "stale");
  // A file that shrank in a newer upload (newer mtime) is a reset, not stale.
  assert.equal(decideGeneration(CURRENT, gen(H2, 3, 2_000_000_000)), "reset");
});

Deno.test("decideGeneration() resets for the same count, another hash and a newer mtime", () => {
  assert.equal(decideGeneration(CURRENT, gen(H2, 4, 1_700_000_000.75)), "reset");
  assert.equal(decideGeneration(CURRENT, gen(H2, 4, 2_000_000_000)), "reset");
});

Deno.test("decideGeneration() calls the same count and another hash without a newer mtime stale", () => {
  // Older mtime.
  assert.equal(decideGeneration(CURRENT, gen(H2, 4, 1_700_000_000.25)), "stale");
  // Equal mtime: the first generation seen wins ties.
  assert.equal(decideGeneration(CURRENT, gen(H2, 4, 1_700_000_000.5)), "stale");
  // Unknown mtime on either side.
  assert.equal(decideGeneration(CURRENT, gen(H2, 4, null)), "stale");
  assert.equal(decideGeneration(gen(H, 4, null), gen(H2, 4, 2_000_000_000)), "stale");
  assert.equal(decideGeneration(gen(H, 4, null), gen(H2, 4, null)), "stale");
});

Deno.test("decideGeneration() compares whole hashes", () => {
  const almost = H.slice();
  almost[63] = 0xab;
  assert.equal(decideGeneration(CURRENT, gen(almost, 4, null)), "stale");
  assert.equal(decideGeneration(CURRENT, gen(almost, 5, null)), "reset");
  // A hash of another length is another hash.
  assert.equal(decideGeneration(CURRENT, gen(H.slice(0, 32), 5, null)), "reset");
});

Deno.test("decideAfterCompletion() calls chunks of the completed generation duplicates", () => {
  assert.equal(decideAfterCompletion(CURRENT, gen(H, 4, 1_700_000_000.5)), "duplicate");
  assert.equal(decideAfterCompletion(CURRENT, gen(H.slice(), 4, null)), "duplicate");
  // Same content, any mtime or count: nothing new to write.
  assert.equal(decideAfterCompletion(CURRENT, gen(H, 4, 2_000_000_000)), "duplicate");
  assert.equal(decideAfterCompletion(CURRENT, gen(H, 4, 1)), "duplicate");
  assert.equal(decideAfterCompletion(CURRENT, gen(H, 7, null)), "duplicate");
});

Deno.test("decideAfterCompletion() calls another hash with an older mtime stale", () => {
  assert.equal(decideAfterCompletion(CURRENT, gen(H2, 4, 1_700_000_000.25)), "stale");
  assert.equal(decideAfterCompletion(CURRENT, gen(H2, 9, 1)), "stale");
  assert.equal(decideAfterCompletion(CURRENT, gen(H2, 1, 1)), "stale");
});

Deno.test("decideAfterCompletion() calls any other generation a new upload", () => {
  // Newer mtime, with more, as many or fewer chunks (a re-upload may be smaller).
  assert.equal(decideAfterCompletion(CURRENT, gen(H2, 5, 1_700_000_001)), "new");
  assert.equal(decideAfterCompletion(CURRENT, gen(H2, 4, 1_700_000_001)), "new");
  assert.equal(decideAfterCompletion(CURRENT, gen(H2, 1, 1_700_000_001)), "new");
  // Equal or unknown mtimes cannot prove it older.
  assert.equal(decideAfterCompletion(CURRENT, gen(H2, 4, 1_700_000_000.5)), "new");
  assert.equal(decideAfterCompletion(CURRENT, gen(H2, 4, null)), "new");
  assert.equal(decideAfterCompletion(gen(H, 4, null), gen(H2, 4, 1)), "new");
});
