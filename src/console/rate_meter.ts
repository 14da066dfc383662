/**
 * The rate of a growing count over the last seconds (bytes written, for `check` and the summary).
 *
 * @module
 */

/** Options of {@linkcode RateMeter}. */
export interface RateMeterOptions {
  /** Seconds the rate is taken over (default 10). */
  windowSeconds?: number;
  /** The clock in milliseconds (default `performance.now`). */
  now?: () => number;
  /** Sample on a timer every second (default `true`; a test calls `sample()` itself). */
  timer?: boolean;
}

/** Samples `count()` once a second and tells its rate over the last `windowSeconds`. */
export class RateMeter {
  readonly #count: () => number;
  readonly #window: number;
  readonly #now: () => number;
  readonly #samples: { at: number; count: number }[] = [];
  readonly #timer: ReturnType<typeof setInterval> | undefined;

  constructor(count: () => number, options: RateMeterOptions = {}) {
    this.#count = count;
    this.#window = (options.windowSeconds ?? 10) * 1000;
    this.#now = options.now ?? (() => performance.now());
    this.sample();
    this.#timer = options.timer === false ? undefined : setInterval(() => this.sample(), 1000);
  }

  /** Takes one sample now. */
  sample(): void {
    const at = this.#now();
    this.#samples.push({ at, count: this.#count() });
    while (this.#samples.length > 2 && this.#samples[0]!.at < at - this.#window) {
      this.#samples.shift();
    }
  }

  /** Units per second over the window (0 before a second sample). */
  perSecond(): number {
    this.sample();
    const first = this.#samples[0]!;
    const last = this.#samples[this.#samples.length - 1]!;
    const seconds = (last.at - first.at) / 1000;
    return seconds > 0 ? (last.count - first.count) / seconds : 0;
  }

  /** E.g. `writing 12.3 MB/s over the last 10 s`. */
  text(): string {
    const mb = this.perSecond() / 1e6;
    return `writing ${mb.toFixed(mb < 10 ? 2 : 1)} MB/s over the last ${
      Math.round(this.#window / 1000)
    } s`;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
