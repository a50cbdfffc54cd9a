import assert from "node:assert/strict";
import { ConnectionClosedError, NetworkError, StreamResetError } from "../../src/errors.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import { connect, isPending, pair, randomBytes, sha256Hex, within } from "./_util.ts";

Deno.test("stream: 64 MiB echoed intact on one stream (SHA-256 compared)", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const total = 64 * 1024 * 1024;
  const sent = randomBytes(total);
  const echo = (async () => {
    const stream = await peer.acceptBidi();
    for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
      await stream.write(chunk);
    }
    await stream.close();
  })();
  const stream = await conn.openBidi();
  const writing = (async () => {
    for (let at = 0; at < total; at += 256 * 1024) {
      await stream.write(sent.subarray(at, at + 256 * 1024));
    }
    await stream.close();
  })();
  const received = await within(stream.readAll(total), 45_000, "64 MiB echo");
  await writing;
  await echo;
  assert.equal(received.byteLength, total);
  assert.equal(await sha256Hex(received), await sha256Hex(sent));
  await conn.close();
  await peer.closed;
});

Deno.test("stream: a reset surfaces at the reader as ERR_STREAM_RESET with the peer's code", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const stream = await conn.openBidi();
  await stream.write(new Uint8Array([1, 2, 3]));
  const incoming = await peer.acceptBidi();
  assert.deepEqual(await incoming.read(), new Uint8Array([1, 2, 3]));
  const reading = incoming.read().catch((e) => e);
  stream.reset(42);
  const err = await within(reading, 5000, "reset arrives");
  assert.ok(err instanceof StreamResetError, String(err));
  assert.equal(err.code, "ERR_STREAM_RESET");
  assert.equal(err.errorCode, 42);
  assert.equal(err.streamId, stream.id);
  assert.match(err.message, /reset by the peer with code 42/);
  // Later reads fail the same way; our own writes fail as locally reset.
  assert.equal(await incoming.read().catch((e) => e), err);
  const write = await stream.write(new Uint8Array([4])).catch((e) => e);
  assert.ok(write instanceof NetworkError);
  assert.equal(write.code, "ERR_STREAM_CLOSED");
  // The reverse direction of the stream still works.
  await incoming.write(new Uint8Array([9]), true);
  assert.deepEqual(await stream.readAll(), new Uint8Array([9]));
  await conn.close();
});

Deno.test("stream: STOP_SENDING surfaces at the writer as ERR_STREAM_STOPPED with the peer's code", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const stream = await conn.openBidi();
  await stream.write(new Uint8Array([1]));
  const incoming = await peer.acceptBidi();
  await incoming.read();
  incoming.stopSending(7);
  const local = await incoming.read().catch((e) => e);
  assert.equal(local.code, "ERR_STREAM_CLOSED", "our own read is stopped");
  // A ping on another stream after the STOP_SENDING: once it is answered, the frame arrived.
  let err: unknown;
  for (let i = 0; i < 20 && err === undefined; i++) {
    const ping = await conn.openBidi();
    await ping.write(new Uint8Array([i]), true);
    const pong = await within(peer.acceptBidi(), 5000, "ping");
    await pong.write(await pong.readAll(), true);
    await ping.readAll();
    err = await stream.write(new Uint8Array(1000)).then(() => undefined, (e) => e);
  }
  assert.ok(err instanceof StreamResetError, String(err));
  assert.equal(err.code, "ERR_STREAM_STOPPED");
  assert.equal(err.errorCode, 7);
  assert.equal(err.streamId, stream.id);
  assert.match(err.message, /STOP_SENDING.*code 7/);
  await conn.close();
});

