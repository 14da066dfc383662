import assert from "node:assert/strict";
import { compilePythonRegex, pythonMatch } from "./python_regex.ts";

/**
 * Asserts Python's `re.match(pattern, text) is not None` for each text. Every expectation in
 * this file was checked against CPython 3.11's `re`.
 */
function assertMatches(pattern: string, expected: Record<string, boolean>): void {
  const regex = compilePythonRegex(pattern);
  for (const [text, want] of Object.entries(expected)) {
    assert.equal(
      pythonMatch(regex, text),
      want,
      `re.match(${JSON.stringify(pattern)}, ${JSON.stringify(text)}) should be ${want}`,
    );
  }
}

/** Asserts that compiling `pattern` throws a SyntaxError whose message contains `fragment`. */
function assertInvalid(pattern: string, fragment: string): void {
  assert.throws(() => compilePythonRegex(pattern), (error: unknown) => {
    assert.ok(error instanceof SyntaxError, `expected SyntaxError for ${pattern}, got ${error}`);
    assert.ok(
      error.message.includes(fragment),
      `message ${JSON.stringify(error.message)} should contain ${JSON.stringify(fragment)}`,
    );
    return true;
  });
}

Deno.test("pythonMatch() is anchored at the start but not at the end (re.match)", () => {
  assertMatches("abc", { abc: true, abcdef: true, xabc: false, "": false, ab: false });
  assertMatches("b", { abc: false, b: true });
  assertMatches("a|b", { b: true, c: false, cb: false });
  assertMatches("", { "": true, anything: true });
});

Deno.test("pythonMatch() gives the same answer every time it is called", () => {
  const regex = compilePythonRegex("a");
  assert.equal(pythonMatch(regex, "a"), true);
  // A sticky RegExp remembers lastIndex; pythonMatch must not.
  assert.equal(pythonMatch(regex, "a"), true);
  assert.equal(pythonMatch(regex, "ba"), false);
  assert.equal(pythonMatch(regex, "a"), true);
  regex.lastIndex = 5;
  assert.equal(pythonMatch(regex, "a"), true);
});

Deno.test("compilePythonRegex() matches the project's ^.*\\.dat$ as Python does", () => {
  assertMatches("^.*\\.dat$", {
    "x.dat": true,
    "test_file_sub_dir/1a0ceb89-b5f0-45dc-9c12-63d3020e2217.dat": true,
    ".dat": true,
    "x.datx": false,
    "xdat": false,
    "dat": false,
    // Python's "$" also matches before a final newline, and "." matches "\r" and U+2028.
    "x.dat\n": true,
    "x.dat\n\n": false,
    "x\r.dat": true,
    "x\u2028.dat": true,
    // "." does not match "\n".
    "a\nb.dat": false,
  });
});

Deno.test("compilePythonRegex() gives the uploader's default regex its Python meaning", () => {
  // ^((?!(\.|.*.log))).*$ rejects a leading "." and "log" anywhere after the first character.
  assertMatches("^((?!(\\.|.*.log))).*$", {
    "x.log": false,
    "catalog.csv": false,
    "blog/x.dat": false,
    "alog": false,
    ".hidden": false,
    "log.txt": true,
    "a.txt": true,
    "sub/dir/f.dat": true,
    "lo g": true,
  });
});

Deno.test("compilePythonRegex() translates (?P<name>...) and (?P=name)", () => {
  assertMatches("(?P<stem>\\w+)\\.(?P=stem)$", {
    "ab.ab": true,
    "ab.ac": false,
    "données.données": true,
    "a1_.a1_": true,
  });
  const regex = compilePythonRegex("(?P<dir>[^/]+)/(?P<name>.*)");
  regex.lastIndex = 0;
  const match = regex.exec("sub/file.dat");
  assert.equal(match?.groups?.["dir"], "sub");
  assert.equal(match?.groups?.["name"], "file.dat");
});

Deno.test("compilePythonRegex() supports numbered back-references", () => {
  assertMatches("(a)\\1", { aa: true, ab: false });
  assertMatches("(a)(?P<b>b)\\2", { abb: true, aba: false });
  // Two digits are one reference: \10 is group 10, not group 1 and a "0".
  assertInvalid("(a)\\10", "invalid group reference 10");
});

