/**
 * More than one downloader process in one consumer group (processes as hosts, each with its own
 * output directory). On a topic keyed per chunk (OpenMSIStream's uploader) a file's chunks are
 * split between the processes: each says so, in its log, in `check` and in its metrics. On a
 * topic keyed by file (this project's producer) each process rebuilds whole files.
 */
import assert from "node:assert/strict";
import { CompressionTypes } from "kafkajs";
import { registerCodecs } from "../src/wire/compression.ts";
import { STATE_DIR_NAME } from "../src/store/safe_path.ts";
import {
  assertSameTree,
  chunkMessagesOfTree,
  CliProcess,
  fastRejoinConfig,
  join,
  produceTree,
  sleep,
  startDownloaderWith,
  tempDir,
  treeDigest,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import {
  bootstrapServers,
  committedOffsets,
  createTopic,
  endOffsets,
  testKafka,
  uniqueGroupId,
} from "./_kafka.ts";

const SPLIT_WARNING =
  /WARNING: This process holds partitions? [\d, ]+ of the 4 of "[^"]+"; another member of the group "[^"]+" holds the others\. The topic's chunks are keyed per chunk/;

/** A join with some of the 4 partitions, not all. */
const SHARE = /joined the group with partitions? \d(, \d)?\n/;

async function makeTree(files: number): Promise<string> {
  const root = await tempDir("scale_src");
  for (let i = 0; i < files; i++) {
    await writeRandomFile(join(root, `d${i % 3}/f${i}.bin`), 150_000 + 1000 * i);
  }
  return root;
}

function downloader(out: string, config: string, topic: string, group: string): CliProcess {
  return startDownloaderWith(config, out, topic, group, "--n_threads", "1");
}

Deno.test("two downloader processes on a topic keyed per chunk each warn that files cannot complete", async () => {
  const root = await makeTree(6);
  const topic = await createTopic(4, "split");
  const group = uniqueGroupId("split");
  const config = await fastRejoinConfig(bootstrapServers());
  const a = downloader(await tempDir("split_a"), config, topic, group);
  const b = downloader(await tempDir("split_b"), config, topic, group);
  try {
    // Both hold part of the topic when its records come (a process that sees none of them has
    // nothing to warn about).
    await a.waitFor(SHARE, 60_000);
    await b.waitFor(SHARE, 60_000);
    await produceTree(topic, root, undefined, 65536, "chunk");
    await a.waitFor(SPLIT_WARNING, 60_000);
    await b.waitFor(SPLIT_WARNING, 60_000);
    await a.send("check");
    await a.waitFor(
      /files completely reconstructed so far[^\n]*\n(.*\n)*?WARNING: This process holds/,
    );
    assert.equal(await b.quit(), 0);
    // Alone in the group again, the other process says files can complete, and completes them.
    await a.waitFor(
      /This process now holds all 4 partitions of "[^"]+": files can complete here again/,
      60_000,
    );
    assert.equal(await a.quit(), 0);
  } finally {
    await a.kill();
    await b.kill();
  }
});

Deno.test("two downloader processes on a topic keyed by file each rebuild whole files, and no warning", async () => {
  const root = await makeTree(12);
  const topic = await createTopic(4, "affine");
  const group = uniqueGroupId("affine");
  const config = await fastRejoinConfig(bootstrapServers());
  const outA = await tempDir("affine_a");
  const outB = await tempDir("affine_b");
  const a = downloader(outA, config, topic, group);
  const b = downloader(outB, config, topic, group);
  try {
    // Both hold part of the topic before any record comes, so that no file moves between them.
    await a.waitFor(SHARE, 60_000);
    await b.waitFor(SHARE, 60_000);
    await produceTree(topic, root, undefined, 65536, "file");
    await waitForCommitted(group, topic, 120_000);
    assert.equal(await a.quit(), 0);
    assert.equal(await b.quit(), 0);
  } finally {
    await a.kill();
    await b.kill();
  }
  assert.doesNotMatch(a.output + b.output, /This process holds/);
  // Every file is in exactly one of the two trees, byte-identical; nothing is left in progress.
  const source = await treeDigest(root);
  const [inA, inB] = [await treeDigest(outA), await treeDigest(outB)];
  for (const [rel, digest] of source) {
    const copies = [inA.get(rel), inB.get(rel)].filter((d) => d !== undefined);
    assert.deepEqual(copies, [digest], `${rel}: ${copies.length} copies`);
  }
  assert.equal(inA.size + inB.size, source.size);
  assert.ok(inA.size > 0 && inB.size > 0, `one process got every file: ${inA.size}, ${inB.size}`);
  for (const out of [outA, outB]) {
    const partial = [];
    for await (const e of Deno.readDir(join(out, STATE_DIR_NAME, "partial"))) partial.push(e.name);
    assert.deepEqual(partial, []);
  }
});

Deno.test("on a topic keyed by file, a downloader killed mid-file loses nothing: the process that takes its partitions over rebuilds its files from their first record", async () => {
  const root = await tempDir("takeover_src");
  for (let i = 0; i < 8; i++) await writeRandomFile(join(root, `t/f${i}.bin`), 1_000_000 + i);
  const topic = await createTopic(4, "takeover");
  const group = uniqueGroupId("takeover");
  const config = await fastRejoinConfig(bootstrapServers());
  const messages = await chunkMessagesOfTree(root, 65536, "file");
  // Each file's first half, then (after the kill) its second half.
  const byFile = new Map<string, typeof messages>();
  for (const m of messages) byFile.set(m.key, [...(byFile.get(m.key) ?? []), m]);
  const firstHalf = [...byFile.values()].flatMap((ms) => ms.slice(0, ms.length / 2));
  const secondHalf = [...byFile.values()].flatMap((ms) => ms.slice(ms.length / 2));
  const outA = await tempDir("takeover_a");
  const outB = await tempDir("takeover_b");
  const a = downloader(outA, config, topic, group);
  const b = downloader(outB, config, topic, group);
  registerCodecs();
  const producer = testKafka().producer();
  await producer.connect();
  try {
    await a.waitFor(SHARE, 60_000);
    await b.waitFor(SHARE, 60_000);
    await producer.send({ topic, compression: CompressionTypes.LZ4, messages: firstHalf });
    // Both have files in progress, and have committed what they wrote, when one dies.
    await waitForCommittedSome(group, topic);
    await b.send("check");
    await b.waitFor(/\(in progress: \d+\/16 chunks/, 30_000);
    await b.kill("SIGKILL");
    await producer.send({ topic, compression: CompressionTypes.LZ4, messages: secondHalf });
    await a.waitFor(/Partition \d moved|successfully reconstructed/, 60_000);
    await waitForCommitted(group, topic, 120_000);
    await a.waitFor(/successfully reconstructed from stream/, 60_000, 8);
    assert.equal(await a.quit(), 0);
  } finally {
    await producer.disconnect();
    await a.kill();
    await b.kill();
  }
  // Every file is in the survivor's tree, byte-identical; the killed one published nothing.
  await assertSameTree(root, outA);
  assert.equal((await treeDigest(outB)).size, 0);
  assert.doesNotMatch(a.output, /This process holds/);
});

/** Waits until the group has committed something on every partition that has records. */
async function waitForCommittedSome(group: string, topic: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (true) {
    const [committed, end] = await Promise.all([
      committedOffsets(group, topic),
      endOffsets(topic),
    ]);
    if ([...end].every(([p, high]) => high === 0n || (committed.get(p) ?? -1n) >= 0n)) return;
    assert.ok(Date.now() < deadline, `nothing committed: ${[...committed]}`);
    await sleep(250);
  }
}
