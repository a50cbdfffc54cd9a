/**
 * The QUIC core: an endpoint on the quiche binding of `@matrixai/quic`, its connections and
 * streams, and the UDP socket beneath.
 *
 * @module
 */
export { type ConnectOptions, QuicEndpoint, type QuicEndpointStats } from "./endpoint.ts";
export { type CloseOptions, QuicConnection, type QuicConnectionStats } from "./connection.ts";
export { QuicStream } from "./stream.ts";
export { type CongestionControl, CRETOAI_ALPN, type QuicEndpointOptions } from "./options.ts";
export {
  type CertificateExtension,
  generateCertificate,
  type GenerateCertificateOptions,
  type TlsCertificate,
} from "./certificate.ts";
export { checkAddress, formatAddress, parseAddress } from "./address.ts";
export { SessionCache } from "./session_cache.ts";
export { type RetryTokenOptions, RetryTokens } from "./retry_token.ts";
export type { RawDatagramHandler, RawDatagramPort, UdpAddress } from "./datagram_port.ts";
export {
  type DatagramReceiver,
  type DatagramSocket,
  DenoUdpSocket,
  type DenoUdpSocketOptions,
} from "./udp_socket.ts";
export { LinuxBatchSocket, type LinuxBatchSocketOptions } from "./linux_batch_socket.ts";
export { LinuxHybridSocket, type LinuxHybridSocketOptions } from "./linux_hybrid_socket.ts";
export type { LinuxUdpSocketOptions } from "./linux_udp_options.ts";
