/**
 * Kafka record-batch compression codecs for kafkajs: LZ4, Snappy and ZSTD.
 *
 * kafkajs 2.2.4 only ships GZIP. OpenMSIStream producers (confluent-kafka /
 * librdkafka) are typically configured with `compression.type = lz4`, so a
 * kafkajs consumer must be able to decode LZ4 batches; Snappy and ZSTD are
 * supported for completeness. Call {@linkcode registerCodecs} once before
 * creating consumers/producers; it fills kafkajs's `CompressionCodecs` table.
 *
 * Everything here is pure TypeScript/JavaScript or WASM so it survives
 * `deno compile` into a single binary (no native addons):
 *
 * - **LZ4** (frame format, as Kafka message format v1/v2 uses): implemented in
 *   this file. Decoding accepts everything liblz4's `LZ4F_decompress` accepts
 *   that Kafka can produce: 64 KiB…4 MiB blocks, independent or linked blocks,
 *   uncompressed blocks, optional content size, optional block and content
 *   xxHash32 checksums (verified), concatenated and skippable frames, and the
 *   broken header checksum written by pre-0.10 Kafka (KAFKA-3160). Encoding
 *   writes what librdkafka writes: 64 KiB independent blocks, no checksums.
 * - **Snappy**: decoding implemented here (raw snappy as librdkafka and
 *   kafkajs-snappy produce, and the xerial/snappy-java framing the Java
 *   producer writes); encoding uses `snappyjs` and wraps it in xerial framing
 *   like the Java client.
 * - **ZSTD**: decoding with `fzstd` (pure JS); encoding with
 *   `@bokuweb/zstd-wasm` (WASM, loaded lazily on the first ZSTD compression).
 *
 * - **GZIP**: `node:zlib` (kafkajs's own GZIP codec is replaced for the cap below).
 *
 * All decoders throw {@linkcode CompressionError} on malformed input. None of
 * them produces or allocates more than a cap ({@linkcode MAX_BATCH_BYTES} by
 * default): declared sizes are checked before anything is allocated, and the
 * output is counted as it is decoded, so a "decompression bomb" (a small batch
 * that decodes to gigabytes) costs at most the cap. Past the cap they throw
 * {@linkcode OversizeError}; the kafkajs codecs ({@linkcode createCodecs}) then
 * hand kafkajs marker records instead of the batch's records, which the
 * downloader recognises ({@linkcode parseOversizeMarker}) and quarantines.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { gzip as zlibGzip, unzip as zlibUnzip } from "node:zlib";
import type { CompressionTypes } from "kafkajs";
// kafkajs's public `CompressionCodecs` / `CompressionTypes` exports are exactly
// `Codecs` / `Types` of this module (see kafkajs/index.js). Importing it
// directly avoids loading the kafkajs root, which reads process.env at load
// time and would make this module need --allow-env. kafkajs is pinned to 2.2.4.
import kafkajsCompressionModule from "kafkajs/src/protocol/message/compression/index.js";
import snappyjsModule from "snappyjs";
import { Decompress as FzstdDecompress, decompress as fzstdDecompress } from "fzstd";
import { compress as zstdWasmCompress, init as zstdWasmInit } from "@bokuweb/zstd-wasm";

/**
 * Largest decompressed size of one record batch: 128 MiB. A batch that would decode to more is
 * set aside (see {@linkcode createCodecs}); a real producer's batch is far smaller (the broker
 * caps the compressed batch at `message.max.bytes`, 1 MiB by default).
 */
export const MAX_BATCH_BYTES = 128 * 1024 * 1024;

/** A codec name as {@linkcode CompressionError} reports it. */
export type CodecName = "gzip" | "lz4" | "snappy" | "zstd";

/** Error thrown for malformed or oversized compressed data. */
export class CompressionError extends Error {
  /** Codec that failed. */
  readonly codec: CodecName;

  /** Creates an error for `codec`; the message is prefixed with the codec name. */
  constructor(codec: CodecName, message: string, options?: ErrorOptions) {
    super(`${codec.toUpperCase()}: ${message}`, options);
    this.name = "CompressionError";
    this.codec = codec;
  }
}

/**
 * The data would decompress to more than the cap. Thrown before anything past the cap was
 * allocated: either a declared size gave it away, or decoding stopped when the output reached it.
 */
export class OversizeError extends CompressionError {
  /** The cap, in bytes. */
  readonly cap: number;
  /** What the data declared or what decoding saw, e.g. `its frames declare 1073741824 bytes`. */
  readonly detail: string;

  /** Creates the error for `codec` and its `cap`. */
  constructor(codec: CodecName, cap: number, detail: string) {
    super(codec, `decompressed data grows past the ${cap}-byte limit (${detail})`);
    this.name = "OversizeError";
    this.cap = cap;
    this.detail = detail;
  }
}

/** The part of a kafkajs `Encoder` that codecs use. */
export interface KafkaEncoderLike {
  /** The serialized records to compress. */
  readonly buffer: Buffer;
}

/** The codec interface kafkajs expects (see kafkajs `src/protocol/message/compression/gzip.js`). */
export interface KafkaCodec {
  /** Compresses the records serialized in `encoder`. */
  compress(encoder: KafkaEncoderLike): Promise<Buffer>;
  /** Decompresses a compressed records blob. */
  decompress(buffer: Buffer): Promise<Buffer>;
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Returns `out[0, used)`, copying when the unused tail would waste a lot of memory. */
function trimOutput(out: Uint8Array, used: number): Uint8Array {
  if (used === out.length) return out;
  const slack = out.length - used;
  // Records are views into the output, so a view would keep the unused tail alive as long as any
  // record of the batch: a 64 KiB block bound for a 4 KiB batch is a 16-fold waste.
  return slack > 4096 && slack > used / 8 ? out.slice(0, used) : out.subarray(0, used);
}

function readU32LE(src: Uint8Array, pos: number): number {
  return (src[pos]! | (src[pos + 1]! << 8) | (src[pos + 2]! << 16) | (src[pos + 3]! << 24)) >>> 0;
}

function writeU32LE(dst: Uint8Array, pos: number, value: number): void {
  dst[pos] = value & 0xff;
  dst[pos + 1] = (value >>> 8) & 0xff;
  dst[pos + 2] = (value >>> 16) & 0xff;
  dst[pos + 3] = (value >>> 24) & 0xff;
}

function readU32BE(src: Uint8Array, pos: number): number {
  return ((src[pos]! << 24) | (src[pos + 1]! << 16) | (src[pos + 2]! << 8) | src[pos + 3]!) >>> 0;
}

function writeU32BE(dst: Uint8Array, pos: number, value: number): void {
  dst[pos] = (value >>> 24) & 0xff;
  dst[pos + 1] = (value >>> 16) & 0xff;
  dst[pos + 2] = (value >>> 8) & 0xff;
  dst[pos + 3] = value & 0xff;
}

// ---------------------------------------------------------------------------
// xxHash32 (LZ4 frame checksums)
// ---------------------------------------------------------------------------

const PRIME32_1 = 0x9e3779b1;
const PRIME32_2 = 0x85ebca77;
const PRIME32_3 = 0xc2b2ae3d;
const PRIME32_4 = 0x27d4eb2f;
const PRIME32_5 = 0x165667b1;

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** xxHash32 of `data[start, end)` (used by the LZ4 frame format); returns an unsigned 32-bit value. */
export function xxh32(data: Uint8Array, seed = 0, start = 0, end = data.length): number {
  let p = start;
  let h: number;
  if (end - start >= 16) {
    let v1 = (seed + PRIME32_1 + PRIME32_2) | 0;
    let v2 = (seed + PRIME32_2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - PRIME32_1) | 0;
    const limit = end - 16;
    while (p <= limit) {
      v1 = Math.imul(rotl32((v1 + Math.imul(readU32LE(data, p), PRIME32_2)) | 0, 13), PRIME32_1);
      v2 = Math.imul(
        rotl32((v2 + Math.imul(readU32LE(data, p + 4), PRIME32_2)) | 0, 13),
        PRIME32_1,
      );
      v3 = Math.imul(
        rotl32((v3 + Math.imul(readU32LE(data, p + 8), PRIME32_2)) | 0, 13),
        PRIME32_1,
      );
      v4 = Math.imul(
        rotl32((v4 + Math.imul(readU32LE(data, p + 12), PRIME32_2)) | 0, 13),
        PRIME32_1,
      );
      p += 16;
    }
    h = (rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18)) | 0;
  } else {
    h = (seed + PRIME32_5) | 0;
  }
  h = (h + (end - start)) | 0;
  while (p + 4 <= end) {
    h = Math.imul(rotl32((h + Math.imul(readU32LE(data, p), PRIME32_3)) | 0, 17), PRIME32_4);
    p += 4;
  }
  while (p < end) {
    h = Math.imul(rotl32((h + Math.imul(data[p]!, PRIME32_5)) | 0, 11), PRIME32_1);
    p++;
  }
  h ^= h >>> 15;
  h = Math.imul(h, PRIME32_2);
  h ^= h >>> 13;
  h = Math.imul(h, PRIME32_3);
  h ^= h >>> 16;
  return h >>> 0;
}

