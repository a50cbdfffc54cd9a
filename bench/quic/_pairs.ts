// Client/server pairs on loopback running the same three workloads, one on our endpoint and
// one on Deno's own QUIC (quinn), so benchmarks can compare them in one process.
import { concatBytes } from "../../src/_bytes.ts";
import { DenoUdpSocket } from "../../mod.ts";
import {
  generateCertificate,
  LinuxBatchSocket,
  LinuxHybridSocket,
  QuicEndpoint,
  type QuicEndpointOptions,
  type QuicStream,
} from "../../src/quic/mod.ts";

/**
 * The datagram socket under our endpoint: `deno` (`Deno.listenDatagram` only), `linux-batch`
 * (libc's own socket, batches, threaded waits), `linux-hybrid` (Deno's socket, FFI batches on
 * its descriptor) or `default` (what `QuicEndpoint.bind` picks without a socket).
 */
export type Backend = "deno" | "linux-batch" | "linux-hybrid" | "default";

/** A connected client/server pair that runs the benchmark workloads. */
export interface BenchPair {
  readonly name: string;
  /** One request/response on a fresh bidirectional stream; resolves with the reply size. */
  request(payload: Uint8Array): Promise<number>;
  /** Sends `bytes` on one stream to a server that counts them; resolves when it has all. */
  bulk(bytes: number): Promise<void>;
  close(): Promise<void>;
}

/** First byte of a bulk stream; request payloads must start with another byte. */
const BULK_MARK = 0xb0;
const CHUNK = new Uint8Array(65536).fill(BULK_MARK);

/** Our endpoint: echo server for requests, counting sink for bulk streams. */
export async function cretoaiPair(backend: Backend = "deno"): Promise<BenchPair> {
  const address = { hostname: "127.0.0.1", port: 0 };
  const options = (): QuicEndpointOptions => {
    switch (backend) {
      case "deno":
        return { socket: DenoUdpSocket.bind(address) };
      case "linux-batch":
        return { socket: LinuxBatchSocket.bind(address) };
      case "linux-hybrid":
        return { socket: LinuxHybridSocket.bind(address) };
      default:
        return address;
    }
  };
  const server = await QuicEndpoint.bind(options());
  const client = await QuicEndpoint.bind(options());
  const serve = (async () => {
    const conn = await server.accept();
    for (;;) {
      let stream: QuicStream;
      try {
        stream = await conn.acceptBidi();
      } catch {
        return;
      }
      serveStream(stream).catch(() => {});
    }
  })();
  const conn = await client.connect(server.localAddr);
  return {
    name: `cretoai (quiche, ${backend})`,
    async request(payload) {
      const stream = await conn.openBidi();
      await stream.write(payload, true);
      return (await stream.readAll()).byteLength;
    },
    async bulk(bytes) {
      const stream = await conn.openBidi();
      for (let sent = 0; sent < bytes; sent += CHUNK.byteLength) {
        await stream.write(CHUNK, sent + CHUNK.byteLength >= bytes);
      }
      await stream.readAll();
    },
    async close() {
      await client.close();
      await server.close();
      await serve;
    },
  };
}

async function serveStream(stream: QuicStream): Promise<void> {
  const first = await stream.read();
  if (first === null) return stream.close();
  if (first[0] === BULK_MARK) {
    // A bulk stream: count until FIN, answer with one byte.
    while ((await stream.read()) !== null);
    return stream.write(new Uint8Array(1), true);
  }
  const rest = await stream.readAll();
  const reply = rest.byteLength === 0 ? first : concatBytes([first, rest]);
  return stream.write(reply, true);
}

/** Deno's native QUIC with the same server behaviour. Needs `--unstable-net`. */
export async function nativePair(): Promise<BenchPair> {
  const ca = await generateCertificate({ commonName: "bench-ca", ca: true });
  const leaf = await generateCertificate({
    commonName: "localhost",
    issuer: ca,
    dnsNames: ["localhost"],
  });
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1", port: 0 });
  const listener = endpoint.listen({
    cert: text(leaf.certPem),
    key: text(leaf.keyPem),
    alpnProtocols: ["bench"],
    maxConcurrentBidirectionalStreams: 1024,
  });
  const serve = (async () => {
    for await (const incoming of listener) {
      const conn = await incoming.accept();
      (async () => {
        for await (const bidi of conn.incomingBidirectionalStreams) {
          serveNative(bidi).catch(() => {});
        }
      })().catch(() => {});
    }
  })().catch(() => {});
  const conn = await Deno.connectQuic({
    hostname: "127.0.0.1",
    port: endpoint.addr.port,
    alpnProtocols: ["bench"],
    caCerts: [text(ca.certPem)],
    serverName: "localhost",
  });
  return {
    name: "Deno native QUIC (quinn)",
    async request(payload) {
      const stream = await conn.createBidirectionalStream();
      const writer = stream.writable.getWriter();
      await writer.write(payload);
      await writer.close();
      let got = 0;
      for await (const chunk of stream.readable) got += chunk.byteLength;
      return got;
    },
    async bulk(bytes) {
      const stream = await conn.createBidirectionalStream();
      const writer = stream.writable.getWriter();
      for (let sent = 0; sent < bytes; sent += CHUNK.byteLength) await writer.write(CHUNK);
      await writer.close();
      for await (const _ of stream.readable);
    },
    async close() {
      conn.close();
      endpoint.close();
      await serve;
    },
  };
}

async function serveNative(bidi: Deno.QuicBidirectionalStream): Promise<void> {
  const reader = bidi.readable.getReader();
  const writer = bidi.writable.getWriter();
  const first = await reader.read();
  if (first.done) return writer.close();
  if (first.value[0] === BULK_MARK) {
    while (!(await reader.read()).done);
    await writer.write(new Uint8Array(1));
    return writer.close();
  }
  let reply: Uint8Array = first.value;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    reply = concatBytes([reply, r.value]);
  }
  await writer.write(reply);
  return writer.close();
}
