/**
 * A {@link DatagramSocket} decorator that runs QUIC through TURN relays transparently: datagrams
 * to a peer registered as relayed leave as ChannelData to that peer's TURN server, and
 * ChannelData from the server comes up as a datagram from the peer's address. The QUIC
 * endpoint above sees the peer as an ordinary address; the end-to-end handshake is unchanged,
 * so the relay sees only ciphertext.
 *
 * ChannelData starts with 0x40-0x4F, like a QUIC short header; the two are told apart by
 * source address, as RFC 9443 does: only datagrams from a TURN server with a registered peer
 * are unwrapped.
 *
 * @module
 */

import type { UdpAddress } from "../quic/datagram_port.ts";
import type { DatagramReceiver, DatagramSocket } from "../quic/udp_socket.ts";
import { InvalidAddressError } from "../errors.ts";
import { formatAddress, isIpLiteral, sameIp } from "./_address.ts";
import { decodeStunMessage } from "./_stun_codec.ts";
import {
  CHANNEL_HEADER,
  channelOf,
  channelPayload,
  DATA_INDICATION,
  encodeChannelData,
  isChannelData,
  writeChannelHeader,
} from "./_turn_codec.ts";
import { type TurnClient, TurnError } from "./turn_client.ts";

/** Counters of a {@link RelaySocket}. */
export interface RelaySocketStats {
  /** Datagrams sent to relayed peers (as ChannelData). */
  relayedOut: number;
  /** Datagrams received from relayed peers (ChannelData or Data indications, unwrapped). */
  relayedIn: number;
  /**
   * Datagrams for a relayed peer dropped because its TURN allocation had expired (or, rarely,
   * because a full-size datagram had no room left for the ChannelData header).
   */
  droppedExpired: number;
}

interface Peer {
  /** The peer's address as the endpoint uses it (its relayed or public address). */
  address: UdpAddress;
  turn: TurnClient;
  channel: number;
  server: Server;
}

interface Server {
  address: UdpAddress;
  turn: TurnClient;
  byChannel: Map<number, Peer>;
}

/**
 * Wraps a datagram socket so that registered peers are reached through a TURN relay. Pass
 * it to `QuicEndpoint.bind({ socket })`, allocate a {@link TurnClient} on the endpoint, and
 * register each peer to relay with {@link RelaySocket.addPeer}; everything else passes
 * through unchanged (STUN/TURN control messages go up to the endpoint's raw handlers, where
 * the TURN client listens).
 *
 * @example QUIC to a peer's relayed address
 * ```ts ignore
 * import { DenoUdpSocket, RelaySocket, TurnClient } from "@cretoai/network";
 * import { QuicEndpoint } from "@cretoai/network/quic";
 *
 * const relay = new RelaySocket(DenoUdpSocket.bind({ hostname: "0.0.0.0", port: 0 }));
 * const endpoint = await QuicEndpoint.bind({ socket: relay });
 * const turn = await TurnClient.allocate(endpoint, {
 *   server: { hostname: "192.0.2.1", port: 3478 },
 *   username: "test",
 *   password: "secret",
 * });
 * // The peer's relayed address, learned out of band (signalling, DHT record, ...).
 * const peer = { hostname: "192.0.2.1", port: 49170 };
 * await relay.addPeer(peer, turn);
 * const conn = await endpoint.connect(peer);
 * // Close in this order: connections, the TURN client (frees the allocation), the endpoint.
 * await turn.close();
 * await endpoint.close();
 * ```
 */
export class RelaySocket implements DatagramSocket {
  readonly localAddr: UdpAddress;
  readonly sendBufferSize: number;
  readonly #inner: DatagramSocket;
  // Both maps keyed by port first: one number lookup per datagram, then a hostname compare.
  readonly #peers = new Map<number, Peer[]>();
  readonly #servers = new Map<number, Server[]>();
  // The inner buffers, each seen through a view past the ChannelData header room.
  readonly #views = new WeakMap<Uint8Array, Uint8Array>();
  #current: Uint8Array | undefined;
  /** Whether the current buffer was handed out past the header room. */
  #shifted = false;
  #stats: RelaySocketStats = { relayedOut: 0, relayedIn: 0, droppedExpired: 0 };

