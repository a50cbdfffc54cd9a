import assert from "node:assert/strict";
import {
  carriesShortHeaderPacket,
  CID_LENGTH,
  cidKey,
  destinationKey,
  isLongHeader,
  isQuic,
  parseLongHeader,
} from "../../src/quic/_packet.ts";
import { longHeaderDatagram, randomBytes } from "./_util.ts";

Deno.test("packet: QUIC is told from STUN and other datagrams by the first byte", () => {
  assert.equal(isQuic(new Uint8Array(0)), false);
  for (let b = 0; b < 0x40; b++) assert.equal(isQuic(new Uint8Array([b])), false, `0x${b}`);
  for (let b = 0x40; b < 0x100; b++) assert.equal(isQuic(new Uint8Array([b])), true, `0x${b}`);
  // A STUN binding request starts with 0x00 0x01.
  assert.equal(isQuic(new Uint8Array([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42])), false);
  assert.equal(isLongHeader(new Uint8Array([0xc0])), true);
  assert.equal(isLongHeader(new Uint8Array([0x40])), false);
});

Deno.test("packet: the routing key is the first six bytes of an id, from either header", () => {
  const cid = randomBytes(CID_LENGTH);
  const key = cidKey(cid);
  assert.ok(Number.isSafeInteger(key) && key >= 0 && key < 2 ** 48);
  assert.equal(cidKey(new Uint8Array([0, 0, 0, 0, 0, 1])), 1);
  assert.equal(cidKey(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), 2 ** 48 - 1);
  assert.equal(cidKey(new Uint8Array([1, 0, 0, 0, 0, 0])), 2 ** 40);
  // Bytes after the sixth do not matter.
  const other = cid.slice();
  other[6] ^= 0xff;
  assert.equal(cidKey(other), key);

  const short = new Uint8Array(1 + CID_LENGTH + 30);
  short[0] = 0x41;
  short.set(cid, 1);
  assert.equal(destinationKey(short), key);
  const long = longHeaderDatagram({ dcid: cid, scid: randomBytes(8) });
  assert.equal(destinationKey(long), key);
  // An id at an offset.
  const padded = new Uint8Array(10 + CID_LENGTH);
  padded.set(cid, 10);
  assert.equal(cidKey(padded, 10), key);
});

Deno.test("packet: too short datagrams and ids get no routing key", () => {
  const short = new Uint8Array(CID_LENGTH); // one byte short of a short header with an id
  short[0] = 0x40;
  assert.equal(destinationKey(short), -1);
  for (const dcidLength of [0, 1, 5]) {
    const long = longHeaderDatagram({ dcid: randomBytes(dcidLength), scid: randomBytes(8) });
    assert.equal(destinationKey(long), -1, `dcid of ${dcidLength} bytes`);
  }
  const long = longHeaderDatagram({ dcid: randomBytes(8), scid: randomBytes(8) });
  for (let length = 1; length < 12; length++) {
    assert.equal(destinationKey(long.subarray(0, length)), -1, `${length} bytes`);
  }
  assert.ok(destinationKey(long.subarray(0, 12)) >= 0);
});

Deno.test("packet: long headers parse version and ids; malformed ones give undefined", () => {
  const dcid = randomBytes(12);
  const scid = randomBytes(3);
  const data = longHeaderDatagram({ version: 0xff00001d, dcid, scid });
  const long = parseLongHeader(data);
  assert.ok(long !== undefined);
  assert.equal(long.version, 0xff00001d);
  assert.deepEqual(long.dcid, dcid);
  assert.deepEqual(long.scid, scid);
  // Empty ids are fine.
  const empty = parseLongHeader(
    longHeaderDatagram({ dcid: new Uint8Array(0), scid: new Uint8Array(0) }),
  );
  assert.deepEqual([empty?.dcid.byteLength, empty?.scid.byteLength], [0, 0]);
  // Every truncation inside the ids is refused, and nothing throws on random input.
  const header = 7 + dcid.byteLength + scid.byteLength;
  for (let length = 0; length < header; length++) {
    assert.equal(parseLongHeader(data.subarray(0, length)), undefined, `${length} bytes`);
  }
  assert.ok(parseLongHeader(data.subarray(0, header)) !== undefined);
  const lying = data.slice(0, 40);
  lying[5] = 255; // claims a 255-byte destination id
  assert.equal(parseLongHeader(lying), undefined);
  for (let i = 0; i < 2000; i++) {
    const junk = randomBytes(i % 64);
    const parsed = parseLongHeader(junk);
    if (parsed !== undefined) {
      assert.ok(7 + parsed.dcid.byteLength + parsed.scid.byteLength <= junk.byteLength);
    }
    destinationKey(junk.byteLength > 0 ? junk : new Uint8Array([0xc0]));
  }
});

/** A QUIC v1 long header packet: `type` (0 Initial, 2 Handshake), 8-byte ids, `body` bytes. */
function longPacket(type: number, body: number, token = new Uint8Array(0)): Uint8Array {
  const ids = [8, ...new Uint8Array(8).fill(1), 8, ...new Uint8Array(8).fill(2)];
  // A two-byte varint Length (0x40 | high bits), as quiche writes it.
  const length = [0x40 | (body >> 8), body & 0xff];
  const tokenField = type === 0 ? [token.byteLength, ...token] : [];
  return new Uint8Array([
    0xc0 | (type << 4),
    0,
    0,
    0,
    1,
    ...ids,
    ...tokenField,
    ...length,
    ...new Uint8Array(body).fill(0xaa),
  ]);
}

Deno.test("packet: a 1-RTT packet is found first or after coalesced long header packets", () => {
  const short = new Uint8Array([0x40, ...new Uint8Array(30).fill(0x55)]);
  const handshake = longPacket(2, 40);
  const initial = longPacket(0, 60, new Uint8Array([7, 7, 7]));
  const concat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));
  assert.equal(carriesShortHeaderPacket(short), true);
  assert.equal(carriesShortHeaderPacket(handshake), false);
  assert.equal(carriesShortHeaderPacket(concat(initial, handshake)), false);
  assert.equal(carriesShortHeaderPacket(concat(handshake, short)), true);
  assert.equal(carriesShortHeaderPacket(concat(initial, handshake, short)), true);
  // A Retry has no Length: nothing after it counts.
  assert.equal(carriesShortHeaderPacket(concat(new Uint8Array([0xf0, 0, 0, 0, 1]), short)), false);
  // A Length running past the datagram, or a cut header, ends the walk.
  const both = concat(handshake, short);
  for (let cut = 1; cut <= handshake.byteLength; cut++) {
    assert.equal(carriesShortHeaderPacket(both.subarray(0, cut)), false, `${cut} bytes`);
  }
  for (let i = 0; i < 2000; i++) carriesShortHeaderPacket(randomBytes(i % 80));
});
