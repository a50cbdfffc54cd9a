/**
 * cretoai-network: peer-to-peer QUIC networking for Deno, the network layer of a DAG/BFT
 * consensus system. Nodes find each other (mDNS, Kademlia), get through NATs (STUN, hole
 * punching), and talk over authenticated, post-quantum protected QUIC connections.
 *
 * @example Two endpoints and one stream
 * ```ts
 * import { QuicEndpoint } from "@cretoai/network";
 *
 * await using a = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
 * await using b = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
 * const incoming = b.accept();
 * const conn = await a.connect(b.localAddr);
 * const stream = await conn.openUni();
 * await stream.write(new TextEncoder().encode("hi"), true);
 * const peer = await incoming;
 * console.assert((await (await peer.acceptUni()).readAll()).length === 2);
 * ```
 *
 * @module
 */
export * from "./src/errors.ts";
export * from "./src/quic/mod.ts";
export * from "./src/transport/mod.ts";
export * from "./src/identity/mod.ts";
export * from "./src/handshake/mod.ts";
export * from "./src/clock.ts";
export * from "./src/pool/mod.ts";
export * from "./src/nat/mod.ts";
export * from "./src/discovery/mod.ts";
export * from "./src/gossip/mod.ts";
