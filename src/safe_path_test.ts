import assert from "node:assert/strict";
import {
  appendToName,
  LOG_FILE_NAME,
  relativeTarget,
  STATE_DIR_NAME,
  UnsafePathError,
} from "./safe_path.ts";

/** Asserts that the fields are refused with an UnsafePathError whose message contains `fragment`. */
function assertUnsafe(
  subdir: string,
  filename: string,
  append: string,
  fragment: string,
): void {
  assert.throws(() => relativeTarget(subdir, filename, append), (error: unknown) => {
    assert.ok(error instanceof UnsafePathError, `expected UnsafePathError, got ${error}`);
    assert.equal(error.name, "UnsafePathError");
    assert.ok(
      error.message.includes(fragment),
      `message ${JSON.stringify(error.message)} should contain ${JSON.stringify(fragment)}`,
    );
    return true;
  }, JSON.stringify([subdir, filename, append]));
}

Deno.test("appendToName() inserts the append before the last extension", () => {
  assert.equal(appendToName("name.tar.gz", "_copy"), "name.tar_copy.gz");
  assert.equal(appendToName(".bashrc", "_copy"), ".bashrc_copy");
  assert.equal(appendToName("noext", "_copy"), "noext_copy");
  assert.equal(appendToName("file.dat", "_2"), "file_2.dat");
});

Deno.test("appendToName() follows Python's PurePath stem and suffix at the edges", () => {
  // Values from CPython 3.11: PurePosixPath(n).stem + "_copy" + PurePosixPath(n).suffix.
  assert.equal(appendToName("name.", "_copy"), "name._copy");
  assert.equal(appendToName("..x", "_copy"), "._copy.x");
  assert.equal(appendToName("a..b", "_copy"), "a._copy.b");
  assert.equal(appendToName(".a.b", "_copy"), ".a_copy.b");
  assert.equal(appendToName("...", "_copy"), "..._copy");
});

Deno.test("appendToName() leaves the name alone for an empty append", () => {
  assert.equal(appendToName("name.tar.gz", ""), "name.tar.gz");
  assert.equal(appendToName(".bashrc", ""), ".bashrc");
});

Deno.test("relativeTarget() joins the subdirectory and the name", () => {
  assert.deepEqual(relativeTarget("test_file_sub_dir", "1a0c.dat", ""), {
    key: "test_file_sub_dir/1a0c.dat",
    path: "test_file_sub_dir/1a0c.dat",
    dirs: ["test_file_sub_dir"],
    name: "1a0c.dat",
    identity: "test_file_sub_dir/1a0c.dat",
  });
  assert.deepEqual(relativeTarget("", "file.dat", ""), {
    key: "file.dat",
    path: "file.dat",
    dirs: [],
    name: "file.dat",
    identity: "file.dat",
  });
});

Deno.test("relativeTarget() keeps the append out of the key and puts it into the path", () => {
  assert.deepEqual(relativeTarget("a/b", "name.tar.gz", "_copy"), {
    key: "a/b/name.tar.gz",
    path: "a/b/name.tar_copy.gz",
    dirs: ["a", "b"],
    name: "name.tar_copy.gz",
    identity: "a/b/name.tar_copy.gz",
  });
});

Deno.test("relativeTarget() normalises the subdirectory as PurePosixPath(...).parts does", () => {
  assert.deepEqual(relativeTarget("a//b/", "f", "").dirs, ["a", "b"]);
  assert.equal(relativeTarget("a//b/", "f", "").key, "a/b/f");
  assert.deepEqual(relativeTarget("./a", "f", "").dirs, ["a"]);
  assert.deepEqual(relativeTarget("a/./b/.", "f", "").dirs, ["a", "b"]);
  assert.deepEqual(relativeTarget(".", "f", "").dirs, []);
  assert.deepEqual(relativeTarget("./", "f", "").dirs, []);
  assert.equal(relativeTarget("./a//b/", "f", "").path, "a/b/f");
  // A backslash is not a separator on POSIX.
  assert.deepEqual(relativeTarget("a\\b", "c\\d", "").dirs, ["a\\b"]);
  assert.equal(relativeTarget("a\\b", "c\\d", "").name, "c\\d");
});

