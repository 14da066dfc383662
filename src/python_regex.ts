/**
 * Python regular expressions, as OpenMSIStream users write them for `--download_regex`,
 * compiled to JavaScript and applied with Python's `re.match` semantics (anchored at the start
 * of the string, not at its end).
 *
 * Translated: `(?P<name>…)` → `(?<name>…)`, `(?P=name)` → `\k<name>`, `\A` → `^`, `\Z` → end of
 * input, leading global flags `(?aiLmsux)` → JavaScript flags. Python constructs with no JavaScript
 * equivalent (conditionals `(?(1)…)`, verbose mode) are refused with a message naming them.
 *
 * @module
 */

/**
 * Compiles a Python pattern to a sticky JavaScript RegExp; use it with {@linkcode pythonMatch}.
 *
 * @throws {SyntaxError} when the pattern is invalid or uses unsupported syntax.
 */
export function compilePythonRegex(pattern: string): RegExp {
  let flags = "";
  let source = pattern;
  const leading = /^\(\?([aiLmsux]+)\)/.exec(source);
  if (leading) {
    for (const f of leading[1] ?? "") {
      if (f === "i" || f === "m" || f === "s") flags += flags.includes(f) ? "" : f;
      else if (f === "x") throw new SyntaxError("verbose mode (?x) is not supported; remove it");
    }
    source = source.slice(leading[0].length);
  }
  let out = "";
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "\\") {
      const next = source[i + 1];
      if (next === undefined) throw new SyntaxError("bad escape (end of pattern)");
      if (!inClass && next === "A") out += "^";
      else if (!inClass && next === "Z") out += "$(?![\\s\\S])";
      else out += c + next;
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      out += c;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += c;
      // A "]" right after "[" or "[^" is a literal in Python.
      if (source[i + 1] === "^") (out += "^", i++);
      if (source[i + 1] === "]") (out += "\\]", i++);
      continue;
    }
    if (source.startsWith("(?P<", i)) {
      out += "(?<";
      i += 3;
      continue;
    }
    if (source.startsWith("(?P=", i)) {
      const end = source.indexOf(")", i);
      if (end < 0) throw new SyntaxError("missing ) after (?P=name");
      out += `\\k<${source.slice(i + 4, end)}>`;
      i = end;
      continue;
    }
    if (source.startsWith("(?(", i)) {
      throw new SyntaxError("conditional groups (?(...)...) are not supported");
    }
    out += c;
  }
  return new RegExp(out, flags + "y");
}

/** Python `re.match`: does `regex` match at the start of `text`? */
export function pythonMatch(regex: RegExp, text: string): boolean {
  regex.lastIndex = 0;
  return regex.test(text);
}
