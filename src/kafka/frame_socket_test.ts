import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import Connection from "kafkajs/src/network/connection.js";
import {
  type FrameConn,
  FrameSocket,
  frameSocketFactory,
  takeWholeResponses,
} from "./frame_socket.ts";

/** A Kafka response: 4-byte size, then `size` bytes of a pattern. */
function response(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(4 + size);
  new DataView(bytes.buffer).setInt32(0, size);
  for (let i = 0; i < size; i++) bytes[4 + i] = (seed * 31 + i * 7) & 0xff;
  return bytes;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A connection that serves `pieces` to reads (a read takes at most one piece), then the end, or
 * (`open`) waits for more ({@linkcode FakeConn.feed}) until it is closed.
 */
class FakeConn implements FrameConn {
  readonly written: Uint8Array[] = [];
  closed = 0;
  #pieces: Uint8Array[];
  readonly #writeAtMost: number;
  readonly #open: boolean;
  #wake: (() => void) | undefined;

  constructor(pieces: Uint8Array[], writeAtMost = Infinity, open = false) {
    this.#pieces = pieces.map((p) => p.slice());
    this.#writeAtMost = writeAtMost;
    this.#open = open;
  }

  feed(bytes: Uint8Array): void {
    this.#pieces.push(bytes.slice());
    this.#wake?.();
  }

  async read(into: Uint8Array): Promise<number | null> {
    let piece = this.#pieces[0];
    while (!piece) {
      if (!this.#open || this.closed > 0) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
      piece = this.#pieces[0];
    }
    const n = Math.min(piece.length, into.length);
    into.set(piece.subarray(0, n));
    if (n === piece.length) this.#pieces.shift();
    else this.#pieces[0] = piece.subarray(n);
    return n;
  }

  write(data: Uint8Array): Promise<number> {
    if (this.closed > 0) return Promise.reject(new Deno.errors.BadResource("closed"));
    const n = Math.min(data.length, this.#writeAtMost);
    this.written.push(data.slice(0, n));
    return Promise.resolve(n);
  }

  close(): void {
    this.closed++;
    this.#wake?.();
  }

  unref(): void {}
}

/** Runs a socket on `conn` until it ends or fails; returns what it emitted. */
async function drive(conn: FakeConn): Promise<{ data: Buffer[]; end: number; errors: Error[] }> {
  const seen = { data: [] as Buffer[], end: 0, errors: [] as Error[] };
  const done = Promise.withResolvers<void>();
  const socket = new FrameSocket("broker", 9092, () => {}, () => Promise.resolve(conn));
  socket.on("data", (d: Buffer) => seen.data.push(d));
  socket.on("end", () => {
    seen.end++;
    done.resolve();
  });
  socket.on("error", (e: Error) => {
    seen.errors.push(e);
    done.resolve();
  });
  await done.promise;
  return seen;
}

/** Cuts `bytes` at random places, into pieces of 1 byte to 100 KiB. */
function cut(bytes: Uint8Array, random: () => number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = random() < 0.3 ? 1 + Math.floor(random() * 8) : 1 + Math.floor(random() * 100_000);
    pieces.push(bytes.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

Deno.test("FrameSocket emits each response whole, however the stream is cut", async () => {
  let state = 7;
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 20; round++) {
    const responses = [0, 5, 70_000, 3, 65_532, 65_533, 1_000_000, 12].map((size, i) =>
      response(size, round * 10 + i)
    );
    const seen = await drive(new FakeConn(cut(concat(responses), random)));
    assert.equal(seen.errors.length, 0);
    assert.equal(seen.end, 1);
    assert.equal(seen.data.length, responses.length);
    seen.data.forEach((d, i) => assert.deepEqual(new Uint8Array(d), responses[i]));
  }
});

Deno.test("FrameSocket: the broker closing mid-response ends the socket without that response", async () => {
  const whole = response(10, 1);
  const partial = response(200_000, 2).subarray(0, 150_000);
  const small = response(100, 3).subarray(0, 50);
  for (const tail of [partial, small, new Uint8Array([0, 0])]) {
    const conn = new FakeConn([whole, tail]);
    const seen = await drive(conn);
    assert.equal(seen.data.length, 1);
    assert.equal(seen.end, 1);
    assert.equal(seen.errors.length, 0);
    assert.equal(conn.closed, 1);
  }
});

Deno.test("FrameSocket: a size no Kafka response has is an error naming the broker", async () => {
  for (const size of [-1, 2 ** 31 - 1]) {
    const bad = new Uint8Array(8);
    new DataView(bad.buffer).setInt32(0, size);
    const conn = new FakeConn([response(3, 1), bad]);
    const seen = await drive(conn);
    assert.equal(seen.data.length, 1);
    assert.equal(seen.end, 0);
    assert.match(
      seen.errors[0]?.message ?? "",
      new RegExp(`broker at broker:9092 sent a response of ${size} bytes`),
    );
    assert.equal(conn.closed, 1);
  }
});

Deno.test("FrameSocket writes everything, in order, then end() closes without an event", async () => {
  const conn = new FakeConn([], 3, true);
  const connected = Promise.withResolvers<void>();
  const socket = new FrameSocket("b", 1, () => connected.resolve(), () => Promise.resolve(conn));
  let events = 0;
  for (const name of ["data", "end", "error"]) socket.on(name, () => events++);
  await connected.promise;
  socket.write(new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
  socket.write("AB", "binary");
  socket.end();
  // A response that arrives after end() is not emitted, nor is anything written after it.
  conn.feed(response(3, 1));
  assert.equal(socket.write(new Uint8Array([9])), false);
  while (conn.closed === 0) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(concat(conn.written), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 65, 66]));
  assert.equal(conn.closed, 1);
  assert.equal(events, 0);
});

Deno.test("FrameSocket: end() or destroy() while the connection opens cancels the opening", async () => {
  for (const stop of ["end", "destroy"] as const) {
    let signal: AbortSignal | undefined;
    const opened = Promise.withResolvers<FrameConn>();
    let events = 0;
    const socket = new FrameSocket("b", 1, () => events++, (_host, _port, s) => {
      signal = s;
      return opened.promise;
    });
    for (const name of ["data", "end", "error"]) socket.on(name, () => events++);
    socket[stop]();
    assert.equal(signal?.aborted, true);
    // A connection that opens anyway is closed at once, and nothing is emitted.
    const late = new FakeConn([response(1, 1)], Infinity, true);
    opened.resolve(late);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(late.closed, 1);
    assert.equal(events, 0);
  }
  // Deno.connect itself stops: a connection to an address that never answers (TEST-NET-1) is
  // still opening when the test ends unless destroy() cancelled it, and the test's op sanitizer
  // fails on a pending connect.
  const socket = new FrameSocket("192.0.2.1", 9, () => {});
  socket.on("error", () => {});
  await new Promise((r) => setTimeout(r, 20));
  socket.destroy();
});

Deno.test("FrameSocket: a write after the broker closed the connection is an error", async () => {
  const conn = new FakeConn([response(2, 1)]);
  const socket = new FrameSocket("broker", 9092, () => {}, () => Promise.resolve(conn));
  const ended = Promise.withResolvers<void>();
  socket.on("end", () => ended.resolve());
  const errors: (Error & { code?: string })[] = [];
  socket.on("error", (e: Error) => errors.push(e));
  await ended.promise;
  assert.equal(socket.write(new Uint8Array([1])), false);
  await new Promise((r) => setTimeout(r, 1));
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.code, "EPIPE");
  assert.match(errors[0]?.message ?? "", /broker:9092/);
  assert.equal(conn.written.length, 0);
});

Deno.test("FrameSocket: a refused connection is an error in Node's words, with its code", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const failed = Promise.withResolvers<Error & { code?: string }>();
  const socket = new FrameSocket("127.0.0.1", port, () => failed.reject(new Error("connected")));
  socket.on("error", (e: Error) => failed.resolve(e));
  const error = await failed.promise;
  assert.equal(error.message, `connect ECONNREFUSED 127.0.0.1:${port}`);
  assert.equal(error.code, "ECONNREFUSED");
});

Deno.test("frameSocketFactory() reads responses from a real connection, then closes it", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const responses = [response(20, 1), response(300_000, 2), response(0, 3)];
  const served = (async () => {
    const conn = await listener.accept();
    const request = new Uint8Array(4);
    assert.equal(await conn.read(request), 4);
    for (const r of responses) {
      for (let sent = 0; sent < r.length;) sent += await conn.write(r.subarray(sent));
    }
    // Wait for the client to close.
    while ((await conn.read(new Uint8Array(16))) !== null);
    conn.close();
  })();
  const seen: Buffer[] = [];
  const all = Promise.withResolvers<void>();
  const connected = Promise.withResolvers<void>();
  const socket = frameSocketFactory()({
    host: "127.0.0.1",
    port: listener.addr.port,
    ssl: false as never,
    onConnect: () => connected.resolve(),
  });
  socket.on("data", (d: Buffer) => {
    seen.push(d);
    if (seen.length === responses.length) all.resolve();
  });
  await connected.promise;
  socket.write(Buffer.from([1, 2, 3, 4]));
  await all.promise;
  socket.end();
  await served;
  listener.close();
  seen.forEach((d, i) => assert.deepEqual(new Uint8Array(d), responses[i]));
});

