/**
 * Pure DNS-SD record logic of mDNS discovery: building the records a node announces, answering
 * queries, and reading and validating the records other nodes send. No sockets and no clock, so
 * every rule here is tested without a network.
 *
 * Records are plain objects shaped like the ones `npm:multicast-dns` (dns-packet) encodes and
 * decodes. Incoming records are treated as untrusted `unknown` values and checked field by field.
 *
 * @module
 */

import { utf8Length } from "../_bytes.ts";

/** The DNS-SD service type every node announces and browses. */
export const MDNS_SERVICE_TYPE = "_cretoai._udp.local";

/** The DNS-SD meta-query name that lists the service types on a link (RFC 6763 section 9). */
export const DNS_SD_SERVICES = "_services._dns-sd._udp.local";

/**
 * Longest record TTL taken from the wire, in seconds (a day, as the longest we announce): a
 * longer TTL is read as this, so no expiry or refresh timer waits for decades.
 */
export const MAX_RECORD_TTL_S = 86_400;

/** The name of the TXT key that carries the peer id. */
const PEER_KEY = "peer";
/** The name of the TXT key that carries the protocol version. */
const VERSION_KEY = "v";
const SERVICE_SUFFIX = "." + MDNS_SERVICE_TYPE;
const VERSION_RE = /^[0-9A-Za-z.+-]{1,16}$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** A DNS name is at most 255 bytes on the wire; labels at most 63 (RFC 1035 section 2.3.4). */
const MAX_NAME_BYTES = 255;
const MAX_LABEL_BYTES = 63;

/** What a node announces about itself. */
export interface LocalService {
  /** Service instance label, without the service type: for example `"node-1"`. */
  instance: string;
  /** Host name the SRV record points at, ending in `.local`: for example `"cretoai-ab12.local"`. */
  hostname: string;
  /** UDP port of the node's QUIC endpoint. */
  port: number;
  /** The node's peer id, sent as TXT `peer=`. */
  peerId: string;
  /** The protocol version, sent as TXT `v=`. */
  version: string;
  /** IPv4 addresses announced as A records of `hostname`. */
  addresses: string[];
}

/** A PTR record. */
export interface PtrRecord {
  /** Owner name. */
  name: string;
  /** Record type. */
  type: "PTR";
  /** Class. */
  class: "IN";
  /** Time to live in seconds; 0 announces that the record is gone. */
  ttl: number;
  /** Whether caches should flush other records of this name (mDNS cache-flush bit). */
  flush: boolean;
  /** The name pointed at. */
  data: string;
}

/** An SRV record. */
export interface SrvRecord {
  /** Owner name. */
  name: string;
  /** Record type. */
  type: "SRV";
  /** Class. */
  class: "IN";
  /** Time to live in seconds. */
  ttl: number;
  /** mDNS cache-flush bit. */
  flush: boolean;
  /** Target host and port. */
  data: { priority: number; weight: number; port: number; target: string };
}

/** A TXT record. */
export interface TxtRecord {
  /** Owner name. */
  name: string;
  /** Record type. */
  type: "TXT";
  /** Class. */
  class: "IN";
  /** Time to live in seconds. */
  ttl: number;
  /** mDNS cache-flush bit. */
  flush: boolean;
  /** The character strings, each `key=value`. */
  data: string[];
}

/** An A record. */
export interface ARecord {
  /** Owner name. */
  name: string;
  /** Record type. */
  type: "A";
  /** Class. */
  class: "IN";
  /** Time to live in seconds. */
  ttl: number;
  /** mDNS cache-flush bit. */
  flush: boolean;
  /** The IPv4 address. */
  data: string;
}

/** Any record this module builds. */
export type OutgoingRecord = PtrRecord | SrvRecord | TxtRecord | ARecord;

/** A response to multicast: answers and additional records. */
export interface OutgoingResponse {
  /** The answer section. */
  answers: OutgoingRecord[];
  /** The additional section. */
  additionals: OutgoingRecord[];
}

