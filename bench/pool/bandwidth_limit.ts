/**
 * A 20 MB transfer under a 20 Mbit/s limit should take 8 s (within 10%): once with the
 * node-wide limit (`maxBandwidthBps`), once with the per-peer one (`maxPeerBandwidthBps`).
 * The receiver runs in its own process. Times run from the first send to the last
 * acknowledgement.
 *
 * Run: `deno run -A bench/pool/bandwidth_limit.ts [--mbit 20] [--mb 20]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { child, node } from "./_util.ts";

const { values } = parseArgs({
  options: { mbit: { type: "string", default: "20" }, mb: { type: "string", default: "20" } },
});
const bps = Number(values.mbit) * 1e6;
const total = Number(values.mb) * 1e6;
const chunk = 250_000;
const expectedS = (total * 8) / bps;

for (const mode of ["maxBandwidthBps", "maxPeerBandwidthBps"] as const) {
  const config = mode === "maxBandwidthBps"
    ? { maxBandwidthBps: bps }
    : { maxBandwidthBps: Infinity, maxPeerBandwidthBps: bps };
  const a = await node(config);
  const b = await child({ maxBandwidthBps: Infinity });
  const remote = await a.connectPeer(`127.0.0.1:${b.port}`);
  const data = new Uint8Array(chunk).fill(7);
  const start = performance.now();
  const sends: Promise<void>[] = [];
  for (let sent = 0; sent < total; sent += chunk) {
    const size = Math.min(chunk, total - sent);
    sends.push(a.send(remote, { type: "vertex", data: data.subarray(0, size) }));
  }
  let midRate = 0;
  const probe = setTimeout(
    () => midRate = a.getStats(remote).sendBytesPerSecond,
    (expectedS / 2) * 1000,
  );
  await Promise.all(sends);
  clearTimeout(probe);
  const seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify({
    bench: "bandwidth_limit",
    limit: mode,
    limitMbit: bps / 1e6,
    bytes: total,
    seconds: Math.round(seconds * 1000) / 1000,
    expectedSeconds: expectedS,
    errorPct: Math.round(((seconds - expectedS) / expectedS) * 10000) / 100,
    achievedMbit: Math.round((total * 8) / seconds / 1e4) / 100,
    // The per-peer sliding-window meter half-way through (bytes/s on the wire, with framing).
    meterMidwayMbit: Math.round((midRate * 8) / 1e4) / 100,
  }));
  await a.close();
  await b.close();
}
