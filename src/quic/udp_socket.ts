/**
 * The datagram socket under a QUIC endpoint, behind a small batch-friendly interface so that a
 * faster backend (Linux `recvmmsg`/`sendmmsg`/UDP GSO through FFI, see NOTES.md) can replace
 * `Deno.listenDatagram` without touching the QUIC loop.
 *
 * @module
 */
import { DenoSender } from "./_deno_send.ts";
import type { UdpAddress } from "./datagram_port.ts";
import { NetworkError } from "../errors.ts";

/** Receives datagrams from a {@linkcode DatagramSocket}. */
export type DatagramReceiver = (data: Uint8Array, from: UdpAddress) => void;

/**
 * A UDP socket that hands out its own send buffers. A backend may send at once or batch the
 * datagrams queued in one event-loop turn into one system call.
 *
 * @example Sending one datagram through the send-buffer protocol
 * ```ts ignore
 * import type { DatagramSocket } from "@cretoai/network";
 *
 * function sendHello(socket: DatagramSocket, to: { hostname: string; port: number }): boolean {
 *   const buffer = socket.nextSendBuffer();
 *   if (buffer === null) return false; // all buffers in flight: wait for onWritable
 *   buffer.set([0x01, 0x02]);
 *   socket.send(2, to);
 *   return true;
 * }
 * ```
 */
export interface DatagramSocket {
  /** The bound address (the real port when bound to port 0). */
  readonly localAddr: UdpAddress;
  /** Size of each send buffer, the largest datagram that {@linkcode send} can carry. */
  readonly sendBufferSize: number;
  /**
   * Starts delivering received datagrams. The data is only valid during the call.
   * Called once. A socket that delivers in batches (a wake-up and what it drained after it)
   * calls `onBatchEnd` right after the last datagram of each batch, in the same turn; others
   * never call it.
   */
  start(receiver: DatagramReceiver, onBatchEnd?: () => void): void;
  /**
   * The next free send buffer, or `null` when every buffer is in flight (then
   * {@linkcode onWritable} is called once one frees up). Calling it again without a
   * {@linkcode send} in between returns the same buffer.
   */
  nextSendBuffer(): Uint8Array | null;
  /**
   * Sends the first `length` bytes of the buffer last returned by {@linkcode nextSendBuffer}.
   * The datagram leaves no later than the end of the current event-loop turn; the buffer
   * returns to the pool when the system has taken it. Failures are counted, not thrown: UDP
   * gives no delivery guarantee and QUIC recovers losses.
   */
  send(length: number, to: UdpAddress): void;
  /** Sends a datagram from a caller's buffer; settles when the system has taken it. */
  sendCopy(data: Uint8Array, to: UdpAddress): Promise<void>;
  /** Called once when a send buffer frees up after {@linkcode nextSendBuffer} returned null. */
  onWritable: (() => void) | undefined;
  /** Datagrams the system refused to send. */
  readonly sendErrors: number;
  /** Whether datagrams to `peer` travel through a relay (a TURN relay socket says so). */
  isRelayed?(peer: UdpAddress): boolean;
  /** Closes the socket; resolves when every pending receive and send has finished. */
  close(): Promise<void>;
}

/** Options of {@linkcode DenoUdpSocket.bind}. */
export interface DenoUdpSocketOptions {
  /** Address to bind. */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /**
   * Receives kept outstanding at once, so that one event-loop turn can process several
   * datagrams before one flush (one ACK per batch instead of per packet).
   * @default {16}
   */
  receiveConcurrency?: number;
  /**
   * Send buffers in the pool. `Deno.DatagramConn.send` reads the buffer after it returns,
   * so a buffer is only reused once its send has completed.
   * @default {1024}
   */
  sendBuffers?: number;
  /**
   * Size of each send buffer in bytes.
   * @default {1500}
   */
  sendBufferSize?: number;
}

/**
 * The portable backend: `Deno.listenDatagram`, one system call per datagram.
 *
 * @example
 * ```ts
 * import { DenoUdpSocket } from "@cretoai/network";
 *
 * const socket = DenoUdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
 * console.assert(socket.localAddr.port > 0);
 * await socket.close();
 * ```
 */
export class DenoUdpSocket implements DatagramSocket {
  readonly localAddr: UdpAddress;
  readonly sendBufferSize: number;
  onWritable: (() => void) | undefined = undefined;
  #sendErrors = 0;
  #conn: Deno.DatagramConn;
  #deno: DenoSender;
  #receiveConcurrency: number;
  #receiveLoops: Promise<void>[] = [];
  #buffers: Uint8Array[];
  #free: number[];
  #inFlight = 0;
  #drained: (() => void) | undefined = undefined;
  // One pair of completion callbacks per buffer, made once: no closure per datagram.
  #onSent: (() => void)[];
  #onSendFailed: (() => void)[];
  #closed = false;

