import assert from "node:assert/strict";
import {
  decideGeneration,
  isNewerUpload,
  type KnownGeneration,
  type Upload,
} from "./generation.ts";

const H = new Uint8Array(64).fill(0xaa);
const H2 = new Uint8Array(64).fill(0xbb);
const H3 = new Uint8Array(64).fill(0xcc);

function known(
  fileHash: Uint8Array,
  n: number,
  mtime: number | null,
  firstTime: number | null,
  lastTime = firstTime,
): KnownGeneration {
  return { fileHash, nTotalChunks: n, mtime, firstTime, lastTime };
}

function upload(
  fileHash: Uint8Array,
  n: number,
  mtime: number | null,
  time: number | null,
): Upload {
  return { fileHash, nTotalChunks: n, mtime, time };
}

// One row per line of the policy table in README.md ("Re-uploads").
const rows: {
  row: string;
  inProgress: KnownGeneration | null;
  published: KnownGeneration | null;
  incoming: Upload;
  expected: string;
}[] = [
  {
    row: "same hash as in progress, same layout",
    inProgress: known(H, 4, 1000, 5000),
    published: null,
    incoming: upload(H.slice(), 4, 1000, 5100),
    expected: "accept",
  },
  {
    row: "same hash as in progress, another layout (other chunk size)",
    inProgress: known(H, 4, 1000, 5000),
    published: null,
    incoming: upload(H, 128, 1000, 9000),
    expected: "accept",
  },
  {
    row: "same hash as published, a redelivered record of that upload",
    inProgress: null,
    published: known(H, 4, 1000, 5000, 5200),
    incoming: upload(H, 4, 1000, 5100),
    expected: "duplicate",
  },
  {
    row: "same hash as published, redelivered while a later upload is in progress",
    inProgress: known(H2, 5, null, 8000),
    published: known(H, 4, null, 5000, 5200),
    incoming: upload(H, 4, null, 5200),
    expected: "duplicate",
  },
  {
    row: "same hash as published, no record times: a duplicate",
    inProgress: null,
    published: known(H, 4, 1000, null),
    incoming: upload(H, 4, 1000, null),
    expected: "duplicate",
  },
  {
    row: "same hash as published, uploaded after it (deleted downstream? re-checked)",
    inProgress: null,
    published: known(H, 4, 1000, 5000, 5200),
    incoming: upload(H, 4, 1000, 9000),
    expected: "reupload",
  },
  {
    row: "a revert to the published content, uploaded after the version in progress",
    inProgress: known(H2, 4, 2000, 7000),
    published: known(H, 4, 1000, 5000, 5200),
    incoming: upload(H, 4, 1000, 9000),
    expected: "reupload",
  },
  {
    row: "the published content again, but before the version in progress",
    inProgress: known(H2, 4, 2000, 9000),
    published: known(H, 4, 1000, 5000, 5200),
    incoming: upload(H, 4, 1000, 7000),
    expected: "stale",
  },
  {
    row: "another hash uploaded after the one in progress, even with an older mtime",
    inProgress: known(H, 4, 2000, 5000),
    published: null,
    incoming: upload(H2, 2, 1000, 6000),
    expected: "newer",
  },
  {
    row: "another hash uploaded after the published file, even with an older mtime (cp -p restore)",
    inProgress: null,
    published: known(H, 4, 2000, 5000, 5200),
    incoming: upload(H2, 4, 1000, 6000),
    expected: "newer",
  },
  {
    row: "another hash uploaded before the one in progress, even with a newer mtime",
    inProgress: known(H, 4, 1000, 5000),
    published: null,
    incoming: upload(H2, 9, 2000, 4000),
    expected: "stale",
  },
  {
    row: "another hash uploaded before the published file",
    inProgress: null,
    published: known(H, 4, 1000, 5000, 5200),
    incoming: upload(H2, 4, 2000, 4999),
    expected: "stale",
  },
  {
    row: "same upload time: the newer mtime wins",
    inProgress: known(H, 4, 1000, 5000),
    published: null,
    incoming: upload(H2, 4, 1001, 5000),
    expected: "newer",
  },
  {
    row: "no times, same mtime: more chunks (the file grew) wins",
    inProgress: known(H, 4, 1000, null),
    published: null,
    incoming: upload(H2, 5, 1000, null),
    expected: "newer",
  },
  {
    row: "no times, no mtimes, same chunk count: the first seen stays",
    inProgress: known(H, 4, null, null),
    published: null,
    incoming: upload(H2, 4, null, null),
    expected: "stale",
  },
  {
    row: "published without times: another content is newer unless its mtime is older",
    inProgress: null,
    published: known(H, 4, 1000, null),
    incoming: upload(H2, 1, 1000, null),
    expected: "newer",
  },
  {
    row: "published without times: an older mtime is stale",
    inProgress: null,
    published: known(H, 4, 1000, null),
    incoming: upload(H2, 9, 999, 7000),
    expected: "stale",
  },
  {
    row: "nothing known",
    inProgress: null,
    published: null,
    incoming: upload(H, 4, null, null),
    expected: "newer",
  },
];

for (const { row, inProgress, published, incoming, expected } of rows) {
  Deno.test(`decideGeneration(): ${row} → ${expected}`, () => {
    assert.equal(decideGeneration(inProgress, published, incoming), expected);
  });
}

Deno.test("isNewerUpload() compares whole hashes' uploads by time, then mtime, then chunk count", () => {
  const current = known(H, 4, 1000, 5000);
  assert.equal(isNewerUpload(upload(H3, 1, 1, 5001), current), true);
  assert.equal(isNewerUpload(upload(H3, 99, 9999, 4999), current), false);
  assert.equal(isNewerUpload(upload(H3, 1, 1001, 5000), current), true);
  assert.equal(isNewerUpload(upload(H3, 5, 1000, 5000), current), true);
  assert.equal(isNewerUpload(upload(H3, 4, 1000, 5000), current), false);
});

Deno.test("decideGeneration() compares whole hashes, not prefixes", () => {
  const almost = H.slice();
  almost[63] = 0;
  assert.equal(
    decideGeneration(known(H, 4, null, 5000), null, upload(almost, 4, null, 4000)),
    "stale",
  );
  assert.equal(
    decideGeneration(known(H, 4, null, 5000), null, upload(almost, 4, null, 6000)),
    "newer",
  );
});
