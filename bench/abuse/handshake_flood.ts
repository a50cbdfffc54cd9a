/**
 * Issue 17 item 9 (a): a flood of handshake attempts from many loopback addresses (each a QUIC
 * connection that sends a valid ClientHello, so the node does its half of the ML-KEM exchange
 * and answers with a ServerHello, then hangs up) against a node with connected peers. Goals:
 * the peers' message latency p99 stays within 2x of quiet, and a new legitimate peer connects
 * within 2 s during the flood. Since handshake v2 the node signs nothing per ClientHello; the
 * report gives the node's CPU time per attempt.
 *
 * Loopback sources are exempt from the handshake rates unless `limitLoopback` is set, so the
 * victim sets it (`--no-limit-loopback` measures without): the flood comes from 127.0.0.2-51
 * (one /24, as a flood from one network would), the newcomer from 127.0.1.1.
 *
 * Run: `deno run -A bench/abuse/handshake_flood.ts [--attempts 500] [--sources 50]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { PeerId, type QuicTransport } from "../../mod.ts";
import { node, sleep, summary } from "../pool/_util.ts";
import { abuseChild, cpuMsOf, report, victimAddress } from "./_util.ts";

const { values } = parseArgs({
  options: {
    attempts: { type: "string", default: "500" },
    sources: { type: "string", default: "50" },
    concurrency: { type: "string", default: "32" },
    peers: { type: "string", default: "3" },
    "no-limit-loopback": { type: "boolean", default: false },
  },
});
const attempts = Number(values.attempts);

const limitLoopback = !values["no-limit-loopback"];
await using victim = await abuseChild("victim", { limitLoopback });
const { port, peerId } = victimAddress(victim);
const target = PeerId.parse(peerId);
const peers: QuicTransport[] = [];
for (let i = 0; i < Number(values.peers); i++) {
  const p = await node();
  await p.connectPeer(`127.0.0.1:${port}`);
  peers.push(p);
}
const payload = new Uint8Array(256);

/** Acknowledged-send latencies, round robin over the peers, 5 ms apart, until `until`. */
async function latencies(min: number, until?: Promise<unknown>): Promise<number[]> {
  let done = until === undefined;
  until?.then(() => done = true);
  const out: number[] = [];
  for (let i = 0; i < min || !done; i++) {
    const t0 = performance.now();
    await peers[i % peers.length].send(target, { type: "consensus", data: payload });
    out.push(performance.now() - t0);
    await sleep(5);
  }
  return out;
}

// Warm up first (JIT, windows, caches), so that the quiet figure is not a cold start's.
await latencies(200);
const quietCpuBeforeMs = await cpuMsOf(victim.pid);
const quietStart = performance.now();
const quiet = summary(await latencies(300));
const quietCpuMsPerSecond = ((await cpuMsOf(victim.pid)) - quietCpuBeforeMs) /
  ((performance.now() - quietStart) / 1000);
const cpuBeforeMs = await cpuMsOf(victim.pid);
const floodStart = performance.now();
const flood = await abuseChild("flood", {
  port,
  attempts,
  concurrency: Number(values.concurrency),
  sources: Number(values.sources),
});
const floodDone = flood.output.then((out) => JSON.parse(out));
const during = latencies(50, floodDone);
// A newcomer dials once the flood is under way.
await sleep(300);
const newcomer = await node({ listenAddr: "127.0.1.1" });
const t0 = performance.now();
let connectMs: number | string;
try {
  await newcomer.connectPeer(`127.0.0.1:${port}`, { signal: AbortSignal.timeout(10_000) });
  connectMs = Math.round(performance.now() - t0);
} catch (e) {
  connectMs = `failed after ${Math.round(performance.now() - t0)} ms: ${(e as Error).message}`;
}
const loaded = summary(await during);
const tally = await floodDone;
// Also counts the peers' messages and the newcomer during the flood: an upper bound.
const floodCpuMs = (await cpuMsOf(victim.pid)) - cpuBeforeMs;
const floodSeconds = (performance.now() - floodStart) / 1000;
await flood.close();
await victim.close();
const victimStats = JSON.parse((await victim.output).trim().split("\n").at(-1) ?? "null");
const ratio = Math.round((loaded.p99 / quiet.p99) * 100) / 100;
report("abuse/handshake_flood", [
  {
    what: "connected peers' message p99 during the flood",
    figure: `${loaded.p99} ms, ${ratio}x quiet (${quiet.p99} ms)`,
    goal: "<= 2x quiet",
    met: ratio <= 2,
  },
  {
    what: "a new legitimate peer connects during the flood",
    figure: typeof connectMs === "number" ? `${connectMs} ms` : connectMs,
    goal: "<= 2000 ms",
    met: typeof connectMs === "number" && connectMs <= 2000,
  },
], {
  limitLoopback,
  attack: tally,
  victimCpuMsPerAttempt: Math.round((floodCpuMs / attempts) * 100) / 100,
  // The victim's CPU use, ms per second, with the peers' messages only and during the flood.
  victimCpuMsPerSecond: {
    quiet: Math.round(quietCpuMsPerSecond),
    flood: Math.round(floodCpuMs / floodSeconds),
  },
  victimStats,
  quietMs: quiet,
  floodMs: loaded,
});
await newcomer.close();
for (const p of peers) await p.close();
