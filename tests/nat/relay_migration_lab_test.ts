/**
 * Issue 9's last point in the NAT lab: "if a direct path becomes possible later, the
 * connection moves to it (a new connection with no message lost)".
 *
 * Both NATs endpoint-independent (hole punching works when the path is open), coturn in
 * `pub`, a public node C in `pub` (rendezvous and relay signalling, no TURN), and nodes A (in
 * `hA`) and B (in `hB`), each with a `RelaySocket`, a `RelayService` on coturn and a
 * `NatService` whose fallback is the relay. Each round, with fresh nodes:
 * 1. UDP between the two NATs is blocked (`lab.setDirectPath(false)`): A's `nat.connect(B,
 *    { via: C })` cannot punch and falls back to the relay; path `relay` on both sides.
 * 2. Numbered consensus messages flow A->B (and B->A), a bounded window of sends in flight;
 *    B receives a share of them through the relay. A direct try while still blocked (the
 *    periodic retry, or `upgrade`) fails and leaves the relayed connection alone; punches
 *    sent while blocked leave no conntrack entry between the NATs.
 * 3. The direct path opens; A moves the connection, by `nat.upgrade(B)` or (every other
 *    round) by the NAT service's own periodic retry (`directRetryMs`), and both sides report
 *    `migrated`.
 * 4. Afterwards: path `direct` on both sides, to the other NAT's public address; the old
 *    relayed connection drained (`retired` true); traffic keeps flowing; once stopped, every
 *    send resolved and each side received every message exactly once and in order.
 * Prints rounds, messages, the time from opening the path to `migrated`, and the ping RTT
 * through the relay and direct.
 */
import assert from "node:assert/strict";
import { LAB, labSkipReason, NatLab } from "../_netlab.ts";
import { ChildNode } from "./_child_node.ts";
import { TURN_USER } from "./_turn_server.ts";
import { formatAddress } from "../../src/quic/address.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";

const ignore = labSkipReason(["conntrack"]) !== undefined;
const CHILD = new URL("./_relay_service_child.ts", import.meta.url).pathname;
const ROUNDS = 5;
const TURN = [{ address: `${LAB.server1}:3478`, ...TURN_USER }];
/** Periodic direct retry of the automatic rounds, ms. */
const RETRY_MS = 1000;
/** Punching gives up after this (a blocked path fails fast; an open one punches in ~10 ms). */
const PUNCH_MS = 1000;
/** Messages B must receive on each path before the test moves on. */
const PER_PATH = 500;
const PINGS = 20;
const WAIT_MS = 20_000;

interface Round {
  mode: "auto" | "upgrade";
  /** Messages A->B and B->A. */
  ab: number;
  ba: number;
  /** From the moment the path was open to A's `migrated` (and B's). */
  openToMigratedMs: number;
  openToMigratedBMs: number;
  relayRtt: number;
  directRtt: number;
  /** Direct tries that failed while the path was blocked. */
  failedTries: number;
}

const epoch = () => performance.timeOrigin + performance.now();
const host = (address: unknown) => String(address).replace(/:\d+$/, "");

/** Stops a stream and checks that every send resolved; returns how many there were. */
async function stopStream(from: ChildNode, to: string, what: string): Promise<number> {
  const s = await from.request({ cmd: "streamStop", peer: to });
  assert.deepEqual(s.errors, [], `${what}: failed sends`);
  assert.equal(s.acked, s.sent, `${what}: every send resolved`);
  return s.sent as number;
}

/** Checks that `at` received all `count` messages of `from`, each once, in order. */
async function receivedAll(at: ChildNode, from: string, count: number, what: string) {
  const r = await at.request(
    { cmd: "streamReceived", peer: from, atLeast: count, timeoutMs: WAIT_MS },
    WAIT_MS + 5000,
  );
  assert.deepEqual(r.anomalies, [], `${what}: lost, duplicated or reordered`);
  assert.equal(r.count, count, `${what}: received ${r.count} of ${count}`);
  assert.equal(r.next, count);
}

