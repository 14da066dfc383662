/**
 * Keeping the consumers of this process near each other in the topic while rebuilt bytes pile up
 * behind gaps.
 *
 * OpenMSIStream's uploader keys every chunk by its own name, so the chunks of one file are spread
 * over all the partitions. A consumer that runs ahead of another writes chunks whose file still
 * has a hole before them (the missing chunk sits in a partition further behind): those bytes
 * cannot be hashed yet (the whole-file hash is fed in order), so they stay in the page cache until
 * the hole is filled. Consumers drift apart by themselves (each fetches on its own, and they do
 * not start at the same moment): on a 1 GiB topic of 16 MiB files, 260–410 MiB waited behind
 * gaps at the peak, and the page cache grew by as much.
 *
 * So when the bytes waiting behind gaps pass a budget, a consumer that is further on than another
 * one of this process by more than a slack waits before it starts its next record, until the one
 * behind has caught up or the bytes have fallen under the budget. "Further on" is by record
 * timestamp, the order in which the producer sent the chunks (a partition's place is the latest
 * timestamp it has started, since records do not reach a partition exactly in the order they were
 * sent); a consumer's place is that of its partition furthest behind (its partitions are fetched
 * together). Waiting only delays reading: nothing is skipped, and offsets are committed as before.
 *
 * It can never stop the group: the consumer furthest behind never waits, a consumer waits only
 * for one that has started a record in the last {@linkcode PartitionPacer.MOVING_MS}, and a
 * partition that has read everything it was given (at the end of its log) does not count.
 *
 * @module
 */

/** Options of {@linkcode PartitionPacer}. */
export interface PartitionPacerOptions {
  /** Bytes written that wait behind a gap in their file (cannot be hashed yet). */
  pastGaps: () => number;
  /** Over this many bytes behind gaps, consumers further on wait (default 64 MiB). */
  budget?: number;
  /**
   * How far apart in record time (milliseconds) consumers may be before one waits (default 250).
   * Chunks do not reach a partition exactly in the order they were sent (a producer's batches
   * for different partitions fill at different rates, and several producers interleave), and
   * waiting for a consumer that is behind only by that much would not fill any gap.
   */
  slackMs?: number;
  /** Milliseconds now (`Date.now` unless a test passes its own). */
  now?: () => number;
}

interface Member {
  /** Timestamp of the record last started, by partition, for partitions with more to read. */
  places: Map<number, number>;
  /** `now()` when it last started a record. */
  movedAt: number;
}

/** Decides when a consumer of this process waits for the others (see the module doc). */
export class PartitionPacer {
  /** A consumer that started no record for this long is not waited for. */
  static readonly MOVING_MS = 1000;

  readonly #pastGaps: () => number;
  readonly #budget: number;
  readonly #slackMs: number;
  readonly #now: () => number;
  readonly #members = new Map<number, Member>();

  constructor(options: PartitionPacerOptions) {
    this.#pastGaps = options.pastGaps;
    this.#budget = options.budget ?? 64 * 1024 * 1024;
    this.#slackMs = options.slackMs ?? 250;
    this.#now = options.now ?? Date.now;
  }

  /** Consumer `member` now holds `partitions` (after joining the group): its old places go. */
  assign(member: number, partitions: readonly number[]): void {
    const m = this.#member(member);
    for (const p of [...m.places.keys()]) if (!partitions.includes(p)) m.places.delete(p);
  }

  /** Consumer `member` left the group: it is not waited for. */
  leave(member: number): void {
    this.#members.delete(member);
  }

  /** Consumer `member` starts a record of `partition` sent at `time` (ms since the epoch). */
  starting(member: number, partition: number, time: number): void {
    const m = this.#member(member);
    m.movedAt = this.#now();
    if (!Number.isFinite(time) || time < 0) return;
    const place = m.places.get(partition);
    if (place === undefined || time > place) m.places.set(partition, time);
  }

  /** `member` has read everything of `partition` there was (the batch reached the log's end). */
  caughtUp(member: number, partition: number): void {
    this.#members.get(member)?.places.delete(partition);
  }

  /** True when `member` should wait before starting its next record. */
  shouldWait(member: number): boolean {
    const own = this.#place(member);
    if (own === undefined) return false;
    const now = this.#now();
    let behind = false;
    for (const [id, m] of this.#members) {
      if (id === member || now - m.movedAt >= PartitionPacer.MOVING_MS) continue;
      const place = this.#place(id);
      if (place !== undefined && place + this.#slackMs < own) {
        behind = true;
        break;
      }
    }
    // The sum over files in progress is the costlier test: only when someone is behind.
    return behind && this.#pastGaps() > this.#budget;
  }

  #member(member: number): Member {
    let m = this.#members.get(member);
    if (!m) this.#members.set(member, m = { places: new Map(), movedAt: -Infinity });
    return m;
  }

  /** The timestamp of the member's partition furthest behind, if any has more to read. */
  #place(member: number): number | undefined {
    const m = this.#members.get(member);
    if (!m || m.places.size === 0) return undefined;
    let min = Infinity;
    for (const t of m.places.values()) if (t < min) min = t;
    return min;
  }
}
