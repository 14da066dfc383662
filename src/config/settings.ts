/**
 * Everything a run needs, resolved once at the boundary from the command line, the config file
 * and the environment: which config file, which sections, the Kafka options, the group id and
 * the output directory.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import type { CliOptions } from "./args.ts";
import { BUILTIN_CONFIGS } from "./builtin_configs.ts";
import { ConfigError, parseConfig, readSection } from "./config_file.ts";
import { type KafkaSettings, kafkaSettings } from "./kafka_options.ts";

/** Resolved settings of one run. */
export interface RunSettings {
  /** Where the config came from (a path, or `built-in NAME`). */
  configSource: string;
  kafka: KafkaSettings;
  /** The consumer group id to use. */
  groupId: string;
  /** True when the group id was made up for this run. */
  groupIdGenerated: boolean;
  /** Absolute output directory (created). */
  outputDir: string;
  /** `compression.type` of `[producer]` (for heartbeat and log messages), if it names a codec. */
  producerCompression: "gzip" | "snappy" | "lz4" | "zstd" | undefined;
}

/** Reads environment variables (passed in for tests). */
export type Env = (name: string) => string | undefined;

/**
 * Finds the config text as the reference does: a name without a `.` gets `.config`; a path that
 * exists is used; otherwise a built-in config of that name.
 *
 * @throws {ConfigError} when neither exists.
 */
export async function loadConfigText(
  arg: string,
  cwd: string,
): Promise<{ text: string; source: string }> {
  const name = arg.includes(".") ? arg : `${arg}.config`;
  const path = isAbsolute(name) ? name : resolve(cwd, name);
  try {
    return { text: await Deno.readTextFile(path), source: path };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new ConfigError(
        `Cannot read config file ${path}: ${error instanceof Error ? error.message : error}`,
      );
    }
  }
  const builtin = BUILTIN_CONFIGS.get(name.replace(/\.config$/, ""));
  if (builtin !== undefined) {
    return { text: builtin, source: `built-in config "${name.replace(/\.config$/, "")}"` };
  }
  throw new ConfigError(
    `Cannot find the config file "${arg}": no file ${path}, and no built-in config of that name (built-in: ${
      [...BUILTIN_CONFIGS.keys()].join(", ")
    })`,
  );
}

/** Creates the output directory (with parents) and returns its absolute path. */
export async function prepareOutputDir(dir: string, cwd: string): Promise<string> {
  const path = resolve(cwd, dir);
  try {
    const info = await Deno.stat(path);
    if (!info.isDirectory) {
      throw new ConfigError(
        `The output directory ${path} exists but is not a directory; choose another path`,
      );
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(path, { recursive: true });
  }
  return path;
}

/**
 * Resolves the run's settings.
 *
 * @throws {ConfigError} for a config that cannot work.
 */
export async function resolveSettings(
  options: CliOptions,
  env: Env,
  cwd: string,
  newGroupId: () => string = () => crypto.randomUUID(),
): Promise<RunSettings> {
  const { text, source } = await loadConfigText(options.config, cwd);
  const config = parseConfig(text, source);
  if (config.sections.has("kafkacrypto")) {
    throw new ConfigError(
      `Cannot use ${source}: it has a [kafkacrypto] section, and encrypted topics are not supported yet; use a config without [kafkacrypto] for a plaintext topic`,
    );
  }
  const broker = readSection(config, "broker", env);
  if (!broker) {
    throw new ConfigError(
      `Cannot use ${source}: it has no [broker] section; add one with bootstrap.servers`,
    );
  }
  const consumer = readSection(config, "consumer", env) ?? new Map<string, string>();
  const merged = new Map([...broker, ...consumer]);
  const kafka = kafkaSettings(merged, source, (path) => Deno.readTextFileSync(resolve(cwd, path)));
  let groupId = options.consumerGroupId ?? kafka.groupId ?? "create_new";
  const generated = groupId.toLowerCase() === "create_new";
  if (generated) groupId = newGroupId();
  const outputDir = await prepareOutputDir(options.outputDir, cwd);
  let producerCompression: RunSettings["producerCompression"];
  if (options.heartbeatTopicName !== undefined || options.logTopicName !== undefined) {
    const codec = readSection(config, "producer", env)?.get("compression.type")?.trim()
      .toLowerCase();
    if (codec === "gzip" || codec === "snappy" || codec === "lz4" || codec === "zstd") {
      producerCompression = codec;
    }
  }
  return {
    configSource: source,
    kafka,
    groupId,
    groupIdGenerated: generated,
    outputDir,
    producerCompression,
  };
}
