/**
 * The transport's message workloads next to raw QUIC streams, in one run: our `QuicTransport`
 * (pqEncryption on, the default), Deno's native QUIC (quinn, `bench/quic/_pairs.ts`
 * `nativePair`). (The `@matrixai/quic` `QUICServer`/`QUICClient` classes were a third column
 * until the repository moved to Deno's own npm resolver, which cannot resolve that package.)
 *
 * Workloads, each on loopback, in `--rounds` rounds (default 3). In a round both implementations
 * are set up, and the latency samples are taken interleaved: blocks of samples, the order of the
 * implementations rotating from block to block, so that a change of load on the machine (its
 * cores are shared) hits both alike instead of whichever ran at the time. Throughput runs one
 * implementation after the other (ours PQ on and PQ off, in an order that alternates by round).
 * - message RTT: 256 bytes there and back, `--requests` times (default 1000) after 50 warm-up,
 *   in blocks of 100. Ours: `send` to the peer, which sends the message back (the send's
 *   acknowledgement and the answer both awaited). Raw QUIC: a request on a fresh bidirectional
 *   stream, echoed.
 * - broadcast: 256 bytes to each of `--peers` peers (default 10), done when every peer
 *   acknowledged (ours: the transport's acknowledgement; raw QUIC: the echo), `--broadcasts`
 *   times (default 200) in blocks of 20; the same to `--wide-peers` peers (default 100; 0 skips
 *   it), `--wide-broadcasts` times (default 100) in blocks of 10, on peers set up for this
 *   workload alone (a hundred idle Deno QUIC endpoints slow Deno's own round trips down).
 * - throughput: `--mib` MiB (default 16) one way. Ours: 1 MiB vertices, all sent at once,
 *   done when all are acknowledged. Raw QUIC: one stream of 64 KiB writes, done when the
 *   server saw the FIN and answered.
 *
 * - connection set-up: the rounds of `bench/transport/connect_rounds.ts` (QUIC alone reconnecting
 *   and from a new endpoint, a transport reconnect and a new peer, interleaved), `--connects`
 *   reconnects per round (default 50, a fifth as many new peers; 0 skips them), after the rounds
 *   above.
 *
 * Every phase of every implementation is bounded (`--timeout` seconds, default 60): one that
 * does not finish is reported as "timed out".
 * Prints a table with ratios to native QUIC and writes `bench/results/compare-<date>.md`
 * (with an inline SVG chart of the RTT distributions) and `compare-<date>.svg`.
 *
 * Run: `deno run -A bench/compare.ts [--rounds 3] [--requests 1000] [--peers 10] [--mib 16]`
 * (narrowest: `--allow-net=127.0.0.1 --allow-ffi --allow-sys --allow-write=bench/results`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BenchPair, nativePair } from "./quic/_pairs.ts";
import type { QuicTransport } from "../mod.ts";
import { echo, pair as transportPair, star } from "./transport/_nodes.ts";
import { CONNECT_GOALS, type ConnectFigures, connectRounds } from "./transport/_connect_rounds.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    requests: { type: "string", default: "1000" },
    peers: { type: "string", default: "10" },
    broadcasts: { type: "string", default: "200" },
    "wide-peers": { type: "string", default: "100" },
    "wide-broadcasts": { type: "string", default: "100" },
    mib: { type: "string", default: "16" },
    connects: { type: "string", default: "50" },
    timeout: { type: "string", default: "60" },
    out: { type: "string", default: "bench/results" },
  },
});
const ROUNDS = positive("rounds");
const REQUESTS = positive("requests");
const PEERS = positive("peers");
const BROADCASTS = positive("broadcasts");
const WIDE_PEERS = Number(values["wide-peers"]) === 0 ? 0 : positive("wide-peers");
const WIDE_BROADCASTS = positive("wide-broadcasts");
const MIB = positive("mib");
const CONNECTS = Number(values.connects) === 0 ? 0 : positive("connects");
const TIMEOUT_MS = positive("timeout") * 1000;
const PAYLOAD = new Uint8Array(256).fill(7);
const WARMUP = 50;

function positive(name: keyof typeof values): number {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Invalid '--${name}': must be a positive integer: got ${values[name]}`);
  }
  return n;
}

/** One implementation under test: the three workloads on connections set up beforehand. */
interface Contender {
  /** One 256-byte round trip. */
  rtt(): Promise<void>;
  /** 256 bytes to every peer, until every peer acknowledged. */
  broadcast(): Promise<void>;
  /** `bytes` one way, until the receiver has them. */
  bulk(bytes: number): Promise<void>;
  /** Ours only: the same with pqEncryption off, for the cost of PQ encryption. */
  bulkPqOff?(bytes: number): Promise<void>;
  close(): Promise<void>;
}

