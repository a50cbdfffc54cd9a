// Known-answer tests for the transcript hash and the key schedule. The expected values were
// computed independently with Python's hashlib/hmac (RFC 5869 HKDF written out by hand):
//
//   def extract(salt, ikm): return hmac.new(salt, ikm, hashlib.sha256).digest()
//   def expand(prk, info, L=32):
//       t = b""; okm = b""; i = 1
//       while len(okm) < L:
//           t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest(); okm += t; i += 1
//       return okm[:L]
//   to_listener = bytes(range(32)); to_dialer = bytes(range(0x40, 0x60))
//   th = bytes(range(0x80, 0xa0)); prk = extract(th, to_listener + to_dialer)
//   P = b"cretoai-network/handshake/v2 "
//   expand(prk, P + b"key dialer->listener").hex()
//   expand(prk, P + b"key listener->dialer").hex()
//   hmac.new(expand(prk, P + b"finished listener"), th, hashlib.sha256).hexdigest()
//   hmac.new(expand(prk, P + b"finished dialer"), th, hashlib.sha256).hexdigest()
//
//   data = b"cretoai-network/handshake/v2\0" + bytes([2, 1]) + struct.pack(">H", 9) + b"cretoai/1"
//          + bytes([0x11] * 32) + bytes([0x22] * 32)
//          + struct.pack(">I", 3) + bytes([1, 2, 3]) + struct.pack(">I", 2) + bytes([4, 5])
//   hashlib.sha256(data).hexdigest()

import { assertEquals } from "../_assert.ts";
import { keySchedule, transcriptHash } from "../../src/handshake/_transcript.ts";
import { toHex } from "../../src/_bytes.ts";

Deno.test("key schedule: known answer", () => {
  const toListener = Uint8Array.from({ length: 32 }, (_, i) => i);
  const toDialer = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
  const transcript = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
  const k = keySchedule(toListener, toDialer, transcript);
  assertEquals(
    toHex(k.dialerToListener),
    "a808b54477f5102392ae2820885d2714f05f1607d6f12165e85b7bc25dccd395",
  );
  assertEquals(
    toHex(k.listenerToDialer),
    "a5fdfe618be747c8fec9c8e2f6a99b7cf5e64dd89f19d9d7cedef5261cbedcb9",
  );
  assertEquals(
    toHex(k.listenerConfirmation),
    "d5e164169ad3540b36e83c2bf35fcb5d1f1de84ab8191969cf7e43af26bacc32",
  );
  assertEquals(
    toHex(k.dialerConfirmation),
    "8791e2555f829090e0855b9eb5da5c36957d8a8c687a85c2bf3940cb202e99cb",
  );
});

Deno.test("transcript hash: known answer for the documented layout", () => {
  const th = transcriptHash({
    version: 2,
    mode: 1,
    alpn: "cretoai/1",
    dialerCertHash: new Uint8Array(32).fill(0x11),
    listenerCertHash: new Uint8Array(32).fill(0x22),
    clientHello: Uint8Array.of(1, 2, 3),
    serverHelloConfirmedPart: Uint8Array.of(4, 5),
  });
  assertEquals(toHex(th), "75e3064c21854fbbe26e5a9e4175bf5eaf0da25bbc180b0a48467621c119e1b0");
});
