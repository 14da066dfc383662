/**
 * Python regular expressions, as OpenMSIStream users write them for `--download_regex`,
 * compiled to JavaScript and applied with Python's `re.match` semantics (anchored at the start
 * of the string, not at its end).
 *
 * The pattern is translated token by token into a JavaScript `u`-mode RegExp so that it means
 * what Python 3 (`str` pattern, Unicode mode) means:
 * - `(?P<name>…)` → `(?<name>…)`, `(?P=name)` → `\k<name>`, `(?#…)` comments are dropped;
 * - `\A`, `\Z`, `^`, `$` and `.` keep Python's meaning: `$` also matches before a final `\n`,
 *   `.` matches everything but `\n` (`\r`, U+2028 included), `(?m)` only knows `\n` lines;
 * - `\d`, `\w`, `\s`, `\b` are Unicode-aware as in Python (ASCII-only under `(?a)`);
 * - `{,n}` is a repeat, and a `{`, `}` or `]` that is not part of a repeat or class is a literal;
 * - escapes Python knows (`\x41`, `\u00e9`, `\U0001F600`, `\0`, `\101`, `\a`, `\-`, `\#`, …)
 *   become code points; `\q` and other unknown letter escapes are errors, as in Python;
 * - leading global flags `(?aimsux)` and scoped flags `(?i:…)`, `(?-i:…)` are honoured.
 *
 * Python constructs with no JavaScript equivalent (conditionals `(?(1)…)`, verbose mode `(?x)`,
 * `\N{…}`, the locale flag) are refused with a message naming them.
 *
 * @module
 */

interface Flags {
  /** IGNORECASE. */
  i: boolean;
  /** MULTILINE: `^`/`$` at every `\n`. */
  m: boolean;
  /** DOTALL: `.` matches `\n` too. */
  s: boolean;
  /** ASCII: `\w`, `\d`, `\s`, `\b` are ASCII-only. */
  a: boolean;
}

/** A class item set such as `\d`: the body of a JavaScript class, matched or excluded. */
interface SetItem {
  body: string;
  negated: boolean;
}

type ClassItem = { kind: "char"; cp: number } | { kind: "set"; set: SetItem };

const ANY = "[\\s\\S]";
const START = `(?<!${ANY})`;
const END = `(?!${ANY})`;
/** Python's `str.isspace()` characters, which `\s` matches in Unicode mode. */
const UNICODE_SPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const ASCII_SPACE = " \\t\\n\\r\\f\\v";
const UNICODE_WORD = "\\p{L}\\p{N}_";
const ASCII_WORD = "A-Za-z0-9_";

/** Code point as a JavaScript `u`-mode escape, valid inside and outside classes. */
function lit(cp: number): string {
  return `\\u{${cp.toString(16)}}`;
}

