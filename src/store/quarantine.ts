/**
 * The quarantine: a bounded folder inside the program's state folder where bad records and
 * files that failed their whole-file hash are kept for inspection.
 *
 * Each bad record is kept as `<time>-p<partition>-o<offset>.value` (its raw value) beside a
 * `.txt` with the topic, partition, offset, key and reason; each rejected file as
 * `<time>-<name>.rejected` beside a `.txt` with the reason. `<time>` is the UTC time and a serial
 * number that continues across runs, so names are unique; a name is cut (between characters) so that the whole file name fits
 * in 255 bytes. When the folder would grow past its budget, the oldest entries are removed first.
 *
 * @module
 */
import { basename, join } from "node:path";

/** Longest file name, in UTF-8 bytes (Linux, APFS) and in UTF-16 units (Windows, HFS+ decomposed). */
const MAX_NAME = 255;
/** Every suffix a quarantine entry gets. */
const SUFFIXES = [".value", ".txt", ".rejected"];
const LONGEST_SUFFIX = Math.max(...SUFFIXES.map((s) => s.length));
const encoder = new TextEncoder();

function utf8Length(codePoint: number): number {
  return codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
}

/** UTF-8 bytes and decomposed (NFD) UTF-16 units of `text`. */
function measure(text: string): { bytes: number; units: number } {
  let bytes = 0;
  for (const c of text) bytes += utf8Length(c.codePointAt(0)!);
  return { bytes, units: text.normalize("NFD").length };
}

/**
 * `prefix` followed by as much of `tail` as fits, with `suffixLength` ASCII characters still to
 * come, in a file name of at most 255 UTF-8 bytes and 255 UTF-16 units once decomposed. The tail
 * is cut between code points, and `/`, `\` and NUL in it become `_`.
 */
export function fitName(prefix: string, tail: string, suffixLength = LONGEST_SUFFIX): string {
  const used = measure(prefix);
  let bytes = used.bytes + suffixLength;
  let units = used.units + suffixLength;
  let out = prefix;
  for (const c of tail.toWellFormed().replace(/[/\\\0]/g, "_")) {
    const one = measure(c);
    if (bytes + one.bytes > MAX_NAME || units + one.units > MAX_NAME) break;
    bytes += one.bytes;
    units += one.units;
    out += c;
  }
  return out;
}

/** Where a record came from. */
export interface RecordOrigin {
  topic: string;
  partition: number;
  offset: string;
}

/** A bounded folder of quarantined records and files. */
export class Quarantine {
  readonly dir: string;
  readonly maxBytes: number;
  #entries: { path: string; size: number }[] = [];
  #bytes = 0;

