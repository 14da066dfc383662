import assert from "node:assert/strict";
import {
  ConfigError,
  type ConfigFile,
  expandEnv,
  parseConfig,
  readSection,
} from "./config_file.ts";

/** An environment with the given variables only. */
function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => Object.hasOwn(vars, name) ? vars[name] : undefined;
}

const NO_ENV = envOf({});

/** Reads `section` of `text`, interpolated and expanded, as a plain object. */
function read(
  text: string,
  section: string,
  env: (name: string) => string | undefined = NO_ENV,
): Record<string, string> {
  const values = readSection(parseConfig(text, "t.config"), section, env);
  assert.ok(values, `section [${section}] should exist`);
  return Object.fromEntries(values);
}

/** Asserts that `fn` throws a ConfigError whose message contains every fragment. */
function assertConfigError(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    assert.equal(error.name, "ConfigError");
    for (const fragment of fragments) {
      assert.ok(
        error.message.includes(fragment),
        `message ${JSON.stringify(error.message)} should contain ${JSON.stringify(fragment)}`,
      );
    }
    return true;
  });
}

Deno.test("parseConfig() reads sections, keys and values as strings", () => {
  const config = parseConfig(
    "[broker]\nbootstrap.servers = localhost:9092\n\n[consumer]\nfetch.min.bytes = 100000\n",
    "my.config",
  );
  assert.equal(config.path, "my.config");
  assert.deepEqual([...config.sections.keys()], ["broker", "consumer"]);
  assert.deepEqual(Object.fromEntries(config.sections.get("broker") ?? []), {
    "bootstrap.servers": "localhost:9092",
  });
  assert.equal(config.defaults.size, 0);
  assert.equal(parseConfig("").sections.size, 0);
  assert.equal(parseConfig("").path, "<config>");
});

Deno.test("parseConfig() keeps numbers as strings (the reference turned them into floats)", () => {
  const values = read("[broker]\nsasl.password = 12345\nratio = 1.50\nlinger.ms = 100\n", "broker");
  assert.equal(values["sasl.password"], "12345");
  assert.equal(values["ratio"], "1.50");
  assert.equal(values["linger.ms"], "100");
  assert.equal(typeof values["sasl.password"], "string");
});

Deno.test("parseConfig() splits at the first '=' or ':', whichever comes first", () => {
  const values = read(
    "[a]\nsasl.password: p=w\nk2 = v : x\nurl = http://h:1/p\nempty =\ncolon:\n",
    "a",
  );
  assert.deepEqual(values, {
    "sasl.password": "p=w",
    k2: "v : x",
    url: "http://h:1/p",
    empty: "",
    colon: "",
  });
});

Deno.test("parseConfig() lower-cases keys and strips whitespace around keys and values", () => {
  const values = read("[a]\n  Bootstrap.SERVERS   =   h:1  \nKey\t=\tv\t\n", "a");
  assert.deepEqual(values, { "bootstrap.servers": "h:1", key: "v" });
});

Deno.test("parseConfig() strips Python whitespace, not JavaScript's", () => {
  // U+001C is whitespace for Python's str.strip() but not for String.prototype.trim();
  // U+FEFF is the other way round.
  assert.equal(read("[a]\nk = v\u001c\n", "a")["k"], "v");
  assert.equal(read("[a]\nk = v\ufeff\n", "a")["k"], "v\ufeff");
  // U+2028 is not a line break for configparser: the value keeps it.
  assert.equal(read("[a]\nk = a\u2028b\n", "a")["k"], "a\u2028b");
});

Deno.test("parseConfig() keeps section names case-sensitive", () => {
  const config = parseConfig("[Consumer]\nk = v\n[consumer]\nk = w\n");
  assert.deepEqual([...config.sections.keys()], ["Consumer", "consumer"]);
  assert.equal(readSection(config, "consumer", NO_ENV)?.get("k"), "w");
  assert.equal(readSection(config, "Consumer", NO_ENV)?.get("k"), "v");
  assert.equal(readSection(config, "CONSUMER", NO_ENV), undefined);
});

