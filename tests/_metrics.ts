/**
 * Helpers for tests of the metrics endpoint: its URL from the CLI's log, and scraping it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { sleep } from "./_cli.ts";

/** The endpoint's base URL, from the CLI's log line. */
export function metricsUrl(output: string): string {
  const m = output.match(/Metrics at (http:\/\/\S+)\/metrics, health at/);
  assert.ok(m, `no metrics line in:\n${output}`);
  return m[1]!;
}

/** Scrapes `/metrics` until every pattern matches (the lag is polled every 5 s). */
export async function scrapeUntil(url: string, patterns: RegExp[], timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let text = "";
  while (Date.now() < deadline) {
    text = await (await fetch(`${url}/metrics`)).text();
    if (patterns.every((p) => p.test(text))) return text;
    await sleep(500);
  }
  assert.fail(`/metrics never matched ${patterns.filter((p) => !p.test(text))}:\n${text}`);
}
