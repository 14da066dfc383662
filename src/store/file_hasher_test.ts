import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type FileHasher, HashPump, InlineFileHasher, WorkerFileHasher } from "./file_hasher.ts";
import type { Sha512Stream } from "../wire/sha512.ts";
import { CAN_SEE_PAGE_CACHE, residentPages } from "../../tests/_resident.ts";

function sha512(bytes: Uint8Array): string {
  return createHash("sha512").update(bytes).digest("hex");
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

const kinds: [string, () => FileHasher][] = [
  ["inline", () => new InlineFileHasher()],
  ["worker", () => new WorkerFileHasher()],
];

async function withHasher(
  make: () => FileHasher,
  body: (hasher: FileHasher, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "file_hasher_test_" });
  const hasher = make();
  try {
    await body(hasher, dir);
  } finally {
    hasher.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A test that looks at the page cache (Linux only; the hashers drop pages with --allow-ffi). */
function cacheTest(
  name: string,
  make: () => FileHasher,
  body: (hasher: FileHasher, dir: string) => Promise<void>,
): void {
  Deno.test({ name, ignore: !CAN_SEE_PAGE_CACHE, fn: () => withHasher(make, body) });
}

for (const [kind, make] of kinds) {
  Deno.test(`${kind}: a file hashed as it grows has the SHA-512 of its bytes`, async () => {
    await withHasher(make, async (hasher, dir) => {
      const path = join(dir, "a.data");
      const content = randomBytes(3 * 1024 * 1024 + 17);
      const file = await Deno.open(path, { write: true, create: true });
      try {
        // Written in pieces, each announced once it is on disk.
        for (let at = 0; at < content.length; at += 700_000) {
          const end = Math.min(content.length, at + 700_000);
          await file.write(content.subarray(at, end));
          hasher.advance("a", path, end);
        }
      } finally {
        file.close();
      }
      assert.equal(hex(await hasher.digest("a", path, content.length)), sha512(content));
    });
  });

  cacheTest(
    `${kind}: bytes hashed and on disk leave the page cache (Linux, --allow-ffi)`,
    make,
    async (hasher, dir) => {
      const path = join(dir, "cached.data");
      const content = randomBytes(6 * 1024 * 1024);
      const file = await Deno.open(path, { write: true, create: true });
      try {
        await file.write(content);
        await file.syncData();
      } finally {
        file.close();
      }
      assert.equal(residentPages(path, content.length), 1536, "cached after writing");
      hasher.advance("cached", path, 4 * 1024 * 1024);
      assert.equal(hex(await hasher.digest("cached", path, content.length)), sha512(content));
      assert.equal(residentPages(path, content.length), 0, "dropped once hashed");
    },
  );

  cacheTest(
    `${kind}: bytes hashed before they were on disk leave the page cache at the digest`,
    make,
    async (hasher, dir) => {
      const path = join(dir, "late.data");
      const content = randomBytes(4 * 1024 * 1024);
      const file = await Deno.open(path, { write: true, create: true });
      try {
        await file.write(content);
        hasher.advance("late", path, content.length);
        // Hashed meanwhile (a few milliseconds), while the bytes are not on disk: they stay.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await file.syncData();
      } finally {
        file.close();
      }
      assert.equal(hex(await hasher.digest("late", path, content.length)), sha512(content));
      assert.equal(residentPages(path, content.length), 0, "dropped at the digest");
    },
  );

  Deno.test(`${kind}: a file it never saw is hashed from the disk, and only up to the length asked`, async () => {
    await withHasher(make, async (hasher, dir) => {
      const path = join(dir, "b.data");
      const content = randomBytes(2 * 1024 * 1024);
      await Deno.writeFile(path, content);
      assert.equal(hex(await hasher.digest("b", path, content.length)), sha512(content));
      // Forgotten after its digest: a second one starts over, here on a prefix.
      assert.equal(hex(await hasher.digest("b", path, 1000)), sha512(content.subarray(0, 1000)));
    });
  });

  Deno.test(`${kind}: a partial file shorter than announced fails its digest with its path`, async () => {
    await withHasher(make, async (hasher, dir) => {
      const path = join(dir, "c.data");
      await Deno.writeFile(path, new Uint8Array(100));
      await assert.rejects(
        hasher.digest("c", path, 200),
        (error: Error) => error.message.includes(path) && error.message.includes("shorter"),
      );
      // The failure was this file's only: another one still hashes.
      const other = join(dir, "d.data");
      await Deno.writeFile(other, new Uint8Array(10));
      assert.equal(hex(await hasher.digest("d", other, 10)), sha512(new Uint8Array(10)));
    });
  });

  Deno.test(`${kind}: a forgotten file is no longer read, and its file can then be removed`, async () => {
    await withHasher(make, async (hasher, dir) => {
      const path = join(dir, "e.data");
      await Deno.writeFile(path, randomBytes(8 * 1024 * 1024));
      hasher.advance("e", path, 8 * 1024 * 1024);
      await hasher.forget("e");
      await Deno.remove(path);
      // Forgetting what it does not know is a no-op.
      await hasher.forget("e");
      await hasher.forget("never");
    });
  });

  Deno.test(`${kind}: closing rejects the digests still pending`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "file_hasher_test_" });
    const hasher = make();
    try {
      const path = join(dir, "f.data");
      await Deno.writeFile(path, randomBytes(32 * 1024 * 1024));
      const digest = hasher.digest("f", path, 32 * 1024 * 1024);
      hasher.close();
      await assert.rejects(digest, /closed/);
    } finally {
      hasher.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("HashPump: a digest asked for while its file's last bytes are being hashed still lets all their pages go", async () => {
  // A digest can arrive between the end of a file's reading and the answer to the waiters (the
  // hashing worker's messages come in between promise steps). Whenever it comes, its answer must
  // follow the release of every hashed byte. The last `update` of the file starts the digest after
  // `ticks` promise steps, so that across the values one lands in each such gap.
  const dir = await Deno.makeTempDir({ prefix: "hash_pump_test_" });
  try {
    const length = 3 * 1024 * 1024 + 5;
    const path = join(dir, "file.data");
    await Deno.writeFile(path, new Uint8Array(length).fill(7));
    for (let ticks = 0; ticks <= 12; ticks++) {
      const dropped: number[] = [];
      let asked: Promise<number> | undefined;
      let hashed = 0;
      const newHash = (): Sha512Stream => {
        const inner = createHash("sha512");
        const stream: Sha512Stream = {
          update(data) {
            inner.update(data);
            hashed += data.length;
            if (hashed === length && !asked) {
              let step: Promise<void> = Promise.resolve();
              for (let i = 0; i < ticks; i++) step = step.then(() => {});
              asked = step.then(() =>
                pump.digest("f", path, length).then(() => Math.max(0, ...dropped))
              );
            }
          },
          copy: () => ({ ...stream, digest: () => new Uint8Array(inner.copy().digest()) }),
          digest: () => new Uint8Array(inner.digest()),
        };
        return stream;
      };
      const pump = new HashPump(newHash, (_path, upTo) => dropped.push(upTo));
      pump.advance("f", path, length);
      while (!asked) await new Promise((resolve) => setTimeout(resolve, 1));
      assert.equal(await asked, length, `a digest asked ${ticks} steps after the last bytes`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
