/**
 * The admission rules as a state machine: the policies of two peers, A and B, driven through
 * every order of the events of a race (dials starting, dialers sending their open signal,
 * listeners admitting, dialers admitting after `ready`, closes arriving), on a virtual clock.
 * A peer may restart: B's second process (a higher incarnation, same peer id) races the first
 * one's connection.
 */

import { assert, assertEquals } from "../_assert.ts";
import { AdmissionPolicy, type OpenSignal } from "../../src/transport/admission_policy.ts";
import type { ConnectionDirection } from "../../src/transport/events.ts";
import { VirtualClock } from "../_virtual_clock.ts";

/** The processes: A, B, and B's restart "B+" (same peer id "B", a higher incarnation). */
type Proc = "A" | "B" | "B+";
const peerOf = (proc: Proc): "A" | "B" => proc === "A" ? "A" : "B";

/** Every order of the chains' steps that keeps each chain's own order. */
function interleavings<T>(chains: T[][]): T[][] {
  const live = chains.filter((chain) => chain.length > 0);
  if (live.length <= 1) return [live.flat()];
  return live.flatMap((chain, i) =>
    interleavings(live.map((c, j) => i === j ? c.slice(1) : c)).map((rest) => [chain[0], ...rest])
  );
}

/**
 * A dial in a race: its name (the connection, also its link id), the dialing process, the
 * process that listens at the address dialed (the other peer's first process unless given),
 * and whether it migrates.
 */
interface Dial {
  name: string;
  from: Proc;
  to?: Proc;
  migrate: boolean;
  /** The dialer gives up after its open signal (a timeout before `ready`) and closes it. */
  abandon?: boolean;
  /** The dial starts after this one's last step (one chain of steps with it). */
  after?: string;
}

/**
 * Processes A ("A" < "B", so the tie-break keeps what A dialed), B and, for a restart, B+;
 * the connections between them and the closes in flight. A dialer admits a connection its
 * listener took when `ready` arrives, which is before any close of it by the listener (the
 * same stream, then the connection's close). A replaced connection is retired (drained) on
 * each side that migrated away from it; once the race is over, every retired connection
 * closes, drained or timed out, as the transport's would, and so does every connection of a
 * process that died.
 */
class Net {
  static readonly incarnations: Record<Proc, bigint> = { A: 5n, B: 7n, "B+": 8n };
  readonly nodes: Record<Proc, AdmissionPolicy<string>> = {
    A: Net.#policy("A"),
    B: Net.#policy("B"),
    "B+": Net.#policy("B+"),
  };
  readonly closed = new Set<string>();
  /** Dials their dialer dropped as redundant: never opened. */
  readonly dropped = new Set<string>();
  /** Connections the listener refused: their dialer never gets `ready`. */
  readonly refused = new Set<string>();
  /** What each dial announced in its open signal; absent when it was dropped as redundant. */
  readonly signals = new Map<string, OpenSignal>();
  readonly retired: Record<Proc, Set<string>> = { A: new Set(), B: new Set(), "B+": new Set() };
  /** Each time a process lost the peer (the transport's `peer:disconnected`), and what. */
  readonly losses: { at: Proc; connection: string }[] = [];
  /** The two ends of each connection. */
  readonly ends = new Map<string, [Proc, Proc]>();
  /** Processes that died: they act on nothing, their connections time out at the other end. */
  readonly dead = new Set<Proc>();
  #pending: { at: Proc; connection: string }[] = [];

  constructor(readonly deferCloses: boolean) {}

