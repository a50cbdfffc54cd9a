/**
 * Address-validation tokens for QUIC stateless retry (RFC 9000 section 8.1.2). The token binds
 * the client's address and its original destination connection id to a time, under a key
 * only this endpoint knows, so the endpoint keeps no state for a source it has not validated.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { UdpAddress } from "./datagram_port.ts";

const MAC_LENGTH = 16;
const MAX_CID_LENGTH = 20;

/** Options of {@linkcode RetryTokens}. */
export interface RetryTokenOptions {
  /**
   * How long a token stays valid, in milliseconds.
   * @default {10000}
   */
  lifetimeMs?: number;
  /**
   * The MAC key, 32 bytes; a random one when absent.
   */
  key?: Uint8Array;
}

/**
 * Mints and checks retry tokens. Pure: the caller passes the current time.
 *
 * @example
 * ```ts
 * import { RetryTokens } from "@cretoai/network/quic";
 *
 * const tokens = new RetryTokens();
 * const client = { hostname: "127.0.0.1", port: 5000 };
 * const odcid = new Uint8Array(8).fill(7);
 * const token = tokens.mint(client, odcid, Date.now());
 * console.assert(tokens.validate(token, client, Date.now())?.length === 8);
 * ```
 */
export class RetryTokens {
  #key: Uint8Array;
  #lifetimeMs: number;

  /**
   * Creates the minter and checker of one key.
   *
   * @param options Key and lifetime.
   */
  constructor(options: RetryTokenOptions = {}) {
    const { lifetimeMs = 10_000, key = crypto.getRandomValues(new Uint8Array(32)) } = options;
    this.#key = key;
    this.#lifetimeMs = lifetimeMs;
  }

  /**
   * Makes a token for a client address and its original destination connection id.
   *
   * @param address The client's address as seen on the datagram.
   * @param odcid The destination connection id of the client's first Initial.
   * @param now Current time in milliseconds.
   * @returns The token: time (8 bytes), odcid length and odcid, then a 16-byte MAC.
   */
  mint(address: UdpAddress, odcid: Uint8Array, now: number): Uint8Array {
    const body = new Uint8Array(9 + odcid.byteLength);
    new DataView(body.buffer).setFloat64(0, now);
    body[8] = odcid.byteLength;
    body.set(odcid, 9);
    const token = new Uint8Array(body.byteLength + MAC_LENGTH);
    token.set(body);
    token.set(this.#mac(body, address), body.byteLength);
    return token;
  }

  /**
   * Checks a token from a client's Initial.
   *
   * @param token The token as received.
   * @param address The address the Initial came from.
   * @param now Current time in milliseconds.
   * @returns The original destination connection id, or `undefined` when the token is
   *   malformed, forged, for another address or expired.
   */
  validate(token: Uint8Array, address: UdpAddress, now: number): Uint8Array | undefined {
    if (token.byteLength < 9 + MAC_LENGTH) return undefined;
    const cidLength = token[8];
    if (cidLength > MAX_CID_LENGTH || token.byteLength !== 9 + cidLength + MAC_LENGTH) {
      return undefined;
    }
    const body = token.subarray(0, 9 + cidLength);
    const expected = this.#mac(body, address);
    const seen = token.subarray(body.byteLength);
    let diff = 0;
    for (let i = 0; i < MAC_LENGTH; i++) diff |= expected[i] ^ seen[i];
    if (diff !== 0) return undefined;
    const mintedAt = new DataView(token.buffer, token.byteOffset).getFloat64(0);
    if (!(now - mintedAt >= 0 && now - mintedAt <= this.#lifetimeMs)) return undefined;
    return token.slice(9, 9 + cidLength);
  }

  #mac(body: Uint8Array, address: UdpAddress): Uint8Array {
    const where = new TextEncoder().encode(`${address.hostname}|${address.port}|`);
    const input = new Uint8Array(where.byteLength + body.byteLength);
    input.set(where);
    input.set(body, where.byteLength);
    return hmac(sha256, this.#key, input).subarray(0, MAC_LENGTH);
  }
}
