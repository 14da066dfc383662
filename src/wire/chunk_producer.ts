/**
 * The uploader's core: splits files into chunk messages exactly as OpenMSIStream's uploader does
 * (OpenMSIStream 1.8) and produces them to a topic, LZ4-compressed as OpenMSIStream's shipped configs do.
 *
 * - Chunks of `chunkSize` bytes (default 512 KiB), numbered from 1; the last one holds the rest.
 * - The whole-file SHA-512 covers every byte; the mtime is taken before reading.
 * - `subdir_str` is the file's folder relative to the root, with `/` separators (`""` at the top).
 * - A 0-byte file yields no chunk, so nothing is sent for it.
 *
 * @module
 */
import { CompressionTypes, type Message, type Producer } from "kafkajs";
import { Buffer } from "node:buffer";
import { basename, dirname, join, relative, sep } from "node:path";
import { chunkKey, type DataFileChunk, encodeChunk, fileKey } from "./chunk_codec.ts";
import { createSha512, sha512 } from "./sha512.ts";

/** OpenMSIStream's default chunk size. */
export const DEFAULT_CHUNK_SIZE = 524288;

async function readAt(file: Deno.FsFile, position: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

/**
 * Yields the chunks of one file, relative to `root` (the uploader's watched directory, or the
 * file's own folder for a single-file upload).
 *
 * @throws {RangeError} when `chunkSize` is not a power of two.
 * @throws {Error} when the file changes while it is being chunked.
 */
export async function* chunksOfFile(
  path: string,
  root: string = dirname(path),
  chunkSize: number = DEFAULT_CHUNK_SIZE,
): AsyncGenerator<DataFileChunk> {
  if (chunkSize < 1 || (chunkSize & (chunkSize - 1)) !== 0) {
    throw new RangeError(`The chunk size ${chunkSize} is not a power of two`);
  }
  const info = await Deno.stat(path);
  const mtime = info.mtime ? info.mtime.getTime() / 1000 : null;
  const rel = relative(root, dirname(path));
  const subdirStr = rel === "" ? "" : rel.split(sep).join("/");
  const filename = basename(path);
  const file = await Deno.open(path, { read: true });
  try {
    const fileHash = createSha512();
    const plan: { offset: number; length: number; hash: Uint8Array }[] = [];
    for (let offset = 0;; offset += chunkSize) {
      const data = await readAt(file, offset, chunkSize);
      if (data.length === 0) break;
      fileHash.update(data);
      plan.push({ offset, length: data.length, hash: sha512(data) });
      if (data.length < chunkSize) break;
    }
    const digest = fileHash.digest();
    for (const [index, p] of plan.entries()) {
      // Re-read at send time and re-check, as the reference does.
      const data = await readAt(file, p.offset, p.length);
      const hash = sha512(data);
      if (data.length !== p.length || hash.some((b, i) => b !== p.hash[i])) {
        throw new Error(
          `Cannot upload "${path}": it changed while it was being chunked (chunk ${index + 1})`,
        );
      }
      yield {
        filename,
        fileHash: digest,
        chunkHash: hash,
        chunkOffsetWrite: p.offset,
        chunkI: index + 1,
        nTotalChunks: plan.length,
        subdirStr,
        filenameAppend: "",
        data,
        fileMtime: mtime,
      };
    }
  } finally {
    file.close();
  }
}

/** Every regular file under `dir`, recursively, in a stable order. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await listFiles(path));
    else if (entry.isFile) out.push(path);
  }
  return out;
}

/**
 * How chunks are keyed: `file` (every chunk of a file has its file's key, so they share a
 * partition: several downloaders can share the topic) or `chunk` (OpenMSIStream's uploader's
 * per-chunk keys, which spread a file over all partitions).
 */
export type Keying = "file" | "chunk";

/** The Kafka messages (key and encoded value) of one file's chunks, in chunk order. */
export async function* chunkMessagesOfFile(
  path: string,
  root: string = dirname(path),
  chunkSize: number = DEFAULT_CHUNK_SIZE,
  keying: Keying = "file",
): AsyncGenerator<{ key: string; value: Buffer; bytes: number }> {
  for await (const chunk of chunksOfFile(path, root, chunkSize)) {
    const v = encodeChunk(chunk);
    yield {
      key: keying === "file" ? fileKey(chunk) : chunkKey(chunk),
      value: Buffer.from(v.buffer, v.byteOffset, v.byteLength),
      bytes: chunk.data.length,
    };
  }
}

/** Options of {@linkcode produceFiles}. */
export interface ProduceOptions {
  /** Chunk size in bytes (a power of two). */
  chunkSize?: number;
  /** Bytes of chunk data per produce request. */
  batchBytes?: number;
  /** Called after each file's chunks were acknowledged. */
  onFile?: (path: string, chunks: number) => void;
  /** How chunks are keyed (default `file`: a file's chunks share a partition). */
  keying?: Keying;
}

/**
 * Produces the chunks of `files` (each relative to `root`) to `topic` with LZ4 compression.
 * The producer must be connected and LZ4 registered (see `registerCodecs`).
 * Returns the number of chunks sent.
 */
export async function produceFiles(
  producer: Producer,
  topic: string,
  root: string,
  files: readonly string[],
  options: ProduceOptions = {},
): Promise<number> {
  const batchBytes = options.batchBytes ?? 4 * 1024 * 1024;
  let messages: Message[] = [];
  let pending = 0;
  let sent = 0;
  const send = async () => {
    if (messages.length === 0) return;
    await producer.send({ topic, compression: CompressionTypes.LZ4, messages, acks: -1 });
    sent += messages.length;
    messages = [];
    pending = 0;
  };
  for (const path of files) {
    let chunks = 0;
    for await (
      const { key, value, bytes } of chunkMessagesOfFile(
        path,
        root,
        options.chunkSize,
        options.keying,
      )
    ) {
      messages.push({ key, value });
      pending += bytes;
      chunks++;
      if (pending >= batchBytes) await send();
    }
    await send();
    options.onFile?.(path, chunks);
  }
  return sent;
}
