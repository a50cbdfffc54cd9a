/**
 * An opt-in Linux datagram socket on libc through Deno FFI: `sendmmsg` sends every datagram
 * queued in one event-loop turn with one system call, and `recvmmsg` receives up to a batch of
 * datagrams per call. See NOTES.md, "How fast quiche can be driven".
 *
 * @module
 */
import type { UdpAddress } from "./datagram_port.ts";
import type { DatagramReceiver, DatagramSocket } from "./udp_socket.ts";
import { setImmediate } from "node:timers";
import {
  AF_INET,
  AF_INET6,
  decodeName,
  EAGAIN,
  ECONNREFUSED,
  EINTR,
  encodeName,
  ENOBUFS,
  errno,
  type Libc,
  localName,
  MmsgReceiver,
  MmsgSender,
  MSG_DONTWAIT,
  NAME,
  openLibc,
  raiseKernelBuffers,
  SHUT_RD,
  SO_RCVTIMEO,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
} from "./_libc_udp.ts";
import {
  checkIntegerOption,
  type LinuxUdpSocketOptions,
  resolveLinuxUdpOptions,
} from "./linux_udp_options.ts";
import { NetworkError } from "../errors.ts";

/** Options of {@linkcode LinuxBatchSocket.bind}: those of both libc-backed sockets, and one more. */
export interface LinuxBatchSocketOptions extends LinuxUdpSocketOptions {
  /**
   * How long one threaded wait for datagrams blocks at most (`SO_RCVTIMEO`); it bounds how
   * long {@linkcode LinuxBatchSocket.close} can wait for the receive loop, should the wake-up
   * by `shutdown` not arrive.
   * @default {200}
   */
  receiveTimeoutMs?: number;
}

/**
 * A Linux UDP socket on libc through Deno FFI, for {@linkcode QuicEndpoint.bind}'s `socket`
 * option. Datagrams queued by {@linkcode send} in one event-loop turn leave together in one
 * `sendmmsg` (non-blocking; on `EAGAIN` the rest stays queued for the next turn). Receiving
 * drains the socket with non-blocking `recvmmsg` calls on the main thread and, only when it
 * is empty, waits in one `recvmmsg` on Deno's blocking thread pool. The kernel buffers are
 * raised to 4 MiB by default (`Deno.listenDatagram` keeps about 208 KiB).
 *
 * Opt-in: an endpoint uses {@linkcode DenoUdpSocket} unless given this socket. Needs Linux on
 * x86_64 or aarch64 and `--allow-ffi` for `libc.so.6` (the quiche addon needs `--allow-ffi`
 * anyway).
 *
 * @example An endpoint on the batched socket
 * ```ts ignore
 * import { LinuxBatchSocket, QuicEndpoint } from "@cretoai/network/quic";
 *
 * const socket = LinuxBatchSocket.bind({ hostname: "127.0.0.1", port: 0 });
 * await using endpoint = await QuicEndpoint.bind({ socket });
 * console.assert(endpoint.localAddr.port === socket.localAddr.port);
 * ```
 */
export class LinuxBatchSocket implements DatagramSocket {
  readonly localAddr: UdpAddress;
  readonly sendBufferSize: number;
  onWritable: (() => void) | undefined = undefined;
  #c: Libc;
  #fd: number;
  #family: number;
  #nameLength: number;
  #closed = false;
  #closing: Promise<void> | undefined;
  #sender: MmsgSender;
  #flushQueued = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #sendErrors = 0;
  #sendsInFlight = 0;
  #sendsDrained: (() => void) | undefined;
  #receiver: MmsgReceiver;
  #receiveLoop: Promise<void> | undefined;

