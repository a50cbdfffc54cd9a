/**
 * Fuzz targets of the services: STUN and TURN codecs, punch packets, rendezvous messages and
 * relay offers (`src/nat`), mDNS packets as the mDNS service takes them (`src/discovery`), DHT
 * wire messages and records (`src/discovery/dht`).
 *
 * @module
 */

import stun from "stun";
// The decoder multicast-dns runs on every mDNS datagram (its own dependency, same version); not
// in deno.json's imports, which the resolver change owns: move it there when that lands.
import dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { NetworkError } from "../../src/errors.ts";
import { PeerId } from "../../src/identity/peer_id.ts";
import type { QuicTransport } from "../../src/transport/transport.ts";
import type { RequestHandler } from "../../src/transport/peer_api.ts";
import {
  decodeStunMessage,
  encodeBindingRequest,
  rawAttributes,
} from "../../src/nat/_stun_codec.ts";
import {
  channelOf,
  channelPayload,
  encodeChannelData,
  encodeSendIndication,
  encodeTurnRequest,
  integrityMatches,
  isChannelData,
  longTermKey,
  TurnMethod,
} from "../../src/nat/_turn_codec.ts";
import { decodePunch, encodePunch } from "../../src/nat/_punch_session.ts";
import { decodeRendezvous, encodeRendezvous, sessionBytes } from "../../src/nat/_rendezvous.ts";
import { RELAY_PROTOCOL, RelayService } from "../../src/nat/relay_service.ts";
import { PeerTable } from "../../src/discovery/mdns_peers.ts";
import {
  answerQuery,
  buildAnnouncement,
  type LocalService,
  MDNS_SERVICE_TYPE,
  parseResponse,
} from "../../src/discovery/mdns_records.ts";
import {
  decodeReply,
  decodeRequest,
  type DhtRequestType,
  encodeErrorReply,
  encodeReply,
  encodeRequest,
  resolveWireLimits,
} from "../../src/discovery/dht/_wire.ts";
import {
  decodePeerRecord,
  decodeProviderRecord,
  encodeProviderRecord,
  signPeerRecord,
  validateProviderRecord,
  verifyPeerRecord,
} from "../../src/discovery/dht/records.ts";
import {
  identityPeerIdBinding,
  identityRecordSigner,
  identityRecordVerifier,
} from "../../src/discovery/dht/identity_records.ts";
import { makeContact } from "../../src/discovery/dht/contact.ts";
import { DhtNode } from "../../src/discovery/dht/dht_node.ts";
import { DHT_PROTOCOL_ID, QuicDhtRpc } from "../../src/discovery/dht/quic_rpc.ts";
import { contentKey } from "../../src/discovery/dht/key.ts";
import { dialerIdentity, listenerIdentity } from "../handshake/_util.ts";
import { type FuzzTarget, InvariantError } from "./_campaign.ts";

function check(ok: boolean, what: string): void {
  if (!ok) throw new InvariantError(what);
}

const TX = new Uint8Array(12).fill(0x5a);
const PEER_A = dialerIdentity.peerId.toString();
const PEER_B = listenerIdentity.peerId.toString();
/** A fixed clock for record expiry: inputs must replay the same way on any day. */
const NOW = 1_800_000_000_000;

function stunSeeds(): Uint8Array[] {
  const success = stun.createMessage(0x0101, Buffer.from(TX));
  success.addXorAddress("203.0.113.7", 40001);
  success.addAttribute(0x802b, "198.51.100.1", 3478);
  success.addAttribute(0x802c, "198.51.100.2", 3479);
  success.addFingerprint();
  const error = stun.createMessage(0x0111, Buffer.from(TX));
  error.addError(401, "Unauthorized");
  error.addAttribute(0x0014, "example.org");
  error.addAttribute(0x0015, "nonce-1234");
  const allocated = stun.createMessage(0x0103, Buffer.from(TX));
  allocated.addAttribute(0x0016, "198.51.100.9", 49160);
  allocated.addXorAddress("203.0.113.7", 40001);
  allocated.addAttribute(0x000d, 600);
  allocated.addFingerprint();
  const data = stun.createMessage(0x0017);
  data.addAttribute(0x0012, "10.0.0.9", 5000);
  data.addAttribute(0x0013, Buffer.from([1, 2, 3, 4, 5]));
  const v6 = stun.createMessage(0x0101, Buffer.from(TX));
  v6.addXorAddress("2001:db8::1", 1234);
  return [
    encodeBindingRequest(TX, { ip: true, port: true }),
    ...[success, error, allocated, data, v6].map((m) => new Uint8Array(stun.encode(m))),
    encodeTurnRequest(TurnMethod.allocate, TX, { udp: true, lifetime: 600 }, TURN_AUTH),
    encodeSendIndication({ hostname: "10.0.0.9", port: 5000 }, new Uint8Array([7, 7])),
  ];
}

