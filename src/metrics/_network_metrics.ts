// The node's OpenTelemetry instruments, under `cretoai.`, recorded only when a meter provider
// is installed: by the application (`metrics.setGlobalMeterProvider`) or by Deno
// (`OTEL_DENO=true`). Without one, `networkMetrics()` answers undefined and every recording
// site is a single `?.` on undefined.
import {
  type Attributes,
  type Counter,
  createNoopMeter,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  type ObservableResult,
  type UpDownCounter,
} from "@opentelemetry/api";

/** One instrument as the README's table lists it. */
export interface MetricDescription {
  name: string;
  kind: "counter" | "updowncounter" | "histogram" | "gauge";
  unit: string;
  attributes: readonly string[];
  description: string;
}

// Round trips and set-up times on loopback are well below a millisecond and across the
// internet up to seconds: boundaries for both.
const MS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const MAX_ATTRIBUTE_SETS = 256;
const HOP_BUCKETS = [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20];

/** Every instrument, in the order of the README's table. */
export const METRICS = [
  {
    name: "cretoai.connections.opened",
    kind: "counter",
    unit: "{connection}",
    attributes: ["direction", "path"],
    description: "Peer connections that finished the identity handshake",
  },
  {
    name: "cretoai.connections.closed",
    kind: "counter",
    unit: "{connection}",
    attributes: ["direction", "path"],
    description: "Peer connections that closed",
  },
  {
    name: "cretoai.connections.active",
    kind: "updowncounter",
    unit: "{connection}",
    attributes: ["direction", "path"],
    description: "Peer connections open now",
  },
  {
    name: "cretoai.connection.setup.duration",
    kind: "histogram",
    unit: "ms",
    attributes: ["direction", "outcome"],
    description: "From the QUIC handshake's end to a ready peer (identity handshake, open/ready)",
  },
  {
    name: "cretoai.quic.handshakes.failed",
    kind: "counter",
    unit: "{handshake}",
    attributes: ["error"],
    description: "Inbound QUIC handshakes that failed, by quiche's error (tls_alert_116, ...)",
  },
  {
    name: "cretoai.message.rtt",
    kind: "histogram",
    unit: "ms",
    attributes: ["message.type"],
    description: "From send() to the peer's acknowledgement of the message",
  },
  {
    name: "cretoai.ping.rtt",
    kind: "histogram",
    unit: "ms",
    attributes: [],
    description: "Round trip of a ping on a peer's control stream (keep-alives included)",
  },
  {
    name: "cretoai.messages.sent",
    kind: "counter",
    unit: "{message}",
    attributes: ["message.type", "protocol"],
    description: "Messages written (lane messages by type; requests and responses by protocol)",
  },
  {
    name: "cretoai.messages.received",
    kind: "counter",
    unit: "{message}",
    attributes: ["message.type", "protocol"],
    description: "Messages read from peers",
  },
  {
    name: "cretoai.bytes.sent",
    kind: "counter",
    unit: "By",
    attributes: ["message.type", "protocol"],
    description: "Bytes of those messages, frame header and seal included",
  },
  {
    name: "cretoai.bytes.received",
    kind: "counter",
    unit: "By",
    attributes: ["message.type", "protocol"],
    description: "Bytes of the messages read",
  },
  {
    name: "cretoai.inbound_queue.depth",
    kind: "gauge",
    unit: "{message}",
    attributes: [],
    description: "Messages in the messages() queue, not yet taken by the application",
  },
  {
    name: "cretoai.limiter.waits",
    kind: "counter",
    unit: "{wait}",
    attributes: ["traffic.class"],
    description: "Sends that waited for the bandwidth limiter",
  },
  {
    name: "cretoai.limiter.wait.duration",
    kind: "histogram",
    unit: "ms",
    attributes: ["traffic.class"],
    description: "How long those sends waited",
  },
  {
    name: "cretoai.peers.refused",
    kind: "counter",
    unit: "{peer}",
    attributes: ["reason"],
    description: "Connections refused: a limit (inboundPerIp, pendingHandshakes, ...), pool-full",
  },
  {
    name: "cretoai.peers.banned",
    kind: "counter",
    unit: "{peer}",
    attributes: ["reason", "automatic"],
    description: "Peers banned, by the reason given (automatic: by their score)",
  },
  {
    name: "cretoai.nat.type",
    kind: "gauge",
    unit: "1",
    attributes: ["nat.type"],
    description: "1 for the NAT type the last discovery found (open, eim, ..., symmetric)",
  },
  {
    name: "cretoai.holepunch.attempts",
    kind: "counter",
    unit: "{attempt}",
    attributes: ["outcome"],
    description: "Hole punching tries to reach a peer directly (success, failure)",
  },
  {
    name: "cretoai.relay.allocations",
    kind: "counter",
    unit: "{allocation}",
    attributes: ["outcome"],
    description: "TURN allocations (allocated, failed, expired)",
  },
  {
    name: "cretoai.dht.lookups",
    kind: "counter",
    unit: "{lookup}",
    attributes: ["outcome"],
    description: "DHT lookups (found: a value; converged: closest peers only; failed: none)",
  },
  {
    name: "cretoai.dht.lookup.duration",
    kind: "histogram",
    unit: "ms",
    attributes: ["outcome"],
    description: "Duration of a DHT lookup",
  },
  {
    name: "cretoai.dht.lookup.hops",
    kind: "histogram",
    unit: "{hop}",
    attributes: ["outcome"],
    description: "Hops of a DHT lookup to its result",
  },
  {
    name: "cretoai.mdns.peers",
    kind: "counter",
    unit: "{peer}",
    attributes: [],
    description: "Peers announced on the local link (new or changed)",
  },
] as const satisfies readonly MetricDescription[];

