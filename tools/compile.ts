/**
 * `deno task compile [--target TRIPLE]`: builds the single executable with the narrowest
 * permissions that can be fixed at compile time, into `dist/`.
 *
 * - `--allow-read`, `--allow-write`, `--allow-net` stay open: the output directory, the config and
 *   the brokers are known only at run time (the program itself confines its writes to the output
 *   directory);
 * - `--allow-env` names kafkajs's four variables, `LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS`, and the
 *   prefixes `KAFKA_*` and `DFDD_*`: a config's `$VAR`s must use one of them in the binary;
 * - `--allow-ffi` names only libc (`LIBC_PATHS`), whose `posix_fadvise` lets rebuilt bytes leave the
 *   page cache once they are on disk (`src/store/page_cache.ts`) and whose `syncfs` makes small
 *   files durable in groups (`src/store/sync_groups.ts`), and libcrypto
 *   (`LIBCRYPTO_PATHS`), whose SHA-512 is faster than the runtime's (`src/wire/sha512.ts`);
 * - no `--allow-sys` or `--allow-run`; `--no-prompt`.
 *
 * @module
 */

import { LIBC_PATHS } from "../src/system/native_library.ts";
import { LIBCRYPTO_PATHS } from "../src/wire/sha512.ts";

/** The environment variables the binary may read (`*`: any suffix). */
export const COMPILED_ENV = [
  "NODE_ENV",
  "KAFKAJS_LOG_LEVEL",
  "KAFKAJS_DEBUG_PROTOCOL_BUFFERS",
  "KAFKAJS_DEBUG_EXTENDED_PROTOCOL_BUFFERS",
  "LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS",
  "KAFKA_*",
  "DFDD_*",
];

/** The permission flags baked into the binary. */
export const COMPILED_PERMISSIONS = [
  "--no-prompt",
  "--allow-read",
  "--allow-write",
  "--allow-net",
  `--allow-env=${COMPILED_ENV.join(",")}`,
  `--allow-ffi=${[...LIBC_PATHS, ...LIBCRYPTO_PATHS].join(",")}`,
];

/**
 * V8 settings baked into the binary (and used by `deno task start` and the bench): a young
 * generation of at most 8 MiB per semi-space. V8's default lets it grow to several times that
 * while small records stream through, which cost ~35 MiB of peak RSS on 20,000 files of 4 KiB
 * (245-249 → 211-217 MiB, same times; see BENCHMARKS.md).
 */
export const V8_FLAGS = "--v8-flags=--max-semi-space-size=8";

/** The `deno compile` arguments for `target` (this machine's when undefined). */
export function compileArgs(target: string | undefined): string[] {
  const name = `DataFileDownloadDirectory${target ? `-${target}` : ""}${
    target?.includes("windows") ? ".exe" : ""
  }`;
  return [
    "compile",
    ...COMPILED_PERMISSIONS,
    V8_FLAGS,
    ...(target ? ["--target", target] : []),
    "--output",
    `dist/${name}`,
    "cli.ts",
  ];
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--target");
  const target = i >= 0 ? Deno.args[i + 1] : undefined;
  if (i >= 0 && !target) {
    console.error("usage: deno task compile [--target TRIPLE]");
    Deno.exit(2);
  }
  const args = compileArgs(target);
  console.error(`deno ${args.join(" ")}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: new URL("..", import.meta.url).pathname,
  }).spawn().status;
  Deno.exit(code);
}
