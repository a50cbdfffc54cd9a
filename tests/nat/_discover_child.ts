/**
 * Runs NAT discovery from inside a lab namespace and prints the result as one JSON line.
 * Spawned by nat_lab_test.ts:
 * `deno run -A --unstable-net _discover_child.ts [--rto MS] [--rc N] [--rm N] [--no-filtering] IP:PORT...`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { discoverNat, StunClient } from "../../src/nat/mod.ts";
import { UdpTestPort } from "./_udp_port.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    rto: { type: "string", default: "100" },
    rc: { type: "string", default: "4" },
    rm: { type: "string", default: "4" },
    "no-filtering": { type: "boolean", default: false },
  },
});
const servers = positionals.map((a) => {
  const i = a.lastIndexOf(":");
  return { hostname: a.slice(0, i), port: Number(a.slice(i + 1)) };
});
await using port = UdpTestPort.listen("0.0.0.0", 0);
using client = new StunClient(port, {
  rto: Number(values.rto),
  rc: Number(values.rc),
  rm: Number(values.rm),
});
const started = performance.now();
const result = await discoverNat(client, {
  servers,
  filtering: !values["no-filtering"],
  signal: AbortSignal.timeout(30_000),
});
console.log(
  JSON.stringify({ ...result, localAddr: port.localAddr, ms: performance.now() - started }),
);
