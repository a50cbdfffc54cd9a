/**
 * mDNS discovery against real peers: our nodes, Avahi, and a sender of hostile packets, each in
 * network namespaces joined by a veth pair (see `_mdns_lab.ts`); nothing is sent on the host
 * network. Option validation runs without any network.
 *
 * @module
 */

import assert from "node:assert/strict";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import { MdnsDiscovery } from "../../src/discovery/mod.ts";
import { ADDR, avahiSkip, labSkip, MdnsLab, parseJson, testPeerId } from "./_mdns_lab.ts";

const INNS_TEST = new URL("./_mdns_inns_test.ts", import.meta.url).pathname;

const A1 = testPeerId(1);
const A2 = testPeerId(2);
const B = testPeerId(3);
const AV = testPeerId(4);
const skip = labSkip();
const skipAvahi = skip ?? avahiSkip();
if (skip) console.warn(`mdns_test: namespace tests skipped: ${skip}`);
else if (skipAvahi) console.warn(`mdns_test: Avahi interop skipped: ${skipAvahi}`);

Deno.test("options are validated up front, naming the option and the value", () => {
  const p = A1;
  const bad: [Record<string, unknown>, string, RegExp][] = [
    [{ peerId: "", port: 1 }, "peerId", /current value is ""/],
    [{ peerId: "has space", port: 1 }, "peerId", /"has space"/],
    [{ peerId: A1.toUpperCase(), port: 1 }, "peerId", /must be a valid peer id/],
    [{ peerId: p, port: 0 }, "port", /from 1 to 65535: current value is 0/],
    [{ peerId: p, port: 70000 }, "port", /current value is 70000/],
    [{ peerId: p, port: 1, version: "1 0" }, "version", /"1 0"/],
    [{ peerId: p, port: 1, instance: "a.b" }, "instance", /"a.b"/],
    [{ peerId: p, port: 1, hostname: "host.lan" }, "hostname", /"host.lan"/],
    [{ peerId: p, port: 1, ttlSecs: 0 }, "ttlSecs", /current value is 0/],
    [{ peerId: p, port: 1, interfaces: [] }, "interfaces", /current value is \[\]/],
    [{ peerId: p, port: 1, addresses: ["224.0.0.1"] }, "addresses", /224.0.0.1/],
    [{ peerId: p, port: 1, maxPacketBytes: 100 }, "maxPacketBytes", /current value is 100/],
  ];
  for (const [options, field, message] of bad) {
    assert.throws(
      () => new MdnsDiscovery(options as never),
      (e: unknown) =>
        e instanceof InvalidConfigError && e.field === field && message.test(e.message),
      `${field}: ${JSON.stringify(options)}`,
    );
  }
  const long = "x".repeat(100);
  assert.doesNotThrow(
    () => new MdnsDiscovery({ peerId: long, port: 1, isValidPeerId: () => true }),
    "ids too long for a label get a hashed instance name",
  );
});

Deno.test("an unknown interface name is refused at start", async () => {
  const m = new MdnsDiscovery({ peerId: A1, port: 1, interfaces: ["no-such-if0"] });
  await assert.rejects(
    () => m.start(),
    (e: unknown) => e instanceof InvalidConfigError && /"no-such-if0"/.test(e.message),
  );
  await m.close();
});

Deno.test({
  name: "the lab removes the system bus socket its own dbus-daemon made, also when a test fails",
  ignore: skipAvahi !== undefined,

  fn: async () => {
    const socket = "/run/dbus/system_bus_socket";
    const before = await Deno.lstat(socket).catch(() => null);
    const failed = await (async () => {
      await using lab = await MdnsLab.create();
      await lab.startAvahi(lab.nsB);
      throw new Error("a failing test");
    })().catch((e: Error) => e.message);
    assert.equal(failed, "a failing test");
    const after = await Deno.lstat(socket).catch(() => null);
    // With a bus already running, the lab starts none and must leave its socket alone; a dead
    // socket left by someone else is replaced by the lab's bus, whose socket then goes too.
    assert.ok(
      after === null || after.ino === before?.ino,
      `no socket of the lab's bus is left behind (before: ${before?.ino}, after: ${after?.ino})`,
    );
  },
});

