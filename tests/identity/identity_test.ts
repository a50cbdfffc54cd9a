import { configure, type LogRecord, reset } from "@logtape/logtape";
import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { NetworkError } from "../../src/errors.ts";
import { Identity, PublicIdentity } from "../../src/identity/mod.ts";

const seeds = { ed25519Seed: new Uint8Array(32).fill(5), mlDsa65Seed: new Uint8Array(32).fill(6) };
const identity = Identity.fromSeeds(seeds);
const msg = new TextEncoder().encode("transcript");
const sig = identity.sign(msg);

Deno.test("Identity signs with both keys and verifies only when both verify", () => {
  assertEquals(sig.ed25519.byteLength, 64);
  assertEquals(sig.mlDsa65.byteLength, 3309);
  assert(Identity.verify(identity.publicIdentity, msg, sig));
  assert(!Identity.verify(identity.publicIdentity, new TextEncoder().encode("other"), sig));

  const badEd = { ...sig, ed25519: sig.ed25519.slice() };
  badEd.ed25519[0] ^= 1;
  assert(!Identity.verify(identity.publicIdentity, msg, badEd), "Ed25519 half tampered");

  const badDsa = { ...sig, mlDsa65: sig.mlDsa65.slice() };
  badDsa.mlDsa65[100] ^= 1;
  assert(!Identity.verify(identity.publicIdentity, msg, badDsa), "ML-DSA half tampered");

  const other = Identity.fromSeeds({ ...seeds, ed25519Seed: new Uint8Array(32).fill(7) });
  const mixed = { ed25519: other.sign(msg).ed25519, mlDsa65: sig.mlDsa65 };
  assert(!Identity.verify(identity.publicIdentity, msg, mixed), "Ed25519 half from another key");
});

Deno.test("Identity.verify returns false, never throws, for malformed signatures", () => {
  const pub = identity.publicIdentity;
  assert(!Identity.verify(pub, msg, { ed25519: sig.ed25519.subarray(1), mlDsa65: sig.mlDsa65 }));
  assert(!Identity.verify(pub, msg, { ed25519: sig.ed25519, mlDsa65: new Uint8Array(3309) }));
  assert(
    !Identity.verify(pub, msg, {
      ed25519: new Uint8Array(64).fill(0xff),
      mlDsa65: new Uint8Array(3309).fill(0xff),
    }),
  );
});

Deno.test("a half of a hybrid signature is not a plain signature of the message", async () => {
  const { ed25519 } = await import("@noble/curves/ed25519.js");
  assert(!ed25519.verify(sig.ed25519, msg, identity.publicIdentity.ed25519));
});

Deno.test("Identity.fromSeeds is deterministic and refuses wrong seed sizes", () => {
  assert(Identity.fromSeeds(seeds).peerId.equals(identity.peerId));
  const e1 = assertThrows(
    () => Identity.fromSeeds({ ...seeds, ed25519Seed: new Uint8Array(31) }),
    NetworkError,
    "Invalid Ed25519 seed: must be 32 bytes: current size is 31 bytes",
  );
  assertEquals(e1.code, "ERR_INVALID_KEY");
  const e2 = assertThrows(
    () => Identity.fromSeeds({ ...seeds, mlDsa65Seed: new Uint8Array(64) }),
    NetworkError,
    "Invalid ML-DSA-65 seed: must be 32 bytes: current size is 64 bytes",
  );
  assertEquals(e2.code, "ERR_INVALID_KEY");
});

Deno.test("Identity.generate gives distinct identities", () => {
  assert(!Identity.generate().peerId.equals(Identity.generate().peerId));
});

