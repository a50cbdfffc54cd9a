/**
 * NAT behaviour discovery (RFC 5780): runs the mapping and filtering tests through a
 * {@link StunClient} and hands the samples to {@link classifyNat}.
 *
 * @module
 */

import { InvalidConfigError, NetworkError } from "../errors.ts";
import type { UdpAddress } from "../quic/datagram_port.ts";
import { formatAddress, sameAddress, sameIp } from "./_address.ts";
import {
  classifyNat,
  type FilteringSample,
  type MappingSample,
  type NatClassification,
  type NatObservations,
} from "./nat_classifier.ts";
import type { StunBindingResult, StunClient, StunRetransmitOptions } from "./stun_client.ts";

/** Options of {@link discoverNat}. */
export interface NatDiscoveryOptions {
  /**
   * STUN servers (IP literals), in order of preference. The first that answers is the primary.
   * With RFC 5780 support (OTHER-ADDRESS) one server is enough; without it, the mapping is
   * compared with what other servers on other IPs see, and filtering stays unknown.
   */
  servers: readonly UdpAddress[];
  /**
   * Retransmission values for every request; the filtering tests wait the full transaction
   * when the NAT drops their responses.
   *
   * @default {the client's values}
   */
  retransmit?: StunRetransmitOptions;
  /**
   * Run the CHANGE-REQUEST filtering tests.
   *
   * @default {true}
   */
  filtering?: boolean;
  /**
   * The socket's own addresses, to tell "no NAT" apart. When omitted and the client's socket
   * is bound to a specific IP, that address is used; when bound to the wildcard, the interface
   * addresses are read if the `sys` permission for `networkInterfaces` is already granted.
   *
   * @default {derived as described}
   */
  localAddresses?: readonly UdpAddress[];
  /**
   * Aborts the discovery.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** The result of {@link discoverNat}: the classification and the samples behind it. */
export interface NatDiscoveryResult extends NatClassification {
  /** The server that answered first and ran the RFC 5780 tests. */
  server: UdpAddress;
  /** Whether that server supports RFC 5780 (sent OTHER-ADDRESS on a different IP). */
  rfc5780: boolean;
  /** The samples fed to the classifier. */
  observations: NatObservations;
}

/**
 * Discovers the NAT's mapping and filtering behaviour on the client's socket.
 *
 * The filtering tests run before the mapping tests that contact the server's other IP: a
 * packet to that IP would open an address-dependent filter for it and make the filtering look
 * endpoint-independent. Then, as in RFC 5780: mapping test II goes to the other IP and
 * primary port, test III to the other IP and port only when test II saw a different mapping.
 *
 * @example
 * ```ts ignore
 * import { discoverNat, StunClient } from "@cretoai/network/nat";
 *
 * using client = new StunClient(port);
 * const nat = await discoverNat(client, { servers: [{ hostname: "10.200.0.1", port: 3478 }] });
 * console.log(nat.type, nat.mapping, nat.filtering, nat.publicAddress);
 * ```
 *
 * @param client The STUN client on the node's socket.
 * @param options Servers, retransmission values, local addresses, abort signal.
 * @returns The classification, the primary server and the samples.
 * @throws {InvalidConfigError} If `servers` is empty.
 * @throws {NetworkError} `ERR_NAT_TRAVERSAL_FAILED` if no server answered the first
 * request (its `cause` is the STUN error); `ERR_ABORTED`/`ERR_TIMEOUT` if the signal fired.
 */
export async function discoverNat(
  client: StunClient,
  options: NatDiscoveryOptions,
): Promise<NatDiscoveryResult> {
  const { servers, retransmit = {}, filtering = true, signal } = options;
  if (servers.length === 0) throw new InvalidConfigError("servers", "a non-empty list", []);
  const base = { ...retransmit, signal };
  let first: StunBindingResult;
  try {
    first = await client.binding(servers, base);
  } catch (e) {
    if (e instanceof NetworkError && e.code !== "ERR_ABORTED" && !signal?.aborted) {
      throw new NetworkError(
        "ERR_NAT_TRAVERSAL_FAILED",
        `Cannot discover the NAT: no STUN server of ${
          servers.map(formatAddress).join(", ")
        } answered: ${e.message}`,
        { cause: e },
      );
    }
    throw e;
  }
  const primary = first.server;
  const mapping: MappingSample[] = [{ destination: primary, mapped: first.mapped }];
  const probes: FilteringSample[] = [];
  const other = first.otherAddress;
  const rfc5780 = other !== undefined && !sameIp(other.hostname, primary.hostname) &&
    other.port !== primary.port;

  // Answers that do not come, because the NAT drops them, are the expected outcome of a test.
  const tryBinding = async (
    to: UdpAddress,
    change: { changeIp?: boolean; changePort?: boolean } = {},
  ): Promise<StunBindingResult | undefined> => {
    try {
      return await client.binding(to, { ...base, ...change });
    } catch (e) {
      if (e instanceof NetworkError && (e.code === "ERR_TIMEOUT" || e.code === "ERR_STUN")) {
        if (signal?.aborted) throw e;
        return undefined;
      }
      throw e;
    }
  };

  if (rfc5780) {
    if (filtering) {
      const both = await tryBinding(primary, { changeIp: true, changePort: true });
      probes.push(probe(primary, true, true, both));
      if (both === undefined || !sameIp(both.from.hostname, other.hostname)) {
        const portOnly = await tryBinding(primary, { changePort: true });
        probes.push(probe(primary, false, true, portOnly));
      }
    }
    const altIp = { hostname: other.hostname, port: primary.port };
    const r2 = await tryBinding(altIp);
    if (r2 !== undefined) {
      mapping.push({ destination: altIp, mapped: r2.mapped });
      if (!sameAddress(r2.mapped, first.mapped)) {
        const r3 = await tryBinding(other);
        if (r3 !== undefined) mapping.push({ destination: other, mapped: r3.mapped });
      }
    }
  } else {
    // Without RFC 5780, other servers on other IPs stand in for the alternate address.
    const others = servers.filter((s) => !sameIp(s.hostname, primary.hostname)).slice(0, 2);
    for (const s of others) {
      const r = await tryBinding(s);
      if (r !== undefined) mapping.push({ destination: s, mapped: r.mapped });
    }
  }

  const observations: NatObservations = {
    mapping,
    filtering: probes,
    localAddresses: options.localAddresses ?? localAddressesOf(client.localAddr),
  };
  return { ...classifyNat(observations), server: primary, rfc5780, observations };
}

function probe(
  server: UdpAddress,
  changeIp: boolean,
  changePort: boolean,
  result: StunBindingResult | undefined,
): FilteringSample {
  const p: FilteringSample = { server, changeIp, changePort };
  if (result !== undefined) p.responseFrom = result.from;
  return p;
}

function localAddressesOf(addr: UdpAddress): UdpAddress[] | undefined {
  if (addr.hostname !== "0.0.0.0" && addr.hostname !== "::") return [addr];
  // Reading interfaces needs --allow-sys; asking for it from a library would prompt.
  const granted = Deno.permissions.querySync?.({ name: "sys", kind: "networkInterfaces" });
  if (granted?.state !== "granted") return undefined;
  return Deno.networkInterfaces()
    .filter((i) => (addr.hostname === "::") || i.family === "IPv4")
    .map((i) => ({ hostname: i.address, port: addr.port }));
}
