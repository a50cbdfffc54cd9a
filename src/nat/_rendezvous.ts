/**
 * Wire messages of the rendezvous protocol (`/cretoai/rendezvous/1`), one JSON object per
 * request or response, checked field by field on decode. Private to `src/nat/`.
 *
 * ```
 * dialer A            rendezvous R                      target B
 *   | connect{target,addresses,nat, |                       |
 *   |  waitMs}                      |                       |
 *   |------------------------------>| sync{session,peer=A,  |
 *   |                               |  addresses=[A as R sees it, A's own],
 *   |                               |  nat,startIn,waitMs}  |
 *   |                               |---------------------->|  B punches at receipt+startIn
 *   |                               |<----------------------|  synced{addresses,nat}
 *   |  connected{session,addresses=[B as R sees it, B's own],nat,startIn,handledMs}
 *   |<------------------------------|                       |
 * A punches at receipt + startIn - one-way delay, then dials the address B was heard from.
 * ```
 *
 * @module
 */

import { NetworkError } from "../errors.ts";
import { checkAddress } from "../quic/address.ts";
import type { UdpAddress } from "../quic/datagram_port.ts";
import type { NatType } from "./nat_classifier.ts";
import { SESSION_ID_BYTES } from "./_punch_session.ts";

/** Dialer to rendezvous: please introduce me to `target`. */
export interface ConnectMessage {
  t: "connect";
  /** The target's peer id. */
  target: string;
  /** The dialer's own view of its public addresses (STUN). */
  addresses: UdpAddress[];
  nat: NatType;
  /**
   * How long the dialer goes on trying, in ms from sending: the target watches for its
   * connection that long (under loss a handshake can outlast the punching by many seconds).
   * Absent from older dialers.
   */
  waitMs?: number;
}

/** Rendezvous to target: `peer` wants to reach you; punch towards it in `startIn` ms. */
export interface SyncMessage {
  t: "sync";
  /** Session id, hex. */
  session: string;
  /** The dialer's peer id. */
  peer: string;
  /** The dialer's addresses: as the rendezvous sees it first, then its own. */
  addresses: UdpAddress[];
  nat: NatType;
  /** Milliseconds after receipt at which to start punching. */
  startIn: number;
  /** The dialer's `waitMs`, less the time the rendezvous took to pass it on. */
  waitMs?: number;
}

/** Target to rendezvous: agreed; these are my own addresses. */
export interface SyncedMessage {
  t: "synced";
  addresses: UdpAddress[];
  nat: NatType;
}

/** Rendezvous to dialer: the target agreed. */
export interface ConnectedMessage {
  t: "connected";
  session: string;
  /** The target's addresses: as the rendezvous sees it first, then its own. */
  addresses: UdpAddress[];
  nat: NatType;
  /** Milliseconds after the rendezvous sent this at which the target starts punching. */
  startIn: number;
  /** Milliseconds the rendezvous spent between the request and this answer. */
  handledMs: number;
}

/** Any side: refused, and why. */
export interface RefusedMessage {
  t: "refused";
  reason: string;
}

/** Every rendezvous message. */
export type RendezvousMessage =
  | ConnectMessage
  | SyncMessage
  | SyncedMessage
  | ConnectedMessage
  | RefusedMessage;

/** Most addresses a message may carry. */
export const MAX_ADDRESSES = 8;
/** Ten minutes bound how long a target can be asked to watch for a dialer. */
export const MAX_WAIT_MS = 600_000;
/**
 * Largest message read, in bytes: above any valid one (512 characters of text escaped as
 * `\u00XX`, eight IPv6 addresses), far below the 16 MiB a request may carry, so nothing
 * larger reaches `JSON.parse`.
 */
export const MAX_RENDEZVOUS_BYTES = 8192;
const NAT_TYPES: readonly NatType[] = ["Cone", "Symmetric", "Unknown"];
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a message. */
export function encodeRendezvous(message: RendezvousMessage): Uint8Array {
  return encoder.encode(JSON.stringify({ v: 1, ...message }));
}

