/**
 * Tests for `compression.ts`: decoding of fixtures written by the reference
 * implementations (liblz4, snappy, libzstd — see
 * tests/fixtures/compression/make_fixtures.py), round trips, corrupt input,
 * a kafkajs RecordBatch encode/decode through the registered codecs, and an
 * informational decompression throughput measurement.
 *
 * Run: deno test --allow-read src/wire/compression_test.ts
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  type CodecName,
  CompressionError,
  createCodecs,
  gzipCodec,
  gzipCompress,
  gzipDecompress,
  type KafkaCodec,
  type KafkaCodecs,
  kafkajsCompression,
  lz4Codec,
  lz4Compress,
  lz4Decompress,
  malformedRecords,
  MAX_BATCH_BYTES,
  MAX_OVERSIZE_MARKERS,
  OversizeError,
  oversizeMarkerReason,
  parseOversizeMarker,
  registerCodecs,
  snappyCodec,
  snappyCompress,
  snappyCompressRaw,
  snappyDecompress,
  snappyDecompressRaw,
  xxh32,
  zstdCodec,
  zstdCompress,
  zstdDecompress,
} from "./compression.ts";
import { ZSTD_BLOCK, zstdStreamFrame } from "../../tests/_zstd_stream.ts";

const FIXTURE_DIR = new URL("../../tests/fixtures/compression/", import.meta.url);

// ---------------------------------------------------------------------------
// Deterministic inputs (mirror make_fixtures.py exactly)
// ---------------------------------------------------------------------------

function xorshift32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function genRandom(length: number, seed: number): Uint8Array {
  const next = xorshift32(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = next() >>> 24;
  return out;
}

function genText(length: number): Uint8Array {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < length; i++) {
    const line = `line ${
      String(i).padStart(6, "0")
    }: OpenMSIStream chunk of file data; the quick brown fox jumps over the lazy dog.\n`;
    parts.push(line);
    size += line.length;
  }
  return new TextEncoder().encode(parts.join("")).slice(0, length);
}

const WORDS = (
  "kafka broker topic partition offset consumer producer record batch chunk file " +
  "directory upload download stream message header key value lz4 snappy zstd gzip " +
  "compress frame block checksum magic version the a of and to in is it that for on " +
  "with as was at by be this from or have an they which one you were her all she there " +
  "would their we him been has when who will more no if out so said what up its about"
).split(" ");

function genWords(length: number, seed: number): Uint8Array {
  const next = xorshift32(seed);
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const r = next();
    const word = WORDS[r % WORDS.length]!;
    parts.push(word, (r >>> 16) % 13 === 0 ? "\n" : " ");
    size += word.length + 1;
  }
  return new TextEncoder().encode(parts.join("")).slice(0, length);
}

const INPUTS: Record<string, Uint8Array> = {
  random: genRandom(200 * 1024, 0x12345678),
  text: genText(300 * 1024),
  words: genWords(256 * 1024, 0xc0ffee),
  empty: new Uint8Array(0),
};

interface FixtureEntry {
  readonly file: string;
  readonly codec: "lz4" | "snappy" | "zstd";
  readonly input: string;
  readonly description: string;
  readonly compressed_length: number;
}

interface Manifest {
  readonly libraries: Record<string, string>;
  readonly inputs: Record<string, { readonly length: number; readonly sha256: string }>;
  readonly fixtures: readonly FixtureEntry[];
}

const manifest = JSON.parse(
  await Deno.readTextFile(new URL("manifest.json", FIXTURE_DIR)),
) as Manifest;

function readFixture(file: string): Promise<Uint8Array> {
  return Deno.readFile(new URL(file, FIXTURE_DIR));
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function assertBytesEqual(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  if (!a.equals(e)) {
    let i = 0;
    while (a[i] === e[i]) i++;
    assert.fail(`${what}: first difference at byte ${i}`);
  }
}

function assertCompressionError(fn: () => unknown, codec: string, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof CompressionError, `expected CompressionError, got ${error}`);
    assert.equal(error.codec, codec);
    assert.match(error.message, new RegExp(`^${codec.toUpperCase()}: `));
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

const DECODERS: Record<FixtureEntry["codec"], (data: Uint8Array) => Uint8Array> = {
  lz4: (data) => lz4Decompress(data),
  snappy: (data) => snappyDecompress(data),
  zstd: (data) => zstdDecompress(data),
};

// ---------------------------------------------------------------------------
// Reference fixtures
// ---------------------------------------------------------------------------

Deno.test("fixture inputs regenerate identically to make_fixtures.py", async () => {
  for (const [name, expected] of Object.entries(manifest.inputs)) {
    const input = INPUTS[name];
    assert.ok(input, `unknown input ${name}`);
    assert.equal(input.length, expected.length, `${name} length`);
    assert.equal(await sha256Hex(input), expected.sha256, `${name} sha256`);
  }
});

for (const fixture of manifest.fixtures) {
  Deno.test(`decodes reference ${fixture.codec} fixture ${fixture.file} (${fixture.description})`, async () => {
    const compressed = await readFixture(fixture.file);
    assert.equal(compressed.length, fixture.compressed_length);
    const expected = INPUTS[fixture.input]!;
    assertBytesEqual(DECODERS[fixture.codec](compressed), expected, fixture.file);
  });
}

Deno.test("kafkajs codec objects decode every reference fixture (Buffer in, Buffer out)", async () => {
  const codecs: Record<FixtureEntry["codec"], KafkaCodec> = {
    lz4: lz4Codec,
    snappy: snappyCodec,
    zstd: zstdCodec,
  };
  for (const fixture of manifest.fixtures) {
    const compressed = Buffer.from(await readFixture(fixture.file));
    const out = await codecs[fixture.codec].decompress(compressed);
    assert.ok(Buffer.isBuffer(out), `${fixture.file}: result is a Buffer`);
    assertBytesEqual(out, INPUTS[fixture.input]!, fixture.file);
  }
});

Deno.test("the fixtures cover the LZ4 frame features librdkafka and Java emit", async () => {
  const frames = await Promise.all(
    manifest.fixtures.filter((f) => f.codec === "lz4" && f.input !== "empty").map((f) =>
      readFixture(f.file)
    ),
  );
  const flags = frames.map((f) => f[4]!);
  assert.ok(flags.some((flg) => (flg & 0x20) !== 0), "independent blocks");
  assert.ok(flags.some((flg) => (flg & 0x20) === 0), "linked blocks");
  assert.ok(flags.some((flg) => (flg & 0x10) !== 0), "block checksums");
  assert.ok(flags.some((flg) => (flg & 0x08) !== 0), "content size");
  assert.ok(flags.some((flg) => (flg & 0x04) !== 0), "content checksum");
  // librdkafka's frame: FLG = version 01 + block independence, BD = 64 KiB.
  const librdkafka = await readFixture("lz4_librdkafka_words.lz4");
  assert.equal(librdkafka[4], 0x60);
  assert.equal(librdkafka[5], 0x40);
  // The incompressible input is stored in uncompressed blocks (high bit of the block size).
  const random = await readFixture("lz4_librdkafka_random.lz4");
  assert.equal(random[7 + 3]! & 0x80, 0x80);
});

Deno.test("xxh32 matches the header checksums liblz4 wrote", async () => {
  for (const fixture of manifest.fixtures.filter((f) => f.codec === "lz4")) {
    const frame = await readFixture(fixture.file);
    const hcPos = (frame[4]! & 0x08) !== 0 ? 14 : 6;
    assert.equal((xxh32(frame, 0, 4, hcPos) >>> 8) & 0xff, frame[hcPos], fixture.file);
  }
  // Published test vectors.
  assert.equal(xxh32(new Uint8Array(0)), 0x02cc5d05);
  assert.equal(xxh32(new TextEncoder().encode("a")), 0x550d7456);
  assert.equal(xxh32(new TextEncoder().encode("abc")), 0x32d153ff);
  assert.equal(
    xxh32(new TextEncoder().encode("Nobody inspects the spammish repetition")),
    0xe2293b2f,
  );
});

Deno.test("LZ4 accepts the legacy Kafka (<0.10) header checksum that also hashes the magic", async () => {
  const frame = await readFixture("lz4_librdkafka_text.lz4");
  const legacy = frame.slice();
  legacy[6] = (xxh32(legacy, 0, 0, 6) >>> 8) & 0xff;
  assert.notEqual(legacy[6], frame[6]);
  assertBytesEqual(lz4Decompress(legacy), INPUTS.text!, "legacy HC");
  const wrong = frame.slice();
  wrong[6] = (frame[6]! + 1) & 0xff;
  if (wrong[6] === legacy[6]) wrong[6] = (frame[6]! + 2) & 0xff;
  assertCompressionError(() => lz4Decompress(wrong), "lz4", /header checksum/);
});

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

function roundTripInputs(): [string, Uint8Array][] {
  const zeros = new Uint8Array(1024 * 1024);
  const pattern = new Uint8Array(700 * 1024);
  for (let i = 0; i < pattern.length; i++) pattern[i] = i % 3 === 0 ? 7 : i % 251;
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["1 byte", new Uint8Array([42])],
    ["12 bytes", new TextEncoder().encode("abcabcabcabc")],
    ["13 bytes", new TextEncoder().encode("abcabcabcabca")],
    ["100 bytes repetitive", new TextEncoder().encode("xy".repeat(50))],
    ["random 200 KiB", INPUTS.random!],
    ["text 300 KiB", INPUTS.text!],
    ["words 256 KiB", INPUTS.words!],
    ["1 MiB of zeros", zeros],
    ["700 KiB periodic", pattern],
    ["exactly 64 KiB", INPUTS.words!.subarray(0, 65536)],
    ["64 KiB + 1", INPUTS.words!.subarray(0, 65537)],
  ];
  return cases;
}

Deno.test("LZ4 round trips (default = librdkafka-style frame) and other frame options", () => {
  for (const [name, input] of roundTripInputs()) {
    const compressed = lz4Compress(input);
    assert.equal(compressed[4], 0x60, `${name}: FLG`);
    assert.equal(compressed[5], 0x40, `${name}: BD`);
    assertBytesEqual(lz4Decompress(compressed), input, `lz4 ${name}`);
    for (
      const options of [
        { blockChecksum: true, contentChecksum: true, contentSize: true },
        { blockSize: 4194304 as const, contentChecksum: true },
        { blockSize: 262144 as const, contentSize: true },
      ]
    ) {
      assertBytesEqual(
        lz4Decompress(lz4Compress(input, options)),
        input,
        `lz4 ${name} ${JSON.stringify(options)}`,
      );
    }
  }
  // It actually compresses.
  assert.ok(lz4Compress(INPUTS.text!).length < INPUTS.text!.length / 10);
  assert.ok(lz4Compress(INPUTS.words!).length < INPUTS.words!.length * 0.6);
  // Incompressible input costs only the framing overhead.
  assert.ok(lz4Compress(INPUTS.random!).length <= INPUTS.random!.length + 64);
});

Deno.test("Snappy round trips (xerial framing and raw)", () => {
  for (const [name, input] of roundTripInputs()) {
    const framed = snappyCompress(input);
    assert.deepEqual(Array.from(framed.subarray(0, 16)), [
      0x82,
      0x53,
      0x4e,
      0x41,
      0x50,
      0x50,
      0x59,
      0,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      1,
    ]);
    assertBytesEqual(snappyDecompress(framed), input, `xerial ${name}`);
    const raw = snappyCompressRaw(input);
    assertBytesEqual(snappyDecompress(raw), input, `raw ${name}`);
    assertBytesEqual(snappyDecompressRaw(raw), input, `raw-only ${name}`);
  }
  // Concatenated xerial streams (snappy-java accepts them) decode as one.
  const a = INPUTS.words!.subarray(0, 50000);
  const b = INPUTS.text!.subarray(0, 70000);
  const both = new Uint8Array([...snappyCompress(a), ...snappyCompress(b)]);
  assertBytesEqual(snappyDecompress(both), new Uint8Array([...a, ...b]), "concatenated");
});

Deno.test("ZSTD round trips (WASM compressor, fzstd decompressor)", async () => {
  for (const [name, input] of roundTripInputs()) {
    const compressed = await zstdCompress(input);
    assertBytesEqual(zstdDecompress(compressed), input, `zstd ${name}`);
  }
  assert.ok((await zstdCompress(INPUTS.text!)).length < INPUTS.text!.length / 20);
});

// ---------------------------------------------------------------------------
// Corrupt input
// ---------------------------------------------------------------------------

Deno.test("corrupt LZ4 input throws a clear CompressionError", async () => {
  const frame = await readFixture("lz4_librdkafka_words.lz4");
  assertCompressionError(() => lz4Decompress(new Uint8Array(0)), "lz4", /empty input/);
  assertCompressionError(
    () => lz4Decompress(new TextEncoder().encode("definitely not lz4 data")),
    "lz4",
    /not an LZ4 frame/,
  );
  // Truncated anywhere.
  for (const cut of [3, 6, 7, 9, 100, frame.length >> 1, frame.length - 5, frame.length - 1]) {
    assertCompressionError(() => lz4Decompress(frame.subarray(0, cut)), "lz4", /truncated/);
  }
  // A block size larger than the frame's maximum.
  const bigBlock = frame.slice();
  bigBlock[7 + 2] = 0x7f;
  assertCompressionError(() => lz4Decompress(bigBlock), "lz4", /exceeds the frame's maximum/);
  // Garbage after the end mark.
  const trailing = new Uint8Array([...frame, 1, 2, 3, 4, 5]);
  assertCompressionError(() => lz4Decompress(trailing), "lz4", /unexpected data after/);
  // A match offset pointing before the start of the output.
  const badOffset = lz4Compress(new TextEncoder().encode("abcdefgh".repeat(10)));
  const blockStart = 7 + 4;
  // First sequence: token, 8 literals, then the 2-byte offset.
  badOffset[blockStart + 1 + 8] = 0xff;
  badOffset[blockStart + 1 + 9] = 0xff;
  assertCompressionError(() => lz4Decompress(badOffset), "lz4", /invalid match offset/);
  // Checksums catch flipped literal bytes.
  const checked = (await readFixture("lz4_checksums_size_text.lz4")).slice();
  checked[30] = checked[30]! ^ 0x01;
  assertCompressionError(() => lz4Decompress(checked), "lz4", /checksum mismatch/);
  const contentChecked = lz4Compress(INPUTS.words!, { contentChecksum: true });
  contentChecked[40] = contentChecked[40]! ^ 0x20;
  assertCompressionError(() => lz4Decompress(contentChecked), "lz4");
  // Declared content size beyond the limit.
  const sized = lz4Compress(INPUTS.text!, { contentSize: true });
  assertCompressionError(() => lz4Decompress(sized, 1000), "lz4", /limit/);
  // The kafkajs codec rejects (does not hang, does not resolve with garbage).
  await assert.rejects(
    lz4Codec.decompress(Buffer.from(frame.subarray(0, 1000))),
    CompressionError,
  );
});

Deno.test("LZ4 decoder survives random corruption: only CompressionError, never a hang", async () => {
  const frame = await readFixture("lz4_librdkafka_words.lz4");
  const next = xorshift32(0xdeadbeef);
  const started = performance.now();
  let thrown = 0;
  for (let i = 0; i < 300; i++) {
    const corrupt = frame.slice();
    for (let k = 0; k < 1 + (i % 4); k++) corrupt[next() % corrupt.length] = next() & 0xff;
    try {
      lz4Decompress(corrupt);
    } catch (error) {
      assert.ok(error instanceof CompressionError, `unexpected ${error}`);
      thrown++;
    }
  }
  assert.ok(thrown > 0);
  assert.ok(performance.now() - started < 20000, "corrupt inputs must fail fast");
});

Deno.test("corrupt Snappy and ZSTD input throws CompressionError", async () => {
  const raw = await readFixture("snappy_raw_words.snappy");
  assertCompressionError(() => snappyDecompress(raw.subarray(0, raw.length - 10)), "snappy");
  assertCompressionError(() => snappyDecompress(new Uint8Array([0x80])), "snappy", /truncated/);
  const xerial = await readFixture("snappy_xerial_words.snappy");
  assertCompressionError(() => snappyDecompress(xerial.subarray(0, 20)), "snappy", /overruns/);
  assertCompressionError(() => snappyDecompress(xerial.subarray(0, 12)), "snappy", /header/);
  assertCompressionError(
    () => snappyDecompressRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0])),
    "snappy",
    /limit/,
  );
  const next = xorshift32(0xfeedface);
  for (let i = 0; i < 200; i++) {
    const corrupt = raw.slice();
    corrupt[next() % corrupt.length] = next() & 0xff;
    try {
      snappyDecompress(corrupt);
    } catch (error) {
      assert.ok(error instanceof CompressionError, `unexpected ${error}`);
    }
  }

  const zst = await readFixture("zstd_l3_checksum_words.zst");
  assertCompressionError(() => zstdDecompress(zst.subarray(0, zst.length >> 1)), "zstd");
  assertCompressionError(
    () => zstdDecompress(new TextEncoder().encode("not zstd at all")),
    "zstd",
    /not a zstd frame/,
  );
  assertCompressionError(() => zstdDecompress(zst, 1000), "zstd", /limit/);
});

// ---------------------------------------------------------------------------
// kafkajs integration (no broker: kafkajs's own RecordBatch encoder/decoder)
// ---------------------------------------------------------------------------

const { Types } = kafkajsCompression;

Deno.test("registerCodecs installs the codecs into kafkajs and is idempotent", async () => {
  registerCodecs();
  registerCodecs();
  // lookupCodec is what kafkajs's RecordBatch encoder calls.
  assert.equal(kafkajsCompression.lookupCodec(Types.GZIP), gzipCodec);
  assert.equal(kafkajsCompression.lookupCodec(Types.LZ4), lz4Codec);
  assert.equal(kafkajsCompression.lookupCodec(Types.Snappy), snappyCodec);
  assert.equal(kafkajsCompression.lookupCodec(Types.ZSTD), zstdCodec);
  const encoder = { buffer: Buffer.from(INPUTS.words!) };
  for (const type of [Types.GZIP, Types.LZ4, Types.Snappy, Types.ZSTD]) {
    const codec = kafkajsCompression.lookupCodec(type) as KafkaCodec;
    const compressed = await codec.compress(encoder);
    assert.ok(Buffer.isBuffer(compressed));
    assert.ok(compressed.length < encoder.buffer.length);
    assertBytesEqual(await codec.decompress(compressed), encoder.buffer, `type ${type}`);
  }
});

Deno.test({
  name: "the public kafkajs CompressionCodecs export is the table registerCodecs fills",
  // Loading the kafkajs root reads process.env (NODE_ENV, KAFKAJS_*).
  ignore: Deno.permissions.querySync({ name: "env" }).state !== "granted",
  async fn() {
    const kafkajs = await import("kafkajs");
    registerCodecs();
    assert.equal(kafkajs.CompressionCodecs, kafkajsCompression.Codecs);
    assert.equal(kafkajs.CompressionCodecs[kafkajs.CompressionTypes.LZ4](), lz4Codec);
  },
});

interface KafkaDecodedRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly offset: string;
}

type RecordBatchEncoder = (options: {
  compression: number;
  records: unknown[];
  lastOffsetDelta: number;
}) => Promise<{ readonly buffer: Buffer }>;

Deno.test("kafkajs RecordBatch v2 encodes and decodes through the registered codecs", async () => {
  registerCodecs();
  // kafkajs internals (untyped CommonJS); same module instances as "kafkajs".
  const { RecordBatch } = (await import(
    "kafkajs/src/protocol/recordBatch/v0/index.js"
  )) as { RecordBatch: RecordBatchEncoder };
  const Record = (await import("kafkajs/src/protocol/recordBatch/record/v0/index.js"))
    .default as (r: { offsetDelta: number; key: Buffer; value: Buffer }) => unknown;
  const decodeBatch = (await import("kafkajs/src/protocol/recordBatch/v0/decoder.js"))
    .default as (decoder: unknown) => Promise<{ records: KafkaDecodedRecord[] }>;
  const Decoder = (await import("kafkajs/src/protocol/decoder.js")).default as new (
    buffer: Buffer,
  ) => unknown;

  // Big enough (~900 KiB) that every codec emits many blocks.
  const values = [INPUTS.words!, INPUTS.text!, INPUTS.random!, new TextEncoder().encode("tail")];
  const records = values.map((value, i) =>
    Record({ offsetDelta: i, key: Buffer.from(`key-${i}`), value: Buffer.from(value) })
  );
  for (const type of [Types.GZIP, Types.LZ4, Types.Snappy, Types.ZSTD]) {
    const batch = await RecordBatch({
      compression: type,
      records,
      lastOffsetDelta: records.length - 1,
    });
    // Attributes (int16) sit at byte 8 (firstOffset) + 4 (length) + 4 (epoch) + 1 (magic) + 4 (crc).
    assert.equal(batch.buffer.readInt16BE(21) & 0x07, type);
    const decoded = await decodeBatch(new Decoder(batch.buffer));
    assert.equal(decoded.records.length, values.length);
    decoded.records.forEach((record, i) => {
      assert.equal(record.key?.toString(), `key-${i}`);
      assertBytesEqual(record.value!, values[i]!, `type ${type} record ${i}`);
    });
  }
});

// ---------------------------------------------------------------------------
// The cap on a batch's decompressed size (decompression bombs)
// ---------------------------------------------------------------------------

const KiB = 1024;
const MiB = 1024 * KiB;

interface KafkajsInternals {
  record(r: { offsetDelta: number; key: Buffer; value: Buffer }): { readonly buffer: Buffer };
  decodeBatch(batch: Buffer): Promise<KafkaDecodedRecord[]>;
  decodeRecord(bytes: Buffer): KafkaDecodedRecord;
}

/** kafkajs's own record encoder and RecordBatch / record decoders (untyped CommonJS). */
async function kafkajsInternals(): Promise<KafkajsInternals> {
  const Record = (await import("kafkajs/src/protocol/recordBatch/record/v0/index.js"))
    .default as KafkajsInternals["record"];
  const decodeBatch = (await import("kafkajs/src/protocol/recordBatch/v0/decoder.js"))
    .default as (decoder: unknown) => Promise<{ records: KafkaDecodedRecord[] }>;
  const decodeRecord = (await import("kafkajs/src/protocol/recordBatch/record/v0/decoder.js"))
    .default as (decoder: unknown, context: unknown) => KafkaDecodedRecord;
  const Decoder = (await import("kafkajs/src/protocol/decoder.js")).default as new (
    buffer: Buffer,
  ) => { readVarIntBytes(): Buffer };
  return {
    record: Record,
    decodeBatch: async (batch) => (await decodeBatch(new Decoder(batch))).records,
    decodeRecord: (bytes) =>
      decodeRecord(new Decoder(new Decoder(bytes).readVarIntBytes()), {
        firstOffset: "0",
        firstTimestamp: "0",
      }),
  };
}

