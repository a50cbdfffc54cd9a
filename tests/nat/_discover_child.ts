/**
 * Runs NAT discovery from inside a lab namespace and prints the result as one JSON line.
 * Spawned by nat_lab_test.ts: `deno run --unstable-net -A _discover_child.ts SERVER:PORT...`
 *
 * @module
 */

import { discoverNat, StunClient } from "../../src/nat/mod.ts";
import { UdpTestPort } from "./_udp_port.ts";

const servers = Deno.args.map((a) => {
  const i = a.lastIndexOf(":");
  return { hostname: a.slice(0, i), port: Number(a.slice(i + 1)) };
});
await using port = UdpTestPort.listen("0.0.0.0", 0);
using client = new StunClient(port, { rto: 100, rc: 4, rm: 4 });
const started = performance.now();
const result = await discoverNat(client, {
  servers,
  signal: AbortSignal.timeout(20_000),
});
console.log(
  JSON.stringify({ ...result, localAddr: port.localAddr, ms: performance.now() - started }),
);
