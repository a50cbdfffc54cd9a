/**
 * The default datagram socket on Linux: a `Deno.listenDatagram` socket, whose receive op wakes
 * the event loop with little delay, plus libc `sendmmsg`/`recvmmsg` through Deno FFI on the same
 * file descriptor for the bulk path. See NOTES.md, "How fast quiche can be driven".
 *
 * @module
 */
import { DenoSender } from "./_deno_send.ts";
import type { UdpAddress } from "./datagram_port.ts";
import {
  type DatagramReceiver,
  type DatagramSocket,
  DenoUdpSocket,
  type DenoUdpSocketOptions,
} from "./udp_socket.ts";
import {
  ECONNREFUSED,
  EINTR,
  errno,
  findUdpDescriptor,
  type Libc,
  MmsgReceiver,
  MmsgSender,
  MSG_DONTWAIT,
  openLibc,
  raiseKernelBuffers,
} from "./_libc_udp.ts";
import { type LinuxUdpSocketOptions, resolveLinuxUdpOptions } from "./linux_udp_options.ts";
import { NetworkError } from "../errors.ts";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["cretoai", "quic"]);

/**
 * A receive after the socket sat idle this long (ms) since the previous batch skips the drain
 * when the last drain found nothing.
 */
const IDLE_BEFORE_SKIP_MS = 0.1;

/**
 * A datagram at least this long is drained behind even after the socket sat idle: full-size
 * datagrams come in flights (a ClientHello that carries a session ticket is seven Initial
 * packets), and taking them one event-loop turn at a time made quiche answer each with a
 * padded acknowledgement of its own.
 */
const FLIGHT_DATAGRAM_BYTES = 1200;

/** Options of {@linkcode LinuxHybridSocket.bind}: those of both libc-backed sockets. */
export type LinuxHybridSocketOptions = LinuxUdpSocketOptions;

/**
 * A Linux UDP socket that Deno owns (`Deno.listenDatagram`) and FFI batches: every datagram
 * queued by {@linkcode send} in one event-loop turn leaves in one non-blocking `sendmmsg` on the
 * socket's descriptor (should the socket be full, the rest goes through Deno's awaited send, in
 * order), and each datagram Deno's receive op delivers is followed by non-blocking `recvmmsg`
 * batches that drain what else is queued. An idle socket thus wakes as fast as
 * {@linkcode DenoUdpSocket} and a busy one costs a system call per batch, not per datagram. The
 * kernel buffers are raised to 4 MiB by default.
 *
 * {@linkcode QuicEndpoint.bind} uses it by default when {@linkcode LinuxHybridSocket.usable}
 * says so (Linux on x86_64 or aarch64, `--allow-ffi` granted); pass
 * `socket: DenoUdpSocket.bind(...)` to force the portable socket.
 *
 * @example Binding one and sending a datagram to itself
 * ```ts ignore
 * import { LinuxHybridSocket } from "@cretoai/network/quic";
 *
 * const socket = LinuxHybridSocket.bind({ hostname: "127.0.0.1", port: 0 });
 * const got = Promise.withResolvers<Uint8Array>();
 * socket.start((data) => got.resolve(data.slice()));
 * socket.nextSendBuffer()!.set([1, 2, 3]);
 * socket.send(3, socket.localAddr);
 * console.assert((await got.promise).length === 3);
 * await socket.close();
 * ```
 */
export class LinuxHybridSocket implements DatagramSocket {
  readonly localAddr: UdpAddress;
  readonly sendBufferSize: number;
  onWritable: (() => void) | undefined = undefined;
  #c: Libc;
  #conn: Deno.DatagramConn;
  #deno: DenoSender;
  #fd: number;
  #closed = false;
  #closing: Promise<void> | undefined;
  #sendErrors = 0;
  #sender: MmsgSender;
  #receiver: MmsgReceiver;
  #receiveLoop: Promise<void> | undefined;
  #flushQueued = false;
  // Sends handed to Deno (sendCopy, and queued datagrams when the socket was full).
  #inFlight = 0;
  #drained: (() => void) | undefined;
  #onSent: (index: number) => () => void;
  #onSendFailed: (index: number) => () => void;
  #drainFoundNothing = false;
  #batchEndAt = -Infinity;

