/**
 * End-to-end: files produced as OpenMSIStream chunk messages to a real broker come back out of the
 * real CLI byte-identical.
 */
import assert from "node:assert/strict";
import {
  assertSameTree,
  CliProcess,
  join,
  produceTree,
  startDownloader,
  tempDir,
  treeDigest,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { committedOffsets, createTopic, endOffsets, uniqueGroupId } from "./_kafka.ts";
import { CAN_SEE_PAGE_CACHE, residentPages } from "./_resident.ts";

/** A tree with nested folders and the sizes that matter around the 512 KiB chunk size. */
async function makeTree(): Promise<{ root: string; files: number }> {
  const root = await tempDir("src");
  const sizes: [string, number][] = [
    ["one_byte.bin", 1],
    ["a/exactly_one_chunk.dat", 512 * 1024],
    ["a/b/one_chunk_plus_one.dat", 512 * 1024 + 1],
    ["a/b/c/twenty_mb.dat", 20_000_000],
    ["z/with space ü.txt", 12345],
  ];
  for (const [rel, size] of sizes) await writeRandomFile(join(root, rel), size);
  return { root, files: sizes.length };
}

const completed = /successfully reconstructed from stream/;

for (const threads of [1, 4]) {
  Deno.test(`--n_threads ${threads} rebuilds a tree byte-identical from a 4-partition topic and commits every offset`, async () => {
    const { root, files } = await makeTree();
    const out = join(await tempDir("out"), "nested/out");
    const topic = await createTopic(4, `e2e-${threads}`);
    const group = uniqueGroupId(`e2e-${threads}`);
    await produceTree(topic, root);
    const cli = startDownloader(out, topic, group, "--n_threads", String(threads));
    await cli.waitFor(completed, 180_000, files);
    await waitForCommitted(group, topic);
    await cli.send("check");
    await cli.waitFor(
      new RegExp(
        `\\d+ messages read, \\d+ messages processed, ${files} files completely reconstructed`,
      ),
    );
    // Then the rate and the group's lag, which is 0 on every partition once all is committed.
    await cli.waitFor(
      /writing \d+\.\d+ MB\/s over the last 10 s; consumer lag 0 records \(partition 0: 0, 1: 0, 2: 0, 3: 0\)/,
    );
    assert.equal(await cli.quit(), 0);
    await assertSameTree(root, out);
    assert.match(cli.output, /shut down/);

    // A second run with the same group reads nothing old: only a file produced after it started.
    const again = new CliProcess([
      out,
      "--config",
      "local_broker_test",
      "--topic",
      topic,
      "--consumer_group_id",
      group,
      "--n_threads",
      String(threads),
    ]);
    await again.waitFor(/Will reconstruct files/);
    await writeRandomFile(join(root, "later/marker.dat"), 1000);
    await produceTree(topic, root, [join(root, "later/marker.dat")]);
    await again.waitFor(/File later\/marker.dat successfully reconstructed/);
    await waitForCommitted(group, topic);
    assert.equal(await again.quit(), 0);
    // Only the marker was rebuilt; its one message may be read again by each consumer that takes
    // over its partition while the group is still forming (a duplicate, recognised as such).
    assert.equal(again.output.match(new RegExp(completed.source, "g"))?.length, 1);
    const consumed = Number(/(\d+) total messages were consumed/.exec(again.output)?.[1]);
    assert.ok(consumed >= 1 && consumed <= threads, `${consumed} messages consumed`);
    await assertSameTree(root, out);
    const [committed, end] = await Promise.all([committedOffsets(group, topic), endOffsets(topic)]);
    for (const [partition, high] of end) {
      if (high > 0n) assert.equal(committed.get(partition), high);
    }
  });
}

Deno.test({
  name: "with --allow-ffi, rebuilt files do not stay in the page cache (Linux)",
  ignore: !CAN_SEE_PAGE_CACHE,
  fn: async () => {
    const root = await tempDir("src");
    const sizes = [12 * 1024 * 1024, 3 * 1024 * 1024 + 17];
    for (const [i, size] of sizes.entries()) await writeRandomFile(join(root, `f${i}.bin`), size);
    const out = await tempDir("out");
    const topic = await createTopic(2, "uncached");
    const group = uniqueGroupId("uncached");
    await produceTree(topic, root);
    const cli = startDownloader(out, topic, group);
    await cli.waitFor(completed, 120_000, sizes.length);
    // Looked at before anything reads the files back.
    for (const [i, size] of sizes.entries()) {
      assert.equal(residentPages(join(out, `f${i}.bin`), size), 0, `f${i}.bin still cached`);
    }
    assert.equal(await cli.quit(), 0);
    await assertSameTree(root, out);
  },
});

Deno.test("--download_regex rebuilds only the files whose relative path matches from its start", async () => {
  const { root } = await makeTree();
  const out = await tempDir("out");
  const topic = await createTopic(4, "regex");
  const group = uniqueGroupId("regex");
  await produceTree(topic, root);
  const cli = startDownloader(
    out,
    topic,
    group,
    "--download_regex",
    "a/(?P<deeper>b/)?[^/]*\\.dat",
  );
  await cli.waitFor(completed, 180_000, 2);
  await waitForCommitted(group, topic);
  assert.equal(await cli.quit(), 0);
  await assertSameTree(
    root,
    out,
    (rel) => rel === "a/exactly_one_chunk.dat" || rel === "a/b/one_chunk_plus_one.dat",
  );
});

Deno.test("q on stdin ends the program with exit 0 even before any message arrives", async () => {
  const out = await tempDir("out");
  const topic = await createTopic(2, "quit");
  const cli = new CliProcess([out, "--config", "local_broker_test", "--topic_name", topic]);
  await cli.waitFor(/Will reconstruct files/);
  assert.equal(await cli.quit(), 0);
  assert.match(cli.output, /0 total messages were consumed/);
});

Deno.test("q in the middle of a batch still commits what was written before exiting", async () => {
  const root = await tempDir("src");
  for (let i = 0; i < 300; i++) await writeRandomFile(join(root, `q/${i}.dat`), 20_000);
  const out = await tempDir("out");
  const topic = await createTopic(1, "quitcommit");
  const group = uniqueGroupId("quitcommit");
  await produceTree(topic, root);
  const cli = startDownloader(out, topic, group, "--n_threads", "1");
  await cli.waitFor(completed, 120_000, 1);
  assert.equal(await cli.quit(), 0);
  const consumed = Number(/(\d+) total messages were consumed/.exec(cli.output)?.[1]);
  assert.ok(consumed > 0);
  // Every record handled before the quit is committed (one partition: the offset counts them).
  const committed = (await committedOffsets(group, topic)).get(0) ?? 0n;
  assert.ok(committed >= BigInt(consumed), `committed ${committed} < ${consumed} handled`);
  const rebuilt = [...(await treeDigest(out)).keys()].length;
  assert.ok(BigInt(rebuilt) >= committed, `${rebuilt} files on disk, ${committed} committed`);
});