/** Records serialized as kafkajs (and Kafka) put them in a batch, before compression. */
function serializeRecords(kafkajs: KafkajsInternals, values: Uint8Array[]): Buffer {
  return Buffer.concat(
    values.map((value, i) =>
      kafkajs.record({ offsetDelta: i, key: Buffer.from(`k${i}`), value: Buffer.from(value) })
        .buffer
    ),
  );
}

/** A v2 record batch holding `compressed`, laid out as in a fetch response. */
function recordBatch(
  type: number,
  compressed: Uint8Array,
  count: number,
  lastOffsetDelta = count - 1,
  baseOffset = 41n,
): Buffer {
  const batch = Buffer.alloc(61 + compressed.length);
  batch.writeBigInt64BE(baseOffset, 0);
  batch.writeInt32BE(49 + compressed.length, 8); // length
  batch.writeInt8(2, 16); // magic (CRC at 17 stays 0: kafkajs does not check it)
  batch.writeInt16BE(type, 21); // attributes
  batch.writeInt32BE(lastOffsetDelta, 23);
  batch.writeBigInt64BE(1700000000000n, 27); // first timestamp
  batch.writeBigInt64BE(1700000000000n, 35); // max timestamp
  batch.writeBigInt64BE(-1n, 43); // producer id
  batch.writeInt16BE(-1, 51); // producer epoch
  batch.writeInt32BE(-1, 53); // base sequence
  batch.writeInt32BE(count, 57);
  batch.set(compressed, 61);
  return batch;
}

