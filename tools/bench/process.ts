/**
 * Timed child processes for `deno task bench`: start a program, watch its output lines for the
 * moment its work is done, sample its peak resident memory (`VmHWM`), stop it, and make sure no
 * child outlives the benchmark (see {@linkcode killAllChildren}).
 *
 * @module
 */

/** Children still running (with their standard input), so that a failure or a signal can end them. */
const live = new Map<Deno.ChildProcess, WritableStreamDefaultWriter<Uint8Array> | undefined>();

async function exitWithin(children: Deno.ChildProcess[], ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const all = Promise.all(children.map((c) => c.status.catch(() => {})));
  const done = await Promise.race([
    all.then(() => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
  ]);
  clearTimeout(timer);
  return done;
}

/**
 * Ends every child still running: first `q` on its standard input (the downloaders then leave
 * their consumer group, so that it can be deleted), then SIGTERM, then SIGKILL.
 */
export async function killAllChildren(): Promise<void> {
  const children = [...live.keys()];
  if (children.length === 0) return;
  const quitters = [...live].filter(([, stdin]) => stdin !== undefined);
  for (const [, stdin] of quitters) {
    await stdin!.write(new TextEncoder().encode("q\n")).catch(() => {});
  }
  if (quitters.length > 0 && await exitWithin(children, 10_000)) return;
  for (const child of children) signal(child, "SIGTERM");
  if (await exitWithin(children, 3000)) return;
  for (const child of children) signal(child, "SIGKILL");
  await exitWithin(children, 3000);
}

function signal(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // already gone
  }
}

/**
 * Peak resident memory of a process so far (`VmHWM` of `/proc/<pid>/status`, read with `cat`:
 * Deno reads `/proc` only with `--allow-all`), in bytes; `undefined` when it cannot be read.
 */
export async function peakRssBytes(pid: number): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("cat", {
      args: [`/proc/${pid}/status`],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(new TextDecoder().decode(out.stdout));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** How to run one measured program. */
export interface TimedRun {
  /** Program and arguments. */
  command: string;
  args: string[];
  /** Environment (merged into ours unless `clearEnv`). */
  env?: Record<string, string>;
  clearEnv?: boolean;
  /**
   * Its work is done when this many distinct values were captured by `doneLine`'s first group
   * (e.g. file paths of "File X successfully reconstructed" lines); then it is stopped by typing
   * `q` on its standard input. Without `doneLine`, the work is done when it exits with status 0.
   */
  doneLine?: RegExp;
  doneCount?: number;
  /** Seconds before it is killed and the run fails. */
  timeoutSeconds: number;
  /** Called every `progressSeconds` with the count of done values so far and the seconds. */
  onProgress?: (done: number, seconds: number) => void;
  progressSeconds?: number;
  /** Called with every output line (stdout and stderr). */
  onLine?: (line: string) => void;
}

/** What a measured run gave. */
export interface TimedResult {
  /** Seconds from just before the process was started to its work being done. */
  seconds: number;
  /** Peak resident memory (VmHWM) while it worked, in bytes, if it could be read. */
  peakRss: number | undefined;
  /** The last output lines (for messages). */
  tail: string[];
  /** The exit status once stopped. */
  status: Deno.CommandStatus;
}

/** A run that did not finish its work. */
export class RunFailed extends Error {
  constructor(message: string, readonly tail: string[]) {
    super(`${message}\n--- last output lines ---\n${tail.slice(-25).join("\n")}`);
  }
}

async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let buf = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buf += text;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i).replace(/\r$/, ""));
      buf = buf.slice(i + 1);
    }
  }
  if (buf.length > 0) onLine(buf);
}

