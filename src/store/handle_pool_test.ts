import assert from "node:assert/strict";
import { join } from "node:path";
import { HandlePool } from "./handle_pool.ts";

Deno.test("positional writes and reads land at their offsets", async () => {
  const dir = await Deno.makeTempDir({ prefix: "handle_pool_test_" });
  const pool = new HandlePool(4);
  try {
    const path = join(dir, "f");
    await pool.use("f", path, "w+", (h) => h.writeAt(new Uint8Array([5, 6]), 10));
    await pool.use("f", path, "r+", (h) => h.writeAt(new Uint8Array([1, 2, 3]), 0));
    const bytes = await Deno.readFile(path);
    assert.deepEqual([...bytes], [1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 5, 6]);
    const buffer = new Uint8Array(2);
    assert.equal(await pool.use("f", path, "r+", (h) => h.readAt(buffer, 10)), 2);
    assert.deepEqual([...buffer], [5, 6]);
    assert.equal(await pool.use("f", path, "r+", (h) => h.readAt(buffer, 12)), 0);
  } finally {
    pool.closeAll();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a write where the last one ended skips the seek; after a read or elsewhere it seeks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "handle_pool_test_" });
  const pool = new HandlePool(4);
  try {
    const path = join(dir, "f");
    const write = (bytes: number[], at: number) =>
      pool.use("f", path, "w+", (h) => h.writeAt(new Uint8Array(bytes), at));
    await write([1, 2, 3], 0);
    await write([4], 3);
    await pool.use("f", path, "r+", (h) => h.readAt(new Uint8Array(2), 0));
    await write([9], 4); // the read left the position at 2
    await write([8], 3);
    await write([7], 0);
    assert.deepEqual([...await Deno.readFile(path)], [7, 2, 3, 8, 9]);
  } finally {
    pool.closeAll();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("past its limit the pool closes the least recently used idle handle, never a pinned one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "handle_pool_test_" });
  const pool = new HandlePool(2);
  try {
    const open = (key: string) =>
      pool.use(key, join(dir, key), "w+", (h) => h.writeAt(new Uint8Array([1]), 0));
    await open("a");
    pool.pin("a", true); // written, not yet synced: its descriptor must stay
    await open("b");
    await open("c");
    assert.equal(pool.size, 3, "two idle handles besides the pinned one");
    await open("d");
    assert.equal(pool.size, 3);
    // "b" went (least recently used of the idle ones); "a", "c" and "d" are still open: using
    // them opens nothing (a missing path would fail), while "b" must be opened again.
    const missing = join(dir, "missing");
    await pool.use("a", missing, "r+", () => Promise.resolve());
    await pool.use("c", missing, "r+", () => Promise.resolve());
    await pool.use("d", missing, "r+", () => Promise.resolve());
    await assert.rejects(
      pool.use("b", missing, "r+", () => Promise.resolve()),
      Deno.errors.NotFound,
    );
    await assert.rejects(
      pool.use("gone", join(dir, "no such file"), "r+", () => Promise.resolve()),
      Deno.errors.NotFound,
    );
    // Synced, "a" is idle again, and the least recently used: it goes next.
    pool.pin("a", false);
    await pool.use("d", missing, "r+", () => Promise.resolve());
    assert.equal(pool.size, 2);
    await assert.rejects(
      pool.use("a", missing, "r+", () => Promise.resolve()),
      Deno.errors.NotFound,
    );
    // A pinned handle closed by its owner no longer counts as pinned.
    pool.pin("c", true);
    pool.close("c");
    await open("e");
    await open("f");
    assert.equal(pool.size, 2);
  } finally {
    pool.closeAll();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "out of descriptors (EMFILE), the pool closes its idle handles and opens the file",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "handle_pool_test_" });
    try {
      // A child with 64 descriptors: 30 idle pool handles, the rest taken by other files.
      const script = `
        import { HandlePool } from ${
        JSON.stringify(new URL("./handle_pool.ts", import.meta.url).href)
      };
        const dir = ${JSON.stringify(dir)};
        const pool = new HandlePool(1000);
        for (let i = 0; i < 30; i++) {
          await pool.use("k" + i, dir + "/k" + i, "w+", () => Promise.resolve());
        }
        const held = [];
        try {
          for (;;) held.push(Deno.openSync(dir + "/held", { create: true, write: true }));
        } catch (error) {
          if (!/os error 24|Too many open files/.test(String(error))) throw error;
        }
        await pool.use("new", dir + "/new", "w+", (h) => h.writeAt(new Uint8Array([7]), 0));
        console.log("opened with", pool.size, "handles in the pool");
      `;
      const child = await new Deno.Command("prlimit", {
        args: ["--nofile=64", Deno.execPath(), "eval", "--no-config", script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const output = new TextDecoder().decode(child.stdout) +
        new TextDecoder().decode(child.stderr);
      assert.ok(child.success, output);
      assert.match(output, /opened with 1 handles in the pool/);
      assert.deepEqual([...await Deno.readFile(join(dir, "new"))], [7]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