// ---------------------------------------------------------------------------
// LZ4 frame format
// ---------------------------------------------------------------------------

const LZ4_MAGIC = 0x184d2204;
const LZ4_SKIPPABLE_MASK = 0xfffffff0;
const LZ4_SKIPPABLE_MAGIC = 0x184d2a50;
const LZ4_BLOCK_SIZES: Readonly<Record<number, number>> = {
  4: 64 * 1024,
  5: 256 * 1024,
  6: 1024 * 1024,
  7: 4 * 1024 * 1024,
};
const LZ4_FLG_VERSION = 0x40;
const LZ4_FLG_BLOCK_INDEPENDENT = 0x20;
const LZ4_FLG_BLOCK_CHECKSUM = 0x10;
const LZ4_FLG_CONTENT_SIZE = 0x08;
const LZ4_FLG_CONTENT_CHECKSUM = 0x04;
const LZ4_FLG_DICT_ID = 0x01;
const LZ4_UNCOMPRESSED_BIT = 0x80000000;

function lz4Error(message: string): CompressionError {
  return new CompressionError("lz4", message);
}

/** A block's output would pass its limit: the block size, the frame's declared size or the cap. */
class Lz4Overrun extends CompressionError {
  constructor() {
    super("lz4", "output overruns the block size");
  }
}

/** First output buffer when the scan's bound passes the cap (it then grows as blocks decode). */
const LZ4_INITIAL_OUTPUT = 1024 * 1024;

interface Lz4FrameHeader {
  readonly independent: boolean;
  readonly blockChecksum: boolean;
  readonly contentChecksum: boolean;
  readonly contentSize: number | undefined;
  readonly blockMax: number;
  /** Offset of the first block header. */
  readonly dataStart: number;
}

/** Parses the LZ4 frame header starting at `pos` (the magic number has been checked). */
function lz4ParseHeader(src: Uint8Array, pos: number, maxOutput: number): Lz4FrameHeader {
  const descStart = pos + 4;
  if (descStart + 3 > src.length) throw lz4Error(`truncated frame header at byte ${pos}`);
  const flg = src[descStart]!;
  const bd = src[descStart + 1]!;
  if ((flg & 0xc0) !== LZ4_FLG_VERSION) {
    throw lz4Error(`unsupported frame version ${(flg >>> 6) & 3} at byte ${pos}`);
  }
  if ((flg & 0x02) !== 0 || (bd & 0x8f) !== 0) {
    throw lz4Error(`reserved bits set in frame descriptor at byte ${pos}`);
  }
  if ((flg & LZ4_FLG_DICT_ID) !== 0) {
    throw lz4Error("frames that need a dictionary (DictID flag) are not supported");
  }
  const blockMax = LZ4_BLOCK_SIZES[(bd >>> 4) & 7];
  if (blockMax === undefined) throw lz4Error(`invalid block maximum size id ${(bd >>> 4) & 7}`);
  let hcPos = descStart + 2;
  let contentSize: number | undefined;
  if ((flg & LZ4_FLG_CONTENT_SIZE) !== 0) {
    if (hcPos + 8 >= src.length) throw lz4Error(`truncated frame header at byte ${pos}`);
    const lo = readU32LE(src, hcPos);
    const hi = readU32LE(src, hcPos + 4);
    if (hi !== 0 || lo > maxOutput) {
      throw new OversizeError(
        "lz4",
        maxOutput,
        `its frame at byte ${pos} declares a content size of ${hi * 2 ** 32 + lo} bytes`,
      );
    }
    contentSize = lo;
    hcPos += 8;
  }
  if (hcPos >= src.length) throw lz4Error(`truncated frame header at byte ${pos}`);
  const hc = src[hcPos]!;
  if (hc !== ((xxh32(src, 0, descStart, hcPos) >>> 8) & 0xff)) {
    // Kafka < 0.10 (message format v0) hashed the magic number too (KAFKA-3160);
    // librdkafka and the Java client accept that for old messages, so do we.
    if (hc !== ((xxh32(src, 0, pos, hcPos) >>> 8) & 0xff)) {
      throw lz4Error(`frame header checksum mismatch at byte ${pos}`);
    }
  }
  return {
    independent: (flg & LZ4_FLG_BLOCK_INDEPENDENT) !== 0,
    blockChecksum: (flg & LZ4_FLG_BLOCK_CHECKSUM) !== 0,
    contentChecksum: (flg & LZ4_FLG_CONTENT_CHECKSUM) !== 0,
    contentSize,
    blockMax,
    dataStart: hcPos + 1,
  };
}

/**
 * Walks all frames without decoding, validating the structure, and returns an
 * upper bound of the decoded size (which may pass `maxOutput`: only the
 * content sizes frames declare are held against it here).
 */
function lz4ScanBound(src: Uint8Array, maxOutput: number): number {
  let pos = 0;
  let bound = 0;
  let declared = 0;
  while (pos < src.length) {
    if (pos + 4 > src.length) throw lz4Error(`truncated data at byte ${pos}`);
    const magic = readU32LE(src, pos);
    if ((magic & LZ4_SKIPPABLE_MASK) >>> 0 === LZ4_SKIPPABLE_MAGIC) {
      if (pos + 8 > src.length) throw lz4Error(`truncated skippable frame at byte ${pos}`);
      pos += 8 + readU32LE(src, pos + 4);
      if (pos > src.length) throw lz4Error("truncated skippable frame");
      continue;
    }
    if (magic !== LZ4_MAGIC) {
      throw lz4Error(
        pos === 0
          ? `not an LZ4 frame (magic 0x${magic.toString(16).padStart(8, "0")})`
          : `unexpected data after LZ4 frame at byte ${pos}`,
      );
    }
    const header = lz4ParseHeader(src, pos, maxOutput);
    pos = header.dataStart;
    let frameBound = 0;
    for (;;) {
      if (pos + 4 > src.length) throw lz4Error("truncated block header (missing end mark)");
      const word = readU32LE(src, pos);
      pos += 4;
      if (word === 0) break;
      const size = (word & ~LZ4_UNCOMPRESSED_BIT) >>> 0;
      const uncompressed = (word & LZ4_UNCOMPRESSED_BIT) !== 0;
      if (size > header.blockMax) {
        throw lz4Error(`block size ${size} exceeds the frame's maximum ${header.blockMax}`);
      }
      pos += size + (header.blockChecksum ? 4 : 0);
      if (pos > src.length) throw lz4Error("truncated block");
      frameBound += uncompressed ? size : Math.min(header.blockMax, size * 255 + 64);
    }
    if (header.contentChecksum) {
      pos += 4;
      if (pos > src.length) throw lz4Error("truncated content checksum");
    }
    bound += header.contentSize ?? frameBound;
    declared += header.contentSize ?? 0;
    if (declared > maxOutput) {
      throw new OversizeError("lz4", maxOutput, `its frames declare ${declared} bytes of content`);
    }
  }
  return bound;
}

