/**
 * The `turn:USER:PASSWORD@HOST:PORT` form of a TURN server with its credentials, as the example
 * node's `--turn` flag takes it, parsed into the transport config's `TurnServerConfig`.
 *
 * @module
 */

import { InvalidConfigError } from "../errors.ts";
import { formatAddress, parseAddress } from "../quic/address.ts";
import type { TurnServerConfig } from "../transport/config.ts";

/** The default TURN port (RFC 8656 section 18), used when the URL names none. */
const DEFAULT_TURN_PORT = 3478;

/**
 * Parses `turn:USER:PASSWORD@HOST:PORT` into a TURN server config. The user name ends at the
 * first `:`, the password at the last `@`; both may be percent-encoded (`%3A` for a `:` in the
 * user name). HOST is an IP literal (IPv6 in brackets) or `localhost`; PORT defaults to 3478.
 * Only UDP is supported: `turns:` and a `?transport=` other than `udp` are refused.
 *
 * @example
 * ```ts
 * import { parseTurnUrl } from "@cretoai/network";
 *
 * const server = parseTurnUrl("turn:test:secret@10.200.0.1:3478");
 * console.assert(server.address === "10.200.0.1:3478");
 * console.assert(server.username === "test" && server.password === "secret");
 * ```
 *
 * @param url The URL.
 * @returns The server's `HOST:PORT` and the credentials.
 * @throws {InvalidConfigError} `ERR_INVALID_CONFIG` (field `turn`) naming the rule broken; the
 * value shown has its password masked.
 */
export function parseTurnUrl(url: string): TurnServerConfig {
  if (typeof url !== "string") throw new InvalidConfigError("turn", "a string", url);
  const fail = (rule: string): never => {
    throw new InvalidConfigError("turn", rule, maskPassword(url));
  };
  const scheme = /^turns?:/i.exec(url)?.[0].toLowerCase();
  if (scheme === undefined) fail("a URL of the form turn:USER:PASSWORD@HOST:PORT");
  if (scheme === "turns:") fail("a turn: URL (turns:, TURN over TLS, is not supported)");
  let rest = url.slice(scheme!.length);
  const query = rest.indexOf("?");
  if (query >= 0) {
    const params = new URLSearchParams(rest.slice(query + 1));
    const transport = params.get("transport");
    if (transport !== null && transport.toLowerCase() !== "udp") {
      fail(`a turn: URL with transport=udp (got transport=${transport})`);
    }
    rest = rest.slice(0, query);
  }
  const at = rest.lastIndexOf("@");
  if (at < 0) fail("a URL with credentials, turn:USER:PASSWORD@HOST:PORT (no '@' found)");
  const userInfo = rest.slice(0, at);
  const colon = userInfo.indexOf(":");
  if (colon < 0) fail("a URL with USER:PASSWORD before the '@' (no ':' found)");
  let username: string;
  let password: string;
  try {
    username = decodeURIComponent(userInfo.slice(0, colon));
    password = decodeURIComponent(userInfo.slice(colon + 1));
  } catch {
    return fail("a URL whose USER and PASSWORD are valid percent-encoding");
  }
  if (username.length === 0) fail("a URL with a non-empty USER");
  let hostPort = rest.slice(at + 1);
  const bracketed = hostPort.startsWith("[");
  const portGiven = bracketed ? /\]:[^:]*$/.test(hostPort) : hostPort.includes(":");
  if (!portGiven) hostPort += `:${DEFAULT_TURN_PORT}`;
  let address: string;
  try {
    address = formatAddress(parseAddress(hostPort));
  } catch (e) {
    return fail(
      `a URL whose HOST:PORT is an IP literal and a port 1-65535 (${(e as Error).message})`,
    );
  }
  return { address, username, password };
}

/** The URL with its password (or, without a ':', all of its user info) shown as `***`. */
function maskPassword(url: string): string {
  const start = url.indexOf(":") + 1;
  const at = url.lastIndexOf("@");
  if (at < start) return url;
  const colon = url.indexOf(":", start);
  const keep = colon >= 0 && colon < at ? colon + 1 : start;
  return `${url.slice(0, keep)}***${url.slice(at)}`;
}
