/**
 * The wire format of OpenMSIStream data-file chunk messages.
 *
 * A chunk message value is a msgpack array of 9 or 10 elements:
 * `[filename, file_hash, chunk_hash, chunk_offset_write, chunk_i, n_total_chunks,
 * subdir_str, filename_append, data, file_mtime?]`. {@linkcode decodeChunk} accepts every
 * input the reference deserializer accepts (text fields as msgpack `str` or `bin`, integer
 * fields as ints or floats, the mtime as int or float) and verifies the chunk's SHA-512.
 * {@linkcode encodeChunk} writes the exact bytes the reference serializer writes, including
 * the mtime as a float64 even when it is integral.
 *
 * @module
 */
import { decode } from "@msgpack/msgpack";
import { sha512, sha512OffThread } from "./sha512.ts";

/** One chunk of a data file, as carried by one Kafka message. */
export interface DataFileChunk {
  /** Last path component of the source file. */
  filename: string;
  /** Raw SHA-512 digest of the whole file (64 bytes from OpenMSIStream). */
  fileHash: Uint8Array;
  /** Raw SHA-512 digest of {@linkcode DataFileChunk.data}. */
  chunkHash: Uint8Array;
  /** Byte offset in the rebuilt file where the data goes. */
  chunkOffsetWrite: number;
  /** 1-based index of this chunk. */
  chunkI: number;
  /** Number of chunks in this generation of the file. */
  nTotalChunks: number;
  /** Directory of the file relative to the uploader's root, `/`-separated, `""` at top level. */
  subdirStr: string;
  /** Suffix inserted before the extension when rebuilding; `""` from the shipped programs. */
  filenameAppend: string;
  /** The chunk's bytes. */
  data: Uint8Array;
  /** Source modification time in epoch seconds, or `null` when unknown (absent, ≤ 0 or NaN). */
  fileMtime: number | null;
}

/** Why a message value could not be decoded as a chunk. A caller quarantines such records. */
export class ChunkDecodeError extends Error {
  override name = "ChunkDecodeError";
}

const FIELD_NAMES = [
  "filename",
  "file_hash",
  "chunk_hash",
  "chunk_offset_write",
  "chunk_i",
  "n_total_chunks",
  "subdir_str",
  "filename_append",
  "data",
  "file_mtime",
] as const;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/** Returns true when two byte arrays hold the same bytes. */
/**
 * A copy of `bytes` in a buffer of its own. (`Buffer.prototype.slice` does not copy: a hash
 * kept with it would keep the whole fetched batch it points into alive.)
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const HEX_BYTES = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX_BYTES[bytes[i]!]!;
  return out;
}

function field(index: number): string {
  return FIELD_NAMES[index] ?? `element ${index}`;
}

function typeName(value: unknown): string {
  if (value === null) return "nil";
  if (value instanceof Uint8Array) return "bytes";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function asText(value: unknown, index: number): string {
  if (!(value instanceof Uint8Array)) {
    throw new ChunkDecodeError(`${field(index)} must be a str or bin, found ${typeName(value)}`);
  }
  try {
    return utf8.decode(value);
  } catch {
    throw new ChunkDecodeError(`${field(index)} is not valid UTF-8`);
  }
}

function asBytes(value: unknown, index: number): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new ChunkDecodeError(`${field(index)} must be bin, found ${typeName(value)}`);
  }
  return value;
}

function asInt(value: unknown, index: number): number {
  if (typeof value === "bigint") {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new ChunkDecodeError(`${field(index)} ${value} is out of range`);
    }
    return Number(value);
  }
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ChunkDecodeError(`${field(index)} must be an integer, found ${typeName(value)}`);
  }
  // Python int() truncates floats toward zero.
  const int = Math.trunc(value);
  if (!Number.isSafeInteger(int)) {
    throw new ChunkDecodeError(`${field(index)} ${value} is out of range`);
  }
  return int;
}

function asMtime(value: unknown): number | null {
  if (typeof value === "bigint") return value > 0n ? Number(value) : null;
  if (typeof value !== "number") {
    throw new ChunkDecodeError(`file_mtime must be a number, found ${typeName(value)}`);
  }
  return value > 0 ? value : null;
}

/**
 * Decodes a chunk message value and verifies its chunk hash.
 *
 * The returned `data`, `fileHash` and `chunkHash` are views into `value`.
 *
 * @throws {ChunkDecodeError} when the value is not a valid chunk.
 */
