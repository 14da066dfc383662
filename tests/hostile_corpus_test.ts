/**
 * Thousands of bad records of every kind, mixed with good files, against the real CLI and broker:
 * every good file completes, every bad record is reported and quarantined, nothing is written
 * outside the output directory, and the process stays up.
 */
import { encode } from "@msgpack/msgpack";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { dirname } from "node:path";
import { type DataFileChunk, encodeChunk } from "../src/wire/chunk_codec.ts";
import { sha512 } from "../src/wire/sha512.ts";
import { registerCodecs } from "../src/wire/compression.ts";
import { STATE_DIR_NAME } from "../src/store/safe_path.ts";
import {
  assertSameTree,
  join,
  produceTree,
  startDownloader,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { createTopic, testKafka, uniqueGroupId } from "./_kafka.ts";

function chunk(overrides: Partial<DataFileChunk>): DataFileChunk {
  const data = overrides.data ?? new TextEncoder().encode("payload");
  return {
    filename: "bad.dat",
    fileHash: sha512(data),
    chunkHash: sha512(data),
    chunkOffsetWrite: 0,
    chunkI: 1,
    nTotalChunks: 1,
    subdirStr: "",
    filenameAppend: "",
    data,
    fileMtime: 1700000000,
    ...overrides,
  };
}

/** One bad record value (or null) per kind, with the reason the program must give. */
function badRecords(): { kind: string; value: Uint8Array | null }[] {
  const good = chunk({});
  return [
    { kind: "not msgpack", value: new Uint8Array([0xc1, 0x00, 0xff]) },
    { kind: "random bytes", value: crypto.getRandomValues(new Uint8Array(200)) },
    { kind: "tombstone", value: null },
    { kind: "3 elements", value: encode([1, 2, 3]) },
    { kind: "a map", value: encode({ filename: "x" }) },
    {
      kind: "chunk hash mismatch",
      value: encodeChunk({ ...good, data: new TextEncoder().encode("tampered") }),
    },
    { kind: "negative offset", value: encodeChunk(chunk({ chunkOffsetWrite: -5 })) },
    { kind: "zero chunks", value: encodeChunk(chunk({ nTotalChunks: 0 })) },
    { kind: "chunk_i past n", value: encodeChunk(chunk({ chunkI: 7, nTotalChunks: 3 })) },
    { kind: "chunk_i zero", value: encodeChunk(chunk({ chunkI: 0 })) },
    { kind: "absurd offset", value: encodeChunk(chunk({ chunkOffsetWrite: 2 ** 52 })) },
    { kind: "empty filename", value: encodeChunk(chunk({ filename: "" })) },
    { kind: "dot-dot subdir", value: encodeChunk(chunk({ subdirStr: "../../escape" })) },
    { kind: "dot-dot inside", value: encodeChunk(chunk({ subdirStr: "a/../../escape" })) },
    { kind: "absolute subdir", value: encodeChunk(chunk({ subdirStr: "/tmp/escape" })) },
    { kind: "slash in filename", value: encodeChunk(chunk({ filename: "../escape.dat" })) },
    { kind: "dot-dot filename", value: encodeChunk(chunk({ filename: ".." })) },
    { kind: "NUL in filename", value: encodeChunk(chunk({ filename: "a\0b.dat" })) },
    { kind: "state folder", value: encodeChunk(chunk({ subdirStr: STATE_DIR_NAME + "/partial" })) },
    { kind: "log file", value: encodeChunk(chunk({ filename: "DataFileDownloadDirectory.log" })) },
    { kind: "symlink out", value: encodeChunk(chunk({ subdirStr: "link_out/inner" })) },
  ];
}

async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    out.push(e.name);
    if (e.isDirectory) out.push(...(await listAll(join(dir, e.name))).map((n) => `${e.name}/${n}`));
  }
  return out.sort();
}

Deno.test("thousands of bad records never stop the good files and are all quarantined", async () => {
  const root = await tempDir("src");
  for (
    const [rel, size] of [["good/a.dat", 700_000], ["good/b/c.dat", 3], [
      "top.bin",
      1_500_000,
    ]] as const
  ) {
    await writeRandomFile(join(root, rel), size);
  }
  const sandbox = await tempDir("sandbox");
  const out = join(sandbox, "out");
  const outside = join(sandbox, "outside");
  await Deno.mkdir(out);
  await Deno.mkdir(outside);
  await Deno.symlink(outside, join(out, "link_out"));
  const topic = await createTopic(4, "hostile");
  const group = uniqueGroupId("hostile");

  registerCodecs();
  const producer = testKafka().producer();
  await producer.connect();
  const kinds = badRecords();
  const rounds = 100; // 21 kinds x 100 = 2100 bad records
  let bad = 0;
  const sendBad = async (n: number) => {
    const messages = [];
    for (let r = 0; r < n; r++) {
      for (const { kind, value } of kinds) {
        messages.push({ key: `${kind}-${r}`, value: value === null ? null : Buffer.from(value) });
      }
    }
    await producer.send({ topic, messages });
    bad += messages.length;
  };
  await sendBad(rounds / 2);
  await produceTree(topic, root);
  // A whole generation whose file hash is wrong: it must not appear under its final name.
  const wrongHash = chunk({ filename: "wrong_hash.dat", fileHash: sha512(new Uint8Array([9])) });
  await producer.send({
    topic,
    messages: [{ key: "wrong", value: Buffer.from(encodeChunk(wrongHash)) }],
  });
  await sendBad(rounds / 2);
  await producer.disconnect();

  const cli = startDownloader(out, topic, group, "--n_threads", "2");
  await cli.waitFor(/successfully reconstructed from stream/, 180_000, 3);
  await waitForCommitted(group, topic, 180_000);
  await cli.send("c");
  await cli.waitFor(new RegExp(`${bad} bad records skipped and quarantined`), 30_000);
  assert.equal(await cli.quit(), 0);

  await Deno.remove(join(out, "link_out"));
  await assertSameTree(root, out);
  assert.deepEqual(await listAll(outside), []);
  // Nothing new beside the output directory.
  assert.deepEqual(await listAll(sandbox).then((l) => l.filter((p) => !p.startsWith("out/"))), [
    "out",
    "outside",
  ]);
  assert.equal(dirname(out), sandbox);

  const skipped =
    cli.output.match(/WARNING: Skipping the record at offset \d+ of partition \d+ of "[^"]+": /g) ??
      [];
  assert.equal(skipped.length, bad);
  const quarantine = await listAll(join(out, STATE_DIR_NAME, "quarantine"));
  assert.equal(quarantine.filter((n) => /-p\d+-o\d+\.txt$/.test(n)).length, bad);
  assert.equal(quarantine.filter((n) => n.endsWith(".rejected")).length, 1);
  assert.match(
    cli.output,
    /ERROR: Cannot rebuild "wrong_hash.dat": its whole-file SHA-512 does not match/,
  );
  for (
    const reason of [
      "not a valid chunk",
      "tombstone",
      "Expected 9 or 10 properties but found 3",
      "failed its SHA-512 check",
      "chunk_offset_write is negative",
      "n_total_chunks is 0",
      "chunk_i 7 is outside 1..3",
      "past any size",
      "is not a file name",
      'contains a ".." component',
      "is absolute",
      'contains "/"',
      "NUL byte",
      "state folder",
      "log file",
      "symlink leading outside",
    ]
  ) assert.ok(cli.output.includes(reason), `no record was refused with "${reason}"`);
  assert.deepEqual(await listAll(join(out, STATE_DIR_NAME, "partial")), []);
});
