/**
 * OpenMSIStream config files: INI files read with Python `configparser` semantics, then
 * `$VAR` environment substitution.
 *
 * Rules kept from OpenMSIStream 1.8:
 * - `[section]` names are case-sensitive; keys are lower-cased; `=` or `:` separate key and
 *   value (the first one on the line); surrounding whitespace is stripped.
 * - Whole-line comments start with `#` or `;`; there are no inline comments.
 * - Lines indented deeper than the key line continue its value (joined with `\n`).
 * - `[DEFAULT]` keys are inherited by every section.
 * - `%%` is a literal `%`, `%(key)s` is the value of another key of the same section.
 * - A value that starts with `$` is expanded from the environment (`$NAME`, `${NAME}`, NAME made
 *   of Unicode word characters); there is no `$$` escape, and a `$` that starts no reference
 *   stays as it is. Unlike the reference, which keeps an unset `$B` of `$A-$B` silently, every
 *   unset variable refuses the file, naming it.
 * - Values stay strings: `12345` stays `"12345"` (the reference's float conversion is a bug).
 *
 * @module
 */

/** A parsed config file: section name → (key → raw, uninterpolated value). */
export interface ConfigFile {
  /** Absolute or given path of the file, for messages. */
  path: string;
  /** Keys of `[DEFAULT]`. */
  defaults: Map<string, string>;
  /** Every other section, in file order. */
  sections: Map<string, Map<string, string>>;
}

/** A config file that cannot be used; the message names the file, the place and the fix. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

const DEFAULT_SECTION = "DEFAULT";
/** Python's `str.isspace()` characters: what `strip()` removes and `\s` matches in configparser. */
const SPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const SECTION_RE = /^\[(.+)\]/s;
const OPTION_RE = new RegExp(`^(.*?)[${SPACE}]*([=:])[${SPACE}]*(.*)$`, "s");
const LEADING_SPACE = new RegExp(`^[${SPACE}]+`);
const TRAILING_SPACE = new RegExp(`[${SPACE}]+$`);

/** Python `str.strip()` (JavaScript's `trim()` differs: it strips U+FEFF, keeps U+001C–U+001F). */
function strip(text: string): string {
  return rstrip(text.replace(LEADING_SPACE, ""));
}

/** Python `str.rstrip()`. */
function rstrip(text: string): string {
  return text.replace(TRAILING_SPACE, "");
}

/** Parses config text with Python configparser's default rules. */
export function parseConfig(text: string, path = "<config>"): ConfigFile {
  const defaults = new Map<string, string[]>();
  const sections = new Map<string, Map<string, string[]>>();
  const seenSections = new Set<string>();
  /** Keys seen per section name (`[DEFAULT]` included), for duplicate detection. */
  const seenKeys = new Map<string, Set<string>>();
  let current: Map<string, string[]> | null = null;
  let sectionName = "";
  let option: string | null = null;
  let indentLevel = 0;
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
  lines.forEach((line, index) => {
    const lineNo = index + 1;
    const trimmed = strip(line);
    const isComment = trimmed.startsWith("#") || trimmed.startsWith(";");
    if (isComment || trimmed === "") {
      // Blank lines inside a value are kept; comment lines are dropped.
      if (!isComment && current && option) current.get(option)?.push("");
      return;
    }
    const indent = line.length - line.replace(LEADING_SPACE, "").length;
    if (current && option && indent > indentLevel) {
      current.get(option)?.push(trimmed);
      return;
    }
    indentLevel = indent;
    const header = SECTION_RE.exec(trimmed);
    if (header) {
      sectionName = header[1] ?? "";
      if (sectionName === DEFAULT_SECTION) {
        current = defaults;
      } else {
        if (seenSections.has(sectionName)) {
          throw new ConfigError(
            `Cannot read config file ${path}: section [${sectionName}] appears twice (line ${lineNo}); merge the two sections`,
          );
        }
        seenSections.add(sectionName);
        current = new Map();
        sections.set(sectionName, current);
      }
      option = null;
      return;
    }
    if (!current) {
      throw new ConfigError(
        `Cannot read config file ${path}: line ${lineNo} comes before any [section] header; start the file with a section such as [broker]`,
      );
    }
    const match = OPTION_RE.exec(trimmed);
    const key = match?.[1] === undefined ? undefined : rstrip(match[1]).toLowerCase();
    if (!match || !key) {
      throw new ConfigError(
        `Cannot read config file ${path}: line ${lineNo} (${
          JSON.stringify(line)
        }) is not "key = value"`,
      );
    }
    const keysSeen = seenKeys.get(sectionName) ?? new Set<string>();
    seenKeys.set(sectionName, keysSeen);
    if (keysSeen.has(key)) {
      throw new ConfigError(
        `Cannot read config file ${path}: key "${key}" appears twice in [${sectionName}] (line ${lineNo}); keep one`,
      );
    }
    keysSeen.add(key);
    option = key;
    current.set(key, [strip(match[3] ?? "")]);
  });
  const join = (section: Map<string, string[]>) =>
    new Map([...section].map(([k, v]) => [k, rstrip(v.join("\n"))]));
  return {
    path,
    defaults: join(defaults),
    sections: new Map([...sections].map(([name, s]) => [name, join(s)])),
  };
}

const MAX_INTERPOLATION_DEPTH = 10;