const TURN_AUTH = {
  username: "test",
  realm: "example.org",
  nonce: new TextEncoder().encode("abc"),
  key: longTermKey("test", "example.org", "secret"),
};

const LOCAL: LocalService = {
  instance: "node-1",
  hostname: "cretoai-0011.local",
  port: 9001,
  peerId: PEER_A,
  version: "1",
  addresses: ["10.0.0.5", "192.168.1.7"],
};
const MDNS_LIMITS = {
  maxRecordSize: 1300,
  maxRecords: 64,
  isValidPeerId: (id: string) => {
    try {
      PeerId.parse(id);
      return true;
    } catch {
      return false;
    }
  },
};

function mdnsSeeds(): Uint8Array[] {
  const announce = buildAnnouncement({ ...LOCAL, peerId: PEER_B, instance: "node-2" }, 120);
  // Our record objects are what dns-packet encodes; its types differ only in TXT data.
  const encode = (p: unknown) => new Uint8Array(dnsPacket.encode(p as dnsPacket.Packet));
  return [
    encode({ type: "response", flags: 0x8400, ...announce }),
    encode({ type: "query", questions: [{ name: MDNS_SERVICE_TYPE, type: "PTR" }] }),
    encode({
      type: "query",
      questions: [
        { name: `node-1.${MDNS_SERVICE_TYPE}`, type: "ANY" },
        { name: "cretoai-0011.local", type: "A" },
        { name: "_services._dns-sd._udp.local", type: "PTR" },
      ],
    }),
  ];
}

/** Several packets in one input: each as `length u16 | packet`. */
function packets(list: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(list.reduce((n, p) => n + 2 + p.byteLength, 0));
  let at = 0;
  for (const p of list) {
    new DataView(out.buffer).setUint16(at, p.byteLength);
    out.set(p, at + 2);
    at += 2 + p.byteLength;
  }
  return out;
}

function unpack(input: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at + 2 <= input.byteLength && out.length < 8;) {
    const n = (input[at] << 8) | input[at + 1];
    out.push(input.subarray(at + 2, at + 2 + n));
    at += 2 + n;
  }
  return out;
}

/** Announcements of two peers, then partial and goodbye updates: what a link carries. */
function mdnsSequenceSeeds(): Uint8Array[] {
  const encode = (p: unknown) => new Uint8Array(dnsPacket.encode(p as dnsPacket.Packet));
  const svc = (peerId: string, instance: string, address: string) =>
    buildAnnouncement({
      ...LOCAL,
      peerId,
      instance,
      hostname: `${instance}.local`,
      addresses: [address],
    }, 120);
  const b = svc(PEER_B, "node-2", "10.0.0.2");
  const c = svc(PEER_A, "node-3", "10.0.0.3");
  const response = (answers: unknown[]) => encode({ type: "response", flags: 0x8400, answers });
  const full = (a: typeof b) => response(a.answers.concat(a.additionals));
  const only = (a: typeof b, type: string) =>
    response(a.answers.concat(a.additionals).filter((r) => r.type === type));
  const goodbye = (a: typeof b) =>
    response(a.answers.filter((r) => r.type === "PTR").map((r) => ({ ...r, ttl: 0 })));
  return [
    packets([full(b), full(c)]),
    packets([full(b), only(b, "TXT"), only(b, "A")]),
    packets([full(c), only(c, "SRV"), goodbye(c)]),
    packets([full(b), only(c, "TXT"), only(b, "SRV")]),
  ];
}