/**
 * Decodes one LZ4 block `src[sPos, sEnd)` into `dst` at `dPos`, never writing
 * at or past `dLimit` and never referencing output before `dLow`. Returns the
 * new output position.
 */
function lz4DecodeBlock(
  src: Uint8Array,
  sPos: number,
  sEnd: number,
  dst: Uint8Array,
  dPos: number,
  dLimit: number,
  dLow: number,
): number {
  for (;;) {
    if (sPos >= sEnd) throw lz4Error("truncated block (missing token)");
    const token = src[sPos++]!;
    let literals = token >>> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (sPos >= sEnd) throw lz4Error("truncated literal length");
        b = src[sPos++]!;
        literals += b;
      } while (b === 255);
    }
    if (literals > 0) {
      if (sPos + literals > sEnd) throw lz4Error("literal run overruns the block");
      if (dPos + literals > dLimit) throw new Lz4Overrun();
      if (literals < 32) {
        const stop = sPos + literals;
        while (sPos < stop) dst[dPos++] = src[sPos++]!;
      } else {
        dst.set(src.subarray(sPos, sPos + literals), dPos);
        sPos += literals;
        dPos += literals;
      }
    }
    if (sPos === sEnd) return dPos; // the last sequence has literals only
    if (sPos + 2 > sEnd) throw lz4Error("truncated match offset");
    const offset = src[sPos]! | (src[sPos + 1]! << 8);
    sPos += 2;
    if (offset === 0 || offset > dPos - dLow) {
      throw lz4Error(`invalid match offset ${offset} at output position ${dPos}`);
    }
    let length = token & 15;
    if (length === 15) {
      let b: number;
      do {
        if (sPos >= sEnd) throw lz4Error("truncated match length");
        b = src[sPos++]!;
        length += b;
      } while (b === 255);
    }
    length += 4;
    if (dPos + length > dLimit) throw new Lz4Overrun();
    let m = dPos - offset;
    if (length < 32) {
      const stop = dPos + length;
      while (dPos < stop) dst[dPos++] = dst[m++]!;
    } else if (offset >= length) {
      dst.copyWithin(dPos, m, m + length);
      dPos += length;
    } else {
      // Overlapping copy (repeating pattern): copy in chunks that double in size.
      let remaining = length;
      while (remaining > 0) {
        const n = Math.min(dPos - m, remaining);
        dst.copyWithin(dPos, m, m + n);
        dPos += n;
        remaining -= n;
      }
    }
  }
}

/**
 * Decompresses LZ4 frame data (one or more concatenated frames; skippable
 * frames are ignored). Throws {@linkcode CompressionError} on malformed input
 * or checksum mismatch, and {@linkcode OversizeError} when the output would
 * pass `maxOutput` (declared content sizes are checked before decoding, and
 * decoded blocks are counted; no buffer ever passes `maxOutput`).
 */
export function lz4Decompress(
  src: Uint8Array,
  maxOutput: number = MAX_BATCH_BYTES,
): Uint8Array {
  if (src.length === 0) throw lz4Error("empty input");
  // The scan's bound is exact for full blocks, so one allocation usually holds everything. When
  // it passes the cap (a bomb, or many tiny frames), the output starts small and grows as blocks
  // decode, and decoding stops at the cap.
  const bound = lz4ScanBound(src, maxOutput);
  let out = new Uint8Array(bound <= maxOutput ? bound : Math.min(maxOutput, LZ4_INITIAL_OUTPUT));
  let pos = 0;
  let dPos = 0;
  const reserve = (end: number): void => {
    if (end <= out.length) return;
    const grown = new Uint8Array(Math.min(maxOutput, Math.max(end, out.length * 2)));
    grown.set(out.subarray(0, dPos));
    out = grown;
  };
  const overCap = (): never => {
    throw new OversizeError(
      "lz4",
      maxOutput,
      `its blocks decode to more than that; decoding stopped after ${dPos} bytes`,
    );
  };
  while (pos < src.length) {
    const magic = readU32LE(src, pos);
    if ((magic & LZ4_SKIPPABLE_MASK) >>> 0 === LZ4_SKIPPABLE_MAGIC) {
      pos += 8 + readU32LE(src, pos + 4);
      continue;
    }
    const header = lz4ParseHeader(src, pos, maxOutput);
    pos = header.dataStart;
    const frameStart = dPos;
    const frameEnd = header.contentSize === undefined ? Infinity : frameStart + header.contentSize;
    for (let blockIndex = 0;; blockIndex++) {
      const word = readU32LE(src, pos);
      pos += 4;
      if (word === 0) break;
      const size = (word & ~LZ4_UNCOMPRESSED_BIT) >>> 0;
      const blockEnd = pos + size;
      if (header.blockChecksum) {
        if (readU32LE(src, blockEnd) !== xxh32(src, 0, pos, blockEnd)) {
          throw lz4Error(`block checksum mismatch in block ${blockIndex}`);
        }
      }
      if ((word & LZ4_UNCOMPRESSED_BIT) !== 0) {
        if (dPos + size > frameEnd) throw lz4Error("output exceeds the declared content size");
        if (dPos + size > maxOutput) overCap();
        reserve(dPos + size);
        out.set(src.subarray(pos, blockEnd), dPos);
        dPos += size;
      } else {
        const want = Math.min(dPos + header.blockMax, frameEnd);
        const dLimit = Math.min(want, maxOutput);
        reserve(dLimit);
        try {
          dPos = lz4DecodeBlock(
            src,
            pos,
            blockEnd,
            out,
            dPos,
            dLimit,
            header.independent ? dPos : frameStart,
          );
        } catch (error) {
          if (error instanceof Lz4Overrun && dLimit < want) overCap();
          throw error;
        }
      }
      pos = blockEnd + (header.blockChecksum ? 4 : 0);
    }
    if (header.contentSize !== undefined && dPos - frameStart !== header.contentSize) {
      throw lz4Error(
        `decoded ${dPos - frameStart} bytes but the frame declares ${header.contentSize}`,
      );
    }
    if (header.contentChecksum) {
      if (readU32LE(src, pos) !== xxh32(out, 0, frameStart, dPos)) {
        throw lz4Error("content checksum mismatch");
      }
      pos += 4;
    }
  }
  return trimOutput(out, dPos);
}

/** Options for {@linkcode lz4Compress}; the defaults match librdkafka's Kafka producer. */
export interface Lz4CompressOptions {
  /** Maximum block size in bytes: 65536 (default), 262144, 1048576 or 4194304. */
  readonly blockSize?: 65536 | 262144 | 1048576 | 4194304;
  /** Append an xxHash32 of each compressed block (default false). */
  readonly blockChecksum?: boolean;
  /** Append an xxHash32 of the whole content (default false). */
  readonly contentChecksum?: boolean;
  /** Store the content size in the frame header (default false). */
  readonly contentSize?: boolean;
}

const LZ4_MIN_MATCH = 4;
const LZ4_LAST_LITERALS = 5; // the last 5 bytes of a block are always literals
const LZ4_MF_LIMIT = 12; // the last match must start at least 12 bytes before the block end
const LZ4_MAX_DISTANCE = 65535;
const LZ4_HASH_LOG = 16;
const LZ4_SKIP_TRIGGER = 6;
let lz4HashTable: Int32Array | undefined;

