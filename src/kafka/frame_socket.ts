/**
 * The sockets kafkajs talks to brokers through: a plaintext connection reads each Kafka response
 * straight into one buffer of the response's size and hands it to kafkajs whole.
 *
 * kafkajs's default socket (`node:net`) hands over the pieces the network delivered, each in a
 * buffer of its own, and kafkajs joins the pieces of a response with `Buffer.concat`. So every
 * fetched byte was copied twice and held twice until the garbage collector freed the pieces.
 * {@linkcode FrameSocket} reads a response's 4-byte size, then reads the response into a buffer of
 * that size, and emits it as one `data` event. {@linkcode takeWholeResponses} then stops kafkajs
 * from joining that buffer to the empty rest of the previous response, which it otherwise copies.
 * Reading a topic this way takes about a third less CPU (BENCHMARKS.md). TLS connections are made
 * as kafkajs makes them.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { EventEmitter } from "node:events";
import net from "node:net";
import tls from "node:tls";
import type { ISocketFactory } from "kafkajs";
// kafkajs's connection class, whose handling of incoming bytes `takeWholeResponses` adjusts.
import Connection from "kafkajs/src/network/connection.js";

/** Bytes read at once while responses are small; a larger response is read into its own buffer. */
const STAGE_BYTES = 64 * 1024;

/** Largest response accepted: a larger size means the stream is not Kafka's. */
export const MAX_RESPONSE_BYTES = 1024 * 1024 * 1024;

/** Keep-alive delay of kafkajs's own sockets (milliseconds). */
const KEEP_ALIVE_MS = 60_000;

/** What {@linkcode FrameSocket} needs of a connection (a `Deno.TcpConn` in the program). */
export interface FrameConn {
  read(into: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  close(): void;
  unref(): void;
}

/** Opens a connection (`Deno.connect`, with Nagle's algorithm off and keep-alive on); `signal` cancels it. */
export type Connect = (host: string, port: number, signal: AbortSignal) => Promise<FrameConn>;

const denoConnect: Connect = async (host, port, signal) => {
  const conn = await Deno.connect({ hostname: host, port, transport: "tcp", signal });
  conn.setNoDelay(true);
  conn.setKeepAlive(true);
  return conn;
};

/**
 * A socket for kafkajs (the part of `net.Socket` it uses: the `data`, `end` and `error` events,
 * `write`, `end` and `unref`; and `destroy`) that emits each Kafka response, its size included, as one
 * `data` event. After `end` or `destroy`, or once it emitted `end` or `error`, it emits nothing but
 * an error for each write that meets a connection the broker or an error closed (as `node:net`
 * does, so that kafkajs fails the request instead of waiting for its reply).
 */
export class FrameSocket extends EventEmitter {
  #conn: FrameConn | undefined;
  /** `end` was called: what was written before it is still sent, nothing more is emitted. */
  #ending = false;
  /** `destroy` was called. */
  #destroyed = false;
  /** The connection is closed (or was never opened). */
  #closed = false;
  #unref = false;
  #writing: Promise<void> = Promise.resolve();
  readonly #opening = new AbortController();
  readonly #address: string;