export function decodeChunk(value: Uint8Array | null | undefined): DataFileChunk {
  const chunk = decodeChunkFields(value);
  if (!bytesEqual(sha512(chunk.data), chunk.chunkHash)) throw hashError(chunk);
  return chunk;
}

function hashError(chunk: DataFileChunk): ChunkDecodeError {
  return new ChunkDecodeError(`chunk ${chunk.chunkI} failed its SHA-512 check`);
}

/**
 * Verifies a chunk's SHA-512 (a chunk from {@linkcode decodeChunkFields}). Long chunks are hashed
 * on another thread (`sha512.ts`).
 *
 * @throws {ChunkDecodeError} when the data does not hash to the chunk hash.
 */
export async function verifyChunkHash(chunk: DataFileChunk): Promise<void> {
  const digest = await sha512OffThread(chunk.data);
  if (!bytesEqual(digest, chunk.chunkHash)) throw hashError(chunk);
}

/**
 * Decodes a chunk message value without verifying its chunk hash: call
 * {@linkcode verifyChunkHash} before trusting its data ({@linkcode decodeChunk} does both).
 *
 * The returned `data`, `fileHash` and `chunkHash` are views into `value`.
 *
 * @throws {ChunkDecodeError} when the value is not a chunk.
 */
export function decodeChunkFields(value: Uint8Array | null | undefined): DataFileChunk {
  if (value === null || value === undefined) {
    throw new ChunkDecodeError("the message has no value (a tombstone), not a chunk");
  }
  let decoded: unknown;
  try {
    decoded = decode(value, { rawStrings: true, useBigInt64: true });
  } catch (error) {
    throw new ChunkDecodeError(
      `the value is not valid msgpack (${error instanceof Error ? error.message : error})`,
    );
  }
  if (!Array.isArray(decoded)) {
    throw new ChunkDecodeError(
      `expected a msgpack array of 9 or 10 elements, found ${typeName(decoded)}`,
    );
  }
  if (decoded.length !== 9 && decoded.length !== 10) {
    throw new ChunkDecodeError(`Expected 9 or 10 properties but found ${decoded.length}`);
  }
  const chunk: DataFileChunk = {
    filename: asText(decoded[0], 0),
    fileHash: asBytes(decoded[1], 1),
    chunkHash: asBytes(decoded[2], 2),
    chunkOffsetWrite: asInt(decoded[3], 3),
    chunkI: asInt(decoded[4], 4),
    nTotalChunks: asInt(decoded[5], 5),
    subdirStr: asText(decoded[6], 6),
    filenameAppend: asText(decoded[7], 7),
    data: asBytes(decoded[8], 8),
    fileMtime: decoded.length === 10 ? asMtime(decoded[9]) : null,
  };
  return chunk;
}

/** Growable byte buffer for the encoder. */
class Writer {
  #buf: Uint8Array;
  #view: DataView;
  length = 0;

