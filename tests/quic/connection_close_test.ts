/**
 * A listener's close reaches the dialer it refuses, over real QUIC on loopback, also in the
 * states where quiche 0.18 would not send it by itself.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ConnectionClosedError } from "../../src/errors.ts";
import { generateCertificate, type TlsCertificate } from "../../src/quic/certificate.ts";
import type { QuicConnection } from "../../src/quic/connection.ts";
import { startUdpRelay } from "../transport/_udp_relay.ts";
import { pair, waitFor, within } from "./_util.ts";

/** A certificate of about `bytes` bytes, as large as a node's (its identity binding). */
async function largeCertificate(bytes: number): Promise<TlsCertificate> {
  // 1.3.6.1.4.1.55555.1: a private-enterprise OID nothing reads.
  const oid = Uint8Array.of(0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03, 0x01);
  return await generateCertificate({ extensions: [{ oid, value: new Uint8Array(bytes) }] });
}

Deno.test("connection close: a resumed dialer refused while the listener is in 0-RTT hears the code", async () => {
  // With certificates of several KiB (a node's are 6.8 KiB), the listener's first flight fills
  // its congestion window: before the fix, quiche 0.18 then never sent the close.
  const [serverCertificate, clientCertificate] = await Promise.all([
    largeCertificate(7000),
    largeCertificate(7000),
  ]);
  // Idle timeouts far beyond the test's bound: a lost close fails `within`, not a timeout.
  await using p = await pair(
    { certificate: serverCertificate, idleTimeoutMs: 60_000 },
    { certificate: clientCertificate, idleTimeoutMs: 60_000 },
  );
  // A first connection leaves the dialer a session ticket (it arrives after the handshake:
  // one round trip on a stream waits for it).
  const first = p.server.accept();
  const warm = await p.client.connect(p.server.localAddr);
  const accepted = await first;
  await (await warm.openUni()).write(new Uint8Array([1]), true);
  await (await accepted.acceptUni()).readAll();
  await warm.close();
  await accepted.closed;

  for (let round = 0; round < 3; round++) {
    const refused = p.server.accept().then((conn) => {
      const state = { established: conn.isEstablished, earlyData: conn.isInEarlyData };
      conn.close({ code: 0x16, reason: "refused" }).catch(() => {});
      return { conn, state };
    });
    const dialed: QuicConnection | Error = await within(
      p.client.connect(p.server.localAddr, { timeoutMs: 60_000 }).catch((e: Error) => e),
      10_000,
      `round ${round}: connect`,
    );
    const { conn: inbound, state } = await refused;
    // The path under test: the session resumed, the listener refused before its handshake
    // completed (the dialer's Finished still on its way).
    assert.deepEqual(state, { established: false, earlyData: true }, `round ${round}`);
    const heard = dialed instanceof Error
      ? dialed
      : await within(dialed.closed, 10_000, `round ${round}: the dialer hears the close`);
    assert.ok(heard instanceof ConnectionClosedError, `round ${round}: ${heard}`);
    assert.deepEqual(
      [heard.isApp, heard.errorCode, heard.reason],
      [true, 0x16, "refused"],
      `round ${round}`,
    );
    // The listener keeps nothing once its close is out and drained.
    await within(inbound.closed, 10_000, `round ${round}: the listener's side ends`);
  }
  // The warm-up connection, closed by its peer, drains for three probe timeouts first.
  await waitFor(() => p.server.stats().openConnections === 0, 10_000, "the listener is empty");
});

Deno.test("connection close: a lost CONNECTION_CLOSE is sent again when the peer's next packet comes", async () => {
  await using p = await pair({ idleTimeoutMs: 60_000 }, { idleTimeoutMs: 60_000 });
  await using relay = startUdpRelay(p.server.localAddr);
  const accepted = p.server.accept();
  const conn = await p.client.connect({ hostname: "127.0.0.1", port: relay.port });
  const peer = await accepted;
  // A round trip, so that nothing of the server's is left to send or to acknowledge.
  const stream = await conn.openBidi();
  await stream.write(new Uint8Array([1]));
  const served = await peer.acceptBidi();
  assert.deepEqual(await served.read(), new Uint8Array([1]));
  await served.write(new Uint8Array([2]));
  assert.deepEqual(await stream.read(), new Uint8Array([2]));
  // The server's next datagram, its CONNECTION_CLOSE, is lost on the way.
  const lost = relay.drop(1);
  peer.close({ code: 0x16, reason: "refused" }).catch(() => {});
  await within(lost, 10_000, "the close is dropped");
  // The client, still open, sends again: the server answers with its close.
  await stream.write(new Uint8Array([3])).catch(() => {});
  const heard = await within(conn.closed, 10_000, "the client hears the close");
  assert.deepEqual([heard.isApp, heard.errorCode, heard.reason], [true, 0x16, "refused"]);
});

Deno.test("connection close: a dialer's certificate over 16 KiB ends its own connection at the session ticket", async () => {
  // The listener's NewSessionTicket carries the dialer's certificate, and BoringSSL refuses a
  // post-handshake message over 16 KiB: the dialer closes with PROTOCOL_VIOLATION, whatever
  // the listener thinks of it. A node's certificate (6.8 KiB) is far below.
  const outcomes: string[] = [];
  for (const bytes of [14 * 1024, 16 * 1024]) {
    await using p = await pair({}, { certificate: await largeCertificate(bytes) });
    const accepted = p.server.accept();
    const conn = await p.client.connect(p.server.localAddr);
    const peer = await accepted;
    // A round trip after the ticket was sent: the dialer either answers or is gone.
    const outcome = await within(
      (async () => {
        try {
          const stream = await conn.openBidi();
          await stream.write(new Uint8Array([1]), true);
          const served = await peer.acceptBidi();
          await served.write(await served.readAll(), true);
          await stream.readAll();
          return "open";
        } catch {
          const closed = await conn.closed;
          return `${closed.isApp ? "app" : "transport"} ${closed.errorCode}`;
        }
      })(),
      10_000,
      `${bytes} bytes: a round trip or a close`,
    );
    outcomes.push(outcome);
    await conn.close();
  }
  assert.deepEqual(outcomes, ["open", "transport 10"]);
});
