/**
 * libc UDP through Deno FFI, shared by {@linkcode LinuxBatchSocket} and
 * {@linkcode LinuxHybridSocket}: loading libc, socket addresses, a pool of send buffers that
 * leaves in `sendmmsg` batches and a `recvmmsg` batch. 64-bit Linux only (x86_64, aarch64).
 *
 * @module
 */
import type { UdpAddress } from "./datagram_port.ts";
import type { DatagramReceiver } from "./udp_socket.ts";
import { NetworkError } from "../errors.ts";

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0x80000;
export const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
export const SHUT_RD = 0;
const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_WAITFORONE = 0x10000;
export const EINTR = 4;
export const EAGAIN = 11;
export const ENOBUFS = 105;
export const ECONNREFUSED = 111;
/** Bytes of one `struct mmsghdr` on 64-bit Linux (`struct msghdr` is 56, then `msg_len`). */
const MMSG = 64;
/** Room for a `sockaddr_in6` (28 bytes). */
export const NAME = 32;
/** Most messages one `sendmmsg` takes (UIO_MAXIOV). */
const MAX_SEND_BATCH = 1024;
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
/** `CMSG_LEN(2)` and `CMSG_SPACE(2)`: a control message carrying a u16. */
const CMSG_LEN = 18;
const CMSG_SPACE = 24;
/** Most segments in one UDP GSO message (UDP_MAX_SEGMENTS), and most payload bytes. */
const MAX_SEGMENTS = 64;
const MAX_GSO_BYTES = 65000;
/** Offset of `d_name` in glibc's `struct dirent` on 64-bit Linux. */
const DIRENT_NAME = 19;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
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
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The libc functions this module calls. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let libc: Libc | undefined;

/**
 * Loads libc once.
 *
 * @param who The socket class that needs it, for error messages.
 * @throws {NetworkError} `ERR_INVALID_CONFIG` when not on 64-bit Linux or FFI is not allowed.
 */
