// Leaves for bench/transport/memory.ts, in their own process so that only the hub's memory is
// measured: `deno run ... _memory_child.ts <hub port> <count>`. Connects `count` transports to
// the hub, prints `READY <count>`, and closes them all when stdin closes.
import { node } from "./_nodes.ts";
import type { QuicTransport } from "../../mod.ts";

const [port, count] = Deno.args.map(Number);
const leaves: QuicTransport[] = [];
let next = 0;
const worker = async () => {
  while (next < count) {
    next++;
    // Idle peers stay, however long it takes; keep-alives are the hub's to send (memory.ts).
    const leaf = await node({ idleTimeoutMs: 0, keepAliveIntervalSecs: 0 });
    leaves.push(leaf);
    // A loaded hub may refuse a dial (pending handshakes) or time it out: try again.
    for (let attempt = 1;; attempt++) {
      try {
        await leaf.connectPeer(`127.0.0.1:${port}`);
        break;
      } catch (e) {
        if (attempt === 5) throw e;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }
};
await Promise.all(Array.from({ length: 8 }, worker));
console.log(`READY ${leaves.length}`);
for await (const _ of Deno.stdin.readable);
await Promise.all(leaves.map((t) => t.close()));
