/**
 * The admission rules as a state machine: two nodes' policies driven through every order of
 * the events of a race (dials starting, dialers sending their open signal, listeners
 * admitting, dialers admitting after `ready`, closes arriving), on a virtual clock.
 */

import { assert, assertEquals } from "../_assert.ts";
import { AdmissionPolicy, type OpenSignal } from "../../src/transport/admission_policy.ts";
import type { ConnectionDirection } from "../../src/transport/events.ts";
import { VirtualClock } from "../_virtual_clock.ts";

type Side = "A" | "B";
const other = (side: Side): Side => side === "A" ? "B" : "A";

/** Every order of the chains' steps that keeps each chain's own order. */
function interleavings<T>(chains: T[][]): T[][] {
  const live = chains.filter((chain) => chain.length > 0);
  if (live.length <= 1) return [live.flat()];
  return live.flatMap((chain, i) =>
    interleavings(live.map((c, j) => i === j ? c.slice(1) : c)).map((rest) => [chain[0], ...rest])
  );
}

/** A dial in a race: its name (the connection), who dials, and whether it migrates. */
interface Dial {
  name: string;
  from: Side;
  migrate: boolean;
}

/**
 * Two nodes, "A" < "B" (so the tie-break keeps what A dialed), the connections between them
 * and the closes in flight. A replaced connection is retired (drained) on each side that
 * migrated away from it; once the race is over, every retired connection closes, drained or
 * timed out, as the transport's would.
 */
class Pair {
  readonly nodes = {
    A: new AdmissionPolicy<string>({ localPeerId: "A" }),
    B: new AdmissionPolicy<string>({ localPeerId: "B" }),
  };
  readonly closed = new Set<string>();
  /** Connections the listener refused: their dialer never gets `ready`. */
  readonly refused = new Set<string>();
  /** What each dial announced in its open signal; absent when it was dropped as redundant. */
  readonly signals = new Map<string, OpenSignal>();
  readonly retired = { A: new Set<string>(), B: new Set<string>() };
  /** Times a side lost the peer (the transport's `peer:disconnected`). */
  lost = 0;
  #pending: { at: Side; connection: string }[] = [];

  constructor(readonly deferCloses: boolean) {}

  /** A connection both sides admitted before the race. */
  connect(dialer: Side, connection: string): void {
    this.admit(other(dialer), connection, "inbound", { replace: false, generation: 0 });
    this.admit(dialer, connection, "outbound", { replace: false, generation: 0 });
  }

  /** A side closes `connection`; the other side hears of it now or at `deliver()`. */
  close(by: Side, connection: string): void {
    if (this.closed.has(connection)) return;
    this.closed.add(connection);
    this.#closedAt(by, connection);
    this.#pending.push({ at: other(by), connection });
    if (!this.deferCloses) this.deliver();
  }

  deliver(): void {
    for (const { at, connection } of this.#pending.splice(0)) this.#closedAt(at, connection);
  }

  #closedAt(at: Side, connection: string): void {
    if (this.nodes[at].closed(other(at), connection)) this.lost++;
  }

  admit(at: Side, connection: string, direction: ConnectionDirection, signal: OpenSignal): boolean {
    const peer = other(at);
    const decision = this.nodes[at].admit(
      { peer, address: `${peer.toLowerCase()}:1`, direction, ...signal },
      connection,
    );
    if (!decision.admitted) {
      this.close(at, connection);
      return false;
    }
    if (decision.previous !== undefined) {
      if (decision.migrate) this.retired[at].add(decision.previous);
      else this.close(at, decision.previous);
    }
    return true;
  }

  /**
   * The steps of a dial, as the transport takes them: start (a migration only of a connected
   * peer), the open signal after the handshake, the listener's decision, the dialer's after
   * `ready`.
   */
  dial({ name, from, migrate }: Dial): (() => void)[] {
    const to = other(from);
    const address = `${to.toLowerCase()}:1`;
    let started = false;
    let signal: OpenSignal | undefined;
    return [
      () => {
        if (migrate && this.nodes[from].connection(to) === undefined) return;
        started = true;
        if (migrate) this.nodes[from].migrationStarted(to);
        else this.nodes[from].dialStarted(address);
      },
      () => {
        if (!started) return;
        signal = this.nodes[from].opening(to, migrate);
        if (signal === undefined) this.closed.add(name);
        else this.signals.set(name, signal);
      },
      () => {
        if (signal !== undefined && !this.admit(to, name, "inbound", signal)) {
          this.refused.add(name);
        }
      },
      () => {
        if (!started) return;
        if (signal !== undefined && !this.refused.has(name) && !this.closed.has(name)) {
          this.admit(from, name, "outbound", signal);
        }
        if (migrate) this.nodes[from].migrationEnded(to);
        else this.nodes[from].dialEnded(address);
      },
    ];
  }