Deno.test("Identity file: round trip, mode 0600, no silent overwrite", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/identity.key`;
    await identity.save(path);
    if (Deno.build.os !== "windows") assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    const loaded = await Identity.load(path);
    assert(loaded.peerId.equals(identity.peerId));
    assert(Identity.verify(identity.publicIdentity, msg, loaded.sign(msg)));

    await assertRejects(() => Identity.generate().save(path), Deno.errors.AlreadyExists);
    assert((await Identity.load(path)).peerId.equals(identity.peerId));

    if (Deno.build.os !== "windows") {
      await Deno.chmod(path, 0o644);
      const fresh = Identity.generate();
      await fresh.save(path, { overwrite: true });
      assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert((await Identity.load(path)).peerId.equals(fresh.peerId));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "Identity file: replaced whole (a new file renamed over the old), no temporary left",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/identity.key`;
      await identity.save(path);
      const before = await Deno.readFile(path);
      // A reader holding the old file keeps reading the old identity, whole: the new one never
      // was written into it (a crash mid-write would have left it truncated).
      using old = await Deno.open(path);
      await Identity.generate().save(path, { overwrite: true });
      const kept = new Uint8Array(before.byteLength);
      assertEquals(await old.read(kept), before.byteLength);
      assertEquals(kept, before);
      assert(!(await Identity.load(path)).peerId.equals(identity.peerId));
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["identity.key"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Identity file: a symbolic link is refused, and what it points to is left alone",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const elsewhere = `${dir}/elsewhere`;
      await Deno.writeTextFile(elsewhere, "not a key");
      const path = `${dir}/identity.key`;
      await Deno.symlink(elsewhere, path);
      for (const overwrite of [false, true]) {
        const err = await assertRejects(
          () => identity.save(path, { overwrite }),
          NetworkError,
          "is a symbolic link",
        );
        assertEquals(err.code, "ERR_INVALID_KEY");
      }
      assertEquals(await Deno.readTextFile(elsewhere), "not a key");
      assert((await Deno.lstat(path)).isSymlink);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
        "elsewhere",
        "identity.key",
      ]);

      // A link planted where the temporary file goes is removed, never written through.
      await Deno.remove(path);
      await Deno.symlink(elsewhere, `${path}.tmp`);
      await identity.save(path);
      assertEquals(await Deno.readTextFile(elsewhere), "not a key");
      assert((await Identity.load(path)).peerId.equals(identity.peerId));
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
        "elsewhere",
        "identity.key",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Identity.load warns when group or others may read the file, and loads it",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const records: LogRecord[] = [];
    await configure({
      sinks: { capture: (r) => records.push(r) },
      loggers: [
        { category: ["cretoai", "identity"], lowestLevel: "warning", sinks: ["capture"] },
        { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
      ],
    });
    try {
      const path = `${dir}/identity.key`;
      await identity.save(path);
      await Identity.load(path);
      assertEquals(records.length, 0, "mode 0600: no warning");
      await Deno.chmod(path, 0o644);
      assert((await Identity.load(path)).peerId.equals(identity.peerId));
      assertEquals(records.length, 1);
      assertEquals(records[0].properties, { path, mode: "0644" });
    } finally {
      await reset();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("Identity.load refuses broken files with ERR_INVALID_KEY", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/identity.key`;
    await identity.save(path);
    const good = await Deno.readFile(path);
    const cases: [Uint8Array, string][] = [
      [new TextEncoder().encode("-----BEGIN PRIVATE KEY-----"), 'does not start with "CRID"'],
      [good.subarray(0, 40), "truncated"],
      [new Uint8Array([...good, 0]), "1 unexpected trailing bytes"],
      [Uint8Array.of(...good.subarray(0, 4), 9, ...good.subarray(5)), "unsupported version 9"],
      // Ed25519 seed length field says 31: the seed is refused by size.
      [
        Uint8Array.of(...good.subarray(0, 5), 0, 31, ...good.subarray(7, 38), ...good.subarray(39)),
        "Ed25519 seed: must be 32 bytes: current size is 31 bytes",
      ],
      // A flipped seed bit gives another peer id than the stored public keys.
      [Uint8Array.of(...good.subarray(0, 7), good[7] ^ 1, ...good.subarray(8)), "Corrupt"],
    ];
    for (const [bytes, why] of cases) {
      await Deno.writeFile(path, bytes);
      const err = await assertRejects(() => Identity.load(path), NetworkError, why);
      assertEquals(err.code, "ERR_INVALID_KEY");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PublicIdentity encodes, decodes and refuses wrong key sizes", () => {
  const pub = identity.publicIdentity;
  const encoded = pub.encode();
  assertEquals(encoded.byteLength, 1989);
  const copy = PublicIdentity.decode(encoded);
  assertEquals(copy.ed25519, pub.ed25519);
  assertEquals(copy.mlDsa65, pub.mlDsa65);
  assert(copy.peerId.equals(pub.peerId));

  const e1 = assertThrows(
    () => new PublicIdentity({ ed25519: new Uint8Array(33), mlDsa65: pub.mlDsa65 }),
    NetworkError,
    "Invalid Ed25519 public key: must be 32 bytes: current size is 33 bytes",
  );
  assertEquals(e1.code, "ERR_INVALID_KEY");
  const e2 = assertThrows(
    () => new PublicIdentity({ ed25519: pub.ed25519, mlDsa65: new Uint8Array(1312) }),
    NetworkError,
    "Invalid ML-DSA-65 public key: must be 1952 bytes: current size is 1312 bytes",
  );
  assertEquals(e2.code, "ERR_INVALID_KEY");

  const cases: [Uint8Array, string][] = [
    [new Uint8Array(0), "truncated in 'suite'"],
    [Uint8Array.of(2, ...encoded.subarray(1)), "unknown key suite 2"],
    [encoded.subarray(0, 100), "truncated in 'ML-DSA-65 public key'"],
    [Uint8Array.of(...encoded, 1), "trailing"],
    [Uint8Array.of(1, 0, 31, ...encoded.subarray(3, 34), ...encoded.subarray(35)), "31 bytes"],
  ];
  for (const [bytes, why] of cases) {
    const err = assertThrows(() => PublicIdentity.decode(bytes), NetworkError, why);
    assertEquals(err.code, "ERR_INVALID_KEY");
  }
});
