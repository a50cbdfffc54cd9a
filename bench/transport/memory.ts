/**
 * Memory per idle connection end: a hub and `--peers` idle peers (default 1000), the peers in
 * `--children` other processes per wave (default 5) so that only the hub's growth is measured.
 * The peers connect in two waves of half each; the hub is measured before, after the first
 * wave and after the second, each time idle and after a full garbage collection.
 *
 * Two figures per connection end, beside the goal (issue 16: 128 KiB):
 * - "all peers": the growth from no peers to all of them, divided by their number (what the
 *   benchmark reported before; it includes growth that does not scale with peers, such as
 *   V8's young generation left enlarged by the connection storm);
 * - "second half": the growth of the second wave divided by its peers, the marginal cost of
 *   one more idle peer once the node is warm.
 *
 * Each in two states: after `gc()` (V8 keeps the young generation at its peak size, up to
 * `--max-semi-space-size`), and after a memory-reducing collection (`flavor: "last-resort"`,
 * which returns the young generation's unused pages). The native heap (quiche, BoringSSL,
 * Deno's ops, ArrayBuffers) is split into bytes in use and bytes free in malloc's arenas
 * (glibc's `mallinfo2`, Linux only).
 *
 * Keep-alives are off while the peers connect (a keep-alive interval ending during the waves
 * would catch some connections after a ping and others before); one round of pings to every
 * peer, what each interval of a live node does, is measured last, on its own.
 *
 * Run: `deno run -A --v8-flags=--expose-gc bench/transport/memory.ts [--peers 1000]
 * [--children 5]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { quicheAddonPath } from "../../src/quic/_quiche.ts";
import { openMallocInfo } from "./_malloc_info.ts";
import { node } from "./_nodes.ts";

const { values } = parseArgs({
  options: {
    peers: { type: "string", default: "1000" },
    children: { type: "string", default: "5" },
  },
});
const peers = Number(values.peers);
const children = Number(values.children);
if (!Number.isInteger(peers) || peers < 2 || !Number.isInteger(children) || children < 1) {
  throw new RangeError(
    `'--peers' must be an integer of at least 2 and '--children' a positive integer: got ${peers}, ${children}`,
  );
}
const GOAL_KIB = 128;
const IDLE_MS = 2000;
const CONNECT_TIMEOUT_MS = 120_000;

type Gc = (options?: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;
const gc = (globalThis as { gc?: Gc }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
const mallocInfo = openMallocInfo();

interface Sample {
  peers: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  nativeInUse: number;
  nativeFree: number;
  /** RSS after a memory-reducing collection. */
  rssReduced: number;
  heapTotalReduced: number;
}

function measure(peerCount: number): Sample {
  for (let i = 0; i < 3; i++) gc!();
  const usage = Deno.memoryUsage();
  const native = mallocInfo?.() ?? { inUseBytes: NaN, freeBytes: NaN };
  gc!({ type: "major", execution: "sync", flavor: "last-resort" });
  const reduced = Deno.memoryUsage();
  return {
    peers: peerCount,
    rss: usage.rss,
    heapUsed: usage.heapUsed,
    heapTotal: usage.heapTotal,
    external: usage.external,
    nativeInUse: native.inUseBytes,
    nativeFree: native.freeBytes,
    rssReduced: reduced.rss,
    heapTotalReduced: reduced.heapTotal,
  };
}

/** Starts `count` leaves in `children` processes; resolves when all of them connected. */
async function wave(hubPort: number, count: number): Promise<Deno.ChildProcess[]> {
  const share = Math.ceil(count / children);
  const procs: Deno.ChildProcess[] = [];
  for (let i = 0; i < children && i * share < count; i++) {
    procs.push(
      new Deno.Command(Deno.execPath(), {
        // FFI for the quiche addon only: the leaves fall back to DenoUdpSocket, lighter on
        // threads.
        args: [
          "run",
          "--allow-net=127.0.0.1",
          "--allow-read",
          "--allow-env",
          `--allow-ffi=${quicheAddonPath()}`,
          new URL("./_memory_child.ts", import.meta.url).pathname,
          String(hubPort),
          String(Math.min(share, count - i * share)),
        ],
        stdin: "piped",
        stdout: "piped",
      }).spawn(),
    );
  }
  await Promise.all(procs.map(async (p) => {
    const reader = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("READY")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`a child exited before READY: ${text}`);
      text += value;
    }
    reader.releaseLock();
  }));
  return procs;
}

