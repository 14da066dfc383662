/**
 * Installs the reference implementation, OpenMSIStream 1.8.8 from PyPI, into a
 * project-local virtual environment at `<repo>/.venv/openmsistream`, and offers
 * small helpers that run its console scripts against a local broker. Interop
 * tests use them as the reference producer and consumer.
 *
 * ## Install
 *
 * Call `ensureOpenMsiStream()`, or run `deno task venv`. It works like this:
 *
 * 1. It checks the system libraries and installs any that are missing with
 *    `apt-get update` then `apt-get install -y`, when apt-get exists (this needs
 *    root). Without apt it prints a clear message and goes on.
 *    - `libsodium23`: needed. `import openmsistream` imports kafkacrypto, which
 *      imports pysodium. pysodium `dlopen`s libsodium at import time. Without
 *      the library, every console script (even `-h`) crashes with
 *      `OSError`/`ValueError: Unable to find libsodium`.
 *    - `python3-venv`: only needed when `python3` is Debian's own; Pythons
 *      built with `venv` and `ensurepip` (such as pyenv's) need nothing.
 *    - Nothing else. confluent-kafka ships manylinux wheels with librdkafka
 *      (lz4, ssl) bundled. The only sdists, `pysodium` and `atomicwrites`, are
 *      pure Python and need no compiler.
 * 2. It runs `python3 -m venv .venv/openmsistream`. Set `OPENMSISTREAM_PYTHON`
 *    to use a different interpreter.
 * 3. It runs `pip install openmsistream==1.8.8`, with the transitive
 *    dependencies pinned to a known-good set (see {@link PINNED_DEPENDENCIES}).
 *    If the pinned set cannot be installed, it retries without the pins. This
 *    happens only when the marker file `.venv/openmsistream/.openmsistream-1.8.8.installed`
 *    is missing. The pip log is kept in `.venv/openmsistream/pip-install.log`.
 * 4. It checks that `UploadDataFile -h`, `DataFileUploadDirectory -h` and
 *    `DataFileDownloadDirectory -h` exit 0.
 *
 * A lock file (`.venv/openmsistream.lock`) keeps parallel test processes from
 * installing at the same time. A fresh install takes about 18 s on 2 cores with
 * a cold pip cache (`PIP_NO_CACHE_DIR=1`), and about 16 s with a warm one.
 *
 * ## Config
 *
 * The shipped config is
 * `.venv/openmsistream/lib/python3.11/site-packages/openmsistream/kafka_wrapper/config_files/local_broker_test.config`.
 * Pass `--config local_broker_test` to use it. A name without a `.` gets
 * `.config` appended. It is looked up in the current directory first, then in
 * the package's `config_files/`. Its content:
 *
 * ```ini
 * [broker]
 * bootstrap.servers = $LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS
 *
 * [producer]
 * batch.size       = 2000000
 * linger.ms        = 100
 * compression.type = lz4
 * key.serializer   = StringSerializer
 * value.serializer = DataFileChunkSerializer
 *
 * [consumer]
 * group.id           = create_new
 * auto.offset.reset  = earliest
 * enable.auto.commit = False
 * fetch.min.bytes    = 100000
 * key.deserializer   = StringDeserializer
 * value.deserializer = DataFileChunkDeserializer
 * ```
 *
 * `ConfigFileParser.get_config_dict_for_groups` reads a value that starts with
 * `$` through `os.path.expandvars`. If the variable is unset, the expansion
 * does not change the text, and the program raises
 * `ValueError: ERROR: Expanding $LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS in … failed (must be set on system)`
 * (a traceback, exit 1). A set but empty variable is accepted as
 * `bootstrap.servers = ""`. Only a value that is entirely one `$VAR` is checked.
 * Never set `OPENMSISTREAM_CONFIG_FILE_DIR`: it makes every script crash at
 * import (`'str' object has no attribute 'resolve'`). The helpers below remove
 * it from the child's environment.
 *
 * ## Command lines (flags checked against the installed 1.8.8 source)
 *
 * All three scripts log to **stderr** as `[<Program> YYYY-MM-DD HH:MM:SS] msg`.
 * librdkafka writes `%N|…` lines to stderr too. The scripts create no topics,
 * so the broker must auto-create them or the test must create them first.
 *
 * **Startup lookup: both long-running programs, (b) and (c), need the broker up
 * and the topic already created.** `DataFileUploadDirectory` is also a
 * `ConsumerAndProducerGroup`. So, like the downloader, its constructor runs
 * `ConsumerGroup.__get_group_starting_offsets`, before any log line:
 * - It calls `AdminClient(broker).list_topics(topic=T)`, which has no timeout.
 *   With no broker it blocks forever. The stdin `q` is not acted on then,
 *   because the main loop has not started; only a signal ends it.
 * - It then calls the kafka-python `KafkaAdminClient.list_consumer_group_offsets(group)`.
 * - A topic with 0 partitions (missing) raises. The lookup is retried 10 times
 *   with no sleep, then it fails with a traceback (exit 1).
 *
 * Create the topic first, then wait for the "ready" line:
 * - uploader: `Will upload files in<dir> to the T topic as N-byte chunks using K threads`
 *   (the reference really has no space after `in`);
 * - downloader: `Will reconstruct files from messages in the T topic using N threads`.
 *
 * (a) One file. The process **exits by itself**:
 * ```sh
 * LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
 *   UploadDataFile <file> --config local_broker_test --topic_name T --chunk_size 16384 [--n_threads 2]
 * ```
 * - Options: `--config`, `--topic_name`, `--chunk_size` (a power of two, otherwise
 *   an argparse error, exit 2; default 524288), `--n_threads` (default 2),
 *   `--logger_stream_level`, `--logger_file_level`, `--logger_file_path`.
 * - It does not read stdin. It logs INFO `Uploading <abs file> to T in N-byte chunks using K threads....`,
 *   then `Waiting for all enqueued messages to be delivered (this may take a moment)....`.
 *   After `flush(timeout=-1)` it logs `Done uploading <abs file>` and exits 0.
 * - Completion signal: the `Done uploading` line plus exit 0. A delivery failure
 *   is only logged (`ERROR: … MESSAGE DROPPED …`); the exit code stays 0.
 * - With no broker reachable it **hangs** in `flush(-1)` until librdkafka's
 *   `message.timeout.ms` (300 s) runs out. Always use a timeout.
 * - A missing file raises FileNotFoundError (traceback, exit 1), not an
 *   argparse error.
 * - When it logs a warning or an error, it may write `UploadDataFile.log` next
 *   to the file. Use `--logger_file_path` to put the log elsewhere.
 *
 * (b) A watched directory. It runs until it reads `q` from stdin:
 * ```sh
 * LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS=… DataFileUploadDirectory <dir> --config local_broker_test \
 *   --topic_name T --upload_existing [--chunk_size 16384] [--watchdog_lag_time 3] \
 *   [--upload_regex RE] [--n_threads 2] [--queue_max_size 500] [--use_polling_observer] \
 *   [--logger_stream_level debug]
 * ```
 * - `<dir>` must exist (`existing_dir`).
 * - `--upload_existing` (store_true) scrapes the files already there at
 *   startup. Otherwise only files added later are uploaded.
 * - `--watchdog_lag_time` is an int, in seconds (default 3): a file must stay
 *   unmodified that long before it is chunked.
 * - `--upload_regex` is compiled with `re.compile` and applied with `re.match`
 *   to the relative path. The default is `^((?!(\.|.*.log))).*$`.
 * - `--topic_name T` becomes `producer_topic_name`, which is what is actually
 *   used, unless `--producer_topic_name` is given and is not `test`.
 * - It writes its log and registries to `<dir>/LOGS/`:
 *   `DataFileUploadDirectory.log`, `upload_to_T_in_progress.csv`, and
 *   `uploaded_to_T.csv`.
 * - **Finished signal:** when a file's last chunk is acknowledged, a row is
 *   force-dumped at once to `LOGS/uploaded_to_T_p<producer id in hex>.csv`
 *   (1.8.8 writes e.g. `_p7fee8582dc10`, without `0x`). These
 *   per-producer files are merged into `uploaded_to_T.csv` at startup and
 *   shutdown. The files are `;`-separated with the header
 *   `filename;rel_filepath;n_chunks;started;completed`, and each field is a
 *   Python `repr` (e.g. `'sub/x.dat'`). See {@link readUploadedFiles}.
 * - Also, at `--logger_stream_level debug` it logs
 *   `<rel path> has been fully produced to the "T" topic as N messages`.
 * - Stop: write `q` (and a newline) to stdin. A daemon thread sleeps 1 s, then
 *   reads ONE character; the main loop then shuts down. It stops the watchdog,
 *   finishes enqueueing partly enqueued files, joins the producer threads and
 *   runs `flush(-1)`. It logs `Will quit after all currently enqueued files are done being transferred.`,
 *   `Done listening to <dir> for files to upload` and
 *   `The following N file(s) was/were uploaded between … and …:` (or
 *   `No files were uploaded between …`), then exits 0.
 * - SIGTERM kills it at once without cleanup. The Python default handler
 *   runs, so the exit code is 143.
 *
 * (c) The reference downloader. It runs until it reads `q` from stdin:
 * ```sh
 * LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS=… DataFileDownloadDirectory <out> --config local_broker_test \
 *   --topic_name T --consumer_group_id G [--n_threads 2] [--download_regex RE] \
 *   [--logger_stream_level debug] [--logger_file_path <file or dir>]
 * ```
 * - `<out>` is created if missing.
 * - Its log file defaults to `<out>/DataFileDownloadDirectory.log`. Pass
 *   `--logger_file_path` to keep the output tree clean.
 * - At INFO level it logs `Listening for files to reconstruct in <out>` and
 *   `Will reconstruct files from messages in the T topic using N thread(s)`.
 * - At DEBUG level it logs `File <rel path> successfully reconstructed from stream`
 *   for each file.
 * - `q` makes it log `File reconstructor writing to <out> shut down` and
 *   `<n> total messages were consumed…`, then exit 0. Each worker can first
 *   finish a poll of up to 5 s and is joined for at most 10 s.
 *
 * The helpers below spawn these commands with `Deno.Command`, with stdin piped,
 * `LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS` set from `bootstrapServers`, and
 * `PYTHONUNBUFFERED=1`. They capture stdout and stderr as lines. Set the
 * environment variable `OPENMSISTREAM_ECHO=1` (or pass `echo: true`) to mirror
 * that output to the console.
 *
 * @module
 */

