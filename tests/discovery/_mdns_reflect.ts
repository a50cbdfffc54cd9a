/**
 * Tries to use a node as a reflector and to make it dial where a packet says, from inside the
 * test namespace B. In order, on the node's own socket:
 *
 * 1. a one-shot query from `OFF_LINK_ADDRESS` (an address of B's end outside the link's subnet,
 *    with a route back from A), which must go unanswered;
 * 2. a one-shot query with 200 questions from B's address, which must be dropped undecoded;
 * 3. a one-shot query from B's address with our question, two copies of it and unrelated ones,
 *    whose reply must repeat our question only;
 * 4. an announcement of `PEER_ID` at B's address, another address on the link and one off it.
 *
 * Replies to 1 would reach A's socket before the reply to 3, so once 3 is answered the count of
 * replies to 1 is final. Prints `{"event":"result",...}` and exits.
 *
 * Usage: `_mdns_reflect.ts NODE_ADDRESS OWN_ADDRESS OFF_LINK_ADDRESS PEER_ID`
 *
 * @module
 */

import dgram from "node:dgram";
import makeMdns from "multicast-dns";

const [node, own, offLink, peerId] = Deno.args;
const SVC = "_cretoai._udp.local";
const target = { address: node, port: 5353 };

async function oneShotSocket(address: string) {
  const socket = dgram.createSocket({ type: "udp4" });
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  const mdns = makeMdns({ socket, port: 0, multicast: false });
  const replies: makeMdns.ResponsePacket[] = [];
  mdns.on("response", (packet) => replies.push(packet));
  return { mdns, replies };
}

const send = (m: makeMdns.MulticastDNS, questions: makeMdns.QueryPacket["questions"], id: number) =>
  new Promise<void>((resolve, reject) =>
    m.query(
      { id, questions } as makeMdns.QueryPacket,
      target,
      (err) => err ? reject(err) : resolve(),
    )
  );

const off = await oneShotSocket(offLink);
const on = await oneShotSocket(own);
const ours = { name: SVC, type: "PTR" as const };

await send(off.mdns, [ours], 1);
await send(
  on.mdns,
  Array.from({ length: 200 }, (_, i) => ({ name: `q${i}.local`, type: "A" as const })),
  2,
);
const answered = new Promise<makeMdns.ResponsePacket>((resolve) =>
  on.mdns.once("response", resolve)
);
await send(on.mdns, [
  ours,
  { name: "_http._tcp.local", type: "PTR" },
  ours,
  { name: "other.local", type: "A" },
  ours,
], 3);
const reply = await answered;

// The announcement, multicast from port 5353 as a responder sends it.
const responder = makeMdns({ interface: own, bind: "0.0.0.0" });
await new Promise<void>((resolve) => responder.once("ready", () => resolve()));
const fqdn = `probe.${SVC}`;
await new Promise<void>((resolve, reject) =>
  responder.respond({
    answers: [
      { name: SVC, type: "PTR", ttl: 120, data: fqdn },
      { name: fqdn, type: "SRV", ttl: 120, data: { port: 9003, target: "probe.local" } },
      { name: fqdn, type: "TXT", ttl: 120, data: [`peer=${peerId}`, "v=1"] },
      { name: "probe.local", type: "A", ttl: 120, data: own },
      { name: "probe.local", type: "A", ttl: 120, data: "10.77.0.55" },
      { name: "probe.local", type: "A", ttl: 120, data: "198.51.100.7" },
    ],
  }, (err) => err ? reject(err) : resolve())
);

console.log(JSON.stringify({
  event: "result",
  offLinkReplies: off.replies.length,
  replies: on.replies.map((r) => r.id),
  questions: reply.questions.map((q) => `${q.type} ${q.name}`),
  answers: reply.answers.length,
}));
for (const m of [off.mdns, on.mdns, responder]) {
  await new Promise<void>((resolve) => m.destroy(() => resolve()));
}
