/**
 * discoverNat against a simulated NAT and simulated STUN servers in memory: every RFC 4787
 * mapping x filtering combination, servers without RFC 5780, and no server at all.
 */
import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import { discoverNat, type NatBehavior, StunClient } from "../../src/nat/mod.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import { bindingSuccess, changeFlagsOf, FakePort, txOf } from "./_fakes.ts";

type Known = Exclude<NatBehavior, "unknown">;
const P = { hostname: "192.0.2.1", port: 3478 };
const A = { hostname: "192.0.2.2", port: 3479 };
const PUBLIC_IP = "203.0.113.5";
const key = (a: UdpAddress) => `${a.hostname}:${a.port}`;

/**
 * A NAT with the given behaviours in front of `port`, and STUN servers on `servers` (IPs with
 * both ports of `P`/`A` when `rfc5780`, which then answer CHANGE-REQUEST and send
 * OTHER-ADDRESS).
 */
function simulate(
  port: FakePort,
  nat: { mapping: Known; filtering: Known },
  servers: { rfc5780: boolean; ips: string[] },
): void {
  const mappings = new Map<string, number>();
  const contacted = new Set<string>();
  port.onSend = (s) => {
    if (!servers.ips.includes(s.to.hostname)) return;
    const mapKey = nat.mapping === "endpoint-independent"
      ? ""
      : nat.mapping === "address-dependent"
      ? s.to.hostname
      : key(s.to);
    if (!mappings.has(mapKey)) mappings.set(mapKey, 40000 + mappings.size);
    contacted.add(key(s.to));
    contacted.add(s.to.hostname);
    const flags = servers.rfc5780 ? changeFlagsOf(s.data) : 0;
    const from = {
      hostname: flags & 4
        ? (s.to.hostname === P.hostname ? A.hostname : P.hostname)
        : s.to.hostname,
      port: flags & 2 ? (s.to.port === P.port ? A.port : P.port) : s.to.port,
    };
    const allowed = nat.filtering === "endpoint-independent" ||
      (nat.filtering === "address-dependent" && contacted.has(from.hostname)) ||
      contacted.has(key(from));
    if (!allowed) return;
    const response = bindingSuccess(txOf(s.data), {
      mapped: { hostname: PUBLIC_IP, port: mappings.get(mapKey)! },
      ...(servers.rfc5780 ? { other: A, origin: from } : {}),
    });
    queueMicrotask(() => port.deliver(response, from));
  };
}

const behaviours: Known[] = [
  "endpoint-independent",
  "address-dependent",
  "address-and-port-dependent",
];
// Silent servers give up quickly: negative outcomes are by construction, not by loss.
const fast = { rto: 2, rc: 2, rm: 2 };

for (const mapping of behaviours) {
  for (const filtering of behaviours) {
    Deno.test(`discoverNat (simulated): ${mapping} mapping, ${filtering} filtering`, async () => {
      const port = new FakePort();
      simulate(port, { mapping, filtering }, { rfc5780: true, ips: [P.hostname, A.hostname] });
      using client = new StunClient(port, fast);
      const nat = await discoverNat(client, { servers: [P] });
      assert.equal(nat.rfc5780, true);
      assert.equal(nat.mapping, mapping, nat.reasons.join("\n"));
      assert.equal(nat.filtering, filtering, nat.reasons.join("\n"));
      assert.equal(nat.type, mapping === "endpoint-independent" ? "Cone" : "Symmetric");
      assert.deepEqual(nat.publicAddress, { hostname: PUBLIC_IP, port: 40000 });
      assert.equal(nat.behindNat, true); // FakePort is bound to 10.1.0.2
      // Filtering tests run before anything is sent to the alternate IP.
      const firstToAlt = port.sent.findIndex((s) => s.to.hostname === A.hostname);
      const lastChange = port.sent.findLastIndex((s) => changeFlagsOf(s.data) !== 0);
      assert.ok(lastChange < firstToAlt, "a CHANGE-REQUEST was sent after contacting A's IP");
    });
  }
}

Deno.test("discoverNat (simulated): servers without RFC 5780 are compared", async () => {
  const S2 = { hostname: "198.51.100.9", port: 3478 };
  for (
    const [mapping, type] of [["endpoint-independent", "Cone"], [
      "address-dependent",
      "Symmetric",
    ]] as const
  ) {
    const port = new FakePort();
    simulate(port, { mapping, filtering: "address-and-port-dependent" }, {
      rfc5780: false,
      ips: [P.hostname, S2.hostname],
    });
    using client = new StunClient(port, fast);
    const nat = await discoverNat(client, { servers: [P, S2] });
    assert.equal(nat.rfc5780, false);
    assert.equal(nat.type, type);
    assert.equal(nat.mapping, mapping === "endpoint-independent" ? mapping : "unknown");
    assert.equal(nat.filtering, "unknown");
    assert.ok(port.sent.every((s) => changeFlagsOf(s.data) === 0), "no CHANGE-REQUEST sent");
  }
});

Deno.test("discoverNat (simulated): first server dead, second answers and becomes primary", async () => {
  const port = new FakePort();
  const dead = { hostname: "192.0.2.99", port: 3478 };
  simulate(port, { mapping: "endpoint-independent", filtering: "endpoint-independent" }, {
    rfc5780: true,
    ips: [P.hostname, A.hostname],
  });
  using client = new StunClient(port, fast);
  const nat = await discoverNat(client, {
    servers: [dead, P],
    localAddresses: [{ hostname: PUBLIC_IP, port: 40000 }],
  });
  assert.deepEqual(nat.server, P);
  assert.equal(nat.behindNat, false);
  assert.equal(nat.type, "Cone");
});

Deno.test("discoverNat (simulated): no server answers gives ERR_NAT_TRAVERSAL_FAILED", async () => {
  const port = new FakePort();
  using client = new StunClient(port, fast);
  await assert.rejects(
    discoverNat(client, { servers: [P, A] }),
    (e: unknown) =>
      e instanceof NetworkError && e.code === "ERR_NAT_TRAVERSAL_FAILED" &&
      /192\.0\.2\.1:3478, 192\.0\.2\.2:3479/.test(e.message) &&
      e.cause instanceof NetworkError && e.cause.code === "ERR_TIMEOUT",
  );
  await assert.rejects(discoverNat(client, { servers: [] }), /'servers' must be a non-empty list/);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    discoverNat(client, { servers: [P], signal: ac.signal }),
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_ABORTED",
  );
});
