/**
 * The binary encoding of DHT requests and replies on the wire (version 1).
 *
 * Request: `version u8 | type u8 | body`. Reply: `version u8 | type u8 | status u8 | body`,
 * where status 0 carries the answer and status 1 an error (`reason string16 | message
 * string16`). Bodies:
 *
 * | type | request                   | reply                                          |
 * | ---- | ------------------------- | ---------------------------------------------- |
 * | 1    | PING: empty               | empty                                          |
 * | 2    | FIND_NODE: key[32]        | contacts                                       |
 * | 3    | GET_PEER_RECORD: id str16 | has u8, [record vec16], contacts               |
 * | 4    | PUT_PEER_RECORD: vec16    | empty                                          |
 * | 5    | GET_PROVIDERS: key[32]    | count u8, count x provider record vec16, contacts |
 * | 6    | ADD_PROVIDER: vec16       | empty                                          |
 *
 * Contacts are `count u8 | (id str16 | addressCount u8 | address str16 ...) ...`. A contact
 * carries no key: the receiver derives it from the id, so that nobody picks their own place
 * in the key space. Every count and length is bounded before anything is allocated.
 *
 * @module
 */

import { ByteReader, ByteWriter } from "../../_bytes.ts";
import { PeerId } from "../../identity/peer_id.ts";
import { NetworkError } from "../../errors.ts";
import { type DhtContact, makeContact } from "./contact.ts";
import { type DhtKey, KEY_BYTES } from "./key.ts";
import { DhtRecordError } from "./record_error.ts";
import { decodeProviderRecord, encodeProviderRecord, type ProviderRecord } from "./records.ts";
import { DhtProtocolError } from "./wire_error.ts";
import { resolveRecordLimits } from "./_record_limits.ts";
import type { DhtWireLimits } from "./quic_rpc.ts";

/** The wire protocol version this code speaks. */
export const WIRE_VERSION = 1;

const TYPE_CODES = {
  "ping": 1,
  "find-node": 2,
  "get-peer-record": 3,
  "put-peer-record": 4,
  "get-providers": 5,
  "add-provider": 6,
} as const;

/** A request's name. */
export type DhtRequestType = keyof typeof TYPE_CODES;

const TYPE_NAMES = new Map<number, DhtRequestType>(
  Object.entries(TYPE_CODES).map(([name, code]) => [code, name as DhtRequestType]),
);

/** A decoded request. */
export type DhtRequest =
  | { readonly type: "ping" }
  | { readonly type: "find-node"; readonly target: DhtKey }
  | { readonly type: "get-peer-record"; readonly peerId: string }
  | { readonly type: "put-peer-record"; readonly record: Uint8Array }
  | { readonly type: "get-providers"; readonly key: DhtKey }
  | { readonly type: "add-provider"; readonly record: ProviderRecord };

/** A decoded successful reply. */
export type DhtReply =
  | { readonly type: "ping" | "put-peer-record" | "add-provider" }
  | { readonly type: "find-node"; readonly closer: readonly DhtContact[] }
  | {
    readonly type: "get-peer-record";
    readonly record?: Uint8Array;
    readonly closer: readonly DhtContact[];
  }
  | {
    readonly type: "get-providers";
    readonly providers: readonly ProviderRecord[];
    readonly closer: readonly DhtContact[];
  };

/** Wire limits with every default applied. */
export type ResolvedWireLimits = Readonly<Required<DhtWireLimits>>;

/** Applies the defaults of `DhtWireLimits` (and of the record limits). */
export function resolveWireLimits(limits: DhtWireLimits = {}): ResolvedWireLimits {
  const { maxContacts = 64, maxProviders = 64, maxReplyBytes = 512 * 1024 } = limits;
  const { maxRecordBytes, maxAddresses, maxAddressBytes, maxPeerIdBytes, maxTtlMs } =
    resolveRecordLimits(limits);
  return Object.freeze({
    maxRecordBytes,
    maxAddresses: Math.min(maxAddresses, 255),
    maxAddressBytes,
    maxPeerIdBytes,
    maxTtlMs,
    maxContacts: Math.min(maxContacts, 255),
    maxProviders: Math.min(maxProviders, 255),
    maxReplyBytes,
  });
}

/** The largest request: a PUT_PEER_RECORD of the largest record. */
export function maxRequestBytes(limits: ResolvedWireLimits): number {
  return 2 + 2 + limits.maxRecordBytes;
}