  constructor(host: string, port: number, onConnect: () => void, connect: Connect = denoConnect) {
    super();
    this.#address = `${host}:${port}`;
    connect(host, port, this.#opening.signal).then((conn) => {
      if (this.#closed || this.#ending || this.#destroyed) return conn.close();
      this.#conn = conn;
      if (this.#unref) conn.unref();
      onConnect();
      void this.#read(conn);
    }, (error: unknown) => this.#fail(error, "connect"));
  }

  /** Sends `data` once what was written before it is sent; after `end`, does nothing. */
  write(data: Uint8Array | string, encoding?: BufferEncoding): boolean {
    if (this.#ending || this.#destroyed) return false;
    if (this.#closed) {
      this.#writeAfterClose();
      return false;
    }
    const bytes = typeof data === "string" ? Buffer.from(data, encoding ?? "utf8") : data;
    this.#writing = this.#writing.then(async () => {
      if (this.#destroyed) return;
      if (this.#closed) {
        if (!this.#ending) this.#writeAfterClose();
        return;
      }
      const conn = this.#conn;
      if (!conn) throw new Error("nothing can be written before the connection opens");
      for (let sent = 0; sent < bytes.length;) sent += await conn.write(bytes.subarray(sent));
    }).catch((error: unknown) => this.#fail(error, "write"));
    return true;
  }

  /** Closes the connection once what was written is sent (or stops opening it). */
  end(): this {
    if (this.#ending || this.#destroyed) return this;
    this.#ending = true;
    if (!this.#conn) this.#opening.abort();
    void this.#writing.finally(() => {
      this.#closed = true;
      this.#close();
    });
    return this;
  }

  /** Closes the connection now (or stops opening it). */
  destroy(): this {
    this.#destroyed = true;
    this.#closed = true;
    if (!this.#conn) this.#opening.abort();
    this.#close();
    return this;
  }

  /** The connection no longer keeps the process alive. */
  unref(): this {
    this.#unref = true;
    this.#conn?.unref();
    return this;
  }

  async #read(conn: FrameConn): Promise<void> {
    const stage = new Uint8Array(STAGE_BYTES);
    const view = new DataView(stage.buffer);
    let start = 0;
    let end = 0;
    try {
      for (;;) {
        while (end - start >= 4) {
          const size = view.getInt32(start);
          if (size < 0 || size > MAX_RESPONSE_BYTES) {
            throw new RangeError(
              `The broker at ${this.#address} sent a response of ${size} bytes, which no Kafka response has`,
            );
          }
          const total = 4 + size;
          let response: Buffer;
          if (end - start >= total) {
            response = Buffer.allocUnsafe(total);
            response.set(stage.subarray(start, start + total));
            start += total;
          } else if (total > STAGE_BYTES) {
            response = Buffer.allocUnsafeSlow(total);
            response.set(stage.subarray(start, end));
            let filled = end - start;
            start = end = 0;
            while (filled < total) {
              const n = await conn.read(response.subarray(filled));
              if (n === null) return this.#ended();
              filled += n;
            }
          } else {
            break;
          }
          if (this.#ending || this.#closed || this.#destroyed) return;
          this.emit("data", response);
        }
        if (start > 0) {
          stage.copyWithin(0, start, end);
          end -= start;
          start = 0;
        }
        const n = await conn.read(stage.subarray(end));
        if (n === null) return this.#ended();
        end += n;
      }
    } catch (error) {
      this.#fail(error, "read");
    }
  }

  #close(): void {
    try {
      this.#conn?.close();
    } catch {
      // Closed already.
    }
  }

  /** The broker closed the connection. */
  #ended(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#close();
    if (!this.#ending && !this.#destroyed) this.emit("end");
  }

  /** A write met a connection the broker or an error closed: an error, as `node:net` gives. */
  #writeAfterClose(): void {
    queueMicrotask(() => {
      const error = new Error(`write EPIPE ${this.#address}: the connection is closed`);
      this.emit("error", Object.assign(error, { code: "EPIPE" }));
    });
  }

  #fail(error: unknown, step: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#close();
    if (this.#ending || this.#destroyed) return;
    // Node's words (`connect ECONNREFUSED host:port`) where the error has a code, else Deno's own
    // error (a refused permission stays a `NotCapable`).
    const code = (error as { code?: unknown } | undefined)?.code;
    this.emit(
      "error",
      typeof code === "string"
        ? Object.assign(new Error(`${step} ${code} ${this.#address}`, { cause: error }), { code })
        : error,
    );
  }
}

let wholeResponsesTaken = false;

/**
 * Lets kafkajs take a response that arrived whole without copying it. After each response, kafkajs
 * keeps the rest of what it had read, usually nothing, as the first piece of the next response, so
 * even a response that arrives whole is joined to an empty piece, that is, copied. Here an empty
 * rest is dropped first. Nothing else changes: the bytes kafkajs sees are the same. Idempotent.
 */
export function takeWholeResponses(): void {
  if (wholeResponsesTaken) return;
  wholeResponsesTaken = true;
  const prototype = (Connection as { prototype?: { processData?: unknown } }).prototype;
  const processData = prototype?.processData;
  if (!prototype || typeof processData !== "function") return;
  prototype.processData = function (this: { chunks?: Uint8Array[] }, rawData: Uint8Array) {
    if (this.chunks?.length === 1 && this.chunks[0]!.length === 0) this.chunks = [];
    return processData.call(this, rawData);
  };
}

/**
 * kafkajs's `socketFactory`: a {@linkcode FrameSocket} for plaintext connections, `node:tls` for
 * TLS (as kafkajs's own factory makes it). Installs {@linkcode takeWholeResponses}.
 */
export function frameSocketFactory(connect?: Connect): ISocketFactory {
  takeWholeResponses();
  return ({ host, port, ssl, onConnect }) => {
    if (ssl) {
      const socket = tls.connect(
        Object.assign({ host, port }, !net.isIP(host) ? { servername: host } : {}, ssl),
        onConnect,
      );
      socket.setKeepAlive(true, KEEP_ALIVE_MS);
      return socket;
    }
    return new FrameSocket(host, port, onConnect, connect) as unknown as net.Socket;
  };
}