  static #policy(proc: Proc): AdmissionPolicy<string> {
    return new AdmissionPolicy({
      localPeerId: peerOf(proc),
      incarnation: Net.incarnations[proc],
    });
  }

  /** The process at the other end of `connection` from `proc`. */
  other(proc: Proc, connection: string): Proc {
    const [dialer, listener] = this.ends.get(connection)!;
    return proc === dialer ? listener : dialer;
  }

  /** A connection both ends admitted before the race. */
  connect(dialer: Proc, listener: Proc, connection: string): void {
    this.ends.set(connection, [dialer, listener]);
    const signal = this.nodes[dialer].opening({
      peer: peerOf(listener),
      address: "-",
      migrate: false,
      run: listener,
    })!;
    this.nodes[dialer].openEnded(peerOf(listener));
    this.nodes[dialer].dialEnded("-");
    this.admit(listener, connection, "inbound", signal);
    this.admit(dialer, connection, "outbound", signal);
  }

  /** `proc` closes `connection`; the other end hears of it now or at `deliver()`. */
  close(by: Proc, connection: string): void {
    if (this.closed.has(connection)) return;
    this.closed.add(connection);
    this.#closedAt(by, connection);
    this.#pending.push({ at: this.other(by, connection), connection });
    if (!this.deferCloses) this.deliver();
  }

  deliver(): void {
    for (const { at, connection } of this.#pending.splice(0)) this.#closedAt(at, connection);
  }

  #closedAt(at: Proc, connection: string): void {
    if (this.dead.has(at)) return;
    const peer = peerOf(this.other(at, connection));
    if (this.nodes[at].closed(peer, connection)) this.losses.push({ at, connection });
  }

  /** `proc` dies: from now on it does nothing, and A hears of its connections only by timeout. */
  die(proc: Proc): void {
    this.dead.add(proc);
  }

  /** The other end's idle timeout closes what a dead process held. */
  expire(proc: Proc): void {
    for (const [connection, ends] of this.ends) {
      if (ends.includes(proc) && !this.closed.has(connection)) this.close(proc, connection);
    }
  }

  admit(
    at: Proc,
    connection: string,
    direction: ConnectionDirection,
    signal: OpenSignal,
  ): boolean {
    const from = this.other(at, connection);
    const peer = peerOf(from);
    const { replace, generation, lineage, lastHeld, dial, alone } = signal;
    // Inbound: the dialer's incarnation from its open; outbound: the listener's from `ready`.
    const incarnation = direction === "inbound" ? signal.incarnation : Net.incarnations[from];
    const decision = this.nodes[at].admit(
      {
        peer,
        address: `${from.toLowerCase()}:1`,
        direction,
        replace,
        generation,
        incarnation,
        link: connection,
        lineage,
        lastHeld,
        dial,
        alone,
        // The process at the other end, as its certificate shows it.
        run: from,
      },
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
  dial({ name, from, to = from === "A" ? "B" : "A", migrate, abandon }: Dial): (() => void)[] {
    this.ends.set(name, [from, to]);
    const peer = peerOf(to);
    const address = `${to.toLowerCase()}:1`;
    let started = false;
    let signal: OpenSignal | undefined;
    return [
      () => {
        if (this.dead.has(from)) return;
        if (migrate && this.nodes[from].connection(peer) === undefined) return;
        started = true;
        if (migrate) this.nodes[from].migrationStarted(peer);
      },
      () => {
        if (!started || this.dead.has(to)) return;
        signal = this.nodes[from].opening({ peer, address, migrate, run: to });
        if (signal === undefined) {
          this.closed.add(name);
          this.dropped.add(name);
        } else this.signals.set(name, signal);
      },
      () => {
        if (signal !== undefined && !this.admit(to, name, "inbound", signal)) {
          this.refused.add(name);
        }
      },
      () => {
        if (!started) return;
        if (signal !== undefined) this.nodes[from].openEnded(peer);
        if (abandon) {
          if (signal !== undefined) this.close(from, name);
        } else if (signal !== undefined && !this.refused.has(name) && !this.dropped.has(name)) {
          this.admit(from, name, "outbound", signal);
          // The listener's ready frame comes before its close: a close the dialer already
          // had (not one still in flight) reaches it now that the connection is its own.
          const pending = this.#pending.some((p) => p.at === from && p.connection === name);
          if (this.closed.has(name) && !pending) this.#closedAt(from, name);
        }
        if (migrate) this.nodes[from].migrationEnded(peer);
        else this.nodes[from].dialEnded(address);
      },
    ];
  }

  /**
   * Delivers every close, closes the retired connections and a dead process's, and returns
   * the connection A and `b` (B's live process) both hold.
   */
  settle(b: Proc = "B"): string | undefined {
    this.deliver();
    for (const proc of ["A", "B", "B+"] as const) {
      for (const connection of this.retired[proc]) this.close(proc, connection);
    }
    for (const proc of this.dead) this.expire(proc);
    this.deliver();
    const a = this.nodes.A.connection("B");
    const atB = this.nodes[b].connection("A");
    return a !== undefined && a === atB && !this.closed.has(a) ? a : undefined;
  }
}

interface Outcome {
  order: string[];
  net: Net;
  kept: string;
}

/** A race: its dials, what stands before it, steps of their own, and B's live process. */
interface Race {
  dials: Dial[];
  /** Sets up the net before the race (a first connection, a death). */
  before?: (net: Net) => void;
  /** Single steps enumerated with the dials' steps, by name. */
  steps?: Record<string, (net: Net) => void>;
  /** The process of peer B that A must end connected to. */
  b?: Proc;
}

/**
 * Runs a race in every order, closes delivered at once and deferred; asserts that A and B's
 * live process end on one open connection, then hands each outcome to `check`. Returns the
 * number of runs.
 */
function race(
  { dials, before, steps: extra = {}, b = "B" }: Race,
  check: (o: Outcome) => void,
): number {
  let runs = 0;
  const chains: string[][] = [];
  const chainOf = new Map<string, string[]>();
  for (const { name, after } of dials) {
    const chain = after === undefined ? [] : chainOf.get(after)!;
    if (after === undefined) chains.push(chain);
    chain.push(...[0, 1, 2, 3].map((i) => `${name}${i}`));
    chainOf.set(name, chain);
  }
  for (const name of Object.keys(extra)) chains.push([name]);
  for (const order of interleavings(chains)) {
    for (const deferCloses of [false, true]) {
      const net = new Net(deferCloses);
      before?.(net);
      const steps = new Map<string, () => void>();
      for (const dial of dials) {
        net.dial(dial).forEach((step, i) => steps.set(`${dial.name}${i}`, step));
      }
      for (const [name, step] of Object.entries(extra)) steps.set(name, () => step(net));
      for (const name of order) steps.get(name)!();
      const kept = net.settle(b);
      if (kept === undefined) {
        throw new Error(
          `No agreement after ${order.join(" ")} (defer ${deferCloses}): A holds ${
            net.nodes.A.connection("B")
          }, ${b} holds ${net.nodes[b].connection("A")}`,
        );
      }
      check({ order, net, kept });
      runs++;
    }
  }
  return runs;
}

/** `before` of a race from a connection `OLD` that `dialer` opened to `listener`. */
const from = (dialer: Proc, listener: Proc = dialer === "A" ? "B" : "A") => (net: Net) =>
  net.connect(dialer, listener, "OLD");

Deno.test("admission: simultaneous dials agree on one connection in all 70 orders", () => {
  const runs = race(
    {
      dials: [
        { name: "X", from: "A", migrate: false },
        { name: "Y", from: "B", migrate: false },
      ],
    },
    ({ order, net, kept }) => {
      assertEquals(net.losses, [], order.join(" "));
      // When both dials reach their listener and are admitted there, A's (the smaller id) wins.
      const bothAdmitted = ["X", "Y"].every((c) => net.signals.has(c) && !net.refused.has(c));
      if (bothAdmitted) assertEquals(kept, "X", order.join(" "));
    },
  );
  assertEquals(runs, 70 * 2);
});

Deno.test("admission: two migrations from both sides end on one connection in all 70 orders, nothing dropped", () => {
  for (const initial of ["A", "B"] as const) {
    const runs = race(
      {
        dials: [
          { name: "M", from: "A", migrate: true },
          { name: "N", from: "B", migrate: true },
        ],
        before: from(initial),
      },
      ({ order, net, kept }) => {
        // No side ever lost the peer: every replaced connection drained instead of closing.
        assertEquals(net.losses, [], order.join(" "));
        const [m, n] = [net.signals.get("M")!, net.signals.get("N")!];
        if (m.generation === n.generation) {
          // Both moves from the same connection: the tie-break keeps A's.
          assertEquals(kept, "M", order.join(" "));
        } else {
          // One move from the other's: the later one wins, unless it reached the other side
          // before the earlier one's ready frame; then that side refuses it.
          const [earlier, later] = m.generation < n.generation ? ["M", "N"] : ["N", "M"];
          assertEquals(kept, net.refused.has(later) ? earlier : later, order.join(" "));
        }
      },
    );
    assertEquals(runs, 70 * 2);
  }
});

Deno.test("admission: the worst order: B's move completes at A, A moves on from it, A's move reaches B before B's ready", () => {
  // Before generations, B took A's move and then its own: A ended on M, B on N, and both
  // connections timed out draining on one side only.
  const net = new Net(false);
  net.connect("A", "B", "OLD");
  const steps = new Map<string, () => void>();
  net.dial({ name: "M", from: "A", migrate: true }).forEach((s, i) => steps.set(`M${i}`, s));
  net.dial({ name: "N", from: "B", migrate: true }).forEach((s, i) => steps.set(`N${i}`, s));
  for (const name of ["N0", "N1", "N2", "M0", "M1", "M2", "N3", "M3"]) steps.get(name)!();
  assertEquals(net.signals.get("N"), {
    replace: true,
    generation: 1,
    incarnation: 7n,
    lineage: "OLD",
    dial: 1,
  });
  assertEquals(net.signals.get("M"), {
    replace: true,
    generation: 2,
    incarnation: 5n,
    lineage: "OLD",
    dial: 2,
  });
  assert(net.refused.has("M"), "B refuses a move from a connection it does not hold yet");
  assertEquals(net.settle(), "N");
  assertEquals(net.losses, []);
});

Deno.test("admission: a migration crossing the other side's plain dial ends on one connection in all 70 orders", () => {
  for (const initial of ["A", "B"] as const) {
    for (const mover of ["A", "B"] as const) {
      race(
        {
          dials: [
            { name: "M", from: mover, migrate: true },
            { name: "P", from: mover === "A" ? "B" : "A", migrate: false },
          ],
          before: from(initial),
        },
        ({ order, net, kept }) => {
          assertEquals(net.losses, [], order.join(" "));
          // The plain dial of a connected side is redundant: dropped before its listener sees it.
          assert(!net.signals.has("P"), `${order.join(" ")} opened P, kept ${kept}`);
        },
      );
    }
  }
});

Deno.test("admission: simultaneous dials and a migration as soon as one side is connected agree in all 34,650 orders, without a disconnect", () => {
  for (const mover of ["A", "B"] as const) {
    const runs = race(
      {
        dials: [
          { name: "X", from: "A", migrate: false },
          { name: "Y", from: "B", migrate: false },
          { name: "M", from: mover, migrate: true },
        ],
      },
      ({ order, net, kept }) => {
        assertEquals(net.losses, [], `${order.join(" ")}: lost the peer, kept ${kept}`);
      },
    );
    assertEquals(runs, 34_650 * 2);
  }
});

Deno.test("admission: a first dial opened before its dialer was connected, arriving after it moved, is refused: no disconnect", () => {
  // One of the 18 orders that cost a peer:disconnected/peer:connected pair before `lastHeld`:
  // A took Y as a restarted B's dial and closed B's move M under B.
  const net = new Net(false);
  const steps = new Map<string, () => void>();
  for (
    const dial of [
      { name: "X", from: "A", migrate: false },
      { name: "Y", from: "B", migrate: false },
      { name: "M", from: "B", migrate: true },
    ] as const
  ) {
    net.dial(dial).forEach((step, i) => steps.set(`${dial.name}${i}`, step));
  }
  for (const name of "Y0 Y1 X0 X1 X2 X3 M0 M1 M2 M3 Y2 Y3".split(" ")) steps.get(name)!();
  // Y was B's only dial when it opened, but B's move M opened later: A holds M.
  assertEquals(net.signals.get("Y"), {
    replace: false,
    generation: 0,
    incarnation: 7n,
    dial: 1,
    alone: true,
  });
  assert(net.refused.has("Y"), "A refuses a dial that names no lineage B lost");
  assertEquals(net.settle(), "M");
  assertEquals(net.losses, []);
});

/**
 * Races `dials` after B died with the connection `OLD` open (dialed by A, then by B): B+ is
 * B's new process, and OLD times out at A (step K) at any point. A may lose the peer only by
 * that timeout (a real disconnect: B died), never a connection of B+. Returns the runs.
 */
function afterRestart(dials: Dial[], check: (o: Outcome) => void = () => {}): number {
  let runs = 0;
  for (const initial of ["A", "B"] as const) {
    runs += race(
      {
        dials,
        before: (net) => {
          from(initial)(net);
          net.die("B");
        },
        steps: { K: (net) => net.expire("B") },
        b: "B+",
      },
      (outcome) => {
        for (const loss of outcome.net.losses) {
          assertEquals(loss, { at: "A", connection: "OLD" }, outcome.order.join(" "));
        }
        check(outcome);
      },
    );
  }
  return runs;
}

Deno.test("admission: B restarted: B+ dials A while A moves the dead process's connection (reaching B+) and its idle timeout fires, all 630 orders", () => {
  const runs = afterRestart([
    { name: "Z", from: "B+", migrate: false },
    { name: "M", from: "A", to: "B+", migrate: true },
  ]);
  assertEquals(runs, 630 * 2 * 2);
});

Deno.test("admission: B restarted: A and B+ dial each other while the dead process's connection times out, all 630 orders", () => {
  const runs = afterRestart([
    { name: "X", from: "A", to: "B+", migrate: false },
    { name: "Z", from: "B+", migrate: false },
  ]);
  assertEquals(runs, 630 * 2 * 2);
});

Deno.test("admission: B restarted: A dials B+ while still holding the dead process's connection; its dial is not taken for redundant, all 5 orders", () => {
  const runs = afterRestart(
    [{ name: "X", from: "A", to: "B+", migrate: false }],
    // B+'s certificate is not the old process's: A opens X although it holds OLD.
    ({ order, kept }) => assertEquals(kept, "X", order.join(" ")),
  );
  assertEquals(runs, 5 * 2 * 2);
});

Deno.test("admission: B+ starts while B lives on: B+ dials A while B and A both move B's connection; all 34,650 orders end on B+, B keeps nothing", () => {
  for (const initial of ["A", "B"] as const) {
    const runs = race(
      {
        dials: [
          { name: "Z", from: "B+", migrate: false },
          { name: "N", from: "B", migrate: true },
          { name: "M", from: "A", migrate: true },
        ],
        before: from(initial),
        b: "B+",
      },
      ({ order, net, kept }) => {
        assertEquals(kept, "Z", order.join(" "));
        assertEquals(net.nodes.B.connection("A"), undefined, order.join(" "));
        // Only the old process loses the peer.
        assert(net.losses.every(({ at }) => at === "B"), order.join(" "));
      },
    );
    assertEquals(runs, 34_650 * 2);
  }
});

Deno.test("admission: B+ starts while B lives on: A and B+ dial each other while B moves its connection; all 34,650 orders end on B+, B keeps nothing", () => {
  for (const initial of ["A", "B"] as const) {
    const runs = race(
      {
        dials: [
          { name: "X", from: "A", to: "B+", migrate: false },
          { name: "Z", from: "B+", migrate: false },
          { name: "N", from: "B", migrate: true },
        ],
        before: from(initial),
        b: "B+",
      },
      ({ order, net, kept }) => {
        assert(kept === "X" || kept === "Z", `${order.join(" ")} kept ${kept}`);
        assertEquals(net.nodes.B.connection("A"), undefined, order.join(" "));
        assert(net.losses.every(({ at }) => at === "B"), order.join(" "));
      },
    );
    assertEquals(runs, 34_650 * 2);
  }
});

Deno.test("admission: the old process cannot take the peer back: its move, its redial and its ready are refused once B+ is connected", () => {
  const net = new Net(false);
  net.connect("A", "B", "OLD");
  net.connect("B+", "A", "Z");
  // A replaced OLD with B+'s connection and closed OLD: B lost the peer.
  assertEquals(net.nodes.A.connection("B"), "Z");
  assertEquals(net.losses, [{ at: "B", connection: "OLD" }]);
  const stale = { peer: "B", address: "b:1", direction: "inbound", incarnation: 7n } as const;
  for (const candidate of [{ replace: false }, { replace: true, generation: 1 }]) {
    assertEquals(net.nodes.A.admit({ ...stale, ...candidate }, "R"), {
      admitted: false,
      reason: "stale-incarnation",
    });
  }
  // A's own dial that B's process accepted (its ready carries incarnation 7).
  assertEquals(
    net.nodes.A.admit({ ...stale, direction: "outbound", replace: false }, "D"),
    { admitted: false, reason: "stale-incarnation" },
  );
  assertEquals(net.nodes.A.connection("B"), "Z");
});

Deno.test("admission: a redial after a loss the listener has not seen replaces the lost connection; a dial that names another lineage is refused", () => {
  const policy = new AdmissionPolicy<string>({ localPeerId: "B" });
  const inbound = { peer: "A", address: "a:1", direction: "inbound", replace: false } as const;
  assert(policy.admit({ ...inbound, link: "first" }, "first").admitted);
  // A dial opened before the dialer held "first" (it names nothing) follows "first".
  assertEquals(policy.admit({ ...inbound, link: "early" }, "early"), {
    admitted: false,
    reason: "duplicate",
  });
  const again = policy.admit(
    { ...inbound, address: "a:2", link: "second", lastHeld: "first" },
    "second",
  );
  assertEquals(again, {
    admitted: true,
    previous: "first",
    migrate: false,
    restart: true, // the dialer lost "first": this side reports a disconnect and a connect
    evict: [],
  });
  // The old connection's close no longer concerns the peer.
  assert(!policy.closed("A", "first"));
  assertEquals(policy.connection("A"), "second");
  // Once "second" closes here too, the next dial to A names it.
  assert(policy.closed("A", "second"));
  assertEquals(policy.opening({ peer: "A", address: "a:1", migrate: false }), {
    replace: false,
    generation: 0,
    incarnation: 0n,
    lastHeld: "second",
    dial: 1,
    alone: true,
  });
  const outbound = { peer: "C", address: "c:1", direction: "outbound", replace: false } as const;
  assertEquals(policy.opening({ peer: "C", address: "c:1", migrate: false }), {
    replace: false,
    generation: 0,
    incarnation: 0n,
    dial: 2,
    alone: true,
  });
  assert(policy.admit({ ...outbound, link: "c1" }, "c1").admitted);
  // Connected: a second plain dial is redundant, a migration replaces the connection.
  assertEquals(policy.opening({ peer: "C", address: "c:1", migrate: false }), undefined);
  assertEquals(policy.opening({ peer: "C", address: "c:1", migrate: true }), {
    replace: true,
    generation: 1,
    incarnation: 0n,
    lineage: "c1",
    dial: 3,
  });
  // A plain dial that opened before c1 was admitted: its listener took it, so the dialer
  // follows.
  assertEquals(policy.admit({ ...outbound, address: "c:2", link: "c2" }, "c2"), {
    admitted: true,
    previous: "c1",
    migrate: false,
    restart: false,
    evict: [],
  });
  assert(!policy.closed("C", "c1"));
  assertEquals(policy.connection("C"), "c2");
});

Deno.test("admission: a redial after a dial given up past its open signal agrees in all 495 orders with the other side's dial", () => {
  // The listener took X, but its dialer gave X up (a timeout before `ready`) and its close
  // may still be on the way: the dialer's next dial Z, its only one, replaces X. Before
  // `alone`, the listener refused Z as a duplicate, and with the close delayed both ends held
  // nothing once it arrived.
  for (const dialer of ["A", "B"] as const) {
    const other = dialer === "A" ? "B" : "A";
    const runs = race(
      {
        dials: [
          { name: "X", from: dialer, migrate: false, abandon: true },
          { name: "Z", from: dialer, migrate: false, after: "X" },
          { name: "Y", from: other, migrate: false },
        ],
      },
      ({ order, net, kept }) => {
        assertEquals(net.signals.get("Z")?.alone ?? true, true, order.join(" "));
        if (!net.signals.has("Y") || net.refused.has("Y")) {
          assertEquals(kept, "Z", order.join(" "));
        }
      },
    );
    assertEquals(runs, 495 * 2);
  }
});

Deno.test("admission: a dial alone with a higher number replaces the dialer's earlier dial held here; otherwise it is refused", () => {
  const policy = new AdmissionPolicy<string>({ localPeerId: "B" });
  const inbound = { peer: "A", address: "a:1", direction: "inbound", replace: false } as const;
  assert(policy.admit({ ...inbound, link: "given-up", dial: 5, alone: true }, "given-up").admitted);
  const refused = { admitted: false, reason: "duplicate" } as const;
  // Another dial of A's was in flight: it may be the one held here.
  assertEquals(policy.admit({ ...inbound, link: "busy", dial: 6 }, "busy"), refused);
  // An earlier dial of A's, arriving late.
  assertEquals(policy.admit({ ...inbound, link: "late", dial: 4, alone: true }, "late"), refused);
  // From a peer that does not number its dials.
  assertEquals(policy.admit({ ...inbound, link: "old", alone: true }, "old"), refused);
  assertEquals(policy.admit({ ...inbound, link: "next", dial: 7, alone: true }, "next"), {
    admitted: true,
    previous: "given-up",
    migrate: false,
    restart: true,
    evict: [],
  });
  // A connection this side dialed has no number of A's: only `lastHeld` replaces it.
  const outbound = { peer: "C", address: "c:1", direction: "outbound", replace: false } as const;
  const signal = policy.opening({ peer: "C", address: "c:1", migrate: false })!;
  assert(policy.admit({ ...outbound, ...signal, link: "c1" }, "c1").admitted);
  policy.openEnded("C");
  const fromC = { ...inbound, peer: "C", link: "c2", dial: signal.dial! + 1, alone: true } as const;
  assertEquals(policy.admit(fromC, "c2"), refused);
});

Deno.test("admission: a move must come from the connection the listener holds; generations wrap at 2^32", () => {
  const policy = new AdmissionPolicy<string>({ localPeerId: "B" });
  const move = {
    peer: "A",
    address: "a:1",
    direction: "inbound",
    replace: true,
    lineage: "c0",
  } as const;
  assert(policy.admit({ ...move, replace: false, generation: 0, link: "c0" }, "c0").admitted);
  for (const generation of [0, 2]) {
    assertEquals(policy.admit({ ...move, generation }, `bad${generation}`), {
      admitted: false,
      reason: "duplicate-migration",
    });
  }
  // The right generation of another lineage (a connection this side never held).
  assertEquals(policy.admit({ ...move, generation: 1, lineage: "other" }, "bad"), {
    admitted: false,
    reason: "duplicate-migration",
  });
  assertEquals(policy.admit({ ...move, generation: 1, link: "c1" }, "c1"), {
    admitted: true,
    previous: "c0",
    migrate: true,
    restart: false,
    evict: [],
  });
  assertEquals(policy.admit({ ...move, generation: 2 ** 32 - 1 }, "bad").admitted, false);
  const last = new AdmissionPolicy<string>({ localPeerId: "A" });
  last.admit({ ...move, peer: "B", replace: false, generation: 2 ** 32 - 1, link: "x" }, "x");
  assertEquals(last.opening({ peer: "B", address: "b:1", migrate: true }), {
    replace: true,
    generation: 0,
    incarnation: 0n,
    lineage: "x",
    dial: 1,
  });
});

Deno.test("admission: the pool evicts and idles on the injected clock; a replaced connection keeps the peer's entry", async () => {
  const clock = new VirtualClock(1000);
  const policy = new AdmissionPolicy<string>({
    localPeerId: "Z",
    maxConnections: 2,
    idleTimeoutMs: 5000,
    clock,
  });
  const inbound = (peer: string, link: string) =>
    ({ peer, address: `${peer}:1`, direction: "inbound", replace: false, link }) as const;
  policy.admit(inbound("a", "a1"), "a1");
  await clock.advance(10);
  policy.admit(inbound("b", "b1"), "b1");
  await clock.advance(10);
  policy.touch("a");
  // b is the least recently used.
  const decision = policy.admit(inbound("c", "c1"), "c1");
  assert(decision.admitted);
  assertEquals(decision.evict, [{ peer: "b", connection: "b1" }]);
  // a reconnects after losing a1: the new connection takes over its pool entry.
  assertEquals(policy.admit({ ...inbound("a", "a2"), lastHeld: "a1" }, "a2").admitted, true);
  assertEquals(policy.pool.peers().sort(), ["a", "c"]);
  assertEquals(policy.nextIdleAt(), 1020 + 5000);
  await clock.advanceTo(1020 + 5000);
  assertEquals(policy.collectIdle(), [{ peer: "c", connection: "c1" }, {
    peer: "a",
    connection: "a2",
  }]);
  assertEquals(policy.connection("a"), undefined);
});

Deno.test("admission: a later incarnation's connection replaces the old one as a restart, a lower one is refused", () => {
  const policy = new AdmissionPolicy<string>({ localPeerId: "B" });
  const inbound = { peer: "A", address: "a:1", direction: "inbound", replace: false } as const;
  assert(policy.admit({ ...inbound, link: "old", incarnation: 5n }, "old").admitted);
  assertEquals(
    policy.admit({ ...inbound, address: "a:2", link: "new", incarnation: 7n }, "new"),
    { admitted: true, previous: "old", migrate: false, restart: true, evict: [] },
  );
  assertEquals(
    policy.admit({ ...inbound, address: "a:3", link: "stale", incarnation: 6n }, "stale"),
    { admitted: false, reason: "stale-incarnation" },
  );
  assertEquals(policy.connection("A"), "new");
});
