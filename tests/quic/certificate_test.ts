import assert from "node:assert/strict";
import { generateCertificate, type TlsCertificate } from "../../src/quic/certificate.ts";

/** One DER element: its tag and where its contents are. */
interface Der {
  /** Where the element (its tag) starts. */
  at: number;
  tag: number;
  start: number;
  end: number;
}

/** Reads the element at `at`, checking that the length stays inside `limit`. */
function read(bytes: Uint8Array, at: number, limit = bytes.byteLength): Der {
  const tag = bytes[at];
  let length = bytes[at + 1];
  let start = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    assert.ok(count >= 1 && count <= 2, `length of ${count} bytes at ${at}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[start + i];
    assert.ok(length >= (count === 1 ? 0x80 : 0x100), `non-minimal length at ${at}`);
    start += count;
  }
  assert.ok(start + length <= limit, `element at ${at} runs past its parent`);
  return { at, tag, start, end: start + length };
}

/** The children of a constructed element. */
function children(bytes: Uint8Array, parent: Der): Der[] {
  const out: Der[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = read(bytes, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

const body = (bytes: Uint8Array, d: Der) => bytes.subarray(d.start, d.end);
const whole = (bytes: Uint8Array, d: Der) => bytes.subarray(d.at, d.end);
const ED25519 = [0x06, 0x03, 0x2b, 0x65, 0x70];

/** What the tests look at in a certificate. */
interface Parsed {
  publicKey: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: string;
  notAfter: string;
  extensions: Uint8Array;
}

/** Parses the certificate's structure and checks its signature with `signer`'s key. */
async function parse(cert: TlsCertificate, signerDer = cert.der): Promise<Parsed> {
  const der = cert.der;
  const top = read(der, 0);
  assert.equal(top.tag, 0x30);
  assert.equal(top.end, der.byteLength, "nothing after the certificate");
  const [tbs, sigAlg, sig] = children(der, top);
  assert.deepEqual([tbs.tag, sigAlg.tag, sig.tag], [0x30, 0x30, 0x03]);
  assert.deepEqual([...body(der, sigAlg)], ED25519);
  const fields = children(der, tbs);
  const [version, serial, alg, issuer, validity, subject, spki, extensions] = fields;
  assert.equal(fields.length, 8);
  assert.deepEqual([...der.subarray(version.start, version.end)], [0x02, 0x01, 0x02], "v3");
  assert.equal(serial.tag, 0x02);
  const serialBytes = body(der, serial);
  assert.ok(serialBytes[0] < 0x80, "positive serial");
  assert.ok(serialBytes[0] !== 0 || serialBytes[1] >= 0x80, "minimal serial encoding");
  assert.deepEqual([...body(der, alg)], ED25519);
  const [notBefore, notAfter] = children(der, validity);
  const [spkiAlg, key] = children(der, spki);
  assert.deepEqual([...body(der, spkiAlg)], ED25519);
  const publicKey = body(der, key).subarray(1); // after the unused-bits byte
  assert.equal(publicKey.byteLength, 32);
  assert.equal(extensions.tag, 0xa3);

  // The signature over the TBS bytes verifies with the signer's public key.
  const signer: Uint8Array = signerDer === der
    ? publicKey
    : (await parse({ ...cert, der: signerDer }))
      .publicKey;
  const verifyKey = await crypto.subtle.importKey("raw", signer.slice(), "Ed25519", false, [
    "verify",
  ]);
  const signature = body(der, sig).subarray(1);
  assert.ok(
    await crypto.subtle.verify("Ed25519", verifyKey, signature.slice(), whole(der, tbs).slice()),
    "signature verifies",
  );
  const text = (d: Der) => new TextDecoder().decode(body(der, d));
  return {
    publicKey,
    issuer: whole(der, issuer),
    subject: whole(der, subject),
    notBefore: text(notBefore),
    notAfter: text(notAfter),
    extensions: body(der, extensions),
  };
}

/** UTCTime YYMMDDHHMMSSZ as a Date. */
function utcTime(text: string): Date {
  const [yy, mo, dd, hh, mi, ss] = text.match(/\d\d/g)!.map(Number);
  return new Date(Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss));
}

Deno.test("certificate: a self-signed Ed25519 v3 certificate whose signature verifies", async () => {
  const cert = await generateCertificate({ commonName: "node-1", validityDays: 2 });
  const parsed = await parse(cert);
  assert.deepEqual(parsed.issuer, parsed.subject, "self-signed");
  assert.deepEqual(parsed.subject, cert.subject);
  assert.ok(new TextDecoder().decode(parsed.subject).includes("node-1"));
  const notBefore = utcTime(parsed.notBefore);
  const notAfter = utcTime(parsed.notAfter);
  const now = Date.now();
  assert.ok(notBefore.getTime() <= now - 3500_000 && notBefore.getTime() >= now - 3700_000);
  assert.equal(notAfter.getTime() - notBefore.getTime(), 2 * 86400_000);
  const pem = new TextDecoder().decode(cert.certPem);
  assert.match(
    pem,
    /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/,
  );
  assert.match(new TextDecoder().decode(cert.keyPem), /^-----BEGIN PRIVATE KEY-----\n/);
});

Deno.test("certificate: every serial is positive and minimally encoded (300 certificates)", async () => {
  const serials = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const { der } = await generateCertificate();
    const tbs = read(der, read(der, 0).start);
    const [, serial] = children(der, tbs);
    const bytes = body(der, serial);
    assert.ok(bytes[0] >= 0x01 && bytes[0] < 0x80, `serial starts with ${bytes[0]}`);
    serials.add(Array.from(bytes).join(","));
  }
  assert.equal(serials.size, 300);
});

Deno.test("certificate: a CA issues a leaf whose signature verifies with the CA's key", async () => {
  const ca = await generateCertificate({ commonName: "test-ca", ca: true });
  const leaf = await generateCertificate({
    commonName: "leaf",
    issuer: ca,
    dnsNames: ["localhost"],
  });
  const parsed = await parse(leaf, ca.der);
  assert.deepEqual(parsed.issuer, ca.subject);
  assert.notDeepEqual(parsed.issuer, parsed.subject);
  assert.ok(new TextDecoder().decode(parsed.extensions).includes("localhost"));
});

const openssl = await (async () => {
  try {
    const { success } = await new Deno.Command("openssl", { args: ["version"], stdout: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
})();

/** Runs openssl in `dir`; returns stdout, or fails with stderr. */
async function run(dir: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return text;
}

Deno.test({
  name: "certificate: openssl parses the DER, matches the key, and verifies the chain",
  ignore: !openssl,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "cretoai-cert-" });
    try {
      const self = await generateCertificate({ commonName: "node-7" });
      const ca = await generateCertificate({ commonName: "test-ca", ca: true });
      const leaf = await generateCertificate({ commonName: "leaf", issuer: ca });
      await Deno.writeFile(`${dir}/self.der`, self.der);
      await Deno.writeFile(`${dir}/self.pem`, self.certPem);
      await Deno.writeFile(`${dir}/self.key`, self.keyPem);
      await Deno.writeFile(`${dir}/ca.pem`, ca.certPem);
      await Deno.writeFile(`${dir}/leaf.pem`, leaf.certPem);

      const text = await run(dir, "x509", "-inform", "der", "-in", "self.der", "-noout", "-text");
      assert.match(text, /Version: 3/);
      assert.match(text, /Signature Algorithm: ED25519/);
      assert.match(text, /Subject: CN\s*=\s*node-7/);
      assert.match(text, /Issuer: CN\s*=\s*node-7/);
      // The PEM is the DER, and the private key belongs to the certificate.
      const fromDer = await run(
        dir,
        "x509",
        "-inform",
        "der",
        "-in",
        "self.der",
        "-pubkey",
        "-noout",
      );
      const fromPem = await run(dir, "x509", "-in", "self.pem", "-pubkey", "-noout");
      const fromKey = await run(dir, "pkey", "-in", "self.key", "-pubout");
      assert.equal(fromPem, fromDer);
      assert.equal(fromKey, fromDer);
      assert.match(await run(dir, "verify", "-CAfile", "self.pem", "self.pem"), /self.pem: OK/);
      assert.match(await run(dir, "verify", "-CAfile", "ca.pem", "leaf.pem"), /leaf.pem: OK/);
      // A leaf is not accepted as its own CA for others.
      const wrong = await new Deno.Command("openssl", {
        args: ["verify", "-CAfile", "self.pem", "leaf.pem"],
        cwd: dir,
        stdout: "null",
        stderr: "null",
      }).output();
      assert.equal(wrong.success, false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