function lz4WriteLength(dst: Uint8Array, d: number, n: number): number {
  while (n >= 255) {
    dst[d++] = 255;
    n -= 255;
  }
  dst[d++] = n;
  return d;
}

/**
 * Greedy single-pass LZ4 block compressor (the "fast" strategy of liblz4).
 * `table` holds absolute positions in `src`; entries before `start` are stale
 * and ignored, so every block is independent. Returns the new output position.
 */
function lz4EncodeBlock(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
  d: number,
  table: Int32Array,
): number {
  let anchor = start;
  if (end - start > LZ4_MF_LIMIT) {
    const mfLimit = end - LZ4_MF_LIMIT;
    const matchLimit = end - LZ4_LAST_LITERALS;
    let ip = start;
    let searchCount = 1 << LZ4_SKIP_TRIGGER;
    while (ip < mfLimit) {
      const seq = readU32LE(src, ip);
      const h = Math.imul(seq, PRIME32_1) >>> (32 - LZ4_HASH_LOG);
      const ref = table[h]!;
      table[h] = ip;
      if (ref < start || ip - ref > LZ4_MAX_DISTANCE || readU32LE(src, ref) !== seq) {
        ip += searchCount++ >>> LZ4_SKIP_TRIGGER;
        continue;
      }
      searchCount = 1 << LZ4_SKIP_TRIGGER;
      let mStart = ip;
      let mRef = ref;
      while (mStart > anchor && mRef > start && src[mStart - 1] === src[mRef - 1]) {
        mStart--;
        mRef--;
      }
      let p = ip + LZ4_MIN_MATCH;
      let q = ref + LZ4_MIN_MATCH;
      while (p < matchLimit && src[p] === src[q]) {
        p++;
        q++;
      }
      const literals = mStart - anchor;
      const matchLength = p - mStart - LZ4_MIN_MATCH;
      const tokenPos = d++;
      if (literals >= 15) d = lz4WriteLength(dst, d, literals - 15);
      if (literals < 32) {
        for (let i = anchor; i < mStart; i++) dst[d++] = src[i]!;
      } else {
        dst.set(src.subarray(anchor, mStart), d);
        d += literals;
      }
      const offset = mStart - mRef;
      dst[d++] = offset & 0xff;
      dst[d++] = offset >>> 8;
      if (matchLength >= 15) d = lz4WriteLength(dst, d, matchLength - 15);
      dst[tokenPos] = (Math.min(literals, 15) << 4) | Math.min(matchLength, 15);
      ip = anchor = p;
      if (p - 2 < mfLimit) {
        table[Math.imul(readU32LE(src, p - 2), PRIME32_1) >>> (32 - LZ4_HASH_LOG)] = p - 2;
      }
    }
  }
  const literals = end - anchor;
  dst[d++] = Math.min(literals, 15) << 4;
  if (literals >= 15) d = lz4WriteLength(dst, d, literals - 15);
  dst.set(src.subarray(anchor, end), d);
  return d + literals;
}

/**
 * Compresses `src` into one LZ4 frame. By default the frame looks like
 * librdkafka's (and the Java client's) output: 64 KiB independent blocks,
 * no checksums, no content size; incompressible blocks are stored raw.
 */
export function lz4Compress(src: Uint8Array, options: Lz4CompressOptions = {}): Uint8Array {
  const blockSize = options.blockSize ?? 65536;
  const bsId = Object.entries(LZ4_BLOCK_SIZES).find(([, size]) => size === blockSize)?.[0];
  if (bsId === undefined) throw lz4Error(`unsupported block size ${blockSize}`);
  const blockChecksum = options.blockChecksum ?? false;
  const contentChecksum = options.contentChecksum ?? false;
  const contentSize = options.contentSize ?? false;
  const blocks = Math.ceil(src.length / blockSize);
  const worstCase = 15 + 4 + 4 +
    blocks * (4 + 4 + 16) + src.length + Math.ceil(src.length / 255);
  const out = new Uint8Array(worstCase);
  writeU32LE(out, 0, LZ4_MAGIC);
  let flg = LZ4_FLG_VERSION | LZ4_FLG_BLOCK_INDEPENDENT;
  if (blockChecksum) flg |= LZ4_FLG_BLOCK_CHECKSUM;
  if (contentSize) flg |= LZ4_FLG_CONTENT_SIZE;
  if (contentChecksum) flg |= LZ4_FLG_CONTENT_CHECKSUM;
  out[4] = flg;
  out[5] = Number(bsId) << 4;
  let d = 6;
  if (contentSize) {
    writeU32LE(out, d, src.length >>> 0);
    writeU32LE(out, d + 4, Math.floor(src.length / 0x100000000));
    d += 8;
  }
  out[d] = (xxh32(out, 0, 4, d) >>> 8) & 0xff;
  d++;
  const table = lz4HashTable ??= new Int32Array(1 << LZ4_HASH_LOG);
  table.fill(-1);
  for (let start = 0; start < src.length; start += blockSize) {
    const end = Math.min(src.length, start + blockSize);
    const headerPos = d;
    const dataStart = d + 4;
    let dataEnd = lz4EncodeBlock(src, start, end, out, dataStart, table);
    if (dataEnd - dataStart >= end - start) {
      out.set(src.subarray(start, end), dataStart);
      dataEnd = dataStart + (end - start);
      writeU32LE(out, headerPos, ((end - start) | LZ4_UNCOMPRESSED_BIT) >>> 0);
    } else {
      writeU32LE(out, headerPos, dataEnd - dataStart);
    }
    d = dataEnd;
    if (blockChecksum) {
      writeU32LE(out, d, xxh32(out, 0, dataStart, dataEnd));
      d += 4;
    }
  }
  writeU32LE(out, d, 0);
  d += 4;
  if (contentChecksum) {
    writeU32LE(out, d, xxh32(src));
    d += 4;
  }
  return out.slice(0, d);
}

// ---------------------------------------------------------------------------
// Snappy (raw, and xerial / snappy-java framing)
// ---------------------------------------------------------------------------

/** snappy-java `SnappyOutputStream` header magic: `\x82SNAPPY\x00`. */
const XERIAL_MAGIC = new Uint8Array([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_LENGTH = 16; // magic + int32 version + int32 compatible version
/** snappy-java's default block size (what the Kafka Java producer uses). */
const XERIAL_BLOCK_SIZE = 32 * 1024;

interface SnappyJs {
  compress(data: Uint8Array): Uint8Array;
}
const snappyjs = snappyjsModule as unknown as SnappyJs;

function snappyError(message: string): CompressionError {
  return new CompressionError("snappy", message);
}

/** Reads the varint uncompressed length at the start of a raw snappy block. */
function snappyReadLength(
  src: Uint8Array,
  pos: number,
  end: number,
): { length: number; pos: number } {
  let length = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (pos >= end) throw snappyError("truncated length header");
    const b = src[pos++]!;
    length += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) {
      if (length > 0xffffffff) throw snappyError("length header out of range");
      return { length, pos };
    }
  }
  throw snappyError("length header out of range");
}

