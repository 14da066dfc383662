import assert from "node:assert/strict";
import { jsonLine, Level, levelName, Logger } from "./logger.ts";

const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));

Deno.test("text lines carry the name, the local time and the level prefix", () => {
  const lines: string[] = [];
  const logger = new Logger({
    name: "P",
    streamLevel: Level.INFO,
    stream: (l) => lines.push(l),
    now: () => new Date(2026, 0, 2, 3, 4, 5),
  });
  logger.debug("hidden");
  logger.info("hello");
  logger.warning("careful");
  logger.error("broken");
  assert.deepEqual(lines, [
    "[P 2026-01-02 03:04:05] hello\n",
    "[P 2026-01-02 03:04:05] WARNING: careful\n",
    "[P 2026-01-02 03:04:05] ERROR: broken\n",
  ]);
});

Deno.test("JSON lines are one object per line with UTC time, level name, logger and message", () => {
  const lines: string[] = [];
  const logger = new Logger({
    name: "P",
    streamLevel: Level.INFO,
    stream: (l) => lines.push(l),
    streamFormat: "json",
    now: () => at,
  });
  logger.info('a "quoted"\nsecond line');
  logger.warning("WARNING: careful");
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.endsWith("\n") && !l.slice(0, -1).includes("\n")));
  assert.deepEqual(lines.map((l) => JSON.parse(l)), [
    {
      time: "2026-01-02T03:04:05.678Z",
      level: "info",
      logger: "P",
      message: 'a "quoted"\nsecond line',
    },
    { time: "2026-01-02T03:04:05.678Z", level: "warning", logger: "P", message: "careful" },
  ]);
  assert.equal(levelName(25), "level 25");
  assert.equal(JSON.parse(jsonLine(at, Level.CRITICAL, "P", "x")).level, "critical");
});
