import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { DataFileChunk } from "../wire/chunk_codec.ts";
import { sha512 } from "../wire/sha512.ts";
import { BadChunkError, FileAssembler, type FileAssemblerOptions } from "./file_assembler.ts";
import { Logger } from "../console/logger.ts";
import { Quarantine } from "./quarantine.ts";
import { type FileSystemSync, fileSystemSync, SyncGroups } from "./sync_groups.ts";
import { pageCacheDropper } from "./page_cache.ts";
import { LIBC_PATHS } from "../system/native_library.ts";
import { LibcFiles } from "../system/libc_files.ts";
import { CAN_SEE_PAGE_CACHE, residentPages } from "../../tests/_resident.ts";
import {
  DARWIN_RULES,
  type PathRules,
  POSIX_RULES,
  relativeTarget,
  STATE_DIR_NAME,
} from "./safe_path.ts";

function makeChunks(
  bytes: Uint8Array,
  size: number,
  opts: { name?: string; subdir?: string; mtime?: number | null } = {},
): DataFileChunk[] {
  const fileHash = sha512(bytes);
  const n = Math.ceil(bytes.length / size);
  return Array.from({ length: n }, (_, i) => {
    const data = bytes.slice(i * size, (i + 1) * size);
    return {
      filename: opts.name ?? "f.dat",
      fileHash,
      chunkHash: sha512(data),
      chunkOffsetWrite: i * size,
      chunkI: i + 1,
      nTotalChunks: n,
      subdirStr: opts.subdir ?? "",
      filenameAppend: "",
      data,
      fileMtime: opts.mtime === undefined ? 1700000000.5 : opts.mtime,
    };
  });
}

function random(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

interface Setup {
  dir: string;
  assembler: FileAssembler;
  lines: string[];
  reopen(): Promise<FileAssembler>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  options: Omit<Partial<FileAssemblerOptions>, "outputDir" | "stateDir" | "logger"> = {},
): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "assembler_test_" });
  const lines: string[] = [];
  const opened: FileAssembler[] = [];
  const make = async () => {
    const logger = new Logger({ name: "test", streamLevel: 0, stream: (l) => lines.push(l) });
    const stateDir = join(dir, STATE_DIR_NAME);
    const quarantine = new Quarantine(join(stateDir, "quarantine"), 1024 * 1024);
    await quarantine.open();
    const a = new FileAssembler({ quarantine, ...options, outputDir: dir, stateDir, logger });
    opened.push(a);
    await a.open();
    return a;
  };
  return {
    dir,
    assembler: await make(),
    lines,
    reopen: make,
    async [Symbol.asyncDispose]() {
      for (const a of opened) await a.close().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function add(a: FileAssembler, c: DataFileChunk, time: number | null = null) {
  return await a.addChunk(c, relativeTarget(c.subdirStr, c.filename, c.filenameAppend), { time });
}

async function partialFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(dir, STATE_DIR_NAME, "partial"))) names.push(e.name);
  return names;
}

Deno.test("chunks in any order, with duplicates, rebuild the file under its final name only when complete", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const bytes = random(100_000, 1);
  const chunks = makeChunks(bytes, 16384, { subdir: "a/b", name: "x y ü.dat" });
  const order = [3, 0, 6, 0, 5, 1, 3, 4];
  for (const i of order) {
    const outcome = await add(assembler, chunks[i]!);
    assert.notEqual(outcome.status, "completed");
    await assert.rejects(Deno.stat(join(dir, "a/b/x y ü.dat")), Deno.errors.NotFound);
  }
  const last = await add(assembler, chunks[2]!);
  assert.equal(last.status, "completed");
  await assembler.flush();
  const out = await Deno.readFile(join(dir, "a/b/x y ü.dat"));
  assert.deepEqual(out, bytes);
  const info = await Deno.stat(join(dir, "a/b/x y ü.dat"));
  assert.equal(info.mtime?.getTime(), 1700000000500);
  assert.deepEqual(await partialFiles(dir), []);
  assert.equal((await add(assembler, chunks[1]!)).status, "duplicate");
  await assembler.close();
});

Deno.test("bytes written past a gap are counted until the gap is filled", async () => {
  await using t = await setup();
  const { assembler } = t;
  const a = makeChunks(random(4 * 1000, 2), 1000, { name: "a.dat" });
  const b = makeChunks(random(3 * 1000, 3), 1000, { name: "b.dat" });
  const one = makeChunks(random(500, 4), 1000, { name: "one.dat" });
  assert.equal(assembler.bytesPastGaps, 0);
  await add(assembler, a[2]!);
  await add(assembler, a[3]!);
  await add(assembler, b[1]!);
  assert.equal(assembler.bytesPastGaps, 3000);
  // Contiguous from the start: hashed as they come, nothing waits.
  await add(assembler, one[0]!);
  await add(assembler, b[0]!);
  assert.equal(assembler.bytesPastGaps, 2000, "b's chunk 2 follows chunk 1 now");
  await add(assembler, a[1]!);
  assert.equal(assembler.bytesPastGaps, 3000, "a still misses its first chunk");
  assert.equal((await add(assembler, a[0]!)).status, "completed");
  assert.equal(assembler.bytesPastGaps, 0);
  await add(assembler, b[2]!);
  await assembler.flush();
  assert.equal(assembler.bytesPastGaps, 0);
  await assembler.close();
});

