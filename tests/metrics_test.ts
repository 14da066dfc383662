/**
 * The metrics endpoint of the real CLI, scraped over HTTP while it rebuilds a topic: counters,
 * the group's lag per partition, and a health check that says 200 while it consumes and commits.
 * (The 503 of a full disk is checked in full_disk_test.ts.)
 */
import assert from "node:assert/strict";
import { metricsUrl, scrapeUntil } from "./_metrics.ts";
import {
  join,
  produceTree,
  startDownloader,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { createTopic, uniqueGroupId } from "./_kafka.ts";

Deno.test("/metrics and /healthz answer over HTTP while the CLI rebuilds a topic", async () => {
  const root = await tempDir("src");
  await writeRandomFile(join(root, "a.bin"), 300_000);
  await writeRandomFile(join(root, "d/b.bin"), 100_000);
  await writeRandomFile(join(root, "d/c.bin"), 5_000);
  const topic = await createTopic(2, "metrics");
  const group = uniqueGroupId("metrics");
  await produceTree(topic, root);
  const out = await tempDir("out");
  const cli = startDownloader(out, topic, group, "--metrics_port", "0");
  try {
    await cli.waitFor(/Metrics at /);
    const url = metricsUrl(cli.output);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    await cli.waitFor(/successfully reconstructed from stream/, 60_000, 3);
    await waitForCommitted(group, topic);
    const text = await scrapeUntil(url, [
      /^dfdd_files_published_total 3$/m,
      /^dfdd_bytes_written_total 405000$/m,
      /^dfdd_consumer_lag\{partition="0"\} 0$/m,
      /^dfdd_consumer_lag\{partition="1"\} 0$/m,
      // The second consumer may join after the files are done.
      /^dfdd_consumers_in_group 2$/m,
    ]);
    assert.match(text, /^dfdd_files_in_progress 0$/m);
    assert.match(text, /^dfdd_writes_stalled 0$/m);
    assert.match(text, /^dfdd_last_commit_age_seconds \d+\.\d+$/m);
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.match(await health.text(), /^ok: 2 of 2 consumers in the group, last commit \d+ s ago/);
    assert.equal(await cli.quit(), 0);
    // Gone with the process.
    await assert.rejects(fetch(`${url}/healthz`));
  } finally {
    await cli.kill();
  }
});
