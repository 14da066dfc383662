import assert from "node:assert/strict";
import {
  appendToName,
  DARWIN_RULES,
  foldPath,
  HOST_PATH_RULES,
  LOG_FILE_NAME,
  type PathRules,
  POSIX_RULES,
  type RelativeTarget,
  relativeTarget as relativeTargetOn,
  STATE_DIR_NAME,
  UnsafePathError,
  WIN32_RULES,
} from "./safe_path.ts";

const ALL_RULES = [POSIX_RULES, DARWIN_RULES, WIN32_RULES];

/** `relativeTarget` under the POSIX rules unless told, so that the tests pass on any host. */
function relativeTarget(
  subdir: string,
  filename: string,
  append: string,
  rules: PathRules = POSIX_RULES,
): RelativeTarget {
  return relativeTargetOn(subdir, filename, append, rules);
}

/** Asserts that the fields are refused with an UnsafePathError whose message contains `fragment`. */
function assertUnsafe(
  subdir: string,
  filename: string,
  append: string,
  fragment: string,
  rules: PathRules = POSIX_RULES,
): void {
  assert.throws(() => relativeTarget(subdir, filename, append, rules), (error: unknown) => {
    assert.ok(error instanceof UnsafePathError, `expected UnsafePathError, got ${error}`);
    assert.equal(error.name, "UnsafePathError");
    assert.ok(
      error.message.includes(fragment),
      `message ${JSON.stringify(error.message)} should contain ${JSON.stringify(fragment)}`,
    );
    return true;
  }, `${rules.platform} ${JSON.stringify([subdir, filename, append])}`);
}

