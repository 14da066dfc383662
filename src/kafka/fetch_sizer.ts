/**
 * Fetch sizes that grow when the broker is far away.
 *
 * kafkajs fetches a consumer's next records only once the last ones are handled, so every fetch
 * costs a round trip to the broker in which that consumer reads nothing. Beside the broker that
 * costs little; with a broker 20 ms away, W1 (1 GiB of 512 KiB chunks) took 6.0–6.6 s with two
 * consumers instead of about 3 s, and 4.9–5.2 s with twice the bytes per fetch (BENCHMARKS.md,
 * "Fetch sizes that follow the broker's distance"). Larger fetches beside the broker gained nothing
 * and took W2's peak RSS past 256 MiB, so a {@linkcode FetchSizer} doubles them only while the
 * broker is at least {@linkcode FAR_MS} away.
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

/** Chooses fetch limits from the broker's distance (see the module documentation). */
export class FetchSizer {
  readonly #near: FetchLimits;
  readonly #far: FetchLimits;
  readonly #changed: (far: boolean, distanceMs: number, limits: FetchLimits) => void;
  /** The quickest answer so far (milliseconds). */
  #quickest = Number.POSITIVE_INFINITY;

  /** The per-partition limit, for kafkajs's `maxBytesPerPartition`. */
  readonly perPartition: NumberLike = { valueOf: () => this.limits.perPartition };
  /** The per-request limit, for kafkajs's `maxBytes`. */
  readonly perRequest: NumberLike = { valueOf: () => this.limits.perRequest };

  /**
   * `near`: the limits beside the broker; `far`: at least {@linkcode FAR_MS} away. `changed`
   * hears each switch, with the distance measured.
   */
  constructor(
    near: FetchLimits,
    far: FetchLimits,
    options: {
      changed?: (far: boolean, distanceMs: number, limits: FetchLimits) => void;
    } = {},
  ) {
    this.#near = near;
    this.#far = far;
    this.#changed = options.changed ?? (() => {});
  }

  /** True while the broker is far away (the far limits apply). */
  get far(): boolean {
    return Number.isFinite(this.#quickest) && this.#quickest >= FAR_MS;
  }

  /** The limits that apply now. */
  get limits(): FetchLimits {
    return this.far ? this.#far : this.#near;
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
}
