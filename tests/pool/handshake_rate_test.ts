import { assert, assertEquals } from "../_assert.ts";
import { HandshakeRateLimiter } from "../../src/pool/handshake_rate.ts";
import { VirtualClock } from "../_virtual_clock.ts";

Deno.test("HandshakeRateLimiter: an IPv6 /64 is one source however many addresses it uses", () => {
  const rates = new HandshakeRateLimiter({ clock: new VirtualClock() });
  let admitted = 0;
  for (let i = 1; i <= 100; i++) {
    if (rates.take(`2001:db8:0:7:${i.toString(16)}::1`) === undefined) admitted++;
  }
  assertEquals(admitted, 32); // the prefix's burst
  assertEquals(rates.take("2001:db8:0:8::1"), undefined); // the next /64 is another source
  assertEquals(rates.take("2001:db8:0:7::ffff")?.subject, "2001:db8:0:7::/64");
});

Deno.test("HandshakeRateLimiter: refills at the rate; a refused handshake costs the address nothing", async () => {
  const clock = new VirtualClock();
  const rates = new HandshakeRateLimiter({ burstPerIp: 2, ratePerIp: 1, burstPerPrefix: 3, clock });
  assertEquals(rates.take("192.0.2.1"), undefined);
  assertEquals(rates.take("192.0.2.1"), undefined);
  assertEquals(rates.take("192.0.2.1")?.scope, "ip");
  assertEquals(rates.take("192.0.2.2"), undefined);
  // The /24's bucket is empty: 192.0.2.3 is refused by the prefix, its own bucket stays full.
  assertEquals(rates.take("192.0.2.3")?.scope, "prefix");
  await clock.advance(8000); // the prefix refills at 8 per second, the address at 1
  assertEquals(rates.take("192.0.2.3"), undefined);
  assertEquals(rates.take("192.0.2.3"), undefined);
  assertEquals(rates.take("192.0.2.1"), undefined);
});

Deno.test("HandshakeRateLimiter: loopback apart unless limited; the table is bounded", () => {
  const clock = new VirtualClock();
  const open = new HandshakeRateLimiter({ clock });
  for (let i = 0; i < 1000; i++) assert(open.take(i % 2 ? "127.0.0.1" : "::1") === undefined);
  const strict = new HandshakeRateLimiter({ limitLoopback: true, clock });
  for (let i = 0; i < 8; i++) strict.take("127.0.0.1");
  assertEquals(strict.take("127.0.0.1")?.scope, "ip");
  const bounded = new HandshakeRateLimiter({ maxSources: 100, clock });
  for (let i = 0; i < 10_000; i++) bounded.take(`10.${i >> 8 & 255}.${i & 255}.1`);
  assert(bounded.size <= 100, `${bounded.size} buckets`);
});

Deno.test("HandshakeRateLimiter: a refused source is silenced exactly while a take would be refused", async () => {
  const clock = new VirtualClock();
  const rates = new HandshakeRateLimiter({ burstPerIp: 1, ratePerIp: 2, burstPerPrefix: 2, clock });
  assertEquals(rates.silenced("192.0.2.1"), false); // never seen
  assertEquals(rates.take("192.0.2.1"), undefined);
  assertEquals(rates.silenced("192.0.2.1"), false, "an empty bucket alone silences nobody");
  assertEquals(rates.take("192.0.2.1")?.scope, "ip");
  assertEquals(rates.silenced("192.0.2.1"), true);
  assertEquals(rates.silenced("192.0.2.2"), false, "its prefix is not in debt");
  await clock.advance(499);
  assertEquals(rates.silenced("192.0.2.1"), true);
  await clock.advance(1); // one token at 2 per second
  assertEquals(rates.silenced("192.0.2.1"), false);
  assertEquals(rates.take("192.0.2.1"), undefined);
  // A prefix refusal silences the whole prefix.
  assertEquals(rates.take("192.0.2.2"), undefined);
  assertEquals(rates.take("192.0.2.3")?.scope, "prefix");
  assertEquals([rates.silenced("192.0.2.4"), rates.silenced("192.0.3.1")], [true, false]);
  // Loopback is exempt unless limited.
  assertEquals(rates.silenced("127.0.0.1"), false);
});
