/**
 * Heartbeat and log messages: periodic JSON messages to their own topics, written as
 * OpenMSIStream writes them (Python's `json.dumps` layout), so the same monitoring reads both.
 *
 * - Heartbeat: key `<program_id>_heartbeat`, value `{"timestamp": "<ISO-8601 UTC>",
 *   "n_messages_read": N, "n_messages_processed": N, "n_bytes_read": N, "n_bytes_processed": N}`,
 *   counting since the previous heartbeat.
 * - Log: key `<program_id>_log`, value `{"timestamp": <epoch seconds>, "messages": [...]}` with
 *   every log record's text since the previous log message (at most `maxRecords` kept).
 *
 * Each is sent once at start, then every interval, and a last time at shutdown. Delivery is best
 * effort: a failure is logged and the download goes on.
 *
 * @module
 */
import type { CompressionTypes, Producer } from "kafkajs";

/** Python `json.dumps` (default separators, `ensure_ascii`) of strings, numbers, arrays and objects. */
export function pythonJson(value: unknown, floats: ReadonlySet<string> = new Set()): string {
  const str = (s: string) =>
    '"' +
    // deno-lint-ignore no-control-regex
    s.replace(/[\\"\u0000-\u001f\u007f-\uffff]/g, (c) => {
      const map: Record<string, string> = {
        "\\": "\\\\",
        '"': '\\"',
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\b": "\\b",
        "\f": "\\f",
      };
      return map[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
    }) +
    '"';
  const encode = (v: unknown, key?: string): string => {
    if (typeof v === "string") return str(v);
    if (typeof v === "number") {
      return key !== undefined && floats.has(key) && Number.isInteger(v) ? `${v}.0` : String(v);
    }
    if (Array.isArray(v)) return `[${v.map((x) => encode(x)).join(", ")}]`;
    if (v !== null && typeof v === "object") {
      return `{${Object.entries(v).map(([k, x]) => `${str(k)}: ${encode(x, k)}`).join(", ")}}`;
    }
    return "null";
  };
  return encode(value);
}

/** Python `datetime.now(timezone.utc).isoformat()`. */
export function pythonUtcIso(d: Date): string {
  const iso = d.toISOString(); // 2026-01-02T03:04:05.678Z
  const micros = d.getUTCMilliseconds() * 1000;
  return `${iso.slice(0, 19)}${micros === 0 ? "" : `.${String(micros).padStart(6, "0")}`}+00:00`;
}

/** Cumulative counts the heartbeat reports differences of. */
export interface Counts {
  messagesRead: number;
  messagesProcessed: number;
  bytesRead: number;
  bytesProcessed: number;
}

/** Options of {@linkcode Telemetry}. */
export interface TelemetryOptions {
  producer: Producer;
  compression?: CompressionTypes | undefined;
  heartbeat?: { topic: string; programId: string; intervalSeconds: number } | undefined;
  log?:
    | { topic: string; programId: string; intervalSeconds: number; maxRecords?: number }
    | undefined;
  /** Current cumulative counts. */
  counts: () => Counts;
  /** Reports a delivery problem (not through the log topic, to avoid a loop). */
  onError: (message: string) => void;
  now?: () => Date;
}

/** Sends heartbeats and log messages on their schedules. */
export class Telemetry {
  readonly #o: TelemetryOptions;
  #last: Counts = { messagesRead: 0, messagesProcessed: 0, bytesRead: 0, bytesProcessed: 0 };
  #records: string[] = [];
  #timers: ReturnType<typeof setInterval>[] = [];
  #connected = false;

  constructor(options: TelemetryOptions) {
    this.#o = options;
  }

  /** Captures one log record for the next log message. */
  capture(text: string): void {
    if (!this.#o.log) return;
    this.#records.push(text);
    const max = this.#o.log.maxRecords ?? 65536;
    if (this.#records.length > max) this.#records.splice(0, this.#records.length - max);
  }

  /** Connects the producer, sends the first messages and starts the schedules. */
  async start(): Promise<void> {
    if (!this.#o.heartbeat && !this.#o.log) return;
    await this.#o.producer.connect();
    this.#connected = true;
    await this.#sendAll();
    if (this.#o.heartbeat) {
      this.#timers.push(
        setInterval(() => this.#heartbeat(), this.#o.heartbeat.intervalSeconds * 1000),
      );
    }
    if (this.#o.log) {
      this.#timers.push(setInterval(() => this.#log(), this.#o.log.intervalSeconds * 1000));
    }
  }

  async #sendAll(): Promise<void> {
    await Promise.all([this.#heartbeat(), this.#log()]);
  }

  async #send(topic: string, key: string, value: string): Promise<void> {
    try {
      await this.#o.producer.send({
        topic,
        messages: [{ key, value }],
        ...(this.#o.compression !== undefined ? { compression: this.#o.compression } : {}),
      });
    } catch (error) {
      this.#o.onError(
        `Cannot send a message to the "${topic}" topic: ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
  }

  async #heartbeat(): Promise<void> {
    const hb = this.#o.heartbeat;
    if (!hb) return;
    const now = this.#o.counts();
    const value = {
      timestamp: pythonUtcIso((this.#o.now ?? (() => new Date()))()),
      n_messages_read: now.messagesRead - this.#last.messagesRead,
      n_messages_processed: now.messagesProcessed - this.#last.messagesProcessed,
      n_bytes_read: now.bytesRead - this.#last.bytesRead,
      n_bytes_processed: now.bytesProcessed - this.#last.bytesProcessed,
    };
    this.#last = { ...now };
    await this.#send(hb.topic, `${hb.programId}_heartbeat`, pythonJson(value));
  }

  async #log(): Promise<void> {
    const log = this.#o.log;
    if (!log) return;
    const messages = this.#records;
    this.#records = [];
    const timestamp = (this.#o.now ?? (() => new Date()))().getTime() / 1000;
    await this.#send(
      log.topic,
      `${log.programId}_log`,
      pythonJson({ timestamp, messages }, new Set(["timestamp"])),
    );
  }

  /** Stops the schedules, sends the last messages and disconnects. */
  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    if (!this.#connected) return;
    await this.#sendAll();
    await this.#o.producer.disconnect().catch(() => {});
    this.#connected = false;
  }
}
