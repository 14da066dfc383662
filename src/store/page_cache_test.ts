import assert from "node:assert/strict";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { pageCacheDropper } from "./page_cache.ts";
import { LIBC_PATHS } from "../system/native_library.ts";
import { CAN_SEE_PAGE_CACHE, residentPages } from "../../tests/_resident.ts";

const MIB = 1024 * 1024;

function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

/** Writes `bytes` to `path`, synced to disk when `sync`, and reads them back (so they are cached). */
async function writeCached(path: string, bytes: Uint8Array, sync: boolean): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await file.write(bytes);
    if (sync) await file.syncData();
  } finally {
    file.close();
  }
  assert.deepEqual(await Deno.readFile(path), bytes);
}

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "page_cache_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A test that looks at the page cache (Linux only), in a temporary folder. */
function cacheTest(name: string, body: (dir: string) => Promise<void>): void {
  Deno.test({ name, ignore: !CAN_SEE_PAGE_CACHE, fn: () => inTempDir(body) });
}

cacheTest("bytes on disk leave the page cache, up to the length asked for", async (dir) => {
  const drop = pageCacheDropper(LIBC_PATHS);
  assert.ok(drop, "a dropper on Linux with --allow-ffi");
  const path = join(dir, "a.bin");
  await writeCached(path, randomBytes(8 * MIB), true);
  assert.equal(residentPages(path, 8 * MIB), 2048, "all 8 MiB cached before");
  drop(path, 6 * MIB);
  assert.equal(residentPages(path, 6 * MIB), 0, "the first 6 MiB are dropped");
  assert.equal(residentPages(path, 8 * MIB), 512, "the last 2 MiB stay");
});

cacheTest("bytes not yet on disk are not lost, and leave the cache once synced", async (dir) => {
  const drop = pageCacheDropper(LIBC_PATHS)!;
  const path = join(dir, "dirty.bin");
  const bytes = randomBytes(4 * MIB);
  await writeCached(path, bytes, false);
  drop(path, 4 * MIB);
  assert.deepEqual(await Deno.readFile(path), bytes);
  // Once synced, the same call drops them.
  const file = await Deno.open(path, { write: true });
  await file.syncData();
  file.close();
  drop(path, 4 * MIB);
  assert.equal(residentPages(path, 4 * MIB), 0);
  assert.deepEqual(await Deno.readFile(path), bytes, "read back from the disk");
});

cacheTest("a dropper ignores a path that is gone and an empty range", async (dir) => {
  const drop = pageCacheDropper(LIBC_PATHS)!;
  drop(join(dir, "missing.bin"), MIB);
  drop(join(dir, "missing.bin"), 0);
  await Promise.resolve();
});

Deno.test({
  name: "without FFI permission there is no dropper, and nothing prompts",
  permissions: { read: true, write: true, ffi: false },
  fn: () => {
    assert.equal(pageCacheDropper(LIBC_PATHS), undefined);
  },
});

const libc = LIBC_PATHS.find((path) => existsSync(path));

Deno.test({
  name: "FFI permission for libc's path alone is enough",
  ignore: !CAN_SEE_PAGE_CACHE || libc === undefined,
  permissions: { read: true, write: true, ffi: [libc ?? "/"] },
  fn: () =>
    inTempDir(async (dir) => {
      assert.equal(Deno.permissions.querySync({ name: "ffi" }).state, "prompt");
      const drop = pageCacheDropper(LIBC_PATHS);
      assert.ok(drop, `a dropper with --allow-ffi=${libc}`);
      const path = join(dir, "b.bin");
      await writeCached(path, randomBytes(MIB), true);
      drop(path, MIB);
      assert.equal(residentPages(path, MIB), 0);
    }),
});