/** Decodes the raw snappy tag stream `src[pos, end)` into exactly `dst[dPos, dEnd)`. */
function snappyDecodeInto(
  src: Uint8Array,
  pos: number,
  end: number,
  dst: Uint8Array,
  dPos: number,
  dEnd: number,
): void {
  const dLow = dPos;
  while (pos < end) {
    const tag = src[pos++]!;
    const type = tag & 3;
    let length: number;
    if (type === 0) {
      length = (tag >>> 2) + 1;
      if (length > 60) {
        const bytes = length - 60;
        if (pos + bytes > end) throw snappyError("truncated literal length");
        length = 0;
        for (let i = 0; i < bytes; i++) length += src[pos + i]! * 2 ** (8 * i);
        length += 1;
        pos += bytes;
      }
      if (pos + length > end) throw snappyError("literal overruns the input");
      if (dPos + length > dEnd) throw snappyError("output exceeds the declared length");
      if (length < 32) {
        const stop = pos + length;
        while (pos < stop) dst[dPos++] = src[pos++]!;
      } else {
        dst.set(src.subarray(pos, pos + length), dPos);
        pos += length;
        dPos += length;
      }
      continue;
    }
    let offset: number;
    if (type === 1) {
      if (pos >= end) throw snappyError("truncated copy");
      length = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | src[pos++]!;
    } else if (type === 2) {
      if (pos + 2 > end) throw snappyError("truncated copy");
      length = (tag >>> 2) + 1;
      offset = src[pos]! | (src[pos + 1]! << 8);
      pos += 2;
    } else {
      if (pos + 4 > end) throw snappyError("truncated copy");
      length = (tag >>> 2) + 1;
      offset = readU32LE(src, pos);
      pos += 4;
    }
    if (offset === 0 || offset > dPos - dLow) {
      throw snappyError(`invalid copy offset ${offset} at output position ${dPos - dLow}`);
    }
    if (dPos + length > dEnd) throw snappyError("output exceeds the declared length");
    let m = dPos - offset;
    if (offset >= length && length >= 32) {
      dst.copyWithin(dPos, m, m + length);
      dPos += length;
    } else {
      const stop = dPos + length;
      while (dPos < stop) dst[dPos++] = dst[m++]!;
    }
  }
  if (dPos !== dEnd) {
    throw snappyError(`decoded ${dPos - dLow} bytes but the block declares ${dEnd - dLow}`);
  }
}

function isXerialFramed(src: Uint8Array, pos = 0): boolean {
  if (src.length - pos < XERIAL_MAGIC.length) return false;
  for (let i = 0; i < XERIAL_MAGIC.length; i++) {
    if (src[pos + i] !== XERIAL_MAGIC[i]) return false;
  }
  return true;
}

/** Decompresses one raw (unframed) snappy block. */
export function snappyDecompressRaw(
  src: Uint8Array,
  maxOutput: number = MAX_BATCH_BYTES,
): Uint8Array {
  const { length, pos } = snappyReadLength(src, 0, src.length);
  if (length > maxOutput) {
    throw new OversizeError("snappy", maxOutput, `its length header declares ${length} bytes`);
  }
  const out = new Uint8Array(length);
  snappyDecodeInto(src, pos, src.length, out, 0, length);
  return out;
}

/**
 * Decompresses Kafka snappy data: xerial-framed (snappy-java
 * `SnappyOutputStream`, written by the Java producer; concatenated streams are
 * accepted) when it starts with `\x82SNAPPY\x00`, else one raw snappy block
 * (written by librdkafka and kafkajs-snappy).
 */
export function snappyDecompress(
  src: Uint8Array,
  maxOutput: number = MAX_BATCH_BYTES,
): Uint8Array {
  if (!isXerialFramed(src)) return snappyDecompressRaw(src, maxOutput);
  if (src.length < XERIAL_HEADER_LENGTH) throw snappyError("truncated xerial header");
  // Pass 1: locate the blocks and read their declared lengths.
  const blocks: { start: number; end: number; dataPos: number; length: number }[] = [];
  let total = 0;
  let pos = XERIAL_HEADER_LENGTH;
  while (pos < src.length) {
    if (isXerialFramed(src, pos)) {
      if (src.length - pos < XERIAL_HEADER_LENGTH) throw snappyError("truncated xerial header");
      pos += XERIAL_HEADER_LENGTH;
      continue;
    }
    if (pos + 4 > src.length) throw snappyError(`truncated xerial block header at byte ${pos}`);
    const size = readU32BE(src, pos);
    const start = pos + 4;
    const end = start + size;
    if (size > 0x7fffffff || end > src.length) {
      throw snappyError(`xerial block at byte ${pos} (size ${size}) overruns the input`);
    }
    const { length, pos: dataPos } = snappyReadLength(src, start, end);
    total += length;
    if (total > maxOutput) {
      throw new OversizeError(
        "snappy",
        maxOutput,
        `its xerial blocks declare at least ${total} bytes`,
      );
    }
    blocks.push({ start, end, dataPos, length });
    pos = end;
  }
  // Pass 2: decode every block into one output buffer.
  const out = new Uint8Array(total);
  let dPos = 0;
  for (const block of blocks) {
    snappyDecodeInto(src, block.dataPos, block.end, out, dPos, dPos + block.length);
    dPos += block.length;
  }
  return out;
}

/** Compresses `src` as one raw snappy block (via snappyjs). */
export function snappyCompressRaw(src: Uint8Array): Uint8Array {
  return snappyjs.compress(src);
}

/**
 * Compresses `src` in the xerial framing that the Java producer writes
 * (snappy-java `SnappyOutputStream`, 32 KiB blocks). Every Kafka client
 * (Java, librdkafka, kafkajs-snappy, this module) decodes it.
 */
export function snappyCompress(src: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = XERIAL_HEADER_LENGTH;
  for (let start = 0; start < src.length; start += XERIAL_BLOCK_SIZE) {
    const block = snappyjs.compress(src.subarray(start, start + XERIAL_BLOCK_SIZE));
    parts.push(block);
    total += 4 + block.length;
  }
  const out = new Uint8Array(total);
  out.set(XERIAL_MAGIC, 0);
  writeU32BE(out, 8, 1); // version
  writeU32BE(out, 12, 1); // minimum compatible version
  let d = XERIAL_HEADER_LENGTH;
  for (const part of parts) {
    writeU32BE(out, d, part.length);
    out.set(part, d + 4);
    d += 4 + part.length;
  }
  return out;
}

// ---------------------------------------------------------------------------
// ZSTD
// ---------------------------------------------------------------------------

function zstdError(message: string, cause?: unknown): CompressionError {
  return new CompressionError("zstd", message, cause === undefined ? undefined : { cause });
}

const ZSTD_MAGIC = 0xfd2fb528;
const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;
const ZSTD_BLOCK_MAX = 128 * 1024;

/** One zstd frame located by {@linkcode zstdScan}. */
interface ZstdFrame {
  readonly start: number;
  readonly end: number;
  /** The content size the header declares, if it does. */
  readonly contentSize: number | undefined;
}

/**
 * Walks every frame's header and block headers without decoding anything (so before allocating
 * anything) and holds what they reveal against `maxOutput`: the content sizes the frames declare
 * (all of them, not just the first's), the bytes their raw and RLE blocks hold (exact output
 * sizes, so a bomb of RLE blocks is caught here), and the windows that frames without a content
 * size make the decoder allocate.
 */
