import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { NetworkError } from "../../src/errors.ts";
import { readCertificate } from "../../src/handshake/_x509.ts";
import { IDENTITY_BINDING_OID } from "../../src/handshake/node_credentials.ts";
import { type CertificateExtension, generateCertificate } from "../../src/quic/certificate.ts";

const BINDING = Uint8Array.of(1, 2, 3);

function refused(der: Uint8Array, detail: string): void {
  const e = assertThrows(() => readCertificate(der, IDENTITY_BINDING_OID), NetworkError);
  assertEquals(e.code, "ERR_HANDSHAKE_FAILED");
  assert(e.message.includes(detail), e.message);
}

/** A certificate carrying `extensions`, then the binding. */
async function certificate(extensions: CertificateExtension[] = []): Promise<Uint8Array> {
  const { der } = await generateCertificate({
    extensions: [...extensions, { oid: IDENTITY_BINDING_OID, value: BINDING }],
  });
  return der;
}

/** `der` with its outermost length written as `octets` (the body is left as it is). */
function withOuterLength(der: Uint8Array, octets: number[]): Uint8Array {
  const headerBytes = der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2;
  return Uint8Array.from([der[0], ...octets, ...der.subarray(headerBytes)]);
}

Deno.test("x509: a length claiming 2^32 - 1 bytes, or 2^24 - 1, or the indefinite form is refused", async () => {
  const der = await certificate();
  refused(withOuterLength(der, [0x84, 0xff, 0xff, 0xff, 0xff]), "unsupported length form 0x84");
  refused(withOuterLength(der, [0x83, 0xff, 0xff, 0xff]), "claims 16777215 bytes");
  refused(withOuterLength(der, [0x80]), "unsupported length form 0x80");
  // The same size in a non-minimal form still reads: DER strictness is BoringSSL's job, and the
  // SPKI found is the same.
  const size = der.byteLength - 4;
  const lenient = withOuterLength(der, [0x83, 0, size >> 8, size & 0xff]);
  assertEquals(
    readCertificate(lenient, IDENTITY_BINDING_OID),
    readCertificate(der, IDENTITY_BINDING_OID),
  );
});

Deno.test("x509: 7,000 extensions (what fits in the ~100 KiB TLS delivers) and the binding after them", async () => {
  const many = Array.from({ length: 7_000 }, (_, i) => ({
    oid: Uint8Array.of(0x2a, 0x03, 0x80 | ((i + 128) >> 7), (i + 128) & 0x7f),
    value: new Uint8Array(0),
  }));
  const der = await certificate(many);
  assert(der.byteLength < 100 * 1024, `${der.byteLength} bytes`);
  assertEquals(readCertificate(der, IDENTITY_BINDING_OID).extension, BINDING);
});

Deno.test("x509: nesting 10,000 deep inside an extension is stepped over, not descended", async () => {
  // Headers made inside out, joined once.
  const headers: number[][] = [];
  let size = 0;
  for (let i = 0; i < 10_000; i++) {
    const length = size < 0x80
      ? [size]
      : size < 0x100
      ? [0x81, size]
      : [0x82, size >> 8, size & 0xff];
    headers.push([0x30, ...length]);
    size += 1 + length.length;
  }
  const deep = Uint8Array.from(headers.reverse().flat());
  const der = await certificate([{ oid: Uint8Array.of(0x2a, 0x03, 0x04), value: deep }]);
  assertEquals(readCertificate(der, IDENTITY_BINDING_OID).extension, BINDING);
});

Deno.test("x509: a second identity binding is refused", async () => {
  const der = await certificate([{ oid: IDENTITY_BINDING_OID, value: BINDING }]);
  refused(der, "the identity binding extension appears twice");
});