/** `WIDE_PEERS` peers to broadcast to, set up for that workload alone. */
interface Fanout {
  broadcast(): Promise<void>;
  close(): Promise<void>;
}

interface Implementation {
  key: string;
  label: string;
  setUp(): Promise<Contender>;
  setUpWide(): Promise<Fanout>;
}

const message = { type: "consensus", data: PAYLOAD } as const;

async function broadcastAll(hub: QuicTransport): Promise<void> {
  const results = await hub.broadcast(message);
  const failed = results.find((r) => !r.ok);
  if (failed && !failed.ok) throw failed.error;
}

/** Our transport, pqEncryption on: an echoing pair and a star of draining peers. */
async function ours(): Promise<Contender> {
  const p = await transportPair({ pqEncryption: true }, echo);
  const plain = await transportPair({ pqEncryption: false });
  const inbox = p.a.messages();
  const s = await star(PEERS, { pqEncryption: true });
  const vertex = { type: "vertex", data: new Uint8Array(1024 * 1024).fill(3) } as const;
  return {
    async rtt() {
      const [, reply] = await Promise.all([p.a.send(p.remote, message), inbox.next()]);
      if (reply.done) throw new Error("transport closed");
    },
    broadcast: () => broadcastAll(s.hub),
    async bulk(bytes) {
      const count = Math.ceil(bytes / vertex.data.byteLength);
      await Promise.all(Array.from({ length: count }, () => p.a.send(p.remote, vertex)));
    },
    async bulkPqOff(bytes) {
      const count = Math.ceil(bytes / vertex.data.byteLength);
      await Promise.all(Array.from({ length: count }, () => plain.a.send(plain.remote, vertex)));
    },
    async close() {
      await p.close();
      await plain.close();
      await s.close();
    },
  };
}

async function oursWide(): Promise<Fanout> {
  const s = await star(WIDE_PEERS, { pqEncryption: true });
  return { broadcast: () => broadcastAll(s.hub), close: () => s.close() };
}

async function echoed(p: BenchPair): Promise<void> {
  const size = await p.request(PAYLOAD);
  if (size !== PAYLOAD.byteLength) throw new Error(`${p.name}: echo of ${size} bytes`);
}

/** Raw streams: one pair for RTT and bulk, `PEERS` more for the broadcast. */
async function rawStreams(make: () => Promise<BenchPair>): Promise<Contender> {
  const main = await make();
  const fanout: BenchPair[] = [];
  try {
    for (let i = 0; i < PEERS; i++) fanout.push(await make());
  } catch (e) {
    await Promise.allSettled([main, ...fanout].map((p) => p.close()));
    throw e;
  }
  return {
    rtt: () => echoed(main),
    async broadcast() {
      await Promise.all(fanout.map(echoed));
    },
    bulk: (bytes) => main.bulk(bytes),
    async close() {
      await Promise.allSettled([main, ...fanout].map((p) => p.close()));
    },
  };
}

/** `WIDE_PEERS` raw pairs, each echoing. */
async function rawFanout(make: () => Promise<BenchPair>): Promise<Fanout> {
  const pairs: BenchPair[] = [];
  const close = async () => void await Promise.allSettled(pairs.map((p) => p.close()));
  try {
    for (let i = 0; i < WIDE_PEERS; i++) pairs.push(await make());
  } catch (e) {
    await close();
    throw e;
  }
  return { broadcast: async () => void await Promise.all(pairs.map(echoed)), close };
}