/** The pinned OpenMSIStream version. */
export const OPENMSISTREAM_VERSION = "1.8.8";

/**
 * The transitive dependency set known to install with openmsistream 1.8.8 on
 * CPython 3.11 / Debian 12 x86_64. It is passed as a
 * pip constraints file so that the reference stays stable. If it cannot be
 * installed (e.g. with another Python version), the install retries without it.
 */
export const PINNED_DEPENDENCIES: readonly string[] = [
  "atomicwrites==1.4.1",
  "attrs==26.1.0",
  "boto3==1.44.8",
  "botocore==1.44.8",
  "certifi==2026.10.19.post1",
  "charset-normalizer==3.5.3",
  "click==8.5.1",
  "confluent-kafka==2.16.1",
  "contourpy==1.3.3",
  "cycler==0.12.1",
  "dirhash==0.5.0",
  "diskcache==5.6.3",
  "fonttools==4.68.0",
  "girder-client==5.0.21",
  "idna==3.20",
  "jmespath==1.1.0",
  "kafka-python==2.3.3",
  "kafkacrypto==0.9.11.3",
  "kiwisolver==1.5.1",
  "matplotlib==3.11.2",
  "methodtools==0.4.7",
  "msgpack==1.2.4",
  "numpy==2.4.6",
  "openmsitoolbox==1.2.4.post1",
  "packaging==26.4",
  "pathspec==1.1.1",
  "pillow==13.0.0",
  "pyparsing==3.3.3",
  "pysodium==0.7.19",
  "python-dateutil==2.9.0.post0",
  "requests==2.34.2",
  "requests-toolbelt==1.0.0",
  "s3transfer==0.19.3",
  "scantree==0.0.4",
  "six==1.17.0",
  "urllib3==2.8.0",
  "watchdog==7.1.0",
  "wirerope==1.0.0",
];

