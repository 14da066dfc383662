/**
 * Deterministic crash points for crash tests: `DFDD_CRASH_AT=<point>[:<n>]` makes the CLI stop
 * dead the `n`-th time (default: the first) it reaches `<point>`, without flushing, committing or
 * closing anything, as a power cut or `kill -9` would at that step.
 *
 * Points, in the order a chunk meets them: `after-data-write` (bytes written to the partial file,
 * not yet synced), `after-journal-write` (journal line appended, state file not yet replaced),
 * `during-state-file-write` (temporary state file written, not yet synced or renamed),
 * `between-flush-and-commit` (everything synced, offsets not yet committed), `before-publish`
 * (file complete and checked, not yet renamed into place), `after-publish` (renamed into place,
 * its journal not yet removed). The re-keyer (`--rekey_to`) has one: `rekey-before-commit` (a
 * batch's records and offsets sent in its transaction, the transaction not yet committed).
 *
 * @module
 */
import type { CrashHook, CrashPoint } from "./state_file.ts";

/** The environment variable that arms a crash point. */
export const CRASH_ENV = "DFDD_CRASH_AT";

/** Every crash point, in the order a chunk meets them. */
export const CRASH_POINTS: readonly CrashPoint[] = [
  "after-data-write",
  "after-journal-write",
  "during-state-file-write",
  "between-flush-and-commit",
  "before-publish",
  "after-publish",
];

/** The re-keyer's crash points (`--rekey_to`). */
export const REKEYER_CRASH_POINTS: readonly CrashPoint[] = ["rekey-before-commit"];

/**
 * Builds the hook armed by `spec` (`<point>` or `<point>:<n>`), or `undefined` when `spec` is
 * empty. `stop` is called once, at the `n`-th arrival at the point; it must not return normally
 * (the CLI exits the process from it).
 *
 * @throws {RangeError} naming the point or count that is not valid.
 */
export function crashHookFromSpec(
  spec: string | undefined,
  stop: (point: CrashPoint) => void,
): CrashHook | undefined {
  if (spec === undefined || spec.trim() === "") return undefined;
  const [name = "", count = "1", ...rest] = spec.trim().split(":");
  const points = [...CRASH_POINTS, ...REKEYER_CRASH_POINTS];
  const point = points.find((p) => p === name);
  if (point === undefined) {
    throw new RangeError(
      `${CRASH_ENV}="${spec}" names no crash point; use one of ${points.join(", ")}`,
    );
  }
  const n = Number(count);
  if (rest.length > 0 || !Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(
      `${CRASH_ENV}="${spec}" has no valid count; write <point> or <point>:<n> with n ≥ 1`,
    );
  }
  let seen = 0;
  return (reached) => {
    if (reached === point && ++seen === n) stop(point);
  };
}
