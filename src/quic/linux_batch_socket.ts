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
import { NetworkError } from "../errors.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const SHUT_RD = 0;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const MSG_WAITFORONE = 0x10000;
const EINTR = 4;
const EAGAIN = 11;
const ENOBUFS = 105;
const ECONNREFUSED = 111;
/** Bytes of one `struct mmsghdr` on 64-bit Linux (`struct msghdr` is 56, then `msg_len`). */
const MMSG = 64;
/** Room for a `sockaddr_in6` (28 bytes). */
const NAME = 32;
/** Most messages one `sendmmsg` takes (UIO_MAXIOV). */
const MAX_SEND_BATCH = 1024;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  recvmmsgWait: {
    name: "recvmmsg",
    parameters: ["i32", "buffer", "u32", "i32", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  inet_pton: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  inet_ntop: { parameters: ["i32", "buffer", "buffer", "u32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let libc: Libc | undefined;

function openLibc(): Libc {
  if (libc === undefined) {
    if (Deno.build.os !== "linux") {
      throw new NetworkError(
        "ERR_INVALID_CONFIG",
        `LinuxBatchSocket needs Linux, not ${Deno.build.os}`,
      );
    }
    if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
      throw new NetworkError(
        "ERR_INVALID_CONFIG",
        `LinuxBatchSocket needs 64-bit Linux (x86_64 or aarch64), not ${Deno.build.arch}`,
      );
    }
    try {
      libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    } catch (e) {
      throw new NetworkError(
        "ERR_INVALID_CONFIG",
        `LinuxBatchSocket cannot load libc.so.6 (it needs --allow-ffi): ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  return libc;
}

function errno(c: Libc): number {
  const at = c.__errno_location();
  return at === null ? 0 : new Deno.UnsafePointerView(at).getInt32();
}

function address(a: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a)));
}

/** Options of {@linkcode LinuxBatchSocket.bind}. */
export interface LinuxBatchSocketOptions {
  /** IPv4 or IPv6 address literal to bind. */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /**
   * Send buffers in the pool. A buffer returns to the pool as soon as `sendmmsg` took it, at
   * the end of the event-loop turn that queued it.
   * @default {1024}
   */
  sendBuffers?: number;
  /**
   * Size of each send buffer in bytes.
   * @default {1500}
   */
  sendBufferSize?: number;
  /**
   * Datagrams one `recvmmsg` call can receive.
   * @default {64}
   */
  receiveBatch?: number;
  /**
   * Largest datagram received whole; longer ones are dropped and counted in
   * {@linkcode LinuxBatchSocket.receiveTruncated}.
   * @default {4096}
   */
  receiveBufferSize?: number;
  /**
   * Kernel socket buffer size (`SO_RCVBUF` and `SO_SNDBUF`) in bytes. The
   * `SO_*BUFFORCE` variants are tried first, so a privileged process is not capped by
   * `net.core.rmem_max`.
   * @default {4194304}
   */
  kernelBufferSize?: number;
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
 * import { LinuxBatchSocket, QuicEndpoint } from "@cretoai/network";
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
  #sendErrors = 0;
  #receiveTruncated = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  // Send side: a pool of buffers, each with its iovec, its address slot and a prepared
  // mmsghdr; a flush copies the prepared headers of the queued buffers into one array.
  #sendData: Uint8Array;
  #sendIov: DataView;
  #sendNames: Uint8Array;
  #sendTemplates: Uint8Array;
  #sendBatch: Uint8Array;
  #buffers: Uint8Array[];
  #free: number[];
  #queue: number[] = [];
  #flushQueued = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #sendsInFlight = 0;
  #sendsDrained: (() => void) | undefined;
  #lastTo: UdpAddress | undefined;
  #lastName = new Uint8Array(NAME);
  #lastNameOk = false;

  // Receive side: one batch of headers, iovecs, address slots and data slots.
  #receiveBatch: number;
  #receiveSlot: number;
  #receiveData: Uint8Array;
  #receiveHeaders: Uint8Array;
  #receiveView: DataView;
  #receiveNames: Uint8Array;
  #receiveNamesView: DataView;
  #receiveIov: BigUint64Array;
  #receiveLoop: Promise<void> | undefined;
  #sources = new Map<number | string, UdpAddress>();

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
    const count = options.sendBuffers;
    const size = options.sendBufferSize;
    this.sendBufferSize = size;

    this.#sendData = new Uint8Array(count * size);
    const iov = new Uint8Array(count * 16);
    this.#sendIov = new DataView(iov.buffer);
    this.#sendNames = new Uint8Array(count * NAME);
    this.#sendTemplates = new Uint8Array(count * MMSG);
    this.#sendBatch = new Uint8Array(Math.min(count, MAX_SEND_BATCH) * MMSG);
    const templates = new DataView(this.#sendTemplates.buffer);
    const dataAt = address(this.#sendData);
    const iovAt = address(iov);
    const namesAt = address(this.#sendNames);
    for (let i = 0; i < count; i++) {
      this.#sendIov.setBigUint64(i * 16, dataAt + BigInt(i * size), true);
      templates.setBigUint64(i * MMSG, namesAt + BigInt(i * NAME), true);
      templates.setUint32(i * MMSG + 8, this.#nameLength, true);
      templates.setBigUint64(i * MMSG + 16, iovAt + BigInt(i * 16), true);
      templates.setBigUint64(i * MMSG + 24, 1n, true);
    }
    this.#buffers = Array.from(
      { length: count },
      (_, i) => this.#sendData.subarray(i * size, (i + 1) * size),
    );
    this.#free = this.#buffers.map((_, i) => count - 1 - i);

    const batch = options.receiveBatch;
    const slot = options.receiveBufferSize;
    this.#receiveBatch = batch;
    this.#receiveSlot = slot;
    this.#receiveData = new Uint8Array(batch * slot);
    this.#receiveHeaders = new Uint8Array(batch * MMSG);
    this.#receiveView = new DataView(this.#receiveHeaders.buffer);
    this.#receiveNames = new Uint8Array(batch * NAME);
    this.#receiveNamesView = new DataView(this.#receiveNames.buffer);
    this.#receiveIov = new BigUint64Array(batch * 2);
    const receiveDataAt = address(this.#receiveData);
    const receiveNamesAt = address(this.#receiveNames);
    const receiveIovAt = address(this.#receiveIov);
    for (let i = 0; i < batch; i++) {
      this.#receiveIov[i * 2] = receiveDataAt + BigInt(i * slot);
      this.#receiveIov[i * 2 + 1] = BigInt(slot);
      this.#receiveView.setBigUint64(i * MMSG, receiveNamesAt + BigInt(i * NAME), true);
      this.#receiveView.setUint32(i * MMSG + 8, NAME, true);
      this.#receiveView.setBigUint64(i * MMSG + 16, receiveIovAt + BigInt(i * 16), true);
      this.#receiveView.setBigUint64(i * MMSG + 24, 1n, true);
    }
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
      hostname: options.hostname,
      port: options.port,
      sendBuffers: options.sendBuffers ?? 1024,
      sendBufferSize: options.sendBufferSize ?? 1500,
      receiveBatch: options.receiveBatch ?? 64,
      receiveBufferSize: options.receiveBufferSize ?? 4096,
      kernelBufferSize: options.kernelBufferSize ?? 4 << 20,
      receiveTimeoutMs: options.receiveTimeoutMs ?? 200,
    };
    for (
      const [name, min, max] of [
        ["sendBuffers", 16, 65536],
        ["sendBufferSize", 1200, 65535],
        ["receiveBatch", 1, 1024],
        ["receiveBufferSize", 1500, 65536],
        ["kernelBufferSize", 65536, 1 << 30],
        ["receiveTimeoutMs", 10, 10000],
      ] as const
    ) {
      const value = resolved[name];
      if (!Number.isInteger(value) || value < min || value > max) {
        throw new NetworkError(
          "ERR_INVALID_CONFIG",
          `${name} must be an integer from ${min} to ${max}, got ${value}`,
        );
      }
    }
    const c = openLibc();
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
      const size = new Uint8Array(new Int32Array([resolved.kernelBufferSize]).buffer);
      if (c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4) !== 0) {
        c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
      }
      if (c.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, size, 4) !== 0) {
        c.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, size, 4);
      }
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
      const bound = new Uint8Array(NAME);
      const length = new Uint32Array([NAME]);
      if (c.getsockname(fd, bound, new Uint8Array(length.buffer)) !== 0) {
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
    return this.#sendErrors;
  }

  /** Datagrams dropped because they were longer than `receiveBufferSize`. */
  get receiveTruncated(): number {
    return this.#receiveTruncated;
  }

  start(receiver: DatagramReceiver): void {
    if (this.#receiveLoop !== undefined) throw new Error("start() called twice");
    this.#receiveLoop = this.#receive(receiver);
  }

  async #receive(receiver: DatagramReceiver): Promise<void> {
    const c = this.#c;
    const fd = this.#fd;
    const headers = this.#receiveHeaders;
    const batch = this.#receiveBatch;
    while (!this.#closed) {
      const n = c.recvmmsg(fd, headers, batch, MSG_DONTWAIT, null);
      if (n > 0) {
        this.#deliver(n, receiver);
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
      const waited = await c.recvmmsgWait(fd, headers, batch, MSG_WAITFORONE, null);
      if (waited > 0 && !this.#closed) this.#deliver(waited, receiver);
    }
  }

  #deliver(n: number, receiver: DatagramReceiver): void {
    const view = this.#receiveView;
    const names = this.#receiveNamesView;
    const data = this.#receiveData;
    const slot = this.#receiveSlot;
    for (let i = 0; i < n; i++) {
      const at = i * MMSG;
      const length = view.getUint32(at + 56, true);
      const flags = view.getInt32(at + 48, true);
      view.setUint32(at + 8, NAME, true); // the kernel wrote the source's length back
      if ((flags & MSG_TRUNC) !== 0) {
        this.#receiveTruncated++;
        continue;
      }
      let from: UdpAddress | undefined;
      const nameAt = i * NAME;
      if (names.getUint16(nameAt, true) === AF_INET) {
        const key = names.getUint32(nameAt + 4, false) * 65536 + names.getUint16(nameAt + 2, false);
        from = this.#sources.get(key);
        if (from === undefined) {
          from = {
            hostname: `${this.#receiveNames[nameAt + 4]}.${this.#receiveNames[nameAt + 5]}.${
              this.#receiveNames[nameAt + 6]
            }.${this.#receiveNames[nameAt + 7]}`,
            port: names.getUint16(nameAt + 2, false),
          };
          this.#remember(key, from);
        }
      } else {
        const name = this.#receiveNames.subarray(nameAt, nameAt + 28);
        const key = name.join(",");
        from = this.#sources.get(key);
        if (from === undefined) {
          from = decodeName(this.#c, name);
          this.#remember(key, from);
        }
      }
      receiver(data.subarray(i * slot, i * slot + length), from);
    }
  }

  #remember(key: number | string, from: UdpAddress): void {
    if (this.#sources.size >= 4096) this.#sources.clear();
    this.#sources.set(key, from);
  }

  nextSendBuffer(): Uint8Array | null {
    const free = this.#free;
    if (free.length === 0 && this.#queue.length > 0 && !this.#closed) this.#flush();
    return free.length === 0 ? null : this.#buffers[free[free.length - 1]];
  }

  send(length: number, to: UdpAddress): void {
    const index = this.#free.pop();
    if (index === undefined) throw new Error("send() without a buffer from nextSendBuffer()");
    if (!this.#encodeTo(to)) {
      this.#sendErrors++;
      this.#free.push(index);
      return;
    }
    this.#sendNames.set(this.#lastName, index * NAME);
    this.#sendIov.setUint32(index * 16 + 8, length, true);
    this.#queue.push(index);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushMicrotask);
    }
  }

  /** Encodes `to` into #lastName; false when it is no address of the socket's family. */
  #encodeTo(to: UdpAddress): boolean {
    if (to === this.#lastTo) return this.#lastNameOk;
    this.#lastTo = to;
    this.#lastNameOk = encodeName(this.#c, this.#family, to.hostname, to.port, this.#lastName);
    return this.#lastNameOk;
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
    const queue = this.#queue;
    if (queue.length === 0) return true;
    const c = this.#c;
    const templates = this.#sendTemplates;
    const batch = this.#sendBatch;
    const capacity = batch.byteLength / MMSG;
    let at = 0;
    let blocked = false;
    while (at < queue.length) {
      const count = Math.min(queue.length - at, capacity);
      for (let k = 0; k < count; k++) {
        const index = queue[at + k];
        batch.set(templates.subarray(index * MMSG, index * MMSG + MMSG), k * MMSG);
      }
      const sent = c.sendmmsg(this.#fd, batch, count, MSG_DONTWAIT);
      if (sent > 0) {
        for (let k = 0; k < sent; k++) this.#free.push(queue[at + k]);
        at += sent;
        continue;
      }
      const error = errno(c);
      if (error === EINTR) continue;
      if (error === EAGAIN || error === ENOBUFS) {
        blocked = true;
        break;
      }
      // The first datagram was refused (bad address, no route, too long): drop it.
      this.#sendErrors++;
      this.#free.push(queue[at]);
      at++;
    }
    queue.splice(0, at);
    if (blocked && this.#retryTimer === undefined && !this.#closed) {
      this.#retryTimer = setTimeout(this.#retry, 1);
    }
    if (at > 0 && this.onWritable !== undefined) {
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
    this.#queue.length = 0;
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

/** Writes a sockaddr for `hostname`/`port` into `out`; false when it is no address of `family`. */
function encodeName(
  c: Libc,
  family: number,
  hostname: string,
  port: number,
  out: Uint8Array,
): boolean {
  out.fill(0);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const text = new TextEncoder().encode(hostname + "\0");
  if (family === AF_INET) {
    if (hostname.includes(":")) return false;
    view.setUint16(0, AF_INET, true);
    view.setUint16(2, port, false);
    return c.inet_pton(AF_INET, text, out.subarray(4, 8)) === 1;
  }
  view.setUint16(0, AF_INET6, true);
  view.setUint16(2, port, false);
  // An IPv4 peer of an IPv6 socket is reached through its mapped address.
  const v6 = hostname.includes(":") ? text : new TextEncoder().encode(`::ffff:${hostname}\0`);
  return c.inet_pton(AF_INET6, v6, out.subarray(8, 24)) === 1;
}

/** Reads a sockaddr_in or sockaddr_in6. */
function decodeName(c: Libc, name: Uint8Array): UdpAddress {
  const view = new DataView(name.buffer, name.byteOffset, name.byteLength);
  const port = view.getUint16(2, false);
  if (view.getUint16(0, true) === AF_INET) {
    return { hostname: `${name[4]}.${name[5]}.${name[6]}.${name[7]}`, port };
  }
  const text = new Uint8Array(64);
  c.inet_ntop(AF_INET6, name.subarray(8, 24), text, 64);
  let hostname = new TextDecoder().decode(text.subarray(0, text.indexOf(0)));
  if (hostname.startsWith("::ffff:") && hostname.includes(".")) hostname = hostname.slice(7);
  return { hostname, port };
}
