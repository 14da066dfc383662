/**
 * The re-keying stage against a real broker, with processes as hosts: a topic of 8 partitions
 * filled by OpenMSIStream's own uploader classes (librdkafka, chunks keyed one by one) is
 * forwarded by `--rekey_to` to a topic keyed by file, which three downloader processes in one
 * group, each with its own output directory, rebuild: every file whole, once, in one of them.
 */
import assert from "node:assert/strict";
import { CompressionTypes } from "kafkajs";
import { decodeChunkFields, fileKey } from "../src/wire/chunk_codec.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import { CRASH_ENV } from "../src/store/crash_points.ts";
import { STATE_DIR_NAME } from "../src/store/safe_path.ts";
import {
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
  createTopic,
  endOffsets,
  testKafka,
  uniqueGroupId,
  uniqueTopicName,
} from "./_kafka.ts";
import {
  ensureOpenMsiStream,
  pythonEnv,
  REPO_ROOT,
  VENV_DIR,
} from "../tools/openmsistream_venv.ts";

/** Produces `root` to `topic` with OpenMSIStream's uploader classes (tools/bench/produce.py). */
async function uploadWithOpenMsiStream(root: string, topic: string, chunkSize: number) {
  const out = await new Deno.Command(`${VENV_DIR}/bin/python`, {
    args: [`${REPO_ROOT}/tools/bench/produce.py`, root, topic, String(chunkSize)],
    env: pythonEnv({ LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: bootstrapServers() }),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, text);
  const done = text.match(/DONE files=(\d+) chunks=(\d+) delivered=(\d+) failed=0/);
  assert.ok(done, text);
  return Number(done[2]);
}

/** Waits until the processes' latest assignments split `partitions` partitions between all of them. */
async function waitForShares(processes: CliProcess[], partitions: number): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (true) {
    const latest = processes.map((p) => {
      const joins = [
        ...p.output.matchAll(/joined the group with (no partitions|partitions? ([\d, ]+))\n/g),
      ];
      const last = joins[joins.length - 1];
      return last?.[2]?.split(", ").map(Number) ?? [];
    });
    const all = latest.flat();
    if (
      latest.every((l) => l.length > 0) && all.length === partitions &&
      new Set(all).size === partitions
    ) {
      return;
    }
    assert.ok(Date.now() < deadline, `the group never settled: ${JSON.stringify(latest)}`);
    await sleep(250);
  }
}