Deno.test("stream: unidirectional streams both ways", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const up = await conn.openUni();
  assert.equal(up.isUnidirectional, true);
  assert.equal(up.isRemote, false);
  await up.write(new TextEncoder().encode("to server"), true);
  const upIn = await peer.acceptUni();
  assert.equal(upIn.isRemote, true);
  assert.equal(new TextDecoder().decode(await upIn.readAll()), "to server");
  const down = await peer.openUni();
  await down.write(new TextEncoder().encode("to client"), true);
  const downIn = await conn.acceptUni();
  assert.equal(downIn.id, down.id);
  assert.equal(new TextDecoder().decode(await downIn.readAll()), "to client");
  // Each end has only its own direction.
  assert.equal(await up.read(), null, "the opener cannot read its uni stream");
  const wrongWay = await downIn.write(new Uint8Array([1])).catch((e) => e);
  assert.equal(wrongWay.code, "ERR_STREAM_CLOSED");
  // Many at once, interleaved.
  const sends = Array.from({ length: 20 }, async (_, i) => {
    const s = await conn.openUni();
    await s.write(new Uint8Array(1000 + i).fill(i), true);
  });
  const got: number[] = [];
  for (let i = 0; i < 20; i++) {
    const s = await within(peer.acceptUni(), 5000, "uni");
    const data = await s.readAll();
    assert.ok(data.every((b) => b === data[0]) && data.byteLength === 1000 + data[0]);
    got.push(data[0]);
  }
  await Promise.all(sends);
  assert.deepEqual(got.sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
  await conn.close();
});

Deno.test("stream: a reader that does not read stops the writer, then lets it resume", async () => {
  const window = 64 * 1024;
  await using p = await pair({ initialMaxStreamData: window, initialMaxData: 4 * window });
  const { conn, peer } = await connect(p);
  const stream = await conn.openBidi();
  const big = randomBytes(16 * window);
  const writing = stream.write(big, true);
  const incoming = await peer.acceptBidi(); // accepting does not read the data
  const first = await incoming.read();
  assert.ok(first !== null);
  // Ten round trips on another stream: the big write is still waiting, and no more than
  // about two windows left the client.
  for (let i = 0; i < 10; i++) {
    const ping = await conn.openBidi();
    await ping.write(new Uint8Array([i]), true);
    const pong = await peer.acceptBidi();
    await pong.write(await pong.readAll(), true);
    await ping.readAll();
  }
  assert.ok(await isPending(writing), "the write waits for flow control");
  const sentBytes = conn.stats().bytesSent;
  assert.ok(sentBytes < 3 * window, `client sent ${sentBytes} bytes`);
  // Reading everything lets the writer finish.
  const rest = await within(incoming.readAll(), 10_000, "read the rest");
  await within(writing, 10_000, "write resumes");
  const all = new Uint8Array(first.byteLength + rest.byteLength);
  all.set(first);
  all.set(rest, first.byteLength);
  assert.equal(await sha256Hex(all), await sha256Hex(big));
  await conn.close();
});

Deno.test("stream: a server that does not read its response stream stops the server's writer", async () => {
  const window = 32 * 1024;
  await using p = await pair({}, { initialMaxStreamData: window });
  const { conn, peer } = await connect(p);
  const stream = await conn.openBidi();
  await stream.write(new Uint8Array([0]));
  const incoming = await peer.acceptBidi();
  await incoming.read();
  const reply = randomBytes(8 * window);
  const writing = incoming.write(reply, true);
  const parts: Uint8Array[] = [];
  const firstPart = await stream.read();
  assert.ok(firstPart !== null);
  parts.push(firstPart);
  // Several round trips on the same connection, other direction of traffic.
  for (let i = 0; i < 5; i++) {
    const up = await conn.openUni();
    await up.write(new Uint8Array([i]), true);
    await (await peer.acceptUni()).readAll();
  }
  assert.ok(await isPending(writing), "the server's write waits");
  for (let c = await stream.read(); c !== null; c = await stream.read()) parts.push(c);
  await within(writing, 10_000, "server write resumes");
  const got = new Uint8Array(parts.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of parts) {
    got.set(c, at);
    at += c.byteLength;
  }
  assert.equal(await sha256Hex(got), await sha256Hex(reply));
  await conn.close();
});

