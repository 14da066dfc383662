import assert from "node:assert/strict";
import { join } from "node:path";
import { LibcFiles } from "./libc_files.ts";
import { isPathError, isPlaceError, isTooLargeError } from "../store/io_errors.ts";

const linux = Deno.build.os === "linux";

async function withFolder(fn: (dir: string, libc: LibcFiles) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "libc_files_test_" });
  const libc = LibcFiles.forFolder(dir);
  try {
    assert.ok(libc, "libc's file calls load under --allow-ffi and --allow-write");
    await fn(dir, libc);
  } finally {
    libc?.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "a libc file writes and reads at positions, syncs, and is emptied when opened with w+",
  ignore: !linux,
  fn: () =>
    withFolder(async (dir, libc) => {
      const path = join(dir, "f.data");
      const file = libc.open(path, "w+");
      try {
        await file.writeAt(new Uint8Array([5, 6]), 10);
        await file.writeAt(new Uint8Array([1, 2, 3]), 0);
        await file.syncData();
        const buffer = new Uint8Array(4);
        assert.equal(await file.readAt(buffer, 10), 2);
        assert.deepEqual([...buffer.subarray(0, 2)], [5, 6]);
        assert.equal(await file.readAt(buffer, 12), 0);
      } finally {
        file.close();
      }
      assert.deepEqual([...await Deno.readFile(path)], [1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 5, 6]);
      const times = libc.open(path, "r+");
      try {
        times.setTimes(new Date(1_700_000_000_123));
        times.setTimes(new Date(-1500));
      } finally {
        times.close();
      }
      const info = await Deno.stat(path);
      assert.equal(info.mtime?.getTime(), -1500);
      assert.equal(info.atime?.getTime(), -1500);
      const again = libc.open(path, "r+");
      again.close();
      assert.equal((await Deno.stat(path)).size, 12, "r+ keeps the content");
      libc.open(path, "w+").close();
      assert.equal((await Deno.stat(path)).size, 0, "w+ empties it");
    }),
});

Deno.test({
  name: "libc file errors are Deno's: classes, codes, os error numbers and the path",
  ignore: !linux,
  fn: () =>
    withFolder(async (dir, libc) => {
      const missing = join(dir, "no such folder", "f.data");
      const notFound = (() => {
        try {
          libc.open(missing, "r+");
        } catch (error) {
          return error;
        }
      })();
      assert.ok(notFound instanceof Deno.errors.NotFound, String(notFound));
      assert.equal((notFound as { code?: string }).code, "ENOENT");
      assert.match(String(notFound), /\(os error 2\): open '.*no such folder\/f\.data'/);

      // A symlink is refused, as Deno's own open refuses it, and is the path's fault.
      await Deno.symlink(join(dir, "elsewhere"), join(dir, "link"));
      assert.throws(() => libc.open(join(dir, "link"), "w+"), (error: unknown) => {
        assert.ok(error instanceof Deno.errors.FilesystemLoop, String(error));
        assert.ok(isPathError(error));
        return true;
      });
      await assert.rejects(Deno.lstat(join(dir, "elsewhere")), Deno.errors.NotFound);

      assert.throws(() => libc.open(dir, "r+"), (error: unknown) => {
        assert.ok(error instanceof Deno.errors.IsADirectory, String(error));
        assert.ok(isPathError(error));
        return true;
      });
      assert.throws(() => libc.open(join(dir, "x".repeat(300)), "w+"), (error: unknown) => {
        assert.equal((error as { code?: string }).code, "ENAMETOOLONG");
        assert.ok(isPathError(error));
        return true;
      });

      // A write past the largest file size is the record's fault.
      const file = libc.open(join(dir, "big.data"), "w+");
      try {
        await assert.rejects(file.writeAt(new Uint8Array(1), 2 ** 62), (error: unknown) => {
          assert.ok(isTooLargeError(error), String(error));
          assert.match(String(error), /pwrite '.*big\.data'/);
          return true;
        });
      } finally {
        file.close();
      }
    }),
});

