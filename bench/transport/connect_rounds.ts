/**
 * Connection set-up in interleaved rounds, the way issue 16's goals ask for it: every round
 * measures QUIC alone (a client endpoint reconnecting, so it resumes its TLS session like a
 * transport reconnect), a transport reconnect (pqEncryption on), QUIC alone from a new client
 * endpoint (Retry, full TLS) and a transport's new peer (a fresh dialer node, so both sides
 * verify the other's identity binding), each as a block of connects, in an order that rotates
 * from round to round, so that a loaded machine weighs on all of them alike. Prints each round's
 * p50s and ratios and the medians over the rounds; the goals: a new peer at most 5x QUIC alone,
 * a reconnect at most 2x. A new peer is also given against QUIC alone from a new endpoint, which
 * does the same TLS work (a Retry and a full handshake; a new peer cannot resume).
 * `deno bench bench/transport/connect_bench.ts` reports averages of whole runs instead, which
 * swing with the load (QUIC alone 1.1-1.8 ms between runs on the development machine).
 *
 * Run: `deno run -A bench/transport/connect_rounds.ts [--rounds 3] [--connects 100]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { QuicEndpoint } from "../../src/quic/mod.ts";
import type { QuicTransport } from "../../mod.ts";
import { node } from "./_nodes.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    connects: { type: "string", default: "100" },
  },
});
const ROUNDS = Number(values.rounds);
/** Connects per round of each reconnecting case; the new-peer cases take a fifth as many. */
const CONNECTS = Number(values.connects);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  throw new RangeError(`Invalid '--rounds': must be a positive integer: got ${values.rounds}`);
}
if (!Number.isInteger(CONNECTS) || CONNECTS < 5) {
  throw new RangeError(
    `Invalid '--connects': must be an integer of at least 5: got ${values.connects}`,
  );
}
const NEW_PER_ROUND = Math.ceil(CONNECTS / 5);

const server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
const client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
const accepting = (async () => {
  for (;;) await server.accept(); // accepted connections end when the client closes them
})().catch(() => {});
const dialer = await node();
const listener = await node();
const target = await node();

/** Waits until `transport` has dropped every peer, so the next dial starts afresh. */
async function emptied(transport: QuicTransport): Promise<void> {
  for (let i = 0; transport.peers().length > 0; i++) {
    if (i > 5000) throw new Error("a peer was not dropped within 5 s of its disconnect");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** One connect of a case, timed; what follows it (closing) is not. */
const cases: Record<string, () => Promise<number>> = {
  "QUIC alone": async () => {
    const start = performance.now();
    const conn = await client.connect(server.localAddr);
    const ms = performance.now() - start;
    await conn.close();
    return ms;
  },
  "reconnect": async () => {
    const start = performance.now();
    const remote = await dialer.connectPeer(listener.localAddr);
    const ms = performance.now() - start;
    await dialer.disconnectPeer(remote);
    await emptied(listener);
    return ms;
  },
  "QUIC alone, new endpoint": async () => {
    const fresh = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
    try {
      const start = performance.now();
      const conn = await fresh.connect(server.localAddr);
      const ms = performance.now() - start;
      await conn.close();
      return ms;
    } finally {
      await fresh.close();
    }
  },
  "new peer": async () => {
    // Made before the timing: a node's key generation and binding signature are not set-up.
    const fresh = await node();
    try {
      const start = performance.now();
      const remote = await fresh.connectPeer(target.localAddr);
      const ms = performance.now() - start;
      await fresh.disconnectPeer(remote);
      return ms;
    } finally {
      await fresh.close();
      await emptied(target);
    }
  },
};
const count = (name: string) =>
  name.startsWith("QUIC alone,") || name === "new peer" ? NEW_PER_ROUND : CONNECTS;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const ratios: Record<string, number[]> = { "new peer": [], "reconnect": [] };
/** A new peer against QUIC alone from a new endpoint (both without a TLS session to resume). */
const likeForLike: number[] = [];
const p50s: Record<string, number[]> = {};
try {
  for (const [name, connect] of Object.entries(cases)) {
    for (let i = 0; i < 5; i++) await connect(); // warm-up
    p50s[name] = [];
  }
  for (let round = 1; round <= ROUNDS; round++) {
    // Each case a block of connects, the order rotating from round to round: a connect right
    // after another case's would pay for that case's closing work.
    const names = Object.keys(cases);
    const times: Record<string, number[]> = {};
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + round - 1) % names.length];
      times[name] = [];
      for (let i = 0; i < count(name); i++) times[name].push(await cases[name]());
    }
    const p50 = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
    for (const [name, value] of Object.entries(p50)) p50s[name].push(value);
    ratios["reconnect"].push(p50["reconnect"] / p50["QUIC alone"]);
    ratios["new peer"].push(p50["new peer"] / p50["QUIC alone"]);
    likeForLike.push(p50["new peer"] / p50["QUIC alone, new endpoint"]);
    console.log(
      `round ${round}: ` +
        Object.entries(p50).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(", ") +
        `; reconnect ${ratios["reconnect"].at(-1)!.toFixed(2)}x, ` +
        `new peer ${ratios["new peer"].at(-1)!.toFixed(2)}x QUIC alone ` +
        `(${likeForLike.at(-1)!.toFixed(2)}x QUIC alone from a new endpoint)`,
    );
  }
  console.log(
    `\nmedians of ${ROUNDS} rounds (p50 of each round; ${CONNECTS} reconnects and ` +
      `${NEW_PER_ROUND} new peers per round):`,
  );
  console.log("| case | p50 ms | ratio to QUIC alone | goal |\n|---|---|---|---|");
  const goals: Record<string, string> = { "new peer": "<= 5x", "reconnect": "<= 2x" };
  for (const name of Object.keys(cases)) {
    const ratio = ratios[name] === undefined ? "-" : `${median(ratios[name]).toFixed(2)}x`;
    const goal = goals[name] === undefined
      ? "-"
      : `${goals[name]}: ${
        median(ratios[name]) <= Number(goals[name].slice(3, -1)) ? "met" : "not met"
      }`;
    console.log(`| ${name} | ${median(p50s[name]).toFixed(2)} | ${ratio} | ${goal} |`);
  }
  console.log(
    `\nnew peer against QUIC alone from a new endpoint (the same TLS work): ` +
      `${median(likeForLike).toFixed(2)}x`,
  );
} finally {
  await Promise.all([dialer.close(), listener.close(), target.close()]);
  await client.close();
  await server.close();
  await accepting;
}
