/**
 * Topic publish/subscribe over the transport, after libp2p's gossipsub: a pure router state
 * machine (`GossipRouter`), its wire format, and content-hash message ids.
 *
 * @module
 */

export * from "./message_id.ts";
export * from "./codec.ts";
export * from "./router.ts";
export * from "./gossip_service.ts";
export * from "./catch_up.ts";