  /** Bytes the quarantine folder holds now. */
  get bytes(): number {
    return this.#bytes;
  }
  #serial = 0;
  /** Entries are added one at a time, so that the budget holds with concurrent callers. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string, maxBytes: number) {
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  /** Creates the folder and takes stock of what an earlier run left there. */
  async open(): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    const found: { path: string; size: number; mtime: number }[] = [];
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.isFile) continue;
      const path = join(this.dir, entry.name);
      const info = await Deno.stat(path);
      found.push({ path, size: info.size, mtime: info.mtime?.getTime() ?? 0 });
    }
    found.sort((a, b) => a.mtime - b.mtime || a.path.localeCompare(b.path));
    // Serial numbers continue after the earlier runs', so no name is ever used twice (a restart
    // within the same second would otherwise overwrite what the previous run kept).
    for (const { path } of found) {
      const serial = /^\d{8}T\d{6}-(\d+)-/.exec(basename(path))?.[1];
      if (serial !== undefined) this.#serial = Math.max(this.#serial, Number(serial));
    }
    this.#entries = found.map(({ path, size }) => ({ path, size }));
    this.#bytes = found.reduce((sum, e) => sum + e.size, 0);
  }

  #stamp(): string {
    const iso = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
    return `${iso}-${String(++this.#serial).padStart(6, "0")}`;
  }

  /** A base path `<stamp>-<tail>` (tail cut to fit) for a new entry. */
  #base(tail: string): string {
    return join(this.dir, fitName(`${this.#stamp()}-`, tail));
  }

  async #makeRoom(size: number): Promise<boolean> {
    if (size > this.maxBytes) return false;
    while (this.#bytes + size > this.maxBytes && this.#entries.length > 0) {
      const oldest = this.#entries.shift();
      if (!oldest) break;
      this.#bytes -= oldest.size;
      await Deno.remove(oldest.path).catch(() => {});
    }
    return true;
  }

  async #write(path: string, bytes: Uint8Array): Promise<void> {
    if (!(await this.#makeRoom(bytes.length))) return;
    await Deno.writeFile(path, bytes);
    this.#entries.push({ path, size: bytes.length });
    this.#bytes += bytes.length;
  }

  /**
   * Keeps a bad record's value and a description of it (the description alone when the value is
   * larger than the whole budget, or a tombstone). Returns the description file's path.
   */
  keepRecord(
    origin: RecordOrigin,
    key: Uint8Array | null,
    value: Uint8Array | null,
    reason: string,
  ): Promise<string> {
    return this.#serially(() => this.#keepRecord(origin, key, value, reason));
  }

  /** Runs `task` after every entry added before it. */
  #serially<T>(task: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(task, task);
    this.#queue = next.catch(() => {});
    return next;
  }

  async #keepRecord(
    origin: RecordOrigin,
    key: Uint8Array | null,
    value: Uint8Array | null,
    reason: string,
  ): Promise<string> {
    const base = this.#base(`p${origin.partition}-o${origin.offset}`);
    const keyText = key === null ? "(none)" : new TextDecoder().decode(key);
    const lines = [
      `topic: ${origin.topic}`,
      `partition: ${origin.partition}`,
      `offset: ${origin.offset}`,
      `key: ${JSON.stringify(keyText)}`,
      `value bytes: ${value === null ? "(none: tombstone)" : value.length}`,
      `reason: ${reason}`,
    ];
    if (value !== null) {
      // Room for both at once, so that writing the description never evicts the value.
      const aboutBytes = encoder.encode(lines.join("\n") + "\n").length;
      if (await this.#makeRoom(value.length + aboutBytes)) {
        await this.#write(`${base}.value`, value);
      } else {
        lines.push("value not kept: larger than the quarantine");
      }
    }
    await this.#write(`${base}.txt`, encoder.encode(lines.join("\n") + "\n"));
    return `${base}.txt`;
  }

  /**
   * Moves a rebuilt file that failed its check into the quarantine as `<time>-<name>.rejected`,
   * with the reason beside it in a `.txt` (or deletes it when it is larger than the whole
   * budget). Returns where it went, or `null` when it was deleted.
   */
  keepFile(path: string, name: string, reason: string): Promise<string | null> {
    return this.#serially(() => this.#keepFile(path, name, reason));
  }

  async #keepFile(path: string, name: string, reason: string): Promise<string | null> {
    const size = (await Deno.stat(path)).size;
    const base = this.#base(name);
    const lines = [reason];
    if (!base.endsWith(`-${name}`)) {
      lines.push(`(kept under a shortened name: the file's name is ${JSON.stringify(name)})`);
    }
    const about = encoder.encode(lines.join("\n") + "\n");
    // Room for both at once, so that writing the description never evicts the file.
    if (!(await this.#makeRoom(size + about.length))) {
      await Deno.remove(path);
      lines.push(`(file of ${size} bytes deleted: larger than the quarantine)`);
      await this.#write(`${base}.txt`, encoder.encode(lines.join("\n") + "\n"));
      return null;
    }
    await Deno.rename(path, `${base}.rejected`);
    this.#entries.push({ path: `${base}.rejected`, size });
    this.#bytes += size;
    await this.#write(`${base}.txt`, about);
    return `${base}.rejected`;
  }
}
