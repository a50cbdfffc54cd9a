/**
 * The NAT modules' address rules: scopes, and which addresses a peer's word is enough to send
 * punches or relay traffic to.
 *
 * @module
 */

import assert from "node:assert/strict";
import { addressScope, withBasis } from "../../src/nat/_address.ts";

Deno.test("addressScope: unusable, loopback, private and public, IPv4 and IPv6", () => {
  const cases: [string, string][] = [
    ["0.0.0.0", "unusable"],
    ["224.0.0.251", "unusable"],
    ["255.255.255.255", "unusable"],
    ["::", "unusable"],
    ["ff02::1", "unusable"],
    ["not an address", "unusable"],
    ["127.0.0.1", "loopback"],
    ["127.9.9.9", "loopback"],
    ["::1", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "private"],
    ["169.254.1.1", "private"],
    ["fd00::1", "private"],
    ["fe80::1", "private"],
    ["::ffff:10.0.0.1", "private"],
    ["172.32.0.1", "public"],
    ["100.128.0.1", "public"],
    ["203.0.113.7", "public"],
    ["2001:db8::1", "public"],
  ];
  for (const [host, scope] of cases) assert.equal(addressScope(host), scope, host);
});

Deno.test("withBasis: public always; loopback and private only in a basis scope; at most N hosts", () => {
  const at = (hostname: string, port = 1000) => ({ hostname, port });
  const offered = [
    at("203.0.113.7"),
    at("203.0.113.7", 1001),
    at("127.0.0.1"),
    at("10.0.0.9"),
    at("0.0.0.0"),
    at("224.0.0.1"),
    at("198.51.100.1"),
    at("198.51.100.2"),
  ];
  // A requester seen on the internet: only public targets, two hosts.
  assert.deepEqual(withBasis(offered, ["198.51.100.50"], 2), [
    at("203.0.113.7"),
    at("203.0.113.7", 1001),
    at("198.51.100.1"),
  ]);
  // Seen on loopback (a test, a local proxy): loopback too, never the private range.
  assert.deepEqual(withBasis(offered, ["127.0.0.1"], 3), [
    at("203.0.113.7"),
    at("203.0.113.7", 1001),
    at("127.0.0.1"),
    at("198.51.100.1"),
  ]);
  // Seen on a private network: private too.
  assert.deepEqual(withBasis(offered, ["10.0.0.1"], 2), [
    at("203.0.113.7"),
    at("203.0.113.7", 1001),
    at("10.0.0.9"),
  ]);
  assert.deepEqual(withBasis([at("0.0.0.0"), at("224.0.0.1")], ["0.0.0.0", "224.0.0.9"], 8), []);
  assert.deepEqual(withBasis(offered, [], 0), []);
});
