/**
 * Connection set-up in interleaved rounds (see `bench/transport/_connect_rounds.ts`): prints each
 * round's p50s and ratios and the medians over the rounds, with issue 16's goals beside (a new
 * peer at most 5x QUIC alone, a reconnect at most 2x). `bench/compare.ts` runs the same rounds.
 * `deno bench bench/transport/connect_bench.ts` reports averages of whole runs instead, which
 * swing with the load (QUIC alone 1.1-1.8 ms between runs on the development machine).
 *
 * Run: `deno run -A bench/transport/connect_rounds.ts [--rounds 3] [--connects 100]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CONNECT_CASES, CONNECT_GOALS, connectRounds, roundsArgs } from "./_connect_rounds.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    connects: { type: "string", default: "100" },
  },
});
const { rounds, connects } = roundsArgs(values);

const figures = await connectRounds({ rounds, connects, onRound: (line) => console.log(line) });
console.log(
  `\nmedians of ${rounds} rounds (p50 of each round; ${connects} reconnects and ` +
    `${Math.ceil(connects / 5)} new peers per round):`,
);
console.log("| case | p50 ms | ratio to QUIC alone | goal |\n|---|---|---|---|");
const verdict = (ratio: number, goal: number) =>
  `<= ${goal}x: ${ratio <= goal ? "met" : "not met"}`;
const ratios: Record<string, [number, number]> = {
  "reconnect": [figures.reconnectRatio, CONNECT_GOALS.reconnect],
  "new peer": [figures.newPeerRatio, CONNECT_GOALS.newPeer],
};
for (const name of CONNECT_CASES) {
  const ratio = ratios[name];
  console.log(
    `| ${name} | ${figures.p50Ms[name].toFixed(2)} | ` +
      (ratio === undefined ? "- | - |" : `${ratio[0].toFixed(2)}x | ${verdict(...ratio)} |`),
  );
}
console.log(
  `\nnew peer against QUIC alone from a new endpoint (the same TLS work): ` +
    `${figures.newPeerLikeForLike.toFixed(2)}x`,
);
console.log(
  `one by one, each after or before QUIC alone (see bench/transport/_connect_rounds.ts): ` +
    `reconnect ${figures.reconnectRatioOneByOne.toFixed(2)}x ` +
    `(${verdict(figures.reconnectRatioOneByOne, CONNECT_GOALS.reconnect)}), new peer ` +
    `${figures.newPeerRatioOneByOne.toFixed(2)}x ` +
    `(${verdict(figures.newPeerRatioOneByOne, CONNECT_GOALS.newPeer)})`,
);
