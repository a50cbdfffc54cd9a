/**
 * The admission rules as a state machine: two nodes' policies driven through every order of
 * the events of a race (dials starting, listeners admitting, dialers admitting after `ready`,
 * closes arriving), on a virtual clock.
 */

import { assert, assertEquals } from "../_assert.ts";
import { AdmissionPolicy } from "../../src/transport/admission_policy.ts";
import type { ConnectionDirection } from "../../src/transport/events.ts";
import { VirtualClock } from "../_virtual_clock.ts";

/** Every order of two chains of steps that keeps each chain's own order. */
function interleavings<T>(a: T[], b: T[]): T[][] {
  if (a.length === 0) return [b];
  if (b.length === 0) return [a];
  return [
    ...interleavings(a.slice(1), b).map((rest) => [a[0], ...rest]),
    ...interleavings(a, b.slice(1)).map((rest) => [b[0], ...rest]),
  ];
}

/** Two nodes, "A" < "B" (so both keep what A dialed), with the closes between them. */
class Pair {
  readonly nodes = {
    A: new AdmissionPolicy<string>({ localPeerId: "A" }),
    B: new AdmissionPolicy<string>({ localPeerId: "B" }),
  };
  readonly closed = new Set<string>();
  /** Connections the listener refused: their dialer never gets `ready`. */
  readonly refused = new Set<string>();
  #pending: { at: "A" | "B"; connection: string }[] = [];

  constructor(readonly deferCloses: boolean) {}

  /** A side closes `connection`; the other side hears of it now or at `deliver()`. */
  close(by: "A" | "B", connection: string): void {
    this.closed.add(connection);
    this.#pending.push({ at: by === "A" ? "B" : "A", connection });
    if (!this.deferCloses) this.deliver();
  }

  deliver(): void {
    for (const { at, connection } of this.#pending.splice(0)) {
      this.nodes[at].closed(at === "A" ? "B" : "A", connection);
    }
  }

  admit(
    at: "A" | "B",
    connection: string,
    direction: ConnectionDirection,
    replace: boolean,
  ): boolean {
    const peer = at === "A" ? "B" : "A";
    const decision = this.nodes[at].admit(
      { peer, address: `${peer.toLowerCase()}:1`, direction, replace },
      connection,
    );
    if (!decision.admitted) {
      this.close(at, connection);
      return false;
    }
    if (decision.previous !== undefined && !decision.migrate) this.close(at, decision.previous);
    return true;
  }

  /** The steps of a dial of `connection` from `from`, each a function. */
  dial(from: "A" | "B", connection: string, replace: boolean): (() => void)[] {
    const to = from === "A" ? "B" : "A";
    const address = `${to.toLowerCase()}:1`;
    const start = () => {
      if (replace) this.nodes[from].migrationStarted(to);
      else this.nodes[from].dialStarted(address);
    };
    const end = () => {
      if (replace) this.nodes[from].migrationEnded(to);
      else this.nodes[from].dialEnded(address);
    };
    return [
      start,
      () => {
        if (!this.admit(to, connection, "inbound", replace)) this.refused.add(connection);
      },
      () => {
        if (!this.refused.has(connection) && !this.closed.has(connection)) {
          this.admit(from, connection, "outbound", replace);
        }
        end();
      },
    ];
  }

  /** Both sides hold the same connection, and it is open. */
  agreed(): string | undefined {
    this.deliver();
    const a = this.nodes.A.connection("B");
    const b = this.nodes.B.connection("A");
    return a !== undefined && a === b && !this.closed.has(a) ? a : undefined;
  }
}

Deno.test("admission: simultaneous dials agree on the smaller id's connection in all 20 orders", () => {
  for (const deferCloses of [false, true]) {
    const orders = interleavings([0, 1, 2].map((i) => `X${i}`), [0, 1, 2].map((i) => `Y${i}`));
    assertEquals(orders.length, 20);
    for (const order of orders) {
      const pair = new Pair(deferCloses);
      const steps = new Map<string, () => void>();
      pair.dial("A", "X", false).forEach((step, i) => steps.set(`X${i}`, step));
      pair.dial("B", "Y", false).forEach((step, i) => steps.set(`Y${i}`, step));
      for (const name of order) steps.get(name)!();
      const kept = pair.agreed();
      // Either dial alone would do; when both reach their listener, A's (the smaller id) wins.
      assert(kept !== undefined, `no agreement after ${order.join(" ")} (defer ${deferCloses})`);
      const bothAdmittedAtListener = !pair.refused.has("X") && !pair.refused.has("Y");
      if (bothAdmittedAtListener) assertEquals(kept, "X", order.join(" "));
    }
  }
});

Deno.test("admission: both sides migrating at once end on one connection in every order", () => {
  // Both moves start before either reaches the other side: the race migratePeer handles.
  const tails = interleavings(["M1", "M2"], ["N1", "N2"]);
  for (const deferCloses of [false, true]) {
    for (const tail of tails) {
      const pair = new Pair(deferCloses);
      for (const [at, from] of [["A", "inbound"], ["B", "outbound"]] as const) {
        pair.nodes[at].admit(
          { peer: at === "A" ? "B" : "A", address: "x:1", direction: from, replace: false },
          "OLD",
        );
      }
      const steps = new Map<string, () => void>();
      pair.dial("A", "M", true).forEach((step, i) => steps.set(`M${i}`, step));
      pair.dial("B", "N", true).forEach((step, i) => steps.set(`N${i}`, step));
      const order = ["M0", "N0", ...tail];
      for (const name of order) steps.get(name)!();
      const kept = pair.agreed();
      assert(kept !== undefined, `no agreement after ${order.join(" ")} (defer ${deferCloses})`);
      // While both moves are in flight at A, A refuses B's: both keep A's move.
      if (order.indexOf("N1") < order.indexOf("M2")) assertEquals(kept, "M", order.join(" "));
    }
  }
});

Deno.test("admission: a peer that dials again replaces its old inbound connection; our second dial does not", () => {
  const policy = new AdmissionPolicy<string>({ localPeerId: "B" });
  const inbound = { peer: "A", address: "a:1", direction: "inbound", replace: false } as const;
  assert(policy.admit(inbound, "first").admitted);
  const again = policy.admit({ ...inbound, address: "a:2" }, "second");
  assertEquals(again, { admitted: true, previous: "first", migrate: false, evict: [] });
  // The old connection's close no longer concerns the peer.
  assert(!policy.closed("A", "first"));
  assertEquals(policy.connection("A"), "second");
  const outbound = { peer: "C", address: "c:1", direction: "outbound", replace: false } as const;
  assert(policy.admit(outbound, "c1").admitted);
  assertEquals(policy.admit({ ...outbound, address: "c:2" }, "c2"), {
    admitted: false,
    reason: "duplicate",
  });
  assert(policy.closed("C", "c1"));
  assertEquals(policy.connection("C"), undefined);
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
