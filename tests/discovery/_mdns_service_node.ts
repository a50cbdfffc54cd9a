/**
 * A QuicTransport node with an MdnsService for the namespace tests: started by
 * `ip netns exec`, no configured peers. It prints one JSON object per line (`ready`,
 * `discovered`, `expired`, `dial:failed`, `connected`, `disconnected`, `stats`, `mdns-closed`,
 * `closed`) and takes commands on stdin, one a line: `stats`, `close-mdns` (the service only:
 * goodbye, the transport stays) and `close` (service, then transport; the script then ends by
 * itself).
 *
 * Usage: `_mdns_service_node.ts ADDRESS [--no-dial]`
 *
 * @module
 */

import { Identity } from "../../src/identity/identity.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import { MdnsService } from "../../src/discovery/mod.ts";
import { ConnectionClosedError } from "../../src/errors.ts";
import { readLines } from "../_lines.ts";

const [address, ...flags] = Deno.args;
// Each line carries its wall-clock time in milliseconds, for timings across processes.
const print = (o: Record<string, unknown>) => console.log(JSON.stringify({ ...o, t: Date.now() }));

const transport = new QuicTransport({
  identity: Identity.generate(),
  config: { listenAddr: address, quicPort: 0 },
});
const { port } = await transport.bindAndListen();
const mdns = new MdnsService(transport, { dial: !flags.includes("--no-dial") });

transport.addEventListener("peer:connected", (e) =>
  print({
    event: "connected",
    peerId: e.detail.peerId.toString(),
    direction: e.detail.direction,
  }));
transport.addEventListener("peer:disconnected", (e) => {
  const error = e.detail.error;
  print({
    event: "disconnected",
    peerId: e.detail.peerId.toString(),
    errorCode: error instanceof ConnectionClosedError ? error.errorCode : undefined,
    message: error.message,
  });
});
mdns.addEventListener("mdns:discovered", (e) => print({ event: "discovered", ...e.detail }));
mdns.addEventListener("mdns:expired", (e) => print({ event: "expired", ...e.detail }));
mdns.addEventListener("mdns:dial-failed", (e) =>
  print({
    event: "dial:failed",
    peerId: e.detail.peerId,
    address: e.detail.address,
    message: e.detail.error.message,
  }));
mdns.addEventListener("mdns:error", (e) => print({ event: "error", message: e.detail.message }));
await mdns.start();
print({ event: "ready", peerId: transport.peerId.toString(), port });

for await (const line of readLines(Deno.stdin.readable)) {
  const cmd = line.trim();
  if (cmd === "stats") print({ event: "stats", ...mdns.stats() });
  if (cmd === "close-mdns") {
    await mdns.close();
    print({ event: "mdns-closed" });
  }
  if (cmd === "close") {
    await mdns.close();
    await transport.close();
    print({ event: "closed" });
    break;
  }
}
await mdns.close();
await transport.close();
