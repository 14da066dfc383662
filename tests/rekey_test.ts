/**
 * The re-keying stage against a real broker, with processes as hosts: a topic of 8 partitions
 * filled by OpenMSIStream's own uploader classes (librdkafka, chunks keyed one by one) is
 * forwarded by `--rekey_to` to a topic keyed by file, which three downloader processes in one
 * group, each with its own output directory, rebuild: every file whole, once, in one of them.
 */
import assert from "node:assert/strict";
import { CliProcess, join, sleep, tempDir, treeDigest, writeRandomFile } from "./_cli.ts";
import { bootstrapServers, createTopic, endOffsets, uniqueGroupId } from "./_kafka.ts";
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
      downloaders.push(
        new CliProcess([
          out,
          "--config",
          "local_broker_test",
          "--topic_name",
          target,
          "--consumer_group_id",
          group,
          "--n_threads",
          "1",
        ]),
      );
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
