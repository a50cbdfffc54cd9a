/**
 * Helpers shared by the QUIC tests: endpoint pairs on loopback, hashing, bounded waits and a
 * raw UDP socket for hand-made datagrams.
 *
 * @module
 */
import { type ConnectOptions, QuicEndpoint } from "../../src/quic/endpoint.ts";
import type { QuicEndpointOptions } from "../../src/quic/options.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import type { QuicConnection } from "../../src/quic/connection.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import assert from "node:assert/strict";

/** Two endpoints on 127.0.0.1, closed together by `await using`. */
export interface Pair extends AsyncDisposable {
  server: QuicEndpoint;
  client: QuicEndpoint;
}

/** Binds a server and a client endpoint on loopback. */
export async function pair(
  serverOptions: QuicEndpointOptions = {},
  clientOptions: QuicEndpointOptions = {},
): Promise<Pair> {
  const server = await QuicEndpoint.bind({ hostname: "127.0.0.1", ...serverOptions });
  let client: QuicEndpoint;
  try {
    client = await QuicEndpoint.bind({ hostname: "127.0.0.1", ...clientOptions });
  } catch (e) {
    await server.close();
    throw e;
  }
  return {
    server,
    client,
    async [Symbol.asyncDispose]() {
      await Promise.all([client.close(), server.close()]);
    },
  };
}

/** SHA-256 of bytes, as hex. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Random bytes of any length (getRandomValues takes at most 64 KiB a call). */
export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(length, at + 65536)));
  }
  return out;
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Rejects when `promise` does not settle within `ms`, so that a hang fails the test with a
 * message instead of stalling the suite. The timer is always cleared.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `condition` every 5 ms until it holds, for state that has no event (counters);
 * throws after `ms`.
 */
