/**
 * Test doubles for the NAT tests: an in-memory raw datagram port, and STUN
 * response builders (on npm `stun`, independent of the code under test).
 *
 * @module
 */

import stun from "stun";
import { Buffer } from "node:buffer";
import type {
  RawDatagramHandler,
  RawDatagramPort,
  UdpAddress,
} from "../../src/quic/datagram_port.ts";

// npm `stun`'s `constants` object is filled at run time, so TypeScript sees it empty: numbers
// from RFC 8489 / RFC 5780 instead (Binding success 0x0101, error 0x0111; CHANGE-REQUEST
// 0x0003, RESPONSE-ORIGIN 0x802b, OTHER-ADDRESS 0x802c).

/** One datagram a {@link FakePort} sent. */
export interface Sent {
  at: number;
  data: Uint8Array;
  to: UdpAddress;
}

/** A raw datagram port in memory: records sends, delivers what the test injects. */
export class FakePort implements RawDatagramPort {
  readonly localAddr: UdpAddress = { hostname: "10.1.0.2", port: 40000 };
  readonly sent: Sent[] = [];
  readonly #handlers: RawDatagramHandler[] = [];
  /** Called on every send, after it was recorded; may inject responses. */
  onSend: (s: Sent) => void = () => {};
  /** When set, sends reject with it. */
  failSends: Error | undefined;

  constructor(readonly clock: { now(): number } = { now: () => performance.now() }) {}

  sendRaw(data: Uint8Array, to: UdpAddress): Promise<void> {
    if (this.failSends) return Promise.reject(this.failSends);
    const s = { at: this.clock.now(), data: data.slice(), to };
    this.sent.push(s);
    this.onSend(s);
    return Promise.resolve();
  }

  addRawHandler(handler: RawDatagramHandler): () => void {
    this.#handlers.push(handler);
    return () => {
      const i = this.#handlers.indexOf(handler);
      if (i >= 0) this.#handlers.splice(i, 1);
    };
  }

  get handlers(): number {
    return this.#handlers.length;
  }

  /** Delivers a datagram; returns whether a handler consumed it. */
  deliver(data: Uint8Array, from: UdpAddress): boolean {
    return [...this.#handlers].some((h) => h(data, from));
  }
}

/** The transaction id of an encoded request. */
export function txOf(request: Uint8Array): Uint8Array {
  return request.slice(8, 20);
}

/** CHANGE-REQUEST flags of an encoded request (0 when absent). */
export function changeFlagsOf(request: Uint8Array): number {
  const msg = stun.decode(Buffer.from(request));
  return msg.getAttribute(0x0003)?.value ?? 0;
}

/** Options of {@link bindingSuccess}. */
export interface SuccessFields {
  mapped: UdpAddress;
  other?: UdpAddress;
  origin?: UdpAddress;
  fingerprint?: boolean;
}

/** A Binding success response for `tx`, encoded by npm `stun`. */
export function bindingSuccess(tx: Uint8Array, f: SuccessFields): Uint8Array {
  const m = stun.createMessage(0x0101, Buffer.from(tx));
  m.addXorAddress(f.mapped.hostname, f.mapped.port);
  if (f.origin) {
    m.addAttribute(0x802b, f.origin.hostname, f.origin.port);
  }
  if (f.other) {
    m.addAttribute(0x802c, f.other.hostname, f.other.port);
  }
  if (f.fingerprint !== false) m.addFingerprint();
  return new Uint8Array(stun.encode(m));
}

/** A Binding error response for `tx` with ERROR-CODE `code`. */
export function bindingError(tx: Uint8Array, code: number, reason: string): Uint8Array {
  const m = stun.createMessage(0x0111, Buffer.from(tx));
  m.addError(code, reason);
  return new Uint8Array(stun.encode(m));
}
