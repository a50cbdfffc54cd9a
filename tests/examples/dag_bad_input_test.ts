/**
 * Bad vertices against a real `examples/dag_node.ts` process: a bad signature, an unknown
 * author, a wrong round, parents that never arrive. Node A refuses each, penalizes the peer
 * that sent it, and forwards none: node B, behind A, gets only the good vertex sent after
 * them.
 */
import { assert, assertEquals } from "../_assert.ts";
import { node, within } from "../transport/_util.ts";
import { deriveCommittee, signVertex, TOPIC } from "../../examples/_dag_vertex.ts";
import { type DagEvent, spawnDagNode } from "../../examples/_dag_process.ts";
import { GossipService, type QuicTransport } from "../../mod.ts";

/** A dag_node child (committee of 4, 3 rounds) whose events are collected; `next` waits for one. */
function dagNode(index: number, dataDir: string, peers: string[] = []) {
  const events: DagEvent[] = [];
  const waiters = new Set<() => void>();
  const { child, reading } = spawnDagNode(
    { committee: 4, index, rounds: 3, dataDir, timeoutMs: 120_000, peers, stderr: "null" },
    (event) => {
      events.push(event);
      for (const w of [...waiters]) w();
    },
  );
  return {
    events,
    next(match: (e: DagEvent) => boolean, what: string): Promise<DagEvent> {
      return within(
        new Promise<DagEvent>((resolve) => {
          const check = () => {
            const found = events.find(match);
            if (found === undefined) return;
            waiters.delete(check);
            resolve(found);
          };
          waiters.add(check);
          check();
        }),
        60_000,
        what,
      );
    },
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.status;
      await reading.catch(() => {});
    },
  };
}

Deno.test("dag_node: bad vertices are refused, not forwarded, and their senders penalized", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dag-bad-" });
  const transports: QuicTransport[] = [];
  const services: GossipService[] = [];
  const a = dagNode(0, `${dir}/a`);
  let b: ReturnType<typeof dagNode> | undefined;
  try {
    const { port } = await a.next((e) => e.event === "listening", "node A listening");
    b = dagNode(1, `${dir}/b`, [`127.0.0.1:${port}`]);
    await b.next((e) => e.event === "listening", "node B listening");
    // Two misbehaving peers, each sending two bad vertices (three would graylist it).
    for (let i = 0; i < 2; i++) {
      const transport = await node(20 + i);
      transports.push(transport);
      const gossip = new GossipService({ transport });
      services.push(gossip);
      await gossip.start();
      gossip.subscribe(TOPIC);
      await transport.connectPeer(`127.0.0.1:${port}`);
      await within(gossip.whenMeshed(TOPIC, 1), 30_000, "mesh with A");
    }
    const [x, y] = services;
    const committee = deriveCommittee("cretoai-dag-demo", 4);
    const payload = new Uint8Array([1]);
    const round1 = { round: 1, parents: [], payload };
    const bad = {
      badSignature: signVertex(committee[3], { ...round1, author: 2 }),
      unknownAuthor: signVertex(committee[3], { ...round1, author: 7 }),
      wrongRound: signVertex(committee[2], { ...round1, round: 0, author: 2 }),
      missingParents: signVertex(committee[3], {
        round: 2,
        author: 3,
        parents: ["aa", "bb", "cc"].map((p) => p.repeat(32)),
        payload,
      }),
    };
    await x.publish(TOPIC, bad.badSignature.bytes);
    await x.publish(TOPIC, bad.unknownAuthor.bytes);
    await y.publish(TOPIC, bad.wrongRound.bytes);
    await y.publish(TOPIC, bad.missingParents.bytes);
    const reasons = new Map([
      [bad.badSignature.id, "bad signature"],
      [bad.unknownAuthor.id, "unknown author 7"],
      [bad.wrongRound.id, "wrong round 0"],
      [bad.missingParents.id, "3 parents never arrived"],
    ]);
    for (const [id, reason] of reasons) {
      const refused = await a.next((e) => e.event === "refused" && e.id === id, reason);
      assertEquals(refused.reason, reason);
    }
    // The penalty follows the refusal (the verdict goes back to the router after the log line).
    const penalties = () => a.events.filter((e) => e.event === "penalized");
    await a.next(() => penalties().length >= 4, "four penalties");
    const penalized = penalties();
    const peers = transports.map((t) => t.peerId.toString());
    assertEquals(
      penalized.map((e) => [peers.indexOf(e.peer as string), e.reason]).sort(),
      [[0, "invalid-message"], [0, "invalid-message"], [1, "invalid-message"], [
        1,
        "invalid-message",
      ]],
    );
    // A good vertex sent after the bad ones reaches B through A; none of the bad ones did.
    const good = signVertex(committee[2], { ...round1, author: 2 });
    await x.publish(TOPIC, good.bytes);
    await b.next((e) => e.event === "vertex" && e.id === good.id, "good vertex at B");
    const atB = b.events.filter((e) => e.event === "vertex").map((e) => e.id);
    for (const id of reasons.keys()) assert(!atB.includes(id), `B got bad vertex ${id}`);
    assertEquals(b.events.filter((e) => e.event === "refused"), [], "B saw no bad vertex");
  } finally {
    for (const s of services) await s.close();
    for (const t of transports) await t.close();
    await a.stop();
    await b?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
