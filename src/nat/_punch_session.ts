/**
 * One hole-punch attempt on the wire: sends the punch packets of a {@link HolePunchPlan} from
 * the node's socket at their times, answers the peer's punches with an acknowledgement, and
 * reports the first address a packet of the peer arrived from. Private to `src/nat/`; the
 * clock and the port are injected, so tests run it on virtual time.
 *
 * Packet (22 bytes): `0x0e`, magic `"crph"`, kind (1 punch, 2 ack), 16-byte session id. The
 * first byte is below 0x40, so the receiving QUIC endpoint hands it to raw handlers, and
 * outside the STUN (0-3) and TURN ChannelData (0x40-0x4f) ranges of RFC 7983.
 *
 * @module
 */

import { toHex } from "../_bytes.ts";
import type { Clock } from "../clock.ts";
import type { RawDatagramPort, UdpAddress } from "../quic/datagram_port.ts";
import type { HolePunchPlan } from "./hole_punch.ts";

const FIRST_BYTE = 0x0e;
const MAGIC = [0x63, 0x72, 0x70, 0x68]; // "crph"
/** Length of a session id in bytes. */
export const SESSION_ID_BYTES = 16;
const PACKET_BYTES = 1 + MAGIC.length + 1 + SESSION_ID_BYTES;

/** Kind of a punch packet. */
export type PunchKind = "punch" | "ack";

/** Encodes a punch packet. */
export function encodePunch(kind: PunchKind, session: Uint8Array): Uint8Array {
  const out = new Uint8Array(PACKET_BYTES);
  out[0] = FIRST_BYTE;
  out.set(MAGIC, 1);
  out[5] = kind === "punch" ? 1 : 2;
  out.set(session, 6);
  return out;
}

/** Decodes a punch packet; `undefined` for anything else. */
export function decodePunch(
  data: Uint8Array,
): { kind: PunchKind; session: Uint8Array } | undefined {
  if (data.byteLength !== PACKET_BYTES || data[0] !== FIRST_BYTE) return undefined;
  for (let i = 0; i < MAGIC.length; i++) if (data[1 + i] !== MAGIC[i]) return undefined;
  if (data[5] !== 1 && data[5] !== 2) return undefined;
  return { kind: data[5] === 1 ? "punch" : "ack", session: data.subarray(6) };
}

/** Hex form of a session id, the key sessions are found by. */
export function sessionKey(session: Uint8Array): string {
  return toHex(session);
}

/** What a punch session did, for reports and errors. */
export interface PunchCounters {
  /** Punch packets sent. */
  punchesSent: number;
  /** Acknowledgements sent. */
  acksSent: number;
  /** Punches and acknowledgements received from the peer. */
  received: number;
  /** Sends the socket refused. */
  sendErrors: number;
}

/**
 * Runs one plan. `punched` resolves with the first address a packet of the session came from,
 * or `undefined` when the plan ran out (or the session was stopped) without one.
 */
export class PunchSession {
  /** The session id shared by both peers. */
  readonly session: Uint8Array;
  /** Resolves with the first address the peer was heard from, `undefined` if never. */
  readonly punched: Promise<UdpAddress | undefined>;
  /** Resolves when the session stopped: the plan ran out or {@link PunchSession.stop}. */
  readonly done: Promise<void>;
  /** Counters so far. */
  readonly counters: PunchCounters = { punchesSent: 0, acksSent: 0, received: 0, sendErrors: 0 };
  readonly #port: RawDatagramPort;
  readonly #clock: Clock;
  readonly #plan: HolePunchPlan;
  readonly #punch: Uint8Array;
  readonly #ack: Uint8Array;
  #next = 0;
  #cancelTimer: () => void = () => {};
  #resolve: (a: UdpAddress | undefined) => void = () => {};
  #resolveDone: () => void = () => {};
  #heardFrom: UdpAddress | undefined;
  #stopped = false;

  /**
   * Starts the plan at once (sends whose time has come go out now, the rest on timers).
   *
   * @param port The node's raw datagram port.
   * @param clock The clock the plan's times are on.
   * @param plan What to send when.
   * @param session The session id both peers got from the rendezvous.
   */
  constructor(port: RawDatagramPort, clock: Clock, plan: HolePunchPlan, session: Uint8Array) {
    this.#port = port;
    this.#clock = clock;
    this.#plan = plan;
    this.session = session;
    this.#punch = encodePunch("punch", session);
    this.#ack = encodePunch("ack", session);
    this.punched = new Promise((resolve) => this.#resolve = resolve);
    this.done = new Promise((resolve) => this.#resolveDone = resolve);
    this.#run();
  }

  /** The first address the peer was heard from, if any. */
  get heardFrom(): UdpAddress | undefined {
    return this.#heardFrom;
  }

  /**
   * Feeds a decoded packet of this session: remembers where the peer was heard from and
   * acknowledges a punch (acknowledgements are not answered, so there is no ping-pong).
   *
   * @param kind Punch or acknowledgement.
   * @param from Its source address.
   */
  receive(kind: PunchKind, from: UdpAddress): void {
    this.counters.received++;
    if (this.#heardFrom === undefined) {
      this.#heardFrom = { hostname: from.hostname, port: from.port };
      this.#resolve(this.#heardFrom);
    }
    if (kind === "punch" && !this.#stopped) this.#send(this.#ack, from, "acksSent");
  }

  /** Stops sending; `punched` resolves with `undefined` if the peer was never heard. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#cancelTimer();
    this.#resolve(undefined);
    this.#resolveDone();
  }

  #run(): void {
    if (this.#stopped) return;
    const sends = this.#plan.sends;
    const now = this.#clock.now();
    // Bounded by the plan's length: every iteration consumes one planned send.
    while (this.#next < sends.length && sends[this.#next].at <= now) {
      this.#send(this.#punch, sends[this.#next++].to, "punchesSent");
    }
    const wakeAt = this.#next < sends.length ? sends[this.#next].at : this.#plan.until;
    if (this.#next >= sends.length && now >= this.#plan.until) {
      this.stop();
      return;
    }
    this.#cancelTimer = this.#clock.schedule(() => this.#run(), wakeAt - now);
  }

  #send(data: Uint8Array, to: UdpAddress, counter: "punchesSent" | "acksSent"): void {
    this.counters[counter]++;
    this.#port.sendRaw(data, to).catch(() => this.counters.sendErrors++);
  }
}
