/**
 * A TCP proxy that holds every byte for half a round-trip time in each direction: the
 * benchmark's stand-in for a broker far away (`deno task bench --broker-rtt-ms N`).
 *
 * Each connection it accepts is joined to a new connection to the target. Bytes are read as they
 * come and written out once their time has come, in order, so the link behaves like a long one
 * with room for everything in flight: the time a request and its response take grows by the
 * round trip, the rate a connection can carry does not shrink. The round trip can be changed
 * while connections are open (the benchmark makes the broker near while it produces a topic and
 * far while the tools read it); it applies to the bytes read after the change.
 *
 * ```ts
 * import { startDelayProxy } from "./delay_proxy.ts";
 * const proxy = startDelayProxy({ hostname: "127.0.0.1", port: 9092 }, { rttMs: 20 });
 * // clients connect to 127.0.0.1:${proxy.port}
 * proxy.rttMs = 0;
 * await proxy.close();
 * ```
 *
 * @module
 */

import { setTimeout as delay } from "node:timers/promises";

/** Bytes read from one side at a time. */
const READ_BYTES = 256 * 1024;

/** A running proxy (see the module documentation). */
export interface DelayProxy {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** Round-trip time added to each connection, in milliseconds (half each way). */
  rttMs: number;
  /** Stops listening, closes every connection and resolves when all have ended. */
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (`port`, default a free one) in front of `target`. */
export function startDelayProxy(
  target: { hostname: string; port: number },
  options: { rttMs?: number; port?: number } = {},
): DelayProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: options.port ?? 0 });
  const conns = new Set<Deno.TcpConn>();
  const pairs = new Set<Promise<void>>();
  /** Ends the delays of every connection (on close). */
  const closing = new AbortController();
  let closed = false;
  const proxy = {
    port: (listener.addr as Deno.NetAddr).port,
    rttMs: options.rttMs ?? 0,
    close: async () => {
      closed = true;
      closing.abort();
      listener.close();
      for (const c of conns) closeQuietly(c);
      await accepting;
      await Promise.all(pairs);
    },
  };
  const oneWay = () => Math.max(0, proxy.rttMs) / 2;

  const join = async (client: Deno.TcpConn) => {
    conns.add(client);
    let server: Deno.TcpConn | undefined;
    try {
      server = await Deno.connect({ ...target, transport: "tcp" });
      conns.add(server);
      if (closed) return;
      client.setNoDelay(true);
      server.setNoDelay(true);
      // When one direction fails, the other ends too: both sides are closed and its delay cut.
      const failed = new AbortController();
      const signal = AbortSignal.any([failed.signal, closing.signal]);
      const directions = [
        carry(client, server, oneWay, signal),
        carry(server, client, oneWay, signal),
      ];
      const [a, b] = [client, server];
      for (const d of directions) {
        d.catch(() => {
          failed.abort();
          closeQuietly(a);
          closeQuietly(b);
        });
      }
      await Promise.allSettled(directions);
    } catch {
      // The target refused, or a side went away: the other side is closed below.
    } finally {
      for (const c of [client, server]) {
        if (c) {
          conns.delete(c);
          closeQuietly(c);
        }
      }
    }
  };

  const accepting = (async () => {
    try {
      for await (const client of listener) {
        if (closed) {
          closeQuietly(client);
          break;
        }
        const pair = join(client);
        pairs.add(pair);
        pair.finally(() => pairs.delete(pair));
      }
    } catch {
      // The listener was closed.
    }
  })();
  return proxy;
}

/**
 * Copies `from` to `to`, writing each piece `delayMs()` after it was read; at the end of `from`,
 * ends the writing side of `to`. Rejects when either side fails or `signal` aborts.
 */
async function carry(
  from: Deno.Conn,
  to: Deno.Conn,
  delayMs: () => number,
  signal: AbortSignal,
): Promise<void> {
  const queue: { at: number; data: Uint8Array }[] = [];
  let ended = false;
  let failed: unknown;
  let wake: (() => void) | undefined;
  const reading = (async () => {
    try {
      for (;;) {
        const buf = new Uint8Array(READ_BYTES);
        const n = await from.read(buf);
        if (n === null) break;
        queue.push({ at: performance.now() + delayMs(), data: buf.subarray(0, n) });
        wake?.();
      }
    } catch (e) {
      failed = e;
    } finally {
      ended = true;
      wake?.();
    }
  })();
  try {
    for (;;) {
      const next = queue.shift();
      if (!next) {
        if (ended) break;
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
        continue;
      }
      const wait = next.at - performance.now();
      if (wait > 0) await delay(wait, undefined, { signal });
      signal.throwIfAborted();
      for (let done = 0; done < next.data.length;) {
        done += await to.write(next.data.subarray(done));
      }
    }
    if (failed !== undefined) throw failed;
    await to.closeWrite();
  } finally {
    // A failed write leaves the reader waiting on `from`: closing it ends the read.
    if (!ended) closeQuietly(from);
    await reading;
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
