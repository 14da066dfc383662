/**
 * The process's warning channel: Node-style warnings raised by npm packages, printed as one
 * readable line, without the one kafkajs raises for nothing.
 *
 * Kept apart from the kafkajs modules so the CLI can install it before kafkajs loads.
 *
 * @module
 */
import process from "node:process";

/**
 * Keeps kafkajs 2.2.4's harmless `TimeoutNegativeWarning` (it schedules a timer with a negative
 * delay on every connection) off the console; every other process warning goes to `print`.
 * For a program's entry point (the CLI, the tools, the tests): it replaces the process's
 * warning listeners.
 */
export function quietKafkajsTimerWarnings(
  print: (line: string) => void = (line) => console.error(line),
): void {
  process.removeAllListeners("warning");
  process.on("warning", (warning) => {
    if (warning.name !== "TimeoutNegativeWarning") print(`${warning.name}: ${warning.message}`);
  });
}
