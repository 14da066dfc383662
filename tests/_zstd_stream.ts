/**
 * A ZSTD frame for decompression-bomb tests (the codec's unit tests and the end-to-end test).
 *
 * Not a test module itself (the leading underscore keeps `deno test` from collecting it).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { zstdCompress } from "../src/wire/compression.ts";

/** The largest ZSTD block: 128 KiB. */
export const ZSTD_BLOCK = 128 * 1024;

/**
 * A zstd frame that declares no content size and decodes to `blocks` x 128 KiB of an 8-byte
 * pattern (byte `i` is `(i % 8) * 31 + 1`), in ordinary compressed blocks of about 12 bytes
 * each: a bomb that only counting the output as it is decoded can catch.
 */
export async function zstdStreamFrame(blocks: number): Promise<Uint8Array> {
  const pattern = new Uint8Array(8 * ZSTD_BLOCK);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i % 8) * 31 + 1;
  const frame = await zstdCompress(pattern, 1);
  const fhd = frame[4]!;
  assert.equal(fhd & 0x20, 0, "not single-segment");
  let p = 6 + [0, 1, 2, 4][fhd & 3]! + (fhd >>> 6 ? 1 << (fhd >>> 6) : 0);
  const parts: Uint8Array[] = [];
  for (;;) {
    const word = frame[p]! | (frame[p + 1]! << 8) | (frame[p + 2]! << 16);
    const end = p + 3 + (((word >>> 1) & 3) === 1 ? 1 : word >>> 3);
    parts.push(frame.subarray(p, end));
    p = end;
    if (word & 1) break;
  }
  // Past the first block, every block of the pattern compresses to the same bytes.
  const middle = parts[1]!;
  assert.deepEqual(Buffer.from(parts[2]!), Buffer.from(middle), "repeating block");
  const last = middle.slice();
  last[0] = last[0]! | 1;
  return Buffer.concat([
    new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, frame[5]!]), // magic, no content size, same window
    parts[0]!,
    ...Array.from({ length: blocks - 1 }, (_, i) => (i === blocks - 2 ? last : middle)),
  ]);
}
