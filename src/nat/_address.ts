/**
 * UDP address helpers shared by the NAT modules. Private to `src/nat/`.
 *
 * @module
 */

import { isIP } from "node:net";
import type { UdpAddress } from "../quic/datagram_port.ts";

/** Whether `host` is an IPv4 or IPv6 literal (no zone, no brackets). */
export function isIpLiteral(host: string): boolean {
  return isIP(host) !== 0;
}

/** `ip:port`, IPv6 in brackets. */
export function formatAddress(a: UdpAddress): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
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
