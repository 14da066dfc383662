import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Kafka, logLevel } from "kafkajs";
import { startDelayProxy } from "../tools/bench/delay_proxy.ts";
import { type Broker, freePort, startBroker } from "../tools/broker.ts";

/** An echo server on a free port: each connection gets back what it sends, then the end. */
function echoServer(): { port: number; close: () => Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handled = new Set<Promise<void>>();
  const serving = (async () => {
    try {
      for await (const conn of listener) {
        const h = (async () => {
          try {
            const buf = new Uint8Array(64 * 1024);
            for (;;) {
              const n = await conn.read(buf);
              if (n === null) break;
              for (let done = 0; done < n;) done += await conn.write(buf.subarray(done, n));
            }
            await conn.closeWrite();
          } catch {
            // The proxy closed the connection.
          } finally {
            try {
              conn.close();
            } catch { /* closed */ }
          }
        })();
        handled.add(h);
      }
    } catch {
      // closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      await serving;
      await Promise.all(handled);
    },
  };
}

/** Sends `data` through a new connection to `port`, reads until the end; returns what came back. */
async function roundTrip(port: number, data: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const reading = (async () => {
      const parts: Uint8Array[] = [];
      for (;;) {
        const buf = new Uint8Array(64 * 1024);
        const n = await conn.read(buf);
        if (n === null) break;
        parts.push(buf.subarray(0, n));
      }
      return new Uint8Array(Buffer.concat(parts));
    })();
    for (let done = 0; done < data.length;) done += await conn.write(data.subarray(done));
    await conn.closeWrite();
    return await reading;
  } finally {
    conn.close();
  }
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(out.subarray(at, at + 65536));
  return out;
}

Deno.test("the delay proxy carries every byte both ways, in order, and ends with the target", async () => {
  const echo = echoServer();
  const proxy = startDelayProxy({ hostname: "127.0.0.1", port: echo.port }, { rttMs: 2 });
  try {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const [a, b] = await Promise.all([roundTrip(proxy.port, data), roundTrip(proxy.port, data)]);
    assert.equal(a.length, data.length);
    assert.deepEqual(a, data);
    assert.deepEqual(b, data);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

Deno.test("the delay proxy adds its round-trip time, which can change while it runs", async () => {
  const echo = echoServer();
  const proxy = startDelayProxy({ hostname: "127.0.0.1", port: echo.port }, { rttMs: 150 });
  try {
    const ping = new Uint8Array([1, 2, 3]);
    let t0 = performance.now();
    assert.deepEqual(await roundTrip(proxy.port, ping), ping);
    const far = performance.now() - t0;
    assert.ok(far >= 140, `a 150 ms round trip took ${far.toFixed(0)} ms`);

    proxy.rttMs = 0;
    t0 = performance.now();
    assert.deepEqual(await roundTrip(proxy.port, ping), ping);
    const near = performance.now() - t0;
    assert.ok(near < 100, `with no delay a round trip took ${near.toFixed(0)} ms`);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

Deno.test("the delay proxy closes a client whose target refuses, and close() ends open connections", async () => {
  const refused = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (refused.addr as Deno.NetAddr).port;
  refused.close();
  const proxy = startDelayProxy({ hostname: "127.0.0.1", port });
  try {
    assert.deepEqual(await roundTrip(proxy.port, new Uint8Array([9])), new Uint8Array());
  } finally {
    await proxy.close();
  }

  const echo = echoServer();
  const open = startDelayProxy({ hostname: "127.0.0.1", port: echo.port });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: open.port });
  try {
    await conn.write(new Uint8Array([1]));
    const buf = new Uint8Array(8);
    assert.equal(await conn.read(buf), 1);
    await open.close(); // must not wait for the client to end
    const after = await conn.read(buf).catch(() => null);
    assert.equal(after, null);
  } finally {
    conn.close();
    await echo.close();
  }
});

Deno.test("the delay proxy's close() does not wait out the delays of bytes in flight", async () => {
  const echo = echoServer();
  const proxy = startDelayProxy({ hostname: "127.0.0.1", port: echo.port }, { rttMs: 4000 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    await conn.write(new Uint8Array(1000));
    await new Promise((resolve) => setTimeout(resolve, 50)); // read by the proxy, held for 2 s
    const t0 = performance.now();
    await proxy.close();
    const took = performance.now() - t0;
    assert.ok(took < 1000, `close() waited ${took.toFixed(0)} ms for the delayed bytes`);
    assert.equal(await conn.read(new Uint8Array(8)).catch(() => null), null);
  } finally {
    conn.close();
    await echo.close();
  }
});

Deno.test("a broker advertised at the proxy's port: clients that bootstrap on its own port go through the proxy", async () => {
  const port = freePort();
  const proxy = startDelayProxy({ hostname: "127.0.0.1", port });
  let broker: Broker | undefined;
  const kafka = new Kafka({
    clientId: "delay-proxy-test",
    brokers: [`127.0.0.1:${port}`],
    logLevel: logLevel.NOTHING,
  });
  try {
    broker = await startBroker({ port, advertisedPort: proxy.port, log: () => {} });
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({
        topics: [{ topic: "far", numPartitions: 1 }],
        waitForLeaders: true,
      });
      const timed = async () => {
        const t0 = performance.now();
        // Asked of the partition's leader: at its advertised address, the proxy.
        const offsets = await admin.fetchTopicOffsets("far");
        assert.equal(offsets.length, 1);
        return performance.now() - t0;
      };
      const near = await timed();
      proxy.rttMs = 400;
      const far = await timed();
      assert.ok(far >= 390, `with 400 ms on the proxy, a request took ${far.toFixed(0)} ms`);
      assert.ok(near < 390, `with no delay, a request took ${near.toFixed(0)} ms`);
    } finally {
      proxy.rttMs = 0;
      await admin.disconnect();
    }
  } finally {
    await broker?.stop();
    await proxy.close();
  }
});
