/**
 * Issue 17 item 9 (c): 64 silent connections (QUIC and TLS complete, the identity handshake
 * never started; each closed one dialed again at once), eight from each of eight loopback
 * addresses, against a node with the default limits. Goal: a legitimate peer still connects,
 * at its first try and within 2 s.
 *
 * Run: `deno run -A bench/abuse/silent_connections.ts [--count 64] [--sources 8]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { node } from "../pool/_util.ts";
import { abuseChild, report, victimAddress } from "./_util.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "64" },
    sources: { type: "string", default: "8" },
    "give-up-ms": { type: "string", default: "20000" },
    "no-limit-loopback": { type: "boolean", default: false },
  },
});
const giveUpMs = Number(values["give-up-ms"]);

const limitLoopback = !values["no-limit-loopback"];
await using victim = await abuseChild("victim", { limitLoopback });
const { port } = victimAddress(victim);
await using silent = await abuseChild("silent", {
  port,
  count: Number(values.count),
  sources: Number(values.sources),
});
const { up } = JSON.parse(silent.ready);

// The legitimate peer tries until it gets in (or `give-up-ms`); each failure is recorded.
const legit = await node({ listenAddr: "127.0.1.1" });
const failures: string[] = [];
const t0 = performance.now();
let connectedMs: number | undefined;
while (performance.now() - t0 < giveUpMs) {
  try {
    await legit.connectPeer(`127.0.0.1:${port}`, { signal: AbortSignal.timeout(5000) });
    connectedMs = Math.round(performance.now() - t0);
    break;
  } catch (e) {
    failures.push((e as Error).message.slice(0, 120));
    await new Promise((r) => setTimeout(r, 100));
  }
}
await legit.close();
await silent.close();
const tally = JSON.parse((await silent.output).trim() || "{}");
report("abuse/silent_connections", [
  {
    what: `a legitimate peer connects while ${up} silent connections are held`,
    figure: connectedMs === undefined
      ? `not within ${giveUpMs} ms (${failures.length} tries)`
      : `${connectedMs} ms, at try ${failures.length + 1}`,
    goal: "first try, <= 2000 ms",
    met: connectedMs !== undefined && failures.length === 0 && connectedMs <= 2000,
  },
], { limitLoopback, silentUp: up, firstFailure: failures[0] ?? null, silent: tally });