/** The three console scripts the helpers run. */
export const CONSOLE_SCRIPTS = [
  "UploadDataFile",
  "DataFileUploadDirectory",
  "DataFileDownloadDirectory",
] as const;

/** The name of a console script from {@link CONSOLE_SCRIPTS}. */
export type ConsoleScript = typeof CONSOLE_SCRIPTS[number];

/** The absolute path of the repository root (the parent of `tools/`). */
export const REPO_ROOT: string = decodeURIComponent(new URL("../", import.meta.url).pathname)
  .replace(/\/$/, "");

/** The absolute path of the virtual environment. */
export const VENV_DIR: string = `${REPO_ROOT}/.venv/openmsistream`;

const MARKER_FILE = `${VENV_DIR}/.openmsistream-${OPENMSISTREAM_VERSION}.installed`;
const LOCK_FILE = `${REPO_ROOT}/.venv/openmsistream.lock`;

/** Paths into the installed virtual environment. */
export interface OpenMsiStreamVenv {
  /** The venv's python interpreter. */
  python: string;
  /** The venv's `bin` directory, which holds the console scripts. */
  bin: string;
}

/** Options for {@link ensureOpenMsiStream}. */
export interface EnsureOptions {
  /** Print progress lines. Default true. */
  verbose?: boolean;
  /**
   * Run the three `-h` checks even when the marker says the venv is already
   * installed. They always run after a fresh install. Default false.
   */
  verify?: boolean;
}