async function round(
  lab: NatLab,
  nodes: { a: ChildNode; b: ChildNode; c: string; cId: string },
  mode: Round["mode"],
): Promise<Round> {
  const { a, b } = nodes;
  const nat = {
    stun: [`${LAB.server1}:3478`],
    directRetryMs: mode === "auto" ? RETRY_MS : 0,
    punchDurationMs: PUNCH_MS,
  };
  const [ra, rb] = await Promise.all([
    a.request({ cmd: "start", listen: "0.0.0.0", turnServers: TURN, nat }),
    b.request({ cmd: "start", listen: "0.0.0.0", turnServers: TURN, nat }),
  ]);
  const [idA, idB] = [ra.peerId as string, rb.peerId as string];
  await a.request({ cmd: "dial", address: nodes.c });
  await b.request({ cmd: "dial", address: nodes.c });
  const discovered = await Promise.all([
    a.request({ cmd: "discover" }),
    b.request({ cmd: "discover" }),
  ]);
  // Each NAT's public address for the node (endpoint-independent: the same towards anyone).
  const [publicA, publicB] = discovered.map((d) => {
    const { hostname, port } = d.publicAddress as { hostname: string; port: number };
    return `${hostname}:${port}`;
  });
  assert.equal(host(publicA), LAB.rAWan);
  assert.equal(host(publicB), LAB.rBWan);

  // 1. No direct path: punching fails, the relay connects.
  await lab.setDirectPath(false);
  const connected = await a.request(
    { cmd: "natConnect", peer: idB, via: nodes.cId, timeoutMs: 5000 },
    15_000,
  );
  assert.equal(connected.path, "relay", JSON.stringify(connected));
  assert.equal(connected.relayPath, "relay");
  const relayPing = await a.request({ cmd: "pings", peer: idB, count: PINGS });
  assert.equal(relayPing.path, "relay");
  assert.equal((await b.request({ cmd: "pings", peer: idA, count: 1 })).path, "relay");
  // A reports the fallback's connection as relayed; B, the target of the failed punch, does
  // not report the relayed connection as its punched one.
  const [eventsA, eventsB] = await Promise.all([
    a.request({ cmd: "natEvents" }),
    b.request({ cmd: "natEvents" }),
  ]);
  assert.deepEqual((eventsA.connected as { path: string }[]).map((e) => e.path), ["relay"]);
  assert.deepEqual(eventsB.connected, []);

  // 2. Traffic both ways, through the relay.
  await a.request({ cmd: "streamStart", peer: idB, window: 32, bytes: 64, max: 1_000_000 });
  await b.request({ cmd: "streamStart", peer: idA, window: 2, bytes: 64, max: 1_000_000 });
  const viaRelay = await b.request(
    { cmd: "streamReceived", peer: idA, atLeast: PER_PATH, timeoutMs: WAIT_MS },
    WAIT_MS + 5000,
  );
  assert.ok((viaRelay.count as number) >= PER_PATH, `through the relay: ${viaRelay.count}`);
  // A direct try while blocked fails and leaves the relayed connection (and traffic) alone.
  let failedTries: number;
  if (mode === "auto") {
    const failed = await a.request(
      { cmd: "retryFailed", peer: idB, atLeast: 1, timeoutMs: WAIT_MS },
      WAIT_MS + 5000,
    );
    assert.match(failed.lastError as string, /ERR_NAT_TRAVERSAL_FAILED|Cannot reach peer/);
    failedTries = failed.count as number;
  } else {
    const early = await a.send({ cmd: "upgrade", peer: idB, timeoutMs: 5000 }, 10_000);
    assert.equal(early.code, "ERR_NAT_TRAVERSAL_FAILED", JSON.stringify(early));
    failedTries = 1;
  }
  assert.equal((await a.request({ cmd: "pings", peer: idB, count: 1 })).path, "relay");
  const beforeOpen = await b.request({ cmd: "streamReceived", peer: idA });
  assert.deepEqual(beforeOpen.anomalies, []);
  // Punches sent while blocked (connect, and the automatic retries) left no mapping behind.
  assert.deepEqual(await lab.directPathEntries(), [], "conntrack entries while blocked");

  // 3. The direct path opens; the connection moves.
  await lab.setDirectPath(true);
  const opened = epoch();
  if (mode === "upgrade") {
    const up = await a.request({ cmd: "upgrade", peer: idB, timeoutMs: 5000 }, 10_000);
    assert.equal(up.path, "direct");
  }
  const [ma, mb] = await Promise.all([
    a.request({ cmd: "migrated", peer: idB, timeoutMs: WAIT_MS }, WAIT_MS + 5000),
    b.request({ cmd: "migrated", peer: idA, timeoutMs: WAIT_MS }, WAIT_MS + 5000),
  ]);

  // 4. Direct on both sides, the relayed connection drained, nothing lost.
  for (const [m, other, who] of [[ma, publicB, "A"], [mb, publicA, "B"]] as const) {
    const now = m.now as { path: string; address: string };
    assert.equal(m.path, "direct", `${who}: ${JSON.stringify(m)}`);
    assert.equal(now.path, "direct", `${who}: relay.path after the move`);
    assert.equal(now.address, other, `${who}: connected to the other NAT's public address`);
    assert.equal(formatAddress(m.address as UdpAddress), other, `${who}: the event's address`);
    assert.equal(m.retired, true, `${who}: the relayed connection drained`);
  }
  assert.equal(ma.direction, "outbound");
  assert.equal(mb.direction, "inbound");
  // Traffic keeps flowing, on the direct path.
  const atMove = (await b.request({ cmd: "streamReceived", peer: idA })).count as number;
  const later = await b.request(
    { cmd: "streamReceived", peer: idA, atLeast: atMove + PER_PATH, timeoutMs: WAIT_MS },
    WAIT_MS + 5000,
  );
  assert.ok((later.count as number) >= atMove + PER_PATH, `after the move: ${later.count}`);
  const ab = await stopStream(a, idB, "A->B");
  const ba = await stopStream(b, idA, "B->A");
  await receivedAll(b, idA, ab, "A->B");
  await receivedAll(a, idB, ba, "B->A");
  const directPing = await a.request({ cmd: "pings", peer: idB, count: PINGS });
  assert.equal(directPing.path, "direct");
  await Promise.all([a.request({ cmd: "close" }), b.request({ cmd: "close" })]);
  return {
    mode,
    ab,
    ba,
    openToMigratedMs: (ma.at as number) - opened,
    openToMigratedBMs: (mb.at as number) - opened,
    relayRtt: relayPing.rttP50 as number,
    directRtt: directPing.rttP50 as number,
    failedTries,
  };
}

