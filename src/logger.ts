/**
 * The program's logger: lines like `[DataFileDownloadDirectory 2026-01-02 03:04:05] WARNING: …`
 * to a console stream and, at its own threshold, to a log file opened in append mode.
 *
 * @module
 */

/** Python logging levels. */
export const Level = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 } as const;

/** Options of {@linkcode Logger}. */
export interface LoggerOptions {
  /** Name shown in every line. */
  name: string;
  /** Lowest level written to `stream`. */
  streamLevel: number;
  /** Writes one line (with its newline) to the console. */
  stream: (line: string) => void;
  /** Lowest level written to the file. */
  fileLevel?: number;
  /** Log file path; no file when absent. */
  filePath?: string;
  /** Current time (for tests). */
  now?: () => Date;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** Local time as `YYYY-MM-DD HH:MM:SS`. */
export function formatTime(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${
    pad(d.getMinutes())
  }:${pad(d.getSeconds())}`;
}

/** A logger writing to a stream and, optionally, a file. */
export class Logger {
  readonly #options: LoggerOptions;
  #file: Deno.FsFile | undefined;
  readonly #encoder = new TextEncoder();
  /** Called with every record (level, text), whatever the thresholds. */
  listener: ((level: number, text: string) => void) | undefined;

  constructor(options: LoggerOptions) {
    this.#options = options;
    if (options.filePath !== undefined) {
      this.#file = Deno.openSync(options.filePath, { append: true, create: true });
    }
  }

  /** Writes one record. */
  log(level: number, message: string): void {
    let text = message;
    if (level >= Level.ERROR && !text.startsWith("ERROR: ")) text = `ERROR: ${text}`;
    else if (level >= Level.WARNING && level < Level.ERROR && !text.startsWith("WARNING: ")) {
      text = `WARNING: ${text}`;
    }
    this.listener?.(level, message);
    const line = `[${this.#options.name} ${
      formatTime((this.#options.now ?? (() => new Date()))())
    }] ${text}\n`;
    if (level >= this.#options.streamLevel) this.#options.stream(line);
    if (this.#file && level >= (this.#options.fileLevel ?? Level.WARNING)) {
      try {
        this.#file.writeSync(this.#encoder.encode(line));
      } catch {
        // A log file that cannot be written must not stop the program; the console still has it.
      }
    }
  }

  debug(message: string): void {
    this.log(Level.DEBUG, message);
  }
  info(message: string): void {
    this.log(Level.INFO, message);
  }
  warning(message: string): void {
    this.log(Level.WARNING, message);
  }
  error(message: string): void {
    this.log(Level.ERROR, message);
  }

  /** Closes the log file. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}
