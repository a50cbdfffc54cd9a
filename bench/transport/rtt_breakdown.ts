/**
 * Where one message round trip's time goes: a pair of transports on loopback (pqEncryption on,
 * the default socket), `a` sends 256 bytes, `b` echoes them, `a` waits for the acknowledgement
 * and the echo (the RTT workload of `bench/compare.ts`). Each hop is timestamped by wrapping
 * the prototypes it passes through (application send, `QuicStream.write`, the datagram socket's
 * send and receive, `FrameCipher.open`, the application's receive), and the medians of each hop
 * over `--requests` round trips (default 2000, after 200 warm-up) are printed as a table, with
 * the datagrams each side sent per round trip. Both transports share one process and one event
 * loop, as in `bench/compare.ts`.
 *
 * Run: `deno run -A bench/transport/rtt_breakdown.ts [--requests 2000]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { FrameCipher } from "../../src/handshake/frame_cipher.ts";
import { LinuxHybridSocket } from "../../src/quic/linux_hybrid_socket.ts";
import {
  type DatagramReceiver,
  type DatagramSocket,
  DenoUdpSocket,
} from "../../src/quic/udp_socket.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import { QuicStream } from "../../src/quic/stream.ts";
import { QuicTransport } from "../../mod.ts";
import { pair } from "./_nodes.ts";

const { values } = parseArgs({ options: { requests: { type: "string", default: "2000" } } });
const REQUESTS = Number(values.requests);
if (!Number.isInteger(REQUESTS) || REQUESTS < 1) {
  throw new RangeError(`Invalid '--requests': must be a positive integer: got ${values.requests}`);
}
const WARMUP = 200;

/** A hop's event: what happened, on which node (`a` or `b`; `?` where it is not known). */
type Event = [name: string, side: string, at: number];
let trace: Event[] | undefined;
const ports = new Map<number, string>();
const mark = (name: string, side = "?") => trace?.push([name, side, performance.now()]);

// Wraps a prototype method so that each call first records an event.
function wrap<T extends object>(
  proto: T,
  method: keyof T & string,
  event: (self: T, args: unknown[]) => [string, string] | undefined,
): void {
  const original = proto[method] as (...args: unknown[]) => unknown;
  (proto as Record<string, unknown>)[method] = function (this: T, ...args: unknown[]) {
    const e = trace && event(this, args);
    if (e !== undefined) mark(...e);
    return original.apply(this, args);
  };
}

wrap(QuicTransport.prototype, "send", () => ["send", "?"]);
wrap(QuicStream.prototype, "write", () => ["stream write", "?"]);
wrap(FrameCipher.prototype, "open", () => ["open", "?"]);
for (const socket of [LinuxHybridSocket.prototype, DenoUdpSocket.prototype] as DatagramSocket[]) {
  const side = (s: { localAddr: UdpAddress }) => ports.get(s.localAddr.port) ?? "?";
  wrap(socket, "send", (s) => ["datagram out", side(s)]);
  const start = socket.start;
  socket.start = function (this: typeof socket, receive: DatagramReceiver, onBatchEnd) {
    return start.call(this, (data, from) => {
      mark("datagram in", side(this));
      receive(data, from);
    }, onBatchEnd);
  };
}

const message = { type: "consensus", data: new Uint8Array(256).fill(7) } as const;
const p = await pair({}, async (b) => {
  for await (const { from, message } of b.messages()) {
    mark("delivered", "b");
    b.send(from, message).catch(() => {});
  }
});
ports.set(p.a.localAddr.port, "a");
ports.set(p.b.localAddr.port, "b");
const inbox = p.a.messages();

/**
 * The hops of one round trip, in order: each is the first event of that name (and side) after
 * the previous hop.
 */
const HOPS: [label: string, name: string, side: string][] = [
  ["a: send() called", "send", "?"],
  ["a: encode, lane, seal -> QuicStream.write", "stream write", "?"],
  ["a: quiche packet -> first datagram out", "datagram out", "a"],
  ["loopback, b's socket wakes -> datagram in", "datagram in", "b"],
  ["b: quiche recv, stream read -> FrameCipher.open", "open", "?"],
  ["b: open, decode, queue -> app has the message", "delivered", "b"],
  ["b: app's echo send() called", "send", "?"],
  ["b: encode, lane, seal -> QuicStream.write", "stream write", "?"],
  ["b: quiche packet -> first datagram out", "datagram out", "b"],
  ["loopback, a's socket wakes -> datagram in", "datagram in", "a"],
  ["a: quiche recv, stream read -> FrameCipher.open", "open", "?"],
  ["a: open, ack and echo -> both awaited", "done", "a"],
];

async function roundTrip(): Promise<void> {
  mark("start", "a");
  await Promise.all([p.a.send(p.remote, message), inbox.next()]);
  mark("done", "a");
}

for (let i = 0; i < WARMUP; i++) await roundTrip();
const hops = HOPS.map(() => [] as number[]);
const totals: number[] = [];
const datagrams = { a: 0, b: 0 };
for (let i = 0; i < REQUESTS; i++) {
  trace = [];
  await roundTrip();
  const events = trace;
  trace = undefined;
  for (const [name, side] of events) {
    if (name === "datagram out") datagrams[side as "a" | "b"]++;
  }
  let at = 0;
  let previous = events[0][2];
  const times: number[] = [];
  for (const [, name, side] of HOPS) {
    while (
      at < events.length && !(events[at][0] === name && (side === "?" || events[at][1] === side))
    ) {
      at++;
    }
    if (at === events.length) break;
    times.push(events[at][2] - previous);
    previous = events[at][2];
  }
  if (times.length < HOPS.length) continue; // a hop went unseen (e.g. a retransmission)
  times.forEach((t, h) => hops[h].push(t));
  totals.push(events[events.length - 1][2] - events[0][2]);
}
await p.close();

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const total = median(totals);
console.log(
  `${totals.length} of ${REQUESTS} round trips with every hop seen; medians in µs; ` +
    `load average ${Deno.loadavg().map((l) => l.toFixed(1)).join(" ")}`,
);
console.log("| hop | µs | share |");
console.log("|---|---|---|");
for (let h = 0; h < HOPS.length; h++) {
  const m = median(hops[h]) * 1000;
  console.log(`| ${HOPS[h][0]} | ${m.toFixed(0)} | ${(m / 10 / total).toFixed(0)}% |`);
}
console.log(`| round trip (median of totals) | ${(total * 1000).toFixed(0)} | |`);
console.log(
  `datagrams per round trip: a ${(datagrams.a / REQUESTS).toFixed(2)}, b ${
    (datagrams.b / REQUESTS).toFixed(2)
  }`,
);
Deno.exit(0);