Deno.test("a generation given up no longer counts as bytes past a gap", async () => {
  await using t = await setup({ limits: { maxFiles: 1 } });
  const a = makeChunks(random(3000, 5), 1000, { name: "a.dat" });
  const b = makeChunks(random(3000, 6), 1000, { name: "b.dat" });
  await add(t.assembler, a[2]!);
  assert.equal(t.assembler.bytesPastGaps, 1000);
  // A second file in progress is over the bound: at the flush, a (idle the longest) is given up.
  await add(t.assembler, b[1]!);
  await t.assembler.flush();
  assert.equal(t.assembler.status().givenUp, 1);
  assert.equal(t.assembler.bytesPastGaps, 1000, "only b's chunk is counted");
  await t.assembler.close();
});

Deno.test("a newer generation (more chunks) resets, and the chunk that triggered the reset is written", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const gen1 = makeChunks(random(24_000, 2), 16384);
  const gen2Bytes = random(40_000, 3);
  const gen2 = makeChunks(gen2Bytes, 16384);
  assert.equal((await add(assembler, gen1[0]!)).status, "written");
  const reset = await add(assembler, gen2[1]!);
  assert.deepEqual(reset, { status: "written" });
  assert.equal((await add(assembler, gen1[1]!)).status, "stale");
  assert.equal((await add(assembler, gen2[0]!)).status, "written");
  assert.equal((await add(assembler, gen2[2]!)).status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), gen2Bytes);
  await assembler.close();
});

Deno.test("same chunk count: a newer mtime wins, an unknown or older mtime is stale", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const g1 = makeChunks(random(30_000, 4), 16384, { mtime: 1000 });
  const g2Bytes = random(30_000, 5);
  const g2 = makeChunks(g2Bytes, 16384, { mtime: 2000 });
  const g3 = makeChunks(random(30_000, 6), 16384, { mtime: null });
  await add(assembler, g1[0]!);
  assert.deepEqual(await add(assembler, g2[0]!), { status: "written" });
  assert.equal((await add(assembler, g1[1]!)).status, "stale");
  assert.equal((await add(assembler, g3[1]!)).status, "stale");
  assert.equal((await add(assembler, g2[1]!)).status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), g2Bytes);
  await assembler.close();
});

Deno.test("a shorter re-upload after completion replaces the file without stale trailing bytes", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  for (const c of makeChunks(random(50_000, 7), 16384, { mtime: 1000 })) await add(assembler, c);
  const shorter = random(10_000, 8);
  const outcome = await add(assembler, makeChunks(shorter, 16384, { mtime: 2000 })[0]!);
  assert.equal(outcome.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), shorter);
  await assembler.close();
});

Deno.test("a one-chunk file checked by its chunk hash: its file hash is that hash, compared before publishing", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const bytes = random(5_000, 21);
  const [good] = makeChunks(bytes, 16384, { name: "good.dat" });
  const [bad] = makeChunks(bytes, 16384, { name: "bad.dat" }).map((c) => ({
    ...c,
    fileHash: sha512(new Uint8Array([2])),
  }));
  const [lying] = makeChunks(bytes, 16384, { name: "lying.dat" }).map((c) => ({
    ...c,
    chunkHash: sha512(new Uint8Array([3])),
  }));
  const verifiedAdd = (c: DataFileChunk, verified: Promise<void>) =>
    assembler.addChunk(c, relativeTarget(c.subdirStr, c.filename, c.filenameAppend), {
      time: null,
      verified,
    });
  assert.equal((await verifiedAdd(good!, Promise.resolve())).status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "good.dat")), bytes);
  assert.equal((await verifiedAdd(bad!, Promise.resolve())).status, "mismatch");
  await assert.rejects(Deno.stat(join(dir, "bad.dat")), Deno.errors.NotFound);
  // A failed chunk check is thrown before anything is written.
  await assert.rejects(verifiedAdd(lying!, Promise.reject(new Error("chunk hash"))), /chunk hash/);
  await assert.rejects(Deno.stat(join(dir, "lying.dat")), Deno.errors.NotFound);
  assert.deepEqual(await partialFiles(dir), []);
  await assembler.close();
});

Deno.test("a whole-file hash mismatch goes to the quarantine, never under the final name", async () => {
  await using t = await setup();
  const { dir, assembler, lines } = t;
  const chunks = makeChunks(random(40_000, 9), 16384).map((c) => ({
    ...c,
    fileHash: sha512(new Uint8Array([1])),
  }));
  let last;
  for (const c of chunks) last = await add(assembler, c);
  assert.equal(last?.status, "mismatch");
  await assert.rejects(Deno.stat(join(dir, "f.dat")), Deno.errors.NotFound);
  const kept = last?.status === "mismatch" ? last.keptAt : null;
  assert.ok(kept && kept.includes(join(STATE_DIR_NAME, "quarantine")));
  assert.equal((await Deno.stat(kept)).size, 40_000);
  assert.ok(
    lines.some((l) =>
      l.includes('ERROR: Cannot rebuild "f.dat"') && l.includes("SHA-512 does not match")
    ),
  );
  await assembler.close();
});

