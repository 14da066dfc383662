/**
 * Rebuild data files streamed through Apache Kafka as OpenMSIStream chunk messages.
 *
 * The command-line program is `cli.ts` (`DataFileDownloadDirectory`); this module is the library
 * beneath it: the chunk wire format, the uploader's chunker and producer, config files, and the
 * {@linkcode Downloader} that runs a consumer group and rebuilds files durably.
 *
 * @example Decode a chunk message and check where it would be written
 * ```ts
 * import { decodeChunk, encodeChunk, relativeTarget, sha512 } from "./mod.ts";
 *
 * const data = new TextEncoder().encode("hello");
 * const value = encodeChunk({
 *   filename: "hello.txt",
 *   fileHash: sha512(data),
 *   chunkHash: sha512(data),
 *   chunkOffsetWrite: 0,
 *   chunkI: 1,
 *   nTotalChunks: 1,
 *   subdirStr: "greetings",
 *   filenameAppend: "",
 *   data,
 *   fileMtime: 1700000000,
 * });
 * const chunk = decodeChunk(value);
 * console.log(relativeTarget(chunk.subdirStr, chunk.filename, chunk.filenameAppend).path);
 * // greetings/hello.txt
 * ```
 *
 * @module
 */
export {
  bytesEqual,
  ChunkDecodeError,
  chunkKey,
  type DataFileChunk,
  decodeChunk,
  encodeChunk,
  fileKey,
  toHex,
} from "./src/wire/chunk_codec.ts";
export { createSha512, sha512, type Sha512Stream } from "./src/wire/sha512.ts";
export {
  chunksOfFile,
  DEFAULT_CHUNK_SIZE,
  type Keying,
  listFiles,
  produceFiles,
  type ProduceOptions,
} from "./src/wire/chunk_producer.ts";
export { registerCodecs } from "./src/wire/compression.ts";
export {
  ConfigError,
  type ConfigFile,
  expandEnv,
  parseConfig,
  readSection,
} from "./src/config/config_file.ts";
export { BUILTIN_CONFIGS } from "./src/config/builtin_configs.ts";
export {
  AUTO_COMMIT_WARNING,
  type KafkaSettings,
  kafkaSettings,
} from "./src/config/kafka_options.ts";
export { type CliOptions, helpText, parseArgs, UsageError } from "./src/config/args.ts";
export { resolveSettings, type RunSettings } from "./src/config/settings.ts";
export { Downloader, type DownloaderOptions, type DownloadStatus } from "./src/kafka/downloader.ts";
export { BadChunkError, type ChunkOutcome, FileAssembler } from "./src/store/file_assembler.ts";
export { decideGeneration, type Generation } from "./src/store/generation.ts";
export { createKafka } from "./src/kafka/kafka_client.ts";
export { Level, Logger, type LoggerOptions } from "./src/console/logger.ts";
export { compilePythonRegex, pythonMatch } from "./src/config/python_regex.ts";
export { Quarantine } from "./src/store/quarantine.ts";
export {
  LOG_FILE_NAME,
  type RelativeTarget,
  relativeTarget,
  STATE_DIR_NAME,
  UnsafePathError,
} from "./src/store/safe_path.ts";
