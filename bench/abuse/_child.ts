/**
 * A process of the abuse benchmarks: `deno run -A bench/abuse/_child.ts MODE '<json>'`.
 *
 * - `victim`: a node (the JSON is its `NetworkConfig`) that drains its messages and answers
 *   `/bench/echo`; prints `READY <port> <peerId>`, runs until stdin closes.
 * - `flood`: `{ port, attempts, concurrency, sources }`: handshake attempts from `sources`
 *   loopback addresses (127.0.0.2, ...): each a QUIC connection that sends a valid ClientHello
 *   (made once to the node's certificate; the node decapsulates it, encapsulates to the
 *   attacker and answers with a ServerHello) and hangs up after the answer. Prints `STARTED`,
 *   then a JSON tally when done.
 * - `silent`: `{ port, count, sources }`: `count` QUIC connections spread over `sources`
 *   addresses that never start the identity handshake; each closed one is dialed again at once.
 *   Prints a JSON line once all are up, a JSON tally when stdin closes.
 *
 * The attackers present a TLS certificate with a valid identity binding: a node closes a
 * connection without one before it reads any stream, so these get as far as an attacker can.
 *
 * @module
 */

import { Identity } from "../../mod.ts";
import { encodeRecord, HandshakeDialer, NodeCredentials } from "../../src/handshake/mod.ts";
import { type QuicConnection, QuicEndpoint } from "../../src/quic/mod.ts";
import { drain, node } from "../pool/_util.ts";

const [mode, json = "{}"] = Deno.args;
// JSON has no Infinity: the parent's Infinity arrives as null.
const options = JSON.parse(json, (_, v) => v === null ? Infinity : v);

/** One endpoint per source address 127.0.0.2, 127.0.0.3, ..., all presenting `credentials`. */
async function endpoints(count: number, credentials: NodeCredentials): Promise<QuicEndpoint[]> {
  return await Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        QuicEndpoint.bind({ hostname: `127.0.0.${2 + i}`, certificate: credentials.certificate }),
    ),
  );
}

function tally(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

if (mode === "victim") {
  const transport = await node(options);
  transport.handle("/bench/echo", (request) => request);
  const draining = drain(transport);
  console.log(`READY ${transport.localAddr.port} ${transport.peerId}`);
  for await (const _ of Deno.stdin.readable);
  console.log(JSON.stringify(transport.stats()));
  await transport.close();
  await draining;
} else if (mode === "flood") {
  const target = { hostname: "127.0.0.1", port: options.port as number };
  const credentials = await NodeCredentials.create(Identity.generate());
  const sources = await endpoints(options.sources, credentials);
  // The ClientHello needs the node's certificate (its bound ML-KEM key): one connection to
  // learn it, then every attempt replays the same hello, which costs the attacker nothing.
  const probe = await sources[0].connect(target, { timeoutMs: 5000 });
  const hello = encodeRecord(
    await new HandshakeDialer({
      credentials,
      alpn: probe.alpn,
      peerCertificate: probe.peerCertificates()[0],
    }).start(),
  );
  await probe.close();
  const outcomes = new Map<string, number>();
  let next = 0;
  const start = performance.now();
  console.log("STARTED");
  const attempt = async (i: number) => {
    let conn: QuicConnection | undefined;
    try {
      conn = await sources[i % sources.length].connect(target, { timeoutMs: 5000 });
      const stream = await conn.openBidi();
      await stream.write(hello);
      const answer = await Promise.race([
        stream.read().then((c) => c === null ? "finished" : "answered"),
        conn.closed.then((e) => `closed ${e.errorCode}`),
        new Promise<string>((r) => setTimeout(() => r("no answer in 5 s"), 5000)),
      ]);
      tally(outcomes, answer);
    } catch (e) {
      tally(outcomes, `failed: ${(e as Error).message.slice(0, 80)}`);
    } finally {
      await conn?.close().catch(() => {});
    }
  };
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (next < options.attempts) await attempt(next++);
    }),
  );
  console.log(JSON.stringify({
    attempts: options.attempts,
    seconds: Math.round(performance.now() - start) / 1000,
    outcomes: Object.fromEntries(outcomes),
  }));
  await Promise.all(sources.map((s) => s.close()));
} else if (mode === "silent") {
  const target = { hostname: "127.0.0.1", port: options.port as number };
  const sources = await endpoints(
    options.sources,
    await NodeCredentials.create(Identity.generate()),
  );
  const outcomes = new Map<string, number>();
  let stopping = false;
  let up = 0;
  let firstUp: () => void;
  const allUp = new Promise<void>((r) => firstUp = r);
  const hold = async (i: number) => {
    let counted = false;
    while (!stopping) {
      try {
        const conn = await sources[i % sources.length].connect(target, { timeoutMs: 5000 });
        if (!counted && ++up === options.count) firstUp();
        counted = true;
        const closed = await Promise.race([conn.closed, stopped]);
        if (closed !== undefined) tally(outcomes, `closed by the node: ${closed.errorCode}`);
        else await conn.close().catch(() => {});
      } catch (e) {
        tally(outcomes, `failed: ${(e as Error).message.slice(0, 60)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  let stop: (v: undefined) => void;
  const stopped = new Promise<undefined>((r) => stop = r);
  const holders = Array.from({ length: options.count }, (_, i) => hold(i));
  await Promise.race([allUp, new Promise((r) => setTimeout(r, 20_000))]);
  console.log(JSON.stringify({ up }));
  for await (const _ of Deno.stdin.readable);
  stopping = true;
  stop!(undefined);
  await Promise.all(holders);
  console.log(JSON.stringify({ outcomes: Object.fromEntries(outcomes) }));
  await Promise.all(sources.map((s) => s.close()));
} else {
  throw new Error(`unknown mode ${mode}`);
}
