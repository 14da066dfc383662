/**
 * A crash at each dangerous step, chosen on purpose (`DFDD_CRASH_AT`), then a restart with the same
 * group: every file is rebuilt byte-identical, nothing stays in progress and no temporary file is
 * left behind.
 */
import assert from "node:assert/strict";
import { CRASH_ENV, CRASH_POINTS } from "../src/store/crash_points.ts";
import { STATE_DIR_NAME } from "../src/store/safe_path.ts";
import { listFiles } from "../src/wire/chunk_producer.ts";
import {
  assertSameTree,
  CliProcess,
  fastRejoinConfig,
  join,
  produceTree,
  tempDir,
  waitForCommitted,
  writeRandomFile,
} from "./_cli.ts";
import { bootstrapServers, createTopic, deleteTopic, uniqueGroupId } from "./_kafka.ts";

/** The exit status of a run stopped at a crash point (cli.ts). */
const CRASH_EXIT_CODE = 86;

for (const point of CRASH_POINTS) {
  Deno.test(`a crash ${point} loses nothing after a restart`, async () => {
    const root = await tempDir("crash_src");
    const out = await tempDir("crash_out");
    const cfgDir = await fastRejoinConfig(bootstrapServers());
    const topic = await createTopic(2, "crash");
    try {
      // Multi-chunk files (journal, state file, publish) and one-chunk files.
      for (let i = 0; i < 3; i++) await writeRandomFile(join(root, `multi/m${i}.bin`), 300_000 + i);
      for (let i = 0; i < 3; i++) await writeRandomFile(join(root, `single ${i}.txt`), 1000 + i);
      await produceTree(topic, root, undefined, 65536); // 5 chunks each for the multi/ files
      const group = uniqueGroupId("crash");
      const args = [out, "--config", cfgDir, "--topic_name", topic, "--consumer_group_id", group];

      // The second arrival, so that some work is already behind it when it stops; the whole topic
      // may come in one fetch, so the first flush before a commit may be the only one.
      const arrival = point === "between-flush-and-commit" ? 1 : 2;
      const crashed = new CliProcess(args, { [CRASH_ENV]: `${point}:${arrival}` });
      assert.equal(await crashed.exit(120_000), CRASH_EXIT_CODE, crashed.output);
      assert.match(crashed.output, new RegExp(`stopping dead at ${point}`));

      const again = new CliProcess(args);
      await waitForCommitted(group, topic, 120_000);
      await again.send("check");
      await again.waitFor(/files completely reconstructed so far/);
      assert.equal(await again.quit(), 0, again.output);
      await assertSameTree(root, out);
      const state = join(out, STATE_DIR_NAME);
      const partial = (await listFiles(join(state, "partial"))).map((p) => p.slice(state.length));
      assert.deepEqual(partial, [], "files left in progress");
      const temporaries = (await listFiles(out)).filter((p) => p.endsWith(".tmp"));
      assert.deepEqual(temporaries, [], "temporary files left behind");
      assert.doesNotMatch(again.output, /WARNING|ERROR/, again.output);
    } finally {
      await deleteTopic(topic).catch(() => {});
      for (const dir of [root, out, cfgDir.slice(0, cfgDir.lastIndexOf("/"))]) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
  });
}
