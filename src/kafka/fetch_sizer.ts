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
 * for large records"). So a consumer's limits also double while the records of every partition it
 * holds are large. A partition's records are large from a batch of it whose records average
 * {@linkcode LARGE_RECORD_BYTES} or more until one whose records average under
 * {@linkcode SMALL_RECORD_BYTES} ({@linkcode FetchSizer.observeBatch}); in between, nothing changes,
 * so that a partition that carries both kinds (as OpenMSIStream's uploader spreads every file over
 * all partitions) does not switch at every batch, and a partition of small records never makes its
 * consumer fetch more.
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
 * `valueOf()`: the limits of {@linkcode FetchSizer.forConsumer} are such objects, handed to kafkajs in
 * place of the numbers.
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

/** A consumer's fetch limits, as kafkajs takes them (see the module documentation). */
export interface ConsumerLimits {
  /** For kafkajs's `maxBytesPerPartition`. */
  perPartition: NumberLike;
  /** For kafkajs's `maxBytes`. */
  perRequest: NumberLike;
}

/** Chooses fetch limits from the broker's distance and the records' size (see the module doc). */
export class FetchSizer {
  readonly #near: FetchLimits;
  readonly #larger: FetchLimits;
  readonly #changed: (far: boolean, distanceMs: number, limits: FetchLimits) => void;
  readonly #recordsChanged: (partition: number, large: boolean, meanBytes: number) => void;
  /** The quickest answer so far (milliseconds). */
  #quickest = Number.POSITIVE_INFINITY;
  /** Partitions whose records are large. */
  readonly #large = new Set<number>();

  /**
   * `near`: the limits beside the broker for records under {@linkcode LARGE_RECORD_BYTES};
   * `larger`: those while the broker is at least {@linkcode FAR_MS} away or records are large.
   * `changed` hears each switch of distance, with the distance measured and the limits it sets;
   * `recordsChanged` each switch of a partition's record size, with its batch's average.
   */
  constructor(
    near: FetchLimits,
    larger: FetchLimits,
    options: {
      changed?: (far: boolean, distanceMs: number, limits: FetchLimits) => void;
      recordsChanged?: (partition: number, large: boolean, meanBytes: number) => void;
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

  /** The quickest answer so far (milliseconds), `undefined` before the first. */
  get distanceMs(): number | undefined {
    return Number.isFinite(this.#quickest) ? this.#quickest : undefined;
  }

  /** True while the records of every one of `partitions` (one at least) are large. */
  largeRecords(partitions: readonly number[]): boolean {
    return partitions.length > 0 && partitions.every((p) => this.#large.has(p));
  }

  /** The limits of a consumer that holds `partitions`: the larger ones while far or large. */
  limitsFor(partitions: readonly number[]): FetchLimits {
    return this.far || this.largeRecords(partitions) ? this.#larger : this.#near;
  }

  /** Limits for one consumer, which holds `partitions()` whenever kafkajs builds a fetch. */
  forConsumer(partitions: () => readonly number[]): ConsumerLimits {
    return {
      perPartition: { valueOf: () => this.limitsFor(partitions()).perPartition },
      perRequest: { valueOf: () => this.limitsFor(partitions()).perRequest },
    };
  }

  /** Takes one of kafkajs's `request` events: its `apiName` and `duration` (milliseconds). */
  observe(apiName: string, durationMs: number): void {
    if (!QUICK_REQUESTS.has(apiName) || !Number.isFinite(durationMs) || durationMs < 0) return;
    if (durationMs >= this.#quickest) return;
    const wasFar = this.far;
    this.#quickest = durationMs;
    if (this.far !== wasFar) {
      this.#changed(this.far, durationMs, this.far ? this.#larger : this.#near);
    }
  }

  /**
   * Takes a fetched batch of `partition`: its number of records with a value and their bytes. The
   * partition's records become large at an average of {@linkcode LARGE_RECORD_BYTES} or more, and
   * small again under {@linkcode SMALL_RECORD_BYTES}.
   */
  observeBatch(partition: number, records: number, bytes: number): void {
    if (!(records > 0) || !(bytes >= 0) || !Number.isFinite(bytes)) return;
    const mean = bytes / records;
    const large = mean >= LARGE_RECORD_BYTES ? true : mean < SMALL_RECORD_BYTES ? false : undefined;
    if (large === undefined || large === this.#large.has(partition)) return;
    if (large) this.#large.add(partition);
    else this.#large.delete(partition);
    this.#recordsChanged(partition, large, mean);
  }
}