Deno.test("relativeTarget() accepts spaces, dots and non-ASCII names", () => {
  assert.deepEqual(relativeTarget("données brutes/été 2024", "résumé final.dat", ""), {
    key: "données brutes/été 2024/résumé final.dat",
    path: "données brutes/été 2024/résumé final.dat",
    dirs: ["données brutes", "été 2024"],
    name: "résumé final.dat",
    identity: "données brutes/été 2024/résumé final.dat",
  });
  assert.equal(relativeTarget("名前", "😀.txt", "_1").path, "名前/😀_1.txt");
  assert.equal(relativeTarget("", " ", "").name, " ");
  assert.equal(relativeTarget("...", "..a", "").path, ".../..a");
  assert.equal(relativeTarget("a..b", "x..", "").path, "a..b/x..");
});

Deno.test("relativeTarget() refuses '..' anywhere in the subdirectory", () => {
  for (const subdir of ["..", "../x", "a/../b", "a/..", "a/b/../../..", "./.."]) {
    assertUnsafe(subdir, "f.dat", "", '".."');
  }
});

Deno.test("relativeTarget() refuses an absolute subdirectory", () => {
  assertUnsafe("/etc", "passwd", "", "absolute");
  assertUnsafe("/", "f", "", "absolute");
  assertUnsafe("//server/share", "f", "", "absolute");
});

Deno.test("relativeTarget() refuses NUL bytes", () => {
  assertUnsafe("a\0b", "f", "", "NUL");
  assertUnsafe("", "f\0.dat", "", "NUL");
  assertUnsafe("", "f.dat", "_\0", "NUL");
});

Deno.test("relativeTarget() refuses '/' in the filename or the append", () => {
  assertUnsafe("", "a/b.dat", "", '"/"');
  assertUnsafe("", "../x", "", '"/"');
  assertUnsafe("sub", "/abs", "", '"/"');
  assertUnsafe("", "f.dat", "/x", '"/"');
});

Deno.test("relativeTarget() refuses empty, '.' and '..' filenames", () => {
  for (const filename of ["", ".", ".."]) {
    assertUnsafe("sub", filename, "", "is not a file name");
    assertUnsafe("", filename, "_copy", "is not a file name");
  }
});

Deno.test("relativeTarget() refuses names longer than 255 bytes", () => {
  assert.equal(relativeTarget("", "a".repeat(255), "").name.length, 255);
  assertUnsafe("", "a".repeat(256), "", "255 bytes");
  // Bytes, not characters: 128 two-byte characters are 256 bytes.
  assertUnsafe("", "é".repeat(128), "", "255 bytes");
  assertUnsafe("d".repeat(256), "f", "", "255 bytes");
  // The append can push a name over the limit.
  assertUnsafe("", "a".repeat(250) + ".dat", "_copy", "255 bytes");
});

Deno.test("relativeTarget() refuses the state folder at the top level, in any case", () => {
  assert.equal(STATE_DIR_NAME, ".DataFileDownloadDirectory");
  for (const name of [STATE_DIR_NAME, ".datafiledownloaddirectory", ".DATAFILEDOWNLOADDIRECTORY"]) {
    assertUnsafe(name, "f.dat", "", "state folder");
    assertUnsafe(`./${name}/x`, "f.dat", "", "state folder");
    assertUnsafe("", name, "", "state folder");
  }
  // Deeper down it is an ordinary name.
  assert.equal(
    relativeTarget(`sub/${STATE_DIR_NAME}`, "f", "").path,
    `sub/${STATE_DIR_NAME}/f`,
  );
  assert.equal(relativeTarget("sub", STATE_DIR_NAME, "").path, `sub/${STATE_DIR_NAME}`);
  // With an append the written name differs from the folder's.
  assert.equal(relativeTarget("", STATE_DIR_NAME, "_x").name, `${STATE_DIR_NAME}_x`);
});

Deno.test("relativeTarget() refuses the log file name at the top level only", () => {
  assert.equal(LOG_FILE_NAME, "DataFileDownloadDirectory.log");
  assertUnsafe("", LOG_FILE_NAME, "", "log file");
  assertUnsafe(".", "datafiledownloaddirectory.LOG", "", "log file");
  // The append decides: the written name is what matters.
  assertUnsafe("", "DataFileDownloadDirectory", ".log", "log file");
  assert.equal(
    relativeTarget("", LOG_FILE_NAME, "_copy").name,
    "DataFileDownloadDirectory_copy.log",
  );
  assert.equal(relativeTarget("sub", LOG_FILE_NAME, "").path, `sub/${LOG_FILE_NAME}`);
  // A directory with the log file's name is not the log file.
  assert.equal(relativeTarget(LOG_FILE_NAME, "f", "").path, `${LOG_FILE_NAME}/f`);
});
