/**
 * Counts what each source (a peer, and the network prefix of its address) holds in a DHT
 * record store, so that one peer, or one host behind many identities, cannot fill it.
 *
 * @module
 */

import { NetworkError } from "../../errors.ts";
import { parseAddress } from "../../quic/address.ts";
import { addressPrefix, isLoopback } from "../../_address_prefix.ts";

/** Who sent a record: the authenticated peer and the address its connection comes from. */
export interface RecordSource {
  /** The sender's peer id. */
  peer: string;
  /** The sender's `HOST:PORT`, when known. */
  address?: string;
}

/** Per-source counters with a limit per peer and per address prefix. */
export class SourceQuota {
  readonly #perPeer: number;
  readonly #perPrefix: number;
  readonly #byPeer = new Map<string, number>();
  readonly #byPrefix = new Map<string, number>();

  constructor(perPeer: number, perPrefix: number) {
    this.#perPeer = perPeer;
    this.#perPrefix = perPrefix;
  }

  /**
   * Counts one more record of `source`.
   *
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` naming the peer or the prefix at its limit.
   */
  take(source: RecordSource, what: string): void {
    const prefix = prefixOf(source);
    if ((this.#byPeer.get(source.peer) ?? 0) >= this.#perPeer) {
      throw new NetworkError(
        "ERR_LIMIT_EXCEEDED",
        `Cannot store ${what}: peer ${source.peer} already stored ${this.#perPeer} records here`,
      );
    }
    if (prefix !== undefined && (this.#byPrefix.get(prefix) ?? 0) >= this.#perPrefix) {
      throw new NetworkError(
        "ERR_LIMIT_EXCEEDED",
        `Cannot store ${what}: peers in ${prefix} already stored ${this.#perPrefix} records here`,
      );
    }
    increment(this.#byPeer, source.peer, 1);
    if (prefix !== undefined) increment(this.#byPrefix, prefix, 1);
  }

  /** Uncounts a record of `source` that was dropped or replaced. */
  release(source: RecordSource): void {
    increment(this.#byPeer, source.peer, -1);
    const prefix = prefixOf(source);
    if (prefix !== undefined) increment(this.#byPrefix, prefix, -1);
  }
}

/** The prefix a source counts under; none for loopback (this machine) or an unknown address. */
function prefixOf(source: RecordSource): string | undefined {
  if (source.address === undefined) return undefined;
  let hostname: string;
  try {
    hostname = parseAddress(source.address).hostname;
  } catch {
    return undefined;
  }
  return isLoopback(hostname) ? undefined : addressPrefix(hostname);
}

function increment(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
