import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { InvalidConfigError } from "../../src/errors.ts";
import { type TrafficSample, TrafficWatchdog } from "../../src/transport/traffic_watchdog.ts";

/** Feeds `intervals` samples that each add `step` to the previous one. */
function run(watchdog: TrafficWatchdog, step: Partial<TrafficSample>, intervals: number) {
  const total: TrafficSample = {
    bytesReceived: 0,
    usefulBytesReceived: 0,
    bytesSent: 0,
    packetsSent: 0,
    packetsLost: 0,
  };
  const verdicts = [watchdog.check(total)];
  for (let i = 0; i < intervals; i++) {
    for (const [key, value] of Object.entries(step) as [keyof TrafficSample, number][]) {
      total[key] += value;
    }
    verdicts.push(watchdog.check(total));
  }
  return verdicts.map((v) => v.close);
}

Deno.test("TrafficWatchdog: frames without data (a PATH_CHALLENGE flood) close on the third interval", () => {
  const verdicts = run(new TrafficWatchdog(), { bytesReceived: 1_000_000 }, 3);
  assertEquals(verdicts, [false, false, false, true]);
});

Deno.test("TrafficWatchdog: acknowledgements withheld (most packets lost) close too", () => {
  const verdicts = run(new TrafficWatchdog(), { packetsSent: 1000, packetsLost: 800 }, 3);
  assertEquals(verdicts, [false, false, false, true]);
});

Deno.test("TrafficWatchdog: honest traffic never strikes: bulk both ways, acks of our bulk, idle", () => {
  for (
    const step of [
      // 100 MB of messages received: 5% QUIC overhead.
      { bytesReceived: 105_000_000, usefulBytesReceived: 100_000_000, packetsSent: 40_000 },
      // 100 MB sent: the peer's acknowledgements only.
      { bytesReceived: 2_000_000, bytesSent: 100_000_000, packetsSent: 75_000, packetsLost: 700 },
      // Idle: keep-alive pings.
      { bytesReceived: 300, usefulBytesReceived: 40, packetsSent: 2 },
      // A lossy path: 20% of 1000 packets.
      { bytesReceived: 200_000, usefulBytesReceived: 150_000, packetsSent: 1000, packetsLost: 200 },
    ]
  ) {
    assert(run(new TrafficWatchdog(), step, 20).every((close) => !close), JSON.stringify(step));
  }
});

Deno.test("TrafficWatchdog: one clean interval resets the strikes; options are validated", () => {
  const watchdog = new TrafficWatchdog({ strikes: 2 });
  const base = { usefulBytesReceived: 0, bytesSent: 0, packetsSent: 0, packetsLost: 0 };
  assertEquals(watchdog.check({ ...base, bytesReceived: 0 }).close, false);
  assertEquals(watchdog.check({ ...base, bytesReceived: 1e6 }).close, false);
  assertEquals(watchdog.check({ ...base, bytesReceived: 1e6 }).close, false); // clean
  assertEquals(watchdog.check({ ...base, bytesReceived: 2e6 }).close, false);
  const verdict = watchdog.check({ ...base, bytesReceived: 3e6 });
  assert(verdict.close && verdict.reason.includes("1000000 bytes received without data"));
  assertThrows(() => new TrafficWatchdog({ strikes: 0 }), InvalidConfigError, "strikes");
});