Deno.test("three downloader processes rebuild an uploader's topic re-keyed by file: every file whole, once", async () => {
  await ensureOpenMsiStream();
  const root = await tempDir("rekey_src");
  for (let i = 0; i < 15; i++) {
    await writeRandomFile(join(root, `run ${i % 4}/f${i}.bin`), 60_000 + 37_000 * i);
  }
  const source = await createTopic(8, "rekey_src");
  const target = await createTopic(8, "rekey_dst");
  const chunks = await uploadWithOpenMsiStream(root, source, 16384);

  const logs = await tempDir("rekey_log");
  const outs = [await tempDir("rekey_a"), await tempDir("rekey_b"), await tempDir("rekey_c")];
  const group = uniqueGroupId("rekey_downloaders");
  const downloaders: CliProcess[] = [];
  let rekeyer: CliProcess | undefined;
  try {
    for (const out of outs) {
      downloaders.push(downloader(out, "local_broker_test", target, group));
    }
    // The group settles (each holds some of the 8 partitions) before anything is forwarded, so
    // that no file moves between processes midway.
    await waitForShares(downloaders, 8);
    rekeyer = new CliProcess([
      logs,
      "--config",
      "local_broker_test",
      "--topic_name",
      source,
      "--consumer_group_id",
      uniqueGroupId("rekeyers"),
      "--rekey_to",
      target,
    ]);
    // Every file is published somewhere.
    const expected = await treeDigest(root);
    const deadline = Date.now() + 180_000;
    let found = 0;
    while (found < expected.size) {
      assert.ok(Date.now() < deadline, `only ${found} of ${expected.size} files rebuilt`);
      await sleep(500);
      const trees = await Promise.all(outs.map((out) => treeDigest(out)));
      found = [...expected.keys()].filter((rel) => trees.some((t) => t.has(rel))).length;
    }
    await rekeyer.send("check");
    await rekeyer.waitFor(
      new RegExp(`${chunks} records forwarded in \\d+ transactions \\(0 not chunks`),
    );
    for (const d of downloaders) assert.equal(await d.quit(), 0, d.output);
    assert.equal(await rekeyer.quit(), 0, rekeyer.output);
  } finally {
    for (const d of downloaders) await d.kill();
    await rekeyer?.kill();
  }
  // The union of the three trees is the source, each file byte-identical and in one tree only.
  const expected = await treeDigest(root);
  const trees = await Promise.all(outs.map((out) => treeDigest(out)));
  for (const [rel, digest] of expected) {
    const copies = trees.map((t) => t.get(rel)).filter((d) => d !== undefined);
    assert.deepEqual(copies, [digest], `${rel}: ${copies.length} copies`);
  }
  assert.equal(trees.reduce((n, t) => n + t.size, 0), expected.size);
  assert.ok(trees.filter((t) => t.size > 0).length >= 2, "one process rebuilt everything");
  for (const d of downloaders) assert.doesNotMatch(d.output, /This process holds|WARNING|ERROR/);
  // Every chunk was forwarded once: the target holds as many records as the source (and a
  // transaction marker after each forwarded batch).
  const [ends, sourceEnds] = [await endOffsets(target), await endOffsets(source)];
  const total = (m: Map<number, bigint>) => [...m.values()].reduce((a, b) => a + b, 0n);
  assert.equal(total(sourceEnds), BigInt(chunks));
  assert.ok(total(ends) >= BigInt(chunks));
});

/** The exit status of a run stopped at a crash point (cli.ts). */
const CRASH_EXIT_CODE = 86;

/**
 * The chunks on `topic` as `<file key>#<chunk index>`, read by a fresh consumer until at least
 * `atLeast` came and then nothing more for 3 s (records that are not chunks count as `?`).
 */
async function chunkIdsOn(topic: string, readUncommitted: boolean, atLeast: number) {
  registerCodecs();
  const ids: string[] = [];
  let lastAt = Date.now();
  const consumer = testKafka().consumer({
    groupId: uniqueGroupId("count"),
    readUncommitted,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        try {
          const chunk = decodeChunkFields(message.value);
          ids.push(`${fileKey(chunk)}#${chunk.chunkI}`);
        } catch {
          ids.push("?");
        }
        lastAt = Date.now();
        return Promise.resolve();
      },
    });
    const deadline = Date.now() + 90_000;
    while (ids.length < atLeast || Date.now() - lastAt < 3000) {
      assert.ok(Date.now() < deadline, `only ${ids.length} records on "${topic}", ${atLeast} due`);
      await sleep(200);
    }
  } finally {
    await consumer.disconnect();
  }
  return ids;
}

/** A downloader process with one consumer on `topic`, in `group`. */
function downloader(
  out: string,
  config: string,
  topic: string,
  group: string,
  extra: string[] = [],
) {
  return startDownloaderWith(config, out, topic, group, "--n_threads", "1", ...extra);
}

function rekeyer(
  dir: string,
  config: string,
  from: string,
  to: string,
  group: string,
  env = {},
  extra: string[] = [],
) {
  return new CliProcess(
    [
      dir,
      "--config",
      config,
      "--topic_name",
      from,
      "--consumer_group_id",
      group,
      "--rekey_to",
      to,
      "--n_threads",
      "1",
      ...extra,
    ],
    env,
  );
}

