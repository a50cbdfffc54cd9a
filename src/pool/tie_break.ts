/**
 * The rule both peers apply when they dialed each other at the same time and now hold two
 * connections between them.
 *
 * @module
 */

import { describe } from "../errors.ts";

/**
 * Decides, after a simultaneous dial, whether to keep the connection this node dialed
 * (`true`) or the one the remote peer dialed (`false`).
 *
 * The connection dialed by the peer whose id is smaller, compared as strings by UTF-16 code
 * units (JavaScript `<`, not `localeCompare`, so every runtime and locale agrees), is kept.
 * Both sides reach the same answer without talking: `keepOutbound(a, b) === !keepOutbound(b, a)`.
 * The other connection should be closed with `APP_ERROR_DUPLICATE_CONNECTION` once streams on
 * it are drained.
 *
 * @example
 * ```ts
 * import { keepOutbound } from "@cretoai/network/pool";
 *
 * console.assert(keepOutbound("12D3KooA", "12D3KooB") === true);
 * console.assert(keepOutbound("12D3KooB", "12D3KooA") === false);
 * ```
 *
 * @param localPeerId This node's peer id.
 * @param remotePeerId The other peer's id.
 * @returns `true` to keep the outbound connection and close the inbound one; `false` for the
 * reverse.
 * @throws {RangeError} If both ids are equal: a node does not connect to itself.
 */
export function keepOutbound(localPeerId: string, remotePeerId: string): boolean {
  if (localPeerId === remotePeerId) {
    throw new RangeError(
      `Cannot break a dial tie as 'remotePeerId' must differ from 'localPeerId': both are ${
        describe(localPeerId)
      }`,
    );
  }
  return localPeerId < remotePeerId;
}
