/**
 * Helpers of the node tests: nodes on loopback, and waiting for their events.
 *
 * @module
 */

import type { NodeEventMap } from "../../src/node/events.ts";
import { createNode, type NetworkNode, type NodeOptions } from "../../src/node/node.ts";

/** A started node on 127.0.0.1 with a free port. */
export function loopbackNode(options: NodeOptions = {}): Promise<NetworkNode> {
  return createNode({
    ...options,
    config: { listenAddr: "127.0.0.1", quicPort: 0, ...options.config },
  });
}

/** `HOST:PORT` of a started node. */
export function addressOf(node: NetworkNode): string {
  return `127.0.0.1:${node.localAddr.port}`;
}

/** Resolves with the next event of `type` that `match` accepts; rejects after `ms`. */
export function nextNodeEvent<K extends keyof NodeEventMap & string>(
  node: NetworkNode,
  type: K,
  match: (e: NodeEventMap[K]) => boolean = () => true,
  ms = 15_000,
): Promise<NodeEventMap[K]> {
  return new Promise((resolve, reject) => {
    const listener = (e: NodeEventMap[K]) => {
      if (!match(e)) return;
      clearTimeout(timer);
      node.removeEventListener(type, listener);
      resolve(e);
    };
    const timer = setTimeout(() => {
      node.removeEventListener(type, listener);
      reject(new Error(`no ${type} event within ${ms} ms`));
    }, ms);
    node.addEventListener(type, listener);
  });
}

/** Resolves once the node holds `count` peers (checked at each connection); rejects after `ms`. */
export async function untilPeers(node: NetworkNode, count: number, ms = 15_000): Promise<void> {
  if (node.peers().length >= count) return;
  await nextNodeEvent(node, "peer:connected", () => node.peers().length >= count, ms);
}