Deno.test("parseConfig() reads a header up to its last ']' and ignores text after it", () => {
  const config = parseConfig("[a] trailing\nk = v\n[x]y]\nj = w\n");
  assert.deepEqual([...config.sections.keys()], ["a", "x]y"]);
  assert.equal(config.sections.get("a")?.get("k"), "v");
});

Deno.test("parseConfig() drops whole-line comments and keeps inline '#' text", () => {
  const values = read(
    "# top comment\n; another\n[a]\nx = 1 # c\n; c\n  # indented comment\ny = 2 ; not a comment\n",
    "a",
  );
  assert.deepEqual(values, { x: "1 # c", y: "2 ; not a comment" });
});

Deno.test("parseConfig() joins indented continuation lines with '\\n'", () => {
  assert.equal(
    read("[a]\nx = first\n  second\n\tthird\ny = 2\n", "a")["x"],
    "first\nsecond\nthird",
  );
  // A key with an empty value can still continue.
  assert.equal(read("[a]\nk =\n  cont\n", "a")["k"], "\ncont");
  // A line that looks like a header or an option is still a continuation when indented.
  assert.deepEqual(read("[a]\nk = v\n [b]\n j = w\n", "a"), { k: "v\n[b]\nj = w" });
});

Deno.test("parseConfig() keeps blank lines inside a value and drops trailing ones", () => {
  const values = read("[a]\nx = first\n  second\n\n  third\n\n\ny = 2\n", "a");
  assert.deepEqual(values, { x: "first\nsecond\n\nthird", y: "2" });
  assert.equal(read("[a]\nx = first\n  second\n\n\n", "a")["x"], "first\nsecond");
  // A comment line inside a value is dropped, not kept as a blank line.
  assert.equal(read("[a]\nx = first\n  # note\n  second\n", "a")["x"], "first\nsecond");
});

Deno.test("parseConfig() measures continuation against the indentation of the key line", () => {
  // Keys indented alike are separate options.
  assert.deepEqual(read("[a]\n  k = v\n  k2 = v2\n", "a"), { k: "v", k2: "v2" });
  // Deeper than the key line: a continuation, even when less indented than an earlier key.
  assert.deepEqual(read("[a]\n  k = v\nj = w\n x\n", "a"), { k: "v", j: "w\nx" });
  // A line indented only as much as the key line is not a continuation.
  assertConfigError(() => parseConfig("[a]\n\tk = v\n\tcont\n"), "line 3", '"\\tcont"');
  // An indented header and key work like unindented ones.
  assert.deepEqual(read("  [a]\n  k = v\n   cont\n", "a"), { k: "v\ncont" });
  assert.deepEqual(read("  [a]\nk = v\n cont\n", "a"), { k: "v\ncont" });
});

Deno.test("parseConfig() accepts CRLF, CR and a UTF-8 byte order mark", () => {
  assert.deepEqual(read("[a]\r\nk = v\r\n  w\r\n", "a"), { k: "v\nw" });
  assert.deepEqual(read("[a]\rk = v\r", "a"), { k: "v" });
  assert.deepEqual(read("\ufeff[a]\nk = v\n", "a"), { k: "v" });
});

Deno.test("parseConfig() refuses a line before any section", () => {
  assertConfigError(() => parseConfig("x = 1\n[a]\n", "f.config"), "f.config", "line 1", "section");
  // Comments and blank lines before the first header are fine.
  assert.doesNotThrow(() => parseConfig("\n\n# c\n[a]\nk=v"));
});

Deno.test("parseConfig() refuses a line without a delimiter or without a key", () => {
  assertConfigError(() => parseConfig("[a]\njunk\n", "f.config"), "f.config", "line 2", '"junk"');
  assertConfigError(() => parseConfig("[a]\n= v\n"), "line 2", "key = value");
  assertConfigError(() => parseConfig("[a]\n: v\n"), "line 2");
});

Deno.test("parseConfig() refuses a section that appears twice", () => {
  assertConfigError(
    () => parseConfig("[a]\nx = 1\n[b]\n[a]\ny = 2\n", "f.config"),
    "f.config",
    "[a]",
    "twice",
    "line 4",
  );
});

