import assert from "node:assert/strict";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import {
  RFC8489_RETRANSMIT,
  StunClient,
  StunErrorResponse,
  stunRetransmitSchedule,
} from "../../src/nat/mod.ts";
import { bindingError, bindingSuccess, changeFlagsOf, FakePort, txOf } from "./_fakes.ts";
import { settle, VirtualClock } from "../_virtual_clock.ts";

const S1 = { hostname: "192.0.2.1", port: 3478 };
const S2 = { hostname: "192.0.2.2", port: 3478 };
const MAPPED = { hostname: "203.0.113.5", port: 40000 };

async function rejects(p: Promise<unknown>, code: string): Promise<NetworkError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof NetworkError, `not a NetworkError: ${e}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

Deno.test("stunRetransmitSchedule: RFC 8489 values and the scaled-down defaults", () => {
  assert.deepEqual(stunRetransmitSchedule(RFC8489_RETRANSMIT), {
    sendAt: [0, 500, 1500, 3500, 7500, 15500, 31500],
    giveUpAt: 39500,
  });
  assert.deepEqual(stunRetransmitSchedule(), {
    sendAt: [0, 100, 300, 700, 1500],
    giveUpAt: 2300,
  });
  assert.deepEqual(stunRetransmitSchedule({ rto: 10, rc: 1, rm: 3 }), {
    sendAt: [0],
    giveUpAt: 30,
  });
  for (const bad of [{ rto: 0 }, { rto: NaN }, { rc: 0 }, { rc: 1.5 }, { rc: 33 }, { rm: 0 }]) {
    assert.throws(() => stunRetransmitSchedule(bad), InvalidConfigError, JSON.stringify(bad));
  }
  assert.throws(() => stunRetransmitSchedule({ rto: -5 }), /'rto' .* current value is -5/);
});

Deno.test("StunClient: retransmits on the RFC 8489 schedule, then times out (virtual clock)", async () => {
  const clock = new VirtualClock();
  const port = new FakePort(clock);
  using client = new StunClient(port, { clock, rto: 100, rc: 5, rm: 8 });
  const result = client.binding(S1);
  let settled = false;
  result.catch(() => {}).finally(() => settled = true);
  await clock.advanceTo(2299);
  assert.deepEqual(port.sent.map((s) => s.at), [0, 100, 300, 700, 1500]);
  // Retransmissions are the same request: same transaction id and bytes.
  for (const s of port.sent) assert.deepEqual(s.data, port.sent[0].data);
  assert.equal(settled, false);
  await clock.advanceTo(2300);
  const e = await rejects(result, "ERR_TIMEOUT");
  assert.match(e.message, /192\.0\.2\.1:3478 did not answer 5 Binding requests within 2300 ms/);
  assert.equal(client.pendingTransactions, 0);
  assert.equal(clock.timers, 0);
});

Deno.test("StunClient: an answer to a retransmission resolves with attempts and RTT", async () => {
  const clock = new VirtualClock();
  const port = new FakePort(clock);
  using client = new StunClient(port, { clock });
  const result = client.binding(S1, { rto: 50, rc: 4, rm: 2 });
  await clock.advanceTo(160);
  assert.equal(port.sent.length, 3); // 0, 50, 150
  const tx = txOf(port.sent[0].data);
  const other = { hostname: "192.0.2.2", port: 3479 };
  assert.equal(port.deliver(bindingSuccess(tx, { mapped: MAPPED, other, origin: S1 }), S1), true);
  const r = await result;
  assert.deepEqual(r.mapped, MAPPED);
  assert.deepEqual(r.server, S1);
  assert.deepEqual(r.from, S1);
  assert.deepEqual(r.otherAddress, other);
  assert.deepEqual(r.responseOrigin, S1);
  assert.equal(r.requests, 3);
  assert.equal(r.rtt, 160);
  assert.equal(clock.timers, 0);
  // A duplicate answer (to an earlier retransmission) is no longer ours.
  assert.equal(port.deliver(bindingSuccess(tx, { mapped: MAPPED }), S1), false);
});

Deno.test("StunClient: fails over to the next server after a full transaction (virtual clock)", async () => {
  const clock = new VirtualClock();
  const port = new FakePort(clock);
  port.onSend = (s) => {
    if (s.to.hostname === S2.hostname) {
      queueMicrotask(() => port.deliver(bindingSuccess(txOf(s.data), { mapped: MAPPED }), S2));
    }
  };
  using client = new StunClient(port, { clock, rto: 100, rc: 3, rm: 4 });
  const result = client.binding([S1, S2]);
  await clock.advanceTo(1100); // S1: sends at 0, 100, 300; gives up at 700.
  const r = await result;
  assert.deepEqual(r.server, S2);
  assert.deepEqual(port.sent.map((s) => [s.to.hostname, s.at]), [
    ["192.0.2.1", 0],
    ["192.0.2.1", 100],
    ["192.0.2.1", 300],
    ["192.0.2.2", 700],
  ]);
});

Deno.test("StunClient: all servers silent gives ERR_TIMEOUT naming each", async () => {
  const clock = new VirtualClock();
  const port = new FakePort(clock);
  using client = new StunClient(port, { clock, rto: 10, rc: 2, rm: 2 });
  const result = client.binding([S1, S2]);
  result.catch(() => {}); // handled below, after the clock ran
  await clock.advanceTo(100);
  const e = await rejects(result, "ERR_TIMEOUT");
  assert.match(e.message, /192\.0\.2\.1:3478.*192\.0\.2\.2:3478/);
  assert.ok(e.cause instanceof AggregateError);
});

Deno.test("StunClient: error response is read from raw bytes (401 stays 401) and fails over", async () => {
  const clock = new VirtualClock();
  const port = new FakePort(clock);
  using client = new StunClient(port, { clock });
  const single = client.binding(S1);
  port.deliver(bindingError(txOf(port.sent[0].data), 401, "Unauthorized"), S1);
  const e = await rejects(single, "ERR_STUN");
  assert.ok(e instanceof StunErrorResponse);
  assert.equal(e.errorCode, 401);
  assert.equal(e.reason, "Unauthorized");
  assert.match(e.message, /192\.0\.2\.1:3478 answered Binding with error 401/);

  port.onSend = (s) => {
    const tx = txOf(s.data);
    queueMicrotask(() =>
      s.to.hostname === S1.hostname
        ? port.deliver(bindingError(tx, 420, "Unknown Attribute"), S1)
        : port.deliver(bindingSuccess(tx, { mapped: MAPPED }), S2)
    );
  };
  const r = await client.binding([S1, S2], { changePort: true });
  assert.deepEqual(r.server, S2);
});

Deno.test("StunClient: CHANGE-REQUEST flags are encoded", () => {
  const port = new FakePort();
  using client = new StunClient(port, { rto: 1000 });
  const calls = [
    client.binding(S1),
    client.binding(S1, { changePort: true }),
    client.binding(S1, { changeIp: true }),
    client.binding(S1, { changeIp: true, changePort: true }),
  ];
  assert.deepEqual(port.sent.map((s) => changeFlagsOf(s.data)), [0, 2, 4, 6]);
  client.close();
  return Promise.all(calls.map((c) => rejects(c, "ERR_ENDPOINT_CLOSED"))).then(() => {});
});

Deno.test("StunClient: the handler ignores non-STUN, foreign and forged datagrams", async () => {
  const clock = new VirtualClock();
  const port = new FakePort(clock);
  using client = new StunClient(port, { clock });
  const quicLong = new Uint8Array([0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0]);
  assert.equal(client.handleDatagram(quicLong, S1), false); // nothing pending yet
  const pending = client.binding(S1);
  const tx = txOf(port.sent[0].data);
  const good = bindingSuccess(tx, { mapped: MAPPED });
  const badFingerprint = good.slice();
  badFingerprint[badFingerprint.length - 1] ^= 0xff;
  const wrongLength = good.slice(0, good.length - 4);
  const noCookie = good.slice();
  noCookie[4] = 0;
  const otherTx = bindingSuccess(new Uint8Array(12).fill(7), { mapped: MAPPED });
  const request = port.sent[0].data; // a Binding request with our id is not a response
  for (
    const [name, d] of [
      ["QUIC long header", quicLong],
      ["QUIC short header", new Uint8Array([0x40, 1, 2, 3])],
      ["empty", new Uint8Array()],
      ["random", crypto.getRandomValues(new Uint8Array(64))],
      ["bad fingerprint", badFingerprint],
      ["wrong length", wrongLength],
      ["no magic cookie", noCookie],
      ["another transaction", otherTx],
      ["a request", request],
    ] as const
  ) {
    assert.equal(client.handleDatagram(d, S1), false, name);
  }
  assert.equal(client.pendingTransactions, 1);
  // Responses match by transaction id, not by source (CHANGE-REQUEST answers come from elsewhere).
  assert.equal(port.deliver(good, { hostname: "198.51.100.1", port: 9 }), true);
  assert.deepEqual((await pending).from, { hostname: "198.51.100.1", port: 9 });
});

Deno.test("StunClient: abort, closed client, send failure, bad input", async () => {
  const clock = new VirtualClock();
  const port = new FakePort(clock);
  const client = new StunClient(port, { clock });
  assert.equal(port.handlers, 1);

  const ac = new AbortController();
  const aborted = client.binding([S1, S2], { signal: ac.signal });
  ac.abort(new Error("user gave up"));
  await rejects(aborted, "ERR_ABORTED");
  const timedOut = client.binding(S1, {
    signal: AbortSignal.abort(new DOMException("t", "TimeoutError")),
  });
  await rejects(timedOut, "ERR_TIMEOUT");

  port.failSends = new Error("socket closed");
  const e = await rejects(client.binding(S1), "ERR_STUN");
  assert.match(
    e.message,
    /Cannot send a Binding request to 192\.0\.2\.1:3478: Error: socket closed/,
  );
  port.failSends = undefined;

  await assert.rejects(client.binding({ hostname: "stun.example.org", port: 3478 }), /IP literal/);
  await assert.rejects(client.binding({ hostname: "192.0.2.1", port: 0 }), /1-65535/);
  await assert.rejects(client.binding([]), InvalidConfigError);
  await assert.rejects(client.binding(S1, { rto: -1 }), InvalidConfigError);
  assert.throws(() => new StunClient(port, { rc: 0 }), InvalidConfigError);

  client.close();
  client.close();
  assert.equal(port.handlers, 0);
  await rejects(client.binding(S1), "ERR_ENDPOINT_CLOSED");
  assert.equal(clock.timers, 0);
  await settle();
});
