import assert from "node:assert/strict";
import { InvalidConfigError } from "../../src/errors.ts";
import { planHolePunch, predictPorts } from "../../src/nat/mod.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import { VirtualClock } from "../_virtual_clock.ts";

const ip = "203.0.113.9";
const at = (port: number, hostname = ip): UdpAddress => ({ hostname, port });

Deno.test("predictPorts: constant small steps predict, anything else does not", () => {
  assert.deepEqual(predictPorts([40000, 40001], 3), [40002, 40003, 40004]);
  assert.deepEqual(predictPorts([40000, 40002, 40004], 2), [40006, 40008]);
  assert.deepEqual(predictPorts([40000, 40002, 40005], 2), []); // not constant
  assert.deepEqual(predictPorts([40000, 39999], 2), []); // going down
  assert.deepEqual(predictPorts([40000, 40100], 2), []); // step above maxStep
  assert.deepEqual(predictPorts([40000, 40100], 2, 100), [40200, 40300]);
  assert.deepEqual(predictPorts([40000], 2), []);
  assert.deepEqual(predictPorts([65533, 65534], 5), [65535]); // never past 65535
});

Deno.test("planHolePunch: a cone peer gets one packet per round until the deadline", () => {
  const plan = planHolePunch({
    startAt: 5000,
    peer: { addresses: [at(40000), at(40000), at(9000, "10.2.0.2")], natType: "Cone" },
    interval: 50,
    duration: 200,
  });
  assert.deepEqual(plan.targets, [at(40000), at(9000, "10.2.0.2")]); // duplicates dropped
  assert.deepEqual(
    plan.sends.map((s) => `${s.at}>${s.to.port}`),
    [
      "5000>40000",
      "5000>9000",
      "5050>40000",
      "5050>9000",
      "5100>40000",
      "5100>9000",
      "5150>40000",
      "5150>9000",
    ],
  );
  assert.equal(plan.until, 5200);
  assert.equal(plan.feasible, true);
});

Deno.test("planHolePunch: maxPackets bounds whole rounds", () => {
  const plan = planHolePunch({
    startAt: 0,
    peer: { addresses: [at(1), at(2), at(3)] },
    interval: 10,
    duration: 10_000,
    maxPackets: 10,
  });
  assert.equal(plan.sends.length, 9); // three full rounds; a fourth would exceed 10
  assert.equal(plan.sends.at(-1)!.at, 20);
  assert.equal(plan.until, 10_000);
});

Deno.test("planHolePunch: symmetric peer with sequential ports gets predicted targets", () => {
  const plan = planHolePunch({
    startAt: 0,
    peer: { addresses: [at(40010), at(40012)], natType: "Symmetric" },
    selfNatType: "Symmetric",
    predictedPorts: 3,
    interval: 100,
    duration: 100,
  });
  assert.deepEqual(plan.targets.map((t) => t.port), [40010, 40012, 40014, 40016, 40018]);
  assert.equal(plan.sends.length, 5);
  assert.equal(plan.feasible, true);
  assert.match(plan.reasons.join("\n"), /predicted 40014, 40016, 40018/);
});

Deno.test("planHolePunch: symmetric on both sides without prediction is not feasible", () => {
  const plan = planHolePunch({
    startAt: 0,
    peer: { addresses: [at(40010), at(51234)], natType: "Symmetric" },
    selfNatType: "Symmetric",
  });
  assert.equal(plan.feasible, false);
  assert.deepEqual(plan.targets.map((t) => t.port), [40010, 51234]);
  assert.match(plan.reasons.join("\n"), /use a relay/);
  // One symmetric side with a cone on the other can punch: the cone's mapping is stable.
  assert.equal(
    planHolePunch({
      startAt: 0,
      peer: { addresses: [at(1)], natType: "Symmetric" },
      selfNatType: "Cone",
    })
      .feasible,
    true,
  );
});

Deno.test("planHolePunch: executed on a virtual clock, stops at the first packet from the peer", async () => {
  const clock = new VirtualClock();
  const plan = planHolePunch({
    startAt: 1000,
    peer: { addresses: [at(40000), at(9000, "10.2.0.2")], natType: "Cone" },
    interval: 50,
    duration: 1000,
  });
  const sent: string[] = [];
  let connected = false;
  const cancels = plan.sends.map((s) =>
    clock.schedule(() => {
      if (!connected) sent.push(`${clock.now()}>${s.to.port}`);
    }, s.at)
  );
  const giveUp = clock.schedule(() => assert.fail("gave up"), plan.until);
  await clock.advanceTo(1120);
  connected = true; // the peer's punch arrived at 1120
  for (const c of cancels) c();
  giveUp();
  await clock.advanceTo(3000);
  assert.deepEqual(sent, [
    "1000>40000",
    "1000>9000",
    "1050>40000",
    "1050>9000",
    "1100>40000",
    "1100>9000",
  ]);
  assert.equal(clock.timers, 0);
});

Deno.test("planHolePunch: invalid options say which and the value", () => {
  const peer = { addresses: [at(1)] };
  assert.throws(() => planHolePunch({ startAt: 0, peer: { addresses: [] } }), /'peer.addresses'/);
  assert.throws(() => planHolePunch({ startAt: NaN, peer }), InvalidConfigError);
  assert.throws(
    () => planHolePunch({ startAt: 0, peer, interval: 0 }),
    /'interval' .* current value is 0/,
  );
  assert.throws(() => planHolePunch({ startAt: 0, peer, duration: -1 }), /'duration'/);
  assert.throws(() => planHolePunch({ startAt: 0, peer, maxPackets: 1.5 }), /'maxPackets'/);
  assert.throws(() => planHolePunch({ startAt: 0, peer, predictedPorts: -1 }), /'predictedPorts'/);
});
