/**
 * Everything the program runs is imported statically, so that `deno compile` puts all of it in
 * the binary: no module of the program (cli.ts, mod.ts, src/) finds or reads its own files at run
 * time (import.meta paths, file reads of modules, computed dynamic imports, Workers loaded from
 * files). The hashing worker is built from a blob for this reason.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;

/** cli.ts, mod.ts and every non-test module under src/ (its layers included). */
async function programModules(): Promise<string[]> {
  const files = ["cli.ts", "mod.ts"];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(join(ROOT, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
        files.push(path);
      }
    }
  };
  await walk("src");
  return files.sort();
}

/** What a module must not do, with why. */
const FORBIDDEN: [RegExp, string][] = [
  [/import\.meta\.(url|dirname|filename|resolve)/, "locates its own files at run time"],
  [/new Worker\(\s*new URL\(/, "loads a worker from a file"],
  [/\bimport\(\s*[^"'\s)]/, "imports a computed specifier"],
  [/Deno\.(readFile|readTextFile)(Sync)?\(\s*new URL\(/, "reads a file next to itself"],
];

Deno.test("the program's modules are all imported statically and read none of their own files", async () => {
  const modules = await programModules();
  assert.ok(modules.length > 20, `found only ${modules}`);
  const found: string[] = [];
  for (const module of modules) {
    const lines = (await Deno.readTextFile(join(ROOT, module))).split("\n");
    for (const [i, line] of lines.entries()) {
      if (/^\s*(\/\/|\*)/.test(line)) continue; // comments and JSDoc
      for (const [pattern, why] of FORBIDDEN) {
        // The entry point may ask whether it is the main module.
        if (pattern.test(line.replace("import.meta.main", ""))) {
          found.push(`${module}:${i + 1} ${why}: ${line.trim()}`);
        }
      }
    }
  }
  assert.deepEqual(found, []);
});

Deno.test("the forbidden patterns catch what they are for", () => {
  const hits = (line: string) => FORBIDDEN.filter(([p]) => p.test(line)).map(([, why]) => why);
  assert.deepEqual(hits('new Worker(new URL("./w.ts", import.meta.url))'), [
    "locates its own files at run time",
    "loads a worker from a file",
  ]);
  assert.deepEqual(hits("await import(name)"), ["imports a computed specifier"]);
  assert.deepEqual(hits('await import("./src/kafka/downloader.ts")'), []);
  assert.deepEqual(hits('Deno.readTextFile(new URL("x.json", base))'), [
    "reads a file next to itself",
  ]);
});