/** Limits applied to incoming records. */
export interface RecordLimits {
  /** Largest TXT record, in bytes of its wire encoding; larger ones are dropped. */
  maxRecordSize: number;
  /** Most records in one packet (all sections); packets with more are dropped. */
  maxRecords: number;
  /** Decides whether a TXT `peer=` value is a valid peer id. */
  isValidPeerId: (peerId: string) => boolean;
}

/** What one packet said about one service instance of our type. */
export interface ServiceObservation {
  /** Full instance name, lower case: the key that ties records of one instance together. */
  key: string;
  /** The instance label as received, for display. */
  instance: string;
  /** True when the packet withdrew the instance (PTR or SRV with TTL 0). */
  goodbye: boolean;
  /** The SRV record's port, target and TTL, when the packet carried a valid one. */
  srv?: { port: number; target: string; ttl: number };
  /** The TXT record's peer id, version and TTL, when the packet carried a valid one. */
  txt?: { peerId: string; version: string | undefined; ttl: number };
}

/** What one response packet said, after validation. */
export interface ParsedResponse {
  /** One entry per service instance of our type that the packet mentioned. */
  services: ServiceObservation[];
  /** Valid IPv4 addresses per host name (lower case), with the smallest TTL seen (never 0). */
  hosts: Map<string, { addresses: string[]; ttl: number }>;
  /** Why records were rejected, one entry per rejected record or packet. */
  rejected: string[];
}

/**
 * Builds the TXT strings of a node: `peer=<id>` and `v=<version>`.
 *
 * @example
 * ```ts
 * import { buildTxt } from "./mdns_records.ts";
 *
 * console.assert(buildTxt("peerA", "1").join(",") === "peer=peerA,v=1");
 * ```
 *
 * @param peerId The node's peer id.
 * @param version The protocol version.
 * @returns The TXT character strings.
 */
export function buildTxt(peerId: string, version: string): string[] {
  return [`${PEER_KEY}=${peerId}`, `${VERSION_KEY}=${version}`];
}

/**
 * Builds the full set of records of a node: PTR, SRV, TXT and one A record per address.
 *
 * With `ttl` 0 the same set is a goodbye (RFC 6762 section 10.1).
 *
 * @example
 * ```ts
 * import { buildAnnouncement } from "./mdns_records.ts";
 *
 * const res = buildAnnouncement({
 *   instance: "node-1", hostname: "node-1.local", port: 9001,
 *   peerId: "peerA", version: "1", addresses: ["10.0.0.5"],
 * }, 120);
 * console.assert(res.answers.length === 4);
 * ```
 *
 * @param svc What the node announces.
 * @param ttl Time to live in seconds; 0 for a goodbye.
 * @returns The response to multicast.
 */
export function buildAnnouncement(svc: LocalService, ttl: number): OutgoingResponse {
  const { ptr, srv, txt, a } = serviceRecords(svc, ttl);
  return { answers: [ptr, srv, txt, ...a], additionals: [] };
}

/**
 * Answers a query for our records, or returns `null` when nothing in it concerns us.
 *
 * It answers PTR questions for the service type and the DNS-SD meta-query, SRV, TXT and ANY
 * questions for our instance, and A and ANY questions for our host name. Records the querier
 * already listed as known answers with at least half their TTL left are left out (RFC 6762
 * section 7.1).
 *
 * @example
 * ```ts
 * import { answerQuery, MDNS_SERVICE_TYPE } from "./mdns_records.ts";
 *
 * const svc = {
 *   instance: "node-1", hostname: "node-1.local", port: 9001,
 *   peerId: "peerA", version: "1", addresses: ["10.0.0.5"],
 * };
 * const res = answerQuery({ questions: [{ name: MDNS_SERVICE_TYPE, type: "PTR" }] }, svc, 120);
 * console.assert(res?.answers[0].type === "PTR");
 * ```
 *
 * @param query The decoded query packet, untrusted.
 * @param svc What the node announces.
 * @param ttl Time to live of our records, in seconds.
 * @returns The response, or `null` if there is nothing to say.
 */