// Idle peers must stay connected however long the waves take on a loaded machine.
// Keep-alives off while the peers connect: an interval that happens to end during the waves
// would measure some connections after a ping and others before. One round of pings to every
// peer (what each keep-alive interval does) is measured at the end, on its own.
const hub = await node({ idleTimeoutMs: 0, keepAliveIntervalSecs: 0 });
await new Promise((r) => setTimeout(r, 500));
const samples = [measure(0)];
const procs: Deno.ChildProcess[] = [];
const started = performance.now();
try {
  for (const target of [Math.floor(peers / 2), peers]) {
    procs.push(...await wave(hub.localAddr.port, target - samples.at(-1)!.peers));
    const deadline = Date.now() + CONNECT_TIMEOUT_MS;
    while (hub.peers().length < target && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, IDLE_MS));
    if (hub.peers().length !== target) {
      throw new Error(
        `The hub has ${hub.peers().length} peers, not ${target}: a figure per peer would be wrong`,
      );
    }
    samples.push(measure(target));
  }
  const connectedMs = performance.now() - started;
  const [none, half, all] = samples;
  console.log(
    `${all.peers} idle peers connected to one hub in ${(connectedMs / 1000).toFixed(1)} s ` +
      `(${half.peers} in the first wave)`,
  );
  const perPeer = (key: keyof Sample, from: Sample, to: Sample) =>
    ((to[key] - from[key]) / (to.peers - from.peers) / 1024).toFixed(1);
  const row = (label: string, key: keyof Sample, goal = "") =>
    console.log(`| ${label} | ${perPeer(key, none, all)} | ${perPeer(key, half, all)} | ${goal}`);
  const goal = (key: keyof Sample, to = all) => {
    const kib = Number(perPeer(key, none, to));
    return `<= ${GOAL_KIB} KiB: ${kib <= GOAL_KIB ? "met" : "not met"} |`;
  };
  console.log("| hub memory per connection end, KiB | all peers | second half | goal |");
  console.log("|---|---|---|---|");
  row("RSS after gc()", "rss", goal("rss"));
  row("RSS after a memory-reducing GC", "rssReduced", goal("rssReduced"));
  row("V8 heap used", "heapUsed", "|");
  row("V8 heap committed after gc()", "heapTotal", "|");
  row("V8 heap committed after a memory-reducing GC", "heapTotalReduced", "|");
  row("external (ArrayBuffers; part of the native heap)", "external", "|");
  row("native heap in use (malloc)", "nativeInUse", "|");
  row("native heap free in malloc's arenas", "nativeFree", "|");

  // One keep-alive round: a ping to every peer at once, as the transport's timer sends them.
  await Promise.all(hub.peers().map((p) => hub.ping(p.peerId)));
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const pinged = measure(all.peers);
  const roundPerPeer = (key: keyof Sample) =>
    ((pinged[key] - all[key]) / all.peers / 1024).toFixed(1);
  console.log(
    `\nafter one keep-alive round (a ping to every peer), per connection end, KiB: RSS after ` +
      `gc() ${perPeer("rss", none, pinged)} (${goal("rss", pinged).slice(0, -2)}), after a ` +
      `memory-reducing GC ${
        perPeer("rssReduced", none, pinged)
      }; what the round left per peer: V8 ` +
      `heap used ${roundPerPeer("heapUsed")}, native heap in use ${roundPerPeer("nativeInUse")}`,
  );
} finally {
  for (const p of procs) await p.stdin.close().catch(() => {});
  await Promise.all(procs.map((p) => p.status));
  await hub.close();
}