Deno.test("after a crash, flushed chunks are resumed from the journal and the file completes", async () => {
  await using t = await setup();
  const { dir, assembler, reopen } = t;
  const bytes = random(200_000, 10);
  const chunks = makeChunks(bytes, 16384, { subdir: "deep/er" });
  for (const c of chunks.slice(0, 6)) await add(assembler, c);
  await assembler.flush();
  await add(assembler, chunks[6]!); // written but never flushed: the crash loses it from the journal
  // No close(): the process "dies" here.
  const second = await reopen();
  assert.deepEqual(second.status().inProgress.map((f) => [f.path, f.chunks, f.total]), [[
    "deep/er/f.dat",
    6,
    13,
  ]]);
  for (const c of chunks.slice(0, 5)) assert.equal((await add(second, c)).status, "duplicate");
  let last;
  for (const c of chunks.slice(6)) last = await add(second, c);
  assert.equal(last?.status, "completed");
  await second.flush();
  assert.deepEqual(await Deno.readFile(join(dir, "deep/er/f.dat")), bytes);
  assert.deepEqual(await partialFiles(dir), []);
  // The completed generation is remembered across restarts.
  const third = await reopen();
  assert.equal((await add(third, chunks[3]!)).status, "duplicate");
  assert.deepEqual(third.status().inProgress, []);
  await third.close();
  await assembler.close();
});

Deno.test("a final file already on disk with the chunk's hash is not rebuilt again", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const bytes = random(20_000, 11);
  await Deno.writeFile(join(dir, "f.dat"), bytes);
  const chunks = makeChunks(bytes, 16384);
  assert.equal((await add(assembler, chunks[1]!)).status, "duplicate");
  assert.deepEqual(assembler.status().inProgress, []);
  await assembler.close();
});

Deno.test("in a folder this run created, only what it published counts as already there", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const first = random(5_000, 13);
  assert.equal(
    (await add(assembler, makeChunks(first, 16384, { subdir: "new" })[0]!)).status,
    "completed",
  );
  // Put there by someone else since: rebuilt over, with the same bytes.
  const other = random(6_000, 14);
  await Deno.writeFile(join(dir, "new", "g.dat"), other);
  const chunk = makeChunks(other, 16384, { subdir: "new", name: "g.dat" })[0]!;
  assert.equal((await add(assembler, chunk)).status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "new", "g.dat")), other);
  // What it published is known without looking at the disk.
  const again = makeChunks(first, 16384, { subdir: "new" })[0]!;
  assert.equal((await add(assembler, again)).status, "duplicate");
  // After a restart the folder is no longer this run's: the file on disk is recognised.
  await assembler.close();
  const reopened = await t.reopen();
  const unknown = random(7_000, 15);
  await Deno.writeFile(join(dir, "new", "h.dat"), unknown);
  const known = makeChunks(unknown, 16384, { subdir: "new", name: "h.dat" })[0]!;
  assert.equal((await add(reopened, known)).status, "duplicate");
});

Deno.test("a folder that is a symlink out of the output directory is refused", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const outside = await Deno.makeTempDir({ prefix: "outside_" });
  try {
    await Deno.symlink(outside, join(dir, "link"));
    const chunks = makeChunks(random(100, 12), 16384, { subdir: "link/x" });
    await assert.rejects(add(assembler, chunks[0]!), BadChunkError);
    const left: string[] = [];
    for await (const e of Deno.readDir(outside)) left.push(e.name);
    assert.deepEqual(left, []);
    await assembler.close();
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("absurd fields are refused before anything is written", async () => {
  await using t = await setup();
  const { assembler } = t;
  const [c] = makeChunks(random(100, 13), 16384);
  for (
    const bad of [
      { ...c!, nTotalChunks: 0 },
      { ...c!, chunkI: 2 },
      { ...c!, chunkI: 0 },
      { ...c!, chunkOffsetWrite: -1 },
      { ...c!, chunkOffsetWrite: 2 ** 40 },
    ]
  ) {
    await assert.rejects(add(assembler, bad), BadChunkError);
  }
  assert.deepEqual(assembler.status().inProgress, []);
  await assembler.close();
});

Deno.test("the rebuilt bytes hash to the file hash (sanity of the test helper)", () => {
  const bytes = random(1000, 14);
  const chunks = makeChunks(bytes, 256);
  const h = createHash("sha512");
  for (const c of chunks) h.update(c.data);
  assert.deepEqual(new Uint8Array(h.digest()), chunks[0]!.fileHash);
});

Deno.test("flushes asked for before the queued one starts share it, and it covers what was written before it started", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const chunks = makeChunks(random(100_000, 16), 16384);
  await add(assembler, chunks[0]!);
  const first = assembler.flush();
  assert.equal(assembler.flush(), first);
  await Promise.resolve(); // the first flush starts
  await add(assembler, chunks[1]!);
  const second = assembler.flush();
  assert.notEqual(second, first);
  assert.equal(assembler.flush(), second);
  await Promise.all([first, second]);
  const [journal] = (await partialFiles(dir)).filter((n) => n.endsWith(".offsets"));
  const lines = (await Deno.readTextFile(join(dir, STATE_DIR_NAME, "partial", journal!)))
    .split("\n").filter((l) => l !== "");
  assert.deepEqual(lines, ["0 16384", "16384 16384"]);
});

Deno.test("a journal line cut short by a crash or a full disk is dropped, never glued to the next one", async () => {
  await using t = await setup();
  const { dir, assembler, reopen } = t;
  const bytes = random(100_000, 15);
  const chunks = makeChunks(bytes, 16384);
  for (const c of chunks.slice(0, 2)) await add(assembler, c);
  await assembler.flush();
  const [journal] = (await partialFiles(dir)).filter((n) => n.endsWith(".offsets"));
  const path = join(dir, STATE_DIR_NAME, "partial", journal!);
  await Deno.writeTextFile(path, "4915", { append: true }); // half of a line "49152 16384"
  const second = await reopen();
  assert.equal(second.status().inProgress[0]?.chunks, 2);
  await add(second, chunks[4]!);
  await second.flush();
  const lines = (await Deno.readTextFile(path)).split("\n").filter((l) => l !== "");
  assert.deepEqual(lines, ["0 16384", "16384 16384", "65536 16384"]);
  let last;
  for (const c of chunks) last = await add(second, c);
  assert.equal(last?.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), bytes);
  await second.close();
  await assembler.close();
});