Deno.test({
  name: "Avahi resolves our node with peer= in TXT, and we discover and expire an Avahi service",
  ignore: skipAvahi !== undefined,

  fn: async () => {
    await using lab = await MdnsLab.create();
    await lab.startAvahi(lab.nsB);
    const node = await lab.startNode(lab.nsA, A1, 9001);

    // Avahi learnt of us from our announcement or asks now; `-t` ends after "all for now", so
    // browse again (bounded) until the resolved line shows up.
    let resolved: string | undefined;
    for (let attempt = 0; attempt < 5 && resolved === undefined; attempt++) {
      const browse = lab.spawn(lab.nsB, "avahi-browse", [
        "avahi-browse",
        "-r",
        "-t",
        "-p",
        "_cretoai._udp",
      ]);
      await browse.waitExit(15_000);
      resolved = browse.lines.find((l) => l.startsWith("=") && l.includes(`peer=${A1}`));
    }
    assert.ok(resolved, "avahi-browse resolved our service");
    // =;iface;IPv4;instance;type;domain;host;address;port;txt
    const f = resolved.split(";");
    assert.equal(f[3], `cretoai-${A1}`);
    assert.equal(f[4], "_cretoai._udp");
    assert.equal(f[7], ADDR.a);
    assert.equal(f[8], "9001");
    assert.ok(f[9].includes(`"peer=${A1}"`), f[9]);
    assert.match(f[9], /"v=1"/);

    const publish = lab.spawn(lab.nsB, "avahi-publish", [
      "avahi-publish",
      "-s",
      "avahi-node",
      "_cretoai._udp",
      "9002",
      `peer=${AV}`,
      "v=1",
    ]);
    const found = await node.waitEvent({ event: "discovered", peerId: AV }, 15_000);
    assert.deepEqual(found.addresses, [{ hostname: ADDR.b, port: 9002 }]);
    assert.equal(found.instance, "avahi-node");
    assert.equal(found.version, "1");

    // avahi-publish withdraws its service (TTL 0 goodbye) when terminated.
    await publish.stop();
    await node.waitEvent({ event: "expired", peerId: AV }, 10_000);
  },
});

Deno.test({
  name: "three nodes discover each other; a closed node's goodbye expires it at the others",
  ignore: skip !== undefined,

  fn: async () => {
    await using lab = await MdnsLab.create();
    const t0 = performance.now();
    // Two nodes share namespace A (multicast loopback), one is across the veth in B.
    const a1 = await lab.startNode(lab.nsA, A1, 9001);
    const a2 = await lab.startNode(lab.nsA, A2, 9002);
    const b = await lab.startNode(lab.nsB, B, 9003);
    const want: [typeof a1, string, string, number][] = [
      [a1, A2, ADDR.a, 9002],
      [a1, B, ADDR.b, 9003],
      [a2, A1, ADDR.a, 9001],
      [a2, B, ADDR.b, 9003],
      [b, A1, ADDR.a, 9001],
      [b, A2, ADDR.a, 9002],
    ];
    for (const [node, peerId, hostname, port] of want) {
      const e = await node.waitEvent({ event: "discovered", peerId }, 10_000);
      assert.deepEqual(e.addresses, [{ hostname, port }], `${node.label} sees ${peerId}`);
      assert.equal(e.version, "1");
    }
    const tDiscovered = performance.now();

    await a2.send("close");
    await a2.waitEvent({ event: "closed" }, 5000);
    assert.equal((await a2.waitExit(5000)).code, 0, "the node process ends by itself after close");
    await a1.waitEvent({ event: "expired", peerId: A2 }, 5000);
    await b.waitEvent({ event: "expired", peerId: A2 }, 5000);
    const tExpired = performance.now();

    for (const node of [a1, b]) {
      const s = await lab.stats(node);
      assert.equal(s.dropped, 0, `${node.label}: nothing dropped in clean traffic`);
      assert.ok((s.ownIgnored as number) > 0, `${node.label}: heard its own announcements`);
      assert.ok(
        !node.lines.some((l) =>
          parseJson(l)?.peerId === node.label.slice(5) && l.includes("discovered")
        ),
      );
    }
    console.log(
      `three nodes: all discovered ${(tDiscovered - t0).toFixed(0)} ms after the first start, ` +
        `goodbye seen ${(tExpired - tDiscovered).toFixed(0)} ms after close was asked`,
    );
  },
});

