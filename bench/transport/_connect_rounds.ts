/**
 * Connection set-up in interleaved rounds, the way issue 16's goals ask for it; used by
 * `bench/transport/connect_rounds.ts` and `bench/compare.ts`. Every round measures QUIC alone (a
 * client endpoint reconnecting, so it resumes its TLS session like a transport reconnect), a
 * transport reconnect (pqEncryption on), QUIC alone from a new client endpoint (Retry, full TLS)
 * and a transport's new peer (a fresh dialer node, so both sides verify the other's identity
 * binding). The cases take turns in small blocks (ten turns each per round, in an order that
 * rotates from round to round), so that a loaded machine weighs on all of them alike; the first
 * connect of a block is not counted. (With one block per case and round, the round in which QUIC
 * alone followed the new peers gave reconnect ratios of 2.8x where the others gave 1.8x-1.9x, and
 * the rounds of one run ranged 1.1x-2.8x.) The goals: a new peer at most 5x QUIC alone, a
 * reconnect at most 2x. A new peer is also given against QUIC alone from a new endpoint, which
 * does the same TLS work (a Retry and a full handshake; a new peer cannot resume).
 *
 * Each round then measures the transport's cases once more one by one: a reconnect (or a new
 * peer), then QUIC alone, then QUIC alone first, and so on. QUIC alone is slower there (0.8-1.0
 * ms against 0.7 in a block of its own, in the sitting of session 12): after the transport's
 * work, its code and data are no longer in the CPU's caches, as within a transport connect,
 * where QUIC's part runs between the transport's. So the blocks compare each case at its
 * warmest, and the one-by-one ratios compare the transport's set-up with QUIC's under the same
 * conditions; neither is the only fair one, so both are given.
 *
 * @module
 */
import { QuicEndpoint } from "../../src/quic/mod.ts";
import type { QuicTransport, UdpAddress } from "../../mod.ts";
import { node } from "./_nodes.ts";

/** The cases, in the order of the first round. */
export const CONNECT_CASES = [
  "QUIC alone",
  "reconnect",
  "QUIC alone, new endpoint",
  "new peer",
] as const;

/** One of {@linkcode CONNECT_CASES}. */
export type ConnectCase = typeof CONNECT_CASES[number];

/** What the rounds gave: medians over the rounds of each round's p50 or ratio. */
export interface ConnectFigures {
  /** Median of the rounds' p50s, ms. */
  p50Ms: Record<ConnectCase, number>;
  /** Reconnect against QUIC alone (goal <= 2x). */
  reconnectRatio: number;
  /** New peer against QUIC alone (goal <= 5x). */
  newPeerRatio: number;
  /** New peer against QUIC alone from a new endpoint (the same TLS work). */
  newPeerLikeForLike: number;
  /** Reconnect against QUIC alone, measured one by one (see the module's documentation). */
  reconnectRatioOneByOne: number;
  /** New peer against QUIC alone, measured one by one. */
  newPeerRatioOneByOne: number;
}

/** Options of {@linkcode connectRounds}. */
export interface ConnectRoundsOptions {
  /** Rounds. */
  rounds: number;
  /** Connects per round of each reconnecting case; the new-peer cases take a fifth as many. */
  connects: number;
  /** Gets a line per round. */
  onRound?: (line: string) => void;
  /**
   * The accepting side: a bare QUIC server, a listener for reconnects and a target for new
   * peers. Default {@linkcode localAcceptors}: in this process, on this event loop.
   */
  acceptors?: Acceptors;
}

/** The side the rounds dial: where it runs is the caller's choice. */
export interface Acceptors {
  /** A bare QUIC endpoint accepting every connection (QUIC alone's server). */
  server: UdpAddress;
  /** The transport the reconnects dial. */
  listener: UdpAddress;
  /** The transport the new peers dial. */
  target: UdpAddress;
  /** Waits until `which` has dropped every peer, so the next dial starts afresh. */
  emptied(which: "listener" | "target"): Promise<void>;
}

