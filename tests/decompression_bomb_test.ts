/**
 * Decompression bombs and malformed compressed batches against the real CLI and broker. A ZSTD batch of about 100 KB decodes to
 * 1 GiB (its first frame declares a few bytes, the big frame declares nothing), and a GZIP batch
 * of about 520 KB inflates to 512 MiB; ordinary files follow each on the same partition. The
 * process stays up with bounded memory, each bomb is quarantined with a clear warning, the files
 * after it are rebuilt byte-identical, and every offset is committed past the bombs. A batch whose
 * records are malformed (which the broker accepts) is set aside the same way.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createGzip } from "node:zlib";
import type { CompressionTypes, Producer } from "kafkajs";
import { chunkMessagesOfFile, listFiles } from "../src/wire/chunk_producer.ts";
import { kafkajsCompression, registerCodecs, zstdCompress } from "../src/wire/compression.ts";
import { STATE_DIR_NAME } from "../src/store/safe_path.ts";
import {
  assertSameTree,
  join,
  startDownloader,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { createTopic, testKafka, uniqueGroupId } from "./_kafka.ts";
import { ZSTD_BLOCK, zstdStreamFrame } from "./_zstd_stream.ts";

const MiB = 1024 * 1024;
/** The ZSTD bomb's big value: 8192 blocks of 128 KiB = 1 GiB. */
const ZSTD_BLOCKS = 8192;
/** The GZIP bomb's big value. */
const GZIP_VALUE = 512 * MiB;
/** Peak resident memory allowed to the CLI while both bombs (1.5 GiB) come in. */
const MAX_RSS = 600 * MiB;

/** A zigzag varint as Kafka records use (lengths here pass 2^30, so no 32-bit shifts). */
function varint(n: number): number[] {
  let z = n >= 0 ? 2 * n : -2 * n - 1;
  const out: number[] = [];
  while (z >= 0x80) {
    out.push((z % 0x80) | 0x80);
    z = Math.floor(z / 0x80);
  }
  out.push(z);
  return out;
}

/** A Kafka v2 record up to its value: no key, timestamp delta 0, a value of `valueLength` bytes. */
function recordHead(offsetDelta: number, valueLength: number): Uint8Array {
  const fields = [0, 0, ...varint(offsetDelta), ...varint(-1), ...varint(valueLength)];
  return new Uint8Array([...varint(fields.length + valueLength + 1), ...fields]);
}

/** A whole record: head, value, and no headers. */
function record(offsetDelta: number, text: string): Uint8Array {
  const value = new TextEncoder().encode(text);
  return new Uint8Array([...recordHead(offsetDelta, value.length), ...value, 0]);
}

/**
 * A batch's records around one huge value: record 0 holds it; its header count (0), then
 * records 1 and 2, come after it.
 */
function bombParts(valueLength: number): { head: Uint8Array; tail: Uint8Array } {
  return {
    head: recordHead(0, valueLength),
    tail: new Uint8Array([0, ...record(1, "set aside with the bomb"), ...record(2, "this too")]),
  };
}

/** ZSTD records: a frame with record 0's head (it declares its size), the value, the rest. */
async function zstdBomb(blocks: number): Promise<Uint8Array> {
  const { head, tail } = bombParts(blocks * ZSTD_BLOCK);
  return Buffer.concat([
    await zstdCompress(head),
    await zstdStreamFrame(blocks),
    await zstdCompress(tail),
  ]);
}

