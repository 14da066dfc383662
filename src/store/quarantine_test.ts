import assert from "node:assert/strict";
import { join } from "node:path";
import { fitName, Quarantine } from "./quarantine.ts";

const encoder = new TextEncoder();
const bytesOf = (text: string) => encoder.encode(text).length;

interface Setup {
  dir: string;
  quarantine: Quarantine;
  /** A file outside the quarantine with these bytes, to be kept. */
  file(bytes: Uint8Array | string): Promise<string>;
  names(): Promise<string[]>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(maxBytes = 1024 * 1024): Promise<Setup> {
  const root = await Deno.makeTempDir({ prefix: "quarantine_test_" });
  const dir = join(root, "quarantine");
  const quarantine = new Quarantine(dir, maxBytes);
  await quarantine.open();
  let n = 0;
  return {
    dir,
    quarantine,
    async file(bytes) {
      const path = join(root, `source-${++n}`);
      await Deno.writeFile(path, typeof bytes === "string" ? encoder.encode(bytes) : bytes);
      return path;
    },
    async names() {
      const out: string[] = [];
      for await (const e of Deno.readDir(dir)) out.push(e.name);
      return out.sort();
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

const STAMP = /^\d{8}T\d{6}-\d{6}-/;

/** The stamp `Quarantine` gives names in the UTC second of `ms`, without the serial. */
function stampAt(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
}

Deno.test("keepRecord() keeps the value and a description of the record", async () => {
  await using t = await setup();
  const value = new Uint8Array([0, 1, 2, 255]);
  const about = await t.quarantine.keepRecord(
    { topic: "data", partition: 3, offset: "42" },
    encoder.encode("key_1_of_2"),
    value,
    "it is not a valid chunk: boom",
  );
  assert.equal(about.slice(0, t.dir.length), t.dir);
  const name = about.slice(t.dir.length + 1);
  assert.match(name, /^\d{8}T\d{6}-\d{6}-p3-o42\.txt$/);
  assert.deepEqual(await t.names(), [
    name.replace(/\.txt$/, ".txt"),
    name.replace(/txt$/, "value"),
  ]);
  assert.deepEqual(await Deno.readFile(about.replace(/txt$/, "value")), value);
  assert.equal(
    await Deno.readTextFile(about),
    [
      "topic: data",
      "partition: 3",
      "offset: 42",
      'key: "key_1_of_2"',
      "value bytes: 4",
      "reason: it is not a valid chunk: boom",
      "",
    ].join("\n"),
  );
});

Deno.test("keepRecord() keeps only a description of a tombstone or a record without key", async () => {
  await using t = await setup();
  const about = await t.quarantine.keepRecord(
    { topic: "data", partition: 0, offset: "7" },
    null,
    null,
    "it is a tombstone",
  );
  assert.deepEqual(await t.names(), [about.slice(t.dir.length + 1)]);
  const text = await Deno.readTextFile(about);
  assert.ok(text.includes('key: "(none)"\n'), text);
  assert.ok(text.includes("value bytes: (none: tombstone)\n"), text);
  assert.ok(text.includes("reason: it is a tombstone\n"), text);
});

Deno.test("keepRecord() names each record apart, even for the same offset", async () => {
  await using t = await setup();
  const origin = { topic: "t", partition: 1, offset: "5" };
  const paths = new Set<string>();
  for (let i = 0; i < 5; i++) {
    paths.add(await t.quarantine.keepRecord(origin, null, new Uint8Array([i]), `reason ${i}`));
  }
  assert.equal(paths.size, 5);
  assert.equal((await t.names()).length, 10);
});

Deno.test("keepRecord() keeps the description without a value larger than the quarantine", async () => {
  await using t = await setup(1000);
  const about = await t.quarantine.keepRecord(
    { topic: "t", partition: 0, offset: "1" },
    null,
    new Uint8Array(5000),
    "too big",
  );
  assert.deepEqual(await t.names(), [about.slice(t.dir.length + 1)]);
  const text = await Deno.readTextFile(about);
  assert.ok(text.includes("value bytes: 5000\n"), text);
  assert.ok(text.includes("value not kept: larger than the quarantine\n"), text);
});

Deno.test("keepFile() moves the file in, with the reason beside it", async () => {
  await using t = await setup();
  const source = await t.file("rebuilt but wrong");
  const kept = await t.quarantine.keepFile(source, "x y ü.dat", 'Cannot rebuild "a/x y ü.dat"');
  assert.ok(kept !== null);
  assert.match(kept.slice(t.dir.length + 1), /^\d{8}T\d{6}-\d{6}-x y ü\.dat\.rejected$/);
  await assert.rejects(Deno.stat(source), Deno.errors.NotFound);
  assert.equal(await Deno.readTextFile(kept), "rebuilt but wrong");
  assert.equal(
    await Deno.readTextFile(kept.replace(/rejected$/, "txt")),
    'Cannot rebuild "a/x y ü.dat"\n',
  );
  assert.equal((await t.names()).length, 2);
});

Deno.test("keepFile() deletes a file larger than the quarantine and says so", async () => {
  await using t = await setup(100);
  const source = await t.file(new Uint8Array(500));
  assert.equal(await t.quarantine.keepFile(source, "big.dat", "bad hash"), null);
  await assert.rejects(Deno.stat(source), Deno.errors.NotFound);
  const names = await t.names();
  assert.equal(names.length, 1);
  assert.match(names[0]!, /-big\.dat\.txt$/);
  assert.equal(
    await Deno.readTextFile(join(t.dir, names[0]!)),
    "bad hash\n(file of 500 bytes deleted: larger than the quarantine)\n",
  );
});

Deno.test("keepFile() never evicts the file it keeps to make room for its description", async () => {
  await using t = await setup(100);
  const kept = await t.quarantine.keepFile(await t.file(new Uint8Array(95)), "f.dat", "bad");
  // 95 bytes and a 4-byte description fit; the file is there with its reason.
  assert.ok(kept !== null);
  assert.equal((await Deno.stat(kept)).size, 95);
  assert.equal(await Deno.readTextFile(kept.replace(/rejected$/, "txt")), "bad\n");
  // 98 bytes and a 4-byte description do not: deleted rather than kept without its reason.
  assert.equal(await t.quarantine.keepFile(await t.file(new Uint8Array(98)), "g.dat", "bad"), null);
});

Deno.test("the oldest entries go first when the budget is reached, across runs", async () => {
  await using t = await setup(1000);
  const first = await t.quarantine.keepFile(await t.file(new Uint8Array(400)), "one", "r1");
  const second = await t.quarantine.keepFile(await t.file(new Uint8Array(400)), "two", "r2");
  assert.ok(first !== null && second !== null);
  // Make the first one clearly older, as a restart sees it by mtime.
  await Deno.utime(first, new Date(2020, 0, 1), new Date(2020, 0, 1));
  await Deno.utime(first.replace(/rejected$/, "txt"), new Date(2020, 0, 1), new Date(2020, 0, 1));

  const again = new Quarantine(t.dir, 1000);
  await again.open();
  const third = await again.keepFile(await t.file(new Uint8Array(400)), "three", "r3");
  assert.ok(third !== null);
  const names = await t.names();
  // The oldest file went; only as much as needed did (its description may stay).
  assert.ok(!names.some((n) => n.endsWith("-one.rejected")), names.join(", "));
  assert.ok(names.some((n) => n.endsWith("-two.rejected")), names.join(", "));
  assert.ok(names.some((n) => n.endsWith("-three.rejected")), names.join(", "));
  let total = 0;
  for (const n of names) total += (await Deno.stat(join(t.dir, n))).size;
  assert.ok(total <= 1000, `${total} bytes kept`);
});

Deno.test("a restart in the same second never overwrites an entry of the earlier run", async () => {
  await using t = await setup();
  const now = Date.now();
  // What an earlier run kept under the first serial numbers of this second and the next two.
  const earlier: string[] = [];
  for (const ms of [now, now + 1000, now + 2000]) {
    for (const serial of ["000001", "000002"]) {
      const name = `${stampAt(ms)}-${serial}-same.dat.rejected`;
      await Deno.writeTextFile(join(t.dir, name), `earlier ${name}`);
      earlier.push(name);
    }
  }
  const restarted = new Quarantine(t.dir, 1024 * 1024);
  await restarted.open();
  const kept = await restarted.keepFile(await t.file("new"), "same.dat", "again");
  assert.ok(kept !== null);
  assert.ok(!earlier.includes(kept.slice(t.dir.length + 1)), kept);
  assert.equal(await Deno.readTextFile(kept), "new");
  for (const name of earlier) {
    assert.equal(await Deno.readTextFile(join(t.dir, name)), `earlier ${name}`);
  }
});

/** Asserts that a kept name is within 255 bytes, whole characters, and starts with a prefix of `name`. */
function assertFits(keptName: string, name: string, suffix: string): void {
  assert.ok(bytesOf(keptName) <= 255, `${bytesOf(keptName)} bytes: ${keptName}`);
  assert.ok(keptName.isWellFormed(), `a surrogate pair was split: ${JSON.stringify(keptName)}`);
  assert.ok(!keptName.includes("\ufffd"), keptName);
  assert.match(keptName, STAMP);
  assert.ok(keptName.endsWith(suffix), keptName);
  const part = keptName.replace(STAMP, "").slice(0, -suffix.length);
  assert.ok(part.length > 0);
  assert.ok(name.startsWith(part), `${JSON.stringify(part)} is not a start of the name`);
  // Cut at a code point boundary: the UTF-8 of the kept part starts the UTF-8 of the name.
  const whole = encoder.encode(name);
  const kept = encoder.encode(part);
  assert.deepEqual(whole.subarray(0, kept.length), kept);
  assert.deepEqual(new TextDecoder("utf-8", { fatal: true }).decode(kept), part);
}

Deno.test("an 80-character CJK name is kept under a name of at most 255 bytes", async () => {
  await using t = await setup();
  const name = "数据文件名称测试".repeat(10) + ".dat"; // 80 CJK characters: 240 bytes, then ".dat"
  assert.equal([...name].length, 84);
  assert.ok(bytesOf(name) > 240);
  const kept = await t.quarantine.keepFile(await t.file("cjk"), name, `Cannot rebuild "${name}"`);
  assert.ok(kept !== null);
  assert.equal(await Deno.readTextFile(kept), "cjk");
  const names = await t.names();
  assert.equal(names.length, 2);
  for (const n of names) assertFits(n, name, n.endsWith(".txt") ? ".txt" : ".rejected");
  const about = await Deno.readTextFile(kept.replace(/rejected$/, "txt"));
  assert.ok(about.startsWith(`Cannot rebuild "${name}"\n`), about);
  assert.ok(about.includes(`the file's name is ${JSON.stringify(name)}`), about);
});

Deno.test("a 300-character emoji name is cut between characters, never inside a surrogate pair", async () => {
  await using t = await setup();
  const name = "😀🎉".repeat(150);
  const kept = await t.quarantine.keepFile(await t.file("emoji"), name, "bad");
  assert.ok(kept !== null);
  assert.equal(await Deno.readTextFile(kept), "emoji");
  for (const n of await t.names()) {
    assertFits(n, name, n.endsWith(".txt") ? ".txt" : ".rejected");
    // Whole emoji, as many as fit: the stamp (23 bytes) and ".rejected" (9) leave 223 bytes.
    assert.equal(bytesOf(n.replace(STAMP, "").replace(/\.(txt|rejected)$/, "")), 220);
  }
});

Deno.test("a name with separators stays inside the quarantine", async () => {
  await using t = await setup();
  const kept = await t.quarantine.keepFile(await t.file("sep"), "a/b\\c\0d", "bad");
  assert.ok(kept !== null);
  assert.match(kept.slice(t.dir.length + 1), /-a_b_c_d\.rejected$/);
  assert.equal((await t.names()).length, 2);
});

Deno.test("fitName() fills up to 255 bytes and 255 decomposed UTF-16 units, whole code points only", () => {
  const prefix = "20260102T030405-000001-";
  for (
    const tail of [
      "a".repeat(400),
      "é".repeat(200),
      "数".repeat(200),
      "😀".repeat(200),
      "a" + "😀".repeat(100),
      "ab" + "数".repeat(100),
      "\u0390".repeat(200), // 2 bytes, 3 UTF-16 units decomposed (HFS+)
      "e\u0301".repeat(100),
    ]
  ) {
    for (const suffix of [0, 4, 9]) {
      const out = fitName(prefix, tail, suffix);
      assert.ok(out.startsWith(prefix));
      const part = out.slice(prefix.length);
      assert.ok(tail.startsWith(part));
      assert.ok(part.isWellFormed());
      const bytes = bytesOf(out) + suffix;
      const units = out.normalize("NFD").length + suffix;
      assert.ok(bytes <= 255 && units <= 255, `${bytes} bytes, ${units} units`);
      // As long as possible: the next code point would not fit.
      const next = String.fromCodePoint(tail.slice(part.length).codePointAt(0)!);
      assert.ok(
        bytes + bytesOf(next) > 255 || units + next.normalize("NFD").length > 255,
        `${JSON.stringify(tail.slice(0, 4))}: ${bytes} bytes, ${units} units`,
      );
    }
  }
  // Short names are kept whole.
  assert.equal(fitName(prefix, "f.dat"), prefix + "f.dat");
  assert.equal(fitName(prefix, ""), prefix);
});

Deno.test("a bad record is kept with its reason and exact bytes even when the quarantine is full, the oldest entries going first", async () => {
  await using t = await setup(2000);
  /** Every file written, in the order written. */
  const written: string[] = [];
  const keepRecord = async (offset: number) => {
    const about = await t.quarantine.keepRecord(
      { topic: "data", partition: 2, offset: String(offset) },
      encoder.encode(`key-${offset}`),
      new Uint8Array(300).fill(offset),
      `reason ${offset}`,
    );
    const name = about.slice(t.dir.length + 1);
    written.push(name.replace(/txt$/, "value"), name);
    return about;
  };
  const file = await t.quarantine.keepFile(await t.file(new Uint8Array(500)), "old.dat", "r");
  assert.ok(file !== null);
  written.push(
    file.slice(t.dir.length + 1),
    file.slice(t.dir.length + 1).replace(/rejected$/, "txt"),
  );
  let last = "";
  for (let offset = 1; offset <= 12; offset++) last = await keepRecord(offset);

  const names = await t.names();
  // What is left is the most recent entries: the written files from some point on, none missing.
  const from = written.length - names.length;
  assert.ok(from > 2, `nothing was evicted (${names.length} of ${written.length} files left)`);
  assert.deepEqual(names, written.slice(from).sort());
  let total = 0;
  for (const n of names) total += (await Deno.stat(join(t.dir, n))).size;
  assert.ok(total <= 2000, `${total} bytes kept`);
  // The newest record is whole: its value and its description with the reason.
  assert.deepEqual(
    await Deno.readFile(last.replace(/txt$/, "value")),
    new Uint8Array(300).fill(12),
  );
  const about = await Deno.readTextFile(last);
  assert.ok(about.includes("offset: 12\n"), about);
  assert.ok(about.includes('key: "key-12"\n'), about);
  assert.ok(about.includes("value bytes: 300\n"), about);
  assert.ok(about.endsWith("reason: reason 12\n"), about);
});

Deno.test("the oldest entries go first within one run, each removed only as far as room is needed", async () => {
  await using t = await setup(1000);
  for (const name of ["a", "b", "c", "d", "e"]) {
    const path = await t.quarantine.keepFile(await t.file(new Uint8Array(300)), name, "x");
    assert.ok(path !== null);
  }
  const names = await t.names();
  const files = names.filter((n) => n.endsWith(".rejected")).map((n) =>
    n.replace(STAMP, "").replace(/\.rejected$/, "")
  );
  // 1000 bytes hold three files of 300 bytes with their 2-byte descriptions: c, d and e.
  assert.deepEqual(files, ["c", "d", "e"]);
  // The descriptions of c, d and e stay; a's went to make room (b's, the next one, was not needed).
  for (const name of ["c", "d", "e"]) {
    assert.ok(names.some((n) => n.endsWith(`-${name}.txt`)), names.join(", "));
  }
  assert.ok(!names.some((n) => n.endsWith("-a.txt")), names.join(", "));
});

Deno.test("every name the quarantine writes is at most 255 bytes, for records and files with long names", async () => {
  await using t = await setup();
  // Offsets are Kafka's int64s; a longer one (never sent by a broker) is cut like any name.
  await t.quarantine.keepRecord(
    { topic: "t", partition: 2147483647, offset: "9".repeat(300) },
    null,
    new Uint8Array([1]),
    "absurd offset",
  );
  await t.quarantine.keepRecord(
    { topic: "t", partition: 0, offset: "9223372036854775807" },
    null,
    new Uint8Array([2]),
    "largest offset",
  );
  const long = [
    "a".repeat(255),
    "é".repeat(127) + "a", // 255 bytes in 2-byte characters
    "数".repeat(85), // 255 bytes in 3-byte characters
    "😀".repeat(63) + "abc", // 255 bytes in 4-byte characters
    "x".repeat(1000),
  ];
  for (const name of long) {
    const kept = await t.quarantine.keepFile(await t.file(name), name, "bad");
    assert.ok(kept !== null);
    assert.equal(await Deno.readTextFile(kept), name);
    const about = await Deno.readTextFile(kept.replace(/rejected$/, "txt"));
    assert.ok(about.includes(`the file's name is ${JSON.stringify(name)}`), about);
  }
  const names = await t.names();
  assert.equal(names.length, 2 * 2 + 2 * long.length);
  for (const n of names) {
    assert.ok(bytesOf(n) <= 255, `${bytesOf(n)} bytes: ${n}`);
    assert.ok(n.isWellFormed() && !n.includes("\ufffd"), n);
    assert.match(n, STAMP);
  }
  assert.ok(names.some((n) => /-p0-o9223372036854775807\.value$/.test(n)), names.join(", "));
  const cut = names.find((n) => n.includes("-p2147483647-o9"))!;
  assert.ok(cut !== undefined && bytesOf(cut) >= 250, cut);
});
