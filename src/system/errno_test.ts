import assert from "node:assert/strict";
import { ERRNO, errnoName } from "./errno.ts";

Deno.test("errnoName() names every value of ERRNO, and nothing else", () => {
  for (const [name, value] of Object.entries(ERRNO)) assert.equal(errnoName(value), name);
  assert.equal(errnoName(28), "ENOSPC");
  assert.equal(errnoName(0), undefined);
  assert.equal(errnoName(9999), undefined);
});

Deno.test("ERRNO holds no value twice", () => {
  const values = Object.values(ERRNO);
  assert.equal(new Set(values).size, values.length);
});
