/**
 * Native memory of one QUIC connection end without the transport above it: a hub endpoint and
 * `--peers` connections from a child process, the hub measured (after a memory-reducing
 * garbage collection) before and after. Separates what quiche and BoringSSL hold per
 * connection from what `bench/transport/memory.ts` adds on top:
 * `--certificate binding` presents certificates like the transport's (with the 6.5 KB
 * identity binding; `small`: a plain Ed25519 one), `--streams` opens the streams a
 * transport connection that carried messages holds (a bidirectional control stream and three
 * unidirectional lanes each way, one byte on each; an idle one holds the control stream only,
 * its lanes open with their first message).
 *
 * Run: `deno run -A --v8-flags=--expose-gc bench/quic/connection_memory.ts [--peers 300]
 * [--certificate binding|small] [--streams]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Identity } from "../../mod.ts";
import { NodeCredentials } from "../../src/handshake/mod.ts";
import { type QuicConnection, QuicEndpoint, type TlsCertificate } from "../../src/quic/mod.ts";
import { openMallocInfo } from "../transport/_malloc_info.ts";

const { values } = parseArgs({
  options: {
    peers: { type: "string", default: "300" },
    certificate: { type: "string", default: "binding" },
    streams: { type: "boolean", default: false },
    child: { type: "string" },
  },
});
const peers = Number(values.peers);
if (!Number.isInteger(peers) || peers < 1) {
  throw new RangeError(`'--peers' must be a positive integer: got ${values.peers}`);
}
if (values.certificate !== "binding" && values.certificate !== "small") {
  throw new RangeError(`'--certificate' must be binding or small: got ${values.certificate}`);
}
const CONNECTIONS_PER_CLIENT_ENDPOINT = 50;
const LANES = 3;

async function certificate(): Promise<TlsCertificate | undefined> {
  if (values.certificate === "small") return undefined; // the endpoint generates one
  return (await NodeCredentials.create(Identity.generate())).certificate;
}

/** The transport's idle streams: control, then our lanes; the peer's lanes are read. */
async function openStreams(conn: QuicConnection, server: boolean): Promise<void> {
  if (server) await (await conn.acceptBidi()).read();
  else await (await conn.openBidi()).write(new Uint8Array(1));
  for (let i = 0; i < LANES; i++) await (await conn.openUni()).write(new Uint8Array(1));
  for (let i = 0; i < LANES; i++) await (await conn.acceptUni()).read();
}

if (values.child !== undefined) {
  const cert = await certificate();
  const endpoints: QuicEndpoint[] = [];
  const opened: Promise<void>[] = [];
  for (let i = 0; i < peers; i++) {
    if (i % CONNECTIONS_PER_CLIENT_ENDPOINT === 0) {
      endpoints.push(await QuicEndpoint.bind({ hostname: "127.0.0.1", certificate: cert }));
    }
    const conn = await endpoints.at(-1)!.connect({ hostname: "127.0.0.1", port: +values.child });
    if (values.streams) opened.push(openStreams(conn, false));
  }
  await Promise.all(opened);
  console.log("READY");
  for await (const _ of Deno.stdin.readable);
  await Promise.all(endpoints.map((e) => e.close()));
  Deno.exit(0);
}

type Gc = (options: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;
const gc = (globalThis as { gc?: Gc }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
const mallocInfo = openMallocInfo();
function measure() {
  gc!({ type: "major", execution: "sync", flavor: "last-resort" });
  return { ...Deno.memoryUsage(), native: mallocInfo?.().inUseBytes ?? NaN };
}

const hub = await QuicEndpoint.bind({
  hostname: "127.0.0.1",
  certificate: await certificate(),
  maxInboundPerIp: Infinity,
});
const accepted: QuicConnection[] = [];
const served: Promise<void>[] = [];
const accepting = (async () => {
  for (;;) {
    const conn = await hub.accept();
    accepted.push(conn);
    if (values.streams) served.push(openStreams(conn, true));
  }
})().catch(() => {}); // ends when the hub closes
await new Promise((r) => setTimeout(r, 300));
const before = measure();
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    import.meta.filename!,
    `--peers=${peers}`,
    `--certificate=${values.certificate}`,
    ...(values.streams ? ["--streams"] : []),
    `--child=${hub.localAddr.port}`,
  ],
  stdin: "piped",
  stdout: "piped",
}).spawn();
try {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  for (let text = ""; !text.includes("READY");) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the client process exited before READY: ${text}`);
    text += value;
  }
  reader.releaseLock();
  await Promise.all(served);
  await new Promise((r) => setTimeout(r, 1000)); // idle
  const after = measure();
  const kib = (key: keyof typeof after) => ((after[key] - before[key]) / peers / 1024).toFixed(1);
  console.log(
    `${accepted.length} QUIC connections, certificate ${values.certificate}, ` +
      `${values.streams ? "7 idle streams each" : "no streams"}`,
  );
  console.log("| hub memory per connection end, KiB | |");
  console.log("|---|---|");
  console.log(`| RSS | ${kib("rss")} |`);
  console.log(`| V8 heap used | ${kib("heapUsed")} |`);
  console.log(`| native heap in use (malloc) | ${kib("native")} |`);
} finally {
  await child.stdin.close().catch(() => {});
  await child.status;
  await hub.close();
  await accepting;
}