/** Decodes `batch` with kafkajs's RecordBatch decoder while `codecs` are installed in its table. */
async function decodeWith(
  kafkajs: KafkajsInternals,
  codecs: KafkaCodecs,
  batch: Buffer,
): Promise<KafkaDecodedRecord[]> {
  const { Codecs } = kafkajsCompression;
  const saved = { ...Codecs };
  Codecs[Types.GZIP] = () => codecs.gzip;
  Codecs[Types.Snappy] = () => codecs.snappy;
  Codecs[Types.LZ4] = () => codecs.lz4;
  Codecs[Types.ZSTD] = () => codecs.zstd;
  try {
    return await kafkajs.decodeBatch(batch);
  } finally {
    Object.assign(Codecs, saved);
  }
}

const COMPRESSORS: readonly [CodecName, number, (data: Uint8Array) => Promise<Uint8Array>][] = [
  ["gzip", Types.GZIP, gzipCompress],
  ["snappy", Types.Snappy, (data) => Promise.resolve(snappyCompress(data))],
  ["lz4", Types.LZ4, (data) => Promise.resolve(lz4Compress(data))],
  ["zstd", Types.ZSTD, (data) => zstdCompress(data)],
];

const DECOMPRESSORS: Record<
  CodecName,
  (data: Uint8Array, maxOutput: number) => Uint8Array | Promise<Uint8Array>
