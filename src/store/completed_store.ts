/**
 * The completed-files store: which generation of each path was published, so that chunks of it
 * delivered again (a restart, a rebalance, a fresh group re-reading the topic) are recognised as
 * duplicates, and older uploads as stale, even after a restart.
 *
 * It is an append-only log, `completed.log` in the state folder, one JSON object per line; a
 * line cut short by a crash is ignored. Records are appended and synced by
 * {@linkcode CompletedStore.flush}, which the caller runs before committing offsets. The store
 * keeps the most recent {@linkcode CompletedStore.keep} paths; when the log holds twice as many
 * lines it is rewritten atomically.
 *
 * @module
 */
import { copyBytes, toHex } from "../wire/chunk_codec.ts";
import type { KnownGeneration } from "./generation.ts";
import { appendLines } from "./journal.ts";
import { writeStateFile } from "./state_file.ts";

/** A published generation. */
export interface CompletedRecord extends KnownGeneration {
  /** The path as published, relative to the output directory. */
  path: string;
  /** The path's identity on the output file system (see `RelativeTarget.identity`). */
  identity: string;
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The record's fields alone (not the object it was taken from), with a hash of its own. */
function ownRecord(r: CompletedRecord): CompletedRecord {
  return {
    fileHash: copyBytes(r.fileHash),
    nTotalChunks: r.nTotalChunks,
    mtime: r.mtime,
    firstTime: r.firstTime,
    lastTime: r.lastTime,
    path: r.path,
    identity: r.identity,
  };
}

function line(r: CompletedRecord): string {
  return JSON.stringify({
    hash: toHex(r.fileHash),
    chunks: r.nTotalChunks,
    mtime: r.mtime,
    first: r.firstTime,
    last: r.lastTime,
    path: r.path,
    identity: r.identity,
  }) + "\n";
}

const NUMBER_OR_NULL = (v: unknown): v is number | null => v === null || typeof v === "number";

/** Parses one line (this format, or the earlier `hash chunks mtime "path"`), or `undefined`. */
function parse(text: string): CompletedRecord | undefined {
  if (text.startsWith("{")) {
    try {
      const o = JSON.parse(text) as Record<string, unknown>;
      if (
        typeof o.hash === "string" && /^[0-9a-f]{128}$/.test(o.hash) &&
        typeof o.chunks === "number" && NUMBER_OR_NULL(o.mtime) && NUMBER_OR_NULL(o.first) &&
        NUMBER_OR_NULL(o.last) && typeof o.path === "string" && typeof o.identity === "string"
      ) {
        return {
          fileHash: fromHex(o.hash),
          nTotalChunks: o.chunks,
          mtime: o.mtime,
          firstTime: o.first,
          lastTime: o.last,
          path: o.path,
          identity: o.identity,
        };
      }
    } catch {
      // A torn line.
    }
    return undefined;
  }
  const m = /^([0-9a-f]{128}) (\d+) (\S+) (".*")$/.exec(text);
  if (!m) return undefined;
  try {
    const path = JSON.parse(m[4] ?? '""') as string;
    return {
      fileHash: fromHex(m[1] ?? ""),
      nTotalChunks: Number(m[2]),
      mtime: m[3] === "-" ? null : Number(m[3]),
      firstTime: null,
      lastTime: null,
      path,
      identity: path,
    };
  } catch {
    return undefined;
  }
}

/** The published generations, by path identity. */
export class CompletedStore {
  readonly path: string;
  readonly keep: number;
  #records = new Map<string, CompletedRecord>();
  #pending: CompletedRecord[] = [];
  #lines = 0;
  /** Bytes of the log known to be whole lines. */
  #bytes = 0;

  /** A store kept in the file `path`, remembering the `keep` most recent paths. */
  constructor(path: string, keep = 20_000) {
    this.path = path;
    this.keep = keep;
  }

  /** Reads the log an earlier run left (a missing log is empty). */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    const lines = text.split("\n");
    for (const l of lines) {
      const record = parse(l);
      if (record) this.#set(record);
    }
    this.#lines = lines.length;
    this.#bytes = new TextEncoder().encode(text.slice(0, text.lastIndexOf("\n") + 1)).length;
    if (this.#lines > this.keep * 2) await this.#rewrite();
  }

  /** The published generation of the path with this identity. */
  get(identity: string): CompletedRecord | undefined {
    return this.#records.get(identity);
  }

  /** Records a publication (durable after the next {@linkcode CompletedStore.flush}). */
  remember(record: CompletedRecord): void {
    const r = ownRecord(record);
    this.#set(r);
    this.#pending.push(r);
  }

  /** Changes a record in memory only (what it adds is not worth a line of the log). */
  update(record: CompletedRecord): void {
    this.#set(ownRecord(record));
  }

  #set(record: CompletedRecord): void {
    this.#records.delete(record.identity);
    this.#records.set(record.identity, record);
    for (const key of this.#records.keys()) {
      if (this.#records.size <= this.keep) break;
      this.#records.delete(key);
    }
  }

  /** Appends and syncs the records remembered since the last flush. */
  async flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const records = [...this.#pending];
    this.#bytes = await appendLines(this.path, this.#bytes, records.map(line).join(""));
    this.#pending = this.#pending.slice(records.length);
    this.#lines += records.length;
    if (this.#lines > this.keep * 2) await this.#rewrite();
  }

  async #rewrite(): Promise<void> {
    const bytes = new TextEncoder().encode([...this.#records.values()].map(line).join(""));
    await writeStateFile(this.path, bytes);
    this.#lines = this.#records.size;
    this.#bytes = bytes.length;
  }
}
