/**
 * Drain mode and consumer lag: where the group's committed offsets stand against the ends of the
 * topic's partitions.
 *
 * {@linkcode DrainWatch} notes each partition's end offset once, at start, then polls the group's
 * committed offsets until every partition is committed up to it. It watches the group, not one
 * consumer: with several processes in the group, each ends once the whole topic is consumed up
 * to its marks, and partitions that a rebalance moves are finished by their new owner.
 *
 * On a topic keyed by file the downloader commits "safe" offsets, held back at the first record
 * of a file still in progress; such a commit carries how far the records were handled in its
 * metadata ({@linkcode handledMetadata}), and lag and drain count from there.
 *
 * @module
 */

const HANDLED = /^dfdd-handled=(\d+)$/;

/** The commit metadata saying the partition's records were handled up to `offset` (exclusive). */
export function handledMetadata(offset: bigint | number): string {
  return `dfdd-handled=${offset}`;
}

/** The offset {@linkcode handledMetadata} wrote, or `null` for any other metadata. */
export function handledOffset(metadata: string | null | undefined): number | null {
  const m = HANDLED.exec(metadata ?? "");
  return m ? Number(m[1]) : null;
}

/** What drain mode and lag need from a kafkajs `Admin`. */
export interface OffsetsAdmin {
  fetchTopicOffsets(
    topic: string,
  ): Promise<{ partition: number; offset: string; high: string; low: string }[]>;
  fetchOffsets(
    options: { groupId: string; topics: string[] },
  ): Promise<
    {
      topic: string;
      partitions: { partition: number; offset: string; metadata?: string | null }[];
    }[]
  >;
}

/** One partition's position. */
export interface PartitionLag {
  partition: number;
  /** The end offset (next offset to be written). */
  end: number;
  /** The group's committed offset, or `null` when it has none. */
  committed: number | null;
  /**
   * How far the group handled the records when a file in progress holds its commit back (the
   * commit's metadata), else `null`.
   */
  handled: number | null;
  /**
   * Records not yet consumed by the group: `end` less the offset handled (the committed offset,
   * or the first offset kept when none was committed).
   */
  lag: number;
}

/** Where the group stands on every partition of `topic`. */
export async function partitionLags(
  admin: OffsetsAdmin,
  topic: string,
  groupId: string,
): Promise<PartitionLag[]> {
  const [ends, groups] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  const committed = new Map<number, { offset: number; handled: number | null }>();
  for (const p of groups.find((g) => g.topic === topic)?.partitions ?? []) {
    const offset = Number(p.offset);
    if (offset >= 0) committed.set(p.partition, { offset, handled: handledOffset(p.metadata) });
  }
  return ends.map((p) => {
    const end = Number(p.high);
    const low = Number(p.low);
    const at = committed.get(p.partition);
    const consumed = Math.max(at?.handled ?? at?.offset ?? low, at?.offset ?? low, low);
    return {
      partition: p.partition,
      end,
      committed: at?.offset ?? null,
      handled: at?.handled ?? null,
      lag: Math.max(0, end - consumed),
    };
  }).sort((a, b) => a.partition - b.partition);
}

/** One line of per-partition lag, e.g. `consumer lag 12 records (partition 0: 10, 1: 2, 2: 0)`. */
export function lagText(lags: PartitionLag[]): string {
  const total = lags.reduce((sum, p) => sum + p.lag, 0);
  const each = lags.map((p) => `${p.partition}: ${p.lag}`).join(", ");
  return `consumer lag ${total} record${total === 1 ? "" : "s"} (partition ${each})`;
}

/** Options of {@linkcode DrainWatch}. */
export interface DrainWatchOptions {
  admin: OffsetsAdmin;
  topic: string;
  groupId: string;
  /** Milliseconds between two looks at the group's offsets (default 1000). */
  intervalMs?: number;
  /** Waits `ms` (default: a timer); a test passes its own. */
  sleep?: (ms: number) => Promise<void>;
}

/** Waits until the group has consumed every partition up to the end it had when the watch began. */
export class DrainWatch {
  readonly #o: DrainWatchOptions;
  #marks: Map<number, number> | undefined;
  #last: PartitionLag[] = [];
  #stopped = false;

  constructor(options: DrainWatchOptions) {
    this.#o = options;
  }

  /** Notes every partition's end offset: the records the drain covers. */
  async begin(): Promise<Map<number, number>> {
    const ends = await this.#o.admin.fetchTopicOffsets(this.#o.topic);
    this.#marks = new Map(ends.map((p) => [p.partition, Number(p.high)]));
    return new Map(this.#marks);
  }

  /** The partitions not yet consumed up to their marks, with what is left on each. */
  async remaining(): Promise<{ partition: number; left: number }[]> {
    if (!this.#marks) throw new Error("DrainWatch.begin() was not called");
    this.#last = await partitionLags(this.#o.admin, this.#o.topic, this.#o.groupId);
    const left: { partition: number; left: number }[] = [];
    for (const [partition, mark] of this.#marks) {
      const p = this.#last.find((l) => l.partition === partition);
      // Consumed up to: the offset handled (see PartitionLag.lag), as the lag counts it.
      const at = p ? p.end - p.lag : 0;
      if (at < mark) left.push({ partition, left: mark - at });
    }
    return left;
  }

  /** Resolves once nothing remains (`true`), or `false` when {@linkcode DrainWatch.stop} is called first. */
  async done(): Promise<boolean> {
    const sleep = this.#o.sleep ??
      ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    while (!this.#stopped) {
      try {
        if ((await this.remaining()).length === 0) return true;
      } catch {
        // The broker did not answer this time: look again.
      }
      await sleep(this.#o.intervalMs ?? 1000);
    }
    return false;
  }

  /** The lags seen at the last look. */
  lastLags(): PartitionLag[] {
    return [...this.#last];
  }

  stop(): void {
    this.#stopped = true;
  }
}
