// Runs the same three workloads on our QUIC endpoint and on Deno's native QUIC (quinn) in one
// process, three rounds each, and prints medians with their ratios. `--backend` picks the
// datagram socket under our endpoint (`deno`: Deno.listenDatagram only, `linux-batch`: libc's
// own socket with sendmmsg/recvmmsg through FFI, `linux-hybrid`: Deno's socket with FFI
// batches on its descriptor, `default`: what QuicEndpoint.bind picks); a comma list runs each,
// interleaved in the same rounds (their order rotating from round to round).
//   deno run -A bench/compare_native.ts [--backend default|deno|linux-batch|linux-hybrid|a,b]
//     [--requests 1000] [--mib 64] [--inflight 100] [--total 4000] [--rounds 3]
import { parseArgs } from "node:util";
import { type Backend, type BenchPair, cretoaiPair, nativePair } from "./quic/_pairs.ts";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "1000" },
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
const requests = Number(values.requests);
const bulkBytes = Number(values.mib) * 1024 * 1024;
const inflight = Number(values.inflight);
const total = Number(values.total);
const rounds = Number(values.rounds);
const payload = new Uint8Array(256).fill(1);

interface Figures {
  rttP50: number;
  rttP99: number;
  bulkMbps: number;
  requestsPerSecond: number;
}

async function measure(pair: BenchPair): Promise<Figures> {
  for (let i = 0; i < 50; i++) await pair.request(payload); // warm-up
  const rtts: number[] = [];
  for (let i = 0; i < requests; i++) {
    const start = performance.now();
    const size = await pair.request(payload);
    rtts.push(performance.now() - start);
    if (size !== payload.byteLength) throw new Error(`${pair.name}: echo of ${size} bytes`);
  }
  rtts.sort((a, b) => a - b);

  let start = performance.now();
  await pair.bulk(bulkBytes);
  const bulkMbps = bulkBytes * 8 / ((performance.now() - start) / 1000) / 1e6;

  let issued = 0;
  start = performance.now();
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (issued < total) {
      issued++;
      await pair.request(payload);
    }
  }));
  const requestsPerSecond = total / ((performance.now() - start) / 1000);
  return {
    rttP50: percentile(rtts, 0.5),
    rttP99: percentile(rtts, 0.99),
    bulkMbps,
    requestsPerSecond,
  };
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
for (let round = 0; round < rounds; round++) {
  // The order rotates each round, so that no implementation always runs first (JIT still
  // cold in round one) or right after another one's teardown (Deno native's connections and
  // threads wind down in the background after close).
  for (let i = 0; i < makers.length; i++) {
    const [key, make] = makers[(i + round) % makers.length];
    const pair = await make();
    try {
      results[key].push(await measure(pair));
    } finally {
      await pair.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // let the teardown settle
  }
}

const rows: [string, keyof Figures, string][] = [
  ["RTT p50 (ms)", "rttP50", "<= 0.8x"],
  ["RTT p99 (ms)", "rttP99", "<= 0.8x"],
  ["bulk one-way (Mbit/s)", "bulkMbps", ">= 0.25x"],
  [`${inflight} in flight (req/s)`, "requestsPerSecond", ">= 1.3x"],
];
console.log(
  `medians of ${rounds} rounds; ${requests} requests of 256 B, ${values.mib} MiB bulk, ${total} requests ${inflight} in flight`,
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