> = {
  gzip: gzipDecompress,
  snappy: snappyDecompress,
  lz4: lz4Decompress,
  zstd: zstdDecompress,
};

/** Runs `fn` and returns the {@linkcode OversizeError} it throws or rejects with. */
async function oversize(
  fn: () => unknown,
  codec: CodecName,
  cap: number,
): Promise<OversizeError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof OversizeError, `expected OversizeError, got ${error}`);
    assert.equal(error.codec, codec);
    assert.equal(error.cap, cap);
    assert.match(error.message, new RegExp(`^${codec.toUpperCase()}: .*limit`));
    return error;
  }
  assert.fail(`${codec}: no OversizeError`);
}

/** The byte count in "decoding stopped after N bytes". */
function stoppedAfter(error: OversizeError): number {
  const match = error.detail.match(/stopped after (\d+) bytes/);
  assert.ok(match, `no "stopped after" in ${error.detail}`);
  return Number(match[1]);
}

/** A zstd frame of `bytes` zero bytes in RLE blocks (4 bytes per 128 KiB), declaring its size or not. */
function zstdRleFrame(bytes: number, declare: boolean): Uint8Array {
  const blocks = Math.ceil(bytes / ZSTD_BLOCK);
  const head = declare ? 14 : 6;
  const out = new Uint8Array(head + 4 * blocks);
  out.set([0x28, 0xb5, 0x2f, 0xfd, declare ? 0xc0 : 0x00, (17 - 10) << 3]);
  if (declare) new DataView(out.buffer).setBigUint64(6, BigInt(bytes), true);
  for (let i = 0; i < blocks; i++) {
    const size = Math.min(ZSTD_BLOCK, bytes - i * ZSTD_BLOCK);
    const word = (size << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0);
    out.set([word & 0xff, (word >>> 8) & 0xff, word >>> 16, 0], head + 4 * i);
  }
  return out;
}