Deno.test("a last chunk completes while a concurrent flush is closing idle handles (more than 64 files)", async () => {
  // Deterministic interleaving: the moment the open-file limit closes its first idle handle, another
  // consumer writes the last chunk of each file that limit is about to close.
  for (const target of [1, 10, 30]) {
    await using t = await setup();
    const { dir, assembler } = t;
    const files = Array.from(
      { length: 100 },
      (_, k) =>
        makeChunks(new TextEncoder().encode(`file ${k} `.repeat(12)), 40, { name: `f${k}` }),
    );
    for (const f of files) await add(assembler, f[0]!);
    await assembler.flush();
    for (const f of files) await add(assembler, f[1]!);
    const proto = Deno.FsFile.prototype;
    const close = proto.close;
    let other: Promise<unknown> | undefined;
    proto.close = function (this: Deno.FsFile) {
      if (!other && String(new Error().stack).includes("trim")) {
        other = add(assembler, files[target]![2]!);
      }
      return close.call(this);
    };
    try {
      await assembler.flush();
    } finally {
      proto.close = close;
    }
    assert.ok(other, "the open-file limit closed no handle");
    assert.equal(((await other) as { status: string }).status, "completed");
    assert.equal(
      new TextDecoder().decode(await Deno.readFile(join(dir, `f${target}`))),
      files[target]!.map((c) => new TextDecoder().decode(c.data)).join(""),
    );
    await assembler.close();
  }
});

Deno.test("a redelivered chunk of the published generation never discards a newer one in progress", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const g1 = makeChunks(new Uint8Array(100).fill(1), 10, { mtime: null }); // 10 chunks
  const g2 = makeChunks(new Uint8Array(50).fill(2), 10, { mtime: null }); // a smaller re-upload
  for (const c of g1) await add(assembler, c);
  for (const c of g2.slice(0, 3)) assert.equal((await add(assembler, c)).status, "written");
  assert.equal((await add(assembler, g1[0]!)).status, "duplicate");
  let last;
  for (const c of g2.slice(3)) last = await add(assembler, c);
  assert.equal(last?.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), new Uint8Array(50).fill(2));
  await assembler.close();
});

Deno.test("a file whose every chunk was journaled but not yet published is published at the next start", async () => {
  await using t = await setup();
  const { dir, reopen } = t;
  const bytes = random(50_000, 16);
  const chunks = makeChunks(bytes, 16384);
  const first = await reopen();
  for (const c of chunks.slice(0, 3)) await add(first, c);
  await first.flush();
  // The journal gets the last chunk's line, as if the crash came between the journal and the rename.
  const [journal] = (await partialFiles(dir)).filter((n) => n.endsWith(".offsets"));
  const [data] = (await partialFiles(dir)).filter((n) => n.endsWith(".data"));
  const last = chunks[3]!;
  const handle = await Deno.open(join(dir, STATE_DIR_NAME, "partial", data!), { write: true });
  await handle.seek(last.chunkOffsetWrite, Deno.SeekMode.Start);
  await handle.write(last.data);
  handle.close();
  await Deno.writeTextFile(
    join(dir, STATE_DIR_NAME, "partial", journal!),
    `${last.chunkOffsetWrite} ${last.data.length}\n`,
    {
      append: true,
    },
  );
  const second = await reopen();
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), bytes);
  assert.deepEqual(second.status().inProgress, []);
  assert.deepEqual(await partialFiles(dir), []);
  await second.close();
});

async function quarantined(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(dir, STATE_DIR_NAME, "quarantine"))) names.push(e.name);
  return names.sort();
}

Deno.test("a stray chunk with the file's hash never completes it early: chunks must tile the file", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const bytes = random(40_000, 20);
  const chunks = makeChunks(bytes, 16384); // 3 chunks: 0, 16384, 32768
  const strayData = random(10, 21);
  const stray = {
    ...chunks[0]!,
    data: strayData,
    chunkHash: sha512(strayData),
    chunkOffsetWrite: 16384,
  };
  assert.equal((await add(assembler, chunks[0]!)).status, "written");
  assert.equal((await add(assembler, stray)).status, "written");
  // The real chunks no longer fit: the one in the stray chunk's place overlaps it, and the last
  // one lies past what three chunks of these sizes can fill. Nothing completes early.
  await assert.rejects(add(assembler, chunks[2]!), /past what the 3 chunks/);
  await assert.rejects(add(assembler, chunks[1]!), /overlap/);
  await assert.rejects(Deno.stat(join(dir, "f.dat")), Deno.errors.NotFound);
  assert.deepEqual(await quarantined(dir), []);
  assert.equal(assembler.status().inProgress[0]?.chunks, 2);
});

