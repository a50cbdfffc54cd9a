// Known-answer tests for the transcript hash and the key schedule. The expected values were
// computed independently with Python's hashlib/hmac (RFC 5869 HKDF written out by hand):
//
//   def hkdf(ikm, salt, info, L=32):
//       prk = hmac.new(salt, ikm, hashlib.sha256).digest()
//       t = b""; okm = b""; i = 1
//       while len(okm) < L:
//           t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest(); okm += t; i += 1
//       return okm[:L]
//   ss = bytes(range(32)); th = bytes(range(0x80, 0xa0))
//   hkdf(ss, th, b"cretoai-network/handshake/v1 key dialer->listener").hex()
//   hkdf(ss, th, b"cretoai-network/handshake/v1 key listener->dialer").hex()
//
//   data = b"cretoai-network/handshake/v1\0" + bytes([1, 1]) + struct.pack(">H", 9) + b"cretoai/1"
//          + bytes([0x11] * 32) + bytes([0x22] * 32)
//          + struct.pack(">I", 3) + bytes([1, 2, 3]) + struct.pack(">I", 2) + bytes([4, 5])
//   hashlib.sha256(data).hexdigest()

import { assertEquals } from "../_assert.ts";
import { deriveSessionKeys, transcriptHash } from "../../src/handshake/_transcript.ts";
import { hex } from "./_util.ts";

Deno.test("key schedule: known answer", () => {
  const sharedSecret = Uint8Array.from({ length: 32 }, (_, i) => i);
  const transcript = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
  const keys = deriveSessionKeys(sharedSecret, transcript);
  assertEquals(
    hex(keys.dialerToListener),
    "a4f90d4ca4b22ad2d356f2e6b9caa34ebd1c04a10ff2eb9aa8f4e62f08d1279a",
  );
  assertEquals(
    hex(keys.listenerToDialer),
    "05753fb1416ff6b82c241f59526c5b3b3e9cd91cdd9bec0a12f61a59fcf1d33c",
  );
});

Deno.test("transcript hash: known answer for the documented layout", () => {
  const th = transcriptHash({
    version: 1,
    mode: 1,
    alpn: "cretoai/1",
    dialerCertHash: new Uint8Array(32).fill(0x11),
    listenerCertHash: new Uint8Array(32).fill(0x22),
    clientHello: Uint8Array.of(1, 2, 3),
    serverHelloSignedPart: Uint8Array.of(4, 5),
  });
  assertEquals(hex(th), "2533ee182968be60abdb263394e798d9e0397da45fb30a91f9d0d51323418ebb");
});
