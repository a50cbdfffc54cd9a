/**
 * The counters of an mDNS discovery before anything happened, shared by `MdnsDiscovery` (its
 * start) and `MdnsService` (its stats while no discovery runs). Private to `src/discovery/`.
 *
 * @module
 */

import type { MdnsStats } from "./mdns.ts";

/**
 * Returns new counters, all at zero.
 *
 * @returns A fresh object (the caller may count in it).
 */
export function zeroMdnsStats(): MdnsStats {
  return {
    received: 0,
    sent: 0,
    answered: 0,
    dropped: 0,
    droppedBy: { malformed: 0, oversized: 0, invalid: 0, overflow: 0 },
    ownIgnored: 0,
    incomplete: 0,
    peers: 0,
  };
}