const wireLimits = resolveWireLimits();
const REQUEST_TYPES: readonly DhtRequestType[] = [
  "ping",
  "find-node",
  "get-peer-record",
  "put-peer-record",
  "get-providers",
  "add-provider",
];
const provider = {
  key: contentKey("fuzz"),
  providerId: PEER_A,
  addresses: ["127.0.0.1:9001", "[::1]:9001"],
  expiresAt: NOW + 60_000,
};
const contacts = [
  makeContact(PEER_A, ["127.0.0.1:9001"]),
  makeContact(PEER_B, ["10.0.0.1:1", "10.0.0.2:2"]),
];

let peerRecord: Uint8Array | undefined;
async function signedPeerRecord(): Promise<Uint8Array> {
  peerRecord ??= await signPeerRecord(
    { peerId: PEER_A, addresses: ["127.0.0.1:9001"], seq: 3, expiresAt: NOW + 3_600_000 },
    identityRecordSigner(dialerIdentity),
  );
  return peerRecord;
}

/** The relay service's signalling handler, behind a transport that only registers it. */
let relayHandler: Promise<RequestHandler> | undefined;
function relaySignalling(): Promise<RequestHandler> {
  relayHandler ??= (async () => {
    const handlers = new Map<string, RequestHandler>();
    await new RelayService(servingTransport(handlers)).start();
    return handlers.get(RELAY_PROTOCOL)!;
  })();
  return relayHandler;
}

/**
 * A transport stand-in that registers handlers and fails every request and dial: enough for
 * a service's serving side, whose input is what a peer sends.
 */
function servingTransport(handlers: Map<string, RequestHandler>): QuicTransport {
  const events = new EventTarget();
  return {
    config: { turnServers: [], requestTimeoutMs: 1000 },
    peerId: listenerIdentity.peerId,
    peers: () => [],
    handle(protocol: string, h: RequestHandler) {
      handlers.set(protocol, h);
      return () => handlers.delete(protocol);
    },
    request: (peer: PeerId) =>
      Promise.reject(new NetworkError("ERR_UNKNOWN_PEER", `Unknown peer ${peer}`)),
    // Peer scoring (on main after the bans work): the serving side reports bad input here.
    penalize: () => {},
    connectPeer: (address: string) =>
      Promise.reject(new NetworkError("ERR_CONNECT_TIMEOUT", `Cannot connect to ${address}`)),
    addEventListener: events.addEventListener.bind(events),
    removeEventListener: events.removeEventListener.bind(events),
  } as unknown as QuicTransport;
}

/**
 * The DHT's serving side: one node for the whole campaign (its stores and routing table fill
 * up as a real node's would), its clock 100 ms further on each request.
 */
let dhtServer: { handler: RequestHandler; tick: () => void } | undefined;
function dhtServing(): { handler: RequestHandler; tick: () => void } {
  if (dhtServer !== undefined) return dhtServer;
  const handlers = new Map<string, RequestHandler>();
  const transport = servingTransport(handlers);
  let now = NOW;
  const rpc = new QuicDhtRpc(transport, { timeoutMs: 1000 });
  const node = new DhtNode({
    id: listenerIdentity.peerId.toString(),
    addresses: ["127.0.0.1:9001"],
    rpc,
    signer: identityRecordSigner(listenerIdentity),
    verifier: identityRecordVerifier,
    peerIdMatches: identityPeerIdBinding,
    clock: { now: () => now, schedule: () => () => {} },
  });
  rpc.serve(node);
  dhtServer = { handler: handlers.get(DHT_PROTOCOL_ID)!, tick: () => now += 100 };
  return dhtServer;
}