function zstdScan(src: Uint8Array, maxOutput: number): ZstdFrame[] {
  const frames: ZstdFrame[] = [];
  let declared = 0;
  let known = 0;
  let windows = 0;
  let pos = 0;
  const truncated = (what: string, at: number) => zstdError(`truncated ${what} at byte ${at}`);
  while (pos < src.length) {
    if (pos + 4 > src.length) throw truncated("frame", pos);
    const magic = readU32LE(src, pos);
    if ((magic & 0xfffffff0) >>> 0 === ZSTD_SKIPPABLE_MAGIC) {
      if (pos + 8 > src.length) throw truncated("skippable frame", pos);
      const end = pos + 8 + readU32LE(src, pos + 4);
      if (end > src.length) throw truncated("skippable frame", pos);
      pos = end;
      continue;
    }
    if (magic !== ZSTD_MAGIC) {
      throw zstdError(
        `not a zstd frame (magic 0x${magic.toString(16).padStart(8, "0")}) at byte ${pos}`,
      );
    }
    const start = pos;
    if (pos + 5 > src.length) throw truncated("frame header", start);
    const fhd = src[pos + 4]!;
    if ((fhd & 0x08) !== 0) throw zstdError(`reserved bit set in the frame header at byte ${pos}`);
    const singleSegment = (fhd & 0x20) !== 0;
    let p = pos + 5;
    let window = 0;
    if (!singleSegment) {
      if (p >= src.length) throw truncated("frame header", start);
      const wd = src[p++]!;
      const base = 2 ** (10 + (wd >>> 3));
      window = base + (base / 8) * (wd & 7);
    }
    p += [0, 1, 2, 4][fhd & 3]!;
    const fcsFlag = fhd >>> 6;
    const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
    if (p + fcsBytes > src.length) throw truncated("frame header", start);
    let contentSize: number | undefined;
    if (fcsBytes > 0) {
      contentSize = fcsBytes === 2 ? 256 : 0;
      for (let i = 0; i < fcsBytes; i++) contentSize += src[p + i]! * 2 ** (8 * i);
      if (singleSegment) window = contentSize;
    }
    p += fcsBytes;
    let held = 0;
    for (;;) {
      if (p + 3 > src.length) throw truncated("block header", p);
      const word = src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16);
      const type = (word >>> 1) & 3;
      const size = word >>> 3;
      if (type === 3) throw zstdError(`reserved block type at byte ${p}`);
      if (size > ZSTD_BLOCK_MAX) throw zstdError(`block at byte ${p} is larger than 128 KiB`);
      p += 3 + (type === 1 ? 1 : size);
      if (p > src.length) throw truncated("block", p);
      if (type !== 2) held += size;
      if ((word & 1) !== 0) break;
    }
    if ((fhd & 0x04) !== 0) p += 4;
    if (p > src.length) throw truncated("content checksum", p);
    if (contentSize !== undefined && held > contentSize) {
      throw zstdError(
        `the frame at byte ${start} holds more than the ${contentSize} bytes it declares`,
      );
    }
    frames.push({ start, end: p, contentSize });
    pos = p;
    const n = frames.length;
    if (contentSize !== undefined) {
      declared += contentSize;
      if (declared > maxOutput) {
        throw new OversizeError(
          "zstd",
          maxOutput,
          n === 1
            ? `its frame declares ${declared} bytes`
            : `its ${n} frames declare ${declared} bytes (the first declares ${
              frames[0]!.contentSize ?? "nothing"
            })`,
        );
      }
    }
    known += contentSize ?? held;
    if (known > maxOutput) {
      throw new OversizeError(
        "zstd",
        maxOutput,
        `its ${n} frame${n === 1 ? "" : "s"} hold at least ${known} bytes in raw and RLE blocks`,
      );
    }
    if (!contentSize) {
      // Decoded as a stream: the decoder allocates the frame's window.
      windows += window;
      if (window > maxOutput || windows > 4 * maxOutput) {
        throw new OversizeError(
          "zstd",
          maxOutput,
          `frame ${n} asks for a ${window}-byte window${n === 1 ? "" : ` (${windows} in all)`}`,
        );
      }
    }
  }
  return frames;
}

/**
 * Decompresses zstd data (one or more frames; skippable frames are ignored) with fzstd. Content
 * checksums are not verified (fzstd skips them); malformed data throws
 * {@linkcode CompressionError}, and output past `maxOutput` throws {@linkcode OversizeError}.
 *
 * Every frame header and block header is checked first ({@linkcode zstdScan}). A frame that
 * declares its content size is then decoded in one go into a buffer of exactly that size (the
 * declared sizes are within the cap); a frame that does not is decoded as a stream, counting the
 * output block by block and stopping at the cap.
 */
export function zstdDecompress(
  src: Uint8Array,
  maxOutput: number = MAX_BATCH_BYTES,
): Uint8Array {
  if (src.length < 6) throw zstdError("input too short for a zstd frame");
  const frames = zstdScan(src, maxOutput);
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for (const [i, frame] of frames.entries()) {
      const data = src.subarray(frame.start, frame.end);
      if (frame.contentSize) {
        const out = fzstdDecompress(data);
        parts.push(out);
        total += out.length;
        continue;
      }
      const stream = new FzstdDecompress((chunk) => {
        if (total + chunk.length > maxOutput) {
          const declared = frames[0]!.contentSize;
          throw new OversizeError(
            "zstd",
            maxOutput,
            `${frames.length === 1 ? "its frame" : `frame ${i + 1} of ${frames.length}`} ` +
              `declares no size and decodes to more; decoding stopped after ${total} bytes` +
              (i > 0 && declared !== undefined ? ` (the first frame declares ${declared})` : ""),
          );
        }
        parts.push(chunk);
        total += chunk.length;
      });
      stream.push(data, true);
    }
  } catch (error) {
    if (error instanceof CompressionError) throw error;
    throw zstdError(
      `invalid data (${error instanceof Error ? error.message : String(error)})`,
      error,
    );
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

let zstdReady: Promise<void> | undefined;

/**
 * Loads the zstd WASM module used for compression. Called automatically by
 * {@linkcode zstdCompress}; call it at startup to fail fast. A failed load
 * is retried on the next call.
 */
export function initZstdCompression(): Promise<void> {
  zstdReady ??= zstdWasmInit().catch((error: unknown) => {
    zstdReady = undefined;
    throw zstdError("could not load the zstd WASM module", error);
  });
  return zstdReady;
}

/** Compresses `src` into one zstd frame (libzstd via WASM; default level 3). */
export async function zstdCompress(src: Uint8Array, level = 3): Promise<Uint8Array> {
  await initZstdCompression();
  try {
    return zstdWasmCompress(src, level);
  } catch (error) {
    throw zstdError("compression failed", error);
  }
}

// ---------------------------------------------------------------------------
// GZIP
// ---------------------------------------------------------------------------

/**
 * Decompresses GZIP (or zlib) data with `node:zlib`, which counts the output
 * as it inflates and stops once it passes `maxOutput` ({@linkcode OversizeError});
 * malformed data throws {@linkcode CompressionError}.
 */
export function gzipDecompress(
  src: Uint8Array,
  maxOutput: number = MAX_BATCH_BYTES,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    zlibUnzip(src, { maxOutputLength: maxOutput }, (error, result) => {
      if (!error) return resolve(result);
      if ((error as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
        // The gzip trailer's size (modulo 4 GiB) is only what the data claims.
        const claims = src.length >= 18 && src[0] === 0x1f && src[1] === 0x8b
          ? `; its trailer claims ${readU32LE(src, src.length - 4)} bytes modulo 4 GiB`
          : "";
        return reject(
          new OversizeError(
            "gzip",
            maxOutput,
            `it inflates to more than that; inflating stopped there${claims}`,
          ),
        );
      }
      reject(new CompressionError("gzip", `invalid data (${error.message})`, { cause: error }));
    });
  });
}

