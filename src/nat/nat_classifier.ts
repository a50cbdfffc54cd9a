/**
 * NAT behaviour classification after RFC 5780 and RFC 4787, as pure logic over observed
 * samples: no sockets, no clock. {@link discoverNat} collects the samples.
 *
 * Mapping behaviour comes from the reflexive addresses that different destinations saw for
 * one local socket; filtering behaviour from whether responses sent from another IP and/or
 * port (CHANGE-REQUEST) came through.
 *
 * @module
 */

import type { UdpAddress } from "../quic/datagram_port.ts";
import { formatAddress, sameAddress, sameIp } from "./_address.ts";

/**
 * The coarse NAT type hole punching cares about: `Cone` when the mapping is
 * endpoint-independent (the address a STUN server sees is the one a peer can reach),
 * `Symmetric` when the mapping changes with the destination, `Unknown` when the samples do
 * not tell.
 */
export type NatType = "Cone" | "Symmetric" | "Unknown";

/** RFC 4787 mapping or filtering behaviour. */
export type NatBehavior =
  | "endpoint-independent"
  | "address-dependent"
  | "address-and-port-dependent"
  | "unknown";

/** One local socket's reflexive address as one destination saw it. */
export interface MappingSample {
  /** Where the Binding request went. */
  destination: UdpAddress;
  /** The XOR-MAPPED-ADDRESS the destination reported. */
  mapped: UdpAddress;
}

/** One CHANGE-REQUEST probe: a request to `server` asking it to answer from elsewhere. */
export interface FilteringSample {
  /** Where the request went (the server's primary address). */
  server: UdpAddress;
  /** Whether the server was asked to answer from its other IP. */
  changeIp: boolean;
  /** Whether the server was asked to answer from its other port. */
  changePort: boolean;
  /** Source address of the response; `undefined` when none arrived. */
  responseFrom?: UdpAddress;
}

/** Everything the classifier looks at. */
export interface NatObservations {
  /** Mapping samples of one local socket, the first one from the primary server. */
  mapping: readonly MappingSample[];
  /** CHANGE-REQUEST probes, only from servers that support RFC 5780. */
  filtering?: readonly FilteringSample[];
  /**
   * The local socket's own addresses (interface IPs with the socket's port). A reflexive
   * address among them means no NAT.
   */
  localAddresses?: readonly UdpAddress[];
}

/** The classifier's verdict. */
export interface NatClassification {
  /** The coarse type. */
  type: NatType;
  /** RFC 4787 mapping behaviour. */
  mapping: NatBehavior;
  /** RFC 4787 filtering behaviour. */
  filtering: NatBehavior;
  /** The reflexive address the primary server saw; `undefined` without samples. */
  publicAddress?: UdpAddress;
  /**
   * Whether a NAT sits in the path: `false` when the reflexive address is one of the local
   * addresses, `true` when it is not, `undefined` when no local addresses were given.
   */
  behindNat?: boolean;
  /** One line per conclusion, saying which samples led to it. */
  reasons: string[];
}

/**
 * Classifies mapping behaviour from the reflexive addresses several destinations saw for one
 * local socket (RFC 5780 section 4.3 generalised to any set of destinations).
 *
 * Two destinations on the same IP with different ports that see different mappings prove
 * address-and-port-dependent mapping. Destinations on different IPs that all see the same
 * mapping give endpoint-independent mapping. Different mappings across IPs give
 * address-dependent mapping when a same-IP pair agreed, and `unknown` (but destination
 * dependent: `Symmetric` in {@link classifyNat}) when no same-IP pair was tried.
 *
 * @example
 * ```ts
 * import { classifyMapping } from "@cretoai/network/nat";
 *
 * const pub = { hostname: "203.0.113.5", port: 40000 };
 * const b = classifyMapping([
 *   { destination: { hostname: "192.0.2.1", port: 3478 }, mapped: pub },
 *   { destination: { hostname: "192.0.2.2", port: 3478 }, mapped: pub },
 * ]);
 * console.assert(b === "endpoint-independent");
 * ```
 *
 * @param samples Mapping samples of one local socket.
 * @returns The mapping behaviour, `unknown` with fewer than two distinct destinations or
 * without a pair on different IPs.
 */