function interpolate(
  config: ConfigFile,
  section: string,
  key: string,
  raw: string,
  lookup: (key: string) => string | undefined,
  depth = 1,
): string {
  if (depth > MAX_INTERPOLATION_DEPTH) {
    throw new ConfigError(
      `Cannot read config file ${config.path}: [${section}] ${key} refers to itself through %(...)s more than ${MAX_INTERPOLATION_DEPTH} levels deep`,
    );
  }
  let out = "";
  let rest = raw;
  while (rest.length > 0) {
    const at = rest.indexOf("%");
    if (at < 0) {
      out += rest;
      break;
    }
    out += rest.slice(0, at);
    rest = rest.slice(at);
    if (rest.startsWith("%%")) {
      out += "%";
      rest = rest.slice(2);
      continue;
    }
    const ref = /^%\(([^)]+)\)s/.exec(rest);
    if (!ref) {
      throw new ConfigError(
        `Cannot read config file ${config.path}: [${section}] ${key} has a lone "%" (${
          JSON.stringify(raw)
        }); write a literal % as %%`,
      );
    }
    const name = (ref[1] ?? "").toLowerCase();
    const value = lookup(name);
    if (value === undefined) {
      throw new ConfigError(
        `Cannot read config file ${config.path}: [${section}] ${key} refers to %(${name})s, which is not a key of [${section}] or [DEFAULT]`,
      );
    }
    // As Python: only a value with a "%" in it is interpolated further (one level deeper).
    out += value.includes("%")
      ? interpolate(config, section, key, value, lookup, depth + 1)
      : value;
    rest = rest.slice(ref[0].length);
  }
  return out;
}

/** A `$NAME` or `${NAME}` reference, as Python's `os.path.expandvars` finds them (`\w` is Unicode there). */
const ENV_REF = /\$([\p{L}\p{N}_]+|\{[^}]*\})/gu;

/** Names no environment can hold (Python's `os.environ` just lacks them; `Deno.env.get` throws). */
function impossibleName(name: string): boolean {
  return name === "" || name.includes("=") || name.includes("\0");
}

/** `a`, `a and b`, `a, b and c`. */
function listOf(items: string[]): string {
  return items.length < 2
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/**
 * Expands `$NAME` / `${NAME}` in a value that starts with `$`, as the reference does, except that
 * every reference must be set: where the reference silently keeps `$B` in `$A-$B` when only A is
 * set, this refuses the value.
 *
 * `where` names the value in messages (`[broker] sasl.password in /path/x.config`).
 *
 * @throws {ConfigError} when a referenced variable is not set (naming every one of them), or
 * when the value starts with `$` but refers to no variable at all.
 * @throws {Deno.errors.NotCapable} when reading a variable is not allowed (`--allow-env`).
 */
export function expandEnv(
  value: string,
  where: string,
  env: (name: string) => string | undefined,
): string {
  if (!value.startsWith("$")) return value;
  const unset: string[] = [];
  const impossible: string[] = [];
  let references = 0;
  const expanded = value.replace(ENV_REF, (whole, ref: string) => {
    references++;
    const name = ref.startsWith("{") ? ref.slice(1, -1) : ref;
    if (impossibleName(name)) {
      if (!impossible.includes(whole)) impossible.push(whole);
      return whole;
    }
    let found: string | undefined;
    try {
      found = env(name);
    } catch (error) {
      // Not allowed to read it: a permission to grant, not an unset variable.
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        throw error;
      }
      found = undefined; // a name this system's environment cannot hold
    }
    if (found === undefined && !unset.includes(name)) unset.push(name);
    return found ?? whole;
  });
  if (references === 0) {
    throw new ConfigError(
      `Cannot use ${where}: the value ${
        JSON.stringify(value)
      } starts with "$" but names no environment variable; write $NAME or \${NAME}, or write the value without "$"`,
    );
  }
  if (unset.length === 0 && impossible.length === 0) return expanded;
  const problems: string[] = [];
  if (unset.length > 0) {
    problems.push(
      unset.length === 1
        ? `the environment variable ${unset[0]} is not set`
        : `the environment variables ${listOf(unset)} are not set`,
    );
  }
  if (impossible.length > 0) {
    problems.push(
      `${listOf(impossible)} cannot name ${
        impossible.length === 1 ? "an environment variable" : "environment variables"
      }`,
    );
  }
  const fix = unset.length === 0
    ? "write $NAME or ${NAME} with a variable's name"
    : `set ${unset.length === 1 ? "it" : "them"} (for example \`export ${unset[0]}=...\`)`;
  throw new ConfigError(
    `Cannot use ${where}: ${listOf(problems)}; ${fix} or write the value into the file`,
  );
}

/**
 * Reads one section with `[DEFAULT]` inherited, `%` interpolation and `$VAR` expansion applied.
 * Returns `undefined` when the section is absent.
 */
export function readSection(
  config: ConfigFile,
  section: string,
  env: (name: string) => string | undefined,
): Map<string, string> | undefined {
  const own = config.sections.get(section);
  if (!own) return undefined;
  // Python's order: the section's own keys, then the inherited [DEFAULT] keys it does not set.
  const merged = new Map([...own, ...[...config.defaults].filter(([key]) => !own.has(key))]);
  const lookup = (key: string) => merged.get(key);
  const out = new Map<string, string>();
  for (const [key, raw] of merged) {
    const value = interpolate(config, section, key, raw, lookup);
    out.set(key, expandEnv(value, `[${section}] ${key} in ${config.path}`, env));
  }
  return out;
}
