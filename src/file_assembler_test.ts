import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { type DataFileChunk, sha512 } from "./chunk_codec.ts";
import { BadChunkError, FileAssembler } from "./file_assembler.ts";
import { Logger } from "./logger.ts";
import { Quarantine } from "./quarantine.ts";
import { relativeTarget, STATE_DIR_NAME } from "./safe_path.ts";

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
}

async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "assembler_test_" });
  const lines: string[] = [];
  const make = async () => {
    const logger = new Logger({ name: "test", streamLevel: 0, stream: (l) => lines.push(l) });
    const stateDir = join(dir, STATE_DIR_NAME);
    const quarantine = new Quarantine(join(stateDir, "quarantine"), 1024 * 1024);
    await quarantine.open();
    const a = new FileAssembler({ outputDir: dir, stateDir, logger, quarantine });
    await a.open();
    return a;
  };
  return { dir, assembler: await make(), lines, reopen: make };
}

async function add(a: FileAssembler, c: DataFileChunk) {
  return await a.addChunk(c, relativeTarget(c.subdirStr, c.filename, c.filenameAppend));
}

async function partialFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(dir, STATE_DIR_NAME, "partial"))) names.push(e.name);
  return names;
}

Deno.test("chunks in any order, with duplicates, rebuild the file under its final name only when complete", async () => {
  const { dir, assembler } = await setup();
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

Deno.test("a newer generation (more chunks) resets, and the chunk that triggered the reset is written", async () => {
  const { dir, assembler } = await setup();
  const gen1 = makeChunks(random(24_000, 2), 16384);
  const gen2Bytes = random(40_000, 3);
  const gen2 = makeChunks(gen2Bytes, 16384);
  assert.equal((await add(assembler, gen1[0]!)).status, "written");
  const reset = await add(assembler, gen2[1]!);
  assert.deepEqual(reset, { status: "written", reset: true });
  assert.equal((await add(assembler, gen1[1]!)).status, "stale");
  assert.equal((await add(assembler, gen2[0]!)).status, "written");
  assert.equal((await add(assembler, gen2[2]!)).status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), gen2Bytes);
  await assembler.close();
});

Deno.test("same chunk count: a newer mtime wins, an unknown or older mtime is stale", async () => {
  const { dir, assembler } = await setup();
  const g1 = makeChunks(random(30_000, 4), 16384, { mtime: 1000 });
  const g2Bytes = random(30_000, 5);
  const g2 = makeChunks(g2Bytes, 16384, { mtime: 2000 });
  const g3 = makeChunks(random(30_000, 6), 16384, { mtime: null });
  await add(assembler, g1[0]!);
  assert.deepEqual(await add(assembler, g2[0]!), { status: "written", reset: true });
  assert.equal((await add(assembler, g1[1]!)).status, "stale");
  assert.equal((await add(assembler, g3[1]!)).status, "stale");
  assert.equal((await add(assembler, g2[1]!)).status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), g2Bytes);
  await assembler.close();
});

Deno.test("a shorter re-upload after completion replaces the file without stale trailing bytes", async () => {
  const { dir, assembler } = await setup();
  for (const c of makeChunks(random(50_000, 7), 16384, { mtime: 1000 })) await add(assembler, c);
  const shorter = random(10_000, 8);
  const outcome = await add(assembler, makeChunks(shorter, 16384, { mtime: 2000 })[0]!);
  assert.equal(outcome.status, "completed");
  assert.deepEqual(await Deno.readFile(join(dir, "f.dat")), shorter);
  await assembler.close();
});

Deno.test("a whole-file hash mismatch goes to the quarantine, never under the final name", async () => {
  const { dir, assembler, lines } = await setup();
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
  const { dir, assembler, reopen } = await setup();
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
  const { dir, assembler } = await setup();
  const bytes = random(20_000, 11);
  await Deno.writeFile(join(dir, "f.dat"), bytes);
  const chunks = makeChunks(bytes, 16384);
  assert.equal((await add(assembler, chunks[1]!)).status, "duplicate");
  assert.deepEqual(assembler.status().inProgress, []);
  await assembler.close();
});

Deno.test("a folder that is a symlink out of the output directory is refused", async () => {
  const { dir, assembler } = await setup();
  const outside = await Deno.makeTempDir({ prefix: "outside_" });
  await Deno.symlink(outside, join(dir, "link"));
  const chunks = makeChunks(random(100, 12), 16384, { subdir: "link/x" });
  await assert.rejects(add(assembler, chunks[0]!), BadChunkError);
  const left: string[] = [];
  for await (const e of Deno.readDir(outside)) left.push(e.name);
  assert.deepEqual(left, []);
  await assembler.close();
});

Deno.test("absurd fields are refused before anything is written", async () => {
  const { assembler } = await setup();
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

Deno.test("a journal line cut short by a crash or a full disk is dropped, never glued to the next one", async () => {
  const { dir, assembler, reopen } = await setup();
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
    const { dir, assembler } = await setup();
    const files = Array.from(
      { length: 100 },
      (_, k) =>
        makeChunks(new TextEncoder().encode(`file ${k} `.repeat(12)), 40, { name: `f${k}` }),
    );
    for (const f of files) await add(assembler, f[0]!);
    await assembler.flush();
    for (const f of files) await add(assembler, f[1]!);
    const probe = await open(join(dir, "probe"), "w");
    const proto = Object.getPrototypeOf(probe);
    await probe.close();
    const close = proto.close;
    let other: Promise<unknown> | undefined;
    proto.close = function (this: unknown) {
      if (!other && String(new Error().stack).includes("limitOpenFiles")) {
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
  const { dir, assembler } = await setup();
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
  const { dir, reopen } = await setup();
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
