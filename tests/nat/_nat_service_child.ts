/**
 * A `QuicTransport` node with a `NatService`, for the NAT-lab hole-punching tests: run inside a
 * lab namespace and driven over stdin/stdout, one JSON object per line each way (see
 * `_child_node.ts`). Commands:
 * - `{"cmd":"start","listen":IP,"stun":[...],"stunRetransmit":{...},"filtering":bool,
 *   "discoveryTimeoutMs":N,"connectionTimeoutMs":N,"handshakeTimeoutMs":N,
 *   "keepAliveIntervalSecs":N,"requestTimeoutMs":N}`: binds (keep-alive and request timeout
 *   the transport's defaults unless given); answers `{"peerId","port"}`.
 * - `{"cmd":"discover"}`: NAT discovery; answers `{"nat":{...},"event":bool,"ms"}` (`event`:
 *   whether the `nat` event carried the same result).
 * - `{"cmd":"dial","address":"IP:PORT"}`: `connectPeer`; answers `{"peerId"}`.
 * - `{"cmd":"connect","peer","via","timeoutMs"}`: `natService.connect`; answers
 *   `{"ok":true,"path","address","ms"}` or `{"ok":false,"code","attempt","message","ms"}`.
 * - `{"cmd":"ping","peer"}`: `transport.ping`; answers `{"ok":true,"rttMs"}` or
 *   `{"ok":false,"code","message"}`.
 * - `{"cmd":"disconnect","peer"}`, `{"cmd":"events","atLeast":N,"timeoutMs":N}` (the
 *   service's `connected` events since the last call, once there are N or the time is up),
 *   `{"cmd":"close"}`.
 * Errors answer `{"error":"..."}` (with the error's `code` when it has one). Ends at end of
 * input.
 *
 * @module
 */

import { Identity } from "../../src/identity/identity.ts";
import { type NatConnection, NatService, NatTraversalError } from "../../src/nat/mod.ts";
import type { NatDiscoveryResult } from "../../src/nat/mod.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import { answerCommands } from "./_child_node.ts";

let transport: QuicTransport | undefined;
let nat: NatService | undefined;
let lastNatEvent: NatDiscoveryResult | undefined;
let events: Record<string, unknown>[] = [];
let wakeEvents = () => {};

function describeConnection(c: NatConnection): Record<string, unknown> {
  return {
    peerId: c.peerId.toString(),
    address: c.address,
    path: c.path,
    direction: c.direction,
    via: c.via?.toString(),
    elapsedMs: c.elapsedMs,
  };
}

async function start(command: Record<string, unknown>) {
  transport = new QuicTransport({
    identity: Identity.generate(),
    config: {
      listenAddr: command.listen as string,
      quicPort: 0,
      // Nodes behind the lab's NATs keep their mappings alive as deployed nodes do: a
      // rendezvous node reaches them only through mappings their own packets refresh.
      keepAliveIntervalSecs: command.keepAliveIntervalSecs as number | undefined,
      requestTimeoutMs: command.requestTimeoutMs as number | undefined,
      connectionTimeoutMs: (command.connectionTimeoutMs as number) ?? 5000,
      handshakeTimeoutMs: (command.handshakeTimeoutMs as number) ?? 10_000,
      // The labs dial one peer 20 times in a few seconds from one NAT address: the default
      // per-IP rate of new handshakes (8, then 2 a second) would refuse the last tries, which
      // measure hole punching, not admission.
      inboundHandshakeBurstPerIp: 64,
      // Under the loss lab's ~19% loss per path the dialer's first stream can take seconds to
      // arrive after the QUIC handshake: the listener waits for it as long as for the handshake.
      silentHandshakeTimeoutMs: (command.handshakeTimeoutMs as number) ?? 10_000,
    },
  });
  const { port } = await transport.bindAndListen();
  nat = new NatService(transport, {
    stunServers: command.stun as string[],
    stunRetransmit: command.stunRetransmit as Record<string, number>,
    filtering: command.filtering as boolean,
    discoveryTimeoutMs: command.discoveryTimeoutMs as number,
  });
  nat.addEventListener("nat:discovered", (e) => lastNatEvent = e.detail);
  nat.addEventListener("nat:connected", (e) => {
    events.push(describeConnection(e.detail));
    wakeEvents();
  });
  await nat.start();
  return { peerId: transport.peerId.toString(), port };
}

async function connect(command: Record<string, unknown>) {
  const t0 = performance.now();
  try {
    const c = await nat!.connect(command.peer as string, {
      via: command.via as string,
      timeoutMs: command.timeoutMs as number,
    });
    return { ok: true, ...describeConnection(c), ms: performance.now() - t0 };
  } catch (e) {
    if (!(e instanceof NatTraversalError)) throw e;
    return {
      ok: false,
      code: e.code,
      attempt: e.attempt,
      message: e.message,
      ms: performance.now() - t0,
    };
  }
}

/** Waits until `count` events are there, or `timeoutMs` passed. */
async function eventsArrived(count: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  // Bounded by the deadline: every round waits for an event or the time left.
  while (events.length < count && performance.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      wakeEvents = resolve;
      timer = setTimeout(resolve, deadline - performance.now());
    });
    clearTimeout(timer);
  }
}

async function close(): Promise<void> {
  await nat?.close();
  await transport?.close();
}

await answerCommands({
  start,
  discover: async () => {
    const t0 = performance.now();
    const result = await nat!.discover();
    return { nat: result, event: lastNatEvent === result, ms: performance.now() - t0 };
  },
  dial: async (command) => ({
    peerId: (await transport!.connectPeer(command.address as string)).toString(),
  }),
  connect,
  ping: async (command) => {
    try {
      return { ok: true, rttMs: await transport!.ping(command.peer as string) };
    } catch (e) {
      return { ok: false, code: (e as { code?: string }).code, message: (e as Error).message };
    }
  },
  disconnect: async (command) => {
    await transport!.disconnectPeer(command.peer as string);
    return {};
  },
  events: async (command) => {
    await eventsArrived((command.atLeast as number) ?? 0, (command.timeoutMs as number) ?? 0);
    const out = events;
    events = [];
    return { events: out };
  },
}, close);
