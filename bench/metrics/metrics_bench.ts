/**
 * What recording a message's metrics costs on the message path: nothing to speak of without a
 * meter provider (one `?.` on undefined), and the provider's own cost with one.
 *
 * Run without a provider, then with Deno's (it exports nowhere within the run):
 * `deno bench bench/metrics/metrics_bench.ts`
 * `OTEL_DENO=true OTEL_METRIC_EXPORT_INTERVAL=600000 deno bench bench/metrics/metrics_bench.ts`
 *
 * @module
 */
import { networkMetrics } from "../../src/metrics/_network_metrics.ts";

const metrics = networkMetrics();
const provider = metrics === undefined ? "no meter provider" : "Deno's meter provider";
let sink = 0;

Deno.bench("message path without the hook", { group: "one message", baseline: true }, () => {
  sink += 100;
});

Deno.bench(`message path with the hook, ${provider}`, { group: "one message" }, () => {
  sink += 100;
  metrics?.messageSent("consensus", 100);
});

Deno.bench(`send with its round trip recorded, ${provider}`, { group: "one message" }, () => {
  const startedAt = metrics && performance.now();
  sink += 100;
  metrics?.messageSent("consensus", 100);
  if (startedAt !== undefined) {
    metrics?.messageAcknowledged("consensus", performance.now() - startedAt);
  }
});

globalThis.addEventListener("unload", () => {
  if (sink < 0) console.log(sink); // keeps the loop bodies from being optimised away
});
