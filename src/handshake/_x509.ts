/**
 * Just enough of an X.509 reader for the handshake: a peer's certificate is walked (DER, bounds
 * checked, definite lengths only) to its SubjectPublicKeyInfo and to one extension, the
 * identity binding. Nothing else of the certificate matters here; TLS already checked that the
 * peer holds the key in it.
 *
 * @module
 */

import { equalBytes } from "../_bytes.ts";
import { NetworkError } from "../errors.ts";

interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  body: number;
  /** Offset just after the content. */
  end: number;
}

/** The parts of a certificate the handshake reads. */
export interface CertificateParts {
  /** The DER of the SubjectPublicKeyInfo (tag and length included). */
  spki: Uint8Array;
  /** The value (OCTET STRING content) of the extension asked for, if present. */
  extension: Uint8Array | undefined;
}

function malformed(detail: string): never {
  throw new NetworkError("ERR_HANDSHAKE_FAILED", `Malformed peer certificate: ${detail}`);
}

function readTlv(der: Uint8Array, at: number, limit: number, what: string): Tlv {
  if (at + 2 > limit) malformed(`${what} is truncated at byte ${at}`);
  const tag = der[at];
  let length = der[at + 1];
  let body = at + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 3) {
      malformed(`${what} has an unsupported length form 0x${length.toString(16)}`);
    }
    if (body + octets > limit) malformed(`${what} is truncated at byte ${at}`);
    length = 0;
    for (let i = 0; i < octets; i++) length = (length << 8) | der[body + i];
    body += octets;
  }
  const end = body + length;
  if (end > limit) malformed(`${what} claims ${length} bytes, only ${limit - body} remain`);
  return { tag, start: at, body, end };
}

function expect(tlv: Tlv, tag: number, what: string): Tlv {
  if (tlv.tag !== tag) {
    malformed(`${what} must have tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  }
  return tlv;
}

/**
 * Reads the SubjectPublicKeyInfo and the extension `oid` of a DER certificate.
 *
 * @param der The certificate.
 * @param oid The extension's OID, as the content bytes of its DER encoding.
 * @throws {NetworkError} `ERR_HANDSHAKE_FAILED` naming what is malformed.
 */
export function readCertificate(der: Uint8Array, oid: Uint8Array): CertificateParts {
  const cert = expect(readTlv(der, 0, der.byteLength, "certificate"), 0x30, "certificate");
  if (cert.end !== der.byteLength) malformed(`${der.byteLength - cert.end} trailing bytes`);
  const tbs = expect(readTlv(der, cert.body, cert.end, "tbsCertificate"), 0x30, "tbsCertificate");
  let at = tbs.body;
  const next = (what: string) => {
    const tlv = readTlv(der, at, tbs.end, what);
    at = tlv.end;
    return tlv;
  };
  let field = next("version or serial");
  if (field.tag === 0xa0) field = next("serial"); // explicit version
  expect(field, 0x02, "serial");
  for (const what of ["signature algorithm", "issuer", "validity", "subject"]) {
    expect(next(what), 0x30, what);
  }
  const spkiTlv = expect(next("subjectPublicKeyInfo"), 0x30, "subjectPublicKeyInfo");
  const spki = der.subarray(spkiTlv.start, spkiTlv.end);
  let extension: Uint8Array | undefined;
  while (at < tbs.end) {
    const item = next("optional field");
    if (item.tag !== 0xa3) continue; // issuer/subject unique ids
    const list = expect(readTlv(der, item.body, item.end, "extensions"), 0x30, "extensions");
    let e = list.body;
    while (e < list.end) {
      const ext = expect(readTlv(der, e, list.end, "extension"), 0x30, "extension");
      e = ext.end;
      const id = expect(readTlv(der, ext.body, ext.end, "extension id"), 0x06, "extension id");
      let value = readTlv(der, id.end, ext.end, "extension value");
      if (value.tag === 0x01) value = readTlv(der, value.end, ext.end, "extension value");
      expect(value, 0x04, "extension value");
      if (value.end !== ext.end) malformed("trailing bytes in an extension");
      if (!equalBytes(der.subarray(id.body, id.end), oid)) continue;
      if (extension !== undefined) malformed("the identity binding extension appears twice");
      extension = der.subarray(value.body, value.end);
    }
  }
  return { spki, extension };
}