const wireError = (message: string, kind: "malformed" | "too-large") =>
  new DhtProtocolError(kind, message);

/** Encodes a request. */
export function encodeRequest(request: DhtRequest, limits: ResolvedWireLimits): Uint8Array {
  const w = new ByteWriter().u8(WIRE_VERSION).u8(TYPE_CODES[request.type]);
  switch (request.type) {
    case "ping":
      break;
    case "find-node":
      w.bytes(request.target);
      break;
    case "get-peer-record":
      w.string16(request.peerId);
      break;
    case "put-peer-record":
      w.vec16(request.record);
      break;
    case "get-providers":
      w.bytes(request.key);
      break;
    case "add-provider":
      w.vec16(encodeProviderRecord(request.record, limits));
      break;
  }
  return checkSize(w.finish(), "request", maxRequestBytes(limits));
}

/**
 * Decodes a request.
 *
 * @throws {DhtProtocolError} `unsupported-version`, `unknown-type`, `too-large` or
 *   `malformed`.
 */
export function decodeRequest(bytes: Uint8Array, limits: ResolvedWireLimits): DhtRequest {
  checkSize(bytes, "request", maxRequestBytes(limits));
  const r = new ByteReader(bytes, "DHT request", wireError);
  const type = header(r, "request");
  let request: DhtRequest;
  switch (type) {
    case "ping":
      request = { type };
      break;
    case "find-node":
      request = { type, target: r.bytes(KEY_BYTES, "target") };
      break;
    case "get-peer-record":
      request = { type, peerId: readPeerId(r, limits) };
      break;
    case "put-peer-record":
      request = { type, record: r.vec16("record", limits.maxRecordBytes) };
      break;
    case "get-providers":
      request = { type, key: r.bytes(KEY_BYTES, "key") };
      break;
    case "add-provider":
      request = { type, record: readProvider(r, limits) };
      break;
  }
  r.end();
  return request;
}

/** Encodes a successful reply. */
export function encodeReply(reply: DhtReply, limits: ResolvedWireLimits): Uint8Array {
  const w = new ByteWriter().u8(WIRE_VERSION).u8(TYPE_CODES[reply.type]).u8(0);
  switch (reply.type) {
    case "ping":
    case "put-peer-record":
    case "add-provider":
      break;
    case "find-node":
      writeContacts(w, reply.closer, limits);
      break;
    case "get-peer-record":
      if (reply.record === undefined) w.u8(0);
      else w.u8(1).vec16(reply.record);
      writeContacts(w, reply.closer, limits);
      break;
    case "get-providers": {
      const providers = reply.providers.slice(0, limits.maxProviders);
      w.u8(providers.length);
      for (const p of providers) w.vec16(encodeProviderRecord(p, limits));
      writeContacts(w, reply.closer, limits);
      break;
    }
  }
  return checkSize(w.finish(), "reply", limits.maxReplyBytes);
}

/**
 * Encodes the error reply to a request that failed: the reason a caller can act on (a
 * record error's reason, a protocol error's reason, or an error code) and a short message.
 */
export function encodeErrorReply(typeCode: number, error: unknown): Uint8Array {
  const reason = error instanceof DhtRecordError || error instanceof DhtProtocolError
    ? error.reason
    : error instanceof NetworkError
    ? error.code
    : "internal";
  const message = error instanceof Error ? error.message.slice(0, 300) : "";
  return new ByteWriter().u8(WIRE_VERSION).u8(typeCode & 0xff).u8(1).string16(reason)
    .string16(message).finish();
}

/**
 * Decodes the reply to a request of `expected` type.
 *
 * @throws {DhtProtocolError} `refused` for an error reply; `unsupported-version`,
 *   `unknown-type`, `too-large` or `malformed` for a reply that cannot be read, or one that
 *   answers another request type.
 */
