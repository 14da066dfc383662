import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createHash } from "node:crypto";
import {
  createSha512,
  LIBCRYPTO_NAMES,
  LIBCRYPTO_PATHS,
  nativeSha512,
  sha512,
  sha512OffThread,
  sha512Source,
} from "./sha512.ts";

const LIBCRYPTO = LIBCRYPTO_PATHS.find((path) => existsSync(path));
/** Where the tests expect libcrypto to be used: Linux on x86-64 or ARM64, with libcrypto installed. */
const HAS_LIBCRYPTO = Deno.build.os === "linux" &&
  ["x86_64", "aarch64"].includes(Deno.build.arch) &&
  LIBCRYPTO !== undefined;

function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

function reference(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha512").update(bytes).digest());
}

// Around SHA-512's 128-byte block and its 112-byte padding limit, and around the off-thread size.
const LENGTHS = [0, 1, 3, 111, 112, 113, 127, 128, 129, 255, 256, 65535, 65536, 65537, 1048579];

Deno.test({
  name: "with --allow-ffi, SHA-512 comes from the system's libcrypto",
  ignore: !HAS_LIBCRYPTO,
  fn: () => assert.equal(sha512Source(), "libcrypto"),
});

Deno.test("sha512, sha512OffThread and createSha512 agree with node:crypto on every length", async () => {
  for (const length of LENGTHS) {
    // A view that does not start at its buffer's start, as chunk data in a fetched batch does.
    const data = randomBytes(length + 7).subarray(5, 5 + length);
    const expected = reference(data);
    assert.deepEqual(sha512(data), expected, `sha512, ${length} bytes`);
    assert.deepEqual(await sha512OffThread(data), expected, `sha512OffThread, ${length} bytes`);
    const stream = createSha512();
    const cut = Math.floor(length / 3);
    stream.update(data.subarray(0, cut));
    stream.update(data.subarray(cut, cut));
    stream.update(data.subarray(cut));
    assert.deepEqual(stream.digest(), expected, `createSha512 in pieces, ${length} bytes`);
  }
});

Deno.test("a copy of an incremental SHA-512 goes on independently", () => {
  const a = randomBytes(300);
  const b = randomBytes(500);
  const stream = createSha512();
  stream.update(a);
  const copy = stream.copy();
  copy.update(b);
  assert.deepEqual(stream.digest(), reference(a));
  assert.deepEqual(copy.digest(), reference(new Uint8Array([...a, ...b])));
});

Deno.test({
  name: "many off-thread digests at once each get their own result",
  fn: async () => {
    const inputs = Array.from({ length: 16 }, () => randomBytes(256 * 1024));
    const digests = await Promise.all(inputs.map((data) => sha512OffThread(data)));
    digests.forEach((digest, i) => assert.deepEqual(digest, reference(inputs[i]!)));
  },
});

Deno.test({
  name: "--allow-ffi naming only libcrypto's path is enough",
  ignore: !HAS_LIBCRYPTO,
  permissions: { ffi: [LIBCRYPTO ?? "/nonexistent"], read: true },
  fn: () => {
    const native = nativeSha512([], LIBCRYPTO_PATHS);
    assert.ok(native, `libcrypto loads from ${LIBCRYPTO}`);
    const data = randomBytes(1000);
    assert.deepEqual(native.digest(data), reference(data));
  },
});

Deno.test({
  name:
    "without FFI permission there is no native SHA-512, nothing prompts, and digests are the same",
  permissions: { read: true, ffi: false },
  fn: async () => {
    assert.equal(nativeSha512(LIBCRYPTO_NAMES, LIBCRYPTO_PATHS), undefined);
    const data = randomBytes(100_000);
    assert.deepEqual(await sha512OffThread(data), reference(data));
  },
});

Deno.test({
  name: "a library without libcrypto's SHA-512 functions is not used",
  ignore: Deno.build.os !== "linux",
  fn: () => assert.equal(nativeSha512(["libc.so.6"], []), undefined),
});