Deno.test("compilePythonRegex() honours leading global flags", () => {
  assertMatches("(?i)DATA/.*", { "data/x": true, "Data/y": true, "xdata/x": false, DATA: false });
  assertMatches("(?i)é", { "É": true });
  assertMatches("(?i)[a-c]+$", { ABC: true, ABD: false });
  assertMatches("(?s)a.$", { "a\n": true, "a\n\n": true });
  assertMatches("(?m)^b$", { b: true, "a\nb": false });
  assertMatches("(?im)x", { X: true });
  assertMatches("(?i)(?s)A.", { "a\n": true });
  assertMatches("(?u)\\w", { "é": true });
});

Deno.test("compilePythonRegex() honours scoped flags", () => {
  assertMatches("a(?s:.)b", { "a\nb": true });
  assertMatches("a(?s:.).", { "a\n\n": false });
  assertMatches("(?i:a)b", { Ab: true, AB: false });
  assertMatches("(?i)a(?-i:b)", { AB: false, Ab: true });
  assertMatches("(?a:\\w)\\w", { "éé": false, "aé": true });
});

Deno.test("compilePythonRegex() keeps Python's multiline '^' and '$' to '\\n' lines", () => {
  // In Python's MULTILINE, only "\n" separates lines; "\r" does not.
  assertMatches("(?m)a$", { "a\nb": true, "a\rb": false });
  assertMatches("(?m)a\\n^b", { "a\nb": true });
  assertMatches("(?m)a\\r^b", { "a\rb": false });
});

Deno.test("compilePythonRegex() translates \\A and \\Z", () => {
  assertMatches("\\Afoo\\Z", { foo: true, "foo\n": false, foox: false });
  // \A is the start of the string, even in MULTILINE mode.
  assertMatches("(?m)x\\n\\Ay", { "x\ny": false });
  assertMatches("(?m)x\\n^y", { "x\ny": true });
});

Deno.test("compilePythonRegex() makes \\w, \\d, \\s and \\b Unicode-aware", () => {
  assertMatches("\\w+$", { "données": true, "名前": true, abc: true, "a-b": false });
  assertMatches("(?a)\\w+$", { "données": false, abc: true });
  assertMatches("\\d+", { "١٢٣": true, "123": true, x: false });
  assertMatches("(?a)\\d+", { "١٢٣": false, "123": true });
  // Python's whitespace, not JavaScript's: U+001C and U+0085 are spaces, U+FEFF is not.
  assertMatches("\\s", {
    "\u001c": true,
    "\u0085": true,
    "\ufeff": false,
    " ": true,
    "\u00a0": true,
  });
  assertMatches("\\bfoo\\b", { foo: true, "foo bar": true, foobar: false, "éfoo": false });
  assertMatches("x\\Bfoo", { xfoo: true, "x foo": false });
  assertMatches("\\B", { "": false, ab: false, "-": true, " a": true });
  assertMatches("\\W\\D\\S", { "-xy": true, "a1 ": false });
});

Deno.test("compilePythonRegex() translates class escapes and negated sets in classes", () => {
  assertMatches("[\\w-]+$", { "a-b": true, "a b": false });
  assertMatches("[^\\W\\d]+$", { abc: true, ab1: false, "é": true });
  assertMatches("[\\s\\d]+$", { " 1 2": true, x: false });
  assertMatches("[x\\S]$", { x: true, y: true, " ": false });
  assertMatches("[^x\\S]$", { x: false, y: false, " ": true });
  assertMatches("[\\d]", { "٣": true });
  assertMatches("[\\D]", { "٣": false, x: true });
  assertMatches("[\\b]", { "\b": true, b: false });
});

Deno.test("compilePythonRegex() reads ']' first in a class as a literal", () => {
  assertMatches("[]a]+$", { "]a]": true, b: false });
  assertMatches("[^]a]", { "]": false, a: false, b: true });
  assertMatches("[a-c]+$", { abc: true, abd: false });
  assertMatches("[-a]+$", { "-a": true });
  assertMatches("[a-]+$", { "a-": true });
});

Deno.test("compilePythonRegex() treats braces that are not a repeat as literals", () => {
  assertMatches("a{,2}$", { "": true, a: true, aa: true, aaa: false, "a{,2}": false });
  assertMatches("x{,}y", { y: true, xxxy: true });
  assertMatches("a{2}$", { aa: true, a: false });
  assertMatches("a{2,}$", { aaa: true, a: false });
  assertMatches("a{1,2}?", { a: true });
  assertMatches("a{", { "a{": true, a: false });
  assertMatches("a{}", { "a{}": true, a: false });
  assertMatches("a{x}", { "a{x}": true });
  assertMatches("a}b]", { "a}b]": true });
});