Deno.test("a re-keyer and a downloader killed mid-stream: the others finish every file, each once, and the aborted forward is never read", async () => {
  const root = await tempDir("rekill_src");
  for (let i = 0; i < 12; i++) {
    await writeRandomFile(join(root, `k${i % 3}/f${i}.bin`), 200_000 + 23_000 * i);
  }
  const source = await createTopic(8, "rekill_src");
  const target = await createTopic(8, "rekill_dst");
  const config = await fastRejoinConfig(bootstrapServers());
  // Keyed per chunk, as OpenMSIStream's uploader keys them; each file's first half, then (after
  // the kills) its second half.
  const messages = await chunkMessagesOfTree(root, 16384, "chunk");
  const byFile = new Map<string, typeof messages>();
  for (const m of messages) {
    const key = fileKey(decodeChunkFields(m.value));
    byFile.set(key, [...(byFile.get(key) ?? []), m]);
  }
  const firstHalf = [...byFile.values()].flatMap((ms) => ms.slice(0, ms.length / 2));
  const secondHalf = [...byFile.values()].flatMap((ms) => ms.slice(ms.length / 2));

  const outs = [await tempDir("rekill_a"), await tempDir("rekill_b"), await tempDir("rekill_c")];
  const rekeyDirs = [await tempDir("rekill_r1"), await tempDir("rekill_r2")];
  const group = uniqueGroupId("rekill_downloaders");
  const rekeyGroup = uniqueGroupId("rekill_rekeyers");
  const downloaders = outs.map((out) => downloader(out, config, target, group));
  const rekeyers: CliProcess[] = [];
  registerCodecs();
  const producer = testKafka().producer();
  await producer.connect();
  let victim = -1;
  try {
    await waitForShares(downloaders, 8);
    rekeyers.push(rekeyer(rekeyDirs[0]!, config, source, target, rekeyGroup));
    await rekeyers[0]!.waitFor(/Re-keyer 1 of 1 joined the group with partitions/, 60_000);
    await producer.send({ topic: source, compression: CompressionTypes.LZ4, messages: firstHalf });
    await waitForCommitted(rekeyGroup, source, 60_000);

    // The downloader with the most files in progress dies (none of its files can be complete).
    const inProgress: number[] = [];
    for (const d of downloaders) {
      const before = d.output.length;
      await d.send("check");
      await d.waitFor(/files completely reconstructed so far/, 30_000, 1);
      await sleep(300);
      inProgress.push([...d.output.slice(before).matchAll(/in progress: /g)].length);
    }
    victim = inProgress.indexOf(Math.max(...inProgress));
    assert.ok(inProgress[victim]! > 0, `no file in progress: ${inProgress}`);
    await downloaders[victim]!.kill("SIGKILL");

    // A second re-keyer joins; it takes half the partitions and dies at its first transaction,
    // after its records and offsets were sent, before the commit.
    rekeyers.push(
      rekeyer(rekeyDirs[1]!, config, source, target, rekeyGroup, {
        [CRASH_ENV]: "rekey-before-commit",
      }),
    );
    await rekeyers[1]!.waitFor(/Re-keyer 1 of 1 joined the group with partitions/, 60_000);
    await rekeyers[0]!.waitFor(/Re-keyer 1 of 1 joined the group with partitions/, 60_000, 2);
    await producer.send({ topic: source, compression: CompressionTypes.LZ4, messages: secondHalf });
    assert.equal(await rekeyers[1]!.exit(60_000), CRASH_EXIT_CODE, rekeyers[1]!.output);
    assert.match(rekeyers[1]!.output, /stopping dead at rekey-before-commit/);

    // The survivors rebuild every file.
    const survivors = outs.filter((_, i) => i !== victim);
    const expected = await treeDigest(root);
    const deadline = Date.now() + 180_000;
    let found = 0;
    while (found < expected.size) {
      assert.ok(Date.now() < deadline, `only ${found} of ${expected.size} files rebuilt`);
      await sleep(500);
      const trees = await Promise.all(survivors.map((out) => treeDigest(out)));
      found = [...expected.keys()].filter((rel) => trees.some((t) => t.has(rel))).length;
    }
    for (const [i, d] of downloaders.entries()) {
      if (i !== victim) assert.equal(await d.quit(), 0, d.output);
    }
    assert.equal(await rekeyers[0]!.quit(), 0, rekeyers[0]!.output);
  } finally {
    await producer.disconnect();
    for (const p of [...downloaders, ...rekeyers]) await p.kill();
  }
  // Each file once, whole, in one survivor; the killed downloader published nothing; nothing is
  // left in progress.
  const expected = await treeDigest(root);
  const trees = await Promise.all(outs.map((out) => treeDigest(out)));
  assert.equal(trees[victim]!.size, 0);
  for (const [rel, digest] of expected) {
    const copies = trees.map((t) => t.get(rel)).filter((d) => d !== undefined);
    assert.deepEqual(copies, [digest], `${rel}: ${copies.length} copies`);
  }
  for (const [i, out] of outs.entries()) {
    if (i === victim) continue;
    const partial = [];
    for await (const e of Deno.readDir(join(out, STATE_DIR_NAME, "partial"))) partial.push(e.name);
    assert.deepEqual(partial, [], `left in progress in ${out}`);
  }
  assert.doesNotMatch(rekeyers[0]!.output, /ERROR|WARNING/);
  // Downstream (committed records) every chunk is there exactly once; the aborted transaction's
  // records are in the log all the same, where only an uncommitted read sees them.
  const committed = await chunkIdsOn(target, false, messages.length);
  assert.equal(committed.length, messages.length);
  assert.equal(new Set(committed).size, messages.length);
  const all = await chunkIdsOn(target, true, messages.length + 1);
  assert.ok(all.length > messages.length, `${all.length} records, ${messages.length} chunks`);
});

