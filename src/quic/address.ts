/**
 * Parsing and formatting of `HOST:PORT` strings.
 *
 * @module
 */
import { InvalidAddressError } from "../errors.ts";
import type { UdpAddress } from "./datagram_port.ts";

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parses `"1.2.3.4:9001"`, `"[::1]:9001"` or `"localhost:9001"` into an address. Only IP
 * literals and `localhost` are accepted: resolving names is the application's choice.
 *
 * @example
 * ```ts
 * import { parseAddress } from "@cretoai/network";
 *
 * const addr = parseAddress("[::1]:9001");
 * console.assert(addr.hostname === "::1" && addr.port === 9001);
 * ```
 *
 * @param text The address.
 * @returns Hostname and port.
 * @throws {InvalidAddressError} when the text is not a valid address with a port 1-65535.
 */
export function parseAddress(text: string): UdpAddress {
  if (typeof text !== "string") throw new InvalidAddressError(String(text), "expected a string");
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") {
      throw new InvalidAddressError(text, "expected [IPv6]:PORT");
    }
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!host.includes(":")) {
      throw new InvalidAddressError(text, "brackets are only for IPv6 hosts");
    }
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new InvalidAddressError(text, "expected HOST:PORT");
    if (text.indexOf(":") !== colon) {
      throw new InvalidAddressError(text, "an IPv6 host needs brackets: [HOST]:PORT");
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new InvalidAddressError(
      text,
      `port must be an integer from 1 to 65535, got "${portText}"`,
    );
  }
  return { hostname: checkHost(host, text), port: Number(portText) };
}

/**
 * Checks an address object: an IP literal (or `localhost`) and a port 1-65535.
 *
 * @example
 * ```ts
 * import { checkAddress } from "@cretoai/network/quic";
 *
 * const addr = checkAddress({ hostname: "localhost", port: 9001 });
 * console.assert(addr.hostname === "127.0.0.1");
 * ```
 *
 * @param address The address.
 * @returns The address, with `localhost` as `127.0.0.1`.
 * @throws {InvalidAddressError} when hostname or port is invalid.
 */
export function checkAddress(address: UdpAddress): UdpAddress {
  const shown = formatAddress(address);
  const { port } = address;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidAddressError(shown, `port must be an integer from 1 to 65535, got ${port}`);
  }
  return { hostname: checkHost(address.hostname, shown), port };
}

/**
 * Formats an address as `HOST:PORT`, with brackets around IPv6 hosts.
 *
 * @example
 * ```ts
 * import { formatAddress } from "@cretoai/network";
 *
 * console.assert(formatAddress({ hostname: "::1", port: 1 }) === "[::1]:1");
 * ```
 *
 * @param address The address.
 * @returns The text form.
 */
export function formatAddress(address: UdpAddress): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}

function checkHost(host: unknown, shown: string): string {
  if (host === "localhost") return "127.0.0.1";
  if (typeof host === "string" && (IPV4.test(host) || isIpv6(host))) return host;
  throw new InvalidAddressError(shown, `host must be an IP address or "localhost", got "${host}"`);
}

function isIpv6(host: string): boolean {
  if (!/^[0-9a-fA-F:.]+$/.test(host) || !host.includes(":")) return false;
  try {
    new URL(`http://[${host}]/`);
    return true;
  } catch {
    return false;
  }
}