Deno.test("stream: writes after FIN and concurrent reads are refused", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const stream = await conn.openBidi();
  await stream.write(new Uint8Array([1]), true);
  const again = await stream.write(new Uint8Array([2])).catch((e) => e);
  assert.ok(again instanceof NetworkError);
  assert.equal(again.code, "ERR_STREAM_CLOSED");
  assert.match(again.message, /finished/);
  await stream.close(); // closing a finished stream is a no-op
  const incoming = await peer.acceptBidi();
  assert.deepEqual(await incoming.readAll(), new Uint8Array([1]));
  assert.equal(await incoming.read(), null, "reads after FIN keep returning null");
  const pending = stream.read();
  const second = await stream.read().catch((e) => e);
  assert.equal(second.code, "ERR_STREAM_CLOSED");
  assert.match(second.message, /pending/);
  await incoming.write(new Uint8Array([3]), true);
  assert.deepEqual(await pending, new Uint8Array([3]));
  await conn.close();
});

Deno.test("stream: readAll stops the stream beyond maxBytes", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const stream = await conn.openBidi();
  const writing = stream.write(new Uint8Array(10_000), true).catch((e) => e);
  const incoming = await peer.acceptBidi();
  const err = await incoming.readAll(1000).catch((e) => e);
  assert.ok(err instanceof NetworkError);
  assert.equal(err.code, "ERR_MESSAGE_TOO_LARGE");
  assert.match(err.message, /more than 1000 bytes/);
  await writing;
  await conn.close();
});

Deno.test("stream: pending reads and writes fail when the connection closes", async () => {
  const window = 16 * 1024;
  await using p = await pair({ initialMaxStreamData: window });
  const { conn, peer } = await connect(p);
  const streams: QuicStream[] = [await conn.openBidi(), await conn.openBidi()];
  const reading = streams[0].read().catch((e) => e);
  const writing = streams[1].write(new Uint8Array(8 * window)).catch((e) => e);
  await peer.close({ code: 3, reason: "bye" });
  for (const err of [await reading, await writing]) {
    assert.ok(err instanceof ConnectionClosedError, String(err));
    assert.equal(err.errorCode, 3);
  }
  const after = await streams[0].write(new Uint8Array([1])).catch((e) => e);
  assert.ok(after instanceof ConnectionClosedError);
});

Deno.test("stream: a write blocked by flow control fails when the peer sends STOP_SENDING", async () => {
  const window = 16 * 1024;
  await using p = await pair({ initialMaxStreamData: window });
  const { conn, peer } = await connect(p);
  const stream = await conn.openBidi();
  const writing = stream.write(randomBytes(16 * window)).catch((e) => e);
  const incoming = await peer.acceptBidi();
  assert.ok(await isPending(writing));
  incoming.stopSending(99);
  const err = await within(writing, 5000, "blocked write fails");
  assert.ok(err instanceof StreamResetError, String(err));
  assert.equal(err.code, "ERR_STREAM_STOPPED");
  assert.equal(err.errorCode, 99);
  await conn.close();
});

Deno.test("stream: unidirectional opens beyond the peer's limit wait for credit", async () => {
  await using p = await pair({ maxStreamsUni: 2 });
  const { conn, peer } = await connect(p);
  const first = [await conn.openUni(), await conn.openUni()];
  const third = conn.openUni();
  await first[0].write(new Uint8Array([1]));
  const seen = await peer.acceptUni();
  assert.deepEqual(await seen.read(), new Uint8Array([1]));
  assert.ok(await isPending(third), "third uni open waits");
  for (const s of first) await s.write(new Uint8Array([2]), true);
  await seen.readAll();
  await (await peer.acceptUni()).readAll();
  const opened = await within(third, 5000, "uni open after credit");
  await opened.write(new Uint8Array([3]), true);
  assert.deepEqual(await (await peer.acceptUni()).readAll(), new Uint8Array([3]));
  await conn.close();
});