export async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${what}: not true within ${ms} ms`);
    await delay(5);
  }
}

/** Whether a promise is still pending after everything queued so far ran (one macrotask). */
export async function isPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await delay(0);
  return !settled;
}

/** A plain UDP socket on loopback for hand-made datagrams. */
export class RawSocket implements AsyncDisposable {
  readonly conn: Deno.DatagramConn;
  readonly addr: UdpAddress;

  constructor() {
    this.conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const addr = this.conn.addr as Deno.NetAddr;
    this.addr = { hostname: addr.hostname, port: addr.port };
  }

  async send(data: Uint8Array, to: UdpAddress): Promise<void> {
    await this.conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port });
  }

  /** The next datagram, or rejects after `ms`. */
  async receive(ms: number): Promise<[Uint8Array, UdpAddress]> {
    const [data, from] = await within(this.conn.receive(), ms, "raw receive");
    const addr = from as Deno.NetAddr;
    return [data, { hostname: addr.hostname, port: addr.port }];
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.conn.close();
    return Promise.resolve();
  }
}

/**
 * A UDP relay between one client and a server, so a test can see and change the datagrams in
 * flight. `onClientDatagram` may return a replacement, or null to drop the datagram.
 */
export class Relay implements AsyncDisposable {
  readonly socket: RawSocket;
  /** Datagrams the client sent, in order, as they arrived (before any change). */
  readonly fromClient: Uint8Array[] = [];
  client: UdpAddress | undefined;
  onClientDatagram: ((data: Uint8Array) => Uint8Array | null) | undefined;
  #server: UdpAddress;
  #loop: Promise<void>;
  #closed = false;

  constructor(server: UdpAddress) {
    this.socket = new RawSocket();
    this.#server = server;
    this.#loop = this.#run();
  }

  get addr(): UdpAddress {
    return this.socket.addr;
  }

  /** Sends a datagram to the server from the relay's address (as if from the client). */
  inject(data: Uint8Array): Promise<void> {
    return this.socket.send(data, this.#server);
  }

  async #run(): Promise<void> {
    const server = this.#server;
    while (!this.#closed) {
      let data: Uint8Array;
      let from: Deno.NetAddr;
      try {
        const [d, f] = await this.socket.conn.receive();
        data = d;
        from = f as Deno.NetAddr;
      } catch {
        if (this.#closed) return;
        continue; // ICMP errors of earlier sends surface here
      }
      try {
        if (from.port === server.port && from.hostname === server.hostname) {
          if (this.client !== undefined) await this.socket.send(data, this.client);
        } else {
          this.client = { hostname: from.hostname, port: from.port };
          this.fromClient.push(data.slice());
          const out = this.onClientDatagram === undefined ? data : this.onClientDatagram(data);
          if (out !== null) await this.socket.send(out, server);
        }
      } catch {
        if (this.#closed) return;
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#closed = true;
    this.socket.conn.close();
    await this.#loop;
  }
}

/** Encodes a QUIC variable-length integer (RFC 9000 section 16). */
export function varint(value: number): Uint8Array {
  if (value < 0x40) return new Uint8Array([value]);
  if (value < 0x4000) return new Uint8Array([0x40 | (value >> 8), value & 0xff]);
  return new Uint8Array([
    0x80 | (value >>> 24),
    (value >> 16) & 0xff,
    (value >> 8) & 0xff,
    value & 0xff,
  ]);
}

/** Fields of a hand-made long-header datagram. */
export interface LongHeaderFields {
  /** First byte. @default {0xc0} (Initial, packet number length 1) */
  first?: number;
  /** @default {1} */
  version?: number;
  dcid: Uint8Array;
  scid: Uint8Array;
  /** For Initial packets: the token. @default {empty} */
  token?: Uint8Array;
  /** Total size, padded with random bytes. @default {1200} */
  size?: number;
}

/**
 * A long-header datagram with a random (undecryptable) payload: enough for an endpoint to
 * route it and read its version, ids and token without decrypting anything.
 */
export function longHeaderDatagram(fields: LongHeaderFields): Uint8Array {
  const { first = 0xc0, version = 1, dcid, scid, token = new Uint8Array(0), size = 1200 } = fields;
  const head = [
    first,
    version >>> 24,
    (version >> 16) & 0xff,
    (version >> 8) & 0xff,
    version & 0xff,
    dcid.byteLength,
    ...dcid,
    scid.byteLength,
    ...scid,
    ...varint(token.byteLength),
    ...token,
  ];
  const rest = size - head.length - 2;
  const out = new Uint8Array(size);
  out.set(head);
  out.set(varint(Math.max(0, rest)), head.length); // Length, 2 bytes for 64..16383
  out.set(randomBytes(Math.max(0, rest)), head.length + 2);
  return out;
}

/** One request and its echo on a fresh bidi stream; the server side must run `serveEcho`. */
export async function roundTrip(conn: QuicConnection, size = 100): Promise<void> {
  const stream = await conn.openBidi();
  const sent = randomBytes(size);
  await stream.write(sent, true);
  assert.deepEqual(await within(stream.readAll(), 5000, "echo"), sent);
}

/**
 * Echoes every bidi stream of a connection until it closes: by default each stream whole,
 * once its sender finished; with `streaming`, chunk by chunk as the data arrives, so that both
 * directions carry data at once (for throughput measured both ways).
 */
export async function serveEcho(
  conn: QuicConnection,
  { streaming = false }: { streaming?: boolean } = {},
): Promise<void> {
  for (;;) {
    let stream: QuicStream;
    try {
      stream = await conn.acceptBidi();
    } catch {
      return; // closed
    }
    const echoing = streaming
      ? echoChunks(stream)
      : stream.readAll().then((data) => stream.write(data, true));
    echoing.catch(() => {});
  }
}

async function echoChunks(stream: QuicStream): Promise<void> {
  for (;;) {
    const chunk = await stream.read();
    if (chunk === null) break;
    await stream.write(chunk.slice());
  }
  await stream.write(new Uint8Array(0), true);
}

/** Sends `data` on a fresh bidi stream and returns what comes back (the peer echoes). */
export async function echo(conn: QuicConnection, data: Uint8Array): Promise<Uint8Array> {
  const stream = await conn.openBidi();
  const back = stream.readAll();
  await stream.write(data, true);
  return await back;
}

/** The `p` quantile (0 to 1) of ascending samples, by the nearest rank below. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Dials the pair's server from its client; returns both ends of the connection. */
export async function connect(
  p: Pair,
  options: ConnectOptions = {},
): Promise<{ conn: QuicConnection; peer: QuicConnection }> {
  const accepted = p.server.accept();
  const conn = await p.client.connect(p.server.localAddr, options);
  return { conn, peer: await within(accepted, 5000, "accept") };
}
