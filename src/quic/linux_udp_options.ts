/**
 * Options of the libc-backed sockets (`LinuxBatchSocket`, `LinuxHybridSocket`), their defaults
 * and checks.
 *
 * @module
 */

import { NetworkError } from "../errors.ts";

/** Options of both libc-backed sockets, `LinuxBatchSocket` and `LinuxHybridSocket`. */
export interface LinuxUdpSocketOptions {
  /** IPv4 or IPv6 address literal to bind. */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /**
   * Send buffers in the pool. A buffer returns to the pool as soon as `sendmmsg` took it, at
   * the end of the event-loop turn that queued it.
   * @default {1024}
   */
  sendBuffers?: number;
  /**
   * Size of each send buffer in bytes.
   * @default {1500}
   */
  sendBufferSize?: number;
  /**
   * Datagrams one `recvmmsg` call can receive.
   * @default {64}
   */
  receiveBatch?: number;
  /**
   * Largest datagram a `recvmmsg` batch receives whole; longer ones are dropped and counted in
   * the socket's `receiveTruncated`.
   * @default {4096}
   */
  receiveBufferSize?: number;
  /**
   * Whether a run of datagrams to one address leaves as one UDP GSO message (`UDP_SEGMENT`),
   * which the kernel cuts into datagrams: cheaper than one message each. Turned off by itself
   * when the kernel refuses it.
   * @default {true}
   */
  gso?: boolean;
  /**
   * Kernel socket buffer size (`SO_RCVBUF` and `SO_SNDBUF`) in bytes. The `SO_*BUFFORCE`
   * variants are tried first, so a privileged process is not capped by `net.core.rmem_max`.
   * @default {4194304}
   */
  kernelBufferSize?: number;
}

/**
 * Throws `ERR_INVALID_CONFIG` naming the option unless `value` is an integer in range.
 *
 * @param name The option.
 * @param value The value seen.
 * @param min Smallest allowed.
 * @param max Largest allowed.
 */
export function checkIntegerOption(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new NetworkError(
      "ERR_INVALID_CONFIG",
      `${name} must be an integer from ${min} to ${max}, got ${value}`,
    );
  }
}

/**
 * {@linkcode LinuxUdpSocketOptions} with the defaults filled in, checked.
 *
 * @throws {NetworkError} `ERR_INVALID_CONFIG` for an option out of range.
 */
export function resolveLinuxUdpOptions(
  options: LinuxUdpSocketOptions,
): Required<LinuxUdpSocketOptions> {
  const resolved: Required<LinuxUdpSocketOptions> = {
    hostname: options.hostname,
    port: options.port,
    sendBuffers: options.sendBuffers ?? 1024,
    sendBufferSize: options.sendBufferSize ?? 1500,
    receiveBatch: options.receiveBatch ?? 64,
    receiveBufferSize: options.receiveBufferSize ?? 4096,
    kernelBufferSize: options.kernelBufferSize ?? 4 << 20,
    gso: options.gso ?? true,
  };
  checkIntegerOption("sendBuffers", resolved.sendBuffers, 16, 65536);
  checkIntegerOption("sendBufferSize", resolved.sendBufferSize, 1200, 65535);
  checkIntegerOption("receiveBatch", resolved.receiveBatch, 1, 1024);
  checkIntegerOption("receiveBufferSize", resolved.receiveBufferSize, 1500, 65536);
  checkIntegerOption("kernelBufferSize", resolved.kernelBufferSize, 65536, 1 << 30);
  return resolved;
}