export function answerQuery(
  query: { questions?: unknown; answers?: unknown },
  svc: LocalService,
  ttl: number,
): OutgoingResponse | null {
  if (!Array.isArray(query.questions)) return null;
  const { ptr, srv, txt, a } = serviceRecords(svc, ttl);
  const instanceName = normalize(ptr.data);
  const hostName = normalize(svc.hostname);
  const answers = new Set<OutgoingRecord>();
  let metaPtr: PtrRecord | undefined;

  for (const q of query.questions) {
    if (!isObject(q) || typeof q.name !== "string" || typeof q.type !== "string") continue;
    const name = normalize(q.name);
    const any = q.type === "ANY";
    if (name === MDNS_SERVICE_TYPE && (q.type === "PTR" || any)) answers.add(ptr);
    if (name === DNS_SD_SERVICES && (q.type === "PTR" || any)) {
      metaPtr ??= {
        name: DNS_SD_SERVICES,
        type: "PTR",
        class: "IN",
        ttl,
        flush: false,
        data: MDNS_SERVICE_TYPE,
      };
      answers.add(metaPtr);
    }
    if (name === instanceName && (q.type === "SRV" || any)) answers.add(srv);
    if (name === instanceName && (q.type === "TXT" || any)) answers.add(txt);
    if (name === hostName && (q.type === "A" || any)) a.forEach((r) => answers.add(r));
  }

  for (const known of Array.isArray(query.answers) ? query.answers : []) {
    for (const r of answers) if (coversKnownAnswer(known, r)) answers.delete(r);
  }
  if (answers.size === 0) return null;

  // The querier will need SRV, TXT and A after a PTR, so send them along (RFC 6763 section 12).
  const additionals: OutgoingRecord[] = [];
  if (answers.has(ptr) || answers.has(srv)) {
    for (const r of [srv, txt, ...a]) if (!answers.has(r)) additionals.push(r);
  }
  return { answers: [...answers], additionals };
}

/**
 * Reads the records of a response packet that concern our service type, validating each.
 *
 * Malformed records (wrong shapes, absurd ports, TXT without a valid `peer=`, oversized TXT,
 * invalid addresses) are left out and listed in `rejected`; the packet as a whole is rejected
 * when it has more than `limits.maxRecords` records. TTLs above {@linkcode MAX_RECORD_TTL_S}
 * are read as that.
 *
 * @example
 * ```ts
 * import { buildAnnouncement, parseResponse } from "./mdns_records.ts";
 *
 * const res = buildAnnouncement({
 *   instance: "node-1", hostname: "node-1.local", port: 9001,
 *   peerId: "peerA", version: "1", addresses: ["10.0.0.5"],
 * }, 120);
 * const parsed = parseResponse(res, {
 *   maxRecordSize: 1300, maxRecords: 64, isValidPeerId: (id) => id.length > 0,
 * });
 * console.assert(parsed.services[0].txt?.peerId === "peerA");
 * ```
 *
 * @param packet The decoded response packet, untrusted.
 * @param limits Size and validity limits.
 * @returns The services and host addresses found, and why anything was rejected.
 */