/** GZIP records: record 0 with `valueLength` zero bytes, then the rest, in one gzip stream. */
async function gzipBomb(valueLength: number): Promise<Uint8Array> {
  const { head, tail } = bombParts(valueLength);
  const gzip = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on("data", (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise((resolve, reject) => gzip.on("end", resolve).on("error", reject));
  const write = async (data: Uint8Array) => {
    if (!gzip.write(data)) await new Promise((resolve) => gzip.once("drain", resolve));
  };
  await write(head);
  const zeros = new Uint8Array(MiB);
  for (let left = valueLength; left > 0; left -= zeros.length) {
    await write(zeros.subarray(0, Math.min(left, zeros.length)));
  }
  await write(tail);
  gzip.end();
  await ended;
  return Buffer.concat(chunks);
}

/**
 * Produces one batch of `count` records whose compressed records are `compressed`, as a
 * producer with its own codec would: kafkajs writes the batch header (count, offsets, CRC)
 * around whatever the codec returns. The broker checks the records inside before it accepts.
 */
async function sendCompressed(
  producer: Producer,
  topic: string,
  partition: number,
  type: CompressionTypes,
  compressed: Uint8Array,
  count: number,
): Promise<void> {
  const { Codecs } = kafkajsCompression;
  const saved = Codecs[type];
  Codecs[type] = () => ({
    compress: () => Promise.resolve(Buffer.from(compressed)),
    decompress: () => Promise.reject(new Error("not for decoding")),
  });
  try {
    await producer.send({
      topic,
      compression: type,
      acks: -1,
      messages: Array.from({ length: count }, (_, i) => ({ partition, value: `record ${i}` })),
    });
  } finally {
    Codecs[type] = saved;
  }
}

/**
 * Peak resident memory of process `pid` (VmHWM), in bytes. Read with `cat`: Deno lets only
 * `--allow-all` read `/proc` itself.
 */
async function peakRss(pid: number): Promise<number> {
  const cat = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stderr: "null" })
    .output();
  const status = new TextDecoder().decode(cat.stdout);
  const kb = status.match(/^VmHWM:\s+(\d+) kB$/m);
  assert.ok(kb, "no VmHWM in /proc/<pid>/status");
  return Number(kb[1]) * 1024;
}

Deno.test("decompression bombs are quarantined with bounded memory and the partition goes on", async () => {
  // The bombs decode as Kafka records (the broker checks that), small versions decode right.
  const small = await zstdBomb(4);
  const { zstdDecompress } = await import("../src/wire/compression.ts");
  const { head, tail } = bombParts(4 * ZSTD_BLOCK);
  assert.equal(zstdDecompress(small).length, head.length + 4 * ZSTD_BLOCK + tail.length);

  const zstd = await zstdBomb(ZSTD_BLOCKS);
  const gzip = await gzipBomb(GZIP_VALUE);
  assert.ok(zstd.length < 200_000 && gzip.length < 1_000_000, `${zstd.length}, ${gzip.length}`);

  const root = await tempDir("bomb_src");
  const out = await tempDir("bomb_out");
  let cli: ReturnType<typeof startDownloader> | undefined;
  try {
    const sizes: Record<string, number> = {
      "a.bin": 300_000,
      "sub/b.bin": 1_000_000,
      "c.txt": 10,
      "sub/deeper/d.bin": 700_000,
    };
    for (const [rel, size] of Object.entries(sizes)) await writeRandomFile(join(root, rel), size);
    const topic = await createTopic(2, "bomb");
    const group = uniqueGroupId("bomb");

    registerCodecs();
    const producer = testKafka().producer();
    await producer.connect();
    try {
      const { Types } = kafkajsCompression;
      await sendCompressed(producer, topic, 0, Types.ZSTD, zstd, 3);
      await sendCompressed(producer, topic, 1, Types.GZIP, gzip, 3);
      // Then ordinary files on both partitions, after the bombs.
      const files = await listFiles(root);
      for (const [i, path] of files.entries()) {
        const messages = [];
        for await (const { key, value } of chunkMessagesOfFile(path, root, 65536, "chunk")) {
          messages.push({ key, value, partition: i % 2 });
        }
        await producer.send({ topic, compression: Types.LZ4, acks: -1, messages });
      }
    } finally {
      await producer.disconnect();
    }

    cli = startDownloader(out, topic, group, "--n_threads", "2");
    await cli.waitFor(/successfully reconstructed from stream/, 60_000, Object.keys(sizes).length);
    await waitForCommitted(group, topic, 30_000);
    const rss = await peakRss(cli.child.pid);
    console.log(`  peak RSS of the CLI: ${(rss / MiB).toFixed(0)} MiB`);
    assert.ok(rss < MAX_RSS, `peak RSS ${(rss / MiB).toFixed(0)} MiB`);
    await cli.send("c");
    await cli.waitFor(/\(6 bad records skipped and quarantined\)/, 10_000);
    assert.equal(await cli.quit(), 0);

    assert.match(
      cli.output,
      /WARNING: Skipping the record at offset 0 of partition 0 of "[^"]+": Cannot decompress a ZSTD batch on partition 0 at offset 0: it grows past 128 MiB \(frame 2 of 3 declares no size and decodes to more; decoding stopped after \d+ bytes \(the first frame declares \d+\)\); its 3 records were set aside \(kept in /,
    );
    assert.match(
      cli.output,
      /WARNING: Skipping the record at offset 0 of partition 1 of "[^"]+": Cannot decompress a GZIP batch on partition 1 at offset 0: it grows past 128 MiB \(it inflates to more than that; .*\); its 3 records were set aside \(kept in /,
    );
    assert.doesNotMatch(cli.output, /stopped on an error|ERROR/);
    // Each bomb is kept, compressed as it came, beside the reason.
    const quarantine = join(out, STATE_DIR_NAME, "quarantine");
    const kept = [];
    for await (const entry of Deno.readDir(quarantine)) kept.push(entry.name);
    kept.sort();
    assert.equal(kept.length, 4, kept.join(", "));
    for (const [partition, bomb, codec] of [[0, zstd, "ZSTD"], [1, gzip, "GZIP"]] as const) {
      const base = kept.find((n) => n.endsWith(`-p${partition}-o0.value`))?.slice(0, -6);
      assert.ok(base, `no quarantined record of partition ${partition}`);
      assert.ok(Buffer.from(bomb).equals(await Deno.readFile(join(quarantine, `${base}.value`))));
      assert.match(
        await Deno.readTextFile(join(quarantine, `${base}.txt`)),
        new RegExp(`reason: Cannot decompress a ${codec} batch on partition ${partition}`),
      );
    }
    await assertSameTree(root, out);
  } finally {
    if (cli) await cli.kill().catch(() => {});
    await Deno.remove(root, { recursive: true }).catch(() => {});
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
});

