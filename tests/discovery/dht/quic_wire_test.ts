/**
 * The DHT wire codec: round trips, and refusal of unknown, malformed and oversized messages
 * with typed errors; contact keys are derived locally.
 *
 * @module
 */

import { assertEquals, assertThrows } from "../../_assert.ts";
import { Identity } from "../../../src/identity/mod.ts";
import {
  contentKey,
  DhtProtocolError,
  makeContact,
  peerIdToKey,
} from "../../../src/discovery/dht/mod.ts";
import {
  decodeReply,
  decodeRequest,
  encodeErrorReply,
  encodeReply,
  encodeRequest,
  resolveWireLimits,
} from "../../../src/discovery/dht/_wire.ts";
import { DhtRecordError } from "../../../src/discovery/dht/record_error.ts";

const limits = resolveWireLimits();
const ids = [0, 1, 2].map(() => Identity.generate().peerId.toString());

Deno.test("dht wire: every request and reply round-trips", () => {
  const key = contentKey("x");
  const provider = { key, providerId: ids[0], addresses: ["127.0.0.1:1"], expiresAt: 5000 };
  for (
    const request of [
      { type: "ping" },
      { type: "find-node", target: key },
      { type: "get-peer-record", peerId: ids[1] },
      { type: "put-peer-record", record: new Uint8Array([1, 2, 3]) },
      { type: "get-providers", key },
      { type: "add-provider", record: provider },
    ] as const
  ) {
    assertEquals(decodeRequest(encodeRequest(request, limits), limits), request);
  }
  const closer = [makeContact(ids[1], ["127.0.0.1:2", "[::1]:3"]), makeContact(ids[2])];
  const reply = { type: "get-peer-record", record: new Uint8Array([9]), closer } as const;
  assertEquals(decodeReply(encodeReply(reply, limits), "get-peer-record", limits), reply);
  const providers = { type: "get-providers", providers: [provider], closer } as const;
  assertEquals(decodeReply(encodeReply(providers, limits), "get-providers", limits), providers);
});

Deno.test("dht wire: contact keys are derived from the id, not read from the wire", () => {
  const forged = { id: ids[1], key: new Uint8Array(32), addresses: [] };
  const bytes = encodeReply({ type: "find-node", closer: [forged] }, limits);
  const decoded = decodeReply(bytes, "find-node", limits);
  assertEquals(decoded.type === "find-node" && decoded.closer[0].key, peerIdToKey(ids[1]));
});

Deno.test("dht wire: unknown, malformed and oversized messages are refused with typed errors", () => {
  const reason = (fn: () => unknown) => assertThrows(fn, DhtProtocolError).reason;
  assertEquals(reason(() => decodeRequest(new Uint8Array([2, 1]), limits)), "unsupported-version");
  assertEquals(reason(() => decodeRequest(new Uint8Array([1, 99]), limits)), "unknown-type");
  assertEquals(reason(() => decodeRequest(new Uint8Array([1, 2, 0]), limits)), "malformed");
  assertEquals(reason(() => decodeRequest(new Uint8Array([1, 1, 0]), limits)), "malformed");
  assertEquals(reason(() => decodeRequest(new Uint8Array(20_000), limits)), "too-large");
  const notAPeerId = encodeRequest({ type: "get-peer-record", peerId: "not a peer id" }, limits);
  assertEquals(reason(() => decodeRequest(notAPeerId, limits)), "malformed");
  const bigRecord = new Uint8Array([1, 4, 0xff, 0xff]);
  assertEquals(reason(() => decodeRequest(bigRecord, limits)), "too-large");
  // 65 contacts where 64 are allowed; a reply to another request type.
  assertEquals(
    reason(() => decodeReply(new Uint8Array([1, 2, 0, 65]), "find-node", limits)),
    "too-large",
  );
  const ping = encodeReply({ type: "ping" }, limits);
  assertEquals(reason(() => decodeReply(ping, "find-node", limits)), "malformed");
  assertEquals(reason(() => decodeReply(new Uint8Array([1, 1, 7]), "ping", limits)), "malformed");
});

Deno.test("dht wire: an error reply carries the remote reason", () => {
  const bytes = encodeErrorReply(4, new DhtRecordError("bad-signature", "does not verify"));
  const e = assertThrows(() => decodeReply(bytes, "put-peer-record", limits), DhtProtocolError);
  assertEquals([e.reason, e.remoteReason], ["refused", "bad-signature"]);
});
