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
import { committedOffsets, createTopic, deleteTopic, endOffsets, uniqueGroupId } from "./_kafka.ts";
import { metricsUrl, scrapeUntil } from "./_metrics.ts";

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

/** The ENOSPC error line for the big file, which stops writing and committing. */
const FULL_DISK_ERROR =
  /ERROR: Cannot write chunk \d+ of "big\/six_mb.dat": .*(No space left on device|os error 28|ENOSPC).*Writing is stopped and nothing more is committed until this is fixed/;

Deno.test({
  name:
    "a full disk stops writing with a clear error, commits nothing past it, quits cleanly, restarts while still full, and resumes when space returns",
  ignore: !canMount,
  fn: async () => {
    const root = await tempDir("src");
    await writeRandomFile(join(root, "big/six_mb.dat"), 6_000_000);
    await writeRandomFile(join(root, "small.txt"), 1000);
    const out = await tempDir("tmpfs");
    assert.ok(await mount(["-t", "tmpfs", "-o", "size=3m", "tmpfs", out]));
    const topic = await createTopic(1, "full");
    try {
      const group = uniqueGroupId("full");
      await produceTree(topic, root);
      const assertNothingPastTheFullDisk = async () => {
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
      };

      // Full: writing stops, nothing past it is committed, and `quit` still ends the run cleanly.
      const first = startDownloader(out, topic, group);
      await first.waitFor(FULL_DISK_ERROR, 60_000);
      await sleep(2000);
      await assertNothingPastTheFullDisk();
      assert.equal(await first.quit(), 0, first.output);
      assert.doesNotMatch(first.output, /\n\s+at |Uncaught/, "no stack trace while quitting");
      assert.match(first.output, /shut down/);

      // Restarted while the disk is still full: it starts (its state is intact) and waits again;
      // its health check says it is stuck, and why.
      const second = startDownloader(out, topic, group, "--metrics_port", "0");
      await second.waitFor(FULL_DISK_ERROR, 60_000);
      assert.doesNotMatch(second.output, /Cannot start|refus/i, second.output);
      await assertNothingPastTheFullDisk();
      const url = metricsUrl(second.output);
      const stuck = await fetch(`${url}/healthz`);
      assert.equal(stuck.status, 503);
      assert.match(
        await stuck.text(),
        /^stuck for \d+ s: writing is stopped .*(No space|os error 28)/,
      );
      await scrapeUntil(url, [
        /^dfdd_writes_stalled 1$/m,
        /^dfdd_last_error_timestamp_seconds [1-9]/m,
      ]);

      // Space returns: every file completes and every offset is committed.
      assert.ok(await mount(["-o", "remount,size=64m", out]));
      await waitForCommitted(group, topic, 60_000);
      await second.waitFor(/successfully reconstructed from stream/, 30_000);
      await scrapeUntil(url, [/^dfdd_writes_stalled 0$/m]);
      const healthy = await fetch(`${url}/healthz`);
      assert.equal(healthy.status, 200, await healthy.text());
      assert.equal(await second.quit(), 0, second.output);
      await assertSameTree(root, out);
    } finally {
      await deleteTopic(topic).catch(() => {});
      await new Deno.Command("umount", { args: ["-l", out] }).output();
      for (const dir of [root, out]) await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
