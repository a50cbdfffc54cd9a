import assert from "node:assert/strict";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import {
  APP_ERROR_BUFFER_FULL,
  APP_ERROR_MESSAGE_TOO_LARGE,
  APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP,
  APP_ERROR_TOO_MANY_PENDING_HANDSHAKES,
  APP_ERROR_TOO_MANY_STREAMS,
  limitError,
  ResourceLimits,
} from "../../src/pool/limits.ts";

Deno.test("ResourceLimits has documented defaults and rejects invalid limits", () => {
  assert.deepEqual(new ResourceLimits().limits, {
    inboundPerIp: 8,
    pendingHandshakes: 64,
    streamsPerPeer: 256,
    messageBytes: 4 * 1024 * 1024,
    bufferedBytesPerPeer: 16 * 1024 * 1024,
  });
  for (const field of ["inboundPerIp", "streamsPerPeer", "messageBytes"]) {
    for (const value of [0, -1, 2.5, NaN]) {
      assert.throws(
        () => new ResourceLimits({ [field]: value }),
        (e: unknown) =>
          e instanceof InvalidConfigError && e.field === field && e.message.includes(`'${field}'`),
      );
    }
  }
});

Deno.test("ResourceLimits: inbound connections per source IP", () => {
  const limits = new ResourceLimits({ inboundPerIp: 2 });
  assert.equal(limits.openInbound("192.0.2.1"), undefined);
  assert.equal(limits.openInbound("192.0.2.1"), undefined);
  assert.equal(limits.openInbound("192.0.2.2"), undefined);
  assert.deepEqual(limits.openInbound("192.0.2.1"), {
    kind: "inboundPerIp",
    limit: 2,
    value: 3,
    subject: "192.0.2.1",
    appErrorCode: APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP,
    message: `Limit exceeded: 'inboundPerIp' allows at most 2 for "192.0.2.1": value would be 3`,
  });
  assert.equal(limits.inboundFrom("192.0.2.1"), 2, "a refused connection is not counted");
  limits.closeInbound("192.0.2.1");
  assert.equal(limits.openInbound("192.0.2.1"), undefined);
});

Deno.test("ResourceLimits: pending handshakes", () => {
  const limits = new ResourceLimits({ pendingHandshakes: 1 });
  assert.equal(limits.beginHandshake(), undefined);
  const violation = limits.beginHandshake();
  assert.equal(violation?.appErrorCode, APP_ERROR_TOO_MANY_PENDING_HANDSHAKES);
  assert.equal(violation?.subject, undefined);
  limits.endHandshake();
  limits.endHandshake(); // an extra end must not go negative
  assert.equal(limits.pendingHandshakes, 0);
  assert.equal(limits.beginHandshake(), undefined);
});

Deno.test("ResourceLimits: concurrent streams per peer", () => {
  const limits = new ResourceLimits({ streamsPerPeer: 2 });
  limits.openStream("a");
  limits.openStream("a");
  assert.equal(limits.openStream("b"), undefined);
  const violation = limits.openStream("a");
  assert.equal(violation?.kind, "streamsPerPeer");
  assert.equal(violation?.appErrorCode, APP_ERROR_TOO_MANY_STREAMS);
  limits.closeStream("a");
  assert.equal(limits.streamsOf("a"), 1);
  limits.removePeer("a");
  assert.equal(limits.streamsOf("a"), 0);
});

Deno.test("ResourceLimits: message size, with the error to reject it", () => {
  const limits = new ResourceLimits({ messageBytes: 1000 });
  assert.equal(limits.checkMessage(1000), undefined);
  const violation = limits.checkMessage(1001, "peer-a");
  assert.ok(violation);
  assert.equal(violation.appErrorCode, APP_ERROR_MESSAGE_TOO_LARGE);
  const error = limitError(violation);
  assert.ok(error instanceof NetworkError);
  assert.equal(error.code, "ERR_MESSAGE_TOO_LARGE");
  assert.match(
    error.message,
    /'messageBytes' allows at most 1000 for "peer-a": value would be 1001/,
  );
});

Deno.test("ResourceLimits: buffered bytes per peer", () => {
  const limits = new ResourceLimits({ bufferedBytesPerPeer: 100 });
  assert.equal(limits.addBuffered("a", 60), undefined);
  const violation = limits.addBuffered("a", 41);
  assert.equal(violation?.value, 101);
  assert.equal(violation?.appErrorCode, APP_ERROR_BUFFER_FULL);
  assert.equal(limitError(violation!).code, "ERR_LIMIT_EXCEEDED");
  assert.equal(limits.bufferedFor("a"), 60);
  limits.releaseBuffered("a", 60);
  assert.equal(limits.addBuffered("a", 100), undefined);
});

Deno.test("ResourceLimits counts violations per reason, and Infinity disables a limit", () => {
  const limits = new ResourceLimits({ messageBytes: 1, streamsPerPeer: Infinity });
  limits.checkMessage(2);
  limits.checkMessage(3);
  limits.check("messageBytes", 1);
  for (let i = 0; i < 10_000; i++) assert.equal(limits.openStream("a"), undefined);
  assert.deepEqual(limits.violations(), {
    inboundPerIp: 0,
    pendingHandshakes: 0,
    streamsPerPeer: 0,
    messageBytes: 2,
    bufferedBytesPerPeer: 0,
  });
});
