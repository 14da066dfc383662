import assert from "node:assert/strict";
import { RateMeter } from "./rate_meter.ts";

Deno.test("the rate is taken over the last window only", () => {
  let now = 0;
  let count = 0;
  const meter = new RateMeter(() => count, { windowSeconds: 10, now: () => now, timer: false });
  assert.equal(meter.perSecond(), 0);
  // 1 MB/s for 20 s, then 5 MB/s for 10 s: the window sees only the last 10 s.
  for (let s = 1; s <= 20; s++) {
    now = s * 1000;
    count += 1e6;
    meter.sample();
  }
  for (let s = 21; s <= 30; s++) {
    now = s * 1000;
    count += 5e6;
    meter.sample();
  }
  assert.equal(Math.round(meter.perSecond()), 5e6);
  assert.equal(meter.text(), "writing 5.00 MB/s over the last 10 s");
});
