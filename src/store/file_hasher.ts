/**
 * The whole-file SHA-512 of files being rebuilt, fed in order from their partial files.
 *
 * The assembler tells the hasher how far a file is contiguous on disk ({@linkcode FileHasher.advance});
 * the hasher reads those bytes back (from the page cache: they were just written) and hashes them,
 * so each byte is hashed once more after its chunk check and nothing is re-read at completion.
 * Hashed bytes that are on disk then leave the page cache (`page_cache.ts`, where it can).
 * {@linkcode WorkerFileHasher} does this on a thread of its own, so the hashing of big files runs
 * beside the consumers instead of between their records; {@linkcode InlineFileHasher} does the same
 * on the calling thread.
 *
 * A hasher that loses its state (a worker that died) loses nothing: a digest of a file it does
 * not know hashes the whole range from the disk.
 *
 * @module
 */

import { type DropCached, pageCacheDropper } from "./page_cache.ts";
import { LIBC_PATHS, openNativeLibrary } from "../system/native_library.ts";
import {
  createSha512,
  LIBCRYPTO_NAMES,
  LIBCRYPTO_PATHS,
  nativeSha512,
  type Sha512Stream,
} from "../wire/sha512.ts";

/** Hashes partial files in order as they become contiguous. */
export interface FileHasher {
  /** Bytes `[0, upTo)` of `path` are written and will not change: hash what is new (in the background). */
  advance(id: string, path: string, upTo: number): void;
  /** SHA-512 of bytes `[0, length)` of `path`; the hasher then forgets `id`. */
  digest(id: string, path: string, length: number): Promise<Uint8Array>;
  /** Forgets `id` and closes what it had open on its file (before the file is removed or moved). */
  forget(id: string): Promise<void>;
  /** Stops the hasher; pending digests are rejected. */
  close(): void;
}

interface Waiter {
  length: number;
  resolve: (digest: Uint8Array) => void;
  reject: (error: Error) => void;
}

interface FileState {
  path: string;
  hash: Sha512Stream;
  /** Bytes hashed. */
  hashed: number;
  /** Bytes known to be on disk. */
  target: number;
  /** Bytes hashed when the page cache was last asked to let them go. */
  released: number;
  waiters: Waiter[];
  forgetters: (() => void)[];
  dropped: boolean;
}

/**
 * The hashing itself: one file at a time, one read buffer of 1 MiB. Used by both hashers. Once a
 * file's bytes are hashed they are not needed in the page cache any more: `dropCached` (if any)
 * lets the kernel reuse the pages of those already on disk.
 *
 * It refers to nothing outside itself (the hash comes from `newHash`): the worker runs its source.
 */
export class HashPump {
  readonly #newHash: () => Sha512Stream;
  readonly #dropCached: DropCached | undefined;
  readonly #files = new Map<string, FileState>();
  readonly #queue: string[] = [];
  readonly #buffer = new Uint8Array(1024 * 1024);
  #running = false;

  constructor(newHash: () => Sha512Stream, dropCached?: DropCached) {
    this.#newHash = newHash;
    this.#dropCached = dropCached;
  }

  advance(id: string, path: string, upTo: number): void {
    let state = this.#files.get(id);
    if (!state) {
      state = {
        path,
        hash: this.#newHash(),
        hashed: 0,
        target: 0,
        released: 0,
        waiters: [],
        forgetters: [],
        dropped: false,
      };
      this.#files.set(id, state);
    }
    if (upTo <= state.target) return;
    state.target = upTo;
    this.#queue.push(id);
    this.#run();
  }