function isOctal(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "7";
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function isAsciiLetter(c: string): boolean {
  return /^[A-Za-z]$/.test(c);
}

function parseFlags(text: string): Flags {
  return { i: text.includes("i"), m: text.includes("m"), s: text.includes("s"), a: false };
}

/** Compiles `source` (the pattern without its leading global flags). */
class Translator {
  readonly #cps: string[];
  #pos = 0;
  #flags: Flags;
  /** Flags to restore and capture group number (0: not capturing) of each open group. */
  readonly #stack: { flags: Flags; group: number }[] = [];
  /** Capture groups opened so far, and their names. */
  #groups = 0;
  readonly #names = new Map<string, number>();
  /** Where the token being translated starts, for messages. */
  #start = 0;

  constructor(source: string, flags: Flags) {
    this.#cps = Array.from(source);
    this.#flags = flags;
  }

  #error(message: string): SyntaxError {
    return new SyntaxError(`${message} at position ${this.#start}`);
  }

  #peek(offset = 0): string | undefined {
    return this.#cps[this.#pos + offset];
  }

  #rest(): string {
    return this.#cps.slice(this.#pos).join("");
  }

  #wordClass(): string {
    return this.#flags.a ? ASCII_WORD : UNICODE_WORD;
  }

  translate(): string {
    let out = "";
    while (this.#pos < this.#cps.length) {
      this.#start = this.#pos;
      out += this.#token();
    }
    if (this.#stack.length > 0) throw this.#error("missing ), unterminated subpattern");
    return out;
  }

  #token(): string {
    const c = this.#cps[this.#pos++] as string;
    switch (c) {
      case "\\":
        return this.#escapeOutside();
      case "[":
        return this.#charClass();
      case "(":
        return this.#group();
      case ")":
        if (this.#stack.length === 0) throw this.#error("unbalanced parenthesis");
        this.#flags = (this.#stack.pop() as { flags: Flags }).flags;
        return ")";
      case ".":
        return this.#flags.s ? ANY : "[^\\n]";
      case "^":
        return this.#flags.m ? `(?:${START}|(?<=\\n))` : START;
      case "$":
        return this.#flags.m ? `(?=\\n|${END})` : `(?=\\n?${END})`;
      case "{": {
        // Python: `{m}`, `{m,}`, `{,n}`, `{m,n}` (and `{,}`) repeat; any other `{` is a literal.
        const repeat = /^(\d*)(?:(,)(\d*))?\}/.exec(this.#rest());
        if (!repeat || (repeat[1] === "" && repeat[2] === undefined)) return lit(0x7b);
        this.#pos += repeat[0].length;
        const lo = repeat[1] === "" ? "0" : repeat[1];
        return repeat[2] === undefined ? `{${lo}}` : `{${lo},${repeat[3]}}`;
      }
      case "}":
      case "]":
        return lit(c.codePointAt(0) as number);
      case "*":
      case "+":
      case "?":
      case "|":
        return c;
      default:
        return lit(c.codePointAt(0) as number);
    }
  }

  #group(): string {
    if (this.#peek() !== "?") {
      this.#stack.push({ flags: this.#flags, group: ++this.#groups });
      return "(";
    }
    const rest = this.#rest();
    const named = /^\?P<([^>]*)>/.exec(rest);
    if (named) {
      if (!/^[\p{L}_][\p{L}\p{N}_]*$/u.test(named[1] ?? "")) {
        throw this.#error(`bad character in group name ${JSON.stringify(named[1])}`);
      }
      if (this.#names.has(named[1] ?? "")) {
        throw this.#error(`redefinition of group name ${JSON.stringify(named[1])}`);
      }
      this.#pos += named[0].length;
      this.#names.set(named[1] ?? "", ++this.#groups);
      this.#stack.push({ flags: this.#flags, group: this.#groups });
      return `(?<${named[1]}>`;
    }
    const backref = /^\?P=([^)]*)\)/.exec(rest);
    if (backref) {
      const group = this.#names.get(backref[1] ?? "");
      if (group === undefined) {
        throw this.#error(`unknown group name ${JSON.stringify(backref[1])}`);
      }
      this.#checkReference(group);
      this.#pos += backref[0].length;
      return `(?:\\k<${backref[1]}>)`;
    }
    if (rest.startsWith("?P")) throw this.#error("unknown extension ?P");
    if (rest.startsWith("?#")) {
      const end = rest.indexOf(")");
      if (end < 0) throw this.#error("missing ), unterminated comment");
      this.#pos += end + 1;
      return "";
    }
    if (rest.startsWith("?(")) {
      throw this.#error("conditional groups (?(...)...) are not supported");
    }
    for (const ext of ["?:", "?=", "?!", "?<=", "?<!"]) {
      if (rest.startsWith(ext)) {
        this.#pos += ext.length;
        this.#stack.push({ flags: this.#flags, group: 0 });
        return `(${ext}`;
      }
    }
    const scoped = /^\?([aiLmsux]*)(?:-([a-zA-Z]*))?([:)])/.exec(rest);
    if (scoped && (scoped[1] !== "" || scoped[2] !== undefined)) {
      const on = scoped[1] ?? "";
      const off = scoped[2];
      if (scoped[3] === ")") {
        throw this.#error(
          off === undefined ? "global flags not at the start of the expression" : "missing :",
        );
      }
      if (off !== undefined && (off === "" || /[^imsx]/.test(off))) {
        throw this.#error(`bad inline flag -${off}: only i, m, s and x can be turned off`);
      }
      if ((on + (off ?? "")).includes("x")) {
        throw this.#error("verbose mode (?x) is not supported; remove it");
      }
      if (on.includes("L")) {
        throw this.#error("bad inline flag: cannot use 'L' flag with a str pattern");
      }
      const next: Flags = { ...this.#flags };
      for (const f of on) {
        if (f === "a") next.a = true;
        else if (f === "u") next.a = false;
        else if (f === "i" || f === "m" || f === "s") next[f] = true;
      }
      for (const f of off ?? "") if (f === "i" || f === "m" || f === "s") next[f] = false;
      this.#pos += scoped[0].length;
      const open = next.i === this.#flags.i ? "(?:" : next.i ? "(?i:" : "(?-i:";
      this.#stack.push({ flags: this.#flags, group: 0 });
      this.#flags = next;
      return open;
    }
    throw this.#error(`unknown extension (${rest.slice(0, 3)}`);
  }

  /** Python refuses references to groups that are not yet opened, or not yet closed. */
  #checkReference(group: number): void {
    if (group > this.#groups) throw this.#error(`invalid group reference ${group}`);
    if (this.#stack.some((open) => open.group === group)) {
      throw this.#error("cannot refer to an open group");
    }
  }

  /** `\d`, `\w`, `\s` and their negations, or `undefined` for other letters. */
  #setEscape(c: string): SetItem | undefined {
    const a = this.#flags.a;
    switch (c) {
      case "d":
        return a ? { body: "0-9", negated: false } : { body: "\\p{Nd}", negated: false };
      case "D":
        return a ? { body: "0-9", negated: true } : { body: "\\P{Nd}", negated: false };
      case "w":
      case "W":
        return { body: this.#wordClass(), negated: c === "W" };
      case "s":
      case "S":
        return { body: a ? ASCII_SPACE : UNICODE_SPACE, negated: c === "S" };
    }
    return undefined;
  }

  /** A code point escape valid in and out of classes (`\x41`, `\n`, `\-`, octal), or an error. */
  #codePointEscape(c: string, inClass: boolean): number {
    const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11 };
    if (c in simple && (c !== "b" || inClass)) return simple[c] as number;
    const hex = (digits: number): number => {
      const text = this.#cps.slice(this.#pos, this.#pos + digits).join("");
      if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(text)) {
        throw this.#error(`incomplete escape \\${c}${text}`);
      }
      this.#pos += digits;
      const cp = parseInt(text, 16);
      if (cp > 0x10ffff) throw this.#error(`bad escape \\${c}${text}`);
      return cp;
    };
    if (c === "x") return hex(2);
    if (c === "u") return hex(4);
    if (c === "U") return hex(8);
    if (c === "N") throw this.#error("named Unicode escapes \\N{...} are not supported");
    if (isOctal(c)) {
      let digits = c;
      while (digits.length < 3 && isOctal(this.#peek())) digits += this.#cps[this.#pos++];
      const cp = parseInt(digits, 8);
      if (cp > 0o377) throw this.#error(`octal escape value \\${digits} outside of range 0-0o377`);
      return cp;
    }
    if (isDigit(c) || isAsciiLetter(c)) throw this.#error(`bad escape \\${c}`);
    return c.codePointAt(0) as number;
  }

  #escapeOutside(): string {
    const c = this.#cps[this.#pos++];
    if (c === undefined) throw this.#error("bad escape (end of pattern)");
    if (c === "A") return START;
    if (c === "Z") return END;
    if (c === "b" || c === "B") {
      const w = `[${this.#wordClass()}]`;
      return c === "b"
        ? `(?:(?<=${w})(?!${w})|(?<!${w})(?=${w}))`
        // Python 3.11's \B never matches in an empty string.
        : `(?:(?<=${ANY})|(?=${ANY}))(?:(?<=${w})(?=${w})|(?<!${w})(?!${w}))`;
    }
    const set = this.#setEscape(c);
    if (set) return `[${set.negated ? "^" : ""}${set.body}]`;
    // Group references: `\1`…`\99`; `\0` and three octal digits are octal escapes.
    if (isDigit(c) && c !== "0") {
      const d2 = this.#peek();
      if (isOctal(c) && isOctal(d2) && isOctal(this.#peek(1))) {
        return lit(this.#codePointEscape(c, false));
      }
      let ref = c;
      if (isDigit(d2)) ref += this.#cps[this.#pos++];
      this.#checkReference(Number(ref));
      return `(?:\\${ref})`;
    }
    return lit(this.#codePointEscape(c, false));
  }

  #classEscape(): ClassItem {
    const c = this.#cps[this.#pos++];
    if (c === undefined) throw this.#error("bad escape (end of pattern)");
    const set = this.#setEscape(c);
    if (set) return { kind: "set", set };
    if (isDigit(c) && !isOctal(c)) throw this.#error(`bad escape \\${c}`);
    return { kind: "char", cp: this.#codePointEscape(c, true) };
  }

  #charClass(): string {
    const negate = this.#peek() === "^";
    if (negate) this.#pos++;
    let body = "";
    const excluded: string[] = [];
    let first = true;
    for (;;) {
      const c = this.#cps[this.#pos++];
      if (c === undefined) throw this.#error("unterminated character set");
      if (c === "]" && !first) break;
      first = false;
      const item: ClassItem = c === "\\"
        ? this.#classEscape()
        : { kind: "char", cp: c.codePointAt(0) as number };
      if (this.#peek() === "-" && this.#peek(1) !== undefined && this.#peek(1) !== "]") {
        this.#pos++;
        const d = this.#cps[this.#pos++] as string;
        const end: ClassItem = d === "\\"
          ? this.#classEscape()
          : { kind: "char", cp: d.codePointAt(0) as number };
        if (item.kind !== "char" || end.kind !== "char") throw this.#error("bad character range");
        if (end.cp < item.cp) throw this.#error("bad character range");
        body += `${lit(item.cp)}-${lit(end.cp)}`;
        continue;
      }
      if (item.kind === "char") body += lit(item.cp);
      else if (item.set.negated) excluded.push(item.set.body);
      else body += item.set.body;
    }
    if (excluded.length === 0) return `[${negate ? "^" : ""}${body}]`;
    // `[x\W]`: a union with a negated set, which a single JavaScript class cannot say.
    const union = [...(body === "" ? [] : [`[${body}]`]), ...excluded.map((e) => `[^${e}]`)]
      .join("|");
    return negate ? `(?:(?!${union})${ANY})` : `(?:${union})`;
  }
}

/**
 * Compiles a Python pattern to a sticky JavaScript RegExp; use it with {@linkcode pythonMatch}.
 *
 * @throws {SyntaxError} when the pattern is invalid or uses unsupported syntax.
 */
export function compilePythonRegex(pattern: string): RegExp {
  const flags: Flags = { i: false, m: false, s: false, a: false };
  let source = pattern;
  for (;;) {
    const leading = /^\(\?([aiLmsux]+)\)/.exec(source);
    if (!leading) break;
    const letters = leading[1] ?? "";
    if (letters.includes("x")) {
      throw new SyntaxError("verbose mode (?x) is not supported; remove it");
    }
    if (letters.includes("L")) {
      throw new SyntaxError("bad inline flag: cannot use 'L' flag with a str pattern");
    }
    if (letters.includes("a") && letters.includes("u")) {
      throw new SyntaxError("bad inline flag: flags 'a' and 'u' are incompatible");
    }
    const parsed = parseFlags(letters);
    flags.i ||= parsed.i;
    flags.m ||= parsed.m;
    flags.s ||= parsed.s;
    flags.a ||= letters.includes("a");
    source = source.slice(leading[0].length);
  }
  const translated = new Translator(source, flags).translate();
  try {
    return new RegExp(translated, flags.i ? "iuy" : "uy");
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^.*: /, "") : String(error);
    throw new SyntaxError(`${reason} in ${JSON.stringify(pattern)}`);
  }
}

/** Python `re.match`: does `regex` match at the start of `text`? */
export function pythonMatch(regex: RegExp, text: string): boolean {
  regex.lastIndex = 0;
  return regex.test(text);
}
