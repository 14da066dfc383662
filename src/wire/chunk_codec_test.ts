import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { createHash } from "node:crypto";
import {
  ChunkDecodeError,
  chunkKey,
  copyBytes,
  type DataFileChunk,
  decodeChunk,
  encodeChunk,
  toHex,
} from "./chunk_codec.ts";
import { sha512 } from "./sha512.ts";

const VECTORS = new URL("../../../shared/vectors/", import.meta.url);
const FILE_HASH =
  "26ac1a0112685d30bf9c7aee921d88378e0f7c1591ab50e98f762a73bb9e420fe0c1a4db1c22422427fd08fe288c980f1fe7634ede5214dea73b772bca423477";
const NAME = "1a0ceb89-b5f0-45dc-9c12-63d3020e2217.dat";

/** Expected fields of the four vectors, from the reference specification (§9). */
const EXPECTED = [
  {
    file: "openmsistream_chunk_0.bin",
    sha256: "8409549ef2ee01d3ac0ab00c48a1f0e920a82efdb5b2bb96a6e6ae9f5882c7b2",
    offset: 0,
    chunkI: 1,
    size: 16384,
    chunkHash:
      "b706ec1d92bf93faaa0ab790607117fdb1127f54f3f30df275a71fe5cf1fa2f024b553619f580ce1a3256d490dd4c7ae0dd7c412aefad2e52b37f05f0d6e90c4",
  },
  {
    file: "openmsistream_chunk_1.bin",
    sha256: "fcdf5983a1430002db2647b08a4348707a321f116440e649dcf628e5d5eff22c",
    offset: 16384,
    chunkI: 2,
    size: 16384,
    chunkHash:
      "51ec941d34afad21379687eb7cd797aad2c6c648ab94bebc55c6357f4f2879817a623af3f9b8f6977b8caeadff8e6636afdad677d6e481f63b4220813f51ea63",
  },
  {
    file: "openmsistream_chunk_2.bin",
    sha256: "bc0151afc23a54012b12640207548c49c9624deb915c8c2f05a7ac1579f3b660",
    offset: 32768,
    chunkI: 3,
    size: 16384,
    chunkHash:
      "b772404dac99ef989aeb73de174ab1b5e3ce83b096131dea77bd703f779009ef941c3d9c79cbb1ffbf9ee16548fb4aaaaf9e89f92f12964c85d2d1dffe24228e",
  },
  {
    file: "openmsistream_chunk_380.bin",
    sha256: "5fd4de9f3d328204ee6c2b30fe5aa6c9ad443da15f3b6b2aa854cc4c006d52a2",
    offset: 6225920,
    chunkI: 381,
    size: 11128,
    chunkHash:
      "ff29c2d75e90d8fbcd76d0d87e1ad2b3be1913d355a98167631bdfdd05424427d8856b2b7ff5a0679650b2988b4675b16602921cc7e4cfc09ede8d9e87cbabb7",
  },
];

for (const v of EXPECTED) {
  Deno.test(`golden vector ${v.file} decodes to the reference fields and re-encodes byte for byte`, async () => {
    const bytes = await Deno.readFile(new URL(v.file, VECTORS));
    assert.equal(createHash("sha256").update(bytes).digest("hex"), v.sha256);
    const chunk = decodeChunk(bytes);
    assert.equal(chunk.filename, NAME);
    assert.equal(toHex(chunk.fileHash), FILE_HASH);
    assert.equal(toHex(chunk.chunkHash), v.chunkHash);
    assert.equal(chunk.chunkOffsetWrite, v.offset);
    assert.equal(chunk.chunkI, v.chunkI);
    assert.equal(chunk.nTotalChunks, 381);
    assert.equal(chunk.subdirStr, "test_file_sub_dir");
    assert.equal(chunk.filenameAppend, "");
    assert.equal(chunk.data.length, v.size);
    assert.equal(toHex(sha512(chunk.data)), v.chunkHash);
    assert.equal(chunk.fileMtime, 1700000000.0);
    assert.deepEqual(encodeChunk(chunk), bytes);
    assert.equal(
      chunkKey(chunk),
      `test_file_sub_dir_${NAME}_chunk_${v.chunkI}_of_381`,
    );
  });
}

Deno.test("chunkKey gives top-level files a leading underscore and joins subdirectories", () => {
  assert.equal(
    chunkKey({ subdirStr: "", filename: "f.dat", chunkI: 1, nTotalChunks: 3 }),
    "_f.dat_chunk_1_of_3",
  );
  assert.equal(
    chunkKey({ subdirStr: "a/b", filename: "f.dat", chunkI: 2, nTotalChunks: 3 }),
    "a_b_f.dat_chunk_2_of_3",
  );
});

