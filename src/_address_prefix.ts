/**
 * The network an address belongs to, for limits that one host with many addresses must not
 * escape: an IPv4 /24 or an IPv6 /64 (what one customer of a provider usually holds).
 *
 * @module
 */

/** Whether `ip` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped loopback). */
export function isLoopback(ip: string): boolean {
  const v4 = ipv4Of(ip);
  if (v4 !== undefined) return v4.startsWith("127.");
  const groups = ipv6Groups(ip);
  return groups !== undefined && groups.slice(0, 7).every((g) => g === 0) && groups[7] === 1;
}

/**
 * The /24 (IPv4) or /64 (IPv6) prefix of `ip` as a string key, for example `"192.0.2.0/24"`;
 * the address itself when it is neither.
 */
export function addressPrefix(ip: string): string {
  const v4 = ipv4Of(ip);
  if (v4 !== undefined) return `${v4.slice(0, v4.lastIndexOf("."))}.0/24`;
  const groups = ipv6Groups(ip);
  if (groups === undefined) return ip;
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** The dotted IPv4 address of `ip`, also of an IPv4-mapped IPv6 one (`::ffff:a.b.c.d`). */
function ipv4Of(ip: string): string | undefined {
  const bare = ip.toLowerCase().replace(/^::ffff:/, "");
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(bare) ? bare : undefined;
}

/** The eight 16-bit groups of an IPv6 address, or `undefined` if it is not one. */
function ipv6Groups(ip: string): number[] | undefined {
  const bare = ip.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!bare.includes(":")) return undefined;
  const halves = bare.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string) => part === "" ? [] : part.split(":").map((g) => parseInt(g, 16));
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...new Array(Math.max(0, fill)).fill(0), ...tail];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  return groups;
}