export function parseResponse(
  packet: { answers?: unknown; additionals?: unknown; authorities?: unknown },
  limits: RecordLimits,
): ParsedResponse {
  const out: ParsedResponse = { services: [], hosts: new Map(), rejected: [] };
  const records = [
    ...(Array.isArray(packet.answers) ? packet.answers : []),
    ...(Array.isArray(packet.additionals) ? packet.additionals : []),
  ];
  const total = records.length +
    (Array.isArray(packet.authorities) ? packet.authorities.length : 0);
  if (total > limits.maxRecords) {
    out.rejected.push(`packet has ${total} records, more than ${limits.maxRecords}`);
    return out;
  }

  const services = new Map<string, ServiceObservation>();
  const service = (fqdn: string): ServiceObservation => {
    const key = normalize(fqdn);
    let s = services.get(key);
    if (s === undefined) {
      s = { key, instance: fqdn.slice(0, -SERVICE_SUFFIX.length), goodbye: false };
      services.set(key, s);
    }
    return s;
  };

  for (const r of records) {
    if (!isObject(r) || typeof r.name !== "string" || typeof r.type !== "string") {
      out.rejected.push("record without a name or type");
      continue;
    }
    if (typeof r.ttl !== "number" || !Number.isInteger(r.ttl) || r.ttl < 0) {
      out.rejected.push(`record ${r.name} has an invalid ttl: ${String(r.ttl)}`);
      continue;
    }
    const ttl = Math.min(r.ttl, MAX_RECORD_TTL_S);
    const name = normalize(r.name);
    switch (r.type) {
      case "PTR": {
        if (name !== MDNS_SERVICE_TYPE) break;
        if (typeof r.data !== "string" || !isInstanceName(r.data)) {
          out.rejected.push(`PTR points at an invalid instance name: ${String(r.data)}`);
          break;
        }
        const s = service(stripDot(r.data));
        if (ttl === 0) s.goodbye = true;
        break;
      }
      case "SRV": {
        if (!isInstanceName(r.name)) break;
        const d = r.data;
        if (
          !isObject(d) || typeof d.port !== "number" || !Number.isInteger(d.port) ||
          d.port < 1 || d.port > 65535
        ) {
          out.rejected.push(`SRV of ${r.name} has an invalid port: ${portOf(d)}`);
          break;
        }
        if (typeof d.target !== "string" || !isValidName(d.target)) {
          out.rejected.push(`SRV of ${r.name} has an invalid target: ${String(d.target)}`);
          break;
        }
        const s = service(stripDot(r.name));
        if (ttl === 0) s.goodbye = true;
        s.srv = { port: d.port, target: normalize(d.target), ttl };
        break;
      }
      case "TXT": {
        if (!isInstanceName(r.name)) break;
        const txt = parseTxt(r.data, limits);
        if (typeof txt === "string") {
          out.rejected.push(`TXT of ${r.name}: ${txt}`);
          break;
        }
        const s = service(stripDot(r.name));
        s.txt = { ...txt, ttl };
        break;
      }
      case "A": {
        if (typeof r.data !== "string" || !isUsableIpv4(r.data)) {
          out.rejected.push(`A of ${r.name} has an unusable address: ${String(r.data)}`);
          break;
        }
        // A lone address goodbye does not end a peer; the SRV and PTR goodbyes do.
        if (ttl === 0) break;
        const h = out.hosts.get(name) ?? { addresses: [], ttl: Infinity };
        if (!h.addresses.includes(r.data)) h.addresses.push(r.data);
        h.ttl = Math.min(h.ttl, ttl);
        out.hosts.set(name, h);
        break;
      }
    }
  }
  out.services = [...services.values()];
  return out;
}

/**
 * Reads `peer=` and `v=` from TXT data, or says why it is not acceptable.
 *
 * @example
 * ```ts
 * import { parseTxt } from "./mdns_records.ts";
 *
 * const limits = { maxRecordSize: 1300, maxRecords: 64, isValidPeerId: () => true };
 * const txt = parseTxt([new TextEncoder().encode("peer=abc"), "v=1"], limits);
 * console.assert(typeof txt !== "string" && txt.peerId === "abc");
 * ```
 *
 * @param data The TXT record data as decoded: strings or byte arrays, untrusted.
 * @param limits Size and peer id rules.
 * @returns The peer id and version, or the reason for rejecting the record.
 */
export function parseTxt(
  data: unknown,
  limits: RecordLimits,
): { peerId: string; version: string | undefined } | string {
  const entries = Array.isArray(data) ? data : [data];
  let size = 0;
  const pairs = new Map<string, string>();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (const e of entries) {
    let text: string;
    try {
      text = typeof e === "string" ? e : e instanceof Uint8Array ? decoder.decode(e) : "";
    } catch {
      return "a string is not valid UTF-8";
    }
    size += 1 + utf8Length(text);
    if (size > limits.maxRecordSize) return `larger than ${limits.maxRecordSize} bytes`;
    const eq = text.indexOf("=");
    if (eq <= 0) continue;
    const key = text.slice(0, eq).toLowerCase();
    // RFC 6763 section 6.4: only the first occurrence of a key counts.
    if (!pairs.has(key)) pairs.set(key, text.slice(eq + 1));
  }
  const peerId = pairs.get(PEER_KEY);
  if (peerId === undefined) return "no peer= key";
  if (!limits.isValidPeerId(peerId)) return `invalid peer id ${JSON.stringify(peerId)}`;
  const version = pairs.get(VERSION_KEY);
  if (version !== undefined && !VERSION_RE.test(version)) {
    return `invalid version ${JSON.stringify(version)}`;
  }
  return { peerId, version };
}