function sample(overrides: Partial<DataFileChunk> = {}): DataFileChunk {
  const data = new TextEncoder().encode("hello chunk");
  return {
    filename: "f.dat",
    fileHash: sha512(data),
    chunkHash: sha512(data),
    chunkOffsetWrite: 0,
    chunkI: 1,
    nTotalChunks: 1,
    subdirStr: "",
    filenameAppend: "",
    data,
    fileMtime: 1700000000.5,
    ...overrides,
  };
}

Deno.test("a 9-element value with bin text fields decodes with no mtime (backward compatibility)", () => {
  const data = new Uint8Array([1, 2, 3]);
  const hash = sha512(data);
  const te = new TextEncoder();
  const value = encode([
    te.encode("testfile.dat"),
    hash,
    hash,
    0,
    1,
    1,
    te.encode("subdir"),
    te.encode(""),
    data,
  ]);
  const chunk = decodeChunk(value);
  assert.equal(chunk.filename, "testfile.dat");
  assert.equal(chunk.subdirStr, "subdir");
  assert.equal(chunk.fileMtime, null);
  assert.deepEqual(chunk.data, data);
});

Deno.test("integer fields accept floats (truncated) and the mtime accepts ints; mtime <= 0 means none", () => {
  const c = sample();
  const value = encode([c.filename, c.fileHash, c.chunkHash, 3.9, 1.0, 2.5, "", "", c.data, 0]);
  const chunk = decodeChunk(value);
  assert.equal(chunk.chunkOffsetWrite, 3);
  assert.equal(chunk.nTotalChunks, 2);
  assert.equal(chunk.fileMtime, null);
  const withIntMtime = encode([c.filename, c.fileHash, c.chunkHash, 0, 1, 1, "", "", c.data, 1234]);
  assert.equal(decodeChunk(withIntMtime).fileMtime, 1234);
});

Deno.test("round trip keeps every field, including 64-bit offsets", () => {
  const c = sample({
    chunkOffsetWrite: 5 * 2 ** 32 + 7,
    chunkI: 70000,
    nTotalChunks: 70001,
    subdirStr: "a/ü b",
  });
  const back = decodeChunk(encodeChunk(c));
  assert.deepEqual({ ...back }, { ...c });
});

Deno.test("bad values are refused with a reason", () => {
  const c = sample();
  const cases: [Uint8Array | null, RegExp][] = [
    [null, /tombstone/],
    [new Uint8Array([0xc1]), /not valid msgpack/],
    [encode({ a: 1 }), /array/],
    [encode([1, 2, 3]), /Expected 9 or 10 properties but found 3/],
    [
      encode([c.filename, c.fileHash, c.chunkHash, 0, 1, 1, "", "", new Uint8Array([9])]),
      /chunk 1 failed its SHA-512 check/,
    ],
    [
      encode([5, c.fileHash, c.chunkHash, 0, 1, 1, "", "", c.data]),
      /filename must be a str or bin/,
    ],
    [
      encode([new Uint8Array([0xff, 0xfe]), c.fileHash, c.chunkHash, 0, 1, 1, "", "", c.data]),
      /filename is not valid UTF-8/,
    ],
    [
      encode([c.filename, c.fileHash, c.chunkHash, "0", 1, 1, "", "", c.data]),
      /chunk_offset_write must be an integer/,
    ],
    [
      encode([c.filename, c.fileHash, c.chunkHash, 0, 1, 1, "", "", c.data, "x"]),
      /file_mtime must be a number/,
    ],
  ];
  for (const [value, reason] of cases) {
    assert.throws(
      () => decodeChunk(value),
      (e: unknown) => e instanceof ChunkDecodeError && reason.test(e.message),
    );
  }
});

Deno.test("copyBytes() copies a Buffer view into memory of its own (Buffer's slice() would not)", async () => {
  const { Buffer } = await import("node:buffer");
  const batch = Buffer.alloc(65536, 7);
  const view = batch.subarray(100, 164);
  const copy = copyBytes(view);
  assert.deepEqual([...copy], [...view]);
  assert.equal(copy.buffer.byteLength, 64, "the copy keeps only its own bytes alive");
  batch[100] = 1;
  assert.equal(copy[0], 7);
});

Deno.test("verifyChunkHash() checks short and long chunks (the long ones off the main thread)", async () => {
  const { verifyChunkHash, decodeChunkFields } = await import("./chunk_codec.ts");
  for (const size of [10, 1 << 20]) {
    const data = new Uint8Array(size).map((_, i) => i % 253);
    const good: DataFileChunk = {
      filename: "a.dat",
      fileHash: sha512(data),
      chunkHash: sha512(data),
      chunkOffsetWrite: 0,
      chunkI: 1,
      nTotalChunks: 1,
      subdirStr: "",
      filenameAppend: "",
      data,
      fileMtime: null,
    };
    const decoded = decodeChunkFields(encodeChunk(good));
    await verifyChunkHash(decoded);
    decoded.data[size - 1]! ^= 1;
    await assert.rejects(verifyChunkHash(decoded), /chunk 1 failed its SHA-512 check/);
  }
});
