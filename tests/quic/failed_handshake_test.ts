import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { ConnectionClosedError } from "../../src/errors.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { dialWithoutCertificate } from "./_certless_client.ts";
import { pair } from "./_util.ts";

Deno.test("a client without a certificate is refused with TLS alert 116, counted and logged", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["cretoai", "quic"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    await using server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
    const outcome = await dialWithoutCertificate(server.localAddr);
    // TLS 1.3: the client finishes its side before the server checks its certificate.
    assert.equal(outcome.established, true);
    assert.deepEqual(
      outcome.peerError && {
        isApp: outcome.peerError.isApp,
        errorCode: outcome.peerError.errorCode,
      },
      { isApp: false, errorCode: 0x100 + 116 },
    );
    const stats = server.stats();
    assert.equal(stats.handshakesFailed, 1);
    assert.deepEqual(stats.handshakeFailures, { tls_alert_116: 1 });
    const line = records.find((r) => r.level === "debug" && r.properties.key === "tls_alert_116");
    assert.ok(line, "a debug line for the failed handshake");
    assert.match(String(line.properties.why), /TLS alert 116 \(certificate_required\)/);
  } finally {
    await reset();
  }
});

Deno.test("the dialer's error says what the listener refused: no common ALPN is TLS alert 120", async () => {
  await using endpoints = await pair({ alpn: ["other/1"] });
  const error = await endpoints.client.connect(endpoints.server.localAddr).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(error instanceof ConnectionClosedError, String(error));
  assert.equal(error.errorCode, 0x100 + 120);
  assert.match(
    error.message,
    /refused the TLS handshake with TLS alert 120 \(no_application_protocol\)/,
  );
  assert.deepEqual(endpoints.server.stats().handshakeFailures, { tls_alert_120: 1 });
});

Deno.test("a completed handshake does not count as failed", async () => {
  await using endpoints = await pair();
  const accepted = endpoints.server.accept();
  const conn = await endpoints.client.connect(endpoints.server.localAddr);
  const inbound = await accepted;
  await conn.close();
  await inbound.closed;
  assert.equal(endpoints.server.stats().handshakesFailed, 0);
  assert.deepEqual(endpoints.server.stats().handshakeFailures, {});
});