export function openLibc(who: string): Libc {
  if (libc === undefined) {
    if (Deno.build.os !== "linux") {
      throw new NetworkError("ERR_INVALID_CONFIG", `${who} needs Linux, not ${Deno.build.os}`);
    }
    if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
      throw new NetworkError(
        "ERR_INVALID_CONFIG",
        `${who} needs 64-bit Linux (x86_64 or aarch64), not ${Deno.build.arch}`,
      );
    }
    try {
      libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    } catch (e) {
      throw new NetworkError(
        "ERR_INVALID_CONFIG",
        `${who} cannot load libc.so.6 (it needs --allow-ffi): ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  return libc;
}

/** The calling thread's `errno`. */
export function errno(c: Libc): number {
  const at = c.__errno_location();
  return at === null ? 0 : new Deno.UnsafePointerView(at).getInt32();
}

function address(a: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a)));
}

/**
 * Raises `SO_RCVBUF` and `SO_SNDBUF` to `size`, trying the `SO_*BUFFORCE` variants first so a
 * privileged process is not capped by `net.core.rmem_max`. Best effort.
 */
export function raiseKernelBuffers(c: Libc, fd: number, size: number): void {
  const value = new Uint8Array(new Int32Array([size]).buffer);
  if (c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, value, 4) !== 0) {
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, 4);
  }
  if (c.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, value, 4) !== 0) {
    c.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, 4);
  }
}

/** Writes a sockaddr for `hostname`/`port` into `out`; false when it is no address of `family`. */
export function encodeName(
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

/**
 * Reads a sockaddr_in or sockaddr_in6. An IPv4-mapped IPv6 address comes back as the IPv4
 * address, or with `keepMapped` as `::ffff:a.b.c.d`, the way `Deno.DatagramConn` reports it.
 */
export function decodeName(c: Libc, name: Uint8Array, keepMapped = false): UdpAddress {
  const view = new DataView(name.buffer, name.byteOffset, name.byteLength);
  const port = view.getUint16(2, false);
  if (view.getUint16(0, true) === AF_INET) {
    return { hostname: `${name[4]}.${name[5]}.${name[6]}.${name[7]}`, port };
  }
  const text = new Uint8Array(64);
  c.inet_ntop(AF_INET6, name.subarray(8, 24), text, 64);
  let hostname = new TextDecoder().decode(text.subarray(0, text.indexOf(0)));
  if (!keepMapped && hostname.startsWith("::ffff:") && hostname.includes(".")) {
    hostname = hostname.slice(7);
  }
  return { hostname, port };
}

/** The bound address of `fd`, or undefined when it is no socket. */
export function localName(c: Libc, fd: number): Uint8Array | undefined {
  const name = new Uint8Array(NAME);
  const length = new Uint32Array([NAME]);
  if (c.getsockname(fd, name, new Uint8Array(length.buffer)) !== 0) return undefined;
  return name;
}

/** Open descriptors of this process, from `/proc/self/fd`; undefined when it is not readable. */
function openDescriptors(c: Libc): number[] | undefined {
  const dir = c.opendir(new TextEncoder().encode("/proc/self/fd\0"));
  if (dir === null) return undefined;
  const fds: number[] = [];
  try {
    for (let entry = c.readdir(dir); entry !== null; entry = c.readdir(dir)) {
      const name = new Deno.UnsafePointerView(entry).getCString(DIRENT_NAME);
      if (/^\d+$/.test(name)) fds.push(Number(name));
    }
  } finally {
    c.closedir(dir);
  }
  return fds;
}

/**
 * The descriptor of this process's UDP socket bound to exactly `hostname`:`port` (as
 * `Deno.DatagramConn.addr` reports it). Deno does not expose descriptors, so this scans them
 * with `getsockname` and `SO_TYPE`.
 *
 * @throws {NetworkError} `ERR_INVALID_CONFIG` when no socket or several sockets match.
 */
export function findUdpDescriptor(c: Libc, bound: UdpAddress): number {
  const family = bound.hostname.includes(":") ? AF_INET6 : AF_INET;
  const want = new Uint8Array(NAME);
  if (!encodeName(c, family, bound.hostname, bound.port, want)) {
    throw new NetworkError(
      "ERR_INVALID_CONFIG",
      `Cannot find the socket of ${bound.hostname}:${bound.port}: not an IP address literal`,
    );
  }
  const length = family === AF_INET ? 16 : 28;
  const fds = openDescriptors(c) ?? Array.from({ length: 4096 }, (_, i) => i);
  const type = new Int32Array(1);
  const typeLength = new Uint32Array(1);
  const found: number[] = [];
  for (const fd of fds) {
    const name = localName(c, fd);
    if (name === undefined) continue;
    let same = true;
    for (let i = 0; i < length && same; i++) same = name[i] === want[i];
    if (!same) continue;
    typeLength[0] = 4;
    if (
      c.getsockopt(
          fd,
          SOL_SOCKET,
          SO_TYPE,
          new Uint8Array(type.buffer),
          new Uint8Array(typeLength.buffer),
        ) === 0 && type[0] === SOCK_DGRAM
    ) {
      found.push(fd);
    }
  }
  if (found.length !== 1) {
    throw new NetworkError(
      "ERR_INVALID_CONFIG",
      `Cannot find the socket of ${bound.hostname}:${bound.port}: ${
        found.length === 0 ? "no UDP socket" : `${found.length} UDP sockets (${found.join(", ")})`
      } bound to it in this process`,
    );
  }
  return found[0];
}

/**
 * A pool of send buffers, each with its iovec and address slot; queued buffers leave together
 * in `sendmmsg` calls. With UDP GSO, a run of queued datagrams to one destination, all of one
 * size but the last (which may be shorter), leaves as one message with a `UDP_SEGMENT` control
 * message: the kernel cuts it into the datagrams, at a fraction of the cost per datagram.
 */
export class MmsgSender {
  /** Buffers refused for a bad address or by the system. */
  errors = 0;
  /** Whether runs of datagrams leave as UDP GSO messages; cleared if the kernel refuses it. */
  gso: boolean;
  readonly #c: Libc;
  readonly #family: number;
  readonly #nameLength: number;
  readonly #data: Uint8Array;
  readonly #iov: DataView;
  // The iovecs as 32-bit words, copied into a batch's iovecs without a view per datagram.
  readonly #iovWords: Uint32Array;
  readonly #namesAt: bigint;
  readonly #names: Uint8Array;
  // One flush's messages, their iovecs and their UDP_SEGMENT control messages.
  readonly #batch: Uint8Array;
  readonly #batchView: DataView;
  readonly #batchIov: Uint32Array;
  readonly #batchIovAt: bigint;
  readonly #control: DataView;
  readonly #controlAt: bigint;
  readonly #segments: Int32Array;
  readonly #buffers: Uint8Array[];
  readonly #free: number[];
  /** Indexes of queued buffers, oldest first, with their destinations. */
  readonly queue: number[] = [];
  readonly #queueTo: UdpAddress[] = [];
  #lastTo: UdpAddress | undefined;
  #lastName = new Uint8Array(NAME);
  #lastNameOk = false;

  constructor(c: Libc, family: number, count: number, size: number, gso: boolean) {
    this.#c = c;
    this.#family = family;
    this.gso = gso;
    this.#nameLength = family === AF_INET ? 16 : 28;
    this.#data = new Uint8Array(count * size);
    this.#iovWords = new Uint32Array(count * 4);
    this.#iov = new DataView(this.#iovWords.buffer);
    this.#names = new Uint8Array(count * NAME);
    this.#namesAt = address(this.#names);
    const capacity = Math.min(count, MAX_SEND_BATCH);
    this.#batch = new Uint8Array(capacity * MMSG);
    this.#batchView = new DataView(this.#batch.buffer);
    this.#batchIov = new Uint32Array(count * 4);
    this.#batchIovAt = address(this.#batchIov);
    const control = new Uint8Array(capacity * CMSG_SPACE);
    this.#control = new DataView(control.buffer);
    this.#controlAt = address(control);
    for (let k = 0; k < capacity; k++) {
      this.#control.setBigUint64(k * CMSG_SPACE, BigInt(CMSG_LEN), true);
      this.#control.setInt32(k * CMSG_SPACE + 8, SOL_UDP, true);
      this.#control.setInt32(k * CMSG_SPACE + 12, UDP_SEGMENT, true);
    }
    this.#segments = new Int32Array(capacity);
    const dataAt = address(this.#data);
    for (let i = 0; i < count; i++) {
      this.#iov.setBigUint64(i * 16, dataAt + BigInt(i * size), true);
    }
    this.#buffers = Array.from(
      { length: count },
      (_, i) => this.#data.subarray(i * size, (i + 1) * size),
    );
    this.#free = this.#buffers.map((_, i) => count - 1 - i);
  }

  /** The next free buffer, or null when all are queued or in flight. */
  next(): Uint8Array | null {
    const free = this.#free;
    return free.length === 0 ? null : this.#buffers[free[free.length - 1]];
  }

  /** Whether no buffer is free. */
  get exhausted(): boolean {
    return this.#free.length === 0;
  }

  /**
   * Queues the buffer {@linkcode next} returned. False (and counted in {@linkcode errors})
   * when `to` is no address of the socket's family.
   */
  enqueue(length: number, to: UdpAddress): boolean {
    const index = this.#free.pop();
    if (index === undefined) throw new Error("send() without a buffer from nextSendBuffer()");
    if (to !== this.#lastTo) {
      this.#lastTo = to;
      this.#lastNameOk = encodeName(this.#c, this.#family, to.hostname, to.port, this.#lastName);
    }
    if (!this.#lastNameOk) {
      this.errors++;
      this.#free.push(index);
      return false;
    }
    this.#names.set(this.#lastName, index * NAME);
    this.#iov.setUint32(index * 16 + 8, length, true);
    this.queue.push(index);
    this.#queueTo.push(to);
    return true;
  }

  /**
   * Sends queued buffers with non-blocking `sendmmsg` until the queue is empty or the socket
   * is full. A datagram the system refuses (bad address, no route, too long) is dropped and
   * counted. Returns how many buffers went back to the pool; buffers still queued afterwards
   * met `EAGAIN`/`ENOBUFS`.
   */
  flush(fd: number): number {
    const queue = this.queue;
    const to = this.#queueTo;
    if (queue.length === 0) return 0;
    const c = this.#c;
    const iov = this.#iov;
    const iovWords = this.#iovWords;
    const batchIov = this.#batchIov;
    const view = this.#batchView;
    const segments = this.#segments;
    const capacity = segments.length;
    let at = 0;
    // After a GSO message failed, its first datagram is retried alone: if that goes, GSO was
    // the trouble (an old kernel, a device without checksum offload, a segment above the
    // route's MTU) and stays off; if it fails too, the datagram was (a refused address).
    let probe = false;
    while (at < queue.length) {
      // Build up to `capacity` messages from the queue, from `at` on.
      let k = 0;
      let used = 0;
      let pos = at;
      while (pos < queue.length && k < capacity) {
        const first = queue[pos];
        const size = iov.getUint32(first * 16 + 8, true);
        let n = 1;
        if (this.gso && size > 0 && !(probe && k === 0)) {
          const most = Math.min(MAX_SEGMENTS, Math.floor(MAX_GSO_BYTES / size));
          const dest = to[pos];
          while (pos + n < queue.length && n < most) {
            const next = to[pos + n];
            if (
              next !== dest && (next.port !== dest.port || next.hostname !== dest.hostname)
            ) break;
            const length = iov.getUint32(queue[pos + n] * 16 + 8, true);
            if (length > size) break;
            n++;
            if (length < size) break; // a shorter datagram ends the run
          }
        }
        const m = k * MMSG;
        view.setBigUint64(m, this.#namesAt + BigInt(first * NAME), true);
        view.setUint32(m + 8, this.#nameLength, true);
        view.setBigUint64(m + 16, this.#batchIovAt + BigInt(used * 16), true);
        view.setBigUint64(m + 24, BigInt(n), true);
        if (n > 1) {
          this.#control.setUint16(k * CMSG_SPACE + 16, size, true);
          view.setBigUint64(m + 32, this.#controlAt + BigInt(k * CMSG_SPACE), true);
          view.setBigUint64(m + 40, BigInt(CMSG_SPACE), true);
        } else {
          view.setBigUint64(m + 32, 0n, true);
          view.setBigUint64(m + 40, 0n, true);
        }
        for (let j = 0; j < n; j++) {
          const index = queue[pos + j];
          const src = index * 4;
          const dst = (used + j) * 4;
          batchIov[dst] = iovWords[src];
          batchIov[dst + 1] = iovWords[src + 1];
          batchIov[dst + 2] = iovWords[src + 2];
          batchIov[dst + 3] = iovWords[src + 3];
        }
        segments[k] = n;
        used += n;
        pos += n;
        k++;
      }
      const sent = c.sendmmsg(fd, this.#batch, k, MSG_DONTWAIT);
      if (sent > 0) {
        if (probe) this.gso = false;
        probe = false;
        let done = 0;
        for (let j = 0; j < sent; j++) done += segments[j];
        for (let j = 0; j < done; j++) this.#free.push(queue[at + j]);
        at += done;
        continue;
      }
      const error = errno(c);
      if (error === EINTR) continue;
      if (error === EAGAIN || error === ENOBUFS) break;
      if (segments[0] > 1) {
        probe = true;
        continue;
      }
      probe = false;
      this.errors++;
      this.#free.push(queue[at]);
      at++;
    }
    queue.splice(0, at);
    to.splice(0, at);
    return at;
  }

  /**
   * Takes the oldest queued buffer out of the queue, without releasing it: its data, and its
   * destination; undefined when the queue is empty. Give it back with {@linkcode release}.
   */
  dequeue(): { index: number; data: Uint8Array; to: UdpAddress } | undefined {
    const index = this.queue.shift();
    if (index === undefined) return undefined;
    const to = this.#queueTo.shift()!;
    const length = this.#iov.getUint32(index * 16 + 8, true);
    return { index, data: this.#buffers[index].subarray(0, length), to };
  }

  /** Returns a buffer taken by {@linkcode dequeue} to the pool. */
  release(index: number): void {
    this.#free.push(index);
  }

  /** Drops every queued buffer back into the pool. */
  clear(): void {
    for (const index of this.queue) this.#free.push(index);
    this.queue.length = 0;
    this.#queueTo.length = 0;
  }
}

/** One `recvmmsg` batch: headers, iovecs, address slots and data slots. */
export class MmsgReceiver {
  /** Datagrams dropped because they were longer than a slot. */
  truncated = 0;
  readonly #c: Libc;
  readonly #batch: number;
  readonly #slot: number;
  readonly #data: Uint8Array;
  readonly #headers: Uint8Array;
  readonly #view: DataView;
  readonly #names: Uint8Array;
  readonly #namesView: DataView;
  readonly #iov: BigUint64Array;
  readonly #sources = new Map<number | string, UdpAddress>();
  readonly #keepMapped: boolean;

  /**
   * @param keepMapped Report IPv4-mapped sources as `::ffff:a.b.c.d` (as Deno does) instead
   * of as IPv4 addresses.
   */
  constructor(c: Libc, batch: number, slot: number, keepMapped = false) {
    this.#c = c;
    this.#keepMapped = keepMapped;
    this.#batch = batch;
    this.#slot = slot;
    this.#data = new Uint8Array(batch * slot);
    this.#headers = new Uint8Array(batch * MMSG);
    this.#view = new DataView(this.#headers.buffer);
    this.#names = new Uint8Array(batch * NAME);
    this.#namesView = new DataView(this.#names.buffer);
    this.#iov = new BigUint64Array(batch * 2);
    const dataAt = address(this.#data);
    const namesAt = address(this.#names);
    const iovAt = address(this.#iov);
    for (let i = 0; i < batch; i++) {
      this.#iov[i * 2] = dataAt + BigInt(i * slot);
      this.#iov[i * 2 + 1] = BigInt(slot);
      this.#view.setBigUint64(i * MMSG, namesAt + BigInt(i * NAME), true);
      this.#view.setUint32(i * MMSG + 8, NAME, true);
      this.#view.setBigUint64(i * MMSG + 16, iovAt + BigInt(i * 16), true);
      this.#view.setBigUint64(i * MMSG + 24, 1n, true);
    }
  }

  /** Datagrams one call receives at most. */
  get batch(): number {
    return this.#batch;
  }

  /** One synchronous `recvmmsg` with `flags`; its result (-1 with errno set on failure). */
  receive(fd: number, flags: number): number {
    return this.#c.recvmmsg(fd, this.#headers, this.#batch, flags, null);
  }

  /** One `recvmmsg` on Deno's blocking thread pool, waiting for at least one datagram. */
  wait(fd: number): Promise<number> {
    return this.#c.recvmmsgWait(fd, this.#headers, this.#batch, MSG_WAITFORONE, null);
  }

  /** Hands the first `n` received datagrams to `receiver`. */
  deliver(n: number, receiver: DatagramReceiver): void {
    const view = this.#view;
    const names = this.#namesView;
    const bytes = this.#names;
    const data = this.#data;
    const slot = this.#slot;
    for (let i = 0; i < n; i++) {
      const at = i * MMSG;
      const length = view.getUint32(at + 56, true);
      const flags = view.getInt32(at + 48, true);
      view.setUint32(at + 8, NAME, true); // the kernel wrote the source's length back
      if ((flags & MSG_TRUNC) !== 0) {
        this.truncated++;
        continue;
      }
      let from: UdpAddress | undefined;
      const nameAt = i * NAME;
      if (names.getUint16(nameAt, true) === AF_INET) {
        const key = names.getUint32(nameAt + 4, false) * 65536 + names.getUint16(nameAt + 2, false);
        from = this.#sources.get(key);
        if (from === undefined) {
          from = {
            hostname: `${bytes[nameAt + 4]}.${bytes[nameAt + 5]}.${bytes[nameAt + 6]}.${
              bytes[nameAt + 7]
            }`,
            port: names.getUint16(nameAt + 2, false),
          };
          this.#remember(key, from);
        }
      } else {
        const name = bytes.subarray(nameAt, nameAt + 28);
        const key = name.join(",");
        from = this.#sources.get(key);
        if (from === undefined) {
          from = decodeName(this.#c, name, this.#keepMapped);
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
}