/** An LZ4 frame of `blocks` x 64 KiB of zeros: the same independent block over and over. */
function lz4ZeroBomb(blocks: number): Uint8Array {
  const frame = lz4Compress(new Uint8Array(64 * KiB));
  const block = frame.subarray(7, frame.length - 4);
  const out = new Uint8Array(7 + blocks * block.length + 4);
  out.set(frame.subarray(0, 7));
  for (let i = 0; i < blocks; i++) out.set(block, 7 + i * block.length);
  return out;
}

Deno.test("the default cap is 128 MiB and createCodecs takes another one", async () => {
  const kafkajs = await kafkajsInternals();
  assert.equal(MAX_BATCH_BYTES, 128 * MiB);
  const frame = zstdRleFrame(MAX_BATCH_BYTES + 1, true);
  await oversize(() => zstdDecompress(frame), "zstd", MAX_BATCH_BYTES);
  assert.equal(zstdDecompress(zstdRleFrame(MAX_BATCH_BYTES, true)).length, MAX_BATCH_BYTES);
  const records = await zstdCodec.decompress(Buffer.from(frame));
  const marker = parseOversizeMarker(kafkajs.decodeRecord(records).value);
  assert.ok(marker?.first);
  assert.equal(marker.cap, MAX_BATCH_BYTES);
  for (const bad of [0, -1, 1.5, NaN]) {
    assert.throws(() => createCodecs({ maxBatchBytes: bad }), RangeError);
  }
});