  private constructor(conn: Deno.DatagramConn, options: Required<DenoUdpSocketOptions>) {
    this.#conn = conn;
    this.#deno = new DenoSender(conn);
    const addr = conn.addr as Deno.NetAddr;
    this.localAddr = { hostname: addr.hostname, port: addr.port };
    this.sendBufferSize = options.sendBufferSize;
    this.#receiveConcurrency = options.receiveConcurrency;
    const pool = new ArrayBuffer(options.sendBuffers * options.sendBufferSize);
    this.#buffers = Array.from(
      { length: options.sendBuffers },
      (_, i) => new Uint8Array(pool, i * options.sendBufferSize, options.sendBufferSize),
    );
    this.#free = this.#buffers.map((_, i) => options.sendBuffers - 1 - i);
    this.#onSent = this.#buffers.map((_, i) => () => this.#released(i));
    this.#onSendFailed = this.#buffers.map((_, i) => () => {
      this.#sendErrors++;
      this.#released(i);
    });
  }

  /**
   * Binds a UDP socket.
   *
   * @param options Address, port and buffer settings.
   * @returns The bound socket.
   * @throws {NetworkError} `ERR_INVALID_ADDRESS` when the address cannot be bound.
   */
  static bind(options: DenoUdpSocketOptions): DenoUdpSocket {
    const { hostname, port, receiveConcurrency = 16, sendBuffers = 1024, sendBufferSize = 1500 } =
      options;
    if (typeof Deno.listenDatagram !== "function") {
      throw new NetworkError(
        "ERR_INVALID_CONFIG",
        'Cannot bind a UDP socket: Deno.listenDatagram needs --unstable-net (or "unstable": ["net"] in deno.json)',
      );
    }
    let conn: Deno.DatagramConn;
    try {
      conn = Deno.listenDatagram({ transport: "udp", hostname, port });
    } catch (e) {
      throw new NetworkError(
        "ERR_INVALID_ADDRESS",
        `Cannot bind UDP socket to ${hostname}:${port}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    return new DenoUdpSocket(conn, {
      hostname,
      port,
      receiveConcurrency,
      sendBuffers,
      sendBufferSize,
    });
  }

  get sendErrors(): number {
    return this.#sendErrors;
  }

  start(receiver: DatagramReceiver): void {
    for (let i = 0; i < this.#receiveConcurrency; i++) {
      this.#receiveLoops.push(this.#receiveLoop(receiver));
    }
  }

  async #receiveLoop(receiver: DatagramReceiver): Promise<void> {
    const buffer = new Uint8Array(65536);
    while (!this.#closed) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await this.#conn.receive(buffer);
      } catch (e) {
        if (this.#closed) return;
        // Linux reports an ICMP error of an earlier send on the next receive; not fatal.
        if (e instanceof Deno.errors.ConnectionRefused) continue;
        throw e;
      }
      receiver(data, from as Deno.NetAddr);
    }
  }

  nextSendBuffer(): Uint8Array | null {
    const free = this.#free;
    return free.length === 0 ? null : this.#buffers[free[free.length - 1]];
  }

  send(length: number, to: UdpAddress): void {
    const index = this.#free.pop();
    if (index === undefined) throw new Error("send() without a buffer from nextSendBuffer()");
    this.#inFlight++;
    this.#deno.send(this.#buffers[index].subarray(0, length), to)
      .then(this.#onSent[index], this.#onSendFailed[index]);
  }

  #released(index: number): void {
    this.#free.push(index);
    this.#settled();
    if (this.onWritable !== undefined) {
      const wake = this.onWritable;
      this.onWritable = undefined;
      wake();
    }
  }

  #settled(): void {
    if (--this.#inFlight === 0 && this.#drained !== undefined) this.#drained();
  }

  async sendCopy(data: Uint8Array, to: UdpAddress): Promise<void> {
    if (this.#closed) {
      throw new NetworkError("ERR_ENDPOINT_CLOSED", "Cannot send: the socket is closed");
    }
    this.#inFlight++;
    try {
      await this.#deno.sendCopy(data, to);
    } catch (e) {
      this.#sendErrors++;
      throw e;
    } finally {
      this.#settled();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Sends already handed to Deno finish first, so that a CONNECTION_CLOSE still leaves.
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained = resolve);
    this.onWritable = undefined;
    this.#conn.close();
    await Promise.allSettled(this.#receiveLoops);
  }
}
