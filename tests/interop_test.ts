/**
 * Interoperability with the real OpenMSIStream 1.8.8 (installed into `.venv/openmsistream` on
 * first use by `ensureOpenMsiStream()`):
 *
 * - its `UploadDataFile` and `DataFileUploadDirectory` (LZ4, librdkafka's partitioner) produce
 *   chunks that our CLI rebuilds byte-identical, including re-uploads of a changed file;
 * - chunks produced by our `produceFiles` are rebuilt byte-identical by its
 *   `DataFileDownloadDirectory`.
 *
 * Every test uses its own 4-partition topic and consumer group.
 */
import assert from "node:assert/strict";
import { registerCodecs } from "../src/wire/compression.ts";
import { STATE_DIR_NAME } from "../src/store/safe_path.ts";
import {
  assertSameTree,
  chunkMessagesOfTree,
  CliProcess,
  join,
  produceTree,
  startDownloader,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import {
  bootstrapServers,
  createTopic,
  deleteTopic,
  endOffsets,
  testKafka,
  uniqueGroupId,
} from "./_kafka.ts";
import {
  ensureOpenMsiStream,
  type PythonProcessHandle,
  startPythonDownloader,
  startUploadDirectory,
  uploadFile,
  waitForUploaded,
} from "../tools/openmsistream_venv.ts";

const SMALL_CHUNK = 16384;
const DEFAULT_CHUNK = 524288;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Our CLI's line for a rebuilt file. */
function ourCompletion(rel: string): RegExp {
  return new RegExp(`File ${escapeRegExp(rel)} successfully reconstructed from stream`);
}

/** Starts our CLI on `topic` with the shipped `local_broker_test` config and waits until it runs. */
async function startOurCli(
  out: string,
  topic: string,
  group: string,
  threads = 2,
): Promise<CliProcess> {
  const cli = startDownloader(out, topic, group, "--n_threads", String(threads));
  await cli.waitFor(/Will reconstruct files/, 60_000);
  return cli;
}

/** Kills whatever is still running (a failed test), so nothing leaks into the next one. */
async function cleanUp(cli: CliProcess | undefined, ...py: (PythonProcessHandle | undefined)[]) {
  await Promise.all([
    cli?.kill().catch(() => {}),
    ...py.map((p) => p?.kill().catch(() => {})),
  ]);
}

/** Asserts that every rebuilt file in `rels` carries the source file's mtime (ours restores it). */
async function assertSameMtimes(src: string, out: string, rels: readonly string[]) {
  for (const rel of rels) {
    const [a, b] = await Promise.all([Deno.stat(join(src, rel)), Deno.stat(join(out, rel))]);
    const diff = Math.abs((a.mtime?.getTime() ?? 0) - (b.mtime?.getTime() ?? -1e9));
    assert.ok(diff <= 1, `${rel}: mtime ${b.mtime?.toISOString()} != ${a.mtime?.toISOString()}`);
  }
}

/** Asserts that our CLI logged no warning or error (a clean interop run has nothing to warn about). */
function assertNoWarnings(output: string) {
  const bad = output.split("\n").filter((l) => /\b(WARNING|ERROR|CRITICAL)\b|Skipping/.test(l));
  assert.deepEqual(bad, [], `our CLI warned:\n${bad.join("\n")}`);
}

async function totalMessages(topic: string): Promise<bigint> {
  let sum = 0n;
  for (const high of (await endOffsets(topic)).values()) sum += high;
  return sum;
}

Deno.test("interop: files uploaded by OpenMSIStream's UploadDataFile are rebuilt byte-identical by our CLI", async () => {
  await ensureOpenMsiStream();
  const src = await tempDir("interop_upload_src");
  const pyLogs = await tempDir("interop_upload_logs");
  const out = await tempDir("interop_upload_out");
  const files: { name: string; size: number; chunkSize?: number }[] = [
    { name: "one byte.bin", size: 1, chunkSize: SMALL_CHUNK },
    { name: "exactly one small chunk.dat", size: SMALL_CHUNK, chunkSize: SMALL_CHUNK },
    { name: "small chunks.dat", size: 7 * SMALL_CHUNK + 5, chunkSize: SMALL_CHUNK },
    { name: "exactly one default chunk.dat", size: DEFAULT_CHUNK },
    { name: "one default chunk plus one.dat", size: DEFAULT_CHUNK + 1 },
    { name: "fifty_mb.dat", size: 50_000_000 },
    { name: "Größe & Maß – café crème ñ 日本語.txt", size: 40_000, chunkSize: SMALL_CHUNK },
  ];
  for (const f of files) await writeRandomFile(join(src, f.name), f.size);
  const topic = await createTopic(4, "interop-upload-file");
  const group = uniqueGroupId("interop-upload-file");
  let cli: CliProcess | undefined;
  try {
    cli = await startOurCli(out, topic, group);
    // Two uploaders at a time (a 2-core machine): each is a Python process that exits by itself.
    for (let i = 0; i < files.length; i += 2) {
      await Promise.all(
        files.slice(i, i + 2).map(async (f) => {
          const result = await uploadFile({
            bootstrapServers: bootstrapServers(),
            topic,
            file: join(src, f.name),
            loggerFilePath: pyLogs,
            ...(f.chunkSize ? { chunkSize: f.chunkSize } : {}),
          });
          assert.ok(result.ok, `UploadDataFile ${f.name} failed:\n${result.output}`);
        }),
      );
    }
    // Their uploader used the chunk size it was given: one message per chunk.
    const chunks = files.reduce(
      (n, f) => n + Math.ceil(f.size / (f.chunkSize ?? DEFAULT_CHUNK)),
      0,
    );
    assert.equal(await totalMessages(topic), BigInt(chunks));
    for (const f of files) await cli.waitFor(ourCompletion(f.name), 180_000);
    await waitForCommitted(group, topic);
    assert.equal(await cli.quit(), 0);
    assertNoWarnings(cli.output);
    await assertSameTree(src, out);
    await assertSameMtimes(src, out, files.map((f) => f.name));
    await Deno.remove(src, { recursive: true });
    await Deno.remove(out, { recursive: true });
  } finally {
    await cleanUp(cli);
  }
});

Deno.test("interop: a tree uploaded by OpenMSIStream's DataFileUploadDirectory --upload_existing is rebuilt byte-identical by our CLI", async () => {
  await ensureOpenMsiStream();
  const src = await tempDir("interop_dir_src");
  const out = await tempDir("interop_dir_out");
  const uploaded: [string, number][] = [
    ["top level.dat", 1000],
    ["one.bin", 1],
    ["Messdaten/Größe 1/über alles.bin", 3 * SMALL_CHUNK],
    ["Messdaten/Größe 1/tief/noch tiefer/α β γ.dat", 100_000],
    ["café crème/naïve résumé.txt", SMALL_CHUNK + 1],
    ["日本語 フォルダ/データ ファイル.csv", SMALL_CHUNK],
    ["a/b/c/d/e/deep.dat", 2_000_000],
  ];
  // The uploader's default regex and its name rule reject these.
  const rejected: [string, number][] = [
    [".hidden.dat", 100],
    ["sub/.also hidden.txt", 100],
    ["catalog.csv", 100],
    ["blog/entry.dat", 100],
    ["notes.log", 100],
  ];
  for (const [rel, size] of [...uploaded, ...rejected]) await writeRandomFile(join(src, rel), size);
  const topic = await createTopic(4, "interop-upload-dir");
  const group = uniqueGroupId("interop-upload-dir");
  let cli: CliProcess | undefined;
  let uploader: PythonProcessHandle | undefined;
  try {
    cli = await startOurCli(out, topic, group, 4);
    uploader = await startUploadDirectory({
      bootstrapServers: bootstrapServers(),
      topic,
      dir: src,
      chunkSize: SMALL_CHUNK,
      watchdogLagTime: 1,
    });
    await uploader.waitForLine(/Will upload files in/, 60_000);
    const rels = uploaded.map(([rel]) => rel);
    await waitForUploaded(src, topic, rels, 120_000);
    for (const rel of rels) await cli.waitFor(ourCompletion(rel), 120_000);
    const stopped = await uploader.stop();
    assert.equal(stopped.code, 0, stopped.output);
    assert.ok(!stopped.timedOut);
    await waitForCommitted(group, topic);
    assert.equal(await cli.quit(), 0);
    assertNoWarnings(cli.output);
    const chunks = uploaded.reduce((n, [, size]) => n + Math.ceil(size / SMALL_CHUNK), 0);
    assert.equal(await totalMessages(topic), BigInt(chunks));
    const skip = new Set(rejected.map(([rel]) => rel));
    await assertSameTree(src, out, (rel) => !rel.startsWith("LOGS/") && !skip.has(rel));
    await assertSameMtimes(src, out, rels);
  } finally {
    await cleanUp(cli, uploader);
  }
});

Deno.test("interop: a file changed and re-uploaded by DataFileUploadDirectory while our CLI runs ends as the newest version, longer or shorter", async () => {
  await ensureOpenMsiStream();
  const src = await tempDir("interop_gen_src");
  const out = await tempDir("interop_gen_out");
  const rel = "Versionen/gen file ü.dat";
  const path = join(src, rel);
  const topic = await createTopic(4, "interop-generations");
  const group = uniqueGroupId("interop-generations");
  // v1; a longer v2; a much shorter v3 (fewer chunks); v4 as long as v3 (same chunk count, newer
  // mtime); a 1-byte v5.
  const sizes = [200_000, 300_000, 50_000, 50_000, 1];
  let cli: CliProcess | undefined;
  let uploader: PythonProcessHandle | undefined;
  try {
    await writeRandomFile(path, sizes[0]!);
    cli = await startOurCli(out, topic, group);
    uploader = await startUploadDirectory({
      bootstrapServers: bootstrapServers(),
      topic,
      dir: src,
      chunkSize: SMALL_CHUNK,
      watchdogLagTime: 1,
    });
    await uploader.waitForLine(/Will upload files in/, 60_000);
    for (const [i, size] of sizes.entries()) {
      if (i > 0) {
        // A new mtime for sure, then the new content (the uploader waits 1 s of quiet).
        await new Promise((r) => setTimeout(r, 50));
        await writeRandomFile(path, size);
      }
      await cli.waitFor(ourCompletion(rel), 120_000, i + 1);
      await assertSameTree(src, out, (r) => r === rel);
      assert.equal((await Deno.stat(join(out, rel))).size, size);
    }
    const stopped = await uploader.stop();
    assert.equal(stopped.code, 0, stopped.output);
    await waitForCommitted(group, topic);
    assert.equal(await cli.quit(), 0);
    assert.doesNotMatch(cli.output, /ERROR|Skipping/);
    await assertSameTree(src, out, (r) => r === rel);
  } finally {
    await cleanUp(cli, uploader);
  }
});

// Both generations are already in the topic when our CLI starts (it was down during both uploads,
// or lags behind): chunks of the two generations meet in any order across the 4 partitions.
const BACKLOG_CASES: { name: string; first: number; second: number }[] = [
  { name: "grew", first: 50_000, second: 300_000 },
  { name: "same chunk count, newer mtime", first: 100_000, second: 100_000 },
  // The newer upload is shorter: its known, newer mtime wins over the chunk count.
  { name: "shrank", first: 300_000, second: 50_000 },
];

for (const c of BACKLOG_CASES) {
  Deno.test({
    name:
      `interop: two uploads by UploadDataFile waiting in the topic before our CLI starts: the newer wins (${c.name})`,
    fn: async () => {
      await ensureOpenMsiStream();
      const src = await tempDir("interop_backlog_src");
      const pyLogs = await tempDir("interop_backlog_logs");
      const out = await tempDir("interop_backlog_out");
      const name = "backlog ü.dat";
      const path = join(src, name);
      const topic = await createTopic(4, "interop-backlog");
      const group = uniqueGroupId("interop-backlog");
      for (const size of [c.first, c.second]) {
        await new Promise((r) => setTimeout(r, 50)); // a strictly newer mtime
        await writeRandomFile(path, size);
        const result = await uploadFile({
          bootstrapServers: bootstrapServers(),
          topic,
          file: path,
          chunkSize: SMALL_CHUNK,
          loggerFilePath: pyLogs,
        });
        assert.ok(result.ok, `UploadDataFile failed:\n${result.output}`);
      }
      let cli: CliProcess | undefined;
      try {
        cli = await startOurCli(out, topic, group);
        await cli.waitFor(ourCompletion(name), 120_000);
        // Every chunk was handled once all offsets are committed.
        await waitForCommitted(group, topic);
        await cli.send("check");
        await cli.waitFor(/files completely reconstructed so far/);
        assert.equal(await cli.quit(), 0);
        assert.doesNotMatch(cli.output, /in progress: /, "a generation was left in progress");
        await assertSameTree(src, out);
      } finally {
        await cleanUp(cli);
      }
    },
  });
}

// The same content uploaded in two chunk layouts is one file, not an attack: an upload retried
// with another --chunk_size, whole or cut short, publishes the file once, with no warning and
// nothing quarantined, whichever layout the partitions deliver first.
const LAYOUT_CASES = [
  { name: "two whole uploads, 16 KiB then 512 KiB chunks", firstChunks: Infinity },
  { name: "half of a 16 KiB upload, then a whole 512 KiB upload", firstChunks: 0.5 },
];

for (const c of LAYOUT_CASES) {
  Deno.test(`interop: the same content uploaded with two chunk sizes is rebuilt once, silently (${c.name})`, async () => {
    await ensureOpenMsiStream();
    const src = await tempDir("interop_layout_src");
    const pyLogs = await tempDir("interop_layout_logs");
    const out = await tempDir("interop_layout_out");
    const name = "layouts.dat";
    const path = join(src, name);
    await writeRandomFile(path, 1_200_000);
    const topic = await createTopic(4, "interop-layout");
    const group = uniqueGroupId("interop-layout");
    let cli: CliProcess | undefined;
    try {
      if (c.firstChunks === Infinity) {
        const first = await uploadFile({
          bootstrapServers: bootstrapServers(),
          topic,
          file: path,
          chunkSize: SMALL_CHUNK,
          loggerFilePath: pyLogs,
        });
        assert.ok(first.ok, `UploadDataFile failed:\n${first.output}`);
      } else {
        // An upload cut short: the first half of its chunks, the same wire format.
        const messages = await chunkMessagesOfTree(src, SMALL_CHUNK);
        const half = messages.slice(0, Math.ceil(messages.length * c.firstChunks));
        registerCodecs();
        const producer = testKafka().producer();
        await producer.connect();
        try {
          await producer.send({ topic, messages: half });
        } finally {
          await producer.disconnect();
        }
      }
      const second = await uploadFile({
        bootstrapServers: bootstrapServers(),
        topic,
        file: path,
        loggerFilePath: pyLogs,
      });
      assert.ok(second.ok, `UploadDataFile failed:\n${second.output}`);
      cli = await startOurCli(out, topic, group);
      await cli.waitFor(ourCompletion(name), 120_000);
      await waitForCommitted(group, topic);
      await cli.send("check");
      await cli.waitFor(/files completely reconstructed so far/);
      assert.equal(await cli.quit(), 0);
      assertNoWarnings(cli.output);
      assert.doesNotMatch(cli.output, /in progress: /, "a layout was left in progress");
      assert.equal(cli.output.match(ourCompletion(name))?.length, 1, "published more than once");
      await assertSameTree(src, out);
      const quarantine = join(out, STATE_DIR_NAME, "quarantine");
      const kept = await Array.fromAsync(Deno.readDir(quarantine)).catch(() => []);
      assert.deepEqual(kept.map((e) => e.name), [], "records quarantined");
      const partial = await Array.fromAsync(Deno.readDir(join(out, STATE_DIR_NAME, "partial")));
      assert.deepEqual(partial.map((e) => e.name), [], "files left in partial/");
    } finally {
      await cleanUp(cli);
      await deleteTopic(topic).catch(() => {});
      for (const dir of [src, pyLogs, out]) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
  });
}

Deno.test("interop: files produced by our chunk producer, keyed by file (its default) or per chunk, are rebuilt byte-identical by OpenMSIStream's DataFileDownloadDirectory", async () => {
  await ensureOpenMsiStream();
  const src = await tempDir("interop_ours_src");
  const out = await tempDir("interop_ours_out");
  const defaultChunked: [string, number][] = [
    ["one.bin", 1],
    ["a/exactly one chunk.dat", DEFAULT_CHUNK],
    ["a/b/one chunk plus one.dat", DEFAULT_CHUNK + 1],
    ["a/b/c/five_mb.dat", 5_000_000],
    ["Größe/über café – ñ 日本語.txt", 12_345],
  ];
  const smallChunked: [string, number][] = [
    ["small/exactly one small chunk.dat", SMALL_CHUNK],
    ["small/tief/viele kleine Stücke.dat", 9 * SMALL_CHUNK + 17],
  ];
  for (const [rel, size] of [...defaultChunked, ...smallChunked]) {
    await writeRandomFile(join(src, rel), size);
  }
  const topic = await createTopic(4, "interop-ours");
  const group = uniqueGroupId("interop-ours");
  let downloader: PythonProcessHandle | undefined;
  try {
    await produceTree(
      topic,
      src,
      defaultChunked.map(([rel]) => join(src, rel)),
      undefined,
      "file",
    );
    await produceTree(
      topic,
      src,
      smallChunked.map(([rel]) => join(src, rel)),
      SMALL_CHUNK,
      "chunk",
    );
    downloader = await startPythonDownloader({
      bootstrapServers: bootstrapServers(),
      topic,
      outputDir: out,
      consumerGroupId: group,
      nThreads: 2,
    });
    for (const [rel] of [...defaultChunked, ...smallChunked]) {
      await downloader.waitForLine(`File ${rel} successfully reconstructed from stream`, 120_000);
    }
    const stopped = await downloader.stop();
    assert.equal(stopped.code, 0, stopped.output);
    assert.ok(!stopped.timedOut);
    assert.doesNotMatch(stopped.output, /not matched after reconstruction|Traceback|ERROR/);
    // treeDigest leaves out the reference's own DataFileDownloadDirectory.log.
    await assertSameTree(src, out);
  } finally {
    await cleanUp(undefined, downloader);
  }
});