Deno.test("every codec stops exactly at the cap: the cap itself decodes, one byte more does not", async () => {
  const input = INPUTS.words!.subarray(0, 100_000);
  for (const [name, , compress] of COMPRESSORS) {
    const compressed = await compress(input);
    const decode = DECOMPRESSORS[name];
    assertBytesEqual(await decode(compressed, input.length), input, `${name} at the cap`);
    await oversize(() => decode(compressed, input.length - 1), name, input.length - 1);
  }
  // A zstd frame that declares no size is counted as it decodes (its window is 512 KiB).
  const stream = await zstdStreamFrame(8);
  assert.equal(zstdDecompress(stream, MiB).length, MiB);
  const error = await oversize(() => zstdDecompress(stream, MiB - 1), "zstd", MiB - 1);
  assert.match(error.detail, /declares no size/);
  assert.ok(stoppedAfter(error) <= MiB - 1);
  // zstd-jni's stream frames (no size, a 2 MiB window) decode under a cap of their window.
  const jni = await readFixture("zstd_stream_text.zst");
  assertBytesEqual(zstdDecompress(jni, 2 * MiB), INPUTS.text!, "zstd stream fixture");
});

Deno.test("a batch past the cap reaches kafkajs as one marker record per record of the batch", async () => {
  const kafkajs = await kafkajsInternals();
  const cap = 256 * KiB;
  const codecs = createCodecs({ maxBatchBytes: cap });
  const values = [new Uint8Array(MiB), new TextEncoder().encode("second"), INPUTS.text!];
  const content = serializeRecords(kafkajs, values);
  for (const [name, type, compress] of COMPRESSORS) {
    const compressed = await compress(content);
    const records = await decodeWith(kafkajs, codecs, recordBatch(type, compressed, 3));
    assert.deepEqual(records.map((r) => r.offset), ["41", "42", "43"], name);
    const first = parseOversizeMarker(records[0]!.value);
    assert.ok(first?.first, `${name}: first marker`);
    assert.equal(first.codec, name.toUpperCase());
    assert.equal(first.cap, cap);
    assert.equal(first.records, 3);
    assertBytesEqual(first.compressed, compressed, `${name}: compressed records kept`);
    assert.match(first.reason, /^it grows past 256 KiB \(.+\); its 3 records were set aside$/);
    assert.equal(
      oversizeMarkerReason(records[0]!.value),
      `${name.toUpperCase()} batch: ${first.reason}`,
    );
    for (const record of records.slice(1)) {
      assert.equal(parseOversizeMarker(record.value)?.first, false, `${name}: following marker`);
      assert.ok(oversizeMarkerReason(record.value));
    }
  }
  // A compacted batch (offsets 41 and 47 left): the last marker carries the last offset, so
  // committing after it skips the whole batch.
  const zst = await zstdCompress(content);
  const compacted = await decodeWith(kafkajs, codecs, recordBatch(Types.ZSTD, zst, 2, 6));
  assert.deepEqual(compacted.map((r) => r.offset), ["41", "47"]);
  // Outside a kafkajs fetch buffer (no batch header before the data): one marker.
  const alone = await codecs.zstd.decompress(Buffer.from(zst));
  const record = kafkajs.decodeRecord(alone);
  assert.equal(record.offset, "0");
  const marker = parseOversizeMarker(record.value);
  assert.ok(marker?.first);
  assert.equal(marker.records, null);
  assert.match(marker.reason, /its records were set aside$/);
  // A header claiming more records than can be set aside: the fetch fails, as before the cap.
  const many = recordBatch(Types.ZSTD, zst, MAX_OVERSIZE_MARKERS + 1);
  await assert.rejects(decodeWith(kafkajs, codecs, many), OversizeError);
});

