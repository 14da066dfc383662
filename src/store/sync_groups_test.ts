import assert from "node:assert/strict";
import {
  type FileSystemSync,
  fileSystemSync,
  PAUSE_MS,
  reportsSyncfsErrors,
  SLOW_SYNC_MS,
  SyncGroups,
} from "./sync_groups.ts";
import { pageCacheDropper } from "./page_cache.ts";
import { LIBC_PATHS } from "../system/native_library.ts";
import { CAN_SEE_PAGE_CACHE, residentPages } from "../../tests/_resident.ts";

/** A file system whose syncs are counted, and end when the test says. */
class FakeFs implements FileSystemSync {
  syncs = 0;
  closed = false;
  #pending: { resolve: () => void; reject: (error: Error) => void }[] = [];

  sync(): Promise<void> {
    this.syncs++;
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }
  close(): void {
    this.closed = true;
  }
  /** Ends the running sync, with an error if given. */
  end(error?: Error): void {
    const next = this.#pending.shift();
    assert.ok(next, "a sync is running");
    if (error) next.reject(error);
    else next.resolve();
  }
}

/** Lets timers and promise reactions run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

Deno.test("files that join together share one syncfs, and are durable once it succeeds", async () => {
  const fs = new FakeFs();
  const groups = new SyncGroups(fs);
  const joins = Array.from({ length: 10 }, () => groups.join());
  await settle();
  assert.equal(fs.syncs, 1);
  fs.end();
  assert.deepEqual(await Promise.all(joins), Array(10).fill(true));
  assert.equal(groups.groups, 1);
  await groups.close();
  assert.ok(fs.closed);
});

Deno.test("a file that joins while a syncfs runs waits for the next one, which starts after it", async () => {
  const fs = new FakeFs();
  const groups = new SyncGroups(fs);
  const first = groups.join();
  await settle();
  assert.equal(fs.syncs, 1);
  let laterDone = false;
  const later = groups.join().then((durable) => {
    laterDone = true;
    return durable;
  });
  fs.end();
  assert.equal(await first, true);
  await settle();
  assert.equal(
    laterDone,
    false,
    "the running syncfs started before the file joined: it does not count",
  );
  assert.equal(fs.syncs, 2);
  fs.end();
  assert.equal(await later, true);
  await groups.close();
});

Deno.test("after a failed syncfs every file is synced on its own, for good", async () => {
  const fs = new FakeFs();
  let now = 0;
  const told: [string, boolean][] = [];
  const groups = new SyncGroups(fs, () => now, (message, failure) => told.push([message, failure]));
  assert.ok(groups.grouping);
  const first = groups.join();
  await settle();
  const second = groups.join(); // forming behind the failing one
  fs.end(new Error("EIO"));
  assert.equal(await first, false);
  assert.ok(!groups.grouping);
  assert.equal(await second, false, "its writes may have failed in the first one's window");
  now += 10 * PAUSE_MS;
  assert.equal(await groups.join(), false);
  assert.equal(fs.syncs, 1);
  assert.deepEqual(told, [[
    "EIO: a write to that file system failed. Files of one chunk are now synced one by one, and each reports its own error",
    true,
  ]]);
  await groups.close();
});

Deno.test("a slow syncfs pauses the groups: files are synced on their own for a while", async () => {
  const fs = new FakeFs();
  let now = 0;
  const told: [string, boolean][] = [];
  const groups = new SyncGroups(fs, () => now, (message, failure) => told.push([message, failure]));
  const slow = groups.join();
  await settle();
  now += SLOW_SYNC_MS + 1;
  fs.end();
  assert.equal(await slow, true, "it succeeded: its files are on disk");
  assert.ok(!groups.grouping);
  assert.equal(await groups.join(), false);
  now += PAUSE_MS;
  assert.ok(groups.grouping);
  const resumed = groups.join();
  await settle();
  fs.end();
  assert.equal(await resumed, true);
  assert.equal(fs.syncs, 2);
  assert.deepEqual(told, [[
    `syncfs took ${
      SLOW_SYNC_MS + 1
    } ms (other programs are writing to the same file system): files of one chunk are synced one by one for the next 60 s`,
    false,
  ]]);
  await groups.close();
});

Deno.test("without syncfs, and once closed, joining returns false at once", async () => {
  assert.equal(await new SyncGroups(undefined).join(), false);
  assert.ok(!new SyncGroups(undefined).grouping);
  const fs = new FakeFs();
  const groups = new SyncGroups(fs);
  await groups.close();
  assert.ok(!groups.grouping);
  assert.equal(await groups.join(), false);
  assert.equal(fs.syncs, 0);
  assert.ok(fs.closed);
});

Deno.test("close waits for the running syncfs before releasing the file system", async () => {
  const fs = new FakeFs();
  const groups = new SyncGroups(fs);
  const joined = groups.join();
  await settle();
  const closing = groups.close();
  await settle();
  assert.equal(fs.closed, false);
  fs.end();
  await closing;
  assert.ok(fs.closed);
  assert.equal(await joined, true);
});

Deno.test("syncfs is trusted from Linux 5.8, which reports write-back errors", () => {
  assert.equal(reportsSyncfsErrors("5.8.0"), true);
  assert.equal(reportsSyncfsErrors("6.18.44-fc-v1252"), true);
  assert.equal(reportsSyncfsErrors("10.0.1"), true);
  assert.equal(reportsSyncfsErrors("5.7.19"), false);
  assert.equal(reportsSyncfsErrors("4.19.0-26-amd64"), false);
  assert.equal(reportsSyncfsErrors(""), false);
});

Deno.test({
  name: "syncfs through libc leaves nothing dirty of what was written (Linux 5.8 and later)",
  ignore: !CAN_SEE_PAGE_CACHE,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sync_groups_test_" });
    try {
      const fs = fileSystemSync(dir);
      if (!reportsSyncfsErrors(Deno.osRelease())) {
        assert.equal(fs, undefined);
        return;
      }
      assert.ok(fs, "syncfs on this system");
      const path = `${dir}/a.bin`;
      const bytes = new Uint8Array(4 * 1024 * 1024).fill(7);
      await Deno.writeFile(path, bytes);
      await fs.sync();
      fs.close();
      // The kernel drops only clean pages: all of them go once they are on disk.
      pageCacheDropper(LIBC_PATHS)!(path, bytes.length);
      assert.equal(residentPages(path, bytes.length), 0);
      assert.deepEqual(await Deno.readFile(path), bytes);
      assert.equal(fileSystemSync(`${dir}/missing`), undefined, "a folder that cannot be opened");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "without FFI permission there is no syncfs, and nothing prompts",
  permissions: { read: true, ffi: false },
  fn: () => assert.equal(fileSystemSync("."), undefined),
});

Deno.test({
  name: "syncfs is not used on file systems that may not make its writes durable",
  ignore: Deno.build.os !== "linux",
  fn: () => {
    // procfs and sysfs stand for the others (FUSE, network file systems).
    assert.equal(fileSystemSync("/proc"), undefined);
    assert.equal(fileSystemSync("/sys"), undefined);
  },
});
