/**
 * The quarantine: a bounded folder inside the program's state folder where bad records and
 * files that failed their whole-file hash are kept for inspection.
 *
 * Each bad record is kept as `<time>-p<partition>-o<offset>.value` (its raw value) beside a
 * `.txt` with the topic, partition, offset, key and reason. When the folder would grow past its
 * budget, the oldest entries are removed first.
 *
 * @module
 */
import { join } from "node:path";

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
  #serial = 0;

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
    this.#entries = found.map(({ path, size }) => ({ path, size }));
    this.#bytes = found.reduce((sum, e) => sum + e.size, 0);
  }

  #stamp(): string {
    const iso = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
    return `${iso}-${String(++this.#serial).padStart(6, "0")}`;
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
   * Keeps a bad record's value and a description of it. Returns the description file's path.
   */
  async keepRecord(
    origin: RecordOrigin,
    key: Uint8Array | null,
    value: Uint8Array | null,
    reason: string,
  ): Promise<string> {
    const base = join(this.dir, `${this.#stamp()}-p${origin.partition}-o${origin.offset}`);
    const keyText = key === null ? "(none)" : new TextDecoder().decode(key);
    const about = [
      `topic: ${origin.topic}`,
      `partition: ${origin.partition}`,
      `offset: ${origin.offset}`,
      `key: ${JSON.stringify(keyText)}`,
      `value bytes: ${value === null ? "(none: tombstone)" : value.length}`,
      `reason: ${reason}`,
      "",
    ].join("\n");
    if (value !== null) await this.#write(`${base}.value`, value);
    await this.#write(`${base}.txt`, new TextEncoder().encode(about));
    return `${base}.txt`;
  }

  /**
   * Moves a rebuilt file that failed its check into the quarantine (or deletes it when it is
   * larger than the whole budget). Returns where it went, or `null` when it was deleted.
   */
  async keepFile(path: string, name: string, reason: string): Promise<string | null> {
    const size = (await Deno.stat(path)).size;
    // Room for the stamp and the extension within a file name's 255 bytes.
    const short = [...name].slice(0, 100).join("");
    const base = join(this.dir, `${this.#stamp()}-${short}`);
    if (!(await this.#makeRoom(size))) {
      await Deno.remove(path);
      await this.#write(
        `${base}.txt`,
        new TextEncoder().encode(
          `${reason}\n(file of ${size} bytes deleted: larger than the quarantine)\n`,
        ),
      );
      return null;
    }
    await Deno.rename(path, `${base}.rejected`);
    this.#entries.push({ path: `${base}.rejected`, size });
    this.#bytes += size;
    await this.#write(`${base}.txt`, new TextEncoder().encode(`${reason}\n`));
    return `${base}.rejected`;
  }
}
