/**
 * A full disk stops the writing with a clear error and commits nothing that is not on disk; when
 * space comes back, the download goes on and every file completes. The output directory is a
 * small tmpfs (needs root to mount; the test is skipped, saying so, where mounting is refused).
 */
import assert from "node:assert/strict";
import {
  assertSameTree,
  join,
  produceTree,
  sleep,
  startDownloader,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { committedOffsets, createTopic, endOffsets, uniqueGroupId } from "./_kafka.ts";

async function mount(args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command("mount", { args, stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

const probe = await Deno.makeTempDir({ prefix: "dfdd_mount_probe_" });
const canMount = await mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe]);
if (canMount) await new Deno.Command("umount", { args: [probe] }).output();
await Deno.remove(probe);

Deno.test({
  name:
    "a full disk stops writing with a clear error, commits nothing past it, and resumes when space returns",
  ignore: !canMount,
  fn: async () => {
    const root = await tempDir("src");
    await writeRandomFile(join(root, "big/six_mb.dat"), 6_000_000);
    await writeRandomFile(join(root, "small.txt"), 1000);
    const out = await tempDir("tmpfs");
    assert.ok(await mount(["-t", "tmpfs", "-o", "size=3m", "tmpfs", out]));
    try {
      const topic = await createTopic(1, "full");
      const group = uniqueGroupId("full");
      await produceTree(topic, root);
      const cli = startDownloader(out, topic, group);
      await cli.waitFor(
        /ERROR: Cannot write chunk \d+ of "big\/six_mb.dat": .*(No space left on device|os error 28|ENOSPC).*Writing is stopped and nothing more is committed until this is fixed/,
        60_000,
      );
      await sleep(2000);
      const [committed, end] = await Promise.all([
        committedOffsets(group, topic),
        endOffsets(topic),
      ]);
      assert.ok(
        (committed.get(0) ?? 0n) < end.get(0)!,
        `committed ${committed.get(0)} of ${end.get(0)} while the disk was full`,
      );
      await Deno.stat(join(out, "big/six_mb.dat")).then(
        () => assert.fail("published while incomplete"),
        () => {},
      );

      assert.ok(await mount(["-o", "remount,size=64m", out]));
      await waitForCommitted(group, topic, 60_000);
      await cli.waitFor(/successfully reconstructed from stream/, 30_000, 2);
      assert.equal(await cli.quit(), 0);
      await assertSameTree(root, out);
    } finally {
      await new Deno.Command("umount", { args: ["-l", out] }).output();
    }
  },
});