Deno.test("batches within the cap decode byte-identical through capped codecs", async () => {
  const kafkajs = await kafkajsInternals();
  const codecs = createCodecs({ maxBatchBytes: MiB });
  const values = [INPUTS.words!, INPUTS.text!.subarray(0, 200_000), new Uint8Array(0)];
  const content = serializeRecords(kafkajs, values);
  for (const [name, type, compress] of COMPRESSORS) {
    const records = await decodeWith(
      kafkajs,
      codecs,
      recordBatch(type, await compress(content), 3),
    );
    assert.equal(records.length, 3);
    records.forEach((record, i) => {
      assert.equal(parseOversizeMarker(record.value), undefined);
      assertBytesEqual(record.value!, values[i]!, `${name} record ${i}`);
    });
  }
});

Deno.test("a record a producer wrote can never pass for a marker", () => {
  // The prefix ends with random bytes drawn when the module loaded.
  const forged = new TextEncoder().encode("\0kafka-rebuild oversize batch\0" + "x".repeat(40));
  assert.equal(parseOversizeMarker(forged), undefined);
  assert.equal(oversizeMarkerReason(forged), undefined);
  assert.equal(parseOversizeMarker(null), undefined);
  assert.equal(parseOversizeMarker(new Uint8Array(0)), undefined);
});

Deno.test("ZSTD: every frame counts, not only the first (it declares a small size, later ones are big)", async () => {
  const cap = MiB;
  const small = await zstdCompress(new TextEncoder().encode("hello"));
  const join = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
  // A later frame declares 1 GiB.
  let error = await oversize(
    () => zstdDecompress(join(small, zstdRleFrame(1024 * MiB, true)), cap),
    "zstd",
    cap,
  );
  assert.match(error.detail, /its 2 frames declare 1073741829 bytes \(the first declares 5\)/);
  // A later frame declares nothing and holds 1 GiB of RLE blocks: caught before decoding.
  error = await oversize(
    () => zstdDecompress(join(small, zstdRleFrame(1024 * MiB, false)), cap),
    "zstd",
    cap,
  );
  assert.match(error.detail, /hold at least \d+ bytes in raw and RLE blocks/);
  // A later frame declares nothing and decodes to 1 GiB from ~100 KB of compressed blocks:
  // decoding stops at the cap (the whole output would take seconds and 1 GiB).
  const bomb = join(small, await zstdStreamFrame(8192));
  assert.ok(bomb.length < 120_000);
  const started = performance.now();
  error = await oversize(() => zstdDecompress(bomb, cap), "zstd", cap);
  assert.ok(performance.now() - started < 2000, "stops at the cap");
  assert.match(error.detail, /frame 2 of 2 declares no size .*\(the first frame declares 5\)/);
  assert.ok(stoppedAfter(error) <= cap);
  // The same frames, small, decode right.
  const fine = zstdDecompress(join(small, await zstdStreamFrame(10), small), 4 * MiB);
  assert.equal(fine.length, 5 + 10 * ZSTD_BLOCK + 5);
  assert.equal(new TextDecoder().decode(fine.subarray(0, 5)), "hello");
  for (let i = 5; i < 5 + 10 * ZSTD_BLOCK; i += 4099) assert.equal(fine[i], ((i - 5) % 8) * 31 + 1);
  // A window larger than the cap is refused before it is allocated.
  const window = zstdRleFrame(1000, false);
  window[5] = (30 - 10) << 3; // 1 GiB window
  error = await oversize(() => zstdDecompress(window, cap), "zstd", cap);
  assert.match(error.detail, /asks for a 1073741824-byte window/);
});

Deno.test("LZ4, GZIP and Snappy bombs stop at the cap without decoding (or allocating) the rest", async () => {
  const cap = MiB;
  // LZ4: 1 GiB of zeros in 4.4 MB; its blocks are counted as they decode.
  const lz4 = lz4ZeroBomb(16 * KiB);
  let started = performance.now();
  let error = await oversize(() => lz4Decompress(lz4, cap), "lz4", cap);
  assert.ok(performance.now() - started < 2000, "LZ4 stops at the cap");
  assert.ok(stoppedAfter(error) <= cap);
  // LZ4 frames that declare their size are refused before decoding.
  const sized = lz4Compress(new Uint8Array(2 * MiB), { contentSize: true });
  error = await oversize(() => lz4Decompress(sized, cap), "lz4", cap);
  assert.match(error.detail, /declares a content size of 2097152 bytes/);
  // GZIP: 64 MiB of zeros; zlib stops inflating at the cap.
  const gz = await gzipCompress(new Uint8Array(64 * MiB));
  started = performance.now();
  error = await oversize(() => gzipDecompress(gz, cap), "gzip", cap);
  assert.ok(performance.now() - started < 2000, "GZIP stops at the cap");
  assert.match(error.detail, /trailer claims 67108864 bytes/);
  // Snappy declares every block's length up front: a raw block claiming 4 GiB, xerial blocks
  // claiming more than the cap in all.
  const raw = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
  error = await oversize(() => snappyDecompress(raw, cap), "snappy", cap);
  assert.match(error.detail, /declares 4294967295 bytes/);
  const xerial = snappyCompress(new Uint8Array(2 * MiB));
  error = await oversize(() => snappyDecompress(xerial, cap), "snappy", cap);
  assert.match(error.detail, /xerial blocks declare at least \d+ bytes/);
  // Malformed data is still an error, not a marker.
  await assert.rejects(
    createCodecs({ maxBatchBytes: cap }).gzip.decompress(Buffer.from("nope")),
    (e) => e instanceof CompressionError && !(e instanceof OversizeError),
  );
});

