import { assertEquals, assertThrows } from "../_assert.ts";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import {
  encodeRecord,
  HandshakeDialer,
  HandshakeListener,
  MAX_HANDSHAKE_RECORD,
  RecordDecoder,
} from "../../src/handshake/mod.ts";
import { pairOptions } from "./_util.ts";

Deno.test("records survive any chunking of the stream", () => {
  const payloads = [new Uint8Array(0), Uint8Array.of(1), new Uint8Array(5000).fill(7)];
  const stream = new Uint8Array(payloads.reduce((n, p) => n + 4 + p.byteLength, 0));
  let at = 0;
  for (const p of payloads) {
    stream.set(encodeRecord(p), at);
    at += 4 + p.byteLength;
  }
  for (const chunk of [1, 3, 4, 5, 1000, stream.byteLength]) {
    const decoder = new RecordDecoder();
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.byteLength; i += chunk) {
      got.push(...decoder.push(stream.subarray(i, i + chunk)));
    }
    decoder.end();
    assertEquals(got, payloads);
  }
});

Deno.test("a handshake runs over records split at every 7 bytes", async () => {
  const o = pairOptions(true);
  const dialer = new HandshakeDialer(o.dialer);
  const listener = new HandshakeListener(o.listener);
  const toListener = new RecordDecoder();
  const toDialer = new RecordDecoder();
  const pipe = (decoder: RecordDecoder, record: Uint8Array): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let i = 0; i < record.byteLength; i += 7) {
      out.push(...decoder.push(record.subarray(i, i + 7)));
    }
    return out;
  };
  const [hello] = pipe(toListener, encodeRecord(await dialer.start()));
  const [serverHello] = pipe(toDialer, encodeRecord((await listener.receive(hello)).send!));
  const step = await dialer.receive(serverHello);
  const [finish] = pipe(toListener, encodeRecord(step.send!));
  const done = (await listener.receive(finish)).done!;
  assertEquals(done.keys!.recv, step.done!.keys!.send);
});

Deno.test("oversized records are refused from the length prefix alone", () => {
  const err = assertThrows(
    () => new RecordDecoder().push(Uint8Array.of(0, 0, 0x40, 1)),
    NetworkError,
    "Record of 16385 bytes exceeds the maximum of 16384 bytes",
  );
  assertEquals(err.code, "ERR_MESSAGE_TOO_LARGE");
  assertThrows(
    () => new RecordDecoder({ maxSize: 10 }).push(Uint8Array.of(0xff, 0xff, 0xff, 0xff)),
    NetworkError,
    "4294967295 bytes",
  );
  assertThrows(
    () => encodeRecord(new Uint8Array(MAX_HANDSHAKE_RECORD + 1)),
    NetworkError,
    "exceeds the maximum",
  );
  assertEquals(encodeRecord(new Uint8Array(20), { maxSize: 20 }).byteLength, 24);
  assertThrows(() => new RecordDecoder({ maxSize: -1 }), InvalidConfigError, "'maxSize'");
});

Deno.test("a stream ending inside a record is ERR_MALFORMED_FRAME", () => {
  const a = new RecordDecoder();
  a.push(Uint8Array.of(0, 0));
  const e1 = assertThrows(() => a.end(), NetworkError, "2 of the 4 length bytes");
  assertEquals(e1.code, "ERR_MALFORMED_FRAME");
  const b = new RecordDecoder();
  b.push(Uint8Array.of(0, 0, 0, 9, 1, 2));
  assertThrows(() => b.end(), NetworkError, "2 of 9 payload bytes");
});

Deno.test("takeRemaining hands back bytes after the last record", () => {
  const decoder = new RecordDecoder();
  assertEquals(decoder.push(Uint8Array.of(0, 0, 0, 1, 5, 0xa, 0xb)), [Uint8Array.of(5)]);
  assertEquals(decoder.takeRemaining(), Uint8Array.of(0xa, 0xb));
  decoder.end();
});
