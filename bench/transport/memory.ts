/**
 * Memory per connection end: a hub and `--peers` idle peers (default 1000), the peers in
 * `--children` other processes (default 5) so that only the hub's growth is measured. Prints
 * the hub's RSS, V8 heap and external memory before and after (each after a full GC), divided by
 * the number of peers, beside the goal (128 KiB per connection end).
 *
 * Run: `deno run -A --v8-flags=--expose-gc bench/transport/memory.ts [--peers 1000]
 * [--children 5]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { quicheAddonPath } from "../../src/quic/_quiche.ts";
import { node } from "./_nodes.ts";

const { values } = parseArgs({
  options: {
    peers: { type: "string", default: "1000" },
    children: { type: "string", default: "5" },
  },
});
const peers = Number(values.peers);
const children = Number(values.children);
if (!Number.isInteger(peers) || peers < 1 || !Number.isInteger(children) || children < 1) {
  throw new RangeError(
    `'--peers' and '--children' must be positive integers: got ${peers}, ${children}`,
  );
}
const GOAL_KIB = 128;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

function measure() {
  for (let i = 0; i < 3; i++) gc!();
  return Deno.memoryUsage();
}

const hub = await node();
await new Promise((r) => setTimeout(r, 500));
const before = measure();
const started = performance.now();
const share = Math.ceil(peers / children);
const procs = Array.from({ length: children }, (_, i) => {
  const count = Math.min(share, peers - i * share);
  return new Deno.Command(Deno.execPath(), {
    // FFI for the quiche addon only: the leaves fall back to DenoUdpSocket, lighter on threads.
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-env",
      `--allow-ffi=${quicheAddonPath()}`,
      new URL("./_memory_child.ts", import.meta.url).pathname,
      String(hub.localAddr.port),
      String(count),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
});
try {
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
  const deadline = Date.now() + 30_000;
  while (hub.peers().length < peers && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const connectedMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, 2000)); // idle
  const after = measure();
  const n = hub.peers().length;
  const kib = (key: keyof Deno.MemoryUsage) => (after[key] - before[key]) / n / 1024;
  console.log(`${n} idle peers connected to one hub in ${(connectedMs / 1000).toFixed(1)} s`);
  console.log("| hub memory per connection end | KiB | goal |");
  console.log("|---|---|---|");
  console.log(
    `| RSS | ${kib("rss").toFixed(1)} | <= ${GOAL_KIB} KiB: ${
      kib("rss") <= GOAL_KIB ? "met" : "not met"
    } |`,
  );
  console.log(`| V8 heap used | ${kib("heapUsed").toFixed(1)} | |`);
  console.log(`| external (ArrayBuffers, addon) | ${kib("external").toFixed(1)} | |`);
} finally {
  for (const p of procs) {
    await p.stdin.close().catch(() => {});
  }
  await Promise.all(procs.map((p) => p.status));
  await hub.close();
}
