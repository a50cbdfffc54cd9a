/**
 * Sends hostile mDNS traffic to 224.0.0.251:5353 from inside a test namespace, then prints
 * `{"event":"sent",...}` with how many packets of each kind went out.
 *
 * Usage: `_mdns_garbage.ts INTERFACE_ADDRESS VALID_PEER_ID` (the id makes each invalid record
 * break exactly one rule).
 *
 * @module
 */

import dgram from "node:dgram";
// @ts-types="npm:@types/multicast-dns@7.2.4"
import makeMdns from "multicast-dns";

const [iface, validPeerId] = Deno.args;
const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
const mdns = makeMdns({ socket, interface: iface, bind: "0.0.0.0" });
await new Promise<void>((resolve) => mdns.once("ready", () => resolve()));

const raw = (bytes: Uint8Array) =>
  new Promise<void>((resolve, reject) =>
    socket.send(bytes, 5353, "224.0.0.251", (err: Error | null) => err ? reject(err) : resolve())
  );
const respond = (answers: makeMdns.ResponseOutgoingPacket["answers"]) =>
  new Promise<void>((resolve, reject) =>
    mdns.respond({ answers }, (err) => err ? reject(err) : resolve())
  );

const SVC = "_cretoai._udp.local";
const fqdn = (i: string) => `${i}.${SVC}`;
const srv = (i: string, port: number) => ({
  name: fqdn(i),
  type: "SRV" as const,
  ttl: 120,
  data: { port, target: "evil.local" },
});
const txt = (i: string, data: string[]) => ({
  name: fqdn(i),
  type: "TXT" as const,
  ttl: 120,
  data,
});
const ptr = (i: string) => ({ name: SVC, type: "PTR" as const, ttl: 120, data: fqdn(i) });
const a = { name: "evil.local", type: "A" as const, ttl: 120, data: "10.77.0.99" };

let malformed = 0;
let oversized = 0;
let invalid = 0;

// Random bytes, truncated headers, and a header that promises records it does not carry.
for (let i = 0; i < 20; i++) {
  const junk = crypto.getRandomValues(new Uint8Array(8 + i * 37));
  junk[4] = 0xff; // claims tens of thousands of questions: dropped undecoded for the count
  await raw(junk);
  if (junk.byteLength < 12) malformed++; // shorter than a DNS header
  else invalid++;
}
await raw(new Uint8Array([0, 0, 0x84, 0, 0, 0, 0, 1]));
malformed++;
// A compression pointer that points at itself.
await raw(
  new Uint8Array([
    0,
    0,
    0x84,
    0,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0xc0,
    12,
    0,
    1,
    0,
    1,
    0,
    0,
    0,
    120,
    0,
    4,
    1,
    2,
    3,
    4,
  ]),
);
malformed++;

// Valid DNS, but larger than the 9000-byte limit.
const big = Array.from({ length: 40 }, (_, k) => txt(`big${k}`, ["x=" + "y".repeat(250)]));
await respond(big);
oversized++;
await raw(new Uint8Array(20_000));
oversized++;

// Decodes, but breaks our rules: port 0, TXT without peer=, invalid peer id, huge TXT, bad A.
await respond([ptr("p0"), srv("p0", 0), txt("p0", [`peer=${validPeerId}`, "v=1"]), a]);
await respond([ptr("nopeer"), srv("nopeer", 9000), txt("nopeer", ["v=1"]), a]);
await respond([ptr("badid"), srv("badid", 9000), txt("badid", ["peer=has space", "v=1"]), a]);
await respond([
  ptr("hugetxt"),
  srv("hugetxt", 9000),
  txt("hugetxt", [`peer=${validPeerId}`, ...Array(6).fill("z".repeat(250))]),
  a,
]);
await respond([{ name: "evil.local", type: "A", ttl: 120, data: "224.0.0.1" }]);
invalid += 5;

console.log(JSON.stringify({ event: "sent", malformed, oversized, invalid }));
await new Promise<void>((resolve) => mdns.destroy(() => resolve()));
