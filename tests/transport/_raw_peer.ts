/**
 * A hand-driven peer for the hostile tests: a bare QuicEndpoint that runs the real handshake
 * (so it is authenticated) and then writes whatever frames a test wants on the wire.
 *
 * @module
 */

import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import type { QuicConnection } from "../../src/quic/connection.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import type { FrameCipher } from "../../src/handshake/frame_cipher.ts";
import type { Identity } from "../../src/identity/identity.ts";
import { decodeControl, encodeControl, encodeLaneHeader } from "../../src/transport/_frames.ts";
import { FrameReader, FrameWriter } from "../../src/transport/_framed_stream.ts";
import { dialSession, type SecureSession } from "../../src/transport/_secure_session.ts";
import { NodeCredentials, PeerCertificateCache } from "../../src/handshake/node_credentials.ts";
import type { QuicTransport } from "../../src/transport/transport.ts";

/** A raw peer connected to a transport, past the handshake, its open and the ready frame. */
export interface RawPeer extends AsyncDisposable {
  endpoint: QuicEndpoint;
  conn: QuicConnection;
  session: SecureSession;
}

/** Connects a raw endpoint to `target` and completes the handshake as the dialer. */
export async function rawPeer(
  target: Pick<QuicTransport, "localAddr">,
  identity: Identity,
  pqEncryption: boolean,
): Promise<RawPeer> {
  const credentials = await NodeCredentials.create(identity);
  const endpoint = await QuicEndpoint.bind({
    hostname: "127.0.0.1",
    certificate: credentials.certificate,
  });
  try {
    const conn = await endpoint.connect({ hostname: "127.0.0.1", port: target.localAddr.port });
    const session = await dialSession(conn, {
      credentials,
      certificateCache: new PeerCertificateCache(),
      pqEncryption,
    });
    const reader = new FrameReader(session.control, session.cipher, 64, session.leftover);
    await new FrameWriter(session.control, session.cipher).write(
      encodeControl({ type: "open", replace: false, generation: 0, incarnation: 1n }),
      false,
      session.unsent, // the ClientFinish, which the session leaves to go with this frame
    );
    const ready = await reader.next();
    if (ready === null || decodeControl(ready)?.type !== "ready") throw new Error("no ready");
    return { endpoint, conn, session, [Symbol.asyncDispose]: () => endpoint.close() };
  } catch (e) {
    await endpoint.close();
    throw e;
  }
}

/** Writes `length u32 | body` on a stream without any sealing. */
export async function writeRawFrame(
  stream: { write(data: Uint8Array): Promise<void> },
  body: Uint8Array,
): Promise<void> {
  const frame = new Uint8Array(4 + body.byteLength);
  new DataView(frame.buffer).setUint32(0, body.byteLength);
  frame.set(body, 4);
  await stream.write(frame);
}

/**
 * Opens a lane stream as a transport does: a new unidirectional stream whose first frame is
 * the header naming `lane` (0 consensus, 1 vertex, 2 other), sealed when the session is.
 *
 * @returns The stream and its cipher, to seal the frames that follow (its counter is past the
 * header's).
 */
export async function openRawLane(
  raw: Pick<RawPeer, "conn" | "session">,
  lane: number,
): Promise<{ stream: QuicStream; cipher: FrameCipher | undefined }> {
  const stream = await raw.conn.openUni();
  const cipher = raw.session.cipher?.forStream(stream.id);
  const header = encodeLaneHeader(lane);
  await writeRawFrame(stream, cipher === undefined ? header : await cipher.seal(header));
  return { stream, cipher };
}
