/**
 * The live status line on a terminal: one line at the bottom of the console, redrawn every second,
 * that log lines scroll above, e.g.
 * `12 files done, 3 in flight | 48.2 MB/s | largest in flight: big/x.raw 42% | lag 1200 records`.
 * Nothing is drawn when the console is not a terminal (logs stay line-based).
 *
 * @module
 */
import type { DownloadStatus } from "../kafka/downloader.ts";

/** What the line shows. */
export interface StatusFacts {
  status: DownloadStatus;
  /** Bytes written per second over the last seconds. */
  bytesPerSecond: number;
  /** The group's total lag, or `undefined` when not known yet. */
  lag: number | undefined;
}

/** Clears the current terminal line (carriage return, erase line). */
export const CLEAR_LINE = "\r\x1b[2K";

/** The status text, cut to `columns`. */
export function statusText(f: StatusFacts, columns = 200): string {
  const s = f.status;
  const parts = [
    `${s.filesCompleted} file${
      s.filesCompleted === 1 ? "" : "s"
    } done, ${s.inProgress.length} in flight`,
    `${(f.bytesPerSecond / 1e6).toFixed(1)} MB/s`,
  ];
  const largest = s.inProgress.reduce<DownloadStatus["inProgress"][number] | undefined>(
    (best, file) => (best === undefined || file.total > best.total ? file : best),
    undefined,
  );
  if (largest) {
    const share = largest.total > 0 ? Math.floor((100 * largest.chunks) / largest.total) : 0;
    parts.push(`largest in flight: ${largest.path} ${share}%`);
  }
  if (f.lag !== undefined) parts.push(`lag ${f.lag} record${f.lag === 1 ? "" : "s"}`);
  const text = parts.join(" | ");
  return text.length <= columns - 1 ? text : `${text.slice(0, Math.max(0, columns - 2))}…`;
}

/** Options of {@linkcode StatusLine}. */
export interface StatusLineOptions {
  /** Writes to the terminal. */
  write: (text: string) => void;
  facts: () => StatusFacts;
  /** Terminal width (default, and below 20 columns: 200). */
  columns?: () => number;
  /** Milliseconds between redraws (default 1000; 0: only when asked, for tests). */
  intervalMs?: number;
}

/** Draws the status line and lets log lines pass above it. */
export class StatusLine {
  readonly #o: StatusLineOptions;
  readonly #timer: ReturnType<typeof setInterval> | undefined;
  #shown = false;
  #stopped = false;

  constructor(options: StatusLineOptions) {
    this.#o = options;
    const every = options.intervalMs ?? 1000;
    this.#timer = every > 0 ? setInterval(() => this.draw(), every) : undefined;
  }

  /** Redraws the line. */
  draw(): void {
    if (this.#stopped) return;
    // A terminal that does not tell its width (0, as under `script`) gets a wide line.
    const columns = this.#o.columns?.() ?? 200;
    const text = statusText(this.#o.facts(), columns >= 20 ? columns : 200);
    this.#o.write(`${CLEAR_LINE}${text}`);
    this.#shown = true;
  }

  /** Writes a log line (ending in a newline) above the status line. */
  print(line: string): void {
    if (this.#shown) this.#o.write(CLEAR_LINE);
    this.#shown = false;
    this.#o.write(line);
    this.draw();
  }

  /** Removes the line for good; later log lines are written as they are. */
  stop(): void {
    clearInterval(this.#timer);
    if (this.#shown) this.#o.write(CLEAR_LINE);
    this.#shown = false;
    this.#stopped = true;
  }
}
