// Records a transport's connection-level metrics from its events, so the transport itself
// only hands over what its events do not carry (the path and the inbound queue).
import type { Attributes } from "@opentelemetry/api";
import type { UdpAddress } from "../quic/datagram_port.ts";
import type { TransportEventMap, TypedEventTarget } from "../transport/events.ts";
import type { NetworkMetrics } from "./_network_metrics.ts";

/** What the events leave out. */
export interface TransportMetricSources {
  /** Whether a peer's address runs through a TURN relay. */
  pathOf(address: UdpAddress): "direct" | "relay";
  /** Messages in the inbound queue now. */
  queueDepth(): number;
}

// Refusals after the identity handshake, by the error code the transport fails them with.
const REFUSED: Readonly<Record<string, string>> = {
  ERR_LIMIT_EXCEEDED: "pool-full",
  ERR_PEER_BANNED: "banned",
  ERR_PEER_NOT_ALLOWED: "not-allowed",
};

/** Subscribes to `transport`'s events; returns the function that stops. */
export function observeTransport(
  transport: TypedEventTarget<TransportEventMap>,
  metrics: NetworkMetrics,
  sources: TransportMetricSources,
): () => void {
  // The attributes each connected peer was counted with, so its close takes off the same.
  const open = new Map<string, Attributes>();
  const opened = (peer: string, attributes: Attributes) => {
    open.set(peer, attributes);
    metrics.connectionsOpened.add(1, attributes);
    metrics.connectionsActive.add(1, attributes);
  };
  const closed = (peer: string) => {
    const attributes = open.get(peer);
    if (attributes === undefined) return;
    open.delete(peer);
    metrics.connectionsClosed.add(1, attributes);
    metrics.connectionsActive.add(-1, attributes);
  };
  const attributesOf = (direction: string, address: UdpAddress) => ({
    direction,
    path: sources.pathOf(address),
  });
  const listeners: { [K in keyof TransportEventMap]?: (event: TransportEventMap[K]) => void } = {
    "peer:connected": ({ detail }) =>
      opened(detail.peerId.toString(), attributesOf(detail.direction, detail.address)),
    "peer:disconnected": ({ detail }) => closed(detail.peerId.toString()),
    "peer:migrated": ({ detail }) => {
      const peer = detail.peerId.toString();
      closed(peer);
      opened(peer, attributesOf(detail.direction, detail.address));
    },
    "connection:failed": ({ detail }) => {
      const code = (detail.error as { code?: string }).code;
      const reason = code === undefined ? undefined : REFUSED[code];
      if (reason !== undefined) metrics.peersRefused.add(1, { reason });
    },
    "peer:banned": ({ detail }) =>
      // A ban's reason is free text from the application; the score's reasons are few.
      metrics.peersBanned.add(1, {
        reason: detail.automatic ? detail.reason : "manual",
        automatic: detail.automatic,
      }),
  };
  const entries = Object.entries(listeners) as [string, (event: Event) => void][];
  for (const [type, listener] of entries) transport.addEventListener(type, listener);
  const stopGauge = metrics.observeQueueDepth((observe) => observe(sources.queueDepth()));
  return () => {
    for (const [type, listener] of entries) transport.removeEventListener(type, listener);
    stopGauge();
    for (const peer of [...open.keys()]) closed(peer);
  };
}