/** Compresses `src` as GZIP (`node:zlib` defaults, as kafkajs's own GZIP codec). */
export function gzipCompress(src: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    zlibGzip(src, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

// ---------------------------------------------------------------------------
// Over-cap batches: marker records
// ---------------------------------------------------------------------------

/** kafkajs's (and Kafka's) compression type ids. */
const CODEC_TYPES: Readonly<Record<CodecName, number>> = { gzip: 1, snappy: 2, lz4: 3, zstd: 4 };

/**
 * Most records an over-cap batch may say it holds and still be set aside record by record (a
 * marker costs kafkajs a few hundred bytes). A batch claiming more fails its fetch instead.
 */
export const MAX_OVERSIZE_MARKERS = 100_000;

/**
 * Prefix of every marker value: a fixed text, then 8 random bytes drawn when this module loads,
 * so that no record a producer writes can pass for a marker.
 */
const MARKER_MAGIC = (() => {
  const fixed = new TextEncoder().encode("\0kafka-rebuild oversize batch\0");
  const magic = new Uint8Array(fixed.length + 8);
  magic.set(fixed);
  crypto.getRandomValues(magic.subarray(fixed.length));
  return magic;
})();
const MARKER_FIRST = 0;
const MARKER_FOLLOWING = 1;

/** What a marker record says about the batch it replaces ({@linkcode parseOversizeMarker}). */
export type OversizeMarker =
  | {
    /** The batch's first marker: it carries the details and the compressed records. */
    readonly first: true;
    /** `GZIP`, `SNAPPY`, `LZ4` or `ZSTD`. */
    readonly codec: string;
    /** The cap in bytes. */
    readonly cap: number;
    /** What the data declared or what decoding saw. */
    readonly detail: string;
    /** How many records the batch holds, or `null` when that was not known. */
    readonly records: number | null;
    /** Why the batch was set aside: it grows past the cap, or its records are malformed. */
    readonly kind: "oversize" | "malformed";
    /** Human reason, e.g. `it grows past 128 MiB (…); its 3 records were set aside`. */
    readonly reason: string;
    /** The batch's compressed records, as they came from the broker. */
    readonly compressed: Buffer;
  }
  | {
    /** One of the batch's other records; the first marker has reported the batch. */
    readonly first: false;
    readonly reason: string;
  };

function formatCap(bytes: number): string {
  for (const [unit, size] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  }
  return `${bytes} bytes`;
}

/**
 * Reads a marker record's value; `undefined` for any other value. Markers come from the codecs
 * of this module instance only (their prefix holds random bytes drawn when it loaded).
 */
export function parseOversizeMarker(value: Uint8Array | null): OversizeMarker | undefined {
  const n = MARKER_MAGIC.length;
  if (value === null || value.length <= n) return undefined;
  for (let i = 0; i < n; i++) if (value[i] !== MARKER_MAGIC[i]) return undefined;
  if (value[n] === MARKER_FOLLOWING) {
    return { first: false, reason: "another record of a batch set aside at its first record" };
  }
  if (value[n] !== MARKER_FIRST || value.length < n + 5) return undefined;
  const metaLength = readU32BE(value, n + 1);
  const metaEnd = n + 5 + metaLength;
  if (metaEnd > value.length) return undefined;
  const meta = JSON.parse(new TextDecoder().decode(value.subarray(n + 5, metaEnd))) as {
    codec: string;
    cap: number;
    detail: string;
    records: number | null;
    kind: "oversize" | "malformed";
  };
  const { records } = meta;
  const setAside = records === null
    ? "its records were set aside"
    : records === 1
    ? "its record was set aside"
    : `its ${records} records were set aside`;
  return {
    first: true,
    ...meta,
    reason: meta.kind === "malformed"
      ? `its records are malformed (${meta.detail}); ${setAside}`
      : `it grows past ${formatCap(meta.cap)} (${meta.detail}); ${setAside}`,
    compressed: toBuffer(value.subarray(metaEnd)),
  };
}

/**
 * The reason a marker record carries (`ZSTD batch: it grows past 128 MiB (…)`), or `undefined`
 * when `value` is not a marker.
 */
export function oversizeMarkerReason(value: Uint8Array | null): string | undefined {
  const marker = parseOversizeMarker(value);
  if (marker === undefined) return undefined;
  return marker.first ? `${marker.codec} batch: ${marker.reason}` : marker.reason;
}

/** The v2 record batch header (61 bytes) up to and including the record count. */
const BATCH_HEADER_SIZE = 61;

/**
 * The v2 record batch header right before `compressed` in the fetch response, or `undefined` when
 * it is not there. kafkajs 2.2.4 (`protocol/recordBatch/v0/decoder.js`) hands a codec
 * `decoder.readAll()` of the batch: a view of the fetch response buffer that starts just after
 * the header. The header is accepted only when it fits exactly: its length field ends the batch
 * where `compressed` ends, magic 2, this codec's type, a count within the offset range.
 */
function enclosingBatchHeader(
  compressed: Uint8Array,
  type: number,
): { count: number; lastOffsetDelta: number } | undefined {
  const start = compressed.byteOffset - BATCH_HEADER_SIZE;
  if (start < 0) return undefined;
  const view = new DataView(compressed.buffer, start, BATCH_HEADER_SIZE);
  if (view.getInt32(8) !== 49 + compressed.length) return undefined; // batch length
  if (view.getInt8(16) !== 2) return undefined; // magic
  if ((view.getInt16(21) & 0x07) !== type) return undefined; // attributes
  const lastOffsetDelta = view.getInt32(23);
  const count = view.getInt32(57);
  if (count < 1 || lastOffsetDelta < count - 1) return undefined;
  return { count, lastOffsetDelta };
}

function varintLength(n: number): number {
  let z = ((n << 1) ^ (n >> 31)) >>> 0;
  let length = 1;
  while (z >= 0x80) {
    z >>>= 7;
    length++;
  }
  return length;
}

function writeVarint(dst: Uint8Array, pos: number, n: number): number {
  let z = ((n << 1) ^ (n >> 31)) >>> 0;
  while (z >= 0x80) {
    dst[pos++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  dst[pos++] = z;
  return pos;
}

/**
 * Why `data` is not `count` well-formed v2 records, or `undefined` when it is. Checks the framing
 * kafkajs relies on (each record's length, and its fields filling exactly that length: attributes,
 * timestamp and offset deltas, key, value, headers), not the contents.
 */
export function malformedRecords(data: Uint8Array, count: number): string | undefined {
  let pos = 0;
  let end = data.length;
  /** A zigzag varint (or varlong) of at most 10 bytes; `undefined` past `end` or too long. */
  const varint = (): number | undefined => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) return undefined;
      const byte = data[pos++]!;
      value += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
    }
    return undefined;
  };
  /** Skips a length-prefixed field that may be null (-1). */
  const field = (): boolean => {
    const length = varint();
    if (length === undefined || length < -1 || pos + Math.max(length, 0) > end) return false;
    pos += Math.max(length, 0);
    return true;
  };
  for (let i = 0; i < count; i++) {
    end = data.length;
    const length = varint();
    if (length === undefined || length < 0 || pos + length > data.length) {
      return `record ${i + 1} of ${count} claims ${
        length ?? "an unreadable number of"
      } bytes, past the end of the batch's ${data.length}`;
    }
    end = pos + length;
    const bodyEnd = end;
    pos++; // attributes
    if (pos > end || varint() === undefined || varint() === undefined || !field() || !field()) {
      return `record ${i + 1} of ${count} has fields that do not fit in its ${length} bytes`;
    }
    const headers = varint();
    if (headers === undefined || headers < 0) {
      return `record ${i + 1} of ${count} has an unreadable header count`;
    }
    for (let h = 0; h < headers; h++) {
      if (!field() || !field()) {
        return `record ${i + 1} of ${count} has headers that do not fit in its ${length} bytes`;
      }
    }
    if (pos !== bodyEnd) {
      return `record ${i + 1} of ${count} ends ${bodyEnd - pos} bytes before its declared length`;
    }
  }
  return undefined;
}

/** Size of the body of a v2 record with no key, no headers, timestamp delta 0. */
function recordBodyLength(offsetDelta: number, valueLength: number): number {
  return 1 + 1 + varintLength(offsetDelta) + 1 + varintLength(valueLength) + valueLength + 1;
}

function writeRecord(dst: Uint8Array, pos: number, offsetDelta: number, value: Uint8Array): number {
  pos = writeVarint(dst, pos, recordBodyLength(offsetDelta, value.length));
  dst[pos++] = 0; // attributes
  dst[pos++] = 0; // timestamp delta (varlong 0)
  pos = writeVarint(dst, pos, offsetDelta);
  dst[pos++] = 1; // key length -1: no key
  pos = writeVarint(dst, pos, value.length);
  dst.set(value, pos);
  pos += value.length;
  dst[pos++] = 0; // no headers
  return pos;
}

/**
 * What a codec hands kafkajs instead of an over-cap batch's records: marker records in Kafka's
 * record v2 format, which kafkajs decodes like any others.
 *
 * kafkajs reads the record count from the batch header, not from the decompressed data, and then
 * decodes exactly that many records from what the codec returned (fewer would make it throw, and
 * with it the whole fetch, over and over). The codec only gets the compressed bytes, but kafkajs
 * gives them as a view of the fetch response, with the batch header right before them; so the
 * count is read from there ({@linkcode enclosingBatchHeader}) and that many markers are made:
 * the first carries the reason and the compressed records, the others only say they follow it.
 * Their offset deltas are 0, 1, 2, … and the last one is the batch's last offset delta, so that
 * handling them commits past the whole batch. When the header is not found (not a kafkajs fetch),
 * one marker is made, which is right for a batch of one record.
 */
function setAsideMarkers(
  compressed: Uint8Array,
  codec: CodecName,
  cap: number,
  kind: "oversize" | "malformed",
  detail: string,
): Buffer {
  const header = enclosingBatchHeader(compressed, CODEC_TYPES[codec]);
  const count = header?.count ?? 1;
  if (count > MAX_OVERSIZE_MARKERS) {
    const why =
      `${detail}; its header claims ${count} records, more than the ${MAX_OVERSIZE_MARKERS} that can be set aside`;
    throw kind === "oversize"
      ? new OversizeError(codec, cap, why)
      : new CompressionError(codec, `its records are malformed (${why})`);
  }
  const meta = new TextEncoder().encode(JSON.stringify({
    codec: codec.toUpperCase(),
    cap,
    detail,
    records: header?.count ?? null,
    kind,
  }));
  const n = MARKER_MAGIC.length;
  const first = new Uint8Array(n + 5 + meta.length + compressed.length);
  first.set(MARKER_MAGIC);
  first[n] = MARKER_FIRST;
  writeU32BE(first, n + 1, meta.length);
  first.set(meta, n + 5);
  first.set(compressed, n + 5 + meta.length);
  const following = new Uint8Array(n + 1);
  following.set(MARKER_MAGIC);
  following[n] = MARKER_FOLLOWING;
  const offsetDelta = (i: number) => (i === count - 1 ? header?.lastOffsetDelta ?? 0 : i);
  let size = 0;
  for (let i = 0; i < count; i++) {
    const body = recordBodyLength(offsetDelta(i), (i === 0 ? first : following).length);
    size += varintLength(body) + body;
  }
  const out = Buffer.alloc(size);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    pos = writeRecord(out, pos, offsetDelta(i), i === 0 ? first : following);
  }
  return out;
}

