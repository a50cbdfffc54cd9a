/**
 * Deno's send op, shared by the sockets whose descriptor Deno owns (`DenoUdpSocket`, and
 * `LinuxHybridSocket` when its socket is full or for `sendCopy`).
 *
 * @module
 */

import { NetworkError } from "../errors.ts";
import type { UdpAddress } from "./datagram_port.ts";

/**
 * Sends through `Deno.DatagramConn.send`, reusing the `Deno.NetAddr` of the previous
 * destination: datagrams mostly go where the previous one went.
 */
export class DenoSender {
  readonly #conn: Deno.DatagramConn;
  #lastTo: UdpAddress | undefined;
  #lastAddr: Deno.NetAddr = { transport: "udp", hostname: "", port: 0 };

  constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
  }

  /** Sends `data` itself: the caller leaves it unchanged until the promise settles. */
  send(data: Uint8Array, to: UdpAddress): Promise<number> {
    return this.#conn.send(data, this.#netAddr(to));
  }

  /** Sends a copy of `data`; a refusal rejects with `ERR_INVALID_ADDRESS` naming `to`. */
  async sendCopy(data: Uint8Array, to: UdpAddress): Promise<void> {
    try {
      await this.#conn.send(data.slice(), this.#netAddr(to));
    } catch (e) {
      throw new NetworkError(
        "ERR_INVALID_ADDRESS",
        `Cannot send to ${to.hostname}:${to.port}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  #netAddr(to: UdpAddress): Deno.NetAddr {
    if (to !== this.#lastTo) {
      this.#lastTo = to;
      this.#lastAddr = { transport: "udp", hostname: to.hostname, port: to.port };
    }
    return this.#lastAddr;
  }
}