const encodeJson = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** The targets of `src/nat` and `src/discovery`. */
export const serviceTargets: FuzzTarget[] = [
  {
    name: "nat/stun-turn",
    maxInputBytes: 600,
    seeds: stunSeeds,
    run(input) {
      const decoded = decodeStunMessage(input);
      const attrs = rawAttributes(input);
      for (const a of attrs ?? []) {
        check(a.offset + a.length <= input.byteLength, "attribute runs past the datagram");
      }
      if (decoded !== undefined) {
        check(decoded.transactionId.length === 24, "transaction id is not 12 bytes");
        if (decoded.lifetime !== undefined) {
          check(decoded.lifetime >= 0 && decoded.lifetime <= 0xffffffff, "LIFETIME not a u32");
        }
      }
      integrityMatches(input, TURN_AUTH.key);
    },
  },
  {
    name: "nat/channel-data",
    maxInputBytes: 300,
    seeds:
      () => [encodeChannelData(0x4001, new Uint8Array([1, 2, 3])), new Uint8Array([0x40, 0, 0, 0])],
    run(input) {
      if (!isChannelData(input)) return;
      const channel = channelOf(input);
      check(channel >= 0x4000 && channel <= 0x4fff, `channel ${channel}`);
      const payload = channelPayload(input);
      check(4 + payload.byteLength <= input.byteLength, "payload runs past the datagram");
    },
  },
  {
    name: "nat/punch",
    maxInputBytes: 64,
    seeds: () => [encodePunch("punch", new Uint8Array(16).fill(1)), encodePunch("ack", TX)],
    run(input) {
      const p = decodePunch(input);
      if (p !== undefined) check(p.session.byteLength === 16, "session id not 16 bytes");
    },
  },
  {
    name: "nat/rendezvous",
    maxInputBytes: 2048,
    seeds: () =>
      [
        {
          t: "connect" as const,
          target: PEER_B,
          addresses: [{ hostname: "203.0.113.7", port: 40001 }],
          nat: "Cone" as const,
          waitMs: 30_000,
        },
        {
          t: "sync" as const,
          session: "ab".repeat(16),
          peer: PEER_A,
          addresses: [{ hostname: "203.0.113.7", port: 1 }, { hostname: "::1", port: 2 }],
          nat: "Symmetric" as const,
          startIn: 250,
        },
        { t: "synced" as const, addresses: [], nat: "Unknown" as const },
        {
          t: "connected" as const,
          session: "00".repeat(16),
          addresses: [{ hostname: "198.51.100.1", port: 65535 }],
          nat: "Cone" as const,
          startIn: -5,
          handledMs: 12,
        },
        { t: "refused" as const, reason: "no such peer" },
      ].map(encodeRendezvous),
    run(input) {
      const m = decodeRendezvous(input);
      if ("addresses" in m) check(m.addresses.length <= 8, "more than 8 addresses");
      if ("session" in m) check(sessionBytes(m.session).byteLength === 16, "session not 16 bytes");
    },
  },
  {
    name: "nat/relay-offer",
    maxInputBytes: 1100,
    quickInputs: 500,
    seeds: () => [
      encodeJson({ t: "offer", relayed: "198.51.100.9:49160" }),
      encodeJson({ t: "offer", from: PEER_A, relayed: "198.51.100.9:49160" }),
      encodeJson({ t: "forward", to: PEER_B, relayed: "[2001:db8::1]:3478" }),
      encodeJson({ t: "forward", to: PEER_A, relayed: "1.2.3.4:5" }),
    ],
    async run(input) {
      const answer = await (await relaySignalling())(input, {
        peerId: dialerIdentity.peerId,
        protocolId: RELAY_PROTOCOL,
      });
      // Every offer is answered, with a JSON object (a refusal names its error code).
      const o = JSON.parse(new TextDecoder().decode(answer));
      check(typeof o === "object" && o !== null, "answer is not a JSON object");
    },
  },
  {
    name: "discovery/mdns-packet",
    maxInputBytes: 1500,
    seeds: mdnsSeeds,
    run(input) {
      let packet: dnsPacket.DecodedPacket;
      try {
        packet = dnsPacket.decode(Buffer.from(input));
      } catch {
        // The library's own refusal: the mDNS service counts it as malformed and drops it.
        return;
      }
      // What the mDNS service does with a packet that decoded; neither may throw.
      if (packet.type === "query") answerQuery(packet, LOCAL, 120);
      else parseResponse(packet, MDNS_LIMITS);
    },
  },
  {
    name: "discovery/mdns-table",
    maxInputBytes: 4000,
    seeds: mdnsSequenceSeeds,
    run(input) {
      // The packets of an input arrive a second apart; then time runs through every deadline.
      const table = new PeerTable({ ownPeerId: PEER_B.replace(/.$/, "a"), maxPeers: 4 });
      let now = 0;
      for (const bytes of unpack(input)) {
        let packet: dnsPacket.DecodedPacket;
        try {
          packet = dnsPacket.decode(Buffer.from(bytes));
        } catch {
          continue;
        }
        if (packet.type !== "response") continue;
        table.observe(parseResponse(packet, MDNS_LIMITS), now);
        check(table.size <= 4, `${table.size} peers, more than maxPeers`);
        now += 1000;
      }
      for (let i = 0; i < 16; i++) {
        const next = table.nextDeadline();
        if (next === undefined) return;
        check(Number.isFinite(next) && next >= 0, `deadline ${next}`);
        now = Math.max(now, next);
        table.poll(now);
      }
      check(table.nextDeadline() === undefined || table.size <= 4, "the table never emptied");
    },
  },
  {
    name: "dht/request",
    maxInputBytes: 2048,
    seeds: async () => [
      encodeRequest({ type: "ping" }, wireLimits),
      encodeRequest({ type: "find-node", target: contentKey("a") }, wireLimits),
      encodeRequest({ type: "get-peer-record", peerId: PEER_B }, wireLimits),
      encodeRequest({ type: "put-peer-record", record: await signedPeerRecord() }, wireLimits),
      encodeRequest({ type: "get-providers", key: contentKey("b") }, wireLimits),
      encodeRequest({ type: "add-provider", record: provider }, wireLimits),
    ],
    run(input) {
      const request = decodeRequest(input, wireLimits);
      check(REQUEST_TYPES.includes(request.type), `request type ${request.type}`);
    },
  },
  {
    name: "dht/reply",
    maxInputBytes: 2048,
    seeds: async () => [
      encodeReply({ type: "ping" }, wireLimits),
      encodeReply({ type: "find-node", closer: contacts }, wireLimits),
      encodeReply(
        { type: "get-peer-record", record: await signedPeerRecord(), closer: contacts },
        wireLimits,
      ),
      encodeReply({ type: "get-providers", providers: [provider], closer: contacts }, wireLimits),
      encodeErrorReply(2, new NetworkError("ERR_DHT", "no")),
    ],
    run(input) {
      // The reply to each request type, so a reply of another type is also tried.
      for (const expected of REQUEST_TYPES) {
        try {
          const reply = decodeReply(input, expected, wireLimits);
          if ("closer" in reply) {
            check(reply.closer.length <= wireLimits.maxContacts, "too many contacts");
          }
        } catch (e) {
          if (!(e instanceof NetworkError)) throw e;
        }
      }
    },
  },
  {
    name: "dht/served-request",
    maxInputBytes: 12_288,
    quickInputs: 400,
    seeds: async () => [
      encodeRequest({ type: "ping" }, wireLimits),
      encodeRequest({ type: "find-node", target: contentKey("a") }, wireLimits),
      encodeRequest({ type: "get-peer-record", peerId: PEER_A }, wireLimits),
      encodeRequest({ type: "put-peer-record", record: await signedPeerRecord() }, wireLimits),
      encodeRequest({ type: "get-providers", key: contentKey("fuzz") }, wireLimits),
      encodeRequest({ type: "add-provider", record: provider }, wireLimits),
    ],
    async run(input) {
      const { handler, tick } = dhtServing();
      tick();
      const reply = await handler(input, {
        peerId: dialerIdentity.peerId,
        protocolId: DHT_PROTOCOL_ID,
      });
      // Every request is answered: a reply to its type, or an error reply.
      const type = REQUEST_TYPES[input[1] - 1];
      if (type === undefined) return;
      try {
        decodeReply(reply, type, wireLimits);
      } catch (e) {
        check(
          e instanceof NetworkError && "reason" in e && e.reason !== "malformed",
          `the reply does not decode: ${e}`,
        );
      }
    },
  },
  {
    name: "dht/peer-record",
    maxInputBytes: 12_288,
    quickInputs: 200,
    seeds: async () => [await signedPeerRecord()],
    async run(input) {
      decodePeerRecord(input);
      await verifyPeerRecord(input, {
        verifier: identityRecordVerifier,
        peerIdMatches: identityPeerIdBinding,
        now: NOW,
      });
      // Only the signed bytes verify: a mutation that passes is a forgery.
      check(input.join() === (await signedPeerRecord()).join(), "a mutated peer record verified");
    },
  },
  {
    name: "dht/provider-record",
    maxInputBytes: 2048,
    seeds: () => [encodeProviderRecord(provider)],
    run(input) {
      const record = decodeProviderRecord(input);
      validateProviderRecord(record, { now: NOW, senderId: PEER_A });
    },
  },
];
