/**
 * Two QUIC endpoints on loopback, one echoing what the other sends. Prints what it measured:
 * connect time, request/response round trips (p50, p99 over 1000 requests of 256 bytes, each on
 * a fresh bidirectional stream) and echo throughput for 16 MiB on one stream, checked intact.
 *
 * Run: `deno task demo` (or `npx --yes deno@2.9.6 task demo`).
 *
 * @module
 */
import { QuicEndpoint, type QuicStream } from "../mod.ts";

const REQUESTS = 1000;
const REQUEST_BYTES = 256;
const BULK_BYTES = 16 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
const DEADLINE_MS = 120_000;

/** Copies everything the peer sends back to it, then finishes the stream. */
async function echo(stream: QuicStream): Promise<void> {
  for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
    await stream.write(chunk);
  }
  await stream.close();
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main(): Promise<void> {
  await using server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  await using client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  console.log(`server ${server.localAddr.hostname}:${server.localAddr.port}`);

  const serving = (async () => {
    const conn = await server.accept();
    const streams: Promise<void>[] = [];
    try {
      for (;;) streams.push(echo(await conn.acceptBidi()));
    } catch {
      // The client closed the connection: no more streams.
    }
    await Promise.allSettled(streams);
  })();

  let t0 = performance.now();
  const conn = await client.connect(server.localAddr);
  console.log(`connect (handshake incl. retry): ${(performance.now() - t0).toFixed(2)} ms`);

  const request = crypto.getRandomValues(new Uint8Array(REQUEST_BYTES));
  const rtts: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    t0 = performance.now();
    const stream = await conn.openBidi();
    await stream.write(request, true);
    const reply = await stream.readAll();
    rtts.push(performance.now() - t0);
    if (reply.length !== REQUEST_BYTES) throw new Error(`reply ${i}: ${reply.length} bytes`);
  }
  rtts.sort((a, b) => a - b);
  console.log(
    `rtt over ${REQUESTS} requests of ${REQUEST_BYTES} B, fresh stream each: ` +
      `p50 ${percentile(rtts, 50).toFixed(3)} ms, p99 ${percentile(rtts, 99).toFixed(3)} ms`,
  );

  const data = new Uint8Array(BULK_BYTES);
  for (let at = 0; at < BULK_BYTES; at += 65536) {
    crypto.getRandomValues(data.subarray(at, at + 65536));
  }
  t0 = performance.now();
  const stream = await conn.openBidi();
  const sending = (async () => {
    for (let at = 0; at < BULK_BYTES; at += CHUNK_BYTES) {
      await stream.write(data.subarray(at, at + CHUNK_BYTES), at + CHUNK_BYTES >= BULK_BYTES);
    }
  })();
  const echoed = await stream.readAll(BULK_BYTES);
  await sending;
  const seconds = (performance.now() - t0) / 1000;
  const [sent, got] = await Promise.all([sha256(data), sha256(echoed)]);
  if (echoed.length !== BULK_BYTES || sent !== got) {
    throw new Error(`echo differs: ${echoed.length} bytes, sha256 ${got} != ${sent}`);
  }
  console.log(
    `echo ${BULK_BYTES / 1048576} MiB on one stream: ${
      (BULK_BYTES / 1048576 / seconds).toFixed(1)
    } MiB/s ` +
      `(${((BULK_BYTES * 8) / 1e6 / seconds).toFixed(0)} Mbit/s each way), sha256 ${
        got.slice(0, 16)
      }… intact`,
  );

  await conn.close({ reason: "done" });
  await serving;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const watchdog = setTimeout(() => {
  console.error(`echo demo: not done after ${DEADLINE_MS / 1000} s`);
  Deno.exit(1);
}, DEADLINE_MS);
try {
  await main();
} finally {
  clearTimeout(watchdog);
}