Deno.test("parseConfig() refuses a key that appears twice in one section, in any case", () => {
  assertConfigError(() => parseConfig("[a]\nx = 1\nX = 2\n"), '"x"', "[a]", "line 3");
  assertConfigError(
    () => parseConfig("[DEFAULT]\nd = 1\n[DEFAULT]\nd = 2\n[a]\n"),
    '"d"',
    "[DEFAULT]",
  );
  // The same key in two sections is fine, and so is [DEFAULT] given twice with other keys.
  assert.doesNotThrow(() => parseConfig("[a]\nk = v\n[b]\nk = v\n"));
  assert.deepEqual(read("[DEFAULT]\nd = 1\n[DEFAULT]\ne = 2\n[a]\n", "a"), { d: "1", e: "2" });
});

Deno.test("parseConfig() tells a key id from a section id", () => {
  // Key "k]" of [s] and a section named "s]k" must not be mistaken for each other.
  const config = parseConfig("[s]\nk] = 1\n[s]k]\nx = 2\n");
  assert.deepEqual([...config.sections.keys()], ["s", "s]k"]);
  const other = parseConfig("[s]k]\nx = 2\n[s]\nk] = 1\n");
  assert.equal(other.sections.get("s")?.get("k]"), "1");
});

Deno.test("readSection() inherits [DEFAULT] keys; the section's own keys win", () => {
  const text = "[DEFAULT]\nz = 1\nb = 0\n[a]\nb = 2\nc = 3\n[broker]\n";
  const a = readSection(parseConfig(text), "a", NO_ENV);
  // Python's order: own keys first, then the inherited ones.
  assert.deepEqual([...(a ?? [])], [["b", "2"], ["c", "3"], ["z", "1"]]);
  assert.deepEqual(read(text, "broker"), { z: "1", b: "0" });
  assert.deepEqual([...parseConfig(text).defaults], [["z", "1"], ["b", "0"]]);
  // [DEFAULT] is not a section of its own.
  assert.equal(parseConfig(text).sections.has("DEFAULT"), false);
  assert.equal(readSection(parseConfig(text), "DEFAULT", NO_ENV), undefined);
});

Deno.test("readSection() returns undefined for a missing section", () => {
  assert.equal(readSection(parseConfig("[a]\nk = v\n"), "b", NO_ENV), undefined);
});

Deno.test("readSection() replaces %% with % and %(key)s with another key's value", () => {
  const text = "[DEFAULT]\nd = 1\nhost = h\n[a]\nx = %(d)s%%\n[b]\nd = 2\nx = %(D)s\n" +
    "[broker]\nbootstrap.servers = %(host)s:9092\nk = %%%(d)s%%\n";
  assert.equal(read(text, "a")["x"], "1%");
  // The section's own key wins over [DEFAULT]; the reference name is lower-cased.
  assert.equal(read(text, "b")["x"], "2");
  assert.equal(read(text, "broker")["bootstrap.servers"], "h:9092");
  assert.equal(read(text, "broker")["k"], "%1%");
  // Interpolation is recursive, and a referenced "%%" is a literal "%" too.
  assert.deepEqual(read("[a]\nk = <%(j)s>\nj = [%(i)s]\ni = 5%%\n", "a"), {
    k: "<[5%]>",
    j: "[5%]",
    i: "5%",
  });
  // The raw values stay uninterpolated in the parsed file.
  assert.equal(parseConfig(text).sections.get("a")?.get("x"), "%(d)s%%");
});

Deno.test("readSection() refuses a lone '%' when the section is read", () => {
  const config = parseConfig("[a]\nsasl.password = 50%off\n[b]\nk = v\n", "f.config");
  assertConfigError(
    () => readSection(config, "a", NO_ENV),
    "f.config",
    "[a]",
    "sasl.password",
    "%%",
  );
  // Other sections can still be read.
  assert.equal(readSection(config, "b", NO_ENV)?.get("k"), "v");
  assertConfigError(() => read("[a]\nx = 50%\n", "a"), "[a] x");
  assertConfigError(() => read("[a]\nk = %(\n", "a"), "[a] k");
  assertConfigError(() => read("[a]\nk = %(x)d\nx = 1\n", "a"), "[a] k");
  // A [DEFAULT] value with a lone "%" breaks every section that inherits it.
  assertConfigError(() => read("[DEFAULT]\np = 5%\n[a]\n", "a"), "[a] p");
});