  /**
   * Wraps a socket. The wrapper owns it from now on: {@link close} closes it.
   *
   * @example
   * ```ts
   * import { DenoUdpSocket, RelaySocket } from "@cretoai/network";
   *
   * const relay = new RelaySocket(DenoUdpSocket.bind({ hostname: "127.0.0.1", port: 0 }));
   * console.assert(relay.sendBufferSize === 1500 - 4);
   * await relay.close();
   * ```
   *
   * @param inner The socket to send and receive on; not yet started.
   */
  constructor(inner: DatagramSocket) {
    this.#inner = inner;
    this.localAddr = inner.localAddr;
    // Every send buffer keeps 4 bytes in front for the ChannelData header.
    this.sendBufferSize = inner.sendBufferSize - CHANNEL_HEADER;
  }

  /** Called once when a send buffer frees up (the inner socket's). */
  get onWritable(): (() => void) | undefined {
    return this.#inner.onWritable;
  }

  set onWritable(callback: (() => void) | undefined) {
    this.#inner.onWritable = callback;
  }

  /** Datagrams the system refused to send, plus relayed ones dropped for an expired allocation. */
  get sendErrors(): number {
    return this.#inner.sendErrors + this.#stats.droppedExpired;
  }

  /** Counters of relayed traffic. */
  get stats(): Readonly<RelaySocketStats> {
    return { ...this.#stats };
  }

  /**
   * Relays a peer through a TURN allocation from now on: binds a channel to the peer (which
   * also installs its permission), then sends datagrams for the peer as ChannelData and
   * delivers the peer's ChannelData as coming from `peer`. Registering the same peer again
   * moves it to the given client.
   *
   * @example
   * ```ts ignore
   * const channel = await relay.addPeer({ hostname: "192.0.2.1", port: 49170 }, turn);
   * ```
   *
   * @param peer The address the endpoint uses for the peer: its relayed address on a TURN
   * server, or its public address if it is reachable directly from the server.
   * @param turn A TURN client allocated on the endpoint above this socket.
   * @returns The channel number.
   * @throws {InvalidAddressError} If the peer is not an IP literal with a port 1-65535.
   * @throws {TurnError} If the channel cannot be bound (see {@link TurnClient.bindChannel}).
   */
  async addPeer(peer: UdpAddress, turn: TurnClient): Promise<number> {
    if (!isIpLiteral(peer?.hostname)) {
      throw new InvalidAddressError(String(peer?.hostname), "a relayed peer must be an IP literal");
    }
    const channel = await turn.bindChannel(peer);
    this.removePeer(peer);
    const serverAddress = turn.server;
    let servers = this.#servers.get(serverAddress.port);
    if (servers === undefined) this.#servers.set(serverAddress.port, servers = []);
    let server = servers.find((s) => s.turn === turn);
    if (server === undefined) {
      server = { address: serverAddress, turn, byChannel: new Map() };
      servers.push(server);
    }
    const entry: Peer = {
      address: { hostname: peer.hostname, port: peer.port },
      turn,
      channel,
      server,
    };
    server.byChannel.set(channel, entry);
    let peers = this.#peers.get(peer.port);
    if (peers === undefined) this.#peers.set(peer.port, peers = []);
    peers.push(entry);
    return channel;
  }

  /**
   * Stops relaying a peer: datagrams to it go out directly again. The channel stays bound on
   * the server until it expires.
   *
   * @param peer The address given to {@link addPeer}.
   * @returns Whether the peer was relayed.
   */
  removePeer(peer: UdpAddress): boolean {
    const peers = this.#peers.get(peer.port);
    const at = peers?.findIndex((p) => sameHost(p.address.hostname, peer.hostname)) ?? -1;
    if (peers === undefined || at < 0) return false;
    const [entry] = peers.splice(at, 1);
    if (peers.length === 0) this.#peers.delete(peer.port);
    const server = entry.server;
    server.byChannel.delete(entry.channel);
    if (server.byChannel.size === 0) {
      const servers = this.#servers.get(server.address.port)!;
      servers.splice(servers.indexOf(server), 1);
      if (servers.length === 0) this.#servers.delete(server.address.port);
    }
    return true;
  }

  /**
   * Whether datagrams to `peer` go through a relay.
   *
   * @param peer An address.
   * @returns `true` if it was registered with {@link addPeer}.
   */
  isRelayed(peer: UdpAddress): boolean {
    return this.#peer(peer) !== undefined;
  }

  start(receiver: DatagramReceiver): void {
    this.#inner.start((data, from) => {
      // Only ChannelData (0x40-0x4F) and Data indications (0x00 0x17) can be relayed traffic.
      const first = data[0];
      if (((first & 0xf0) === 0x40 || first === 0) && this.#servers.size > 0) {
        const server = this.#server(from);
        if (server !== undefined && this.#unwrap(server, data, from, receiver)) return;
      }
      receiver(data, from);
    });
  }

