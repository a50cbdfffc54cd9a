/**
 * A TLS certificate generated in memory when an endpoint starts, so that no files are needed.
 * TLS here only protects the QUIC connection: who the peer is gets decided by the handshake on
 * top of it, from an identity binding the transport puts in its certificate as an extension
 * (see docs/handshake.md). The certificate is therefore self-signed and short-lived; its
 * Ed25519 key is fresh for every endpoint.
 *
 * @module
 */

import { concatBytes } from "../_bytes.ts";

/** A certificate and its private key, in the forms quiche and the handshake need. */
export interface TlsCertificate {
  /** The certificate, DER encoded. */
  readonly der: Uint8Array;
  /** The certificate as PEM text bytes, for quiche's TLS context. */
  readonly certPem: Uint8Array;
  /** The private key (PKCS#8) as PEM text bytes, for quiche's TLS context. */
  readonly keyPem: Uint8Array;
  /** The private key, to sign certificates issued by this one. */
  readonly privateKey: CryptoKey;
  /** The subject name, DER encoded, for certificates issued by this one. */
  readonly subject: Uint8Array;
}

/** A non-critical X.509 v3 extension to put in a generated certificate. */
export interface CertificateExtension {
  /** The extension's object identifier, as the content bytes of its DER encoding. */
  readonly oid: Uint8Array;
  /** The extension's value (wrapped in an OCTET STRING by the encoder). */
  readonly value: Uint8Array;
}

/** Options of {@linkcode generateCertificate}. */
export interface GenerateCertificateOptions {
  /**
   * Common name of subject and issuer.
   * @default {"cretoai"}
   */
  commonName?: string;
  /**
   * How long the certificate is valid, in days, starting one hour ago (clock skew).
   * @default {30}
   */
  validityDays?: number;
  /**
   * Make a certificate authority (basicConstraints CA:TRUE) that can issue others.
   * @default {false}
   */
  ca?: boolean;
  /** Sign with this CA instead of self-signing. */
  issuer?: TlsCertificate;
  /**
   * DNS names for the subjectAltName extension; verifying TLS clients such as Deno's own
   * QUIC need them.
   * @default {[]}
   */
  dnsNames?: string[];
  /**
   * The certificate's key pair (Ed25519, extractable), for a caller that signs something over
   * the public key before the certificate exists.
   * @default {undefined} (a fresh key pair)
   */
  keys?: CryptoKeyPair;
  /**
   * Further non-critical extensions, after basicConstraints and subjectAltName.
   * @default {[]}
   */
  extensions?: readonly CertificateExtension[];
}

/**
 * Generates a self-signed Ed25519 X.509 certificate with a fresh key.
 *
 * @example
 * ```ts
 * import { generateCertificate } from "@cretoai/network/quic";
 *
 * const cert = await generateCertificate({ commonName: "node-1" });
 * console.assert(cert.der[0] === 0x30); // a DER SEQUENCE
 * ```
 *
 * @param options Name and validity.
 * @returns The certificate and key.
 */
export async function generateCertificate(
  options: GenerateCertificateOptions = {},
): Promise<TlsCertificate> {
  const {
    commonName = "cretoai",
    validityDays = 30,
    ca = false,
    issuer,
    dnsNames = [],
    extensions: extra = [],
  } = options;
  const keys = options.keys ?? await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", keys.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));

  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0] & 0x7f) | 0x40; // positive, and minimal DER: no leading zero byte
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(notBefore.getTime() + validityDays * 86400_000);
  const subject = seq(set(seq(oid(OID_COMMON_NAME), tlv(0x0c, utf8(commonName)))));
  const extensions = [
    seq(
      oid(OID_BASIC_CONSTRAINTS),
      tlv(0x01, new Uint8Array([0xff])),
      octets(seq(...(ca ? [tlv(0x01, new Uint8Array([0xff]))] : []))),
    ),
  ];
  if (dnsNames.length > 0) {
    extensions.push(
      seq(oid(OID_SUBJECT_ALT_NAME), octets(seq(...dnsNames.map((n) => tlv(0x82, utf8(n)))))),
    );
  }
  for (const extension of extra) {
    extensions.push(seq(tlv(0x06, extension.oid), octets(extension.value)));
  }
  const tbs = seq(
    tlv(0xa0, int(new Uint8Array([2]))), // version v3
    int(serial),
    ED25519_ALGORITHM,
    issuer?.subject ?? subject,
    seq(time(notBefore), time(notAfter)),
    subject,
    seq(ED25519_ALGORITHM, bitString(publicKey)),
    tlv(0xa3, seq(...extensions)),
  );
  const signer = issuer?.privateKey ?? keys.privateKey;
  const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", signer, tbs));
  const der = seq(tbs, ED25519_ALGORITHM, bitString(signature));
  return {
    der,
    certPem: pem("CERTIFICATE", der),
    keyPem: pem("PRIVATE KEY", pkcs8),
    privateKey: keys.privateKey,
    subject,
  };
}

const OID_ED25519 = [0x2b, 0x65, 0x70]; // 1.3.101.112
const OID_COMMON_NAME = [0x55, 0x04, 0x03]; // 2.5.4.3
const OID_BASIC_CONSTRAINTS = [0x55, 0x1d, 0x13]; // 2.5.29.19
const OID_SUBJECT_ALT_NAME = [0x55, 0x1d, 0x11]; // 2.5.29.17
const ED25519_ALGORITHM = seq(oid(OID_ED25519));

function tlv(tag: number, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const n = body.byteLength;
  const head = n < 0x80
    ? [tag, n]
    : n < 0x100
    ? [tag, 0x81, n]
    : n < 0x10000
    ? [tag, 0x82, n >> 8, n & 0xff]
    : [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  const out = new Uint8Array(head.length + n);
  out.set(head);
  out.set(body, head.length);
  return out;
}

function seq(...items: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return tlv(0x30, concatBytes(items));
}

function set(...items: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return tlv(0x31, concatBytes(items));
}

function oid(bytes: number[]): Uint8Array<ArrayBuffer> {
  return tlv(0x06, new Uint8Array(bytes));
}

function int(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return tlv(0x02, bytes);
}

function octets(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return tlv(0x04, bytes);
}

function bitString(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return tlv(0x03, concatBytes([new Uint8Array([0]), bytes]));
}

function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

function time(date: Date): Uint8Array<ArrayBuffer> {
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  const iso = date.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
  return date.getUTCFullYear() < 2050 ? tlv(0x17, utf8(iso.slice(2))) : tlv(0x18, utf8(iso));
}

/** Bytes spread into one `String.fromCharCode` call: more overflows the call stack. */
const CHAR_CODES_PER_CALL = 8192;

function pem(label: string, der: Uint8Array): Uint8Array<ArrayBuffer> {
  let binary = "";
  for (let at = 0; at < der.byteLength; at += CHAR_CODES_PER_CALL) {
    binary += String.fromCharCode(...der.subarray(at, at + CHAR_CODES_PER_CALL));
  }
  const lines = btoa(binary).match(/.{1,64}/g) ?? [];
  return utf8(`-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`);
}