Deno.test("a failed whole-file check is not remembered: a later upload of the file is rebuilt", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const bytes = random(40_000, 22);
  const good = makeChunks(bytes, 16384);
  // The same file hash, but one chunk carries other bytes (a file modified during its upload).
  const changed = random(16384, 23);
  const bad = good.map((c, i) => i === 1 ? { ...c, data: changed, chunkHash: sha512(changed) } : c);
  let last;
  for (const c of bad) last = await add(assembler, c, 1000 + c.chunkI);
  assert.equal(last?.status, "mismatch");
  // Its own chunks delivered again are skipped, not rebuilt into another mismatch.
  assert.equal((await add(assembler, bad[0]!, 1001)).status, "stale");
  // The uploader sends the file again, later: it is rebuilt.
  for (const c of good) last = await add(assembler, c, 5000 + c.chunkI);
  assert.equal(last?.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), bytes);
});

Deno.test("uploads are ordered by upload time: a later upload with an older mtime wins (a restored backup)", async () => {
  await using t = await setup();
  const { dir, assembler, lines } = t;
  const newer = random(30_000, 24);
  const restored = random(20_000, 25);
  for (const c of makeChunks(newer, 16384, { mtime: 2000 })) await add(assembler, c, 1000);
  const later = makeChunks(restored, 16384, { mtime: 1000 });
  let last;
  for (const c of later) last = await add(assembler, c, 2000);
  assert.equal(last?.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), restored);
  assert.equal((await Deno.stat(join(dir, "f.dat"))).mtime?.getTime(), 1_000_000);
  // The earlier upload delivered again (a fresh group re-reading the topic) is stale, said once.
  for (const c of makeChunks(newer, 16384, { mtime: 2000 })) {
    assert.equal((await add(assembler, c, 1000)).status, "stale");
  }
  assert.equal(
    lines.filter((l) => l.includes("Skipping the chunks of an earlier upload")).length,
    1,
  );
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), restored);
});

Deno.test("whatever order the partitions deliver two uploads in, the later upload is published", async () => {
  const first = random(30_000, 26);
  const second = random(45_000, 27);
  const a = makeChunks(first, 16384, { mtime: 5000 });
  const b = makeChunks(second, 16384, { mtime: 4000 });
  const orders = [
    [...a.map((c) => [c, 100] as const), ...b.map((c) => [c, 200] as const)],
    [...b.map((c) => [c, 200] as const), ...a.map((c) => [c, 100] as const)],
    [[a[0]!, 100], [b[0]!, 200], [a[1]!, 100], [b[1]!, 200], [b[2]!, 200]] as const,
    [[b[0]!, 200], [a[0]!, 100], [a[1]!, 100], [b[1]!, 200], [b[2]!, 200]] as const,
  ];
  for (const order of orders) {
    await using t = await setup();
    for (const [c, time] of order) await add(t.assembler, c, time);
    await t.assembler.flush();
    assert.deepEqual(await Deno.readFile(join(t.dir, "f.dat")), second);
    assert.deepEqual(await partialFiles(t.dir), []);
  }
});

Deno.test("a revert to the published content while another version is in progress keeps the published file", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const v1 = random(30_000, 28);
  const v2 = random(30_000, 29);
  const c1 = makeChunks(v1, 16384, { mtime: 1000 });
  const c2 = makeChunks(v2, 16384, { mtime: 2000 });
  for (const c of c1) await add(assembler, c, 100);
  assert.equal((await add(assembler, c2[0]!, 200)).status, "written");
  // v1 uploaded again at 300 (reverted): v2 in progress is dropped, v1 stays published.
  assert.equal((await add(assembler, c1[0]!, 300)).status, "duplicate");
  assert.deepEqual(assembler.status().inProgress, []);
  assert.equal((await add(assembler, c2[1]!, 201)).status, "stale");
  await assembler.flush();
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), v1);
  assert.deepEqual(await partialFiles(dir), []);
});

Deno.test("the same content uploaded again after its file was deleted downstream is rebuilt", async () => {
  await using t = await setup();
  const { dir, assembler, lines } = t;
  const bytes = random(30_000, 30);
  const chunks = makeChunks(bytes, 16384);
  for (const c of chunks) await add(assembler, c, 100);
  assert.equal((await add(assembler, chunks[0]!, 100)).status, "duplicate");
  // Still there: a later identical upload changes nothing.
  assert.equal((await add(assembler, chunks[0]!, 500)).status, "duplicate");
  await Deno.remove(join(dir, "f.dat"));
  let last;
  for (const c of chunks) last = await add(assembler, c, 90_000);
  assert.equal(last?.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), bytes);
  assert.ok(lines.some((l) => l.includes("no longer in the output directory; rebuilding it")));
});

Deno.test("the same content uploaded with two chunk sizes: whichever layout completes first is published", async () => {
  const bytes = random(70_000, 31);
  const small = makeChunks(bytes, 4096); // 18 chunks
  const big = makeChunks(bytes, 32768); // 3 chunks
  for (
    const [label, order] of [
      ["interleaved", [
        small[0]!,
        big[0]!,
        small[1]!,
        big[1]!,
        small[2]!,
        big[2]!,
        ...small.slice(3),
      ]],
      ["half of the small ones, then all of the big ones", [
        ...small.slice(0, 9),
        ...big,
        ...small,
      ]],
      ["all small, then big", [...small, ...big]],
    ] as const
  ) {
    await using t = await setup();
    const outcomes = [];
    for (const c of order) outcomes.push((await add(t.assembler, c, 100)).status);
    await t.assembler.flush();
    assert.deepEqual(await Deno.readFile(join(t.dir, "f.dat")), bytes, label);
    assert.equal(outcomes.filter((o) => o === "completed").length, 1, label);
    assert.deepEqual(await partialFiles(t.dir), [], label);
    assert.deepEqual(await quarantined(t.dir), [], label);
    assert.ok(!t.lines.some((l) => l.includes("WARNING") || l.includes("ERROR")), label);
  }
});