  private constructor(
    c: Libc,
    conn: Deno.DatagramConn,
    fd: number,
    localAddr: UdpAddress,
    options: Required<LinuxHybridSocketOptions>,
  ) {
    this.#c = c;
    this.#conn = conn;
    this.#deno = new DenoSender(conn);
    this.#fd = fd;
    this.localAddr = localAddr;
    this.sendBufferSize = options.sendBufferSize;
    const family = localAddr.hostname.includes(":") ? 10 : 2;
    this.#sender = new MmsgSender(
      c,
      family,
      options.sendBuffers,
      options.sendBufferSize,
      options.gso,
    );
    // Sources as Deno reports them, whichever path received the datagram (an IPv4 peer of a
    // dual-stack socket is ::ffff:a.b.c.d both ways), so that a peer's address never changes.
    this.#receiver = new MmsgReceiver(c, options.receiveBatch, options.receiveBufferSize, true);
    // One pair of completion callbacks per buffer, made on first use.
    const sent: (() => void)[] = [];
    const failed: (() => void)[] = [];
    this.#onSent = (i) => sent[i] ??= () => this.#released(i);
    this.#onSendFailed = (i) =>
      failed[i] ??= () => {
        this.#sendErrors++;
        this.#released(i);
      };
  }

  /**
   * Whether this socket can work here: Linux on x86_64 or aarch64 with `--allow-ffi` granted
   * (without a prompt).
   *
   * @example
   * ```ts
   * import { LinuxHybridSocket } from "@cretoai/network/quic";
   *
   * console.log(LinuxHybridSocket.usable() ? "batched UDP" : "Deno UDP ops only");
   * ```
   */
  static usable(): boolean {
    if (Deno.build.os !== "linux") return false;
    if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") return false;
    try {
      return Deno.permissions.querySync({ name: "ffi" }).state === "granted";
    } catch {
      return false;
    }
  }

  /**
   * Binds a UDP socket with `Deno.listenDatagram` and finds its descriptor for FFI.
   *
   * @param options Address, port and buffer settings.
   * @returns The bound socket.
   * @throws {NetworkError} `ERR_INVALID_CONFIG` for an option out of range, when not on 64-bit
   * Linux, when FFI is not allowed or the socket's descriptor cannot be found;
   * `ERR_INVALID_ADDRESS` when the address cannot be bound.
   */
  static bind(options: LinuxHybridSocketOptions): LinuxHybridSocket {
    const resolved = resolveLinuxUdpOptions(options);
    const c = openLibc("LinuxHybridSocket");
    if (typeof Deno.listenDatagram !== "function") {
      throw new NetworkError(
        "ERR_INVALID_CONFIG",
        'Cannot bind a UDP socket: Deno.listenDatagram needs --unstable-net (or "unstable": ["net"] in deno.json)',
      );
    }
    const { hostname, port } = resolved;
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
    try {
      const addr = conn.addr as Deno.NetAddr;
      const local = { hostname: addr.hostname, port: addr.port };
      const fd = findUdpDescriptor(c, local);
      raiseKernelBuffers(c, fd, resolved.kernelBufferSize);
      return new LinuxHybridSocket(c, conn, fd, local, resolved);
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /** Datagrams the system refused to send. */
  get sendErrors(): number {
    return this.#sendErrors + this.#sender.errors;
  }

  /** Datagrams dropped because they were longer than `receiveBufferSize`. */
  get receiveTruncated(): number {
    return this.#receiver.truncated;
  }

  start(receiver: DatagramReceiver, onBatchEnd?: () => void): void {
    if (this.#receiveLoop !== undefined) throw new Error("start() called twice");
    this.#receiveLoop = this.#receive(receiver, onBatchEnd);
  }

  async #receive(receiver: DatagramReceiver, onBatchEnd?: () => void): Promise<void> {
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
      if (this.#closed) return;
      // A datagram that comes after the socket sat idle for a while (a request, a reply, an
      // ACK) rarely has others queued behind it: when the last drain found nothing either,
      // its system call (EAGAIN) is skipped. Should more be queued after all, Deno's next
      // receive returns at once, and a receive that follows the last batch closely drains.
      const idle = performance.now() - this.#batchEndAt;
      try {
        receiver(data, from as Deno.NetAddr);
        if (
          !this.#drainFoundNothing || idle < IDLE_BEFORE_SKIP_MS ||
          data.byteLength >= FLIGHT_DATAGRAM_BYTES
        ) {
          this.#drainFoundNothing = this.#drain(receiver);
        }
      } finally {
        onBatchEnd?.();
        this.#batchEndAt = performance.now();
      }
    }
  }

  /**
   * Delivers what else is queued on the socket, a `recvmmsg` batch at a time. Returns true
   * when the first call found nothing.
   */
  #drain(receiver: DatagramReceiver): boolean {
    const batch = this.#receiver.batch;
    // Bounded, so that timers and sends get their turn under a flood.
    for (let round = 0; round < 16 && !this.#closed; round++) {
      const n = this.#receiver.receive(this.#fd, MSG_DONTWAIT);
      if (n > 0) {
        this.#receiver.deliver(n, receiver);
        if (n < batch) return false;
        continue;
      }
      if (n < 0) {
        const error = errno(this.#c);
        if (error === EINTR || error === ECONNREFUSED) continue;
      }
      return round === 0;
    }
    return false;
  }

  nextSendBuffer(): Uint8Array | null {
    const sender = this.#sender;
    if (sender.exhausted && sender.queue.length > 0 && !this.#closed) this.#flush();
    return sender.next();
  }

  send(length: number, to: UdpAddress): void {
    if (!this.#sender.enqueue(length, to)) return;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushMicrotask);
    }
  }

  #flushMicrotask = (): void => {
    this.#flushQueued = false;
    if (!this.#closed) this.#flush();
  };

  #flush(): void {
    const sender = this.#sender;
    if (sender.queue.length === 0) return;
    // While datagrams wait in Deno's send op, later ones follow them there: no overtaking.
    const released = this.#inFlight > 0 ? 0 : sender.flush(this.#fd);
    if (sender.queue.length > 0) {
      // The socket is full: Deno's send waits until it can write.
      for (let item = sender.dequeue(); item !== undefined; item = sender.dequeue()) {
        this.#inFlight++;
        this.#deno.send(item.data, item.to)
          .then(this.#onSent(item.index), this.#onSendFailed(item.index));
      }
    }
    if (released > 0) this.#wake();
  }

  #wake(): void {
    if (this.onWritable !== undefined) {
      const wake = this.onWritable;
      this.onWritable = undefined;
      wake();
    }
  }

  #released(index: number): void {
    this.#sender.release(index);
    this.#settled();
    this.#wake();
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

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // What is queued now (a CONNECTION_CLOSE) still leaves, then whatever Deno still sends.
    this.#flush();
    this.#closed = true;
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained = resolve);
    this.onWritable = undefined;
    this.#sender.clear();
    // No FFI call uses the descriptor after this: every one checks #closed first.
    this.#conn.close();
    await this.#receiveLoop?.catch(() => {});
  }
}

/**
 * Binds the socket {@linkcode QuicEndpoint.bind} uses when given none: a
 * {@linkcode LinuxHybridSocket} where {@linkcode LinuxHybridSocket.usable} says so, otherwise
 * (or should its descriptor not be found) a {@linkcode DenoUdpSocket}.
 *
 * @internal
 */
export function bindDefaultSocket(options: DenoUdpSocketOptions): DatagramSocket {
  if (LinuxHybridSocket.usable()) {
    try {
      return LinuxHybridSocket.bind({
        hostname: options.hostname,
        port: options.port,
        sendBuffers: options.sendBuffers,
        sendBufferSize: options.sendBufferSize,
      });
    } catch (e) {
      if (!(e instanceof NetworkError) || e.code !== "ERR_INVALID_CONFIG") throw e;
      log.info("LinuxHybridSocket unusable, falling back to DenoUdpSocket: {error}", {
        error: e.message,
      });
    }
  } else {
    log.debug("DenoUdpSocket: LinuxHybridSocket needs 64-bit Linux and unrestricted --allow-ffi");
  }
  return DenoUdpSocket.bind(options);
}