Deno.test("readSection() refuses a reference to a key that does not exist", () => {
  assertConfigError(
    () => read("[a]\nx = %(missing)s\n[b]\nmissing = 1\n", "a"),
    "[a] x",
    "%(missing)s",
    "[DEFAULT]",
  );
});

Deno.test("readSection() refuses references nested more than 10 levels deep", () => {
  assertConfigError(() => read("[a]\nk = %(k)s\n", "a"), "[a] k", "10");
  assertConfigError(() => read("[a]\nk = %(j)s\nj = %(k)s\n", "a"), "[a]");
  // Python counts only values with a "%" in them; these limits are Python's.
  const chain = (last: string, n: number) =>
    "[a]\nv0 = " + last + "\n" +
    Array.from({ length: n }, (_, i) => `v${i + 1} = %(v${i})s\n`).join("");
  assert.equal(read(chain("x", 10), "a")["v10"], "x");
  assertConfigError(() => read(chain("x", 11), "a"), "v11");
  assert.equal(read(chain("%%", 9), "a")["v9"], "%");
  assertConfigError(() => read(chain("%%", 10), "a"), "v10");
});

Deno.test("expandEnv() leaves values that do not start with '$' alone", () => {
  const env = envOf({ X: "x", HOME: "/h" });
  assert.equal(expandEnv("SASL_$X", "w", env), "SASL_$X");
  assert.equal(expandEnv(" $X", "w", env), " $X");
  assert.equal(expandEnv("plain", "w", env), "plain");
  assert.equal(expandEnv("", "w", env), "");
  assert.equal(expandEnv("~$HOME", "w", env), "~$HOME");
});

Deno.test("expandEnv() expands $NAME and ${NAME} in a value that starts with '$'", () => {
  const env = envOf({ HOST: "broker.example", A: "a", E: "", A_B: "ab" });
  assert.equal(expandEnv("$HOST:9092", "w", env), "broker.example:9092");
  assert.equal(expandEnv("${HOST}:9092", "w", env), "broker.example:9092");
  assert.equal(expandEnv("${A}x", "w", env), "ax");
  assert.equal(expandEnv("$A$A", "w", env), "aa");
  assert.equal(expandEnv("$A_B", "w", env), "ab");
  // No "$$" escape: the first "$" stays, the second starts a reference.
  assert.equal(expandEnv("$$A", "w", env), "$a");
  // A variable set to the empty string expands to "".
  assert.equal(expandEnv("$E", "w", env), "");
  // An expanded value is not expanded again.
  assert.equal(expandEnv("$X", "w", envOf({ X: "$A" })), "$A");
});

Deno.test("expandEnv() refuses a value with any unset variable, naming every unset one", () => {
  const env = envOf({ A: "a" });
  // The reference would give "a-$B" silently.
  assertConfigError(
    () => expandEnv("$A-$B", "[broker] sasl.password in x.config", env),
    "Cannot use [broker] sasl.password in x.config",
    "the environment variable B is not set",
    "export B=",
  );
  assertConfigError(() => expandEnv("$B-$A", "w", env), "variable B is not set");
  assertConfigError(() => expandEnv("${E}${B}", "w", envOf({ E: "" })), "variable B is not set");
  assertConfigError(() => expandEnv("${A}x${B}y", "w", env), "variable B is not set");
  // `$Bx` names Bx, not B; `${B}x` names B.
  assertConfigError(() => expandEnv("$A$Bx", "w", envOf({ A: "a", B: "b" })), "variable Bx is");
  assertConfigError(() => expandEnv("${B}x", "w", env), "variable B is not set");
  // Every unset variable is named, once each, in the order of the value.
  assertConfigError(
    () => expandEnv("$A-$B", "[broker] bootstrap.servers in x.config", NO_ENV),
    "[broker] bootstrap.servers in x.config",
    "the environment variables A and B are not set",
    "export A=",
  );
  assertConfigError(
    () => expandEnv("${C}:$B-${A}$B$C", "w", NO_ENV),
    "the environment variables C, B and A are not set",
  );
  assertConfigError(
    () => expandEnv("$A:${B}:$C", "w", env),
    "the environment variables B and C are not set",
  );
  // The message carries no value of a variable that is set.
  assert.throws(
    () => expandEnv("$A-$B", "w", envOf({ A: "s3cr3t" })),
    (error: Error) => !error.message.includes("s3cr3t"),
  );
});