Deno.test("a file hash that is not 64 bytes and offsets past what the chunks can fill are refused", async () => {
  await using t = await setup();
  const { assembler } = t;
  const [c] = makeChunks(random(100, 32), 16384);
  await assert.rejects(add(assembler, { ...c!, fileHash: new Uint8Array(256 * 1024) }), /64/);
  await assert.rejects(add(assembler, { ...c!, fileHash: new Uint8Array(0) }), /64/);
  // Two chunks of at most 64 MiB each cannot reach 1 TiB.
  await assert.rejects(
    add(assembler, { ...c!, nTotalChunks: 2, chunkI: 2, chunkOffsetWrite: 2 ** 40 }),
    BadChunkError,
  );
  assert.deepEqual(assembler.status().inProgress, []);
});

Deno.test("a write past the largest file the file system takes fails that record only", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const [c] = makeChunks(random(1, 33), 1);
  const absurd = {
    ...c!,
    filename: "absurd.dat",
    nTotalChunks: 2 ** 30,
    chunkI: 7,
    chunkOffsetWrite: 2 ** 52,
  };
  await assert.rejects(add(assembler, absurd), BadChunkError);
  // Another file goes on.
  const bytes = random(20_000, 34);
  let last;
  for (const ch of makeChunks(bytes, 16384)) last = await add(assembler, ch);
  assert.equal(last?.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), bytes);
});

Deno.test("files in progress past the count limit or idle too long are given up into the quarantine", async () => {
  let now = 1_000_000;
  await using t = await setup({ limits: { maxFiles: 2, maxIdleSeconds: 3600 }, now: () => now });
  const { dir, assembler, lines } = t;
  const files = [0, 1, 2].map((k) => makeChunks(random(20_000, 40 + k), 16384, { name: `f${k}` }));
  for (const f of files) {
    await add(assembler, f[0]!);
    now += 1000;
  }
  await assembler.flush();
  // The least recently active one went.
  assert.deepEqual(assembler.status().inProgress.map((f) => f.path).sort(), ["f1", "f2"]);
  assert.equal(assembler.status().givenUp, 1);
  assert.ok(
    lines.some((l) => l.includes('Giving up "f0" with 1 of 2 chunks: 3 files are in progress')),
  );
  assert.ok((await quarantined(dir)).some((n) => n.endsWith("f0.rejected")));
  now += 3601 * 1000;
  await add(assembler, files[2]![1]!); // f2 completes; f1 is idle too long
  await assembler.flush();
  assert.deepEqual(assembler.status().inProgress, []);
  assert.equal(assembler.status().givenUp, 2);
  assert.deepEqual(await partialFiles(dir), []);
  // A later upload of a given-up file is rebuilt.
  let last;
  for (const c of files[0]!) last = await add(assembler, c, 99_000);
  assert.equal(last?.status, "completed");
});

