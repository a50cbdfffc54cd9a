import assert from "node:assert/strict";
import { InvalidConfigError } from "../../src/errors.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import {
  checkInteger,
  CRETOAI_ALPN,
  type QuicEndpointOptions,
  resolveEndpointOptions,
} from "../../src/quic/options.ts";

Deno.test("options: defaults", () => {
  const o = resolveEndpointOptions({});
  assert.equal(o.hostname, "0.0.0.0");
  assert.equal(o.port, 0);
  assert.deepEqual(o.alpn, [CRETOAI_ALPN]);
  assert.equal(CRETOAI_ALPN, "cretoai/1");
  assert.equal(o.congestionControl, "reno");
  assert.equal(o.maxUdpPayloadSize, 1350);
  assert.equal(o.maxStreamsBidi, 1024);
  assert.equal(o.idleTimeoutMs, 30_000);
  assert.equal(o.keepAliveIntervalMs, 10_000);
  assert.equal(o.connectionTimeoutMs, 5_000);
  assert.equal(o.addressValidation, "retry");
  assert.equal(o.earlyData, true);
  assert.equal(o.certificate, undefined);
  assert.equal(o.socket, undefined);
});

Deno.test("options: given values are kept", () => {
  const given: QuicEndpointOptions = {
    hostname: "::1",
    port: 9001,
    alpn: ["a", "b"],
    congestionControl: "bbr",
    maxUdpPayloadSize: 1200,
    initialMaxData: 1,
    maxStreamsBidi: 0,
    idleTimeoutMs: 0,
    keepAliveIntervalMs: 0,
    addressValidation: "none",
    earlyData: false,
    sessionCacheSize: 0,
  };
  const o = resolveEndpointOptions(given);
  for (const [field, value] of Object.entries(given)) {
    assert.deepEqual(o[field as keyof typeof o], value, field);
  }
});

/** Asserts ERR_INVALID_CONFIG naming the field and showing the value. */
function assertInvalid(options: QuicEndpointOptions, field: string, shown: string): void {
  try {
    resolveEndpointOptions(options);
  } catch (e) {
    assert.ok(e instanceof InvalidConfigError, `expected InvalidConfigError, got ${e}`);
    assert.equal(e.code, "ERR_INVALID_CONFIG");
    assert.equal(e.field, field);
    assert.ok(e.message.includes(`'${field}'`), e.message);
    assert.ok(e.message.includes(`current value is ${shown}`), `${shown} in: ${e.message}`);
    return;
  }
  assert.fail(`accepted ${JSON.stringify(options)}`);
}

Deno.test("options: each invalid value names its field and the value seen", () => {
  const cases: [QuicEndpointOptions, string, string][] = [
    [{ hostname: "" }, "hostname", '""'],
    [{ hostname: 5 as unknown as string }, "hostname", "5"],
    [{ port: -1 }, "port", "-1"],
    [{ port: 65536 }, "port", "65536"],
    [{ port: 1.5 }, "port", "1.5"],
    [{ port: "80" as unknown as number }, "port", '"80"'],
    [{ alpn: [] }, "alpn", "[]"],
    [{ alpn: [""] }, "alpn", '[""]'],
    [{ alpn: ["x".repeat(256)] }, "alpn", `["${"x".repeat(20)}`],
    [{ congestionControl: "bbr2" as "bbr" }, "congestionControl", '"bbr2"'],
    [{ maxUdpPayloadSize: 1199 }, "maxUdpPayloadSize", "1199"],
    [{ maxUdpPayloadSize: 1453 }, "maxUdpPayloadSize", "1453"],
    [{ initialMaxData: 0 }, "initialMaxData", "0"],
    [{ initialMaxStreamData: Number.NaN }, "initialMaxStreamData", "NaN"],
    [{ maxStreamsBidi: -1 }, "maxStreamsBidi", "-1"],
    [{ maxStreamsUni: 2 ** 20 + 1 }, "maxStreamsUni", String(2 ** 20 + 1)],
    [{ idleTimeoutMs: -5 }, "idleTimeoutMs", "-5"],
    [{ keepAliveIntervalMs: 0.5 }, "keepAliveIntervalMs", "0.5"],
    [{ connectionTimeoutMs: 0 }, "connectionTimeoutMs", "0"],
    // setTimeout fires at once beyond 2^31-1 ms, so that is the longest timeout.
    [{ idleTimeoutMs: 2 ** 31 }, "idleTimeoutMs", String(2 ** 31)],
    [{ keepAliveIntervalMs: 2 ** 31 }, "keepAliveIntervalMs", String(2 ** 31)],
    [{ connectionTimeoutMs: 2 ** 31 }, "connectionTimeoutMs", String(2 ** 31)],
    [{ addressValidation: "maybe" as "none" }, "addressValidation", '"maybe"'],
    [{ earlyData: "yes" as unknown as boolean }, "earlyData", '"yes"'],
    [{ acceptBacklog: 0 }, "acceptBacklog", "0"],
    [{ receiveConcurrency: 0 }, "receiveConcurrency", "0"],
    [{ sendBuffers: 15 }, "sendBuffers", "15"],
    [{ sessionCacheSize: -1 }, "sessionCacheSize", "-1"],
  ];
  for (const [options, field, shown] of cases) assertInvalid(options, field, shown);
});

Deno.test("options: checkInteger states the rule", () => {
  let err: unknown;
  try {
    checkInteger("retries", 11, 1, 10);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof InvalidConfigError);
  assert.equal(
    err.message,
    "Invalid config: 'retries' must be an integer from 1 to 10: current value is 11",
  );
  checkInteger("retries", 10, 1, 10); // the bounds are inclusive
});

Deno.test("options: QuicEndpoint.bind refuses invalid options before binding", async () => {
  const err = await QuicEndpoint.bind({ hostname: "127.0.0.1", maxUdpPayloadSize: 9000 }).catch(
    (e) => e,
  );
  assert.ok(err instanceof InvalidConfigError);
  assert.equal(err.field, "maxUdpPayloadSize");
  assert.match(err.message, /9000/);
});