/** Asserts that the fields are accepted under `rules` and returns the target. */
function assertSafe(
  subdir: string,
  filename: string,
  append: string,
  rules: PathRules,
): RelativeTarget {
  try {
    return relativeTarget(subdir, filename, append, rules);
  } catch (error) {
    throw new assert.AssertionError({
      message: `${rules.platform} ${JSON.stringify([subdir, filename, append])} was refused: ${
        error instanceof Error ? error.message : error
      }`,
    });
  }
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

Deno.test("relativeTarget() refuses '..' anywhere in the subdirectory, under every rule set", () => {
  for (const rules of ALL_RULES) {
    for (const subdir of ["..", "../x", "a/../b", "a/..", "a/b/../../..", "./.."]) {
      assertUnsafe(subdir, "f.dat", "", '".."', rules);
    }
  }
});

Deno.test("relativeTarget() refuses an absolute subdirectory, under every rule set", () => {
  for (const rules of ALL_RULES) {
    assertUnsafe("/etc", "passwd", "", "absolute", rules);
    assertUnsafe("/", "f", "", "absolute", rules);
    assertUnsafe("//server/share", "f", "", "absolute", rules);
  }
});

Deno.test("relativeTarget() refuses NUL bytes, under every rule set", () => {
  for (const rules of ALL_RULES) {
    assertUnsafe("a\0b", "f", "", "NUL", rules);
    assertUnsafe("", "f\0.dat", "", "NUL", rules);
    assertUnsafe("", "f.dat", "_\0", "NUL", rules);
  }
});

Deno.test("relativeTarget() refuses '/' in the filename or the append, under every rule set", () => {
  for (const rules of ALL_RULES) {
    assertUnsafe("", "a/b.dat", "", '"/"', rules);
    assertUnsafe("", "../x", "", '"/"', rules);
    assertUnsafe("sub", "/abs", "", '"/"', rules);
    assertUnsafe("", "f.dat", "/x", '"/"', rules);
  }
});

Deno.test("relativeTarget() refuses empty, '.' and '..' filenames, under every rule set", () => {
  for (const rules of ALL_RULES) {
    for (const filename of ["", ".", ".."]) {
      assertUnsafe("sub", filename, "", "is not a file name", rules);
      assertUnsafe("", filename, "_copy", "is not a file name", rules);
    }
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

Deno.test("relativeTarget() refuses the state folder at the top level, in any case, under every rule set", () => {
  assert.equal(STATE_DIR_NAME, ".DataFileDownloadDirectory");
  for (const rules of ALL_RULES) {
    for (
      const name of [STATE_DIR_NAME, ".datafiledownloaddirectory", ".DATAFILEDOWNLOADDIRECTORY"]
    ) {
      assertUnsafe(name, "f.dat", "", "state folder", rules);
      assertUnsafe(`./${name}/x`, "f.dat", "", "state folder", rules);
      assertUnsafe("", name, "", "state folder", rules);
    }
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
  for (const rules of ALL_RULES) {
    assertUnsafe("", LOG_FILE_NAME, "", "log file", rules);
    assertUnsafe(".", "datafiledownloaddirectory.LOG", "", "log file", rules);
    // The append decides: the written name is what matters.
    assertUnsafe("", "DataFileDownloadDirectory", ".log", "log file", rules);
  }
  assert.equal(
    relativeTarget("", LOG_FILE_NAME, "_copy").name,
    "DataFileDownloadDirectory_copy.log",
  );
  assert.equal(relativeTarget("sub", LOG_FILE_NAME, "").path, `sub/${LOG_FILE_NAME}`);
  // A directory with the log file's name is not the log file.
  assert.equal(relativeTarget(LOG_FILE_NAME, "f", "").path, `${LOG_FILE_NAME}/f`);
});

Deno.test("HOST_PATH_RULES follows Deno.build.os and is the default", () => {
  const expected = Deno.build.os === "windows"
    ? WIN32_RULES
    : Deno.build.os === "darwin"
    ? DARWIN_RULES
    : POSIX_RULES;
  assert.equal(HOST_PATH_RULES, expected);
  assert.deepEqual(
    relativeTargetOn("Sub/Dir", "Name.DAT", "_1"),
    relativeTargetOn("Sub/Dir", "Name.DAT", "_1", HOST_PATH_RULES),
  );
  assert.equal(foldPath("Sub/Name.DAT"), foldPath("Sub/Name.DAT", HOST_PATH_RULES));
});

Deno.test("relativeTarget() refuses text that is not valid Unicode, under every rule set", () => {
  for (const rules of ALL_RULES) {
    assertUnsafe("", "a\ud800b.dat", "", "not valid Unicode", rules);
    assertUnsafe("a\udc00", "f", "", "not valid Unicode", rules);
    assertUnsafe("", "f.dat", "\ud83d", "not valid Unicode", rules);
    // A whole surrogate pair is a character like any other.
    assertSafe("", "\ud83d\ude00.dat", "", rules);
  }
});

Deno.test("win32: a backslash is a separator, so '..\\..' escapes and 'a\\b' is refused", () => {
  // On POSIX and macOS a backslash is part of a name.
  for (const rules of [POSIX_RULES, DARWIN_RULES]) {
    assert.equal(assertSafe("", "..\\..\\Windows\\evil.dll", "", rules).dirs.length, 0);
    assert.deepEqual(assertSafe("..\\..\\Windows", "evil.dll", "", rules).dirs, [
      "..\\..\\Windows",
    ]);
    assertSafe("a\\b", "c\\d", "_\\", rules);
  }
  assertUnsafe("", "..\\..\\Windows\\evil.dll", "", '".." component', WIN32_RULES);
  assertUnsafe("", "..\\evil.dll", "", '".." component', WIN32_RULES);
  assertUnsafe("..\\..\\Windows", "evil.dll", "", '".." component', WIN32_RULES);
  assertUnsafe("a/b\\..\\..\\..", "f", "", '".." component', WIN32_RULES);
  // Not an escape, but still not what the sender meant: refused rather than guessed.
  assertUnsafe("a\\b", "f", "", '"\\", a folder separator on Windows', WIN32_RULES);
  assertUnsafe("", "a\\b.dat", "", '"\\", a folder separator on Windows', WIN32_RULES);
  assertUnsafe("", "f.dat", "_\\x", '"\\", a folder separator on Windows', WIN32_RULES);
  // A leading backslash is the root of the current drive, a double one a UNC share.
  assertUnsafe("\\Windows", "f", "", "absolute", WIN32_RULES);
  assertUnsafe("\\\\server\\share", "f", "", "absolute", WIN32_RULES);
});

Deno.test("win32: drive letters, alternate data streams and reserved characters are refused", () => {
  for (const char of ["<", ">", ":", '"', "|", "?", "*"]) {
    for (const rules of [POSIX_RULES, DARWIN_RULES]) {
      assertSafe(`a${char}b`, `x${char}y.dat`, "", rules);
    }
    assertUnsafe("", `x${char}y.dat`, "", `contains ${JSON.stringify(char)}`, WIN32_RULES);
    assertUnsafe(`a${char}b`, "f.dat", "", `contains ${JSON.stringify(char)}`, WIN32_RULES);
    assertUnsafe("", "f.dat", `_${char}`, `contains ${JSON.stringify(char)}`, WIN32_RULES);
  }
  assertUnsafe("a", "name:stream", "", "alternate data stream", WIN32_RULES);
  assertUnsafe("a", "name::$DATA", "", "alternate data stream", WIN32_RULES);
  assertUnsafe("C:", "f", "", "names a drive", WIN32_RULES);
  assertUnsafe("C:/Windows", "f", "", "names a drive", WIN32_RULES);
  assertUnsafe("", "C:evil.dll", "", "names a drive", WIN32_RULES);
});

Deno.test("win32: control characters are refused", () => {
  for (let code = 1; code < 0x20; code++) {
    const char = String.fromCharCode(code);
    for (const rules of [POSIX_RULES, DARWIN_RULES]) assertSafe(`d${char}`, `f${char}`, "", rules);
    const hex = code.toString(16).toUpperCase().padStart(4, "0");
    assertUnsafe("", `f${char}.dat`, "", `control character U+${hex}`, WIN32_RULES);
    assertUnsafe(`d${char}`, "f.dat", "", `control character U+${hex}`, WIN32_RULES);
  }
  // DEL and C1 controls are legal on NTFS.
  assertSafe("", "f\u007f\u0085.dat", "", WIN32_RULES);
});

Deno.test("win32: names ending with a dot or a space are refused", () => {
  const cases: [string, string, string][] = [
    ["", "x.", ""],
    ["", "x ", ""],
    ["", "x. .", ""],
    ["dir.", "f.dat", ""],
    ["a/dir ", "f.dat", ""],
    ["", "x", "."],
    ["", "x", " "],
    ["", "...", ""],
  ];
  for (const [subdir, filename, append] of cases) {
    for (const rules of [POSIX_RULES, DARWIN_RULES]) assertSafe(subdir, filename, append, rules);
    assertUnsafe(subdir, filename, append, "which Windows drops", WIN32_RULES);
  }
  assertUnsafe("", "x.", "", "ends with a dot", WIN32_RULES);
  assertUnsafe("", "x ", "", "ends with a space", WIN32_RULES);
  // A trailing dot followed by the append's text is fine; so are leading dots and spaces.
  assert.equal(assertSafe("", "name.", "_copy", WIN32_RULES).name, "name._copy");
  assertSafe(" lead/.hidden", " x.tar.gz", "", WIN32_RULES);
  assertSafe("a..b", "..x", "", WIN32_RULES);
});

Deno.test("win32: device names are refused in any case, with or without an extension", () => {
  const devices = [
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "CONIN$",
    "CONOUT$",
    ...Array.from({ length: 10 }, (_, i) => `COM${i}`),
    ...Array.from({ length: 10 }, (_, i) => `LPT${i}`),
    "COM\u00b9",
    "COM\u00b2",
    "COM\u00b3",
    "LPT\u00b9",
    "LPT\u00b2",
    "LPT\u00b3",
  ];
  for (const device of devices) {
    for (
      const spelling of [device, device.toLowerCase(), device[0] + device.slice(1).toLowerCase()]
    ) {
      for (const name of [spelling, `${spelling}.txt`, `${spelling}.tar.gz`, `${spelling} .txt`]) {
        for (const rules of [POSIX_RULES, DARWIN_RULES]) {
          assertSafe("a", name, "", rules);
          assertSafe(name, "f.dat", "", rules);
        }
        assertUnsafe("a", name, "", "reserved device name on Windows", WIN32_RULES);
        assertUnsafe(name, "f.dat", "", "reserved device name on Windows", WIN32_RULES);
        assertUnsafe(`x/${name}/y`, "f.dat", "", "reserved device name on Windows", WIN32_RULES);
      }
    }
  }
  // The append can make a device name, or unmake one.
  assertUnsafe("", "NUL", ".txt", "reserved device name", WIN32_RULES);
  assert.equal(assertSafe("", "CON.txt", "_1", WIN32_RULES).name, "CON_1.txt");
  // Only the stem before the first dot counts, and only these exact stems.
  for (
    const name of ["CONSOLE", "con1", "NULL.txt", "xcon", "COM10", "LPT", "COM", "aux_", ".con"]
  ) {
    assertSafe("", name, "", WIN32_RULES);
  }
  assert.throws(
    () => relativeTarget("a", "CON.txt", "", WIN32_RULES),
    new UnsafePathError(
      'the name "CON.txt" in "a/CON.txt" is a reserved device name on Windows; rename it at the source',
    ),
  );
});

Deno.test("win32: the program's names are compared as Windows resolves them", () => {
  // Windows drops trailing dots and spaces, so these name the state folder and the log file.
  for (
    const name of [`${STATE_DIR_NAME}.`, `${STATE_DIR_NAME} `, ".DATAFILEDOWNLOADDIRECTORY. ."]
  ) {
    assertUnsafe(name, "f.dat", "", "state folder", WIN32_RULES);
    assertUnsafe("", name, "", "state folder", WIN32_RULES);
    for (const rules of [POSIX_RULES, DARWIN_RULES]) assertSafe(name, "f.dat", "", rules);
  }
  for (
    const name of [`${LOG_FILE_NAME}.`, `${LOG_FILE_NAME} `, "datafiledownloaddirectory.LOG.."]
  ) {
    assertUnsafe("", name, "", "log file", WIN32_RULES);
    for (const rules of [POSIX_RULES, DARWIN_RULES]) assertSafe("", name, "", rules);
  }
  // Their 8.3 short names are refused at the top level, where they could alias them.
  for (const name of ["DATAFI~1", "datafi~2", "DATAFI~1.LOG", "~1", "LONGN~12.TXT"]) {
    assertUnsafe("", name, "", "short (8.3) name", WIN32_RULES);
    assertUnsafe(name, "f.dat", "", "short (8.3) name", WIN32_RULES);
    assertSafe("sub", name, "", WIN32_RULES);
    assertSafe(`sub/${name}`, "f.dat", "", WIN32_RULES);
    for (const rules of [POSIX_RULES, DARWIN_RULES]) assertSafe("", name, "", rules);
  }
  for (const name of ["a~b", "LONGNAME~1", "my file~1.txt", "ABC~1.LONG", "x~1.a.b"]) {
    assertSafe("", name, "", WIN32_RULES);
  }
});

Deno.test("component length: 255 bytes on POSIX and macOS, 255 UTF-16 units on Windows", () => {
  for (const rules of ALL_RULES) {
    assertSafe("", "a".repeat(255), "", rules);
    assertSafe("d".repeat(255), "f", "", rules);
  }
  assertUnsafe("", "a".repeat(256), "", "255 UTF-16 code units", WIN32_RULES);
  assertUnsafe("", "a".repeat(250) + ".dat", "_copy", "255 UTF-16 code units", WIN32_RULES);
  // 200 "é" are 400 bytes but 200 UTF-16 units.
  for (const rules of [POSIX_RULES, DARWIN_RULES]) {
    assertUnsafe("", "é".repeat(200), "", "is 400 bytes long", rules);
    assertUnsafe("é".repeat(200), "f", "", "255 bytes", rules);
  }
  assertSafe("é".repeat(200), "é".repeat(200), "", WIN32_RULES);
  // 128 emoji are 256 UTF-16 units (and 512 bytes).
  for (const rules of ALL_RULES) assertUnsafe("", "😀".repeat(128), "", "long", rules);
  assertSafe("", "😀".repeat(127), "", WIN32_RULES);
  assertSafe("", "😀".repeat(63), "", POSIX_RULES);
  // HFS+ counts the decomposed form: U+0390 is 2 bytes but 3 code units once decomposed.
  assertSafe("", "\u0390".repeat(127), "", POSIX_RULES);
  assertSafe("", "\u0390".repeat(127), "", WIN32_RULES);
  assertUnsafe("", "\u0390".repeat(127), "", "once decomposed", DARWIN_RULES);
  // The message names the component (clipped) and the path.
  assert.throws(
    () => relativeTarget("sub", "x".repeat(300), "", POSIX_RULES),
    new UnsafePathError(
      `the name "${"x".repeat(60)}…" in "sub/${
        "x".repeat(56)
      }…" is 300 bytes long; names are limited to 255 bytes; rename it at the source`,
    ),
  );
});

Deno.test("identity: exact on POSIX, case-folded on Windows, case- and NFC-folded on macOS", () => {
  const nfc = "Données/Résumé.TXT";
  const nfd = nfc.normalize("NFD");
  assert.notEqual(nfc, nfd);
  const on = (rules: PathRules, path: string) =>
    relativeTarget(
      path.slice(0, path.lastIndexOf("/")),
      path.slice(path.lastIndexOf("/") + 1),
      "",
      rules,
    );

  // POSIX: every spelling is its own file.
  assert.equal(on(POSIX_RULES, nfc).identity, nfc);
  assert.equal(on(POSIX_RULES, nfd).identity, nfd);
  assert.notEqual(on(POSIX_RULES, "Data/x.bin").identity, on(POSIX_RULES, "data/x.bin").identity);

  // macOS: case and normalisation fold.
  for (const spelling of [nfc, nfd, nfc.toUpperCase(), nfd.toLowerCase()]) {
    const target = on(DARWIN_RULES, spelling);
    assert.equal(target.identity, "données/résumé.txt");
    assert.equal(target.path, spelling, "the path keeps the sender's spelling");
  }
  assert.equal(on(DARWIN_RULES, "Data/x.bin").identity, on(DARWIN_RULES, "data/X.BIN").identity);

  // Windows: case folds, normalisation does not (NTFS keeps NFC and NFD apart).
  assert.equal(on(WIN32_RULES, "Data/X.bin").identity, "data/x.bin");
  assert.equal(on(WIN32_RULES, nfc).identity, on(WIN32_RULES, nfc.toUpperCase()).identity);
  assert.notEqual(on(WIN32_RULES, nfc).identity, on(WIN32_RULES, nfd).identity);

  // The identity is of the written path (with the append), not of the key.
  assert.equal(relativeTarget("A", "B.dat", "_X", DARWIN_RULES).identity, "a/b_x.dat");
  assert.equal(foldPath("Ä/B", POSIX_RULES), "Ä/B");
  assert.equal(foldPath("A\u0308/B", DARWIN_RULES), "ä/b");
  assert.equal(foldPath("Ä/B", WIN32_RULES), "ä/b");
});

Deno.test("macOS: the program's names are compared folded", () => {
  const nfdState = STATE_DIR_NAME.toUpperCase().normalize("NFD");
  assertUnsafe(nfdState, "f", "", "state folder", DARWIN_RULES);
  assertUnsafe("", "DATAFILEDOWNLOADDIRECTORY.LOG", "", "log file", DARWIN_RULES);
  // macOS accepts what Windows refuses.
  assertSafe("C:", "name:stream", "", DARWIN_RULES);
  assertSafe("", "CON.txt", "", DARWIN_RULES);
});