export function classifyMapping(samples: readonly MappingSample[]): NatBehavior {
  return analyseMapping(samples).behavior;
}

/**
 * Classifies filtering behaviour from CHANGE-REQUEST probes (RFC 5780 section 4.4): a
 * response from another IP and port means endpoint-independent filtering; otherwise a
 * response from the same IP and another port means address-dependent filtering; neither
 * means address-and-port-dependent filtering.
 *
 * A response from an address the request did not ask for (a server that ignored
 * CHANGE-REQUEST) proves nothing and is not counted.
 *
 * @example
 * ```ts
 * import { classifyFiltering } from "@cretoai/network/nat";
 *
 * const server = { hostname: "192.0.2.1", port: 3478 };
 * const b = classifyFiltering([
 *   { server, changeIp: true, changePort: true },
 *   { server, changeIp: false, changePort: true },
 * ]);
 * console.assert(b === "address-and-port-dependent");
 * ```
 *
 * @param samples The probes, with or without responses.
 * @returns The filtering behaviour; `unknown` when the probes do not decide it.
 */
export function classifyFiltering(samples: readonly FilteringSample[]): NatBehavior {
  return analyseFiltering(samples).behavior;
}

/**
 * Classifies a NAT from observed samples: the coarse {@link NatType}, the RFC 4787 mapping
 * and filtering behaviour, and the public address.
 *
 * @example An endpoint-independent NAT that filters by address and port
 * ```ts
 * import { classifyNat } from "@cretoai/network/nat";
 *
 * const primary = { hostname: "192.0.2.1", port: 3478 };
 * const pub = { hostname: "203.0.113.5", port: 40000 };
 * const verdict = classifyNat({
 *   mapping: [
 *     { destination: primary, mapped: pub },
 *     { destination: { hostname: "192.0.2.2", port: 3478 }, mapped: pub },
 *   ],
 *   filtering: [
 *     { server: primary, changeIp: true, changePort: true },
 *     { server: primary, changeIp: false, changePort: true },
 *   ],
 *   localAddresses: [{ hostname: "10.1.0.2", port: 40000 }],
 * });
 * console.assert(verdict.type === "Cone" && verdict.behindNat === true);
 * console.assert(verdict.filtering === "address-and-port-dependent");
 * ```
 *
 * @param observations Mapping samples, filtering probes and local addresses.
 * @returns The classification with the reasons for it.
 */
export function classifyNat(observations: NatObservations): NatClassification {
  const { mapping: samples, filtering: probes = [], localAddresses } = observations;
  const reasons: string[] = [];
  const first = samples[0];
  let behindNat: boolean | undefined;
  if (first !== undefined && localAddresses !== undefined && localAddresses.length > 0) {
    behindNat = !localAddresses.some((l) => sameAddress(l, first.mapped));
    reasons.push(
      behindNat
        ? `reflexive ${formatAddress(first.mapped)} is not a local address: behind a NAT`
        : `reflexive ${formatAddress(first.mapped)} is a local address: no NAT`,
    );
  }
  const m = analyseMapping(samples);
  reasons.push(...m.reasons);
  const f = analyseFiltering(probes);
  reasons.push(...f.reasons);
  let mapping = m.behavior;
  if (behindNat === false && mapping === "unknown" && !m.dependsOnDestination) {
    // Without a NAT the mapping is the socket itself, the same for every destination.
    mapping = "endpoint-independent";
    reasons.push("no NAT: mapping is endpoint-independent");
  }
  const type: NatType = mapping === "endpoint-independent"
    ? "Cone"
    : mapping !== "unknown" || m.dependsOnDestination
    ? "Symmetric"
    : "Unknown";
  const out: NatClassification = { type, mapping, filtering: f.behavior, reasons };
  if (first !== undefined) out.publicAddress = { ...first.mapped };
  if (behindNat !== undefined) out.behindNat = behindNat;
  return out;
}

interface MappingAnalysis {
  behavior: NatBehavior;
  dependsOnDestination: boolean;
  reasons: string[];
}

