/**
 * Record building, query answering and validation of incoming records, with no network.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  answerQuery,
  buildAnnouncement,
  DNS_SD_SERVICES,
  estimateSize,
  isUsableIpv4,
  isValidLabel,
  isValidVersion,
  type LocalService,
  MAX_RECORD_TTL_S,
  MDNS_SERVICE_TYPE,
  parseResponse,
  parseTxt,
  questionsAbout,
  type RecordLimits,
  sameSubnet,
} from "../../src/discovery/mdns_records.ts";
import { PeerTable } from "../../src/discovery/mdns_peers.ts";
import { MAX_TIMER_DELAY_MS } from "../../src/_timer.ts";

const SVC: LocalService = {
  instance: "node-1",
  hostname: "cretoai-0011.local",
  port: 9001,
  peerId: "peerA",
  version: "1",
  addresses: ["10.0.0.5", "192.168.1.7"],
};
const FQDN = `node-1.${MDNS_SERVICE_TYPE}`;
const LIMITS: RecordLimits = {
  maxRecordSize: 1300,
  maxRecords: 64,
  isValidPeerId: (id) => /^[A-Za-z0-9]{1,64}$/.test(id),
};
const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("an announcement carries PTR, SRV, TXT with peer= and v=, and one A per address", () => {
  const res = buildAnnouncement(SVC, 120);
  assert.deepEqual(res.additionals, []);
  assert.deepEqual(res.answers.map((r) => r.type), ["PTR", "SRV", "TXT", "A", "A"]);
  const [ptr, srv, txt, a1, a2] = res.answers;
  assert.deepEqual(ptr, {
    name: MDNS_SERVICE_TYPE,
    type: "PTR",
    class: "IN",
    ttl: 120,
    flush: false, // shared name: never cache-flush
    data: FQDN,
  });
  assert.deepEqual(srv.data, { priority: 0, weight: 0, port: 9001, target: SVC.hostname });
  assert.equal(srv.flush, true);
  assert.deepEqual(txt.data, ["peer=peerA", "v=1"]);
  assert.deepEqual([a1.name, a1.data, a2.data], [SVC.hostname, "10.0.0.5", "192.168.1.7"]);
  assert.ok(buildAnnouncement(SVC, 0).answers.every((r) => r.ttl === 0), "goodbye has TTL 0");
});

Deno.test("what we announce parses back to the same service", () => {
  const parsed = parseResponse(buildAnnouncement(SVC, 120), LIMITS);
  assert.deepEqual(parsed.rejected, []);
  assert.deepEqual(parsed.services, [{
    key: FQDN,
    instance: "node-1",
    goodbye: false,
    srv: { port: 9001, target: SVC.hostname, ttl: 120 },
    txt: { peerId: "peerA", version: "1", ttl: 120 },
  }]);
  assert.deepEqual(parsed.hosts.get(SVC.hostname), { addresses: SVC.addresses, ttl: 120 });
  const bye = parseResponse(buildAnnouncement(SVC, 0), LIMITS);
  assert.equal(bye.services[0].goodbye, true);
  assert.equal(bye.hosts.size, 0, "address goodbyes alone do not end a peer");
});

Deno.test("Avahi-style records: mixed case, trailing dots, TXT as bytes, answers split in sections", () => {
  const parsed = parseResponse({
    answers: [{
      name: "_CretoAI._udp.local.",
      type: "PTR",
      ttl: 4500,
      data: "Av Node._cretoai._udp.local.",
    }],
    additionals: [
      {
        name: "Av Node._cretoai._udp.local",
        type: "TXT",
        ttl: 4500,
        data: [bytes("peer=peerAV"), bytes("v=1")],
      },
      {
        name: "Av Node._cretoai._udp.local",
        type: "SRV",
        ttl: 120,
        data: { priority: 0, weight: 0, port: 9002, target: "VM.local" },
      },
      { name: "vm.local", type: "AAAA", ttl: 120, data: "fe80::1" },
      { name: "vm.local", type: "A", ttl: 120, data: "10.77.0.2" },
    ],
  }, LIMITS);
  assert.deepEqual(parsed.rejected, []);
  assert.equal(parsed.services.length, 1);
  const s = parsed.services[0];
  assert.equal(s.key, "av node._cretoai._udp.local");
  assert.equal(s.instance, "Av Node");
  assert.deepEqual(s.srv, { port: 9002, target: "vm.local", ttl: 120 });
  assert.deepEqual(s.txt, { peerId: "peerAV", version: "1", ttl: 4500 });
  assert.deepEqual(parsed.hosts.get("vm.local")?.addresses, ["10.77.0.2"]);
});

Deno.test("invalid records are rejected one by one, with the value in the reason", () => {
  const srv = (port: unknown, target: unknown = "h.local") => ({
    name: FQDN,
    type: "SRV",
    ttl: 120,
    data: { port, target },
  });
  const txt = (data: unknown) => ({ name: FQDN, type: "TXT", ttl: 120, data });
  const cases: [unknown, RegExp][] = [
    [srv(0), /invalid port: 0/],
    [srv(65536), /invalid port: 65536/],
    [srv(1.5), /invalid port: 1.5/],
    [srv("80"), /invalid port: 80/],
    [{ name: FQDN, type: "SRV", ttl: 120, data: null }, /invalid port: none/],
    [srv(80, ""), /invalid target/],
    [srv(80, "a".repeat(300)), /invalid target/],
    [txt(["v=1"]), /no peer= key/],
    [txt(["peer="]), /invalid peer id ""/],
    [txt(["peer=has space"]), /invalid peer id "has space"/],
    [txt(["peer=ok", "v=not a version"]), /invalid version "not a version"/],
    [txt([new Uint8Array([0x70, 0x65, 0x65, 0x72, 0x3d, 0xff])]), /not valid UTF-8/],
    [txt(["peer=ok", ...Array(6).fill("z".repeat(250))]), /larger than 1300 bytes/],
    [
      { name: "h.local", type: "A", ttl: 120, data: "224.0.0.251" },
      /unusable address: 224.0.0.251/,
    ],
    [{ name: "h.local", type: "A", ttl: 120, data: "0.0.0.0" }, /unusable address/],
    [{ name: "h.local", type: "A", ttl: 120, data: "10.0.0.256" }, /unusable address/],
    [{ name: FQDN, type: "SRV", ttl: -1, data: {} }, /invalid ttl: -1/],
    [{ name: FQDN, type: "SRV", data: {} }, /invalid ttl: undefined/],
    [{ type: "A" }, /without a name or type/],
    [null, /without a name or type/],
    [
      { name: MDNS_SERVICE_TYPE, type: "PTR", ttl: 120, data: "elsewhere.local" },
      /invalid instance/,
    ],
  ];
  for (const [record, reason] of cases) {
    const parsed = parseResponse({ answers: [record] }, LIMITS);
    assert.equal(parsed.rejected.length, 1, `${JSON.stringify(record)}: ${parsed.rejected}`);
    assert.match(parsed.rejected[0], reason);
    assert.equal(parsed.services.every((s) => s.srv === undefined && s.txt === undefined), true);
  }
});

Deno.test("records of other services and types are ignored, not rejected", () => {
  const parsed = parseResponse({
    answers: [
      { name: "_http._tcp.local", type: "PTR", ttl: 120, data: "web._http._tcp.local" },
      {
        name: "web._http._tcp.local",
        type: "SRV",
        ttl: 120,
        data: { port: 80, target: "w.local" },
      },
      { name: "web._http._tcp.local", type: "TXT", ttl: 120, data: ["path=/"] },
      { name: "w.local", type: "HINFO", ttl: 120, data: {} },
    ],
  }, LIMITS);
  assert.deepEqual(parsed.rejected, []);
  assert.deepEqual(parsed.services, []);
});

Deno.test("a packet with too many records is rejected whole; non-array sections are ignored", () => {
  const many = Array.from(
    { length: 65 },
    () => ({ name: "h.local", type: "A", ttl: 1, data: "10.0.0.1" }),
  );
  const parsed = parseResponse({ answers: many }, LIMITS);
  assert.deepEqual(parsed.rejected, ["packet has 65 records, more than 64"]);
  assert.equal(parsed.hosts.size, 0);
  assert.deepEqual(parseResponse({ answers: "x", additionals: 7 }, LIMITS).rejected, []);
});

Deno.test("parseTxt: first key wins, keys are case-insensitive, version is optional", () => {
  assert.deepEqual(parseTxt(["PEER=a1", "peer=b2", "flag"], LIMITS), {
    peerId: "a1",
    version: undefined,
  });
  assert.deepEqual(parseTxt("peer=a1", LIMITS), { peerId: "a1", version: undefined });
  assert.equal(parseTxt([], LIMITS), "no peer= key");
  assert.equal(parseTxt([42], LIMITS), "no peer= key");
});

Deno.test("queries: PTR gets SRV/TXT/A as additionals; SRV, TXT, A and ANY are answered", () => {
  const ptr = answerQuery({ questions: [{ name: MDNS_SERVICE_TYPE, type: "PTR" }] }, SVC, 120)!;
  assert.deepEqual(ptr.answers.map((r) => r.type), ["PTR"]);
  assert.deepEqual(ptr.additionals.map((r) => r.type), ["SRV", "TXT", "A", "A"]);

  const upper = answerQuery(
    { questions: [{ name: "_CRETOAI._udp.local.", type: "ANY" }] },
    SVC,
    120,
  );
  assert.equal(upper?.answers[0].type, "PTR", "names compare case-insensitively");

  const srv = answerQuery({ questions: [{ name: FQDN, type: "SRV" }] }, SVC, 120)!;
  assert.deepEqual(srv.answers.map((r) => r.type), ["SRV"]);
  assert.deepEqual(srv.additionals.map((r) => r.type), ["TXT", "A", "A"]);

  const txt = answerQuery({ questions: [{ name: FQDN, type: "TXT" }] }, SVC, 120)!;
  assert.deepEqual([txt.answers.map((r) => r.type), txt.additionals], [["TXT"], []]);

  const a = answerQuery({ questions: [{ name: SVC.hostname, type: "A" }] }, SVC, 120)!;
  assert.deepEqual(a.answers.map((r) => r.data), SVC.addresses);

  const any = answerQuery({ questions: [{ name: FQDN, type: "ANY" }] }, SVC, 120)!;
  assert.deepEqual(any.answers.map((r) => r.type), ["SRV", "TXT"]);

  const meta = answerQuery({ questions: [{ name: DNS_SD_SERVICES, type: "PTR" }] }, SVC, 120)!;
  assert.deepEqual(meta.answers, [{
    name: DNS_SD_SERVICES,
    type: "PTR",
    class: "IN",
    ttl: 120,
    flush: false,
    data: MDNS_SERVICE_TYPE,
  }]);
});

Deno.test("queries not about us, or malformed, get no answer", () => {
  assert.equal(
    answerQuery({ questions: [{ name: "_http._tcp.local", type: "PTR" }] }, SVC, 120),
    null,
  );
  assert.equal(answerQuery({ questions: [{ name: FQDN, type: "A" }] }, SVC, 120), null);
  assert.equal(answerQuery({ questions: "nope" }, SVC, 120), null);
  assert.equal(answerQuery({ questions: [null, 1, { name: 5 }] }, SVC, 120), null);
  assert.equal(answerQuery({}, SVC, 120), null);
});

Deno.test("known-answer suppression: a fresh known PTR silences the answer, a stale one does not", () => {
  const q = (ttl: number) => ({
    questions: [{ name: MDNS_SERVICE_TYPE, type: "PTR" }],
    answers: [{ name: MDNS_SERVICE_TYPE, type: "PTR", ttl, data: FQDN.toUpperCase() }],
  });
  assert.equal(answerQuery(q(60), SVC, 120), null, "half the TTL left: suppressed");
  assert.equal(answerQuery(q(59), SVC, 120)?.answers[0].type, "PTR", "less than half: answered");
  const other = {
    questions: [{ name: MDNS_SERVICE_TYPE, type: "PTR" }],
    answers: [{
      name: MDNS_SERVICE_TYPE,
      type: "PTR",
      ttl: 120,
      data: "other._cretoai._udp.local",
    }],
  };
  assert.ok(answerQuery(other, SVC, 120), "another instance's PTR does not suppress ours");
});

Deno.test("validators and size estimate", () => {
  assert.ok(isValidVersion("1") && isValidVersion("2.0-rc+1"));
  assert.ok(!isValidVersion("") && !isValidVersion("x".repeat(17)) && !isValidVersion("1/2"));
  assert.ok(isValidLabel("node 1") && isValidLabel("ü".repeat(31)));
  assert.ok(!isValidLabel("") && !isValidLabel("a.b") && !isValidLabel("ü".repeat(32)));
  assert.ok(isUsableIpv4("10.0.0.1") && isUsableIpv4("223.255.255.255"));
  for (const bad of ["0.1.2.3", "224.0.0.251", "255.255.255.255", "1.2.3", "01.2.3.4", "::1"]) {
    assert.ok(!isUsableIpv4(bad), bad);
  }
  const size = estimateSize(buildAnnouncement(SVC, 120));
  // Per record: name + 2 + 10 fixed bytes + data, names uncompressed. Header 12; PTR 21+10+28;
  // SRV 28+10+6+20; TXT 28+10+15; two A 20+10+4.
  assert.equal(size, 12 + 59 + 64 + 53 + 2 * 34);
});

Deno.test("record TTLs above a day are read as a day, so no timer waits beyond setTimeout's limit", () => {
  // Found by fuzzing: a TTL above ~2,684,354 s put the refresh deadline past 2^31-1 ms, where
  // setTimeout fires after 1 ms; the mDNS expiry timer then woke ~450 times a second.
  const huge = 0xffff_ffff;
  const records = buildAnnouncement(SVC, huge);
  const parsed = parseResponse(records, LIMITS);
  assert.equal(parsed.services[0].srv?.ttl, MAX_RECORD_TTL_S);
  assert.equal(parsed.services[0].txt?.ttl, MAX_RECORD_TTL_S);
  assert.equal(parsed.hosts.get(SVC.hostname)?.ttl, MAX_RECORD_TTL_S);
  assert.equal(
    parseResponse(buildAnnouncement(SVC, MAX_RECORD_TTL_S - 1), LIMITS).services[0]
      .srv?.ttl,
    MAX_RECORD_TTL_S - 1,
    "shorter TTLs are kept",
  );

  const table = new PeerTable({ ownPeerId: "me", maxPeers: 4 });
  table.observe(parsed, 0);
  assert.equal(table.nextDeadline(), MAX_RECORD_TTL_S * 1000 * 0.8);
  assert.ok(table.nextDeadline()! <= MAX_TIMER_DELAY_MS);
});

Deno.test("questionsAbout keeps our questions once each, whatever else a query asks", () => {
  const ours = { name: MDNS_SERVICE_TYPE, type: "PTR" };
  const query = {
    questions: [
      ours,
      { name: "_http._tcp.local", type: "PTR" },
      { name: `${FQDN.toUpperCase()}.`, type: "SRV" },
      ours,
      ...Array.from({ length: 200 }, (_, i) => ({ name: `q${i}.local`, type: "A" })),
      { name: SVC.hostname, type: "A" },
      { name: DNS_SD_SERVICES, type: "PTR" },
      "not an object",
    ],
  };
  assert.deepEqual(questionsAbout(query, SVC), [
    ours,
    { name: `${FQDN.toUpperCase()}.`, type: "SRV" },
    { name: SVC.hostname, type: "A" },
    { name: DNS_SD_SERVICES, type: "PTR" },
  ]);
  assert.deepEqual(questionsAbout({ questions: "x" }, SVC), []);
});

Deno.test("sameSubnet compares the leading bits of two IPv4 addresses", () => {
  assert.ok(sameSubnet("10.77.0.1", "10.77.0.254", 24));
  assert.ok(!sameSubnet("10.77.0.1", "10.77.1.1", 24));
  assert.ok(sameSubnet("10.77.0.1", "10.77.1.1", 16));
  assert.ok(sameSubnet("192.168.1.9", "192.168.1.9", 32));
  assert.ok(!sameSubnet("192.168.1.9", "192.168.1.8", 32));
  assert.ok(sameSubnet("255.255.255.1", "255.255.255.2", 30));
  assert.ok(!sameSubnet("10.0.0.1", "not an address", 8));
});
