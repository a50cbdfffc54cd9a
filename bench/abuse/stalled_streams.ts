/**
 * Issue 17 item 9 (b): an authenticated peer opens every stream it may (three message lanes
 * and request streams up to `maxStreamsPerPeer`) and on each writes all but the last byte of
 * a maximum-size frame, then stalls. Goal: the victim's memory (RSS of its process) rises by
 * at most its configured per-peer budget (`maxBufferedBytesPerPeer`, which covers quiche's
 * receive window, the state of every request stream the peer may open, and its frames).
 *
 * Run: `deno run -A bench/abuse/stalled_streams.ts [--message-bytes 1048576] [--streams 255]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Identity } from "../../mod.ts";
import { openRawLane, rawPeer } from "../../tests/transport/_raw_peer.ts";
import { sleep } from "../pool/_util.ts";
import { abuseChild, report, rssOf, victimAddress } from "./_util.ts";

const { values } = parseArgs({
  options: {
    "message-bytes": { type: "string", default: String(1024 * 1024) },
    budget: { type: "string", default: String(16 * 1024 * 1024) },
    streams: { type: "string", default: "255" },
    "deadline-ms": { type: "string", default: "40000" },
  },
});
const messageBytes = Number(values["message-bytes"]);
const budget = Number(values.budget);
const streams = Number(values.streams);
const MiB = 1024 * 1024;

await using victim = await abuseChild("victim", {
  maxMessageBytes: messageBytes,
  maxBufferedBytesPerPeer: budget,
});
const { port } = victimAddress(victim);
await using peer = await rawPeer(
  { localAddr: { hostname: "127.0.0.1", port } },
  Identity.generate(),
  true,
);
await sleep(500); // let the victim settle after the handshake before the baseline
const before = await rssOf(victim.pid);

/** A frame header announcing `length` bytes, then `length - 1` of them: never completed. */
function stalledFrame(length: number): Uint8Array {
  const frame = new Uint8Array(4 + length - 1);
  new DataView(frame.buffer).setUint32(0, length);
  return frame;
}

let peak = before;
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    peak = Math.max(peak, await rssOf(victim.pid).catch(() => 0));
    await sleep(200);
  }
})();

const t0 = performance.now();
let written = 0;
let opened = 0;
const deadline = new Promise<"deadline">((r) =>
  setTimeout(() => r("deadline"), Number(values["deadline-ms"]))
);
const attack = async (open: () => Promise<{ write(d: Uint8Array): Promise<void> }>, n: number) => {
  const stream = await open();
  opened++;
  // Lanes take a message body (+2 header bytes), request streams up to maxMessageBytes + 257.
  const frame = stalledFrame(n);
  await stream.write(frame);
  written += frame.byteLength;
};
const moves = [
  ...Array.from(
    { length: 3 },
    (_, lane) => attack(async () => (await openRawLane(peer, lane)).stream, messageBytes + 2),
  ),
  ...Array.from(
    { length: streams },
    () => attack(() => peer.conn.openBidi(), messageBytes + 257),
  ),
].map((p) => p.catch((e: Error) => e.message));
const outcome = await Promise.race([Promise.all(moves).then(() => "written"), deadline]);
const seconds = Math.round(performance.now() - t0) / 1000;
await sleep(1000); // the victim takes what is in flight
sampling = false;
await sampler;
const after = await rssOf(victim.pid);
const growth = peak - before;
report("abuse/stalled_streams", [
  {
    what: "victim RSS growth with every stream stalled on a maximum-size frame",
    figure: `+${(growth / MiB).toFixed(1)} MiB peak (+${((after - before) / MiB).toFixed(1)} MiB ` +
      `after); ${(written / MiB).toFixed(1)} MiB written on ${opened} streams in ${seconds} s`,
    goal: `<= the per-peer budget, ${(budget / MiB).toFixed(0)} MiB`,
    met: growth <= budget,
  },
], {
  outcome,
  connectionClosedByVictim: peer.conn.closedError?.message ?? null,
  messageBytes,
  budgetBytes: budget,
  rssBeforeBytes: before,
  rssPeakBytes: peak,
  writtenBytes: written,
});
