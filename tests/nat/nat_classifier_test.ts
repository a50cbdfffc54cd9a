import assert from "node:assert/strict";
import {
  classifyFiltering,
  classifyMapping,
  classifyNat,
  type FilteringSample,
  type MappingSample,
  type NatBehavior,
  type NatType,
} from "../../src/nat/mod.ts";

const P = { hostname: "192.0.2.1", port: 3478 }; // primary
const A = { hostname: "192.0.2.2", port: 3479 }; // RFC 5780 alternate
const AP = { hostname: A.hostname, port: P.port }; // alternate IP, primary port
const X = (port: number) => ({ hostname: "203.0.113.5", port });

/** RFC 5780 mapping tests I, II, III as a NAT with behaviour `b` would answer them. */
function mappingSamples(b: Exclude<NatBehavior, "unknown">): MappingSample[] {
  switch (b) {
    case "endpoint-independent":
      return [{ destination: P, mapped: X(40000) }, { destination: AP, mapped: X(40000) }];
    case "address-dependent":
      return [
        { destination: P, mapped: X(40000) },
        { destination: AP, mapped: X(40001) },
        { destination: A, mapped: X(40001) },
      ];
    case "address-and-port-dependent":
      return [
        { destination: P, mapped: X(40000) },
        { destination: AP, mapped: X(40001) },
        { destination: A, mapped: X(40002) },
      ];
  }
}

/** RFC 5780 filtering tests II and III as a NAT with behaviour `b` would let them through. */
function filteringSamples(b: Exclude<NatBehavior, "unknown">): FilteringSample[] {
  const both: FilteringSample = { server: P, changeIp: true, changePort: true };
  const port: FilteringSample = { server: P, changeIp: false, changePort: true };
  switch (b) {
    case "endpoint-independent":
      return [{ ...both, responseFrom: A }];
    case "address-dependent":
      return [both, { ...port, responseFrom: { hostname: P.hostname, port: A.port } }];
    case "address-and-port-dependent":
      return [both, port];
  }
}

const behaviours = [
  "endpoint-independent",
  "address-dependent",
  "address-and-port-dependent",
] as const;

for (const mapping of behaviours) {
  for (const filtering of behaviours) {
    Deno.test(`classifyNat: ${mapping} mapping, ${filtering} filtering`, () => {
      const v = classifyNat({
        mapping: mappingSamples(mapping),
        filtering: filteringSamples(filtering),
        localAddresses: [{ hostname: "10.1.0.2", port: 40000 }],
      });
      const type: NatType = mapping === "endpoint-independent" ? "Cone" : "Symmetric";
      assert.equal(v.type, type);
      assert.equal(v.mapping, mapping);
      assert.equal(v.filtering, filtering);
      assert.deepEqual(v.publicAddress, X(40000));
      assert.equal(v.behindNat, true);
      assert.ok(v.reasons.length >= 2, v.reasons.join("\n"));
    });
  }
}

Deno.test("classifyMapping: two plain servers on different IPs", () => {
  const s2 = { hostname: "198.51.100.9", port: 3478 };
  assert.equal(
    classifyMapping([{ destination: P, mapped: X(1) }, { destination: s2, mapped: X(1) }]),
    "endpoint-independent",
  );
  // Differs by IP, but no two ports of one IP were tried: cannot tell AD from APD.
  const v = classifyNat({
    mapping: [{ destination: P, mapped: X(1) }, { destination: s2, mapped: X(2) }],
  });
  assert.equal(v.mapping, "unknown");
  assert.equal(v.type, "Symmetric");
  assert.equal(v.filtering, "unknown");
  assert.equal(v.behindNat, undefined);
});

Deno.test("classifyMapping: same IP, different ports", () => {
  const P2 = { hostname: P.hostname, port: 3479 };
  // Equal: EIM or ADM, undecided without a second IP.
  assert.equal(
    classifyMapping([{ destination: P, mapped: X(1) }, { destination: P2, mapped: X(1) }]),
    "unknown",
  );
  assert.equal(
    classifyMapping([{ destination: P, mapped: X(1) }, { destination: P2, mapped: X(2) }]),
    "address-and-port-dependent",
  );
});

Deno.test("classifyNat: too few samples give Unknown", () => {
  assert.equal(classifyNat({ mapping: [] }).type, "Unknown");
  assert.equal(classifyNat({ mapping: [] }).publicAddress, undefined);
  const one = classifyNat({ mapping: [{ destination: P, mapped: X(1) }] });
  assert.equal(one.type, "Unknown");
  assert.equal(one.mapping, "unknown");
  assert.deepEqual(one.publicAddress, X(1));
  // Repeats to one destination are not a second destination.
  assert.equal(
    classifyMapping([{ destination: P, mapped: X(1) }, { destination: P, mapped: X(1) }]),
    "unknown",
  );
});

Deno.test("classifyNat: reflexive address is local means no NAT and a cone", () => {
  const local = { hostname: "198.51.100.20", port: 5000 };
  const v = classifyNat({
    mapping: [{ destination: P, mapped: local }],
    localAddresses: [{ hostname: "::ffff:198.51.100.20", port: 5000 }],
  });
  assert.equal(v.behindNat, false);
  assert.equal(v.mapping, "endpoint-independent");
  assert.equal(v.type, "Cone");
});

Deno.test("classifyFiltering: partial and unusable probes", () => {
  const both: FilteringSample = { server: P, changeIp: true, changePort: true };
  const port: FilteringSample = { server: P, changeIp: false, changePort: true };
  assert.equal(classifyFiltering([]), "unknown");
  // Only "other IP and port" tried and blocked: AD or APD.
  assert.equal(classifyFiltering([both]), "unknown");
  // Only "other port" tried and it came: EI or AD.
  assert.equal(
    classifyFiltering([{ ...port, responseFrom: { hostname: P.hostname, port: A.port } }]),
    "unknown",
  );
  // Only "other port" tried and blocked: APD either way.
  assert.equal(classifyFiltering([port]), "address-and-port-dependent");
  // The server ignored CHANGE-REQUEST and answered from its primary address: proves nothing.
  assert.equal(classifyFiltering([{ ...both, responseFrom: P }]), "unknown");
  assert.equal(
    classifyFiltering([{ ...both, responseFrom: P }, { ...port, responseFrom: P }]),
    "unknown",
  );
  // A change-IP-only probe is not an RFC 5780 test and is not counted.
  assert.equal(
    classifyFiltering([{ server: P, changeIp: true, changePort: false, responseFrom: AP }]),
    "unknown",
  );
});