Deno.test("a folder swapped for a symlink out of the output directory after its first file is refused", async () => {
  await using t = await setup();
  const { dir, assembler } = t;
  const outside = await Deno.makeTempDir({ prefix: "outside_" });
  try {
    const one = makeChunks(random(100, 50), 16384, { subdir: "a", name: "one" });
    assert.equal((await add(assembler, one[0]!)).status, "completed");
    const two = makeChunks(random(40_000, 51), 16384, { subdir: "a", name: "two" });
    await add(assembler, two[0]!);
    await add(assembler, two[1]!);
    await Deno.rename(join(dir, "a"), join(dir, "moved"));
    await Deno.symlink(outside, join(dir, "a"));
    await assert.rejects(add(assembler, two[2]!), /leads outside the output directory/);
    const left: string[] = [];
    for await (const e of Deno.readDir(outside)) left.push(e.name);
    assert.deepEqual(left, []);
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("state files: an unreadable description whose chunks were never committed is removed at start", async () => {
  await using t = await setup();
  const { dir, assembler, reopen, lines } = t;
  const chunks = makeChunks(random(40_000, 52), 16384);
  await add(assembler, chunks[0]!);
  await assembler.flush();
  const partial = join(dir, STATE_DIR_NAME, "partial");
  // A torn description (as an in-place write on a full disk left it) and a temporary file.
  await Deno.writeTextFile(join(partial, "0123456789abcdef0123456789abcdef.json"), "");
  await Deno.writeTextFile(join(partial, "0123456789abcdef0123456789abcdef.data"), "x");
  await Deno.writeTextFile(join(partial, "fedcba9876543210fedcba9876543210.json.tmp"), "{");
  const second = await reopen();
  assert.ok(lines.some((l) => l.includes("Removing the unreadable in-progress description")));
  assert.deepEqual(second.status().inProgress.map((f) => f.chunks), [1]);
  assert.equal(
    (await partialFiles(dir)).filter((n) => n.startsWith("0123") || n.startsWith("fedc")).length,
    0,
  );
  let last;
  for (const c of chunks.slice(1)) last = await add(second, c);
  assert.equal(last?.status, "completed");
});

Deno.test("two spellings of one file on a folding file system: one warning naming both, the later upload wins", async () => {
  const on = (rules: PathRules, c: DataFileChunk) =>
    relativeTarget(c.subdirStr, c.filename, c.filenameAppend, rules);
  const sameFile = (lines: string[]) =>
    lines.filter((l) => l.includes("are the same file on this file system"));
  const upper = makeChunks(random(40_000, 60), 16384, { subdir: "Data", name: "x.bin" });
  const lowerBytes = random(30_000, 61);
  const lower = makeChunks(lowerBytes, 16384, { subdir: "data", name: "X.BIN" });

  // Under the POSIX rules they are two files: no warning.
  await using p = await setup();
  assert.equal(
    (await p.assembler.addChunk(upper[0]!, on(POSIX_RULES, upper[0]!))).status,
    "written",
  );
  assert.equal(
    (await p.assembler.addChunk(lower[0]!, on(POSIX_RULES, lower[0]!))).status,
    "written",
  );
  assert.equal(p.assembler.status().inProgress.length, 2);
  assert.deepEqual(sameFile(p.lines), []);

  // Under the macOS rules they are one: the later upload replaces the earlier one, with one warning.
  await using t = await setup();
  const add = (c: DataFileChunk, time: number) =>
    t.assembler.addChunk(c, on(DARWIN_RULES, c), { time });
  assert.equal((await add(upper[0]!, 1000)).status, "written");
  assert.deepEqual(sameFile(t.lines), []);
  assert.equal((await add(lower[0]!, 2000)).status, "written");
  assert.equal(sameFile(t.lines).length, 1);
  assert.match(
    sameFile(t.lines)[0]!,
    /WARNING: "data\/X\.BIN" and "Data\/x\.bin" are the same file on this file system .*; the later upload wins/,
  );
  assert.deepEqual(t.assembler.status().inProgress.map((f) => f.path), ["data/X.BIN"]);
  // The earlier upload's chunks are now stale, without a second warning.
  assert.equal((await add(upper[1]!, 1001)).status, "stale");
  assert.equal((await add(lower[1]!, 2001)).status, "completed");
  assert.deepEqual(await Deno.readFile(join(t.dir, "data/X.BIN")), lowerBytes);
  await assert.rejects(Deno.stat(join(t.dir, "Data/x.bin")), Deno.errors.NotFound);
  // Against the published file, still no second warning for the same pair.
  assert.equal((await add(upper[2]!, 1002)).status, "stale");
  assert.equal(sameFile(t.lines).length, 1);
});

/** After a file failed: another file still completes, and nothing stays in progress. */
async function assertAnotherFileCompletes(dir: string, assembler: FileAssembler, seed: number) {
  const near = random(20_000, seed);
  let last;
  for (const c of makeChunks(near, 16384, { name: "near.dat" })) last = await add(assembler, c);
  assert.equal(last?.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "near.dat")), near);
  await assembler.flush();
  assert.deepEqual(await partialFiles(dir), []);
}

/** True when this process may mount a tmpfs (root on Linux); the probe leaves nothing behind. */
async function canMountTmpfs(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  const probe = await Deno.makeTempDir({ prefix: "assembler_mount_probe_" });
  try {
    const mount = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
      stdout: "null",
      stderr: "null",
    });
    const mounted = (await mount.output()).success;
    if (mounted) await new Deno.Command("umount", { args: [probe] }).output();
    return mounted;
  } catch {
    return false;
  } finally {
    await Deno.remove(probe, { recursive: true });
  }
}

Deno.test({
  name:
    "a folder on another file system (EXDEV on publish) fails that file only, into the quarantine",
  ignore: !(await canMountTmpfs()),
  fn: async () => {
    await using t = await setup();
    const { dir, assembler, lines } = t;
    const mnt = join(dir, "mnt");
    await Deno.mkdir(mnt);
    const mount = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt],
    });
    assert.ok((await mount.output()).success);
    try {
      const far = random(20_000, 50);
      const chunks = makeChunks(far, 16384, { subdir: "mnt", name: "far.dat" });
      await add(assembler, chunks[0]!);
      await assert.rejects(
        add(assembler, chunks[1]!),
        (error: Error) =>
          error instanceof BadChunkError &&
          /Cannot place "mnt\/far\.dat" in the output directory: .*(os error 18|cross-device|EXDEV)/i
            .test(error.message),
      );
      await assert.rejects(Deno.stat(join(mnt, "far.dat")), Deno.errors.NotFound);
      assert.ok((await quarantined(dir)).some((n) => n.includes("far.dat")), lines.join("\n"));
      assert.deepEqual(assembler.status().inProgress, []);
      await assertAnotherFileCompletes(dir, assembler, 51);
    } finally {
      await new Deno.Command("umount", { args: ["-l", mnt] }).output();
    }
  },
});

/** Makes `dir` immutable (nothing can be created in it, even by root); false where refused. */
async function setImmutable(dir: string, on: boolean): Promise<boolean> {
  try {
    const chattr = new Deno.Command("chattr", {
      args: [on ? "+i" : "-i", dir],
      stdout: "null",
      stderr: "null",
    });
    return (await chattr.output()).success;
  } catch {
    return false;
  }
}

