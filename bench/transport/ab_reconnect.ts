/**
 * Reconnects of two checkouts of this module in one process, in turn: each tree's dialer and
 * listener reconnect once, then the other tree's, `--reconnects` times after a warm-up, and the
 * p50s and their ratio are printed. Both trees run under the same load and in the same process
 * state, so a change of 3-5% shows, which `connect_rounds.ts` (QUIC alone moving 0.6-1.3 ms
 * between runs) cannot; run it twice with the trees swapped.
 *
 * Run: `deno run -A bench/transport/ab_reconnect.ts /path/to/tree-a /path/to/tree-b
 * [--reconnects 300]` (for example a `git worktree` of the commit before a change).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { QuicTransport } from "../../mod.ts";

const { values, positionals } = parseArgs({
  options: { reconnects: { type: "string", default: "300" } },
  allowPositionals: true,
});
const reconnects = Number(values.reconnects);
if (!Number.isInteger(reconnects) || reconnects < 10) {
  throw new RangeError(
    `Invalid '--reconnects': must be an integer of at least 10: got ${values.reconnects}`,
  );
}
if (positionals.length !== 2) {
  throw new RangeError(`Expected two checkouts to compare: got ${positionals.length} paths`);
}

interface Tree {
  dialer: QuicTransport;
  listener: QuicTransport;
}

async function tree(path: string): Promise<Tree> {
  const { node } = await import(`${path}/bench/transport/_nodes.ts`);
  return { dialer: await node(), listener: await node() };
}

/** One reconnect, timed; the disconnect and the listener's emptying are not. */
async function reconnect({ dialer, listener }: Tree): Promise<number> {
  const start = performance.now();
  const peer = await dialer.connectPeer(listener.localAddr);
  const ms = performance.now() - start;
  await dialer.disconnectPeer(peer);
  for (let i = 0; listener.peers().length > 0; i++) {
    if (i > 5000) throw new Error("the listener kept the peer 5 s after its disconnect");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const [a, b] = [await tree(positionals[0]), await tree(positionals[1])];
try {
  for (let i = 0; i < 20; i++) {
    await reconnect(a);
    await reconnect(b);
  }
  const timesA: number[] = [], timesB: number[] = [];
  for (let i = 0; i < reconnects; i++) {
    timesA.push(await reconnect(a));
    timesB.push(await reconnect(b));
  }
  const [p50A, p50B] = [median(timesA), median(timesB)];
  console.log(
    `A p50 ${p50A.toFixed(3)} ms, B p50 ${p50B.toFixed(3)} ms, B/A ${(p50B / p50A).toFixed(3)} ` +
      `(${reconnects} reconnects each, in turn)`,
  );
} finally {
  for (const t of [a, b]) {
    await t.dialer.close();
    await t.listener.close();
  }
}
