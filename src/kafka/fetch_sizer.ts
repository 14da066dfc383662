/**
 * Fetch sizes that grow when the broker is far away, or when records are large.
 *
 * kafkajs fetches a consumer's next records only once the last ones are handled, so every fetch
 * costs a round trip to the broker in which that consumer reads nothing. Beside the broker that
 * costs little; with a broker 20 ms away, W1 (1 GiB of 512 KiB chunks) took 6.0–6.6 s with two
 * consumers instead of about 3 s, and 4.9–5.2 s with twice the bytes per fetch (BENCHMARKS.md,
 * "Fetch sizes that follow the broker's distance"). So a {@linkcode FetchSizer} doubles them while
 * the broker is at least {@linkcode FAR_MS} away.
 *
 * Beside the broker, larger fetches pay only for large records. W1 with two consumers took 3.12 s
 * (median of 8) against 3.27 s, for a peak RSS of 203–219 MiB against 186–198 MiB; a fetch of the
 * same bytes in small records holds many more of them (kafkajs makes an object of each, and this
 * program handles each), and took W2 (16 KiB chunks) past 256 MiB (BENCHMARKS.md, "Larger fetches
 * for large records"). So the limits also double while records are large: from a batch whose
 * records average {@linkcode LARGE_RECORD_BYTES} or more until one whose records average under
 * {@linkcode SMALL_RECORD_BYTES} ({@linkcode FetchSizer.observeBatch}); in between, they stay as
 * they are, so that a topic of both kinds does not switch at every batch.
 *
 * The distance is the shortest time the broker has taken, since the consumers started, to answer a
 * request it answers at once ({@linkcode QUICK_REQUESTS}), from kafkajs's `request`
 * instrumentation events ({@linkcode FetchSizer.observe}). An answer's time includes its wait for
 * the event loop, which a long run under load may make 5 ms or more for every answer of a minute;
 * the first answers come while the loop is quiet (a connection's ApiVersions), and no answer
 * beats the network's round trip, so the quickest one so far is the distance.
 *
 * kafkajs reads its consumer's `maxBytesPerPartition` and `maxBytes` each time it builds a fetch
 * request, and writes them with `Buffer.writeInt32BE`, which takes a number-like object's
 * `valueOf()`: {@linkcode FetchSizer.perPartition} and {@linkcode FetchSizer.perRequest} are such
 * objects, handed to kafkajs in place of the numbers.
 *
 * @module
 */

/** A broker whose quickest answer takes at least this long (milliseconds) is far away. */
export const FAR_MS = 5;

/** A batch whose records average at least this many bytes makes the limits larger. */
export const LARGE_RECORD_BYTES = 128 * 1024;

/** A batch whose records average fewer bytes than this makes them smaller again. */
export const SMALL_RECORD_BYTES = 32 * 1024;

/** Requests the broker answers at once, without waiting for data or for other members. */
export const QUICK_REQUESTS: ReadonlySet<string> = new Set([
  "ApiVersions",
  "Metadata",
  "Heartbeat",
  "GroupCoordinator", // kafkajs's name of FindCoordinator
]);

/** A value kafkajs takes for a number (see the module documentation). */
export interface NumberLike {
  valueOf(): number;
}

/** Fetch limits in bytes. */
export interface FetchLimits {
  perPartition: number;
  perRequest: number;
}

/** Chooses fetch limits from the broker's distance and the records' size (see the module doc). */
export class FetchSizer {
  readonly #near: FetchLimits;
  readonly #larger: FetchLimits;
  readonly #changed: (far: boolean, distanceMs: number, limits: FetchLimits) => void;
  readonly #recordsChanged: (large: boolean, meanBytes: number, limits: FetchLimits) => void;
  /** The quickest answer so far (milliseconds). */
  #quickest = Number.POSITIVE_INFINITY;
  #largeRecords = false;

  /** The per-partition limit, for kafkajs's `maxBytesPerPartition`. */
  readonly perPartition: NumberLike = { valueOf: () => this.limits.perPartition };
  /** The per-request limit, for kafkajs's `maxBytes`. */
  readonly perRequest: NumberLike = { valueOf: () => this.limits.perRequest };

  /**
   * `near`: the limits beside the broker for records under {@linkcode LARGE_RECORD_BYTES};
   * `larger`: those while the broker is at least {@linkcode FAR_MS} away or records are large.
   * `changed` hears each switch of distance, with the distance measured; `recordsChanged` each
   * switch of record size, with the batch's average record size.
   */
  constructor(
    near: FetchLimits,
    larger: FetchLimits,
    options: {
      changed?: (far: boolean, distanceMs: number, limits: FetchLimits) => void;
      recordsChanged?: (large: boolean, meanBytes: number, limits: FetchLimits) => void;
    } = {},
  ) {
    this.#near = near;
    this.#larger = larger;
    this.#changed = options.changed ?? (() => {});
    this.#recordsChanged = options.recordsChanged ?? (() => {});
  }

  /** True while the broker is far away. */
  get far(): boolean {
    return Number.isFinite(this.#quickest) && this.#quickest >= FAR_MS;
  }

  /** True while records are large (see {@linkcode FetchSizer.observeBatch}). */
  get largeRecords(): boolean {
    return this.#largeRecords;
  }

  /** The limits that apply now: the larger ones while the broker is far or records are large. */
  get limits(): FetchLimits {
    return this.far || this.#largeRecords ? this.#larger : this.#near;
  }

  /** The quickest answer so far (milliseconds), `undefined` before the first. */
  get distanceMs(): number | undefined {
    return Number.isFinite(this.#quickest) ? this.#quickest : undefined;
  }

  /** Takes one of kafkajs's `request` events: its `apiName` and `duration` (milliseconds). */
  observe(apiName: string, durationMs: number): void {
    if (!QUICK_REQUESTS.has(apiName) || !Number.isFinite(durationMs) || durationMs < 0) return;
    if (durationMs >= this.#quickest) return;
    const wasFar = this.far;
    this.#quickest = durationMs;
    if (this.far !== wasFar) this.#changed(this.far, durationMs, this.limits);
  }

  /**
   * Takes a fetched batch: its number of records and their bytes. Records become large at an
   * average of {@linkcode LARGE_RECORD_BYTES} or more, and small again under
   * {@linkcode SMALL_RECORD_BYTES}.
   */
  observeBatch(records: number, bytes: number): void {
    if (!(records > 0) || !(bytes >= 0)) return;
    const mean = bytes / records;
    const large = mean >= LARGE_RECORD_BYTES ? true : mean < SMALL_RECORD_BYTES ? false : undefined;
    if (large === undefined || large === this.#largeRecords) return;
    this.#largeRecords = large;
    this.#recordsChanged(large, mean, this.limits);
  }
}
