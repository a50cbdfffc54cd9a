/**
 * UDP address helpers shared by the NAT modules. Private to `src/nat/`. Formatting is the
 * QUIC layer's, re-exported so that NAT modules import their address helpers from one place.
 *
 * @module
 */

import { isIP } from "node:net";
import { InvalidAddressError } from "../errors.ts";
import { formatAddress, parseAddress } from "../quic/address.ts";
import type { UdpAddress } from "../quic/datagram_port.ts";
import type { PeerId } from "../identity/peer_id.ts";
import type { QuicTransport } from "../transport/transport.ts";

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

/**
 * How far an IP address reaches. `unusable`: unspecified, multicast, broadcast or not an IP
 * literal; `loopback`; `private`: RFC 1918, shared (100.64/10) and link-local ranges, IPv6 ULA
 * and link-local; `public`: the rest.
 */
export type AddressScope = "unusable" | "loopback" | "private" | "public";

/** The {@linkcode AddressScope} of an IP literal. */
export function addressScope(host: string): AddressScope {
  const ip = canonicalIp(host);
  const family = isIP(ip);
  if (family === 4) {
    const [a, b] = ip.split(".").map(Number);
    if (a === 0 || a >= 224) return "unusable";
    if (a === 127) return "loopback";
    if (
      a === 10 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b < 128) || (a === 169 && b === 254)
    ) return "private";
    return "public";
  }
  if (family !== 6) return "unusable";
  if (ip === "::") return "unusable";
  if (ip === "::1") return "loopback";
  const first = parseInt(ip.split(":")[0] || "0", 16);
  if (first >= 0xff00) return "unusable";
  if ((first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80) return "private";
  return "public";
}

/**
 * The addresses a peer's word is enough to send to: public ones, and loopback or private ones
 * only in a scope one of the `basis` hosts is in (an address this node observed itself, such
 * as the requester's), so a remote peer cannot aim this node at its local network. At most
 * `maxHosts` distinct hosts are kept, in order.
 *
 * @param addresses Candidate addresses, as a peer sent them.
 * @param basis Hosts this node knows to be reachable: what it observed.
 * @param maxHosts Most distinct IP addresses kept.
 * @returns The addresses kept, in order.
 */
export function withBasis(
  addresses: readonly UdpAddress[],
  basis: readonly string[],
  maxHosts: number,
): UdpAddress[] {
  const scopes = new Set(basis.map(addressScope));
  const hosts: string[] = [];
  return addresses.filter((a) => {
    const scope = addressScope(a.hostname);
    if (scope === "unusable" || (scope !== "public" && !scopes.has(scope))) return false;
    if (hosts.some((h) => sameIp(h, a.hostname))) return true;
    if (hosts.length >= maxHosts) return false;
    hosts.push(a.hostname);
    return true;
  });
}

/** The host a connected peer's datagrams come from as the transport sees it: a basis. */
export function observedHosts(transport: QuicTransport, peer: PeerId): string[] {
  const info = transport.peers().find((p) => p.peerId.equals(peer));
  return info === undefined ? [] : [parseAddress(info.addresses[0]).hostname];
}