/** Runs one measured program to the end of its work and stops it; throws {@linkcode RunFailed}. */
export async function timedRun(run: TimedRun): Promise<TimedResult> {
  const tail: string[] = [];
  const done = new Set<string>();
  const byLine = run.doneLine !== undefined;
  let doneAt: number | undefined;
  let resolveDone: (() => void) | undefined;
  const workDone = new Promise<void>((r) => resolveDone = r);
  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > 200) tail.shift();
    run.onLine?.(line);
    if (byLine) {
      const m = run.doneLine!.exec(line);
      if (m) {
        done.add(m[1] ?? line);
        if (done.size >= (run.doneCount ?? 1) && doneAt === undefined) {
          doneAt = performance.now();
          resolveDone?.();
        }
      }
    }
  };

  const t0 = performance.now();
  const child = new Deno.Command(run.command, {
    args: run.args,
    ...(run.env ? { env: run.env } : {}),
    ...(run.clearEnv ? { clearEnv: true } : {}),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = child.stdin.getWriter();
  live.set(child, byLine ? stdin : undefined); // programs stopped by typing q
  let exited: Deno.CommandStatus | undefined;
  let exitAt = 0;
  const status = child.status.then((s) => {
    exitAt = performance.now();
    exited = s;
    live.delete(child);
    return s;
  });
  const pumps = Promise.all([pumpLines(child.stdout, onLine), pumpLines(child.stderr, onLine)])
    .catch(() => {});

  let peak: number | undefined;
  let sampling = true;
  const sample = async () => {
    const v = await peakRssBytes(child.pid);
    if (v !== undefined && exited === undefined) peak = Math.max(peak ?? 0, v);
  };
  const sampler = (async () => {
    while (sampling && exited === undefined) {
      await sample();
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const progressTimer = run.onProgress
    ? setInterval(
      () => run.onProgress!(done.size, (performance.now() - t0) / 1000),
      (run.progressSeconds ?? 10) * 1000,
    )
    : undefined;
  let timeoutTimer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((r) => {
    timeoutTimer = setTimeout(() => r("timeout"), run.timeoutSeconds * 1000);
  });

  try {
    const first = await Promise.race([
      workDone.then(() => "done" as const),
      status.then(() => "exited" as const),
      timedOut,
    ]);
    const seconds = ((doneAt ?? performance.now()) - t0) / 1000;
    if (first === "done") {
      await sample(); // VmHWM is a high-water mark: this read covers the whole work
    }
    sampling = false;
    if (first === "timeout") {
      signal(child, "SIGKILL");
      await status;
      await pumps;
      throw new RunFailed(`no result within ${run.timeoutSeconds} s (killed)`, tail);
    }
    if (first === "exited") {
      await pumps;
      const s = await status;
      if (byLine && done.size >= (run.doneCount ?? 1)) {
        // finished and exited at about the same moment: the lines were still in the pipe
      } else if (byLine || !s.success) {
        throw new RunFailed(
          `exited with status ${s.code}${s.signal ? ` (${s.signal})` : ""} before its work was ` +
            `done` + (byLine ? ` (${done.size} of ${run.doneCount ?? 1} done)` : ""),
          tail,
        );
      }
      return { seconds: ((doneAt ?? exitAt) - t0) / 1000, peakRss: peak, tail, status: s };
    }
    // Done: type q, wait for the clean stop, and kill it if it does not come.
    await stdin.write(new TextEncoder().encode("q\n")).catch(() => {});
    let stopTimer: ReturnType<typeof setTimeout> | undefined;
    const stopped = await Promise.race([
      status.then(() => true),
      new Promise<boolean>((r) => stopTimer = setTimeout(() => r(false), 60_000)),
    ]);
    clearTimeout(stopTimer);
    if (!stopped) {
      signal(child, "SIGTERM");
      const t = setTimeout(() => signal(child, "SIGKILL"), 5000);
      await status;
      clearTimeout(t);
    }
    await pumps;
    return { seconds, peakRss: peak, tail, status: await status };
  } finally {
    sampling = false;
    clearTimeout(timeoutTimer);
    if (progressTimer !== undefined) clearInterval(progressTimer);
    if (exited === undefined) {
      signal(child, "SIGKILL");
      await status;
    }
    await stdin.close().catch(() => {});
    await sampler;
  }
}