export function decodeReply(
  bytes: Uint8Array,
  expected: DhtRequestType,
  limits: ResolvedWireLimits,
): DhtReply {
  checkSize(bytes, "reply", limits.maxReplyBytes);
  const r = new ByteReader(bytes, `DHT ${expected} reply`, wireError);
  const type = header(r, "reply");
  if (type !== expected) r.fail(`answers a ${type} request, not ${expected}`);
  const status = r.u8("status");
  if (status === 1) {
    const reason = r.string16("reason", 64);
    const message = r.string16("message", 1024);
    throw new DhtProtocolError(
      "refused",
      `The peer refused the ${expected} request (${reason}): ${message}`,
      reason,
    );
  }
  if (status !== 0) r.fail(`unknown status ${status}`);
  let reply: DhtReply;
  switch (type) {
    case "ping":
    case "put-peer-record":
    case "add-provider":
      reply = { type };
      break;
    case "find-node":
      reply = { type, closer: readContacts(r, limits) };
      break;
    case "get-peer-record": {
      const has = r.u8("hasRecord");
      if (has > 1) r.fail(`'hasRecord' must be 0 or 1: current value is ${has}`);
      const record = has === 1 ? r.vec16("record", limits.maxRecordBytes) : undefined;
      const closer = readContacts(r, limits);
      reply = record === undefined ? { type, closer } : { type, record, closer };
      break;
    }
    case "get-providers": {
      const count = r.u8("providerCount");
      if (count > limits.maxProviders) {
        throw new DhtProtocolError(
          "too-large",
          `Refused DHT reply: at most ${limits.maxProviders} providers allowed: current count is ${count}`,
        );
      }
      const providers: ProviderRecord[] = [];
      for (let i = 0; i < count; i++) providers.push(readProvider(r, limits));
      reply = { type, providers, closer: readContacts(r, limits) };
      break;
    }
  }
  r.end();
  return reply;
}

function header(r: ByteReader, what: string): DhtRequestType {
  const version = r.u8("version");
  if (version !== WIRE_VERSION) {
    throw new DhtProtocolError(
      "unsupported-version",
      `Refused DHT ${what}: version ${version} is not supported, this node speaks ${WIRE_VERSION}`,
    );
  }
  const code = r.u8("type");
  const type = TYPE_NAMES.get(code);
  if (type === undefined) {
    throw new DhtProtocolError("unknown-type", `Refused DHT ${what}: unknown type ${code}`);
  }
  return type;
}

function checkSize(bytes: Uint8Array, what: string, max: number): Uint8Array {
  if (bytes.byteLength > max) {
    throw new DhtProtocolError(
      "too-large",
      `Refused DHT ${what}: must be at most ${max} bytes: current size is ${bytes.byteLength}`,
    );
  }
  return bytes;
}

function readPeerId(r: ByteReader, limits: ResolvedWireLimits): string {
  const id = r.string16("peerId", limits.maxPeerIdBytes);
  try {
    PeerId.parse(id);
  } catch {
    r.fail(`${JSON.stringify(id.slice(0, 80))} is not a peer id`);
  }
  return id;
}

function readProvider(r: ByteReader, limits: ResolvedWireLimits): ProviderRecord {
  const bytes = r.vec16("providerRecord", limits.maxRecordBytes);
  try {
    return decodeProviderRecord(bytes, limits);
  } catch (e) {
    return r.fail(`bad provider record: ${(e as Error).message}`);
  }
}

function writeContacts(
  w: ByteWriter,
  contacts: readonly DhtContact[],
  limits: ResolvedWireLimits,
): void {
  const sent = contacts.slice(0, limits.maxContacts);
  w.u8(sent.length);
  for (const c of sent) {
    const addresses = c.addresses.slice(0, limits.maxAddresses);
    w.string16(c.id).u8(addresses.length);
    for (const a of addresses) w.string16(a);
  }
}

function readContacts(r: ByteReader, limits: ResolvedWireLimits): DhtContact[] {
  const count = r.u8("contactCount");
  if (count > limits.maxContacts) {
    throw new DhtProtocolError(
      "too-large",
      `Refused DHT reply: at most ${limits.maxContacts} contacts allowed: current count is ${count}`,
    );
  }
  const out: DhtContact[] = [];
  for (let i = 0; i < count; i++) {
    const id = readPeerId(r, limits);
    const n = r.u8("addressCount");
    if (n > limits.maxAddresses) {
      throw new DhtProtocolError(
        "too-large",
        `Refused DHT reply: at most ${limits.maxAddresses} addresses per contact: current count is ${n}`,
      );
    }
    const addresses: string[] = [];
    for (let j = 0; j < n; j++) addresses.push(r.string16("address", limits.maxAddressBytes));
    // The key is derived here from the id, never read from the wire.
    out.push(makeContact(id, addresses));
  }
  return out;
}