Deno.test("a compressed batch whose records are malformed is set aside, and the partition goes on", async () => {
  // Record 2 of 3 declares fewer bytes than its fields take, as a buggy producer wrote it once;
  // the broker accepts such a batch, kafkajs would fail the whole fetch on it, again and again.
  const bad = record(1, "its declared length is too short");
  const claimed = varint(bad.length - 12);
  const malformed = new Uint8Array([...claimed, ...bad.subarray(varint(bad.length - 1).length)]);
  const records = new Uint8Array([...record(0, "first"), ...malformed, ...record(2, "third")]);
  const { lz4Compress, malformedRecords } = await import("../src/wire/compression.ts");
  assert.match(malformedRecords(records, 3) ?? "", /^record 2 of 3 /);

  const root = await tempDir("malformed_src");
  const out = await tempDir("malformed_out");
  let cli: ReturnType<typeof startDownloader> | undefined;
  try {
    await writeRandomFile(join(root, "before.bin"), 200_000);
    await writeRandomFile(join(root, "after.bin"), 200_000);
    const topic = await createTopic(1, "malformed");
    const group = uniqueGroupId("malformed");
    registerCodecs();
    const producer = testKafka().producer();
    await producer.connect();
    try {
      const { Types } = kafkajsCompression;
      const sendFile = async (name: string) => {
        const messages = [];
        for await (const m of chunkMessagesOfFile(join(root, name), root, 65536, "chunk")) {
          messages.push(m);
        }
        await producer.send({ topic, compression: Types.LZ4, acks: -1, messages });
      };
      await sendFile("before.bin");
      await sendCompressed(producer, topic, 0, Types.LZ4, lz4Compress(records), 3);
      await sendFile("after.bin");
    } finally {
      await producer.disconnect();
    }
    // Two consumers, one without the partition (such a member once made the other one stop:
    // see isolateConsumerOffsets and rebalance_test.ts).
    cli = startDownloader(out, topic, group, "--n_threads", "2");
    await cli.waitFor(/successfully reconstructed from stream/, 60_000, 2);
    await waitForCommitted(group, topic, 30_000);
    assert.equal(await cli.quit(), 0);
    assert.match(
      cli.output,
      /WARNING: Skipping the record at offset 4 of partition 0 of "[^"]+": Cannot read a LZ4 batch on partition 0 at offset 4: its records are malformed \(record 2 of 3 has fields that do not fit in its \d+ bytes\); its 3 records were set aside \(kept in /,
    );
    assert.doesNotMatch(cli.output, /stopped on an error|ERROR/);
    await assertSameTree(root, out);
  } finally {
    if (cli) await cli.kill().catch(() => {});
    await Deno.remove(root, { recursive: true }).catch(() => {});
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
});