type Name = typeof METRICS[number]["name"];

/** A gauge reading: called at each collection. */
export type GaugeSource = (observe: (value: number, attributes?: Attributes) => void) => void;

/** The instruments of one meter provider. */
export class NetworkMetrics {
  readonly connectionsOpened: Counter;
  readonly connectionsClosed: Counter;
  readonly connectionsActive: UpDownCounter;
  readonly connectionSetupDuration: Histogram;
  readonly handshakesFailed: Counter;
  readonly messageRtt: Histogram;
  readonly pingRtt: Histogram;
  readonly messagesSent: Counter;
  readonly messagesReceived: Counter;
  readonly bytesSent: Counter;
  readonly bytesReceived: Counter;
  readonly limiterWaits: Counter;
  readonly limiterWaitDuration: Histogram;
  readonly peersRefused: Counter;
  readonly peersBanned: Counter;
  readonly holePunchAttempts: Counter;
  readonly relayAllocations: Counter;
  readonly dhtLookups: Counter;
  readonly dhtLookupDuration: Histogram;
  readonly dhtLookupHops: Histogram;
  readonly mdnsPeers: Counter;
  readonly #queueDepth = new Set<GaugeSource>();
  #natType: Attributes | undefined;
  readonly #attributeCache = {
    message: new Map<string, Attributes>(),
    request: new Map<string, Attributes>(),
    response: new Map<string, Attributes>(),
  };
  #attributeSets = 0;

  constructor(meter: Meter) {
    const counter = (name: Name) => meter.createCounter(name, options(name));
    const upDownCounter = (name: Name) => meter.createUpDownCounter(name, options(name));
    const histogram = (name: Name, boundaries: number[]) =>
      meter.createHistogram(name, {
        ...options(name),
        advice: { explicitBucketBoundaries: boundaries },
      });
    const gauge = (name: Name, sources: Set<GaugeSource>) =>
      meter.createObservableGauge(name, options(name)).addCallback((result: ObservableResult) => {
        for (const source of sources) source((value, attrs) => result.observe(value, attrs));
      });
    this.connectionsOpened = counter("cretoai.connections.opened");
    this.connectionsClosed = counter("cretoai.connections.closed");
    this.connectionsActive = upDownCounter("cretoai.connections.active");
    this.connectionSetupDuration = histogram("cretoai.connection.setup.duration", MS_BUCKETS);
    this.handshakesFailed = counter("cretoai.quic.handshakes.failed");
    this.messageRtt = histogram("cretoai.message.rtt", MS_BUCKETS);
    this.pingRtt = histogram("cretoai.ping.rtt", MS_BUCKETS);
    this.messagesSent = counter("cretoai.messages.sent");
    this.messagesReceived = counter("cretoai.messages.received");
    this.bytesSent = counter("cretoai.bytes.sent");
    this.bytesReceived = counter("cretoai.bytes.received");
    gauge("cretoai.inbound_queue.depth", this.#queueDepth);
    this.limiterWaits = counter("cretoai.limiter.waits");
    this.limiterWaitDuration = histogram("cretoai.limiter.wait.duration", MS_BUCKETS);
    this.peersRefused = counter("cretoai.peers.refused");
    this.peersBanned = counter("cretoai.peers.banned");
    gauge("cretoai.nat.type", new Set([(observe) => this.#natType && observe(1, this.#natType)]));
    this.holePunchAttempts = counter("cretoai.holepunch.attempts");
    this.relayAllocations = counter("cretoai.relay.allocations");
    this.dhtLookups = counter("cretoai.dht.lookups");
    this.dhtLookupDuration = histogram("cretoai.dht.lookup.duration", MS_BUCKETS);
    this.dhtLookupHops = histogram("cretoai.dht.lookup.hops", HOP_BUCKETS);
    this.mdnsPeers = counter("cretoai.mdns.peers");
  }

  /** A lane message of `type` and `bytes` on the wire was written. */
  messageSent(type: string, bytes: number): void {
    const attributes = this.#attributes("message", type);
    this.messagesSent.add(1, attributes);
    this.bytesSent.add(bytes, attributes);
  }

  /** A lane message of `type` was acknowledged `ms` after its send() began. */
  messageAcknowledged(type: string, ms: number): void {
    this.messageRtt.record(ms, this.#attributes("message", type));
  }

  /** A lane message was read. */
  messageReceived(type: string, bytes: number): void {
    const attributes = this.#attributes("message", type);
    this.messagesReceived.add(1, attributes);
    this.bytesReceived.add(bytes, attributes);
  }

  /** A request (`kind` "request") or response (`"response"`) of `protocol` was written. */
  requestSent(kind: "request" | "response", protocol: string, bytes: number): void {
    const attributes = this.#attributes(kind, protocol);
    this.messagesSent.add(1, attributes);
    this.bytesSent.add(bytes, attributes);
  }

  /** A request or response of `protocol` was read. */
  requestReceived(kind: "request" | "response", protocol: string, bytes: number): void {
    const attributes = this.#attributes(kind, protocol);
    this.messagesReceived.add(1, attributes);
    this.bytesReceived.add(bytes, attributes);
  }

  // One attribute object per message type or protocol, made once: recording allocates nothing.
  #attributes(kind: "message" | "request" | "response", name: string): Attributes {
    const cache = this.#attributeCache[kind];
    const cached = cache.get(name);
    if (cached !== undefined) return cached;
    // Protocol ids are the application's strings: past the bound, one shared bucket. Message
    // types are the codec's few.
    const full = kind !== "message" && this.#attributeSets >= MAX_ATTRIBUTE_SETS;
    const label = full ? "other" : name;
    const attributes = kind === "message"
      ? { "message.type": label }
      : { "message.type": kind, protocol: label };
    if (!full) {
      cache.set(name, attributes);
      if (kind !== "message") this.#attributeSets++;
    }
    return attributes;
  }

  /** Adds a reader of `cretoai.inbound_queue.depth`; returns its removal. */
  observeQueueDepth(source: GaugeSource): () => void {
    this.#queueDepth.add(source);
    return () => this.#queueDepth.delete(source);
  }

  /** The NAT type the last discovery found, for `cretoai.nat.type`. */
  setNatType(type: string): void {
    this.#natType = { "nat.type": type };
  }
}

function options(name: Name): { description: string; unit: string } {
  const { description, unit } = METRICS.find((m) => m.name === name)!;
  return { description, unit };
}

const NOOP_METER_CLASS = createNoopMeter().constructor;
let cached: { provider: MeterProvider; metrics: NetworkMetrics | undefined } | undefined;

/**
 * The instruments of the installed meter provider, or undefined when none is installed (the
 * API's no-op provider answers). Looked up again only when the global provider changed.
 */
export function networkMetrics(): NetworkMetrics | undefined {
  const provider = metrics.getMeterProvider();
  if (cached?.provider === provider) return cached.metrics;
  const meter = provider.getMeter("cretoai");
  const active = meter.constructor !== NOOP_METER_CLASS;
  cached = { provider, metrics: active ? new NetworkMetrics(meter) : undefined };
  return cached.metrics;
}