/**
 * Decodes and checks a message.
 *
 * @throws {NetworkError} `ERR_MALFORMED_FRAME` naming the field that is wrong.
 */
export function decodeRendezvous(bytes: Uint8Array): RendezvousMessage {
  if (bytes.byteLength > MAX_RENDEZVOUS_BYTES) {
    throw malformed(`${bytes.byteLength} bytes, above ${MAX_RENDEZVOUS_BYTES}`);
  }
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(decoder.decode(bytes));
  } catch (e) {
    throw malformed(`not UTF-8 JSON (${String(e)})`);
  }
  if (typeof o !== "object" || o === null || o.v !== 1) throw malformed("not a v1 object");
  switch (o.t) {
    case "connect":
      return {
        t: "connect",
        target: text(o, "target"),
        addresses: addresses(o),
        nat: natType(o),
        ...optionalWait(o),
      };
    case "sync":
      return {
        t: "sync",
        session: session(o),
        peer: text(o, "peer"),
        addresses: addresses(o),
        nat: natType(o),
        startIn: millis(o, "startIn"),
        ...optionalWait(o),
      };
    case "synced":
      return { t: "synced", addresses: addresses(o), nat: natType(o) };
    case "connected":
      return {
        t: "connected",
        session: session(o),
        addresses: addresses(o),
        nat: natType(o),
        startIn: millis(o, "startIn"),
        handledMs: millis(o, "handledMs"),
      };
    case "refused":
      return { t: "refused", reason: text(o, "reason") };
    default:
      throw malformed(`unknown type ${JSON.stringify(o.t)}`);
  }
}

/** Parses a hex session id. */
export function sessionBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}

function malformed(what: string): NetworkError {
  return new NetworkError("ERR_MALFORMED_FRAME", `Malformed rendezvous message: ${what}`);
}

function text(o: Record<string, unknown>, field: string): string {
  const v = o[field];
  if (typeof v !== "string" || v.length === 0 || v.length > 512) {
    throw malformed(`'${field}' must be a string of 1-512 characters`);
  }
  return v;
}

function session(o: Record<string, unknown>): string {
  const v = o.session;
  if (typeof v !== "string" || !new RegExp(`^[0-9a-f]{${2 * SESSION_ID_BYTES}}$`).test(v)) {
    throw malformed(`'session' must be ${SESSION_ID_BYTES} bytes of lowercase hex`);
  }
  return v;
}

function natType(o: Record<string, unknown>): NatType {
  if (!NAT_TYPES.includes(o.nat as NatType)) {
    throw malformed(`'nat' must be one of ${NAT_TYPES.join(", ")}`);
  }
  return o.nat as NatType;
}

function millis(o: Record<string, unknown>, field: string): number {
  const v = o[field];
  // A minute bounds how far ahead a peer can be told to schedule punching.
  if (typeof v !== "number" || !Number.isFinite(v) || Math.abs(v) > 60_000) {
    throw malformed(`'${field}' must be a number of milliseconds within +-60000`);
  }
  return v;
}

/** The dialer's `waitMs`, when there is one: a delay of 0-600000 ms. */
function optionalWait(o: Record<string, unknown>): { waitMs?: number } {
  const v = o.waitMs;
  if (v === undefined) return {};
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > MAX_WAIT_MS) {
    throw malformed(`'waitMs' must be a number of milliseconds within 0-${MAX_WAIT_MS}`);
  }
  return { waitMs: v };
}

function addresses(o: Record<string, unknown>): UdpAddress[] {
  const v = o.addresses;
  if (!Array.isArray(v) || v.length > MAX_ADDRESSES) {
    throw malformed(`'addresses' must be a list of at most ${MAX_ADDRESSES}`);
  }
  return v.map((a) => {
    try {
      return checkAddress({ hostname: a?.hostname, port: a?.port });
    } catch (e) {
      throw malformed(`'addresses' holds a bad address: ${(e as Error).message}`);
    }
  });
}