Deno.test("a folder of the tree that refuses new files (EPERM) fails that file only, into the quarantine", async (t) => {
  await using s = await setup();
  const { dir, assembler } = s;
  const locked = join(dir, "locked");
  await Deno.mkdir(locked);
  if (!(await setImmutable(locked, true))) {
    await t.step({ name: "skipped: chattr +i is refused here", ignore: true, fn: () => {} });
    return;
  }
  try {
    for (const subdir of ["locked", "locked/deeper"]) {
      const chunks = makeChunks(random(20_000, 60), 16384, { subdir, name: "x.dat" });
      let error: unknown;
      for (const c of chunks) await add(assembler, c).catch((e) => (error = e));
      assert.ok(error instanceof BadChunkError, `${subdir}: ${error}`);
      assert.match(String(error), /Operation not permitted|os error 1\b|EPERM/);
      assert.deepEqual(assembler.status().inProgress, []);
    }
    await assertAnotherFileCompletes(dir, assembler, 61);
  } finally {
    await setImmutable(locked, false);
  }
});

/** A file system sync that counts its calls, and fails them if told. */
class CountingSync implements FileSystemSync {
  syncs = 0;
  /** A failing sync fails once `gate` resolves. */
  constructor(
    readonly real: FileSystemSync | undefined,
    readonly fail = false,
    readonly gate: Promise<void> = Promise.resolve(),
  ) {}
  async sync(): Promise<void> {
    this.syncs++;
    if (this.fail) {
      await this.gate;
      throw new Error("EIO");
    }
    await this.real!.sync();
  }
  close(): void {
    this.real?.close();
  }
}

/** Rebuilds `n` one-chunk files of 64 KiB at once; returns their paths and bytes. */
async function manySmallFiles(assembler: FileAssembler, dir: string, n: number) {
  const files = Array.from({ length: n }, (_, i) => ({
    path: join(dir, "small", `s${i}.bin`),
    bytes: random(65536, 100 + i),
  }));
  const chunks = files.map((f, i) =>
    makeChunks(f.bytes, 65536, { subdir: "small", name: `s${i}.bin` })[0]!
  );
  const outcomes = await Promise.all(chunks.map((c) => add(assembler, c)));
  assert.deepEqual(outcomes.map((o) => o.status), Array(n).fill("completed"));
  return files;
}

/** libc's file calls (these tests may write anywhere), recording the paths they open. */
function countingLibc(n = 0) {
  const libc = LibcFiles.forFolder(Deno.cwd());
  assert.ok(libc, "libc's file calls on this system");
  const opened: string[] = [];
  const { promise: openedN, resolve } = Promise.withResolvers<void>();
  const open = libc.open.bind(libc);
  libc.open = (path, flags) => {
    opened.push(path);
    if (opened.length === n) resolve();
    return open(path, flags);
  };
  /** `openedN` resolves once `n` files were opened. */
  return { libc, opened, openedN, [Symbol.dispose]: () => libc.close() };
}

/** True when none of the file's pages is dirty: the kernel then lets them all go. */
function clean(path: string, length: number): boolean {
  pageCacheDropper(LIBC_PATHS)!(path, length);
  return residentPages(path, length) === 0;
}

Deno.test({
  name: "one-chunk files completing together are made durable by one syncfs each group",
  ignore: !CAN_SEE_PAGE_CACHE,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "assembler_test_" });
    const counting = new CountingSync(fileSystemSync(dir));
    assert.ok(counting.real, "syncfs on this system");
    using libc = countingLibc();
    await using t = await setup({ syncGroups: new SyncGroups(counting), libcFiles: libc.libc });
    const files = await manySmallFiles(t.assembler, t.dir, 20);
    assert.ok(counting.syncs >= 1 && counting.syncs < 20, `${counting.syncs} syncfs for 20 files`);
    // Written through libc, which skips Deno's per-path permission check; a file of two chunks
    // (synced on its own) is not.
    assert.equal(libc.opened.length, 20);
    for (const f of files) {
      assert.equal((await Deno.stat(f.path)).mtime?.getTime(), 1700000000500, "its mtime is set");
    }
    const two = random(1000, 7);
    for (const c of makeChunks(two, 600, { subdir: "small", name: "two.bin" })) {
      await add(t.assembler, c);
    }
    assert.deepEqual(await Deno.readFile(join(t.dir, "small", "two.bin")), two);
    assert.equal(libc.opened.length, 20);
    for (const f of files) {
      assert.ok(clean(f.path, f.bytes.length), `${f.path} is on disk`);
      assert.deepEqual(await Deno.readFile(f.path), f.bytes);
    }
    await Deno.remove(dir);
  },
});

Deno.test({
  name: "when syncfs fails, one-chunk files are synced one by one before they are published",
  ignore: !CAN_SEE_PAGE_CACHE,
  fn: async () => {
    // The syncfs fails once all 20 files were opened (through libc, while groups run), or after
    // 10 s (the count below then says what went wrong).
    using libc = countingLibc(20);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gate = Promise.race([
      libc.openedN,
      new Promise<void>((resolve) => timer = setTimeout(resolve, 10_000)),
    ]).finally(() => clearTimeout(timer));
    const failing = new CountingSync(undefined, true, gate);
    await using t = await setup({ syncGroups: new SyncGroups(failing), libcFiles: libc.libc });
    const files = await manySmallFiles(t.assembler, t.dir, 20);
    assert.equal(failing.syncs, 1, "no syncfs after one failed");
    // Opened through libc while groups were running: each synced with its own fdatasync.
    assert.equal(libc.opened.length, 20);
    for (const f of files) {
      assert.ok(clean(f.path, f.bytes.length), `${f.path} is on disk`);
      assert.deepEqual(await Deno.readFile(f.path), f.bytes);
    }
  },
});