Deno.test({
  name: "a libc rename replaces the target; a failed one throws Deno's error, classified as Deno's",
  ignore: !linux,
  fn: () =>
    withFolder(async (dir, libc) => {
      const from = join(dir, "from.data");
      const to = join(dir, "to.dat");
      await Deno.writeTextFile(from, "new");
      await Deno.writeTextFile(to, "old");
      await libc.rename(from, to);
      assert.equal(await Deno.readTextFile(to), "new");
      await assert.rejects(Deno.lstat(from), Deno.errors.NotFound);

      await assert.rejects(libc.rename(from, to), (error: unknown) => {
        assert.ok(error instanceof Deno.errors.NotFound, String(error));
        assert.equal((error as { code?: string }).code, "ENOENT");
        assert.match(String(error), /\(os error 2\): rename '.*from\.data' -> '.*to\.dat'/);
        return true;
      });
      // A file where a folder should be, and a folder where the file should go: the path's fault.
      await Deno.writeTextFile(from, "again");
      await assert.rejects(libc.rename(from, join(to, "x.dat")), (error: unknown) => {
        assert.equal((error as { code?: string }).code, "ENOTDIR");
        assert.ok(isPathError(error));
        return true;
      });
      await Deno.mkdir(join(dir, "folder", "inside"), { recursive: true });
      await assert.rejects(libc.rename(from, join(dir, "folder")), (error: unknown) => {
        assert.ok(isPathError(error) || isPlaceError(error), String(error));
        return true;
      });
      assert.equal(await Deno.readTextFile(from), "again", "nothing moved");
      // Another file system: that folder's fault.
      const shm = await Deno.makeTempDir({ dir: "/dev/shm" }).catch(() => undefined);
      if (shm !== undefined) {
        try {
          await assert.rejects(libc.rename(from, join(shm, "x.dat")), (error: unknown) => {
            assert.equal((error as { code?: string }).code, "EXDEV");
            assert.ok(isPlaceError(error));
            return true;
          });
        } finally {
          await Deno.remove(shm, { recursive: true });
        }
      }
    }),
});

Deno.test({
  name: "a libc write to a full device rejects with ENOSPC, which concerns the whole machine",
  ignore: !linux,
  fn: () => {
    const libc = LibcFiles.forFolder("/dev");
    assert.ok(libc);
    try {
      const full = libc.open("/dev/full", "r+");
      try {
        return assert.rejects(full.writeAt(new Uint8Array(4096), 0), (error: unknown) => {
          assert.equal((error as { code?: string }).code, "ENOSPC");
          assert.match(
            String(error),
            /No space left on device \(os error 28\): pwrite '\/dev\/full'/,
          );
          assert.ok(!isPathError(error) && !isPlaceError(error) && !isTooLargeError(error));
          return true;
        });
      } finally {
        full.close();
      }
    } finally {
      libc.close();
    }
  },
});

Deno.test({
  name: "libc's file calls are used only where Deno would allow writing, and without a prompt",
  ignore: !linux,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "libc_files_test_" });
    try {
      const script = `
        import { LibcFiles } from ${
        JSON.stringify(new URL("./libc_files.ts", import.meta.url).href)
      };
        const inside = LibcFiles.forFolder(${JSON.stringify(join(dir, "inside"))});
        const outside = LibcFiles.forFolder(${JSON.stringify(dir)});
        console.log(inside !== undefined, outside !== undefined);
      `;
      const scriptPath = join(dir, "probe.ts");
      await Deno.writeTextFile(scriptPath, script);
      const run = async (...permissions: string[]) => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "--no-config", "--no-prompt", ...permissions, scriptPath],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        assert.ok(out.success, text);
        return text.trim();
      };
      const inside = join(dir, "inside");
      assert.equal(
        await run("--allow-ffi", `--allow-read=${dir}`, `--allow-write=${inside}`),
        "true false",
      );
      assert.equal(
        await run(
          `--allow-ffi=${join(dir, "no libc here")}`,
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
        ),
        "false false",
      );
      assert.equal(await run(`--allow-read=${dir}`, `--allow-write=${dir}`), "false false");
      assert.equal(await run("--allow-ffi", `--allow-write=${dir}`), "false false");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