Deno.test("expandEnv() refuses a value where nothing was expanded, naming the variable", () => {
  assertConfigError(
    () => expandEnv("$KAFKA_TEST_CLUSTER_USERNAME", "[broker] sasl.username in t.config", NO_ENV),
    "[broker] sasl.username in t.config",
    "the environment variable KAFKA_TEST_CLUSTER_USERNAME is not set",
  );
  assertConfigError(() => expandEnv("${SECRET}", "w", NO_ENV), "variable SECRET is not set");
  // `$Ax` names Ax, not A.
  assertConfigError(() => expandEnv("$Ax", "w", envOf({ A: "a" })), "variable Ax is not set");
  // Names are Unicode word characters, as Python's `\w`.
  assertConfigError(() => expandEnv("$é", "w", NO_ENV), "variable é is not set");
  assert.equal(expandEnv("$é-$A1", "w", envOf({ é: "e", A1: "1" })), "e-1");
  // Values that start with "$" but name no variable.
  assertConfigError(() => expandEnv("$", "w", NO_ENV), '"$"', "names no environment variable");
  assertConfigError(() => expandEnv("$-x", "w", NO_ENV), '"$-x"', "names no environment variable");
  assertConfigError(() => expandEnv("$$", "w", NO_ENV), '"$$"', "names no environment variable");
  assertConfigError(() => expandEnv("${A", "w", envOf({ A: "a" })), '"${A"');
});

Deno.test("expandEnv() keeps a '$' that starts no reference as it is (no '$$' escape)", () => {
  const env = envOf({ A: "a", HOST: "h" });
  assert.equal(expandEnv("$$A", "w", env), "$a");
  assert.equal(expandEnv("$A$", "w", env), "a$");
  assert.equal(expandEnv("$A-$-x", "w", env), "a-$-x");
  assert.equal(expandEnv("$HOST:$ 1", "w", env), "h:$ 1");
  assert.equal(expandEnv("${A}${", "w", env), "a${");
});

Deno.test("expandEnv() refuses references no environment can hold, and other names as unset", () => {
  // Deno.env.get throws for "" and for names with "="; they are never looked up.
  const throwing = (name: string) => {
    if (name === "" || name.includes("=") || name === "A B") {
      throw new TypeError(`invalid key ${name}`);
    }
    return name === "A" ? "a" : undefined;
  };
  assertConfigError(() => expandEnv("${}", "w", throwing), "${} cannot name an environment");
  assertConfigError(() => expandEnv("${A=B}", "w", throwing), "${A=B} cannot name");
  assertConfigError(() => expandEnv("${A=B}$A", "w", throwing), "${A=B} cannot name");
  assertConfigError(
    () => expandEnv("${}$C", "w", throwing),
    "the environment variable C is not set and ${} cannot name an environment variable",
  );
  // A name the environment lookup rejects is unset.
  assertConfigError(() => expandEnv("${A B}$A", "w", throwing), "variable A B is not set");
});

Deno.test("expandEnv() passes a refused environment permission on, not as an unset variable", () => {
  const denied = (name: string): string | undefined => {
    throw new Deno.errors.NotCapable(
      `Requires env access to "${name}", run again with the --allow-env flag`,
    );
  };
  assert.throws(() => expandEnv("$KAFKA_USER", "w", denied), Deno.errors.NotCapable);
  assert.throws(
    () =>
      expandEnv("$A", "w", () => {
        throw new Deno.errors.PermissionDenied("no");
      }),
    Deno.errors.PermissionDenied,
  );
  // Values without a reference never read the environment.
  assert.equal(expandEnv("plain", "w", denied), "plain");
});