  /** Delivers every close, closes the retired connections, and returns the one both hold. */
  settle(): string | undefined {
    this.deliver();
    for (const side of ["A", "B"] as const) {
      for (const connection of this.retired[side]) this.close(side, connection);
    }
    this.deliver();
    const a = this.nodes.A.connection("B");
    const b = this.nodes.B.connection("A");
    return a !== undefined && a === b && !this.closed.has(a) ? a : undefined;
  }
}

interface Outcome {
  order: string[];
  pair: Pair;
  kept: string;
}

/**
 * Runs `dials` in every order, closes delivered at once and deferred, from a connection
 * `OLD` dialed by `initial` (or none); asserts that both sides end on one open connection,
 * then hands each outcome to `check`. Returns the number of runs.
 */
function race(dials: Dial[], initial: Side | undefined, check: (o: Outcome) => void): number {
  let runs = 0;
  const names = dials.map(({ name }) => [0, 1, 2, 3].map((i) => `${name}${i}`));
  for (const order of interleavings(names)) {
    for (const deferCloses of [false, true]) {
      const pair = new Pair(deferCloses);
      if (initial !== undefined) pair.connect(initial, "OLD");
      const steps = new Map<string, () => void>();
      for (const dial of dials) {
        pair.dial(dial).forEach((step, i) => steps.set(`${dial.name}${i}`, step));
      }
      for (const name of order) steps.get(name)!();
      const kept = pair.settle();
      if (kept === undefined) {
        throw new Error(
          `No agreement after ${
            order.join(" ")
          } (OLD by ${initial}, defer ${deferCloses}): A holds ${
            pair.nodes.A.connection("B")
          }, B holds ${pair.nodes.B.connection("A")}`,
        );
      }
      check({ order, pair, kept });
      runs++;
    }
  }
  return runs;
}

Deno.test("admission: simultaneous dials agree on one connection in all 70 orders", () => {
  const runs = race(
    [
      { name: "X", from: "A", migrate: false },
      { name: "Y", from: "B", migrate: false },
    ],
    undefined,
    ({ order, pair, kept }) => {
      assertEquals(pair.lost, 0, order.join(" "));
      // When both dials reach their listener and are admitted there, A's (the smaller id) wins.
      const bothAdmitted = ["X", "Y"].every((c) => pair.signals.has(c) && !pair.refused.has(c));
      if (bothAdmitted) assertEquals(kept, "X", order.join(" "));
    },
  );
  assertEquals(runs, 70 * 2);
});

Deno.test("admission: two migrations from both sides end on one connection in all 70 orders, nothing dropped", () => {
  for (const initial of ["A", "B"] as const) {
    const runs = race(
      [
        { name: "M", from: "A", migrate: true },
        { name: "N", from: "B", migrate: true },
      ],
      initial,
      ({ order, pair, kept }) => {
        // No side ever lost the peer: every replaced connection drained instead of closing.
        assertEquals(pair.lost, 0, order.join(" "));
        const [m, n] = [pair.signals.get("M")!, pair.signals.get("N")!];
        if (m.generation === n.generation) {
          // Both moves from the same connection: the tie-break keeps A's.
          assertEquals(kept, "M", order.join(" "));
        } else {
          // One move from the other's: the later one wins, unless it reached the other side
          // before the earlier one's ready frame; then that side refuses it.
          const [earlier, later] = m.generation < n.generation ? ["M", "N"] : ["N", "M"];
          assertEquals(kept, pair.refused.has(later) ? earlier : later, order.join(" "));
        }
      },
    );
    assertEquals(runs, 70 * 2);
  }
});

Deno.test("admission: the worst order: B's move completes at A, A moves on from it, A's move reaches B before B's ready", () => {
  // Before generations, B took A's move and then its own: A ended on M, B on N, and both
  // connections timed out draining on one side only.
  const pair = new Pair(false);
  pair.connect("A", "OLD");
  const steps = new Map<string, () => void>();
  pair.dial({ name: "M", from: "A", migrate: true }).forEach((s, i) => steps.set(`M${i}`, s));
  pair.dial({ name: "N", from: "B", migrate: true }).forEach((s, i) => steps.set(`N${i}`, s));
  for (const name of ["N0", "N1", "N2", "M0", "M1", "M2", "N3", "M3"]) steps.get(name)!();
  assertEquals(pair.signals.get("N"), { replace: true, generation: 1 });
  assertEquals(pair.signals.get("M"), { replace: true, generation: 2 });
  assert(pair.refused.has("M"), "B refuses a move from a connection it does not hold yet");
  assertEquals(pair.settle(), "N");
  assertEquals(pair.lost, 0);
});

Deno.test("admission: a migration crossing the other side's plain dial ends on one connection in all 70 orders", () => {
  for (const initial of ["A", "B"] as const) {
    for (const mover of ["A", "B"] as const) {
      race(
        [
          { name: "M", from: mover, migrate: true },
          { name: "P", from: other(mover), migrate: false },
        ],
        initial,
        ({ order, pair, kept }) => {
          assertEquals(pair.lost, 0, order.join(" "));
          // The plain dial of a connected side is redundant: dropped before its listener sees it.
          assert(!pair.signals.has("P"), `${order.join(" ")} opened P, kept ${kept}`);
        },
      );
    }
  }
});