Deno.test("compilePythonRegex() reads Python's escapes", () => {
  assertMatches("\\x41\\u00e9\\U0001F600", { "Aé😀": true });
  assertMatches("\\101\\0", { "A\u0000": true });
  assertMatches("\\-\\#\\ \\:\\@", { "-# :@": true });
  assertMatches("\\é", { "é": true });
  assertMatches("\\a\\f\\v\\t\\n\\r", { "\u0007\u000c\u000b\t\n\r": true });
  assertMatches("\\[\\]\\(\\)\\{\\}\\.\\*\\+\\?\\^\\$\\|\\\\", { "[](){}.*+?^$|\\": true });
  assertMatches("[\\x41-\\x43]+$", { ABC: true, D: false });
  assertMatches("/x", { "/x": true });
});

Deno.test("compilePythonRegex() handles astral characters as single characters", () => {
  assertMatches("😀+$", { "😀😀": true });
  assertMatches("[😀-😂]$", { "😁": true, "😃": false });
  assertMatches("^.$", { "😀": true });
});

Deno.test("compilePythonRegex() keeps groups, lookarounds, alternation and lazy repeats", () => {
  assertMatches("(?:ab)*c", { ababc: true, c: true, abab: false });
  assertMatches("a*?b", { aab: true });
  assertMatches("(?=a)a", { a: true });
  assertMatches("(?<=a)b", { ab: false });
  assertMatches("a(?<=a)b", { ab: true });
  assertMatches("(?!a)", { b: true, a: false });
  assertMatches("a(?#comment)b", { ab: true });
});

Deno.test("compilePythonRegex() refuses what Python refuses", () => {
  assertInvalid("(", "missing ), unterminated subpattern");
  assertInvalid(")", "unbalanced parenthesis");
  assertInvalid("[a", "unterminated character set");
  assertInvalid("a**", 'in "a**"');
  assertInvalid("*a", "Nothing to repeat");
  assertInvalid("\\q", "bad escape \\q");
  assertInvalid("\\", "bad escape (end of pattern)");
  assertInvalid("[\\A]", "bad escape \\A");
  assertInvalid("[\\8]", "bad escape \\8");
  assertInvalid("\\x4", "incomplete escape \\x4");
  assertInvalid("\\u12", "incomplete escape \\u12");
  assertInvalid("\\400", "octal escape value \\400 outside of range");
  assertInvalid("[z-a]", "bad character range");
  assertInvalid("[\\d-z]", "bad character range");
  assertInvalid("a{3,2}", "out of order");
  assertInvalid("(?P<1a>x)", "bad character in group name");
  assertInvalid("(?P<a>x)(?P<a>y)", "redefinition of group name");
  assertInvalid("(?P=nope)", "unknown group name");
  assertInvalid("(?P=a)(?P<a>x)", "unknown group name");
  assertInvalid("(?P<a>x(?P=a))", "cannot refer to an open group");
  assertInvalid("\\1(a)", "invalid group reference 1");
  assertInvalid("(a\\1)", "cannot refer to an open group");
  assertInvalid("(a)\\2", "invalid group reference 2");
  assertInvalid("(?:a)\\1", "invalid group reference 1");
  assertInvalid("\\8", "invalid group reference 8");
  assertInvalid("a(?i)b", "global flags not at the start");
  assertInvalid("(?-i)a", "missing :");
  assertInvalid("(?L)a", "'L' flag");
  assertInvalid("(?au)a", "incompatible");
  assertInvalid("(?<n>a)", "unknown extension");
  assertInvalid("(?P>x)", "unknown extension");
  assertInvalid("(?#abc", "unterminated comment");
});

Deno.test("compilePythonRegex() refuses Python syntax it cannot translate, naming it", () => {
  assertInvalid("(?x)a b", "verbose mode (?x) is not supported");
  assertInvalid("(?x:a)", "verbose mode");
  assertInvalid("(?(1)a|b)", "conditional groups");
  assertInvalid("\\N{DIGIT ONE}", "\\N{...} are not supported");
});

Deno.test("compilePythonRegex() reports positions in the Python pattern", () => {
  assertInvalid("ab\\q", "at position 2");
  assertInvalid("a(?i)b", "at position 1");
});
