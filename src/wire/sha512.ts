/**
 * SHA-512 for chunk checks and whole-file hashes: from the system's OpenSSL libcrypto where the
 * program may load it, otherwise from Deno's built-ins. Both give the same digests; libcrypto's
 * is the faster by far (on the benchmark machine, 780 MiB/s on one core against 570 MiB/s for
 * `node:crypto` and 440 MiB/s for Web Crypto), and hashing is most of the work of rebuilding
 * big files.
 *
 * libcrypto is used on Linux (x86-64, ARM64) with `--allow-ffi`, or `--allow-ffi=` one of
 * {@linkcode LIBCRYPTO_PATHS}; it must hash a known message correctly before it is trusted.
 * Without it, nothing prompts and everything works the same, more slowly.
 *
 * @example
 * ```ts
 * import { sha512 } from "./sha512.ts";
 * const digest = sha512(new TextEncoder().encode("abc"));
 * console.assert(digest.length === 64);
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { openNativeLibrary } from "../system/native_library.ts";

/** An incremental SHA-512 (what `node:crypto`'s `Hash` offers too). */
export interface Sha512Stream {
  /** Hashes `data` after what came before. */
  update(data: Uint8Array): unknown;
  /** An independent copy of the state so far. */
  copy(): Sha512Stream;
  /** The digest of everything hashed; the stream cannot be used after. */
  digest(): Uint8Array;
}

/** SHA-512 from a native library. */
export interface NativeSha512 {
  /** The digest of `data`, on the calling thread. */
  digest(data: Uint8Array): Uint8Array;
  /** The digest of `data`, computed on another thread; `data` must not change meanwhile. */
  digestOffThread(data: Uint8Array): Promise<Uint8Array>;
  /** A new incremental hash. */
  stream(): Sha512Stream;
}

/** The names libcrypto is loaded by with an unscoped `--allow-ffi`. */
export const LIBCRYPTO_NAMES = ["libcrypto.so.3", "libcrypto.so.1.1"];

/** Where libcrypto is on the Linux systems the binary is built for (`--allow-ffi` may name these). */
export const LIBCRYPTO_PATHS = [
  "/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/usr/lib",
].flatMap((dir) => LIBCRYPTO_NAMES.map((name) => `${dir}/${name}`));

/**
 * SHA-512 from libcrypto (OpenSSL 3 or 1.1), or `undefined` where it cannot be loaded or fails its
 * self-test. Never prompts.
 *
 * It refers to nothing outside itself but {@linkcode openNativeLibrary}: the hashing worker runs
 * their source.
 */
export function nativeSha512(
  names: readonly string[],
  paths: readonly string[],
): NativeSha512 | undefined {
  const lib = openNativeLibrary(names, paths, {
    SHA512: { parameters: ["buffer", "usize", "buffer"], result: "pointer" },
    SHA512_off_thread: {
      name: "SHA512",
      parameters: ["buffer", "usize", "buffer"],
      result: "pointer",
      nonblocking: true,
    },
    SHA512_Init: { parameters: ["buffer"], result: "i32" },
    SHA512_Update: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
    SHA512_Final: { parameters: ["buffer", "buffer"], result: "i32" },
  });
  if (!lib) return undefined;
  const fns = lib.symbols;
  // SHA512_CTX is 216 bytes (no pointers, so a copy of its bytes is a copy of the state).
  const CONTEXT_BYTES = 256;
  const digest = (data: Uint8Array) => {
    const out = new Uint8Array(64);
    fns.SHA512(data, BigInt(data.length), out);
    return out;
  };
  const streamFrom = (context: Uint8Array): Sha512Stream => ({
    update(data: Uint8Array) {
      if (fns.SHA512_Update(context, data, BigInt(data.length)) !== 1) {
        throw new Error("libcrypto's SHA512_Update failed");
      }
    },
    copy: () => streamFrom(context.slice()),
    digest() {
      const out = new Uint8Array(64);
      if (fns.SHA512_Final(out, context) !== 1) throw new Error("libcrypto's SHA512_Final failed");
      return out;
    },
  });
  const native: NativeSha512 = {
    digest,
    async digestOffThread(data) {
      const out = new Uint8Array(64);
      await fns.SHA512_off_thread(data, BigInt(data.length), out);
      return out;
    },
    stream() {
      const context = new Uint8Array(CONTEXT_BYTES);
      if (fns.SHA512_Init(context) !== 1) throw new Error("libcrypto's SHA512_Init failed");
      return streamFrom(context);
    },
  };
  // Trusted only once it hashes FIPS 180-2's "abc" right, in one go and in pieces.
  const expected = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
  const hex = (bytes: Uint8Array) =>
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  try {
    const abc = new Uint8Array([0x61, 0x62, 0x63]);
    const stream = native.stream();
    stream.update(abc.subarray(0, 1));
    const copy = stream.copy();
    stream.update(abc.subarray(1));
    copy.update(abc.subarray(1));
    if ([digest(abc), stream.digest(), copy.digest()].some((d) => hex(d) !== expected)) {
      lib.close();
      return undefined;
    }
  } catch {
    lib.close();
    return undefined;
  }
  return native;
}

let native: NativeSha512 | undefined | null = null;

/** libcrypto's SHA-512, loaded on first use (`undefined` where it cannot be). */
function loaded(): NativeSha512 | undefined {
  if (native === null) native = nativeSha512(LIBCRYPTO_NAMES, LIBCRYPTO_PATHS);
  return native;
}

/** Where SHA-512 comes from in this process: `"libcrypto"` or `"built-in"`. */
export function sha512Source(): "libcrypto" | "built-in" {
  return loaded() ? "libcrypto" : "built-in";
}

/** The SHA-512 digest of `bytes`. */
export function sha512(bytes: Uint8Array): Uint8Array {
  const lib = loaded();
  return lib ? lib.digest(bytes) : new Uint8Array(createHash("sha512").update(bytes).digest());
}

/** Shorter inputs are hashed on the calling thread, where handing them over would cost more. */
const OFF_THREAD_BYTES = 64 * 1024;

/**
 * The SHA-512 digest of `bytes`, computed on another thread when they are long (64 KiB or more):
 * with libcrypto, else with Web Crypto. `bytes` must not change until it resolves.
 */
export async function sha512OffThread(bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes.length < OFF_THREAD_BYTES) return sha512(bytes);
  const lib = loaded();
  if (lib) return await lib.digestOffThread(bytes);
  return new Uint8Array(await crypto.subtle.digest("SHA-512", bytes as Uint8Array<ArrayBuffer>));
}

/** A new incremental SHA-512. */
export function createSha512(): Sha512Stream {
  return loaded()?.stream() ?? createHash("sha512");
}