const IMPLEMENTATIONS: Implementation[] = [
  { key: "ours", label: "cretoai QuicTransport (pq on)", setUp: ours, setUpWide: oursWide },
  {
    key: "native",
    label: "Deno native QUIC streams",
    setUp: () => rawStreams(nativePair),
    setUpWide: () => rawFanout(nativePair),
  },
];

/** What one round of one implementation measured; `undefined` where it timed out or failed. */
interface Round {
  rtts?: number[];
  broadcasts?: number[];
  wideBroadcasts?: number[];
  mibPerSec?: number;
  mibPerSecPqOff?: number;
  errors: string[];
}

class TimedOut extends Error {}

/** Bounds `work`; a timeout leaves it running in the background, unawaited. */
async function bounded<T>(what: string, work: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TimedOut(`${what}: timed out after ${TIMEOUT_MS / 1000} s`)),
      TIMEOUT_MS,
    );
  });
  const running = work();
  running.catch(() => {}); // a late failure after a timeout is not unhandled
  try {
    return await Promise.race([running, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `items` starting at `offset`, wrapping around: who goes first changes from turn to turn. */
function rotated<T>(items: T[], offset: number): T[] {
  return items.map((_, i) => items[(i + offset) % items.length]);
}

/**
 * Samples of one workload of every contender, interleaved: `WARMUP` runs each, then blocks of
 * `block` timed runs, the contenders' order rotating from block to block. A contender that
 * fails or times out drops out of this workload (its error goes to its round).
 */
async function interleaved<C>(
  name: string,
  set: [Implementation, C][],
  workload: (c: C) => (() => Promise<void>) | undefined,
  n: number,
  block: number,
  rounds: Record<string, Round>,
): Promise<Record<string, number[]>> {
  const running = set.flatMap(([impl, contender]) => {
    const op = workload(contender);
    return op === undefined ? [] : [{ key: impl.key, op, samples: [] as number[] }];
  });
  const run = async (entry: (typeof running)[number], what: string, work: () => Promise<void>) => {
    try {
      await bounded(`${entry.key} ${what}`, work);
    } catch (e) {
      rounds[entry.key].errors.push(
        e instanceof TimedOut ? e.message : `${name}: ${(e as Error).message}`,
      );
      running.splice(running.indexOf(entry), 1);
    }
  };
  for (const entry of [...running]) {
    await run(entry, `${name} warm-up`, async () => {
      for (let i = 0; i < Math.min(WARMUP, n); i++) await entry.op();
    });
  }
  for (let b = 0; b * block < n; b++) {
    for (const entry of rotated([...running], b)) {
      await run(entry, name, async () => {
        for (let i = b * block; i < Math.min(n, (b + 1) * block); i++) {
          const start = performance.now();
          await entry.op();
          entry.samples.push(performance.now() - start);
        }
      });
    }
  }
  return Object.fromEntries(running.map((e) => [e.key, e.samples.sort((a, b) => a - b)]));
}

/** One round: every implementation set up, latency workloads interleaved, throughput in turn. */
async function runRound(index: number): Promise<Record<string, Round>> {
  const rounds: Record<string, Round> = {};
  const set: [Implementation, Contender][] = [];
  for (const impl of rotated(IMPLEMENTATIONS, index)) {
    const round: Round = rounds[impl.key] = { errors: [] };
    try {
      set.push([impl, await bounded(`${impl.key} set-up`, impl.setUp)]);
    } catch (e) {
      round.errors.push((e as Error).message);
    }
  }
  const rtts = await interleaved("RTT", set, (c) => () => c.rtt(), REQUESTS, 100, rounds);
  const broadcasts = await interleaved(
    "broadcast",
    set,
    (c) => c.broadcast,
    BROADCASTS,
    20,
    rounds,
  );
  for (const [impl, contender] of set) {
    const round = rounds[impl.key];
    round.rtts = rtts[impl.key];
    round.broadcasts = broadcasts[impl.key];
    await throughput(impl, contender, round, index);
  }
  // Last: a connection left idle through the long set-up of a hundred peers times out.
  const wide = WIDE_PEERS > 0 ? await wideBroadcasts(index, rounds) : {};
  for (const impl of IMPLEMENTATIONS) rounds[impl.key].wideBroadcasts = wide[impl.key];
  return rounds;
}

/** The broadcast to `WIDE_PEERS` peers, interleaved, on fan-outs set up for it alone. */
async function wideBroadcasts(
  index: number,
  rounds: Record<string, Round>,
): Promise<Record<string, number[]>> {
  const set: [Implementation, Fanout][] = [];
  for (const impl of rotated(IMPLEMENTATIONS, index)) {
    try {
      set.push([impl, await bounded(`${impl.key} wide set-up`, impl.setUpWide)]);
    } catch (e) {
      rounds[impl.key].errors.push((e as Error).message);
    }
  }
  const name = `broadcast to ${WIDE_PEERS}`;
  const samples = await interleaved(name, set, (f) => f.broadcast, WIDE_BROADCASTS, 10, rounds);
  for (const [impl, fanout] of set) {
    await bounded(`${impl.key} wide close`, fanout.close).catch((e) => {
      rounds[impl.key].errors.push((e as Error).message);
    });
  }
  return samples;
}

/** Quiet time before each throughput measurement (see `throughput`). */
const SETTLE_MS = 200;

/**
 * The throughput workloads of one contender, then its close. Ours runs PQ on and PQ off one after
 * the other, PQ on first in even rounds and second in odd ones, and every measurement starts
 * `SETTLE_MS` after its warm-up: Deno's native QUIC goes on working after a workload resolved, and
 * the pair measured right after it took 0.5-3 ms of CPU per MiB more (`throughput_rounds.ts`).
 */
async function throughput(
  impl: Implementation,
  contender: Contender,
  round: Round,
  index: number,
) {
  const phase = async <T>(name: string, work: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await bounded(`${impl.key} ${name}`, work);
    } catch (e) {
      round.errors.push(e instanceof TimedOut ? e.message : `${name}: ${(e as Error).message}`);
      return undefined;
    }
  };
  const measure = (bulk: (bytes: number) => Promise<void>) => async () => {
    await bulk(1024 * 1024); // warm-up
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const start = performance.now();
    await bulk(MIB * 1024 * 1024);
    return MIB / ((performance.now() - start) / 1000);
  };
  const pqOn = async () => {
    round.mibPerSec = await phase("throughput", measure(contender.bulk));
  };
  const bulkPqOff = contender.bulkPqOff;
  const pqOff = async () => {
    if (bulkPqOff === undefined) return;
    round.mibPerSecPqOff = await phase("throughput, pq off", measure(bulkPqOff));
  };
  for (const run of rotated([pqOn, pqOff], index)) await run();
  const closed = await phase("close", () => contender.close());
  if (closed === undefined && round.errors.some((e) => e.includes("close"))) {
    round.errors.push("(left running: close did not finish)");
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

/** Median and range over the rounds that produced a value. */
interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

function spread(values: (number | undefined)[]): Spread | undefined {
  const v = values.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  return {
    median: (v[Math.floor((v.length - 1) / 2)] + v[Math.ceil((v.length - 1) / 2)]) / 2,
    min: v[0],
    max: v[v.length - 1],
    n: v.length,
  };
}

type Metric =
  | "rttP50"
  | "rttP99"
  | "bcP50"
  | "bcP99"
  | "wideP50"
  | "wideP99"
  | "mibPerSec"
  | "mibPerSecPqOff";
const METRICS: [Metric, string, (r: Round) => number | undefined][] = ([
  ["rttP50", "message RTT p50 (ms)", (r) => r.rtts && percentile(r.rtts, 0.5)],
  ["rttP99", "message RTT p99 (ms)", (r) => r.rtts && percentile(r.rtts, 0.99)],
  ["bcP50", `broadcast to ${PEERS} p50 (ms)`, (r) => r.broadcasts && percentile(r.broadcasts, 0.5)],
  [
    "bcP99",
    `broadcast to ${PEERS} p99 (ms)`,
    (r) => r.broadcasts && percentile(r.broadcasts, 0.99),
  ],
  [
    "wideP50",
    `broadcast to ${WIDE_PEERS} p50 (ms)`,
    (r) => r.wideBroadcasts && percentile(r.wideBroadcasts, 0.5),
  ],
  [
    "wideP99",
    `broadcast to ${WIDE_PEERS} p99 (ms)`,
    (r) => r.wideBroadcasts && percentile(r.wideBroadcasts, 0.99),
  ],
  ["mibPerSec", `throughput ${MIB} MiB (MiB/s)`, (r) => r.mibPerSec],
  ["mibPerSecPqOff", `throughput ${MIB} MiB, pq off (MiB/s)`, (r) => r.mibPerSecPqOff],
] as [Metric, string, (r: Round) => number | undefined][]).filter(([m]) =>
  WIDE_PEERS > 0 || !m.startsWith("wide")
);

/**
 * The goals of issue 16 beside the figures (medians of the rounds' ratios, ours / native,
 * each ratio taken within one round of interleaved samples): message RTT p50
 * and p99 and broadcast p50 at most 1.0x, throughput at least 0.45x, PQ encryption costing at
 * most 15% of throughput; a new peer at most 5x QUIC alone and a reconnect at most 2x (when the
 * set-up rounds ran); memory comes from its own benchmark.
 */
function goalLines(
  figures: Record<string, Record<Metric, Spread | undefined>>,
  ratios: Record<Metric, Spread | undefined>,
  connects: ConnectFigures | undefined,
): string[] {
  const ours = figures.ours;
  const vs = (m: Metric, goal: string, ok: (r: number) => boolean) => {
    const r = ratios[m]?.median;
    if (r === undefined) return `no figure (goal ${goal})`;
    return `${r.toFixed(2)}x (goal ${goal}): ${ok(r) ? "met" : "NOT met"}`;
  };
  const on = ours.mibPerSec?.median, off = ours.mibPerSecPqOff?.median;
  const cost = on !== undefined && off !== undefined ? 1 - on / off : undefined;
  return [
    `- message RTT p50 vs native: ${vs("rttP50", "<= 1.0x", (r) => r <= 1)}`,
    `- message RTT p99 vs native: ${vs("rttP99", "<= 1.0x", (r) => r <= 1)}`,
    `- broadcast to ${PEERS} p50 vs native: ${vs("bcP50", "<= 1.0x", (r) => r <= 1)}`,
    `- broadcast to ${WIDE_PEERS} peers: ${
      ours.wideP50 === undefined || ours.wideP99 === undefined
        ? "no figure"
        : `p50 ${ours.wideP50.median.toFixed(2)} ms, p99 ${ours.wideP99.median.toFixed(2)} ms`
    } (reported; no goal)`,
    `- throughput of 1 MiB vertices vs native: ${vs("mibPerSec", ">= 0.45x", (r) => r >= 0.45)}`,
    `- cost of PQ encryption on throughput: ${
      cost === undefined
        ? "no figure"
        : `${(cost * 100).toFixed(0)}% (goal <= 15%): ${cost <= 0.15 ? "met" : "NOT met"}`
    }`,
    `- message RTT p99 under the design's 50 ms: ${
      ours.rttP99 === undefined
        ? "no figure"
        : `${ours.rttP99.median.toFixed(2)} ms, ${ours.rttP99.median < 50 ? "met" : "NOT met"}`
    }`,
    ...(connects === undefined ? ["- connection set-up: skipped (`--connects 0`)"] : [
      `- reconnect vs QUIC alone: ${connects.reconnectRatio.toFixed(2)}x (` +
      `${connects.p50Ms["reconnect"].toFixed(2)} ms against ` +
      `${connects.p50Ms["QUIC alone"].toFixed(2)} ms; goal <= ${CONNECT_GOALS.reconnect}x): ` +
      `${connects.reconnectRatio <= CONNECT_GOALS.reconnect ? "met" : "NOT met"}`,
      `- connectPeer to a new peer vs QUIC alone: ${connects.newPeerRatio.toFixed(2)}x (` +
      `${connects.p50Ms["new peer"].toFixed(2)} ms; goal <= ${CONNECT_GOALS.newPeer}x): ` +
      `${connects.newPeerRatio <= CONNECT_GOALS.newPeer ? "met" : "NOT met"}; ` +
      `${connects.newPeerLikeForLike.toFixed(2)}x QUIC alone from a new endpoint ` +
      `(${connects.p50Ms["QUIC alone, new endpoint"].toFixed(2)} ms, the same TLS work)`,
      `- the same one by one, each next to a QUIC alone (bench/transport/_connect_rounds.ts): ` +
      `reconnect ${connects.reconnectRatioOneByOne.toFixed(2)}x, new peer ` +
      `${connects.newPeerRatioOneByOne.toFixed(2)}x`,
    ]),
    "- memory <= 128 KiB per connection end: `deno run -A --v8-flags=--expose-gc " +
    "bench/transport/memory.ts --peers 1000`",
  ];
}

function cell(s: Spread | undefined): string {
  if (s === undefined) return "timed out / failed";
  const f = (x: number) => x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  return s.n > 1 ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : f(s.median);
}

function ratio(r: Spread | undefined): string {
  if (r === undefined) return "–";
  const f = (x: number) => `${x.toFixed(2)}x`;
  return r.n > 1 ? `${f(r.median)} (${f(r.min)}–${f(r.max)})` : f(r.median);
}

const COLORS: Record<string, string> = { ours: "#1f77b4", native: "#2ca02c" };

/** A CDF of the message RTT of each implementation (all rounds pooled), log-scale x axis. */
function svgChart(rtts: Record<string, number[]>): string {
  const W = 720, H = 360, L = 60, R = 20, T = 30, B = 50;
  const all = Object.values(rtts).flat();
  const lo = Math.max(0.01, Math.min(...all));
  const hi = Math.max(...all);
  const x0 = Math.log10(lo), x1 = Math.log10(hi);
  const x = (ms: number) => L + (Math.log10(Math.max(ms, lo)) - x0) / (x1 - x0 || 1) * (W - L - R);
  const y = (q: number) => T + (1 - q) * (H - T - B);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${
      W / 2
    }" y="18" text-anchor="middle" font-size="14">Message RTT, 256 B, loopback: cumulative distribution</text>`,
  ];
  for (const q of [0, 0.25, 0.5, 0.75, 0.99, 1]) {
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${y(q)}" y2="${y(q)}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${y(q) + 4}" text-anchor="end">${q}</text>`,
    );
  }
  for (let e = Math.floor(x0); e <= Math.ceil(x1); e++) {
    for (const m of [1, 2, 5]) {
      const ms = m * 10 ** e;
      if (ms < lo || ms > hi) continue;
      parts.push(
        `<line x1="${x(ms)}" x2="${x(ms)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`,
        `<text x="${x(ms)}" y="${H - B + 16}" text-anchor="middle">${ms}</text>`,
      );
    }
  }
  parts.push(
    `<text x="${(L + W - R) / 2}" y="${
      H - 12
    }" text-anchor="middle">milliseconds (log scale)</text>`,
    `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>`,
  );
  let legend = 0;
  for (const [key, values] of Object.entries(rtts)) {
    const sorted = [...values].sort((a, b) => a - b);
    const step = Math.max(1, Math.floor(sorted.length / 400));
    const points: string[] = [];
    for (let i = 0; i < sorted.length; i += step) {
      points.push(`${x(sorted[i]).toFixed(1)},${y((i + 1) / sorted.length).toFixed(1)}`);
    }
    points.push(`${x(sorted[sorted.length - 1]).toFixed(1)},${y(1).toFixed(1)}`);
    const label = IMPLEMENTATIONS.find((i) => i.key === key)!.label;
    parts.push(
      `<polyline fill="none" stroke="${COLORS[key]}" stroke-width="2" points="${
        points.join(" ")
      }"/>`,
      `<rect x="${L + 12}" y="${T + 10 + legend * 18}" width="14" height="4" fill="${
        COLORS[key]
      }"/>`,
      `<text x="${L + 32}" y="${T + 16 + legend * 18}">${label}</text>`,
    );
    legend++;
  }
  parts.push("</svg>");
  return parts.join("\n");
}

async function main(): Promise<void> {
  const load = () => Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  const loadBefore = load();
  const started = new Date();
  const results: Record<string, Round[]> = {};
  for (const impl of IMPLEMENTATIONS) results[impl.key] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const t0 = performance.now();
    const rounds = await runRound(round - 1);
    const took = ((performance.now() - t0) / 1000).toFixed(1);
    for (const impl of IMPLEMENTATIONS) {
      const r = rounds[impl.key];
      results[impl.key].push(r);
      if (r.errors.length > 0) console.error(`round ${round} ${impl.key}: ${r.errors.join("; ")}`);
    }
    console.error(`round ${round}: ${took} s`);
  }
  const figures: Record<string, Record<Metric, Spread | undefined>> = {};
  for (const impl of IMPLEMENTATIONS) {
    figures[impl.key] = Object.fromEntries(
      METRICS.map(([m, , get]) => [m, spread(results[impl.key].map(get))]),
    ) as Record<Metric, Spread | undefined>;
  }
  // Ratios within each round, where both ran on the same interleaved load, then their median.
  const ratios = Object.fromEntries(METRICS.map(([m, , get]) => [
    m,
    spread(results.ours.map((r, i) => {
      const [a, b] = [get(r), get(results.native[i])];
      return a === undefined || b === undefined ? undefined : a / b;
    })),
  ])) as Record<Metric, Spread | undefined>;

  const command = `deno run -A bench/compare.ts ${Deno.args.join(" ")}`.trim();
  const header = `median (min–max) over ${ROUNDS} rounds; ${REQUESTS} RTT samples of 256 B, ` +
    `${BROADCASTS} broadcasts to ${PEERS} peers, ${WIDE_BROADCASTS} to ${WIDE_PEERS} peers ` +
    `(latency samples interleaved with native's), ${MIB} MiB one way`;
  const rows = [
    "| workload | cretoai QuicTransport (pq on) | Deno native QUIC | ours / native, by round |",
    "|---|---|---|---|",
    ...METRICS.map(([m, label]) => {
      const [o, n] = ["ours", "native"].map((k) => figures[k][m]);
      if (m === "mibPerSecPqOff") return `| ${label} | ${cell(o)} | – | – |`;
      return `| ${label} | ${cell(o)} | ${cell(n)} | ${ratio(ratios[m])} |`;
    }),
  ];
  console.log(header);
  console.log(rows.join("\n"));
  const connects = CONNECTS === 0 ? undefined : await connectRounds({
    rounds: ROUNDS,
    connects: CONNECTS,
    onRound: (line) => console.error(`set-up ${line}`),
  });
  const goals = goalLines(figures, ratios, connects);
  console.log(goals.join("\n"));

  const pooled: Record<string, number[]> = {};
  for (const impl of IMPLEMENTATIONS) {
    const all = results[impl.key].flatMap((r) => r.rtts ?? []);
    if (all.length > 0) pooled[impl.key] = all;
  }
  const svg = svgChart(pooled);
  const errors = IMPLEMENTATIONS.flatMap((impl) =>
    results[impl.key].flatMap((r, i) => r.errors.map((e) => `- round ${i + 1}: ${e}`))
  );
  const stamp = started.toISOString().slice(0, 16).replace(":", "");
  const base = `${values.out}/compare-${stamp}`;
  const markdown = [
    `# Transport vs raw QUIC streams, ${started.toISOString()}`,
    "",
    `Command: \`${command}\`. Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs, ` +
    `load average ${loadBefore} before, ${load()} after (the machine is shared).`,
    "",
    header + ".",
    "",
    ...rows,
    "",
    ...goals,
    "",
    "What is measured: see the header of `bench/compare.ts`. Ours sends messages (sealed with " +
    "the ML-KEM session keys, acknowledged by the peer's transport); the raw implementations " +
    "send bytes on a fresh stream per request and get them echoed.",
    "",
    ...(errors.length > 0 ? ["Timeouts and failures:", "", ...errors, ""] : []),
    `![Message RTT CDF](${base.split("/").pop()}.svg)`,
    "",
    svg,
    "",
  ].join("\n");
  await Deno.mkdir(values.out, { recursive: true });
  await Deno.writeTextFile(`${base}.svg`, svg + "\n");
  await Deno.writeTextFile(`${base}.md`, markdown);
  console.log(`wrote ${base}.md and ${base}.svg`);
}

if (import.meta.main) {
  await main();
  // A timed-out round may leave sockets and timers behind.
  Deno.exit(0);
}
