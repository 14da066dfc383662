import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { isolateConsumerOffsets, joinedText } from "./group_membership.ts";

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

Deno.test("isolateConsumerOffsets gives each consumer of a client its own committed-offsets map", () => {
  const kafka = new Kafka({ brokers: ["127.0.0.1:9"], logLevel: logLevel.NOTHING });
  const key = Object.getOwnPropertySymbols(kafka).find((s) =>
    s.description === "private:Kafka:offsets"
  );
  assert.ok(key, "kafkajs no longer keeps its offsets under the expected key");
  const slot = () => (kafka as unknown as Record<symbol, unknown>)[key];
  const shared = slot();
  kafka.consumer({ groupId: "g" });
  assert.equal(slot(), shared, "without isolation, consumers share the client's map");
  assert.equal(isolateConsumerOffsets(kafka), kafka);
  assert.equal(isolateConsumerOffsets(kafka), kafka); // a second call changes nothing
  kafka.consumer({ groupId: "g" });
  const first = slot();
  kafka.consumer({ groupId: "g" });
  const second = slot();
  assert.ok(first instanceof Map && second instanceof Map);
  assert.notEqual(first, shared);
  assert.notEqual(second, first);
});