/**
 * Whether a string is a valid protocol version for TXT `v=`: 1-16 of `0-9 A-Z a-z . + -`.
 *
 * @example
 * ```ts
 * import { isValidVersion } from "./mdns_records.ts";
 *
 * console.assert(isValidVersion("1.2") && !isValidVersion("1 2"));
 * ```
 *
 * @param version The version string.
 * @returns `true` if valid.
 */
export function isValidVersion(version: string): boolean {
  return VERSION_RE.test(version);
}

/**
 * Whether a string is a single DNS label of 1-63 UTF-8 bytes without dots, usable as an
 * instance name or host label.
 *
 * @example
 * ```ts
 * import { isValidLabel } from "./mdns_records.ts";
 *
 * console.assert(isValidLabel("node-1") && !isValidLabel("a.b"));
 * ```
 *
 * @param label The label.
 * @returns `true` if valid.
 */
export function isValidLabel(label: string): boolean {
  const n = utf8Length(label);
  return n >= 1 && n <= MAX_LABEL_BYTES && !label.includes(".");
}

/**
 * Whether a string is an IPv4 address that a peer can be reached at: dotted quad, not
 * unspecified, multicast or broadcast.
 *
 * @example
 * ```ts
 * import { isUsableIpv4 } from "./mdns_records.ts";
 *
 * console.assert(isUsableIpv4("10.0.0.5") && !isUsableIpv4("224.0.0.251"));
 * ```
 *
 * @param address The address literal.
 * @returns `true` if usable.
 */
export function isUsableIpv4(address: string): boolean {
  if (!IPV4_RE.test(address)) return false;
  const first = Number(address.split(".")[0]);
  return first !== 0 && first < 224;
}

/**
 * The questions of a query that concern our records, each once: what a unicast reply repeats
 * (RFC 6762 section 6.7), so a reply never echoes a querier's long list of other questions.
 *
 * @example
 * ```ts
 * import { MDNS_SERVICE_TYPE, questionsAbout } from "./mdns_records.ts";
 *
 * const svc = {
 *   instance: "node-1", hostname: "node-1.local", port: 9001,
 *   peerId: "peerA", version: "1", addresses: ["10.0.0.5"],
 * };
 * const q = { name: MDNS_SERVICE_TYPE, type: "PTR" };
 * const other = { name: "_http._tcp.local", type: "PTR" };
 * console.assert(questionsAbout({ questions: [q, other, q] }, svc).length === 1);
 * ```
 *
 * @param query The decoded query packet, untrusted.
 * @param svc What the node announces.
 * @returns The questions, as received.
 */
export function questionsAbout(
  query: { questions?: unknown },
  svc: LocalService,
): { name: string; type: string }[] {
  if (!Array.isArray(query.questions)) return [];
  const ours = new Set([
    MDNS_SERVICE_TYPE,
    DNS_SD_SERVICES,
    normalize(`${svc.instance}${SERVICE_SUFFIX}`),
    normalize(svc.hostname),
  ]);
  const seen = new Set<string>();
  const out: { name: string; type: string }[] = [];
  for (const q of query.questions) {
    if (!isObject(q) || typeof q.name !== "string" || typeof q.type !== "string") continue;
    const name = normalize(q.name);
    const key = `${q.type} ${name}`;
    if (!ours.has(name) || seen.has(key)) continue;
    seen.add(key);
    out.push(q as { name: string; type: string });
  }
  return out;
}