// ---------------------------------------------------------------------------
// Throughput (informational; the bound only catches pathological slowness)
// ---------------------------------------------------------------------------

Deno.test("decompression throughput of an ~8 MiB batch", async () => {
  const size = 8 * 1024 * 1024;
  // Unique word salad with every 4th 256 KiB chunk incompressible, like real file data.
  const input = genWords(size, 0x5eed);
  const chunk = 256 * 1024;
  for (let off = 3 * chunk; off < size; off += 4 * chunk) input.set(genRandom(chunk, off), off);
  const cases: [string, Uint8Array, (d: Uint8Array) => Uint8Array][] = [
    ["lz4 (64 KiB blocks)", lz4Compress(input), (d) => lz4Decompress(d)],
    ["snappy (xerial)", snappyCompress(input), (d) => snappyDecompress(d)],
    ["zstd (level 3)", await zstdCompress(input), (d) => zstdDecompress(d)],
  ];
  for (const [name, compressed, decode] of cases) {
    assertBytesEqual(decode(compressed), input, name); // warm-up + correctness
    const runs = 5;
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) decode(compressed);
    const ms = (performance.now() - t0) / runs;
    const mbps = size / 1e6 / (ms / 1000);
    console.log(
      `  ${name}: ${size} B from ${compressed.length} B in ${ms.toFixed(1)} ms = ${
        mbps.toFixed(0)
      } MB/s`,
    );
    assert.ok(mbps > 20, `${name} decompression too slow: ${mbps.toFixed(1)} MB/s`);
  }
  const t0 = performance.now();
  const lz4 = lz4Compress(input);
  console.log(
    `  lz4 compress: ${(size / 1e6 / ((performance.now() - t0) / 1000)).toFixed(0)} MB/s, ratio ${
      (lz4.length / size).toFixed(3)
    }`,
  );
});

Deno.test("a small batch decodes into a buffer of its own size (its records never pin a block-sized buffer)", () => {
  const record = new Uint8Array(4096).map((_, i) => (i * 7919) % 251);
  for (const decode of [lz4Decompress]) {
    const out = decode(lz4Compress(record));
    assert.deepEqual(out, record);
    assert.ok(out.buffer.byteLength <= record.length + 4096, `${out.buffer.byteLength} bytes held`);
  }
});

Deno.test("malformedRecords accepts what kafkajs encodes and names the first record that breaks the framing", async () => {
  const kafkajs = await kafkajsInternals();
  const good = serializeRecords(kafkajs, [INPUTS.text!, new Uint8Array(0), new Uint8Array(300)]);
  assert.equal(malformedRecords(good, 3), undefined);
  assert.equal(malformedRecords(new Uint8Array(0), 0), undefined);
  // Fewer records than the header claims.
  assert.match(malformedRecords(good, 4)!, /^record 4 of 4 claims an unreadable number of bytes/);
  // Cut short inside the last record.
  assert.match(
    malformedRecords(good.subarray(0, good.length - 5), 3)!,
    /^record 3 of 3 claims \d+ bytes, past the end/,
  );
  // A record declaring more bytes than its fields take (Kafka refuses that too).
  const first =
    kafkajs.record({ offsetDelta: 0, key: Buffer.from("k"), value: Buffer.from("v") }).buffer;
  const longer = Buffer.concat([Buffer.from([first[0]! + 2]), first.subarray(1), Buffer.from([0])]);
  assert.match(
    malformedRecords(longer, 1)!,
    /^record 1 of 1 ends 1 bytes before its declared length/,
  );
  // ... or fewer.
  const shorter = Buffer.concat([Buffer.from([first[0]! - 8]), first.subarray(1)]);
  assert.match(malformedRecords(shorter, 1)!, /^record 1 of 1 has fields that do not fit/);
});

Deno.test("a batch whose records are malformed reaches kafkajs as marker records that say so", async () => {
  const kafkajs = await kafkajsInternals();
  const codecs = createCodecs();
  const good = serializeRecords(kafkajs, [INPUTS.text!, INPUTS.text!]);
  const broken = good.subarray(0, good.length - 3);
  for (const [name, type, compress] of COMPRESSORS) {
    const records = await decodeWith(kafkajs, codecs, recordBatch(type, await compress(broken), 2));
    assert.deepEqual(records.map((r) => r.offset), ["41", "42"], name);
    const first = parseOversizeMarker(records[0]!.value);
    assert.ok(first?.first, name);
    assert.equal(first.kind, "malformed");
    assert.match(
      first.reason,
      /^its records are malformed \(record 2 of 2 .+\); its 2 records were set aside$/,
    );
    // Well-formed records still decode as themselves.
    const fine = await decodeWith(kafkajs, codecs, recordBatch(type, await compress(good), 2));
    assert.deepEqual(fine.map((r) => Buffer.from(r.value!).equals(Buffer.from(INPUTS.text!))), [
      true,
      true,
    ]);
  }
});
