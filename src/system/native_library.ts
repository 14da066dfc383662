/**
 * Loading a system library through FFI, only where the program is allowed to: the optional native
 * paths (dropping pages from the page cache, sync groups, SHA-512 from libcrypto) use it, and each
 * has a portable fallback.
 *
 * @module
 */

/** Where libc is on the Linux systems the binary is built for (`--allow-ffi` may name these). */
export const LIBC_PATHS = [
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/lib/aarch64-linux-gnu/libc.so.6",
  "/lib64/libc.so.6",
  "/usr/lib64/libc.so.6",
  "/usr/lib/libc.so.6",
];

/**
 * The first of `names` (tried by name, with an unscoped `--allow-ffi`) or of `paths` (absolute,
 * each tried only if `--allow-ffi` allows it) that loads with all of `symbols`; `undefined` where
 * none does, on systems other than Linux on x86-64 or ARM64, and without FFI permission. Never
 * prompts.
 *
 * It refers to nothing outside itself: the hashing worker runs its source.
 */
export function openNativeLibrary<S extends Deno.ForeignLibraryInterface>(
  names: readonly string[],
  paths: readonly string[],
  symbols: S,
): Deno.DynamicLibrary<S> | undefined {
  if (Deno.build.os !== "linux" || !["x86_64", "aarch64"].includes(Deno.build.arch)) {
    return undefined;
  }
  const granted = (path?: string) => {
    try {
      const descriptor: Deno.PermissionDescriptor = path === undefined
        ? { name: "ffi" }
        : { name: "ffi", path };
      return Deno.permissions.querySync(descriptor).state === "granted";
    } catch {
      return false;
    }
  };
  const candidates = granted() ? [...names, ...paths] : paths.filter((path) => granted(path));
  for (const candidate of candidates) {
    try {
      return Deno.dlopen(candidate, symbols);
    } catch {
      // Not there, or without one of the symbols: the next one.
    }
  }
  return undefined;
}
