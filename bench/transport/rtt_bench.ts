/**
 * Message round trip between two transports on loopback: `a` sends a 256-byte consensus
 * message, `b` sends it back; one iteration lasts until `a` has the answer (and the ack of
 * its own send). pqEncryption on (the default) and off.
 *
 * Run: `deno task bench` (all benches), or
 * `deno bench --allow-net --allow-read --allow-ffi bench/transport/rtt_bench.ts`
 *
 * @module
 */
import { echo, pair } from "./_nodes.ts";

const message = { type: "consensus", data: new Uint8Array(256).fill(7) } as const;

for (const pqEncryption of [true, false]) {
  const { a, remote } = await pair({ pqEncryption }, echo);
  const inbox = a.messages();
  Deno.bench(`message RTT 256 B, pqEncryption ${pqEncryption ? "on" : "off"}`, {
    group: "message RTT",
    baseline: pqEncryption,
    n: 2000,
    warmup: 200,
  }, async () => {
    const [, reply] = await Promise.all([a.send(remote, message), inbox.next()]);
    if (reply.done) throw new Error("a's transport closed");
  });
}
