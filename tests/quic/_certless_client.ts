/**
 * A QUIC client that presents no TLS certificate, driven by hand on quiche: what a stock QUIC
 * client (curl, a browser) looks like to our endpoint, which requires one.
 *
 * @module
 */
import { loadQuiche, type QuicheConnectionError } from "../../src/quic/_quiche.ts";
import { CRETOAI_ALPN } from "../../src/quic/options.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";

/** What the certificate-less client saw. */
export interface CertlessOutcome {
  /** Whether quiche on the client called its handshake complete. */
  established: boolean;
  /** The CONNECTION_CLOSE the server sent, if any. */
  peerError: QuicheConnectionError | null;
}

/**
 * Dials `server` without a client certificate and runs until the server closes the
 * connection or `timeoutMs` passes.
 */
export async function dialWithoutCertificate(
  server: UdpAddress,
  timeoutMs = 3000,
): Promise<CertlessOutcome> {
  const quiche = loadQuiche();
  const config = quiche.Config.withBoringSslCtx(false, false, null, null, null, "ed25519");
  config.setApplicationProtos([CRETOAI_ALPN]);
  config.setMaxIdleTimeout(timeoutMs);
  config.setMaxRecvUdpPayloadSize(1350);
  config.setMaxSendUdpPayloadSize(1350);
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const local = socket.addr as Deno.NetAddr;
  const conn = quiche.Connection.connect(
    "cretoai",
    crypto.getRandomValues(new Uint8Array(20)),
    { host: local.hostname, port: local.port },
    { host: server.hostname, port: server.port },
    config,
  );
  const out = new Uint8Array(1500);
  let established = false;
  const deadline = Date.now() + timeoutMs;
  try {
    let receiving = socket.receive();
    receiving.catch(() => {}); // rejected once the socket closes
    while (Date.now() < deadline && !conn.isClosed() && conn.peerError() === null) {
      for (;;) {
        let sent;
        try {
          sent = conn.send(out);
        } catch {
          sent = null;
        }
        if (sent === null) break;
        await socket.send(out.subarray(0, sent[0]), {
          transport: "udp",
          hostname: server.hostname,
          port: server.port,
        });
      }
      const wait = Math.min(conn.timeout() ?? 100, 100, Math.max(1, deadline - Date.now()));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const next = await Promise.race([
        receiving,
        new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), wait)),
      ]);
      clearTimeout(timer);
      if (next === null) {
        conn.onTimeout();
        continue;
      }
      receiving = socket.receive();
      receiving.catch(() => {});
      const [data, from] = next as [Uint8Array, Deno.NetAddr];
      try {
        conn.recv(data, {
          from: { host: from.hostname, port: from.port },
          to: { host: local.hostname, port: local.port },
        });
      } catch {
        // quiche drops what it cannot use
      }
      established ||= conn.isEstablished();
    }
    return { established, peerError: conn.peerError() };
  } finally {
    socket.close();
  }
}