  constructor(capacity: number) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  #reserve(n: number): number {
    const at = this.length;
    if (at + n > this.#buf.length) {
      const next = new Uint8Array(Math.max(this.#buf.length * 2, at + n));
      next.set(this.#buf.subarray(0, at));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    this.length += n;
    return at;
  }

  u8(v: number): void {
    this.#buf[this.#reserve(1)] = v;
  }
  u16(v: number): void {
    this.#view.setUint16(this.#reserve(2), v);
  }
  u32(v: number): void {
    this.#view.setUint32(this.#reserve(4), v);
  }
  u64(v: number): void {
    this.#view.setBigUint64(this.#reserve(8), BigInt(v));
  }
  i64(v: number): void {
    this.#view.setBigInt64(this.#reserve(8), BigInt(v));
  }
  f64(v: number): void {
    this.#view.setFloat64(this.#reserve(8), v);
  }
  bytes(b: Uint8Array): void {
    this.#buf.set(b, this.#reserve(b.length));
  }
  result(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

function writeInt(w: Writer, v: number): void {
  if (!Number.isSafeInteger(v)) throw new RangeError(`Cannot encode ${v} as a msgpack integer`);
  if (v >= 0) {
    if (v < 0x80) w.u8(v);
    else if (v <= 0xff) (w.u8(0xcc), w.u8(v));
    else if (v <= 0xffff) (w.u8(0xcd), w.u16(v));
    else if (v <= 0xffffffff) (w.u8(0xce), w.u32(v));
    else (w.u8(0xcf), w.u64(v));
  } else if (v >= -32) w.u8(v & 0xff);
  else if (v >= -0x80) (w.u8(0xd0), w.u8(v & 0xff));
  else if (v >= -0x8000) (w.u8(0xd1), w.u16(v & 0xffff));
  else if (v >= -0x80000000) (w.u8(0xd2), w.u32(v >>> 0));
  else (w.u8(0xd3), w.i64(v));
}

function writeStr(w: Writer, s: string): void {
  const b = utf8Encoder.encode(s);
  const n = b.length;
  if (n < 32) w.u8(0xa0 | n);
  else if (n <= 0xff) (w.u8(0xd9), w.u8(n));
  else if (n <= 0xffff) (w.u8(0xda), w.u16(n));
  else (w.u8(0xdb), w.u32(n));
  w.bytes(b);
}

function writeBin(w: Writer, b: Uint8Array): void {
  const n = b.length;
  if (n <= 0xff) (w.u8(0xc4), w.u8(n));
  else if (n <= 0xffff) (w.u8(0xc5), w.u16(n));
  else (w.u8(0xc6), w.u32(n));
  w.bytes(b);
}

/**
 * Encodes a chunk exactly as OpenMSIStream's serializer does (msgpack with the bin type,
 * smallest integer forms, the mtime as float64). A `null` mtime is written as `0.0`.
 */
export function encodeChunk(chunk: DataFileChunk): Uint8Array {
  const w = new Writer(chunk.data.length + chunk.filename.length * 3 + 256);
  w.u8(0x90 | 10);
  writeStr(w, chunk.filename);
  writeBin(w, chunk.fileHash);
  writeBin(w, chunk.chunkHash);
  writeInt(w, chunk.chunkOffsetWrite);
  writeInt(w, chunk.chunkI);
  writeInt(w, chunk.nTotalChunks);
  writeStr(w, chunk.subdirStr);
  writeStr(w, chunk.filenameAppend);
  writeBin(w, chunk.data);
  w.u8(0xcb);
  w.f64(chunk.fileMtime ?? 0);
  return w.result();
}

/**
 * A key shared by every chunk of a file, `<subdir parts joined by _>_<filename>`: with it, Kafka's
 * default partitioner puts all of a file's chunks in one partition (a file-affine topic), which
 * lets several downloader processes share a topic. OpenMSIStream's downloader ignores keys.
 */
export function fileKey(chunk: Pick<DataFileChunk, "subdirStr" | "filename">): string {
  return `${chunk.subdirStr.split("/").join("_")}_${chunk.filename}`;
}

/** True when `key` is the per-chunk key OpenMSIStream's uploader gives `chunk` ({@linkcode chunkKey}). */
export function isPerChunkKey(
  key: string,
  chunk: Pick<DataFileChunk, "subdirStr" | "filename" | "chunkI" | "nTotalChunks">,
): boolean {
  return key === chunkKey(chunk);
}

/**
 * The message key OpenMSIStream gives a chunk: `<subdir parts joined by _>_<filename>_chunk_<i>_of_<n>`.
 * Top-level files get a leading underscore. Keys only steer partitioning; they are not unique.
 */
export function chunkKey(
  chunk: Pick<DataFileChunk, "subdirStr" | "filename" | "chunkI" | "nTotalChunks">,
): string {
  const prepend = `${chunk.subdirStr.split("/").join("_")}_${chunk.filename}_chunk`;
  return `${prepend}_${chunk.chunkI}_of_${chunk.nTotalChunks}`;
}
