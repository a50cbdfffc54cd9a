/**
 * UDP address helpers shared by the NAT modules. Private to `src/nat/`. Formatting is the
 * QUIC layer's, re-exported so that NAT modules import their address helpers from one place.
 *
 * @module
 */

import { isIP } from "node:net";
import { InvalidAddressError } from "../errors.ts";
import { formatAddress } from "../quic/address.ts";
import type { UdpAddress } from "../quic/datagram_port.ts";

export { formatAddress };

/** Whether `host` is an IPv4 or IPv6 literal (no zone, no brackets). */
export function isIpLiteral(host: string): boolean {
  return isIP(host) !== 0;
}

/**
 * Throws `InvalidAddressError` unless a server address is an IP literal with a port 1-65535:
 * servers are given by address, name resolution is the application's choice.
 *
 * @param server The address to check.
 * @param kind The kind of server, for the message (`"STUN"`, `"TURN"`).
 */
export function requireServerAddress(server: UdpAddress, kind: string): void {
  if (!isIpLiteral(server?.hostname)) {
    throw new InvalidAddressError(
      String(server?.hostname),
      `a ${kind} server must be an IP literal`,
    );
  }
  if (!(Number.isInteger(server.port) && server.port > 0 && server.port < 65536)) {
    throw new InvalidAddressError(formatAddress(server), "port must be an integer 1-65535");
  }
}

/** Whether two addresses have the same IP (compared as written, lowercase) and port. */
export function sameAddress(a: UdpAddress, b: UdpAddress): boolean {
  return a.port === b.port && sameIp(a.hostname, b.hostname);
}

/** Whether two IP literals are equal; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) equals `a.b.c.d`. */
export function sameIp(a: string, b: string): boolean {
  return canonicalIp(a) === canonicalIp(b);
}

function canonicalIp(ip: string): string {
  const lower = ip.toLowerCase();
  return lower.startsWith("::ffff:") && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}