  private constructor(
    c: Libc,
    fd: number,
    family: number,
    localAddr: UdpAddress,
    options: Required<LinuxBatchSocketOptions>,
  ) {
    this.#c = c;
    this.#fd = fd;
    this.#family = family;
    this.#nameLength = family === AF_INET ? 16 : 28;
    this.localAddr = localAddr;
    this.sendBufferSize = options.sendBufferSize;
    this.#sender = new MmsgSender(
      c,
      family,
      options.sendBuffers,
      options.sendBufferSize,
      options.gso,
    );
    this.#receiver = new MmsgReceiver(c, options.receiveBatch, options.receiveBufferSize);
  }

  /**
   * Opens and binds a UDP socket through libc.
   *
   * @param options Address, port and buffer settings.
   * @returns The bound socket.
   * @throws {NetworkError} `ERR_INVALID_CONFIG` when not on 64-bit Linux or FFI is not
   * allowed; `ERR_INVALID_ADDRESS` when the address cannot be bound.
   */
  static bind(options: LinuxBatchSocketOptions): LinuxBatchSocket {
    const resolved: Required<LinuxBatchSocketOptions> = {
      ...resolveLinuxUdpOptions(options),
      receiveTimeoutMs: options.receiveTimeoutMs ?? 200,
    };
    checkIntegerOption("receiveTimeoutMs", resolved.receiveTimeoutMs, 10, 10000);
    const c = openLibc("LinuxBatchSocket");
    const { hostname, port } = resolved;
    const family = hostname.includes(":") ? AF_INET6 : AF_INET;
    const name = new Uint8Array(NAME);
    if (!encodeName(c, family, hostname, port, name)) {
      throw new NetworkError(
        "ERR_INVALID_ADDRESS",
        `Cannot bind UDP socket to ${hostname}:${port}: not an IP address literal`,
      );
    }
    const fd = c.socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      throw new NetworkError("ERR_INVALID_ADDRESS", `socket() failed: errno ${errno(c)}`);
    }
    try {
      raiseKernelBuffers(c, fd, resolved.kernelBufferSize);
      const ms = resolved.receiveTimeoutMs;
      const timeout = new BigInt64Array([
        BigInt(Math.floor(ms / 1000)),
        BigInt((ms % 1000) * 1000),
      ]);
      if (c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(timeout.buffer), 16) !== 0) {
        throw new NetworkError("ERR_INVALID_CONFIG", `SO_RCVTIMEO failed: errno ${errno(c)}`);
      }
      const nameLength = family === AF_INET ? 16 : 28;
      if (c.bind(fd, name, nameLength) !== 0) {
        throw new NetworkError(
          "ERR_INVALID_ADDRESS",
          `Cannot bind UDP socket to ${hostname}:${port}: errno ${errno(c)}`,
        );
      }
      const bound = localName(c, fd);
      if (bound === undefined) {
        throw new NetworkError("ERR_INVALID_ADDRESS", `getsockname() failed: errno ${errno(c)}`);
      }
      const local = decodeName(c, bound);
      return new LinuxBatchSocket(c, fd, family, local, resolved);
    } catch (e) {
      c.close(fd);
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

  start(receiver: DatagramReceiver): void {
    if (this.#receiveLoop !== undefined) throw new Error("start() called twice");
    this.#receiveLoop = this.#receive(receiver);
  }

  async #receive(receiver: DatagramReceiver): Promise<void> {
    const c = this.#c;
    const fd = this.#fd;
    const batch = this.#receiver;
    while (!this.#closed) {
      const n = batch.receive(fd, MSG_DONTWAIT);
      if (n > 0) {
        batch.deliver(n, receiver);
        // Let the endpoint flush (setImmediate) and other I/O run before draining more.
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      if (n < 0) {
        const error = errno(c);
        if (error === EINTR || error === ECONNREFUSED) continue;
        if (error !== EAGAIN) {
          if (this.#closed) return;
          await new Promise<void>((resolve) => setTimeout(resolve, 10)); // no busy loop
          continue;
        }
      }
      if (this.#closed) return;
      // Nothing queued: wait on the thread pool, at most SO_RCVTIMEO, or until close() shuts
      // the socket down for reading.
      const waited = await batch.wait(fd);
      if (waited > 0 && !this.#closed) batch.deliver(waited, receiver);
    }
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
    this.#flush();
  };

  #retry = (): void => {
    this.#retryTimer = undefined;
    this.#flush();
  };

  /** Sends the queued datagrams; returns false when some stay queued (EAGAIN). */
  #flush(): boolean {
    const sender = this.#sender;
    if (sender.queue.length === 0) return true;
    const released = sender.flush(this.#fd);
    const blocked = sender.queue.length > 0;
    if (blocked && this.#retryTimer === undefined && !this.#closed) {
      this.#retryTimer = setTimeout(this.#retry, 1);
    }
    if (released > 0 && this.onWritable !== undefined) {
      const wake = this.onWritable;
      this.onWritable = undefined;
      wake();
    }
    return !blocked;
  }

  async sendCopy(data: Uint8Array, to: UdpAddress): Promise<void> {
    if (this.#closed) {
      throw new NetworkError("ERR_ENDPOINT_CLOSED", "Cannot send: the socket is closed");
    }
    const name = new Uint8Array(NAME);
    if (!encodeName(this.#c, this.#family, to.hostname, to.port, name)) {
      this.#sendErrors++;
      throw new NetworkError(
        "ERR_INVALID_ADDRESS",
        `Cannot send to ${to.hostname}:${to.port}: not an address of the socket's family`,
      );
    }
    const copy = data.slice();
    this.#sendsInFlight++;
    try {
      for (let attempt = 0;; attempt++) {
        const sent = this.#c.sendto(
          this.#fd,
          copy,
          BigInt(copy.byteLength),
          MSG_DONTWAIT,
          name,
          this.#nameLength,
        );
        if (sent >= 0) return;
        const error = errno(this.#c);
        if (error === EINTR) continue;
        if ((error === EAGAIN || error === ENOBUFS) && attempt < 100 && !this.#closed) {
          await new Promise<void>((resolve) => setTimeout(resolve, 1));
          continue;
        }
        this.#sendErrors++;
        throw new NetworkError(
          "ERR_INVALID_ADDRESS",
          `Cannot send to ${to.hostname}:${to.port}: errno ${error}`,
        );
      }
    } finally {
      if (--this.#sendsInFlight === 0 && this.#sendsDrained !== undefined) this.#sendsDrained();
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // What is queued now (a CONNECTION_CLOSE) still leaves; a few retries on EAGAIN.
    for (let attempt = 0; attempt < 20 && !this.#flush(); attempt++) {
      if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      await new Promise<void>((resolve) => setTimeout(resolve, 1));
    }
    this.#closed = true;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#sender.clear();
    this.onWritable = undefined;
    if (this.#sendsInFlight > 0) {
      await new Promise<void>((resolve) => this.#sendsDrained = resolve);
    }
    // Wakes a receive waiting on the thread pool (recvmmsg returns 0); SO_RCVTIMEO bounds
    // the wait should it not. The descriptor is closed only once no call can still use it.
    this.#c.shutdown(this.#fd, SHUT_RD);
    await this.#receiveLoop?.catch(() => {});
    this.#c.close(this.#fd);
  }
}