  nextSendBuffer(): Uint8Array | null {
    const buffer = this.#inner.nextSendBuffer();
    if (buffer === null) return null;
    this.#current = buffer;
    // Nobody relayed: the inner buffer itself, so a wrapped socket costs nothing until used.
    this.#shifted = this.#peers.size > 0;
    if (!this.#shifted) return buffer;
    let view = this.#views.get(buffer);
    if (view === undefined) {
      view = buffer.subarray(CHANNEL_HEADER);
      this.#views.set(buffer, view);
    }
    return view;
  }

  send(length: number, to: UdpAddress): void {
    const buffer = this.#current;
    if (buffer === undefined) throw new Error("send() without a buffer from nextSendBuffer()");
    const peer = this.#peers.size === 0 ? undefined : this.#peer(to);
    if (peer === undefined) {
      // A direct datagram written past the headroom: moved to the buffer's start (a memmove
      // of at most one MTU).
      if (this.#shifted) buffer.copyWithin(0, CHANNEL_HEADER, CHANNEL_HEADER + length);
      this.#inner.send(length, to);
      return;
    }
    // Not handed to the inner socket in these two cases, so the buffer stays free.
    if (peer.turn.expired) {
      this.#stats.droppedExpired++;
      return;
    }
    if (!this.#shifted) {
      // Handed out before the peer was registered: make room for the header.
      if (length + CHANNEL_HEADER > buffer.byteLength) {
        this.#stats.droppedExpired++;
        return;
      }
      buffer.copyWithin(CHANNEL_HEADER, 0, length);
    }
    writeChannelHeader(buffer, peer.channel, length);
    this.#stats.relayedOut++;
    this.#inner.send(CHANNEL_HEADER + length, peer.server.address);
  }

  sendCopy(data: Uint8Array, to: UdpAddress): Promise<void> {
    const peer = this.#peers.size === 0 ? undefined : this.#peer(to);
    if (peer === undefined) return this.#inner.sendCopy(data, to);
    if (peer.turn.expired) {
      this.#stats.droppedExpired++;
      return Promise.reject(
        new TurnError(
          "ERR_TURN_ALLOCATION_EXPIRED",
          peer.server.address,
          `cannot send to relayed peer ${formatAddress(to)}: the allocation expired`,
        ),
      );
    }
    this.#stats.relayedOut++;
    return this.#inner.sendCopy(encodeChannelData(peer.channel, data), peer.server.address);
  }

  /** Closes the inner socket. Close the TURN clients first: they free their allocations. */
  close(): Promise<void> {
    return this.#inner.close();
  }

  /** Delivers relayed data upward; `false` when the datagram is not for a registered peer. */
  #unwrap(server: Server, data: Uint8Array, from: UdpAddress, receiver: DatagramReceiver) {
    if (isChannelData(data)) {
      const peer = server.byChannel.get(channelOf(data));
      // A channel bound on the client but not registered here: the client delivers it.
      if (peer === undefined) return server.turn.handleDatagram(data, from);
      this.#stats.relayedIn++;
      receiver(channelPayload(data), peer.address);
      return true;
    }
    if (data.byteLength < 2 || ((data[0] << 8) | data[1]) !== DATA_INDICATION) return false;
    const message = decodeStunMessage(data);
    if (message?.peerAddress === undefined || message.data === undefined) return false;
    const peer = this.#peer(message.peerAddress);
    if (peer === undefined || peer.server !== server) return server.turn.handleDatagram(data, from);
    this.#stats.relayedIn++;
    receiver(message.data, peer.address);
    return true;
  }

  #peer(to: UdpAddress): Peer | undefined {
    const peers = this.#peers.get(to.port);
    if (peers === undefined) return undefined;
    for (const p of peers) if (sameHost(p.address.hostname, to.hostname)) return p;
    return undefined;
  }

  #server(from: UdpAddress): Server | undefined {
    const servers = this.#servers.get(from.port);
    if (servers === undefined) return undefined;
    for (const s of servers) if (sameHost(s.address.hostname, from.hostname)) return s;
    return undefined;
  }
}

function sameHost(a: string, b: string): boolean {
  return a === b || sameIp(a, b);
}
