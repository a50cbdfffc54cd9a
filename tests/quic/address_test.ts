import assert from "node:assert/strict";
import { InvalidAddressError } from "../../src/errors.ts";
import { checkAddress, formatAddress, parseAddress } from "../../src/quic/address.ts";

Deno.test("address: IPv4, bracketed IPv6 and localhost parse", () => {
  assert.deepEqual(parseAddress("1.2.3.4:9001"), { hostname: "1.2.3.4", port: 9001 });
  assert.deepEqual(parseAddress("[::1]:1"), { hostname: "::1", port: 1 });
  assert.deepEqual(parseAddress("[fe80::1:2]:65535"), { hostname: "fe80::1:2", port: 65535 });
  assert.deepEqual(parseAddress("[::ffff:1.2.3.4]:80"), { hostname: "::ffff:1.2.3.4", port: 80 });
  assert.deepEqual(parseAddress("localhost:80"), { hostname: "127.0.0.1", port: 80 });
  assert.deepEqual(parseAddress("0.0.0.0:443"), { hostname: "0.0.0.0", port: 443 });
  assert.deepEqual(parseAddress("255.255.255.255:7"), { hostname: "255.255.255.255", port: 7 });
});

/** Asserts ERR_INVALID_ADDRESS, with the value seen and `rule` in the message. */
function assertInvalid(fn: () => unknown, shown: string, rule: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof InvalidAddressError, `expected InvalidAddressError, got ${e}`);
    assert.equal(e.code, "ERR_INVALID_ADDRESS");
    assert.ok(e.message.includes(JSON.stringify(shown)), `${shown} in: ${e.message}`);
    assert.match(e.message, rule);
    return;
  }
  assert.fail(`accepted ${shown}`);
}

Deno.test("address: malformed text is ERR_INVALID_ADDRESS naming the value", () => {
  assertInvalid(() => parseAddress("nonsense"), "nonsense", /HOST:PORT/);
  assertInvalid(() => parseAddress(""), "", /HOST:PORT/);
  assertInvalid(() => parseAddress("[::1"), "[::1", /\[IPv6\]:PORT/);
  assertInvalid(() => parseAddress("[::1]9000"), "[::1]9000", /\[IPv6\]:PORT/);
  assertInvalid(() => parseAddress("example.com:80"), "example.com:80", /"example.com"/);
  assertInvalid(() => parseAddress("256.1.1.1:80"), "256.1.1.1:80", /host/);
  assertInvalid(() => parseAddress("01.2.3.4:80"), "01.2.3.4:80", /host/);
  assertInvalid(() => parseAddress("1.2.3:80"), "1.2.3:80", /host/);
  assertInvalid(() => parseAddress("[:::1]:80"), "[:::1]:80", /host/);
  assertInvalid(() => parseAddress("[]:80"), "[]:80", /host/);
  assertInvalid(() => parseAddress(":80"), ":80", /host/);
});

Deno.test("address: ports outside 1-65535 are refused with the port seen", () => {
  for (const port of ["0", "65536", "99999", "-1", "1.5", "", "80a", "123456", " 80"]) {
    assertInvalid(
      () => parseAddress(`127.0.0.1:${port}`),
      `127.0.0.1:${port}`,
      new RegExp(`1 to 65535, got "${port.replace(".", "\\.")}"`),
    );
  }
});

Deno.test("address: checkAddress validates objects and maps localhost", () => {
  assert.deepEqual(checkAddress({ hostname: "localhost", port: 1 }), {
    hostname: "127.0.0.1",
    port: 1,
  });
  assert.deepEqual(checkAddress({ hostname: "::", port: 2 }), { hostname: "::", port: 2 });
  assertInvalid(() => checkAddress({ hostname: "127.0.0.1", port: 0 }), "127.0.0.1:0", /got 0/);
  assertInvalid(
    () => checkAddress({ hostname: "127.0.0.1", port: 1.5 }),
    "127.0.0.1:1.5",
    /got 1\.5/,
  );
  assertInvalid(() => checkAddress({ hostname: "nowhere", port: 1 }), "nowhere:1", /"nowhere"/);
  assertInvalid(() => checkAddress({ hostname: "::g", port: 1 }), "[::g]:1", /host/);
});

Deno.test("address: a non-string is refused, not thrown as a TypeError", () => {
  assertInvalid(() => parseAddress(42 as unknown as string), "42", /expected a string/);
});

Deno.test("address: formatAddress brackets IPv6 and round-trips with parseAddress", () => {
  for (const text of ["1.2.3.4:5", "[::1]:9001", "[2001:db8::7]:443"]) {
    assert.equal(formatAddress(parseAddress(text)), text);
  }
  assert.equal(formatAddress({ hostname: "::", port: 0 }), "[::]:0");
});