Deno.test("a pipeline that ends by itself: --rekey_to with --exit_when_done forwards everything and exits 0, then three drains on the re-keyed topic rebuild the tree, each file once", async () => {
  const root = await tempDir("rekey_drain_src");
  for (let i = 0; i < 16; i++) {
    await writeRandomFile(join(root, `d${i % 2}/f${i}.bin`), 1_000_000 + 1000 * i);
  }
  const source = await createTopic(4, "rekey_drain_src");
  const target = uniqueTopicName("rekey_drain_dst");
  const chunks = await produceTree(source, root, undefined, 65536, "chunk");
  const config = await fastRejoinConfig(bootstrapServers());
  const logs = await tempDir("rekey_drain_log");
  const forward = rekeyer(logs, config, source, target, uniqueGroupId("rekey_drain"), {}, [
    "--exit_when_done",
  ]);
  try {
    assert.equal(await forward.exit(120_000), 0, forward.output);
  } finally {
    await forward.kill();
  }
  assert.match(forward.output, /Created the topic "[^"]+" with 4 partitions/);
  assert.match(forward.output, new RegExp(`${chunks} records forwarded`));
  // Three hosts: the first takes every partition, and gives the files in progress up as the
  // others join; each exits 0 once the group has read the whole topic.
  const outs = [await tempDir("rd_a"), await tempDir("rd_b"), await tempDir("rd_c")];
  const group = uniqueGroupId("rekey_drain_dl");
  const drain = (out: string) => downloader(out, config, target, group, ["--exit_when_done"]);
  const drains = [drain(outs[0]!)];
  try {
    await drains[0]!.waitFor(/successfully reconstructed/, 60_000);
    drains.push(drain(outs[1]!), drain(outs[2]!));
    for (const d of drains) assert.equal(await d.exit(120_000), 0, d.output);
  } finally {
    for (const d of drains) await d.kill();
  }
  const expected = await treeDigest(root);
  const trees = await Promise.all(outs.map((out) => treeDigest(out)));
  for (const [rel, digest] of expected) {
    const copies = trees.map((t) => t.get(rel)).filter((d) => d !== undefined);
    assert.deepEqual(copies, [digest], `${rel}: ${copies.length} copies`);
  }
  assert.equal(trees.reduce((n, t) => n + t.size, 0), expected.size);
});