/**
 * Whether two IPv4 addresses share their first `prefixLength` bits: the same subnet.
 *
 * @example
 * ```ts
 * import { sameSubnet } from "./mdns_records.ts";
 *
 * console.assert(sameSubnet("10.0.0.5", "10.0.0.77", 24) && !sameSubnet("10.0.0.5", "10.0.1.5", 24));
 * ```
 *
 * @param a An IPv4 address literal.
 * @param b Another.
 * @param prefixLength 0-32.
 * @returns `true` if both are in one subnet of that length.
 */
export function sameSubnet(a: string, b: string, prefixLength: number): boolean {
  if (!IPV4_RE.test(a) || !IPV4_RE.test(b)) return false;
  const mask = prefixLength === 0 ? 0 : (~0 << (32 - prefixLength)) >>> 0;
  return ((ipv4Number(a) & mask) >>> 0) === ((ipv4Number(b) & mask) >>> 0);
}

/**
 * An upper bound of the wire size of a response, ignoring name compression.
 *
 * @example
 * ```ts
 * import { buildAnnouncement, estimateSize } from "./mdns_records.ts";
 *
 * const res = buildAnnouncement({
 *   instance: "node-1", hostname: "node-1.local", port: 9001,
 *   peerId: "peerA", version: "1", addresses: ["10.0.0.5"],
 * }, 120);
 * console.assert(estimateSize(res) < 512);
 * ```
 *
 * @param res The response.
 * @returns Its size in bytes, at most this.
 */
export function estimateSize(res: OutgoingResponse): number {
  let size = 12;
  for (const r of [...res.answers, ...res.additionals]) {
    size += utf8Length(r.name) + 2 + 10;
    switch (r.type) {
      case "PTR":
        size += utf8Length(r.data) + 2;
        break;
      case "SRV":
        size += 6 + utf8Length(r.data.target) + 2;
        break;
      case "TXT":
        size += r.data.reduce((n, s) => n + 1 + utf8Length(s), 0);
        break;
      case "A":
        size += 4;
        break;
    }
  }
  return size;
}

/** The records of one node at one TTL. */
function serviceRecords(
  svc: LocalService,
  ttl: number,
): { ptr: PtrRecord; srv: SrvRecord; txt: TxtRecord; a: ARecord[] } {
  const fqdn = `${svc.instance}${SERVICE_SUFFIX}`;
  return {
    // PTR names are shared by all nodes, so they must not carry the cache-flush bit.
    ptr: { name: MDNS_SERVICE_TYPE, type: "PTR", class: "IN", ttl, flush: false, data: fqdn },
    srv: {
      name: fqdn,
      type: "SRV",
      class: "IN",
      ttl,
      flush: true,
      data: { priority: 0, weight: 0, port: svc.port, target: svc.hostname },
    },
    txt: {
      name: fqdn,
      type: "TXT",
      class: "IN",
      ttl,
      flush: true,
      data: buildTxt(svc.peerId, svc.version),
    },
    a: svc.addresses.map((data) => ({
      name: svc.hostname,
      type: "A",
      class: "IN",
      ttl,
      flush: true,
      data,
    })),
  };
}

/** Whether a known answer in a query makes our record redundant (RFC 6762 section 7.1). */
function coversKnownAnswer(known: unknown, ours: OutgoingRecord): boolean {
  if (!isObject(known) || typeof known.name !== "string") return false;
  if (known.type !== ours.type || normalize(known.name) !== normalize(ours.name)) return false;
  if (typeof known.ttl !== "number" || known.ttl < ours.ttl / 2) return false;
  if (ours.type === "PTR" || ours.type === "A") {
    return typeof known.data === "string" && normalize(known.data) === normalize(ours.data);
  }
  return false;
}

function ipv4Number(address: string): number {
  return address.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

function isInstanceName(name: string): boolean {
  const n = normalize(name);
  return n.endsWith(SERVICE_SUFFIX) && n.length > SERVICE_SUFFIX.length && isValidName(name);
}

function isValidName(name: string): boolean {
  return name.length > 0 && utf8Length(name) <= MAX_NAME_BYTES;
}

function normalize(name: string): string {
  return stripDot(name).toLowerCase();
}

function stripDot(name: string): string {
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

function portOf(d: unknown): string {
  return isObject(d) ? String(d.port) : "none";
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}