Deno.test("admission: simultaneous dials and a migration as soon as one side is connected agree in all 34,650 orders", () => {
  for (const mover of ["A", "B"] as const) {
    let blips = 0;
    const runs = race(
      [
        { name: "X", from: "A", migrate: false },
        { name: "Y", from: "B", migrate: false },
        { name: "M", from: mover, migrate: true },
      ],
      undefined,
      ({ order, pair, kept }) => {
        if (pair.lost === 0) return;
        // The one order family where a side briefly loses the peer: B's first dial Y, opened
        // before B was connected, reaches A after B moved; A cannot tell it from a restarted B
        // (whose new dial must replace the dead connection at once), so Y replaces B's move,
        // which closes (its sends reject), and both end on Y.
        assert(mover === "B" && kept === "Y", `${order.join(" ")}: lost the peer, kept ${kept}`);
        blips++;
      },
    );
    assertEquals(runs, 34_650 * 2);
    assertEquals(blips, mover === "A" ? 0 : 18);
  }
});

Deno.test("admission: a peer that dials again replaces its old inbound connection; our second dial is dropped before it opens", () => {
  const policy = new AdmissionPolicy<string>({ localPeerId: "B" });
  const inbound = { peer: "A", address: "a:1", direction: "inbound", replace: false } as const;
  assert(policy.admit(inbound, "first").admitted);
  const again = policy.admit({ ...inbound, address: "a:2" }, "second");
  assertEquals(again, { admitted: true, previous: "first", migrate: false, evict: [] });
  // The old connection's close no longer concerns the peer.
  assert(!policy.closed("A", "first"));
  assertEquals(policy.connection("A"), "second");
  const outbound = { peer: "C", address: "c:1", direction: "outbound", replace: false } as const;
  assertEquals(policy.opening("C", false), { replace: false, generation: 0 });
  assert(policy.admit(outbound, "c1").admitted);
  // Connected: a second plain dial is redundant, a migration replaces the connection.
  assertEquals(policy.opening("C", false), undefined);
  assertEquals(policy.opening("C", true), { replace: true, generation: 1 });
  // A plain dial that opened before c1 was admitted: its listener replaced c1 (as for a
  // restart), so the dialer follows.
  assertEquals(policy.admit({ ...outbound, address: "c:2" }, "c2"), {
    admitted: true,
    previous: "c1",
    migrate: false,
    evict: [],
  });
  assert(!policy.closed("C", "c1"));
  assertEquals(policy.connection("C"), "c2");
});

Deno.test("admission: a move must come from the connection the listener holds; generations wrap at 2^32", () => {
  const policy = new AdmissionPolicy<string>({ localPeerId: "B" });
  const move = { peer: "A", address: "a:1", direction: "inbound", replace: true } as const;
  assert(policy.admit({ ...move, replace: false, generation: 0 }, "c0").admitted);
  for (const generation of [0, 2]) {
    assertEquals(policy.admit({ ...move, generation }, `bad${generation}`), {
      admitted: false,
      reason: "duplicate-migration",
    });
  }
  assertEquals(policy.admit({ ...move, generation: 1 }, "c1"), {
    admitted: true,
    previous: "c0",
    migrate: true,
    evict: [],
  });
  assertEquals(policy.admit({ ...move, generation: 2 ** 32 - 1 }, "bad").admitted, false);
  const last = new AdmissionPolicy<string>({ localPeerId: "A" });
  last.admit({ ...move, peer: "B", replace: false, generation: 2 ** 32 - 1 }, "x");
  assertEquals(last.opening("B", true), { replace: true, generation: 0 });
});

Deno.test("admission: the pool evicts and idles on the injected clock; a replaced connection keeps the peer's entry", async () => {
  const clock = new VirtualClock(1000);
  const policy = new AdmissionPolicy<string>({
    localPeerId: "Z",
    maxConnections: 2,
    idleTimeoutMs: 5000,
    clock,
  });
  const inbound = (peer: string) =>
    ({ peer, address: `${peer}:1`, direction: "inbound", replace: false }) as const;
  policy.admit(inbound("a"), "a1");
  await clock.advance(10);
  policy.admit(inbound("b"), "b1");
  await clock.advance(10);
  policy.touch("a");
  // b is the least recently used.
  const decision = policy.admit(inbound("c"), "c1");
  assert(decision.admitted);
  assertEquals(decision.evict, [{ peer: "b", connection: "b1" }]);
  // a reconnects: the new connection takes over its pool entry.
  assertEquals(policy.admit(inbound("a"), "a2").admitted, true);
  assertEquals(policy.pool.peers().sort(), ["a", "c"]);
  assertEquals(policy.nextIdleAt(), 1020 + 5000);
  await clock.advanceTo(1020 + 5000);
  assertEquals(policy.collectIdle(), [{ peer: "c", connection: "c1" }, {
    peer: "a",
    connection: "a2",
  }]);
  assertEquals(policy.connection("a"), undefined);
});
