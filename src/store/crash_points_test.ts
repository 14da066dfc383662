import assert from "node:assert/strict";
import { CRASH_POINTS, crashHookFromSpec, REKEYER_CRASH_POINTS } from "./crash_points.ts";
import type { CrashPoint } from "./state_file.ts";

Deno.test("no spec arms nothing", () => {
  assert.equal(crashHookFromSpec(undefined, () => {}), undefined);
  assert.equal(crashHookFromSpec("  ", () => {}), undefined);
});

Deno.test("a point stops at its first arrival by default, and only there", () => {
  const all = [...CRASH_POINTS, ...REKEYER_CRASH_POINTS];
  for (const point of all) {
    const stops: CrashPoint[] = [];
    const hook = crashHookFromSpec(point, (p) => stops.push(p))!;
    for (const other of all) hook(other);
    hook(point);
    assert.deepEqual(stops, [point]);
  }
});

Deno.test("a count stops at the n-th arrival", () => {
  const stops: number[] = [];
  let arrival = 0;
  const hook = crashHookFromSpec("before-publish:3", () => stops.push(arrival))!;
  for (arrival = 1; arrival <= 5; arrival++) {
    hook("after-publish");
    hook("before-publish");
  }
  assert.deepEqual(stops, [3]);
});

Deno.test("an unknown point or a bad count is refused with the valid forms", () => {
  assert.throws(
    () => crashHookFromSpec("after-lunch", () => {}),
    /names no crash point.*after-data-write/,
  );
  for (
    const spec of ["after-publish:0", "after-publish:x", "after-publish:1:2", "after-publish:1.5"]
  ) {
    assert.throws(() => crashHookFromSpec(spec, () => {}), /no valid count/, spec);
  }
});
