/**
 * Coordinated UDP hole punching, the scheduling part: pure logic that turns what is known
 * about a peer (its observed addresses, its NAT type) into a punch plan: which addresses get
 * punch packets, when, how many, and until when. The rendezvous that exchanges the addresses
 * and agrees on the start time, and the loop that sends, belong to the transport.
 *
 * @module
 */

import { InvalidConfigError } from "../errors.ts";
import { requireInteger, requirePositiveFinite } from "../_validate.ts";
import type { UdpAddress } from "../quic/datagram_port.ts";
import { formatAddress, sameAddress } from "./_address.ts";
import type { NatType } from "./nat_classifier.ts";

/** What the rendezvous told us about the peer. */
export interface PunchPeer {
  /**
   * The peer's candidate addresses, best first: its reflexive address(es) as STUN servers saw
   * them, then LAN addresses. For a symmetric NAT, list the mappings in the order the peer
   * observed them, so their ports show the allocation step.
   */
  addresses: readonly UdpAddress[];
  /**
   * The peer's NAT type.
   *
   * @default {"Unknown"}
   */
  natType?: NatType;
}

/** Options of {@link planHolePunch}. */
export interface HolePunchOptions {
  /** The agreed start time (ms, same clock as the caller's), the same moment on both peers. */
  startAt: number;
  /** The peer. */
  peer: PunchPeer;
  /**
   * Our own NAT type: with both sides symmetric, punching without prediction cannot work.
   *
   * @default {"Unknown"}
   */
  selfNatType?: NatType;
  /**
   * Milliseconds between rounds; every round sends one packet to every target.
   *
   * @default {50}
   */
  interval?: number;
  /**
   * How long to punch, from `startAt`, before giving up.
   *
   * @default {3000}
   */
  duration?: number;
  /**
   * Upper bound on packets in the whole plan; rounds stop early when it would be exceeded.
   *
   * @default {200}
   */
  maxPackets?: number;
  /**
   * For a symmetric peer, how many predicted ports to add after its last observed mapping
   * (see {@link predictPorts}); 0 turns prediction off.
   *
   * @default {8}
   */
  predictedPorts?: number;
}

/** One punch packet of a plan. */
export interface PunchSend {
  /** When to send it. */
  at: number;
  /** Where to. */
  to: UdpAddress;
}

/** A hole-punch plan. */
export interface HolePunchPlan {
  /** Every address that gets punch packets: the peer's, then predicted ones. */
  targets: UdpAddress[];
  /** The packets, in time order. */
  sends: PunchSend[];
  /** When to give up if nothing came from the peer. */
  until: number;
  /**
   * Whether punching is expected to work: false when both sides are symmetric and no port
   * could be predicted (use a relay instead).
   */
  feasible: boolean;
  /** Why the plan looks as it does. */
  reasons: string[];
}

/**
 * Predicts the next ports a symmetric NAT with sequential allocation will hand out: when the
 * observed ports grow by one constant step (1 to `maxStep`), the next `count` ports on that
 * step after the last one; otherwise none.
 *
 * @example
 * ```ts
 * import { predictPorts } from "@cretoai/network/nat";
 *
 * console.assert(predictPorts([40000, 40002, 40004], 3).join() === "40006,40008,40010");
 * console.assert(predictPorts([40000, 51234], 3).length === 0);
 * ```
 *
 * @param observed Ports of successive mappings, in the order they were made.
 * @param count How many to predict.
 * @param maxStep Largest step still taken for sequential allocation.
 * @returns The predicted ports (at most `count`, all at most 65535).
 */
export function predictPorts(observed: readonly number[], count: number, maxStep = 16): number[] {
  if (observed.length < 2 || count <= 0) return [];
  const step = observed[1] - observed[0];
  if (step < 1 || step > maxStep) return [];
  for (let i = 2; i < observed.length; i++) {
    if (observed[i] - observed[i - 1] !== step) return [];
  }
  const out: number[] = [];
  const last = observed[observed.length - 1];
  for (let k = 1; k <= count && last + k * step <= 65535; k++) out.push(last + k * step);
  return out;
}

/**
 * Plans a coordinated hole punch: from `startAt`, every `interval` ms one packet to every
 * target, until `duration` has passed or `maxPackets` would be exceeded. Targets are the
 * peer's addresses, and for a symmetric peer the ports {@link predictPorts} finds on the IP of
 * its last mapping.
 *
 * @example
 * ```ts
 * import { planHolePunch } from "@cretoai/network/nat";
 *
 * const plan = planHolePunch({
 *   startAt: 1000,
 *   peer: { addresses: [{ hostname: "203.0.113.9", port: 40000 }], natType: "Cone" },
 *   interval: 100,
 *   duration: 300,
 * });
 * console.assert(plan.sends.map((s) => s.at).join() === "1000,1100,1200");
 * console.assert(plan.until === 1300 && plan.feasible);
 * ```
 *
 * @param options Start time, peer, our NAT type, pacing and bounds.
 * @returns The plan.
 * @throws {InvalidConfigError} If the peer has no address, or a number is out of range.
 */
export function planHolePunch(options: HolePunchOptions): HolePunchPlan {
  const {
    startAt,
    peer,
    selfNatType = "Unknown",
    interval = 50,
    duration = 3000,
    maxPackets = 200,
    predictedPorts = 8,
  } = options;
  if (!Number.isFinite(startAt)) throw new InvalidConfigError("startAt", "a finite time", startAt);
  if (peer.addresses.length === 0) {
    throw new InvalidConfigError("peer.addresses", "a non-empty list", []);
  }
  requirePositiveFinite("interval", interval);
  requirePositiveFinite("duration", duration);
  requireInteger("maxPackets", maxPackets, 1);
  requireInteger("predictedPorts", predictedPorts, 0);
  const peerType = peer.natType ?? "Unknown";
  const reasons: string[] = [];
  const targets: UdpAddress[] = [];
  for (const a of peer.addresses) {
    if (!targets.some((t) => sameAddress(t, a))) targets.push({ ...a });
  }
  let predicted: number[] = [];
  if (peerType === "Symmetric" && predictedPorts > 0) {
    const last = peer.addresses[peer.addresses.length - 1];
    // Only mappings on the last one's IP belong to the same NAT allocation sequence.
    const ports = peer.addresses.filter((a) => a.hostname === last.hostname).map((a) => a.port);
    predicted = predictPorts(ports, predictedPorts);
    for (const port of predicted) {
      const t = { hostname: last.hostname, port };
      if (!targets.some((x) => sameAddress(x, t))) targets.push(t);
    }
    reasons.push(
      predicted.length > 0
        ? `peer is symmetric with sequential ports ${ports.join(", ")}: predicted ` +
          predicted.join(", ")
        : `peer is symmetric and its ports ${
          ports.join(", ")
        } show no constant step: no prediction`,
    );
  }
  const feasible = !(peerType === "Symmetric" && selfNatType === "Symmetric" &&
    predicted.length === 0);
  if (!feasible) reasons.push("both sides are symmetric and no port was predicted: use a relay");
  const until = startAt + duration;
  const sends: PunchSend[] = [];
  // Bounded by duration/interval rounds and by maxPackets.
  for (
    let at = startAt;
    at < until && sends.length + targets.length <= maxPackets;
    at += interval
  ) {
    for (const to of targets) sends.push({ at, to });
  }
  reasons.push(
    `${sends.length} packets to ${targets.map(formatAddress).join(", ")} every ${interval} ms ` +
      `until ${until}`,
  );
  return { targets, sends, until, feasible, reasons };
}