Deno.test({
  name: `NAT lab (eim/eim): a relayed connection moves to the direct path once it opens, ` +
    `under traffic both ways, nothing lost or reordered, ${ROUNDS} rounds`,
  ignore,
  fn: async () => {
    await using lab = await NatLab.create({ modeA: "eim", modeB: "eim" });
    await lab.startCoturn();
    await using c = new ChildNode(lab.ns.pub, CHILD);
    await using a = new ChildNode(lab.ns.hA, CHILD);
    await using b = new ChildNode(lab.ns.hB, CHILD);
    const rc = await c.request({
      cmd: "start",
      listen: LAB.server2,
      turnServers: [],
      nat: { stun: [] },
    });
    const nodes = { a, b, c: `${LAB.server2}:${rc.port}`, cId: rc.peerId as string };
    const rounds: Round[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      rounds.push(await round(lab, nodes, i % 2 === 0 ? "auto" : "upgrade"));
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
    const ms = (xs: number[]) => xs.map((x) => x.toFixed(0)).join("/");
    const by = (mode: Round["mode"]) => rounds.filter((r) => r.mode === mode);
    console.log(
      `[relay -> direct lab] ${rounds.length}/${ROUNDS} rounds moved relay -> direct under ` +
        `traffic (${by("auto").length} by the periodic retry every ${RETRY_MS} ms, ` +
        `${by("upgrade").length} by upgrade()); ${sum(rounds.map((r) => r.ab))} messages A->B ` +
        `+ ${sum(rounds.map((r) => r.ba))} B->A, all delivered once and in order, every send ` +
        `resolved, retired true; ${
          sum(rounds.map((r) => r.failedTries))
        } direct tries failed while blocked, relay untouched; path open -> migrated (A/B): retry ${
          ms(by("auto").map((r) => r.openToMigratedMs))
        } ms / ${ms(by("auto").map((r) => r.openToMigratedBMs))} ms, upgrade ${
          ms(by("upgrade").map((r) => r.openToMigratedMs))
        } ms / ${ms(by("upgrade").map((r) => r.openToMigratedBMs))} ms; ping RTT p50 median ` +
        `relay ${median(rounds.map((r) => r.relayRtt)).toFixed(2)} ms, direct ${
          median(rounds.map((r) => r.directRtt)).toFixed(2)
        } ms`,
    );
    assert.equal(rounds.length, ROUNDS);
  },
});