function analyseMapping(samples: readonly MappingSample[]): MappingAnalysis {
  const reasons: string[] = [];
  let crossIpSame = 0;
  let crossIpDiff = 0;
  let samePortPairSame = 0;
  let samePortPairDiff = 0;
  for (let i = 0; i < samples.length; i++) {
    for (let j = i + 1; j < samples.length; j++) {
      const a = samples[i];
      const b = samples[j];
      if (sameAddress(a.destination, b.destination)) continue;
      const same = sameAddress(a.mapped, b.mapped);
      const pair = `${formatAddress(a.destination)} saw ${formatAddress(a.mapped)}, ` +
        `${formatAddress(b.destination)} saw ${formatAddress(b.mapped)}`;
      if (sameIp(a.destination.hostname, b.destination.hostname)) {
        if (same) samePortPairSame++;
        else {
          samePortPairDiff++;
          reasons.push(`mapping changes with the destination port: ${pair}`);
        }
      } else if (same) crossIpSame++;
      else {
        crossIpDiff++;
        reasons.push(`mapping changes with the destination IP: ${pair}`);
      }
    }
  }
  if (samePortPairDiff > 0) {
    return { behavior: "address-and-port-dependent", dependsOnDestination: true, reasons };
  }
  if (crossIpDiff > 0) {
    if (samePortPairSame > 0) {
      reasons.push("mapping is kept across ports of one IP: address-dependent");
      return { behavior: "address-dependent", dependsOnDestination: true, reasons };
    }
    reasons.push("no two ports of one IP were tried: address- or address-and-port-dependent");
    return { behavior: "unknown", dependsOnDestination: true, reasons };
  }
  if (crossIpSame > 0) {
    reasons.push(`${crossIpSame} destination pair(s) on different IPs saw the same mapping`);
    return { behavior: "endpoint-independent", dependsOnDestination: false, reasons };
  }
  reasons.push(
    samples.length < 2
      ? `only ${samples.length} mapping sample(s): mapping unknown`
      : "no destinations on different IPs: mapping unknown",
  );
  return { behavior: "unknown", dependsOnDestination: false, reasons };
}

function analyseFiltering(probes: readonly FilteringSample[]): {
  behavior: NatBehavior;
  reasons: string[];
} {
  const reasons: string[] = [];
  // Per kind: true = a response came from the address asked for, false = no response.
  let both: boolean | undefined;
  let portOnly: boolean | undefined;
  for (const p of probes) {
    const kind = p.changeIp && p.changePort ? "both" : !p.changeIp && p.changePort ? "port" : null;
    if (kind === null) continue;
    let arrived: boolean;
    if (p.responseFrom === undefined) arrived = false;
    else {
      const ipChanged = !sameIp(p.responseFrom.hostname, p.server.hostname);
      const portChanged = p.responseFrom.port !== p.server.port;
      if (ipChanged !== p.changeIp || portChanged !== p.changePort) {
        reasons.push(
          `CHANGE-REQUEST to ${formatAddress(p.server)} was answered from ` +
            `${formatAddress(p.responseFrom)}, not as asked: ignored`,
        );
        continue;
      }
      arrived = true;
    }
    if (kind === "both") both = (both ?? false) || arrived;
    else portOnly = (portOnly ?? false) || arrived;
  }
  if (both === true) {
    reasons.push("a response from another IP and port came through: endpoint-independent");
    return { behavior: "endpoint-independent", reasons };
  }
  if (portOnly === true) {
    if (both === false) {
      reasons.push(
        "a response from another port came through, from another IP not: address-dependent",
      );
      return { behavior: "address-dependent", reasons };
    }
    reasons.push("a response from another port came through, other IP not tried: unknown");
    return { behavior: "unknown", reasons };
  }
  if (portOnly === false) {
    // Endpoint-independent and address-dependent filtering both let a response from the
    // contacted IP's other port through, so its absence alone decides.
    reasons.push("no response from another port came through: address-and-port-dependent");
    return { behavior: "address-and-port-dependent", reasons };
  }
  reasons.push(
    both === false
      ? "no response from another IP and port came through, other port not tried: unknown"
      : "no usable CHANGE-REQUEST probes: filtering unknown",
  );
  return { behavior: "unknown", reasons };
}