function log(verbose: boolean, msg: string): void {
  if (verbose) console.error(msg);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. A missing executable gives code 127 instead of a throw. */
async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; inherit?: boolean } = {},
): Promise<CmdResult> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: opts.inherit ? "inherit" : "piped",
      stderr: opts.inherit ? "inherit" : "piped",
      ...(opts.env ? { env: opts.env } : {}),
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: opts.inherit ? "" : dec.decode(out.stdout),
      stderr: opts.inherit ? "" : dec.decode(out.stderr),
    };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd}: not found` };
    }
    throw e;
  }
}

/**
 * Returns the environment for a child Python process: the current environment
 * without `OPENMSISTREAM_CONFIG_FILE_DIR` (which crashes the reference at
 * import), plus `PYTHONUNBUFFERED=1` and the given extras.
 */
export function pythonEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = Deno.env.toObject();
  delete env["OPENMSISTREAM_CONFIG_FILE_DIR"];
  delete env["PYTHONHOME"];
  env["PYTHONUNBUFFERED"] = "1";
  return { ...env, ...extra };
}

function basePython(): string {
  return Deno.env.get("OPENMSISTREAM_PYTHON") ?? "python3";
}

/**
 * Checks for the system packages OpenMSIStream needs, and installs the missing
 * ones with apt-get (after `apt-get update`). Returns the Debian package names
 * that were missing. When apt-get is unavailable, or the install fails, it
 * prints a message and goes on; the `-h` checks then show what is broken.
 */
export async function ensureSystemPackages(verbose = true): Promise<string[]> {
  const py = basePython();
  const missing: string[] = [];
  const pyCheck = await run(py, ["-c", "import sys; print(sys.version)"]);
  if (pyCheck.code !== 0) {
    missing.push("python3", "python3-venv");
  } else {
    const venvCheck = await run(py, ["-c", "import venv, ensurepip"]);
    if (venvCheck.code !== 0) missing.push("python3-venv");
  }
  // pysodium loads libsodium with ctypes.util.find_library('sodium') at import time.
  const sodiumProbe = pyCheck.code === 0 ? py : "python3";
  const sodium = await run(sodiumProbe, [
    "-c",
    "import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library('sodium') else 1)",
  ]);
  if (sodium.code !== 0) {
    // Fall back to dpkg in case Python itself is missing.
    const dpkg = await run("dpkg-query", ["-W", "-f=${Status}", "libsodium23"]);
    if (!(dpkg.code === 0 && dpkg.stdout.includes("install ok installed"))) {
      missing.push("libsodium23");
    }
  }
  if (missing.length === 0) return missing;

  const aptProbe = await run("apt-get", ["--version"]);
  if (aptProbe.code !== 0) {
    console.error(
      `openmsistream_venv: missing system packages (${missing.join(", ")}) and apt-get is ` +
        `not available; install them by hand (libsodium is required: pysodium loads it at ` +
        `import time).`,
    );
    return missing;
  }
  log(verbose, `Installing system packages with apt-get: ${missing.join(" ")}`);
  const aptEnv = { ...Deno.env.toObject(), DEBIAN_FRONTEND: "noninteractive" };
  const upd = await run("apt-get", ["update"], { env: aptEnv, inherit: verbose });
  if (upd.code !== 0) {
    console.error(`openmsistream_venv: 'apt-get update' failed (exit ${upd.code}); trying install`);
  }
  const inst = await run(
    "apt-get",
    ["install", "-y", "--no-install-recommends", ...missing],
    { env: aptEnv, inherit: verbose },
  );
  if (inst.code !== 0) {
    console.error(
      `openmsistream_venv: 'apt-get install ${missing.join(" ")}' failed (exit ${inst.code}); ` +
        `it needs root. Continuing; the OpenMSIStream scripts may fail at import.\n${inst.stderr}`,
    );
  }
  return missing;
}

/** Runs `<script> -h` for each console script; throws if any exits non-zero. */
export async function verifyConsoleScripts(bin: string = `${VENV_DIR}/bin`): Promise<void> {
  const results = await Promise.all(
    CONSOLE_SCRIPTS.map(async (s) => ({
      s,
      r: await run(`${bin}/${s}`, ["-h"], { env: pythonEnv() }),
    })),
  );
  const bad = results.filter(({ r }) => r.code !== 0);
  if (bad.length > 0) {
    const detail = bad.map(({ s, r }) => `${s} -h exited ${r.code}:\n${r.stderr.slice(-2000)}`)
      .join("\n");
    throw new Error(`OpenMSIStream console scripts failed:\n${detail}`);
  }
}

async function pipInstall(python: string, constrained: boolean, logPath: string): Promise<number> {
  const args = [
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--no-input",
    `openmsistream==${OPENMSISTREAM_VERSION}`,
  ];
  if (constrained) {
    const constraints = `${VENV_DIR}/constraints.txt`;
    await Deno.writeTextFile(constraints, PINNED_DEPENDENCIES.join("\n") + "\n");
    args.push("-c", constraints);
  }
  const r = await run(python, args, { env: pythonEnv() });
  await Deno.writeTextFile(
    logPath,
    `$ ${python} ${args.join(" ")}\n(exit ${r.code})\n${r.stdout}\n${r.stderr}\n`,
    { append: true },
  );
  return r.code;
}

/**
 * Makes sure OpenMSIStream 1.8.8 is installed in `<repo>/.venv/openmsistream`.
 * The first call installs it (this takes about 16–18 s). Later calls only check the marker
 * file and are cheap. Safe to call from parallel processes, which wait on a
 * lock file.
 *
 * @returns the venv's python and its `bin` directory, which holds `UploadDataFile`,
 *   `DataFileUploadDirectory` and `DataFileDownloadDirectory`.
 * @throws if the venv cannot be created, pip fails, or a console script's `-h` fails.
 */
export async function ensureOpenMsiStream(opts: EnsureOptions = {}): Promise<OpenMsiStreamVenv> {
  const verbose = opts.verbose ?? true;
  const bin = `${VENV_DIR}/bin`;
  const python = `${bin}/python`;
  const ready = async () =>
    await exists(MARKER_FILE) && await exists(python) &&
    (await Promise.all(CONSOLE_SCRIPTS.map((s) => exists(`${bin}/${s}`)))).every(Boolean);

  if (await ready()) {
    if (opts.verify) await verifyConsoleScripts(bin);
    return { python, bin };
  }

  await Deno.mkdir(`${REPO_ROOT}/.venv`, { recursive: true });
  const lock = await Deno.open(LOCK_FILE, { create: true, write: true });
  try {
    await lock.lock(true);
    if (await ready()) { // another process finished the install while we waited
      if (opts.verify) await verifyConsoleScripts(bin);
      return { python, bin };
    }
    const t0 = performance.now();
    log(
      verbose,
      `Installing OpenMSIStream ${OPENMSISTREAM_VERSION} into .venv/openmsistream (once)…`,
    );
    await ensureSystemPackages(verbose);

    const base = basePython();
    // --clear: start from a clean tree if an earlier install was interrupted.
    const venv = await run(base, ["-m", "venv", "--clear", VENV_DIR]);
    if (venv.code !== 0) {
      throw new Error(
        `'${base} -m venv ${VENV_DIR}' failed (exit ${venv.code}): ${venv.stderr}\n` +
          `(on Debian's python3 this needs the python3-venv package)`,
      );
    }
    const logPath = `${VENV_DIR}/pip-install.log`;
    let constrained = true;
    let code = await pipInstall(python, true, logPath);
    if (code !== 0) {
      console.error(
        `openmsistream_venv: pinned install failed (see ${logPath}); retrying without the pins`,
      );
      constrained = false;
      code = await pipInstall(python, false, logPath);
    }
    if (code !== 0) {
      const tail = (await Deno.readTextFile(logPath)).slice(-3000);
      throw new Error(`pip install openmsistream==${OPENMSISTREAM_VERSION} failed:\n${tail}`);
    }
    await verifyConsoleScripts(bin);
    const pyVersion = (await run(python, ["-c", "import sys; print(sys.version.split()[0])"]))
      .stdout.trim();
    const seconds = (performance.now() - t0) / 1000;
    await Deno.writeTextFile(
      MARKER_FILE,
      JSON.stringify(
        {
          openmsistream: OPENMSISTREAM_VERSION,
          python: pyVersion,
          constrained,
          installedAt: new Date().toISOString(),
          installSeconds: Math.round(seconds * 10) / 10,
        },
        null,
        2,
      ) + "\n",
    );
    log(verbose, `OpenMSIStream ${OPENMSISTREAM_VERSION} ready in ${seconds.toFixed(1)} s`);
    return { python, bin };
  } finally {
    lock.close(); // closing releases the lock
  }
}