/** Waits until `transport` has dropped every peer (polled each millisecond, 5 s at most). */
export async function emptied(transport: QuicTransport): Promise<void> {
  for (let i = 0; transport.peers().length > 0; i++) {
    if (i > 5000) throw new Error("a peer was not dropped within 5 s of its disconnect");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * The accepting side in this process: a QUIC server and two transports on 127.0.0.1, and the
 * function that closes them.
 */
export async function localAcceptors(): Promise<Acceptors & { close(): Promise<void> }> {
  const server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  const accepting = (async () => {
    for (;;) await server.accept(); // accepted connections end when the client closes them
  })().catch(() => {});
  const listener = await node();
  const target = await node();
  return {
    server: server.localAddr,
    listener: listener.localAddr,
    target: target.localAddr,
    emptied: (which) => emptied(which === "listener" ? listener : target),
    close: async () => {
      await Promise.all([listener.close(), target.close()]);
      await server.close();
      await accepting;
    },
  };
}

/**
 * The `--rounds` and `--connects` of the scripts that run these rounds, as numbers.
 *
 * @throws {RangeError} when rounds is not a positive integer or connects an integer of at
 *   least 5.
 */
export function roundsArgs(values: { rounds?: string; connects?: string }): {
  rounds: number;
  connects: number;
} {
  const rounds = Number(values.rounds);
  const connects = Number(values.connects);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new RangeError(`Invalid '--rounds': must be a positive integer: got ${values.rounds}`);
  }
  if (!Number.isInteger(connects) || connects < 5) {
    throw new RangeError(
      `Invalid '--connects': must be an integer of at least 5: got ${values.connects}`,
    );
  }
  return { rounds, connects };
}

/** The goals of issue 16 on connection set-up. */
export const CONNECT_GOALS = { reconnect: 2, newPeer: 5 } as const;
/** Turns each case takes per round (blocks of a tenth of its connects). */
const BLOCKS_PER_ROUND = 10;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Runs the rounds (see the module's documentation). */
export async function connectRounds(options: ConnectRoundsOptions): Promise<ConnectFigures> {
  const { rounds, connects, onRound } = options;
  const newPerRound = Math.ceil(connects / 5);
  // Acceptors the caller gives are the caller's to close; these rounds close those they make.
  const own = options.acceptors === undefined ? await localAcceptors() : undefined;
  const far = options.acceptors ?? own!;
  const client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  const dialer = await node();

  /** One connect of a case, timed; what follows it (closing) is not. */
  const cases: Record<ConnectCase, () => Promise<number>> = {
    "QUIC alone": async () => {
      const start = performance.now();
      const conn = await client.connect(far.server);
      const ms = performance.now() - start;
      await conn.close();
      return ms;
    },
    "reconnect": async () => {
      const start = performance.now();
      const remote = await dialer.connectPeer(far.listener);
      const ms = performance.now() - start;
      await dialer.disconnectPeer(remote);
      await far.emptied("listener");
      return ms;
    },
    "QUIC alone, new endpoint": async () => {
      const fresh = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
      try {
        const start = performance.now();
        const conn = await fresh.connect(far.server);
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
        const remote = await fresh.connectPeer(far.target);
        const ms = performance.now() - start;
        await fresh.disconnectPeer(remote);
        return ms;
      } finally {
        await fresh.close();
        await far.emptied("target");
      }
    },
  };
  const count = (name: ConnectCase) =>
    name === "QUIC alone, new endpoint" || name === "new peer" ? newPerRound : connects;

  const p50s = Object.fromEntries(CONNECT_CASES.map((name) => [name, [] as number[]])) as Record<
    ConnectCase,
    number[]
  >;
  const reconnect: number[] = [], newPeer: number[] = [], likeForLike: number[] = [];
  const reconnectOneByOne: number[] = [], newPeerOneByOne: number[] = [];
  /** `count` pairs of `name` and QUIC alone, which goes first in every other pair: p50 ratio. */
  const oneByOne = async (name: ConnectCase, count: number) => {
    const times: number[] = [], quic: number[] = [];
    for (let i = 0; i < count; i++) {
      if (i % 2 === 0) {
        times.push(await cases[name]());
        quic.push(await cases["QUIC alone"]());
      } else {
        quic.push(await cases["QUIC alone"]());
        times.push(await cases[name]());
      }
    }
    return median(times) / median(quic);
  };
  try {
    for (const name of CONNECT_CASES) {
      for (let i = 0; i < 5; i++) await cases[name](); // warm-up
    }
    for (let round = 1; round <= rounds; round++) {
      // The cases take turns in small blocks (BLOCKS_PER_ROUND turns each), the order rotating
      // from round to round, so that the machine's state drifts little between them; the first
      // connect of a block is not counted, as it may pay for the previous case's closing work.
      const times = Object.fromEntries(CONNECT_CASES.map((name) => [name, [] as number[]]));
      for (let turn = 0; turn < BLOCKS_PER_ROUND; turn++) {
        for (let k = 0; k < CONNECT_CASES.length; k++) {
          const name = CONNECT_CASES[(k + round - 1) % CONNECT_CASES.length];
          const block = Math.ceil(count(name) / BLOCKS_PER_ROUND);
          await cases[name]();
          for (let i = 0; i < block; i++) times[name].push(await cases[name]());
        }
      }
      const p50 = {} as Record<ConnectCase, number>;
      for (const name of CONNECT_CASES) {
        p50[name] = median(times[name]);
        p50s[name].push(p50[name]);
      }
      reconnect.push(p50["reconnect"] / p50["QUIC alone"]);
      newPeer.push(p50["new peer"] / p50["QUIC alone"]);
      likeForLike.push(p50["new peer"] / p50["QUIC alone, new endpoint"]);
      reconnectOneByOne.push(await oneByOne("reconnect", connects));
      newPeerOneByOne.push(await oneByOne("new peer", newPerRound));
      onRound?.(
        `round ${round}: ` +
          CONNECT_CASES.map((name) => `${name} ${p50[name].toFixed(2)} ms`).join(", ") +
          `; reconnect ${reconnect.at(-1)!.toFixed(2)}x, new peer ${newPeer.at(-1)!.toFixed(2)}x ` +
          `QUIC alone (${likeForLike.at(-1)!.toFixed(2)}x QUIC alone from a new endpoint); ` +
          `one by one: reconnect ${reconnectOneByOne.at(-1)!.toFixed(2)}x, new peer ` +
          `${newPeerOneByOne.at(-1)!.toFixed(2)}x`,
      );
    }
  } finally {
    await dialer.close();
    await client.close();
    await own?.close();
  }
  return {
    p50Ms: Object.fromEntries(CONNECT_CASES.map((name) => [name, median(p50s[name])])) as Record<
      ConnectCase,
      number
    >,
    reconnectRatio: median(reconnect),
    newPeerRatio: median(newPeer),
    newPeerLikeForLike: median(likeForLike),
    reconnectRatioOneByOne: median(reconnectOneByOne),
    newPeerRatioOneByOne: median(newPeerOneByOne),
  };
}