interface ConnectionState {
  chunks: Uint8Array[];
  bytesBuffered: number;
  bytesNeeded: number;
  authHandlers: null;
  requestQueue: { fulfillRequest(r: { correlationId: number; payload: Buffer }): void };
}

/** Kafka response with a correlation id and a payload. */
function kafkaResponse(correlationId: number, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + payload.length);
  out.writeInt32BE(4 + payload.length, 0);
  out.writeInt32BE(correlationId, 4);
  out.set(payload, 8);
  return out;
}

Deno.test("takeWholeResponses(): kafkajs takes a whole response without copying it", () => {
  takeWholeResponses();
  takeWholeResponses();
  const fulfilled: { correlationId: number; payload: Buffer }[] = [];
  const state: ConnectionState = {
    chunks: [],
    bytesBuffered: 0,
    bytesNeeded: 4,
    authHandlers: null,
    requestQueue: { fulfillRequest: (r) => fulfilled.push(r) },
  };
  const processData = (Connection as unknown as {
    prototype: { processData(this: ConnectionState, raw: Uint8Array): void };
  }).prototype.processData;
  const first = kafkaResponse(1, new Uint8Array([1, 2, 3]));
  const second = kafkaResponse(2, new Uint8Array(100_000).fill(9));
  processData.call(state, first);
  processData.call(state, second);
  assert.deepEqual(fulfilled.map((r) => r.correlationId), [1, 2]);
  assert.deepEqual([...fulfilled[0]!.payload], [1, 2, 3]);
  // The second payload is a view of the buffer the socket emitted, not a copy.
  assert.equal(fulfilled[1]!.payload.buffer, second.buffer);
  assert.equal(fulfilled[1]!.payload.length, 100_000);
  // Pieces still join: a third response in three pieces.
  const third = kafkaResponse(3, new Uint8Array([7, 8, 9, 10]));
  for (const piece of [third.subarray(0, 2), third.subarray(2, 9), third.subarray(9)]) {
    processData.call(state, piece);
  }
  assert.deepEqual(fulfilled.map((r) => r.correlationId), [1, 2, 3]);
  assert.deepEqual([...fulfilled[2]!.payload], [7, 8, 9, 10]);
});