/**
 * Returns the absolute path of a config file shipped in the installed package,
 * e.g. `local_broker_test` →
 * `.venv/openmsistream/lib/python3.11/site-packages/openmsistream/kafka_wrapper/config_files/local_broker_test.config`.
 */
export async function shippedConfigPath(name = "local_broker_test"): Promise<string> {
  const lib = `${VENV_DIR}/lib`;
  for await (const e of Deno.readDir(lib)) {
    if (!e.isDirectory || !e.name.startsWith("python")) continue;
    const p =
      `${lib}/${e.name}/site-packages/openmsistream/kafka_wrapper/config_files/${name}.config`;
    if (await exists(p)) return p;
  }
  throw new Error(`${name}.config not found under ${lib}; run ensureOpenMsiStream() first`);
}

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

/** Options shared by the three run helpers. */
export interface CommonRunOptions {
  /** The value for `LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS`, e.g. `127.0.0.1:9092`. */
  bootstrapServers: string;
  /** `--topic_name`. */
  topic: string;
  /** `--config`: a name from the package's config dir, or a path. Default `local_broker_test`. */
  config?: string;
  /** `--logger_stream_level`. The default is `debug` for the long-running programs and `info` for UploadDataFile. */
  loggerStreamLevel?: string;
  /** `--logger_file_path`: a file, or a directory for `<Program>.log`. */
  loggerFilePath?: string;
  /** `--n_threads`. */
  nThreads?: number;
  /** Extra arguments, appended at the end. */
  extraArgs?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The working directory. Default: the current one. */
  cwd?: string;
  /** Mirror the child's output to this process's stderr. Default: `OPENMSISTREAM_ECHO=1`. */
  echo?: boolean;
}

