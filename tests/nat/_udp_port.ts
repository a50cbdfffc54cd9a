/**
 * A {@link RawDatagramPort} over a plain `Deno.listenDatagram` socket, so the NAT tests run
 * on real UDP before the QUIC endpoint exists. Needs `--unstable-net`.
 *
 * @module
 */

import type {
  RawDatagramHandler,
  RawDatagramPort,
  UdpAddress,
} from "../../src/quic/datagram_port.ts";

/** Why UDP tests cannot run in this process, or `undefined` when they can. */
export function udpSkipReason(): string | undefined {
  return typeof Deno.listenDatagram === "function"
    ? undefined
    : "Deno.listenDatagram is missing: run the tests with --unstable-net";
}

/**
 * A UDP socket that hands every datagram to its raw handlers in order, until one consumes it.
 *
 * @example
 * ```ts ignore
 * await using port = UdpTestPort.listen("127.0.0.1");
 * const off = port.addRawHandler((data, from) => { console.log(data, from); return true; });
 * ```
 */
export class UdpTestPort implements RawDatagramPort, AsyncDisposable {
  readonly localAddr: UdpAddress;
  readonly #conn: Deno.DatagramConn;
  readonly #handlers: RawDatagramHandler[] = [];
  readonly #loop: Promise<void>;
  #closed = false;

  /**
   * Binds a socket.
   *
   * @param hostname Address to bind.
   * @param port Port to bind; 0 picks a free one.
   * @returns The port, already receiving.
   */
  static listen(hostname = "127.0.0.1", port = 0): UdpTestPort {
    return new UdpTestPort(Deno.listenDatagram({ transport: "udp", hostname, port }));
  }

  private constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
    const addr = conn.addr as Deno.NetAddr;
    this.localAddr = { hostname: addr.hostname, port: addr.port };
    this.#loop = this.#receive();
  }

  async sendRaw(data: Uint8Array, to: UdpAddress): Promise<void> {
    await this.#conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port });
  }

  addRawHandler(handler: RawDatagramHandler): () => void {
    this.#handlers.push(handler);
    return () => {
      const i = this.#handlers.indexOf(handler);
      if (i >= 0) this.#handlers.splice(i, 1);
    };
  }

  /** Closes the socket and waits for the receive loop to end. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#conn.close();
    }
    await this.#loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #receive(): Promise<void> {
    // Ends when close() makes receive() reject.
    while (!this.#closed) {
      let data: Uint8Array;
      let from: Deno.NetAddr;
      try {
        const [d, addr] = await this.#conn.receive();
        data = d;
        from = addr as Deno.NetAddr;
      } catch (e) {
        if (this.#closed) return;
        throw e;
      }
      const source = { hostname: from.hostname, port: from.port };
      // A copy: a handler may remove itself while being called.
      [...this.#handlers].some((h) => h(data, source));
    }
  }
}
