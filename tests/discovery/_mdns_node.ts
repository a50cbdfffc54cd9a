/**
 * A discovery node for the namespace tests: started by `ip netns exec`, it prints one JSON
 * object per line (`ready`, `discovered`, `expired`, `stats`, `closed`) and takes commands on
 * stdin, one a line: `stats` and `close` (which also ends the script).
 *
 * Usage: `_mdns_node.ts PEER_ID PORT INTERFACE [TTL_SECONDS]`
 *
 * @module
 */

import { MdnsDiscovery } from "../../src/discovery/mod.ts";
import { readLines } from "../_lines.ts";

const [peerId, port, iface, ttl] = Deno.args;
const print = (o: Record<string, unknown>) => console.log(JSON.stringify(o));

const mdns = new MdnsDiscovery({
  peerId,
  port: Number(port),
  interfaces: [iface],
  ttlSecs: ttl === undefined ? undefined : Number(ttl),
});
mdns.on("discovered", (peer) => print({ event: "discovered", ...peer }));
mdns.on("expired", ({ peerId }) => print({ event: "expired", peerId }));
mdns.on("error", (e) => print({ event: "error", message: e.message }));
await mdns.start();
print({ event: "ready" });

// No Deno.exit() after `close`: the script must end by itself, which it only does when the
// service left no socket or timer behind. The test checks that it does.
for await (const line of readLines(Deno.stdin.readable)) {
  const cmd = line.trim();
  if (cmd === "stats") print({ event: "stats", ...mdns.stats() });
  if (cmd === "close") {
    await mdns.close();
    print({ event: "closed" });
    break;
  }
}
await mdns.close();
