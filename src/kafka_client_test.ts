import assert from "node:assert/strict";
import { joinedText } from "./kafka_client.ts";

Deno.test("joinedText names a member's partitions in order, with the right number", () => {
  assert.equal(
    joinedText("Consumer 1 of 2", [5, 1, 3]),
    "Consumer 1 of 2 joined the group with partitions 1, 3, 5",
  );
  assert.equal(
    joinedText("Re-keyer 2 of 2", [7]),
    "Re-keyer 2 of 2 joined the group with partition 7",
  );
  assert.equal(
    joinedText("Consumer 4 of 4", []),
    "Consumer 4 of 4 joined the group with no partitions",
  );
});