  digest(id: string, path: string, length: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.advance(id, path, length);
      this.#files.get(id)!.waiters.push({ length, resolve, reject });
      this.#queue.push(id);
      this.#run();
    });
  }

  forget(id: string): Promise<void> {
    const state = this.#files.get(id);
    if (!state) return Promise.resolve();
    if (!this.#running || this.#queue[0] !== id) {
      this.#drop(id, state, new Error(`The hash of ${state.path} was abandoned`));
      return Promise.resolve();
    }
    // Being read right now: dropped once that read is over.
    return new Promise((resolve) => state.forgetters.push(resolve));
  }

  /** Rejects everything pending. */
  stop(reason: Error): void {
    for (const [id, state] of this.#files) this.#drop(id, state, reason);
    this.#queue.length = 0;
  }

  #drop(id: string, state: FileState, reason: Error): void {
    state.dropped = true;
    if (this.#files.get(id) === state) this.#files.delete(id);
    for (const waiter of state.waiters.splice(0)) waiter.reject(reason);
    for (const done of state.forgetters.splice(0)) done();
  }

  #run(): void {
    if (this.#running) return;
    this.#running = true;
    (async () => {
      while (this.#queue.length > 0) {
        const id = this.#queue[0]!;
        const state = this.#files.get(id);
        if (state) {
          try {
            await this.#catchUp(state);
            this.#settle(id, state);
          } catch (error) {
            this.#drop(id, state, error instanceof Error ? error : new Error(String(error)));
          }
          if (state.forgetters.length > 0) {
            this.#drop(id, state, new Error(`The hash of ${state.path} was abandoned`));
          }
        }
        this.#queue.shift();
      }
    })().finally(() => {
      this.#running = false;
      if (this.#queue.length > 0) this.#run();
    });
  }

  async #catchUp(state: FileState): Promise<void> {
    if (state.hashed < state.target) {
      const file = await Deno.open(state.path, { read: true });
      try {
        while (state.hashed < state.target && !state.dropped && state.forgetters.length === 0) {
          this.#release(state, false);
          const want = Math.min(this.#buffer.length, state.target - state.hashed);
          await file.seek(state.hashed, Deno.SeekMode.Start);
          const n = (await file.read(this.#buffer.subarray(0, want))) ?? 0;
          if (n === 0) {
            throw new Error(
              `${state.path} is shorter than its journal says (${state.hashed} bytes, expected ${state.target})`,
            );
          }
          state.hash.update(this.#buffer.subarray(0, n));
          state.hashed += n;
        }
      } finally {
        file.close();
      }
    }
    this.#release(state, false);
  }

  /** Lets the pages of what was hashed go: every 8 MiB hashed, or now when `always`. */
  #release(state: FileState, always: boolean): void {
    if (!this.#dropCached) return;
    if (!always && state.hashed - state.released < 8 * 1024 * 1024) return;
    this.#dropCached(state.path, state.hashed);
    state.released = state.hashed;
  }

  #settle(id: string, state: FileState): void {
    const ready = state.waiters.filter((w) => w.length <= state.hashed);
    if (ready.length === 0) return;
    // A digest comes after the file's last sync: everything hashed can go, also what was hashed
    // while it was not yet on disk. Let go here, as the digests are answered: a digest asked for
    // after the reading ended (a worker's message comes between promise steps) gets it too.
    this.#release(state, true);
    state.waiters = state.waiters.filter((w) => w.length > state.hashed);
    for (const waiter of ready) {
      if (waiter.length === state.hashed) {
        waiter.resolve(new Uint8Array(state.hash.copy().digest()));
      } else {
        waiter.reject(
          new Error(
            `Cannot hash the first ${waiter.length} bytes of ${state.path}: ${state.hashed} were already hashed`,
          ),
        );
      }
    }
    if (state.waiters.length === 0) this.#drop(id, state, new Error("unreachable"));
  }
}

/** Hashes on the calling thread (between its other work). */
export class InlineFileHasher implements FileHasher {
  readonly #pump = new HashPump(createSha512, pageCacheDropper(LIBC_PATHS));

  advance(id: string, path: string, upTo: number): void {
    this.#pump.advance(id, path, upTo);
  }

  digest(id: string, path: string, length: number): Promise<Uint8Array> {
    return this.#pump.digest(id, path, length);
  }

  forget(id: string): Promise<void> {
    return this.#pump.forget(id);
  }

  close(): void {
    this.#pump.stop(new Error("The file hasher was closed"));
  }
}

/** A message to the hashing worker. */
export type HasherRequest =
  | { op: "advance"; id: string; path: string; upTo: number }
  | { op: "digest"; id: string; path: string; length: number; seq: number }
  | { op: "forget"; id: string; seq: number };

/** The worker's answer to a `digest` or `forget`. */
export type HasherReply =
  | { seq: number; digest?: Uint8Array }
  | { seq: number; error: string };

/** The worker's message loop (its source runs in the worker, with `HashPump`'s). */
function workerMain(
  Pump: typeof HashPump,
  newHash: () => Sha512Stream,
  dropCached: DropCached | undefined,
): void {
  const pump = new Pump(newHash, dropCached);
  const scope = self as unknown as {
    onmessage: ((event: MessageEvent<HasherRequest>) => void) | null;
    postMessage(message: HasherReply): void;
  };
  const fail = (seq: number, error: unknown) =>
    scope.postMessage({ seq, error: error instanceof Error ? error.message : String(error) });
  scope.onmessage = (event) => {
    const request = event.data;
    if (request.op === "advance") {
      pump.advance(request.id, request.path, request.upTo);
    } else if (request.op === "digest") {
      pump.digest(request.id, request.path, request.length).then(
        (digest) => scope.postMessage({ seq: request.seq, digest }),
        (error) => fail(request.seq, error),
      );
    } else {
      pump.forget(request.id).then(
        () => scope.postMessage({ seq: request.seq }),
        (error) => fail(request.seq, error),
      );
    }
  };
}

/**
 * The worker's module, built from the source of `HashPump`, `openNativeLibrary`, `pageCacheDropper`,
 * `nativeSha512` and `workerMain`: it is loaded from a blob, so it needs no read permission on the
 * program's own files and is inside a compiled binary.
 */
function workerUrl(): string {
  const source = `import { createHash } from "node:crypto";
${HashPump.toString()}
${openNativeLibrary.toString()}
${pageCacheDropper.toString()}
${nativeSha512.toString()}
const native = nativeSha512(${JSON.stringify(LIBCRYPTO_NAMES)}, ${JSON.stringify(LIBCRYPTO_PATHS)});
(${workerMain.toString()})(
  HashPump,
  native ? () => native.stream() : () => createHash("sha512"),
  pageCacheDropper(${JSON.stringify(LIBC_PATHS)}),
);
`;
  return URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
}

interface Pending {
  resolve: (digest: Uint8Array | undefined) => void;
  reject: (error: Error) => void;
}

/**
 * Hashes on a worker thread of its own, started on first use. A worker that fails is replaced;
 * the digests it owed are rejected (the caller retries them, and they are then hashed from the disk).
 */
export class WorkerFileHasher implements FileHasher {
  #worker: Worker | undefined;
  #url: string | undefined;
  #seq = 0;
  readonly #pending = new Map<number, Pending>();
  /** Ids the current worker holds state for. */
  readonly #known = new Set<string>();

  advance(id: string, path: string, upTo: number): void {
    this.#known.add(id);
    this.#post({ op: "advance", id, path, upTo });
  }

  async digest(id: string, path: string, length: number): Promise<Uint8Array> {
    this.#known.delete(id);
    const digest = await this.#ask((seq) => ({ op: "digest", id, path, length, seq }));
    return digest!;
  }

  async forget(id: string): Promise<void> {
    if (!this.#known.delete(id)) return;
    await this.#ask((seq) => ({ op: "forget", id, seq }));
  }

  close(): void {
    this.#fail(new Error("The file hasher was closed"));
  }

  #ask(request: (seq: number) => HasherRequest): Promise<Uint8Array | undefined> {
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject });
      this.#post(request(seq));
    });
  }

  #post(request: HasherRequest): void {
    this.#start().postMessage(request);
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    this.#url = workerUrl();
    const worker = new Worker(this.#url, { type: "module" });
    worker.onmessage = (event: MessageEvent<HasherReply>) => {
      const reply = event.data;
      const pending = this.#pending.get(reply.seq);
      if (!pending) return;
      this.#pending.delete(reply.seq);
      if ("error" in reply) pending.reject(new Error(reply.error));
      else pending.resolve(reply.digest);
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#fail(new Error(`The hashing thread failed: ${event.message}`));
    };
    this.#worker = worker;
    return worker;
  }

  #fail(reason: Error): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    if (this.#url) URL.revokeObjectURL(this.#url);
    this.#url = undefined;
    this.#known.clear();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(reason);
  }
}