Deno.test("readSection() expands environment variables after interpolation", () => {
  const text = "[DEFAULT]\nport = 9092\n[broker]\nbootstrap.servers = $HOST:%(port)s\n" +
    "sasl.username = $USER_NAME\nsecurity.protocol = SASL_$X\n[s3]\nkey = $UNSET\n";
  const env = envOf({ HOST: "h", USER_NAME: "u", X: "SSL" });
  assert.deepEqual(read(text, "broker", env), {
    "bootstrap.servers": "h:9092",
    "sasl.username": "u",
    "security.protocol": "SASL_$X",
    port: "9092",
  });
  // Unset variables in a section that is not read are harmless; reading it fails.
  assertConfigError(() => read(text, "s3", env), "[s3] key in t.config", "UNSET");
  // A "$" produced by interpolation at the start of a value is expanded too.
  assert.equal(read("[DEFAULT]\nv = $HOST\n[a]\nk = %(v)s\n", "a", env)["k"], "h");
});

Deno.test("readSection() names the section, key and file of a value with unset variables", () => {
  const text = "[broker]\nbootstrap.servers = $HOST:9092\nsasl.password = $A-$B\n";
  assertConfigError(
    () => read(text, "broker", envOf({ HOST: "h", A: "a" })),
    "Cannot use [broker] sasl.password in t.config",
    "the environment variable B is not set",
  );
  assertConfigError(
    () => read(text, "broker", envOf({ HOST: "h" })),
    "[broker] sasl.password in t.config",
    "the environment variables A and B are not set",
  );
  assert.equal(
    read(text, "broker", envOf({ HOST: "h", A: "a", B: "b" }))["sasl.password"],
    "a-b",
  );
});

Deno.test("readSection() reads the shipped test.config shape", () => {
  const text = `[broker]
bootstrap.servers = $KAFKA_TEST_CLUSTER_BOOTSTRAP_SERVERS
sasl.mechanism = PLAIN
security.protocol = SASL_SSL
sasl.username = $KAFKA_TEST_CLUSTER_USERNAME
sasl.password = $KAFKA_TEST_CLUSTER_PASSWORD

[producer]
batch.size       = 2000000
linger.ms        = 100
compression.type = lz4
key.serializer   = StringSerializer
value.serializer = DataFileChunkSerializer

[consumer]
group.id           = create_new
auto.offset.reset  = earliest
enable.auto.commit = False
fetch.min.bytes    = 100000
key.deserializer   = StringDeserializer
value.deserializer = DataFileChunkDeserializer
`;
  const config: ConfigFile = parseConfig(text, "test.config");
  assert.deepEqual([...config.sections.keys()], ["broker", "producer", "consumer"]);
  const env = envOf({
    KAFKA_TEST_CLUSTER_BOOTSTRAP_SERVERS: "b1:9092,b2:9092",
    KAFKA_TEST_CLUSTER_USERNAME: "user",
    KAFKA_TEST_CLUSTER_PASSWORD: "12345",
  });
  assert.deepEqual(Object.fromEntries(readSection(config, "broker", env) ?? []), {
    "bootstrap.servers": "b1:9092,b2:9092",
    "sasl.mechanism": "PLAIN",
    "security.protocol": "SASL_SSL",
    "sasl.username": "user",
    "sasl.password": "12345",
  });
  assert.equal(readSection(config, "consumer", env)?.get("fetch.min.bytes"), "100000");
  assert.equal(readSection(config, "consumer", env)?.get("enable.auto.commit"), "False");
  assertConfigError(
    () => readSection(config, "broker", envOf({ KAFKA_TEST_CLUSTER_BOOTSTRAP_SERVERS: "b" })),
    "KAFKA_TEST_CLUSTER_USERNAME",
  );
});