/** How a child process ended. */
export interface ExitInfo {
  /** The exit code (128+n when killed by a signal). */
  code: number;
  /** The signal that killed it, if any. */
  signal: Deno.Signal | null;
  /** True if we had to kill it because a timeout ran out. */
  timedOut: boolean;
  /** All captured stdout and stderr lines, interleaved in arrival order. */
  output: string;
}

/** A running OpenMSIStream program. */
export interface PythonProcessHandle {
  /** The process id. */
  readonly pid: number;
  /** The underlying child process. */
  readonly child: Deno.ChildProcess;
  /** The full command line, for messages. */
  readonly commandLine: string;
  /** The output captured so far (stdout and stderr lines, interleaved). */
  output(): string;
  /**
   * Resolves with the first captured line that matches `pattern` (already
   * printed, or printed later). Rejects after `timeoutMs`, or when the process
   * exits without printing it.
   */
  waitForLine(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Writes text to the child's stdin. It reads one character per second. */
  send(text: string): Promise<void>;
  /** Resolves when the process exits, however that happens. */
  readonly exited: Promise<ExitInfo>;
  /**
   * Stops the program cleanly: writes `q\n` to stdin, then waits up to
   * `timeoutMs` (default 60 s) for it to exit. If it is still running after
   * that, it gets SIGTERM, then SIGKILL 5 s later, and `timedOut` is true.
   * The program reads one stdin character per second, and only after its
   * startup offset lookup is done. The clean path therefore takes over 1 s,
   * plus the final flush, commit and close.
   */
  stop(timeoutMs?: number): Promise<ExitInfo>;
  /** Kills the program at once (SIGKILL). No cleanup happens in the child. */
  kill(): Promise<ExitInfo>;
}

function echoDefault(): boolean {
  try {
    return Deno.env.get("OPENMSISTREAM_ECHO") === "1";
  } catch {
    return false;
  }
}

function commonArgs(o: CommonRunOptions, defaultLevel: string): string[] {
  const args = ["--config", o.config ?? "local_broker_test", "--topic_name", o.topic];
  args.push("--logger_stream_level", o.loggerStreamLevel ?? defaultLevel);
  if (o.loggerFilePath !== undefined) args.push("--logger_file_path", o.loggerFilePath);
  if (o.nThreads !== undefined) args.push("--n_threads", String(o.nThreads));
  return args;
}

/** Spawns a console script with stdin piped and its output captured. */
async function spawnScript(
  script: ConsoleScript,
  args: string[],
  o: CommonRunOptions,
): Promise<PythonProcessHandle> {
  const { bin } = await ensureOpenMsiStream({ verbose: true });
  const exe = `${bin}/${script}`;
  const env = pythonEnv({
    LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS: o.bootstrapServers,
    ...(o.env ?? {}),
  });
  const child = new Deno.Command(exe, {
    args,
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
  }).spawn();
  const echo = o.echo ?? echoDefault();
  const lines: string[] = [];
  const listeners = new Set<(line: string | null) => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    const push = (line: string) => {
      lines.push(line);
      if (echo) console.error(`[py ${script}] ${line}`);
      for (const l of listeners) l(line);
    };
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        push(buf.slice(0, i).replace(/\r$/, ""));
        buf = buf.slice(i + 1);
      }
    }
    if (buf.length > 0) push(buf);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const writer = child.stdin.getWriter();
  let stdinOpen = true;
  let timedOut = false;
  const exited: Promise<ExitInfo> = (async () => {
    const status = await child.status;
    await pumps.catch(() => {});
    for (const l of listeners) l(null);
    if (stdinOpen) {
      stdinOpen = false;
      await writer.close().catch(() => {});
    }
    return {
      code: status.code,
      signal: status.signal,
      timedOut,
      output: lines.join("\n"),
    };
  })();
  const commandLine = [exe, ...args].join(" ");

  const waitForLine = (pattern: RegExp | string, timeoutMs = 60_000): Promise<string> => {
    const test = (l: string) => typeof pattern === "string" ? l.includes(pattern) : pattern.test(l);
    const already = lines.find(test);
    if (already !== undefined) return Promise.resolve(already);
    return new Promise<string>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        listeners.delete(listener);
      };
      const listener = (l: string | null) => {
        if (l === null) {
          done();
          reject(new Error(`${script} exited before printing ${pattern}\n${lines.join("\n")}`));
        } else if (test(l)) {
          done();
          resolve(l);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from ${script}`));
      }, timeoutMs);
      listeners.add(listener);
    });
  };

  const send = async (text: string) => {
    if (!stdinOpen) throw new Error(`${script}: stdin is closed`);
    await writer.write(new TextEncoder().encode(text));
  };

  const killWith = (sig: Deno.Signal) => {
    try {
      child.kill(sig);
    } catch { /* already gone */ }
  };

  const stop = async (timeoutMs = 60_000): Promise<ExitInfo> => {
    if (stdinOpen) {
      try {
        await writer.write(new TextEncoder().encode("q\n"));
      } catch { /* process already gone */ }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => {
      timer = setTimeout(() => r("timeout"), timeoutMs);
    });
    const first = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    if (first !== "timeout") return first;
    timedOut = true;
    killWith("SIGTERM");
    const t2 = setTimeout(() => killWith("SIGKILL"), 5_000);
    const info = await exited;
    clearTimeout(t2);
    return { ...info, timedOut: true };
  };

  const kill = async (): Promise<ExitInfo> => {
    killWith("SIGKILL");
    return await exited;
  };

  return {
    pid: child.pid,
    child,
    commandLine,
    output: () => lines.join("\n"),
    waitForLine,
    send,
    exited,
    stop,
    kill,
  };
}

/** Options for {@link uploadFile}. */
export interface UploadFileOptions extends CommonRunOptions {
  /** The file to upload. Its chunks get `subdir_str == ""`. */
  file: string;
  /** `--chunk_size`, a power of two. Default 524288. */
  chunkSize?: number;
  /** Kill the uploader after this long. Default 120 s. With no broker it would hang for 300 s. */
  timeoutMs?: number;
}

/** The result of {@link uploadFile}. */
export interface UploadFileResult extends ExitInfo {
  /** True when it exited 0, printed `Done uploading`, and logged no `MESSAGE DROPPED` error. */
  ok: boolean;
}

/**
 * Runs `UploadDataFile <file> --config local_broker_test --topic_name T [--chunk_size N]`
 * to completion; the program exits by itself after flushing its producers.
 */
export async function uploadFile(opts: UploadFileOptions): Promise<UploadFileResult> {
  const args = [opts.file, ...commonArgs(opts, "info")];
  if (opts.chunkSize !== undefined) args.push("--chunk_size", String(opts.chunkSize));
  args.push(...(opts.extraArgs ?? []));
  const h = await spawnScript("UploadDataFile", args, opts);
  // It does not read stdin; close it so that nothing waits on us.
  await h.child.stdin.close().catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => {
    timer = setTimeout(() => r("timeout"), opts.timeoutMs ?? 120_000);
  });
  const first = await Promise.race([h.exited, timeout]);
  clearTimeout(timer);
  const info = first === "timeout" ? { ...(await h.kill()), timedOut: true } : first;
  const ok = info.code === 0 && !info.timedOut && /Done uploading /.test(info.output) &&
    !/MESSAGE DROPPED/.test(info.output);
  return { ...info, ok };
}

/** Options for {@link startUploadDirectory}. */
export interface UploadDirectoryOptions extends CommonRunOptions {
  /** The directory to watch. It must exist. Its `LOGS/` subdirectory gets the log and registries. */
  dir: string;
  /** `--upload_existing`. Default true. */
  uploadExisting?: boolean;
  /** `--chunk_size`, a power of two. */
  chunkSize?: number;
  /** `--watchdog_lag_time`, in whole seconds (default 3 in the reference). */
  watchdogLagTime?: number;
  /** `--upload_regex`, a Python regex applied with `re.match` to the relative path. */
  uploadRegex?: string;
  /** `--use_polling_observer`. */
  usePollingObserver?: boolean;
}

/**
 * Starts `DataFileUploadDirectory <dir> --config local_broker_test --topic_name T --upload_existing …`.
 * Call `stop()` to send `q` and wait for the clean shutdown. To know when files are
 * uploaded, use {@link waitForUploaded}, or `waitForLine(/has been fully produced/)`
 * (the default stream level here is debug).
 */
export async function startUploadDirectory(
  opts: UploadDirectoryOptions,
): Promise<PythonProcessHandle> {
  const args = [opts.dir, ...commonArgs(opts, "debug")];
  if (opts.uploadExisting ?? true) args.push("--upload_existing");
  if (opts.chunkSize !== undefined) args.push("--chunk_size", String(opts.chunkSize));
  if (opts.watchdogLagTime !== undefined) {
    args.push("--watchdog_lag_time", String(opts.watchdogLagTime));
  }
  if (opts.uploadRegex !== undefined) args.push("--upload_regex", opts.uploadRegex);
  if (opts.usePollingObserver) args.push("--use_polling_observer");
  args.push(...(opts.extraArgs ?? []));
  return await spawnScript("DataFileUploadDirectory", args, opts);
}

/** Options for {@link startPythonDownloader}. */
export interface PythonDownloaderOptions extends CommonRunOptions {
  /** `output_dir`. It is created if missing. */
  outputDir: string;
  /** `--consumer_group_id`. The reference default, `create_new`, makes a fresh uuid group. */
  consumerGroupId?: string;
  /** `--download_regex`. */
  downloadRegex?: string;
}

/**
 * Starts the reference `DataFileDownloadDirectory <out> --config local_broker_test
 * --topic_name T --consumer_group_id G`. Call `stop()` to send `q`. At the default
 * debug level, each finished file logs `File <rel> successfully reconstructed from stream`.
 * Unless `loggerFilePath` is given, the reference writes
 * `<out>/DataFileDownloadDirectory.log` into the output tree.
 */
export async function startPythonDownloader(
  opts: PythonDownloaderOptions,
): Promise<PythonProcessHandle> {
  const args = [opts.outputDir, ...commonArgs(opts, "debug")];
  if (opts.consumerGroupId !== undefined) {
    args.push("--consumer_group_id", opts.consumerGroupId);
  }
  if (opts.downloadRegex !== undefined) args.push("--download_regex", opts.downloadRegex);
  args.push(...(opts.extraArgs ?? []));
  return await spawnScript("DataFileDownloadDirectory", args, opts);
}

/** Parses a Python `repr` of a str, as written in the registry CSVs. */
function unrepr(field: string): string {
  const f = field.trim();
  if (f.length >= 2 && (f[0] === "'" || f[0] === '"') && f.at(-1) === f[0]) {
    return f.slice(1, -1).replace(/\\(['"\\])/g, "$1");
  }
  return f;
}

/** Splits one line of a `;`-separated CSV written with Python `csv` QUOTE_MINIMAL. */
function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur === "") quoted = true;
    else if (c === ";") {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Reads the relative paths (POSIX form) of the files that `DataFileUploadDirectory`
 * has recorded as fully produced to `topic`. It reads `<dir>/LOGS/uploaded_to_<topic>.csv`
 * and the per-producer `uploaded_to_<topic>_p….csv` files (`_p7fee8582dc10`; `_p0x…` is
 * accepted too).
 */
export async function readUploadedFiles(dir: string, topic: string): Promise<Set<string>> {
  const logs = `${dir}/LOGS`;
  const re = new RegExp(`^uploaded_to_${escapeRegExp(topic)}(_p(0x)?[0-9a-f]+(_[0-9_]+)?)?\\.csv$`);
  const done = new Set<string>();
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(logs));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return done;
    throw e;
  }
  for (const e of entries) {
    if (!e.isFile || !re.test(e.name)) continue;
    let text: string;
    try {
      text = await Deno.readTextFile(`${logs}/${e.name}`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue; // consolidated away meanwhile
      throw err;
    }
    const rows = text.split(/\r?\n/).filter((l) => l.trim() !== "");
    const header = splitCsvLine(rows[0] ?? "");
    const col = header.indexOf("rel_filepath");
    if (col < 0) continue;
    for (const row of rows.slice(1)) {
      const f = splitCsvLine(row)[col];
      if (f !== undefined) done.add(unrepr(f));
    }
  }
  return done;
}

/**
 * Polls `readUploadedFiles` every 250 ms until every path in `relPaths` is listed.
 * Throws after `timeoutMs` (default 60 s).
 */
export async function waitForUploaded(
  dir: string,
  topic: string,
  relPaths: readonly string[],
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await readUploadedFiles(dir, topic);
    const missing = relPaths.filter((p) => !done.has(p));
    if (missing.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for upload of: ${missing.join(", ")}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

if (import.meta.main) {
  const t0 = performance.now();
  const { python, bin } = await ensureOpenMsiStream({ verbose: true, verify: true });
  console.log(`python: ${python}`);
  console.log(`bin:    ${bin}`);
  console.log(`config: ${await shippedConfigPath("local_broker_test")}`);
  console.log(`ok (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