// ---------------------------------------------------------------------------
// kafkajs registration
// ---------------------------------------------------------------------------

/** Options of {@linkcode createCodecs}. */
export interface CodecOptions {
  /** Largest decompressed size of one batch (default {@linkcode MAX_BATCH_BYTES}). */
  readonly maxBatchBytes?: number;
}

/** The kafkajs codecs of {@linkcode createCodecs}. */
export interface KafkaCodecs {
  readonly gzip: KafkaCodec;
  readonly lz4: KafkaCodec;
  readonly snappy: KafkaCodec;
  readonly zstd: KafkaCodec;
}

/**
 * Makes kafkajs codecs whose decoders stop at `maxBatchBytes` of output. A batch that would grow
 * past it resolves to marker records ({@linkcode parseOversizeMarker}) instead of its records, so
 * kafkajs hands the consumer something to quarantine and commit rather than failing the fetch;
 * malformed data still rejects with {@linkcode CompressionError}.
 */
export function createCodecs(options: CodecOptions = {}): KafkaCodecs {
  const cap = options.maxBatchBytes ?? MAX_BATCH_BYTES;
  if (!Number.isSafeInteger(cap) || cap < 1) {
    throw new RangeError(`maxBatchBytes must be a positive integer, got ${cap}`);
  }
  const decompressor = (
    codec: CodecName,
    decode: (src: Uint8Array, maxOutput: number) => Uint8Array | Promise<Uint8Array>,
  ) =>
  async (buffer: Buffer): Promise<Buffer> => {
    let records: Uint8Array;
    try {
      records = await decode(buffer, cap);
    } catch (error) {
      if (error instanceof OversizeError) {
        return setAsideMarkers(buffer, codec, cap, "oversize", error.detail);
      }
      throw error;
    }
    // Records kafkajs cannot decode would fail the whole fetch, over and over.
    const header = enclosingBatchHeader(buffer, CODEC_TYPES[codec]);
    const problem = header && malformedRecords(records, header.count);
    if (problem !== undefined) return setAsideMarkers(buffer, codec, cap, "malformed", problem);
    return toBuffer(records);
  };
  return {
    gzip: {
      async compress(encoder) {
        return toBuffer(await gzipCompress(encoder.buffer));
      },
      decompress: decompressor("gzip", gzipDecompress),
    },
    lz4: {
      compress(encoder) {
        return Promise.resolve().then(() => toBuffer(lz4Compress(encoder.buffer)));
      },
      decompress: decompressor("lz4", lz4Decompress),
    },
    snappy: {
      compress(encoder) {
        return Promise.resolve().then(() => toBuffer(snappyCompress(encoder.buffer)));
      },
      decompress: decompressor("snappy", snappyDecompress),
    },
    zstd: {
      async compress(encoder) {
        return toBuffer(await zstdCompress(encoder.buffer));
      },
      decompress: decompressor("zstd", zstdDecompress),
    },
  };
}

const defaultCodecs = createCodecs();

/** kafkajs codec for GZIP (CompressionTypes.GZIP), capped at {@linkcode MAX_BATCH_BYTES}. */
export const gzipCodec: KafkaCodec = defaultCodecs.gzip;
/** kafkajs codec for LZ4 (CompressionTypes.LZ4), capped at {@linkcode MAX_BATCH_BYTES}. */
export const lz4Codec: KafkaCodec = defaultCodecs.lz4;
/** kafkajs codec for Snappy (CompressionTypes.Snappy); writes xerial framing. */
export const snappyCodec: KafkaCodec = defaultCodecs.snappy;
/** kafkajs codec for ZSTD (CompressionTypes.ZSTD), capped at {@linkcode MAX_BATCH_BYTES}. */
export const zstdCodec: KafkaCodec = defaultCodecs.zstd;

/** Shape of kafkajs's (untyped) `src/protocol/message/compression/index.js`. */
interface KafkajsCompressionModule {
  readonly Types: typeof CompressionTypes;
  readonly Codecs: Record<CompressionTypes, () => unknown>;
  lookupCodec(type: number): unknown;
}

/** kafkajs's codec table: the object kafkajs exports as `CompressionCodecs`. */
export const kafkajsCompression = kafkajsCompressionModule as unknown as KafkajsCompressionModule;

const gzipFactory = (): KafkaCodec => gzipCodec;
const lz4Factory = (): KafkaCodec => lz4Codec;
const snappyFactory = (): KafkaCodec => snappyCodec;
const zstdFactory = (): KafkaCodec => zstdCodec;

/**
 * Registers the GZIP, LZ4, Snappy and ZSTD codecs (capped at {@linkcode MAX_BATCH_BYTES}) in
 * kafkajs's global `CompressionCodecs` table. Idempotent; call before consuming/producing.
 */
export function registerCodecs(): void {
  const { Codecs, Types } = kafkajsCompression;
  Codecs[Types.GZIP] = gzipFactory;
  Codecs[Types.LZ4] = lz4Factory;
  Codecs[Types.Snappy] = snappyFactory;
  Codecs[Types.ZSTD] = zstdFactory;
}
