/**
 * The benchmark's workloads: source trees of random (incompressible) files written to disk with
 * the SHA-512 of every file, and the check of a rebuilt tree against those hashes.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";

/** Workload names. */
export const WORKLOAD_IDS = ["W1", "W2", "W3", "W4"] as const;
export type WorkloadId = typeof WORKLOAD_IDS[number];

const MiB = 1024 * 1024;

/** One file of a workload. */
export interface SourceFile {
  /** Path relative to the tree's root, `/`-separated. */
  rel: string;
  size: number;
}

/** What to produce for one workload. */
export interface WorkloadSpec {
  id: WorkloadId;
  /** One line saying what it is. */
  title: string;
  /** Upload chunk size in bytes. */
  chunkSize: number;
  files: SourceFile[];
}

/** A written file and its whole-file SHA-512 (hex). */
export interface ManifestEntry extends SourceFile {
  sha512: string;
}

/** Sizes that decide the workloads (see `deno task bench --help`). */
export interface WorkloadSizes {
  w1MiB: number;
  w2MiB: number;
  w3Files: number;
  w4MiB: number;
}

const pad = (n: number, width: number) => String(n).padStart(width, "0");

/** `totalMiB` as files of 16 MiB in 4 folders (one smaller file when under 16 MiB). */
function sixteenMiBFiles(totalMiB: number): SourceFile[] {
  const total = Math.max(1, Math.round(totalMiB * MiB));
  const size = 16 * MiB;
  const n = Math.max(1, Math.round(total / size));
  const fileSize = total < size ? total : size;
  return Array.from({ length: n }, (_, i) => ({
    rel: `set_${i % 4}/data_${pad(i, 4)}.bin`,
    size: fileSize,
  }));
}

/** The spec of a workload for the given sizes. */
export function workloadSpec(id: WorkloadId, sizes: WorkloadSizes): WorkloadSpec {
  switch (id) {
    case "W1": {
      const files = sixteenMiBFiles(sizes.w1MiB);
      return {
        id,
        title: `${count(files.length, "file")} of ${mib(files[0]!.size)} MiB, 512 KiB chunks`,
        chunkSize: 512 * 1024,
        files,
      };
    }
    case "W2": {
      const files = sixteenMiBFiles(sizes.w2MiB);
      return {
        id,
        title: `${count(files.length, "file")} of ${mib(files[0]!.size)} MiB, 16 KiB chunks`,
        chunkSize: 16 * 1024,
        files,
      };
    }
    case "W3": {
      const n = Math.max(1, Math.round(sizes.w3Files));
      const folders = Math.min(100, n);
      return {
        id,
        title: `${count(n, "file")} of 4 KiB in ${count(folders, "folder")}, one chunk each`,
        chunkSize: 512 * 1024,
        files: Array.from({ length: n }, (_, i) => ({
          rel: `folder_${pad(i % folders, 3)}/file_${pad(i, 6)}.dat`,
          size: 4096,
        })),
      };
    }
    case "W4": {
      const size = Math.max(1, Math.round(sizes.w4MiB * MiB));
      return {
        id,
        title: `one file of ${mib(size)} MiB, 512 KiB chunks`,
        chunkSize: 512 * 1024,
        files: [{ rel: "big/one_big_file.bin", size }],
      };
    }
  }
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function mib(bytes: number): string {
  const v = bytes / MiB;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** Total bytes of a spec's files. */
export function totalBytes(spec: WorkloadSpec): number {
  return spec.files.reduce((s, f) => s + f.size, 0);
}

/**
 * Writes the spec's files of random bytes under `root`, hashing each as it is written.
 * `progress` is called now and then with the bytes written so far.
 */
export async function writeSourceTree(
  root: string,
  spec: WorkloadSpec,
  progress?: (bytes: number) => void,
): Promise<ManifestEntry[]> {
  const block = new Uint8Array(MiB);
  const manifest: ManifestEntry[] = [];
  const dirs = new Set<string>();
  let written = 0;
  let lastReport = performance.now();
  for (const file of spec.files) {
    const path = join(root, file.rel);
    const dir = dirname(path);
    if (!dirs.has(dir)) {
      await Deno.mkdir(dir, { recursive: true });
      dirs.add(dir);
    }
    const hash = createHash("sha512");
    const out = await Deno.open(path, { write: true, create: true, truncate: true });
    try {
      for (let done = 0; done < file.size;) {
        const n = Math.min(block.length, file.size - done);
        const part = block.subarray(0, n);
        for (let o = 0; o < n; o += 65536) {
          crypto.getRandomValues(part.subarray(o, Math.min(n, o + 65536)));
        }
        hash.update(part);
        for (let w = 0; w < n;) w += await out.write(part.subarray(w));
        done += n;
        written += n;
      }
    } finally {
      out.close();
    }
    manifest.push({ ...file, sha512: hash.digest("hex") });
    if (progress && performance.now() - lastReport > 5000) {
      lastReport = performance.now();
      progress(written);
    }
  }
  return manifest;
}

/** Files and folders at the top of an output directory that are the program's, not data. */
export const NOT_DATA = new Set([
  ".DataFileDownloadDirectory",
  "DataFileDownloadDirectory.log",
  "LOGS",
]);

async function hashFile(path: string, buffer: Uint8Array): Promise<string> {
  const hash = createHash("sha512");
  const file = await Deno.open(path, { read: true });
  try {
    for (;;) {
      const n = await file.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/**
 * Checks that `out` holds exactly the manifest's files with their bytes (by SHA-512), ignoring
 * {@linkcode NOT_DATA} at its top. Returns the problems found (empty when it matches).
 */
export function verifyTree(out: string, manifest: ManifestEntry[]): Promise<string[]> {
  return verifyTrees([out], manifest);
}

/**
 * Like {@linkcode verifyTree} for the union of several output folders (processes of one group):
 * each file in exactly one of them.
 */
export async function verifyTrees(outs: string[], manifest: ManifestEntry[]): Promise<string[]> {
  const expected = new Map(manifest.map((e) => [e.rel, e]));
  const seen = new Set<string>();
  const problems: string[] = [];
  const buffer = new Uint8Array(MiB);
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound && rel === "") return;
      throw e;
    }
    for (const entry of entries) {
      if (rel === "" && NOT_DATA.has(entry.name)) continue;
      const r = rel === "" ? entry.name : `${rel}/${entry.name}`;
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path, r);
      else if (!entry.isFile) problems.push(`${r}: not a regular file`);
      else {
        const want = expected.get(r);
        if (want === undefined) {
          problems.push(`${r}: not in the source tree`);
          continue;
        }
        if (seen.has(r)) {
          problems.push(`${r}: published in more than one output folder`);
          continue;
        }
        seen.add(r);
        const size = (await Deno.stat(path)).size;
        if (size !== want.size) problems.push(`${r}: ${size} bytes, expected ${want.size}`);
        else if (await hashFile(path, buffer) !== want.sha512) problems.push(`${r}: bytes differ`);
      }
    }
  };
  for (const out of outs) await walk(out, "");
  const missing = manifest.filter((e) => !seen.has(e.rel));
  if (missing.length > 0) {
    problems.push(
      `${missing.length} file(s) missing, e.g. ${missing.slice(0, 3).map((e) => e.rel).join(", ")}`,
    );
  }
  return problems;
}
