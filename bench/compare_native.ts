// Runs the same three workloads on our QUIC endpoint and on Deno's native QUIC (quinn) in one
// process and prints the medians of the rounds with their ratios. In each round every
// implementation is connected at once and the round-trip samples are taken interleaved, in blocks
// of `--block` requests whose order rotates, so that a change in machine load (this runs on
// shared cores) hits every implementation alike instead of whichever ran at the time; bulk and
// requests in flight run one implementation after the other, in an order that rotates each round.
// `--backend` picks the datagram socket under our endpoint (`deno`: Deno.listenDatagram only,
// `linux-batch`: libc's own socket with sendmmsg/recvmmsg through FFI, `linux-hybrid`: Deno's
// socket with FFI batches on its descriptor, `default`: what QuicEndpoint.bind picks); a comma
// list runs each in the same rounds.
//   deno run -A bench/compare_native.ts [--backend default|deno|linux-batch|linux-hybrid|a,b]
//     [--requests 2000] [--block 100] [--warmup 1000] [--mib 64] [--inflight 100]
//     [--total 4000] [--rounds 3]
import { parseArgs } from "node:util";
import { type Backend, type BenchPair, cretoaiPair, nativePair } from "./quic/_pairs.ts";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "2000" },
    block: { type: "string", default: "100" },
    warmup: { type: "string", default: "1000" },
    mib: { type: "string", default: "64" },
    inflight: { type: "string", default: "100" },
    total: { type: "string", default: "4000" },
    rounds: { type: "string", default: "3" },
    backend: { type: "string", default: "default" },
  },
});
const backends = values.backend.split(",") as Backend[];
for (const backend of backends) {
  if (!["deno", "linux-batch", "linux-hybrid", "default"].includes(backend)) {
    throw new Error(
      `--backend: expected deno, linux-batch, linux-hybrid or default (a comma list runs several), got ${backend}`,
    );
  }
}
const requests = integer("requests", 1);
const block = integer("block", 1);
const warmup = integer("warmup", 0);
const bulkBytes = integer("mib", 1) * 1024 * 1024;
const inflight = integer("inflight", 1);
const total = integer("total", 1);
const rounds = integer("rounds", 1);
const payload = new Uint8Array(256).fill(1);

function integer(name: keyof typeof values, min: number): number {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`--${name}: expected an integer of at least ${min}, got ${values[name]}`);
  }
  return value;
}

interface Figures {
  rttP50: number;
  rttP99: number;
  bulkMbps: number;
  requestsPerSecond: number;
}

/** `items` starting at `offset`, wrapping around: who goes first changes from turn to turn. */
function rotated<T>(items: T[], offset: number): T[] {
  return items.map((_, i) => items[(i + offset) % items.length]);
}

async function requestBlock(pair: BenchPair, count: number, rtts?: number[]): Promise<void> {
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const size = await pair.request(payload);
    rtts?.push(performance.now() - start);
    if (size !== payload.byteLength) throw new Error(`${pair.name}: echo of ${size} bytes`);
  }
}

async function bulkMbps(pair: BenchPair): Promise<number> {
  const start = performance.now();
  await pair.bulk(bulkBytes);
  return bulkBytes * 8 / ((performance.now() - start) / 1000) / 1e6;
}

async function requestsPerSecond(pair: BenchPair): Promise<number> {
  let issued = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (issued < total) {
      issued++;
      await pair.request(payload);
    }
  }));
  return total / ((performance.now() - start) / 1000);
}

/** One round: every implementation connected, round trips interleaved, the rest in turn. */
async function round(index: number): Promise<Record<string, Figures>> {
  const pairs: [string, BenchPair][] = [];
  try {
    for (const [key, make] of rotated(makers, index)) pairs.push([key, await make()]);
    for (let done = 0; done < warmup; done += block) {
      for (const [, pair] of pairs) await requestBlock(pair, Math.min(block, warmup - done));
    }
    const rtts = new Map(pairs.map(([key]) => [key, [] as number[]]));
    for (let b = 0; b * block < requests; b++) {
      for (const [key, pair] of rotated(pairs, b)) {
        await requestBlock(pair, Math.min(block, requests - b * block), rtts.get(key));
      }
    }
    const bulk = new Map<string, number>();
    for (const [key, pair] of pairs) {
      bulk.set(key, await bulkMbps(pair));
      await settle();
    }
    const figures: Record<string, Figures> = {};
    for (const [key, pair] of rotated(pairs, 1)) {
      const perSecond = await requestsPerSecond(pair);
      const sorted = rtts.get(key)!.sort((a, b) => a - b);
      figures[key] = {
        rttP50: percentile(sorted, 0.5),
        rttP99: percentile(sorted, 0.99),
        bulkMbps: bulk.get(key)!,
        requestsPerSecond: perSecond,
      };
      await settle();
    }
    return figures;
  } finally {
    for (const [, pair] of pairs) await pair.close();
    // Deno native's connections and threads wind down in the background after close.
    await settle();
  }
}

function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 200));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const makers: [string, () => Promise<BenchPair>][] = [
  ...backends.map((
    b,
  ): [string, () => Promise<BenchPair>] => [`cretoai ${b}`, () => cretoaiPair(b)]),
  ["native", nativePair],
];
const results: Record<string, Figures[]> = Object.fromEntries(makers.map(([key]) => [key, []]));
for (let r = 0; r < rounds; r++) {
  const figures = await round(r);
  for (const [key] of makers) results[key].push(figures[key]);
}

const rows: [string, keyof Figures, string][] = [
  ["RTT p50 (ms)", "rttP50", "<= 0.8x"],
  ["RTT p99 (ms)", "rttP99", "<= 0.8x"],
  ["bulk one-way (Mbit/s)", "bulkMbps", ">= 0.25x"],
  [`${inflight} in flight (req/s)`, "requestsPerSecond", ">= 1.3x"],
];
console.log(
  `medians of ${rounds} rounds; ${requests} requests of 256 B each (interleaved in blocks of ${block}), ${values.mib} MiB bulk, ${total} requests ${inflight} in flight`,
);
const ours = makers.slice(0, -1).map(([key]) => key);
console.log(
  `| workload | ${ours.join(" | ")} | Deno native | ${
    ours.map((key) => `ratio ${key.slice(8)}`).join(" | ")
  } | goal |`,
);
console.log(`|---|${"---|".repeat(ours.length * 2 + 2)}`);
for (const [label, key, goal] of rows) {
  const theirs = median(results.native.map((r) => r[key]));
  const mine = ours.map((name) => median(results[name].map((r) => r[key])));
  console.log(
    `| ${label} | ${mine.map((v) => v.toFixed(3)).join(" | ")} | ${theirs.toFixed(3)} | ${
      mine.map((v) => `${(v / theirs).toFixed(2)}x`).join(" | ")
    } | ${goal} |`,
  );
}
