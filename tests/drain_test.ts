/**
 * Drain mode (`--exit_when_done`) and the run summary (`--summary_json`) against a real broker:
 * a run that ends by itself with exit status 0 when every file begun was published, 3 when a
 * file stayed incomplete or was rejected (named in the log and the summary), and a drain that a
 * rebalance interrupts: the partitions another member held are finished once they move.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { CompressionTypes } from "kafkajs";
import type { RunSummary } from "../src/console/run_summary.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import {
  assertSameTree,
  chunkMessagesOfTree,
  CliProcess,
  fastRejoinConfig,
  IdleMember,
  join,
  sleep,
  startDownloader,
  startDownloaderWith,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import {
  bootstrapServers,
  committedOffsets,
  createTopic,
  endOffsets,
  sendInTransaction,
  testKafka,
  transactionalProducer,
  uniqueGroupId,
} from "./_kafka.ts";

async function send(topic: string, messages: { key: string; value: Buffer }[]) {
  registerCodecs();
  const producer = testKafka().producer();
  await producer.connect();
  try {
    await producer.send({ topic, compression: CompressionTypes.LZ4, messages });
  } finally {
    await producer.disconnect();
  }
}

async function readSummary(path: string): Promise<RunSummary> {
  return JSON.parse(await Deno.readTextFile(path)) as RunSummary;
}

Deno.test("drain mode: every file published means exit 0, the summary says so, and a second drain has nothing to do", async () => {
  const root = await tempDir("src");
  await writeRandomFile(join(root, "a.bin"), 300_000);
  await writeRandomFile(join(root, "sub/b.bin"), 70_000);
  const topic = await createTopic(3, "drain_ok");
  const group = uniqueGroupId("drain_ok");
  await send(topic, await chunkMessagesOfTree(root));
  const out = await tempDir("out");
  const summaryPath = join(await tempDir("summary"), "run.json");

  const cli = startDownloader(
    out,
    topic,
    group,
    "--n_threads",
    "2",
    "--exit_when_done",
    "--summary_json",
    summaryPath,
  );
  assert.equal(await cli.exit(120_000), 0, cli.output);
  await assertSameTree(root, out);
  assert.match(cli.output, /Drain mode: exiting once the group has consumed every partition/);
  assert.match(cli.output, /Drained: .* every file begun was published \(2 in this run\)/);
  const summary = await readSummary(summaryPath);
  assert.equal(summary.reason, "drained");
  assert.equal(summary.exitCode, 0);
  assert.equal(summary.files.published, 2);
  assert.deepEqual(summary.files.incomplete, []);
  assert.deepEqual(summary.files.rejected, []);
  assert.equal(summary.bytes.written, 370_000);
  assert.equal(summary.consumerGroup, group);
  // The offsets reached are the topic's ends, in the group and in the drain marks.
  const ends = await endOffsets(topic);
  for (const [partition, end] of ends) {
    if (end === 0n) continue; // a partition no chunk went to has no committed offset
    const o = summary.offsets[String(partition)]!;
    assert.equal(o.end, Number(end));
    assert.equal(o.committed, Number(end));
    assert.equal(o.drainMark, Number(end));
  }
  const committed = await committedOffsets(group, topic);
  for (const [partition, end] of ends) {
    if (end > 0n) assert.equal(committed.get(partition), end);
  }

  // The same group again: nothing left, so it ends at once, publishing nothing.
  const again = startDownloader(
    out,
    topic,
    group,
    "--exit_when_done",
    "--summary_json",
    summaryPath,
  );
  assert.equal(await again.exit(120_000), 0, again.output);
  assert.equal((await readSummary(summaryPath)).files.published, 0);
  await assertSameTree(root, out);
});

Deno.test("drain mode: a file missing a chunk and a file failing its hash mean exit 3, with both named", async () => {
  const root = await tempDir("src");
  await writeRandomFile(join(root, "whole.bin"), 200_000);
  await writeRandomFile(join(root, "cut/short.bin"), 400_000);
  await writeRandomFile(join(root, "bad.bin"), 150_000);
  const topic = await createTopic(2, "drain_cut");
  const group = uniqueGroupId("drain_cut");
  const messages = await chunkMessagesOfTree(root);
  // short.bin loses its last chunk; bad.bin's first chunk is replaced by one of another file
  // claiming its name and hash layout (its chunk hash holds, the whole-file hash does not).
  const shortChunks = messages.filter((m) => m.key.includes("short.bin"));
  const dropped = shortChunks[shortChunks.length - 1]!;
  const kept = messages.filter((m) => m !== dropped);
  const other = await tempDir("other");
  await writeRandomFile(join(other, "bad.bin"), 150_000);
  const badOriginal = kept.filter((m) => m.key.includes("bad.bin"));
  const badForged = (await chunkMessagesOfTree(other)).filter((m) => m.key.includes("bad.bin"));
  assert.equal(badOriginal.length, badForged.length);
  await send(topic, kept.filter((m) => !m.key.includes("bad.bin")));
  // Same file hash as the original (so one generation), but the first chunk's bytes are other.
  const { decodeChunk, encodeChunk } = await import("../src/wire/chunk_codec.ts");
  const original0 = decodeChunk(new Uint8Array(badOriginal[0]!.value));
  const forged0 = decodeChunk(new Uint8Array(badForged[0]!.value));
  const mixed = encodeChunk({ ...forged0, fileHash: original0.fileHash });
  await send(topic, [
    { key: badOriginal[0]!.key, value: Buffer.from(mixed) },
    ...badOriginal.slice(1),
  ]);

  const out = await tempDir("out");
  const summaryPath = join(await tempDir("summary"), "run.json");
  const cli = startDownloader(out, topic, group, "--exit_when_done", "--summary_json", summaryPath);
  assert.equal(await cli.exit(120_000), 3, cli.output);
  assert.match(cli.output, /Drained with files not rebuilt: 1 incomplete, 1 rejected/);
  assert.match(cli.output, /cut\/short\.bin \(incomplete: 6\/7 chunks\)/);
  assert.match(cli.output, /bad\.bin \(rejected: its whole-file SHA-512 did not match\)/);
  // What could be rebuilt was.
  assert.deepEqual(
    await Deno.readFile(join(out, "whole.bin")),
    await Deno.readFile(join(root, "whole.bin")),
  );
  await assert.rejects(Deno.stat(join(out, "cut/short.bin")), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(join(out, "bad.bin")), Deno.errors.NotFound);
  const summary = await readSummary(summaryPath);
  assert.equal(summary.exitCode, 3);
  assert.equal(summary.files.published, 1);
  assert.deepEqual(summary.files.incomplete.map((f) => [f.path, f.chunks, f.total]), [[
    "cut/short.bin",
    6,
    7,
  ]]);
  assert.deepEqual(summary.files.rejected.map((f) => f.path), ["bad.bin"]);
});

Deno.test("drain mode: partitions held by another member are finished after a rebalance gives them over", async () => {
  const root = await tempDir("src");
  for (let i = 0; i < 8; i++) await writeRandomFile(join(root, `r/${i}.dat`), 200_000 + i);
  const topic = await createTopic(4, "drain_rebalance");
  const group = uniqueGroupId("drain_rebalance");
  await send(topic, await chunkMessagesOfTree(root));
  const cfg = await fastRejoinConfig(bootstrapServers());

  // A member that holds partitions and never commits joins first.
  const member = await IdleMember.start(topic, group, { withPartition: true });
  const out = await tempDir("out");
  let cli: CliProcess | undefined;
  try {
    cli = startDownloaderWith(cfg, out, topic, group, "--exit_when_done");
    // It drains what it holds, then waits for the member's partitions.
    await cli.waitFor(/joined the group with partitions? \d/);
    await sleep(5000);
    const early = await Promise.race([cli.done.then(() => true), Promise.resolve(false)]);
    assert.equal(early, false, `it ended before the whole topic was consumed:\n${cli.output}`);
    await member.stop();
    assert.equal(await cli.exit(120_000), 0, cli.output);
  } finally {
    await member.stop("SIGKILL");
    if (cli) await cli.kill();
  }
  await assertSameTree(root, out);
  const committed = await committedOffsets(group, topic);
  for (const [partition, end] of await endOffsets(topic)) {
    if (end > 0n) assert.equal(committed.get(partition), end);
  }
});

Deno.test("drain mode on a topic written in transactions (as --rekey_to writes): aborted records are never read, and the drain ends at the markers", async () => {
  const root = await tempDir("txn_src");
  const aborted = await tempDir("txn_aborted");
  for (let i = 0; i < 4; i++) await writeRandomFile(join(root, `t/f${i}.bin`), 150_000 + i);
  await writeRandomFile(join(aborted, "t/f0.bin"), 150_000); // same name, other bytes
  await writeRandomFile(join(aborted, "t/never.bin"), 90_000);
  const topic = await createTopic(2, "drain_txn");
  const group = uniqueGroupId("drain_txn");
  registerCodecs();
  const producer = transactionalProducer();
  await producer.connect();
  try {
    // Committed transactions with an aborted one between them (its records and marker stay in
    // the log); each transaction ends with a marker, the last offset of each partition.
    const messages = await chunkMessagesOfTree(root, 65536, "file");
    const half = Math.floor(messages.length / 2);
    for (
      const [part, commit] of [[messages.slice(0, half), true], [
        await chunkMessagesOfTree(aborted, 65536, "file"),
        false,
      ], [messages.slice(half), true]] as const
    ) {
      const transaction = await producer.transaction();
      await transaction.send({ topic, compression: CompressionTypes.LZ4, messages: [...part] });
      await (commit ? transaction.commit() : transaction.abort());
    }
  } finally {
    await producer.disconnect();
  }
  const out = await tempDir("txn_out");
  const summaryPath = join(await tempDir("summary"), "run.json");
  const cli = startDownloader(
    out,
    topic,
    group,
    "--exit_when_done",
    "--summary_json",
    summaryPath,
  );
  assert.equal(await cli.exit(120_000), 0, cli.output);
  await assertSameTree(root, out);
  const summary = await readSummary(summaryPath);
  assert.equal(summary.files.published, 4);
  assert.deepEqual(summary.files.incomplete, []);
  // The group's offsets reach each partition's end, past the last marker.
  assert.deepEqual(await committedOffsets(group, topic), await endOffsets(topic));

  // An aborted transaction alone after them: its fetches hold nothing to read, and the group's
  // offsets still move past them.
  await sendInTransaction(topic, await chunkMessagesOfTree(aborted, 65536, "file"), "abort");
  const again = startDownloader(out, topic, group);
  try {
    await waitForCommitted(group, topic, 60_000);
    assert.equal(await again.quit(), 0, again.output);
  } finally {
    await again.kill();
  }
  await assertSameTree(root, out);
});

Deno.test("drain mode on a topic keyed by file: a file left incomplete holds the group's commit at its first record, so a later run completes it when its last chunk comes", async () => {
  const root = await tempDir("held_src");
  await writeRandomFile(join(root, "first.bin"), 100_000);
  await writeRandomFile(join(root, "cut.bin"), 300_000); // 5 chunks
  await writeRandomFile(join(root, "after.bin"), 100_000);
  const topic = await createTopic(1, "drain_held");
  const group = uniqueGroupId("drain_held");
  const messages = await chunkMessagesOfTree(root, 65536, "file");
  const cut = messages.filter((m) => m.key.endsWith("cut.bin"));
  const missing = cut[cut.length - 1]!;
  // Records in the order of the tree (after.bin, cut.bin, first.bin), cut.bin's last chunk left out.
  await send(topic, messages.filter((m) => m !== missing));
  const firstOfCut = messages.indexOf(cut[0]!);
  assert.ok(firstOfCut > 0);

  const out = await tempDir("held_out");
  const summaryPath = join(await tempDir("summary"), "run.json");
  const cli = startDownloader(out, topic, group, "--exit_when_done", "--summary_json", summaryPath);
  assert.equal(await cli.exit(120_000), 3, cli.output);
  assert.match(cli.output, /cut\.bin \(incomplete: 4\/5 chunks\)/);
  assert.equal((await readSummary(summaryPath)).files.published, 2);
  // Committed up to cut.bin's first record, not past it.
  assert.equal((await committedOffsets(group, topic)).get(0), BigInt(firstOfCut));

  // The missing chunk comes; a plain run of the same group reads cut.bin again from its start.
  await send(topic, [missing]);
  const again = startDownloader(out, topic, group);
  try {
    await waitForCommitted(group, topic, 60_000);
    await again.waitFor(/File cut\.bin successfully reconstructed from stream/);
    assert.equal(await again.quit(), 0, again.output);
  } finally {
    await again.kill();
  }
  await assertSameTree(root, out);
});
