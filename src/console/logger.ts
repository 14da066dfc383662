/**
 * The program's logger: lines like `[DataFileDownloadDirectory 2026-01-02 03:04:05] WARNING: …`
 * to a console stream and, at its own threshold, to a log file opened in append mode. For log
 * shippers the console stream can carry one JSON object per line instead
 * (`{"time":"2026-01-02T03:04:05.678Z","level":"warning","logger":"…","message":"…"}`).
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
  /** The console lines: text (default) or one JSON object per line. */
  streamFormat?: "text" | "json";
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

/** The name of a level (`info`), or `level 25` between the named ones. */
export function levelName(level: number): string {
  const named = Object.entries(Level).find(([, value]) => value === level);
  return named ? named[0].toLowerCase() : `level ${level}`;
}

/** One record as a JSON line: time (UTC, ISO 8601), level, logger, message. */
export function jsonLine(time: Date, level: number, name: string, message: string): string {
  return JSON.stringify({
    time: time.toISOString(),
    level: levelName(level),
    logger: name,
    message: message.replace(/^(ERROR|WARNING): /, ""),
  }) + "\n";
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
    const now = (this.#options.now ?? (() => new Date()))();
    const line = `[${this.#options.name} ${formatTime(now)}] ${text}\n`;
    if (level >= this.#options.streamLevel) {
      this.#options.stream(
        this.#options.streamFormat === "json"
          ? jsonLine(now, level, this.#options.name, message)
          : line,
      );
    }
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