Deno.test({
  name: "garbage, oversized and invalid mDNS packets are dropped and counted; discovery goes on",
  ignore: skip !== undefined,

  fn: async () => {
    await using lab = await MdnsLab.create();
    const a = await lab.startNode(lab.nsA, A1, 9001);
    const sent = await lab.sendGarbage();

    // Datagrams on the link arrive in order, so once B is discovered the garbage was handled.
    const b = await lab.startNode(lab.nsB, B, 9003);
    await a.waitEvent({ event: "discovered", peerId: B }, 10_000);
    await b.waitEvent({ event: "discovered", peerId: A1 }, 10_000);

    const s = await lab.stats(a);
    const by = s.droppedBy as Record<string, number>;
    assert.equal(by.malformed, sent.malformed, JSON.stringify(s));
    assert.equal(by.oversized, sent.oversized, JSON.stringify(s));
    assert.equal(by.invalid, sent.invalid, JSON.stringify(s));
    assert.equal(s.dropped, by.malformed + by.oversized + by.invalid + by.overflow);
    assert.equal(s.peers, 1, "only the real peer is known: " + JSON.stringify(s));
    const discovered = a.lines.map(parseJson).filter((o) => o?.event === "discovered");
    assert.deepEqual(discovered.map((o) => o!.peerId), [B]);
  },
});

Deno.test({
  name:
    "no reflection: one-shot queries only from the link, 200 questions dropped, only our question repeated, dials only with a basis",
  ignore: skip !== undefined,

  fn: async () => {
    await using lab = await MdnsLab.create();
    const a = await lab.startNode(lab.nsA, A1, 9001, undefined, { sys: true });
    const result = await lab.probeReflection(B);
    assert.equal(result.offLinkReplies, 0, "no answer to a source off the link");
    assert.deepEqual(result.replies, [3], "the 200-question query got no answer");
    assert.deepEqual(result.questions, ["PTR _cretoai._udp.local"], "our question, once");
    assert.ok((result.answers as number) >= 1);

    const found = await a.waitEvent({ event: "discovered", peerId: B }, 10_000);
    assert.deepEqual(found.addresses, [
      { hostname: ADDR.b, port: 9003 },
      { hostname: "10.77.0.55", port: 9003 },
    ], "the off-link address 198.51.100.7 is not taken");
    const s = await lab.stats(a);
    assert.equal((s.droppedBy as Record<string, number>).invalid, 1, JSON.stringify(s));
  },
});

Deno.test({
  name: "in-process services close cleanly under Deno's test sanitizers (run inside a namespace)",
  ignore: skip !== undefined,

  fn: async () => {
    await using lab = await MdnsLab.create();
    const { status, run } = await lab.testInside(INNS_TEST);
    assert.equal(status.code, 0, run.dump());
    assert.ok(run.lines.some((l) => /ok \| 2 passed/.test(l)), run.dump());
  },
});

Deno.test({
  name: "without net access to the mDNS port, start() rejects instead of crashing the process",
  permissions: { net: ["10.99.0.1"], env: true, read: true, sys: true },
  fn: async () => {
    const m = new MdnsDiscovery({ peerId: A1, port: 9001, interfaces: ["10.99.0.1"] });
    await assert.rejects(
      () => m.start(),
      (e: unknown) =>
        e instanceof NetworkError && e.code === "ERR_MDNS" && /0\.0\.0\.0:5353/.test(e.message),
    );
    await m.close();
  },
});
