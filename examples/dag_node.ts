/// <reference lib="deno.unstable" />
/**
 * A small Narwhal-style DAG node over `createNode` (its `gossip`) and a `CatchUpService`,
 * storing every vertex in Deno KV (the design's DagStorage). Each of the `--committee` nodes
 * creates one vertex per round that references at least 2f+1 vertices of the previous round,
 * signs it with its identity and gossips it; a received vertex is checked (known author,
 * signature, round rules, one vertex per author and round, parents known, fetched from the
 * sender when missing) and written to KV before it is accepted: nothing is acknowledged or
 * forwarded before it is stored, and a crash loses nothing a peer cannot send again. A
 * sender is penalized only for what it is to blame for: a vertex with missing parents that
 * could not be fetched because the sender died, restarted or did not answer is ignored, and
 * fetched again later from another peer's store.
 *
 * A node creates rounds 1 to `--rounds`, waits until it holds every author's vertex of each
 * of those rounds, and exits; with `--json` it prints `{"event":"dag","round":R,"digest":D}`
 * for every round (D: SHA-256 of the round's sorted vertex ids), so nodes' DAGs can be
 * compared. A node restarted with its `--data-dir` continues from its store, fetches what it
 * missed from peers, and creates the rounds it missed.
 *
 * The committee's identities come from `--committee-seed` (node `--index` I of N is the I-th):
 * a demo shortcut; a real deployment reads its committee's public identities from its
 * configuration.
 *
 * Run (see `deno task dag-demo` for a cluster):
 *
 * ```sh
 * deno run --unstable-kv -A examples/dag_node.ts --committee 4 --index 0 --port 9101 \
 *   --data-dir /tmp/dag0 --rounds 10 --json
 * deno run --unstable-kv -A examples/dag_node.ts --committee 4 --index 1 --port 9102 \
 *   --peer 127.0.0.1:9101 --data-dir /tmp/dag1 --rounds 10 --json
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import {
  decodeVertex,
  deriveCommittee,
  Refused,
  signVertex,
  TOPIC,
  type Vertex,
} from "./_dag_vertex.ts";
import {
  CatchUpService,
  createNode,
  Identity,
  NetworkError,
  type PeerId,
  type ValidationResult,
} from "../mod.ts";

/** Rounds a vertex may be ahead of this node's highest before it is ignored (bounds memory). */
const MAX_ROUNDS_AHEAD = 1000;
/** Prefix of the catch-up ids that list a round's vertex ids. */
const ROUND_LIST = "round:";
/** Milliseconds without a peer's fetch after which a node that is complete exits. */
const LINGER_QUIET_MS = 3000;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: "0" },
    peer: { type: "string", multiple: true, default: [] },
    "data-dir": { type: "string" },
    rounds: { type: "string", default: "10" },
    json: { type: "boolean", default: false },
    committee: { type: "string", default: "4" },
    index: { type: "string", default: "0" },
    "committee-seed": { type: "string", default: "cretoai-dag-demo" },
    "payload-bytes": { type: "string", default: "256" },
    "timeout-ms": { type: "string", default: "300000" },
  },
});
const n = Number(values.committee);
const index = Number(values.index);
const rounds = Number(values.rounds);
const payloadBytes = Number(values["payload-bytes"]);
if (
  !Number.isInteger(n) || n < 1 || !Number.isInteger(index) || index < 0 || index >= n ||
  !Number.isInteger(rounds) || rounds < 1 || values["data-dir"] === undefined
) {
  console.error(
    "Usage: dag_node.ts --committee N --index I --data-dir DIR [--port P] [--peer HOST:PORT]... " +
      "[--rounds R] [--json]; 0 <= I < N, R >= 1",
  );
  Deno.exit(2);
}
const f = Math.floor((n - 1) / 3);
const quorum = n - f;
const json = values.json;
const emit = (event: Record<string, unknown>) => {
  if (json) console.log(JSON.stringify(event));
  else if (event.event !== "vertex") console.log(Object.values(event).join(" "));
};

const committee = deriveCommittee(values["committee-seed"], n);
const identity = committee[index];
const authors = committee.map((c) => c.publicIdentity);
await Deno.mkdir(values["data-dir"], { recursive: true });
const kv = await Deno.openKv(`${values["data-dir"]}/dag.sqlite3`);

/** The DAG in memory, mirrored from KV: vertices by id, and by round and author. */
const byId = new Map<string, Vertex>();
const byRound = new Map<number, Map<number, Vertex>>();
let changed: () => void = () => {};
const dagChanged = () => new Promise<void>((resolve) => changed = resolve);
const remember = (v: Vertex) => {
  byId.set(v.id, v);
  const round = byRound.get(v.round) ?? new Map();
  byRound.set(v.round, round);
  round.set(v.author, v);
  changed();
};
for await (const entry of kv.list<Uint8Array>({ prefix: ["vertex"] })) {
  remember(decodeVertex(entry.value).vertex);
}
const restored = byId.size;
const highestRound = () => Math.max(0, ...byRound.keys());

// The committee dials its peers itself; the node's penalties go to its peer score, which
// bans a peer after repeated rejected vertices.
const node = await createNode({
  identity,
  config: {
    listenAddr: "127.0.0.1",
    quicPort: Number(values.port),
    enableDht: false,
    enableNatTraversal: false,
  },
  targetPeers: 0,
  gossip: { router: { validationTimeoutMs: 20_000 } },
  start: false,
});
const gossip = node.gossip!;
gossip.addEventListener("gossip:penalized", ({ detail }) => {
  emit({ event: "penalized", peer: detail.peerId.toString(), reason: detail.reason });
});
const catchUp = new CatchUpService({
  transport: node.transport,
  store: {
    get(id) {
      lastAskedAt = Date.now();
      if (!id.startsWith(ROUND_LIST)) return byId.get(id)?.bytes;
      const round = byRound.get(Number(id.slice(ROUND_LIST.length)));
      return round && new TextEncoder().encode([...round.values()].map((v) => v.id).join(","));
    },
    latestRound: highestRound,
  },
  requestsPerSecond: 200,
  requestBurst: 400,
});
const delays: number[] = [];
/** When a peer last asked this node for a vertex or a round: a node lingers while asked. */
let lastAskedAt = 0;
let firstStoredAt = Infinity;
let lastStoredAt = 0;
let stored = 0;

/** Vertices being checked, by id, so gossip and catch-up check each once. */
const checking = new Map<string, Promise<ValidationResult>>();

/**
 * A vertex whose parents could not be fetched because its sender could not be asked (it
 * died, restarted, did not answer in time or was over its quota): not the sender's fault, so
 * the vertex is ignored, not rejected (no penalty), and the background repair fetches it
 * later. A sender that answers without the parents (or cannot serve them at all) is to blame.
 */
class Unavailable extends Error {}

/** Fetch failures that say nothing about the sender's honesty (see `Unavailable`). */
const UNREACHABLE = new Set([
  "ERR_CONNECTION_CLOSED",
  "ERR_TIMEOUT",
  "ERR_UNKNOWN_PEER",
  "ERR_LIMIT_EXCEEDED",
]);

/** Times a check of one vertex is started for one caller (see `ingest`). */
const MAX_CHECKS = 3;
/** Times a peer is asked again for vertices it left out of a full response. */
const MAX_FETCHES = 4;

/**
 * Checks a vertex and stores it; resolves "accept" only once it is in KV. Parents not known
 * are fetched from `from` (and checked the same way); a vertex whose parents `from` does not
 * have is rejected, one whose parents could not be fetched is ignored. A check of the same
 * vertex under way is shared; one that ended ignored is tried again with this sender.
 */
async function ingest(
  bytes: Uint8Array,
  from: PeerId,
  viaGossip = false,
): Promise<ValidationResult> {
  let decoded: ReturnType<typeof decodeVertex>;
  try {
    decoded = decodeVertex(bytes);
  } catch (e) {
    emit({ event: "refused", reason: (e as Error).message, from: from.toString() });
    return "reject";
  }
  const { id } = decoded.vertex;
  let result: ValidationResult = "ignore";
  for (let checks = 0; checks < MAX_CHECKS && !byId.has(id); checks++) {
    const earlier = checking.get(id);
    if (earlier !== undefined) {
      result = await earlier;
      if (result === "ignore") continue;
      break;
    }
    const check = checkAndStore(decoded, from, viaGossip).catch((e) => {
      const reason = (e as Error).message;
      if (e instanceof Unavailable) {
        emit({ event: "deferred", id, reason, from: from.toString() });
        return "ignore" as const;
      }
      if (!(e instanceof Refused)) throw e;
      emit({ event: "refused", id, reason, from: from.toString() });
      return "reject" as const;
    }).finally(() => checking.delete(id));
    checking.set(id, check);
    return await check;
  }
  return byId.has(id) ? "accept" : result;
}

/**
 * Fetches vertices from a peer, asking again for what it left out of a full response.
 * Throws {@linkcode Unavailable} when the peer cannot be asked; any other failure (say, a
 * peer without the catch-up protocol) counts as the peer not having them.
 */
async function fetchFrom(peer: PeerId, ids: string[]): Promise<Map<string, Uint8Array>> {
  const found = new Map<string, Uint8Array>();
  let wanted = ids;
  for (let fetches = 0; fetches < MAX_FETCHES && wanted.length > 0; fetches++) {
    const fetched = await catchUp.fetch(peer, wanted, { timeoutMs: 10_000 }).catch((e) => {
      if (!(e instanceof NetworkError) || !UNREACHABLE.has(e.code)) return new Map();
      throw new Unavailable(`cannot fetch ${wanted.length} parents: ${e.message}`);
    });
    if (fetched.size === 0) break;
    for (const [id, data] of fetched) found.set(id, data);
    wanted = wanted.filter((id) => !found.has(id));
  }
  return found;
}

async function checkAndStore(
  { vertex, body, sig }: ReturnType<typeof decodeVertex>,
  from: PeerId,
  viaGossip: boolean,
): Promise<ValidationResult> {
  const { round, author, parents } = vertex;
  if (author >= n) throw new Refused(`unknown author ${author}`);
  if (!Identity.verify(authors[author], body, sig)) throw new Refused("bad signature");
  if (round < 1) throw new Refused(`wrong round ${round}`);
  if (round > highestRound() + MAX_ROUNDS_AHEAD) return "ignore";
  if (round === 1 ? parents.length !== 0 : new Set(parents).size < quorum) {
    throw new Refused(`round ${round} with ${parents.length} parents (need ${quorum})`);
  }
  const other = byRound.get(round)?.get(author);
  if (other !== undefined && other.id !== vertex.id) {
    throw new Refused(`author ${author} already has vertex ${other.id} in round ${round}`);
  }
  const missing = parents.filter((p) => !byId.has(p));
  if (missing.length > 0) {
    const results = [];
    for (const data of (await fetchFrom(from, missing)).values()) {
      results.push(await ingest(data, from));
    }
    const still = parents.filter((p) => !byId.has(p)).length;
    if (still > 0 && results.includes("ignore")) {
      throw new Unavailable(`${still} parents could not be checked yet`);
    }
    if (still > 0) throw new Refused(`${still} parents never arrived`);
  }
  const parentAuthors = new Set<number>();
  for (const p of parents) {
    const parent = byId.get(p)!;
    if (parent.round !== round - 1) {
      throw new Refused(`round ${round} references a parent of round ${parent.round}`);
    }
    parentAuthors.add(parent.author);
  }
  if (parentAuthors.size !== parents.length) throw new Refused("two parents by one author");
  await store(vertex, viaGossip);
  return "accept";
}

/**
 * Writes a vertex to KV, then to memory: only stored vertices are acknowledged. The delay
 * since its creation counts as propagation when it came by gossip (not by catch-up).
 */
async function store(vertex: Vertex, viaGossip: boolean): Promise<void> {
  const key = ["vertex", vertex.round, vertex.author];
  const result = await kv.atomic().check({ key, versionstamp: null }).set(key, vertex.bytes)
    .commit();
  if (!result.ok) {
    const existing = await kv.get<Uint8Array>(key);
    if (existing.value === null || decodeVertex(existing.value).vertex.id !== vertex.id) {
      throw new Refused(`author ${vertex.author} already stored a vertex in ${vertex.round}`);
    }
  }
  const now = Date.now();
  firstStoredAt = Math.min(firstStoredAt, now);
  lastStoredAt = now;
  stored++;
  if (viaGossip) {
    delays.push(now - vertex.createdAtMs);
    emit({
      event: "vertex",
      id: vertex.id,
      round: vertex.round,
      author: vertex.author,
      delayMs: now - vertex.createdAtMs,
    });
  }
  remember(vertex);
}

/** Creates, stores and publishes this node's vertex of `round`. */
async function create(round: number): Promise<void> {
  const parents = round === 1 ? [] : [...byRound.get(round - 1)!.values()].map((v) => v.id);
  const payload = crypto.getRandomValues(new Uint8Array(payloadBytes));
  const vertex = signVertex(identity, { round, author: index, parents, payload });
  await store(vertex, false);
  await gossip.publish(TOPIC, vertex.bytes);
  emit({ event: "created", round });
}

/** Asks a peer for the vertices of rounds not complete here and checks what it sends. */
async function repair(peer: PeerId): Promise<void> {
  const latest = Math.min(rounds, await catchUp.latestRound(peer, { timeoutMs: 5000 }));
  for (let round = 1; round <= latest; round++) {
    if ((byRound.get(round)?.size ?? 0) === n) continue;
    const list = await catchUp.fetch(peer, [`${ROUND_LIST}${round}`], { timeoutMs: 5000 });
    const ids = new TextDecoder().decode(list.get(`${ROUND_LIST}${round}`) ?? new Uint8Array())
      .split(",").filter((id) => /^[0-9a-f]{64}$/.test(id) && !byId.has(id));
    if (ids.length === 0) continue;
    const fetched = await catchUp.fetch(peer, ids, { timeoutMs: 10_000 });
    for (const data of fetched.values()) await ingest(data, peer);
  }
}

const complete = () => {
  for (let r = 1; r <= rounds; r++) if ((byRound.get(r)?.size ?? 0) < n) return false;
  return true;
};

const deadline = AbortSignal.timeout(Number(values["timeout-ms"]));
let exitCode = 0;
try {
  await node.start();
  const { port } = node.localAddr;
  await catchUp.start();
  const sub = gossip.subscribe(TOPIC, {
    priority: "consensus",
    validate: ({ data, from }) => ingest(data, from, true),
  });
  (async () => {
    for await (const _ of sub); // vertices are handled in validate; this drains the buffer
  })();
  (async () => {
    // The protocol has no other messages: drained, so that a peer sending some cannot fill
    // the node's queue and hold up gossip.
    for await (const _ of node.messages());
  })();
  emit({ event: "listening", port, peerId: node.peerId.toString(), restored });
  for (const peer of values.peer) {
    for (let attempt = 0;; attempt++) {
      try {
        await node.connectPeer(peer);
        break;
      } catch (e) {
        if (attempt >= 20 || deadline.aborted) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
  if (values.peer.length > 0) await gossip.whenMeshed(TOPIC, 1, deadline);
  for (const { peerId } of node.peers()) await repair(peerId).catch(() => {});

  // Repairs in the background: whatever gossip lost, a peer's store still has.
  const repairs = setInterval(() => {
    const peers = node.peers();
    if (peers.length === 0 || complete()) return;
    const peer = peers[Math.floor(Math.random() * peers.length)].peerId;
    repair(peer).catch(() => {});
  }, 1000);
  try {
    let next = 1;
    while (byRound.get(next)?.has(index)) next++;
    while (!deadline.aborted && (next <= rounds || !complete())) {
      const wait = dagChanged();
      if (next <= rounds && (next === 1 || (byRound.get(next - 1)?.size ?? 0) >= quorum)) {
        await create(next++);
        continue;
      }
      await Promise.race([wait, new Promise((r) => setTimeout(r, 500))]);
    }
    if (deadline.aborted) throw new Error(`not complete within ${values["timeout-ms"]} ms`);
    // Stay while peers still fetch from us (a node behind catches up from the others' stores,
    // which it cannot once they are gone): until nobody asked for LINGER_QUIET_MS.
    while (
      !deadline.aborted && Date.now() - Math.max(lastAskedAt, lastStoredAt) < LINGER_QUIET_MS
    ) {
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    clearInterval(repairs);
  }
  for (let round = 1; round <= rounds; round++) {
    const ids = [...byRound.get(round)!.values()].map((v) => v.id).sort();
    const digest = bytesToHex(sha256(new TextEncoder().encode(ids.join(","))));
    emit({ event: "dag", round, digest });
  }
  const sorted = delays.sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  emit({
    event: "summary",
    vertices: byId.size,
    stored,
    restored,
    propagationP50Ms: q(0.5) ?? null,
    propagationP99Ms: q(0.99) ?? null,
    verticesPerSecond: stored > 1 ? (stored - 1) / ((lastStoredAt - firstStoredAt) / 1000) : null,
  });
} catch (e) {
  emit({ event: "error", message: String(e) });
  exitCode = 1;
} finally {
  await catchUp.close();
  await node.close();
  kv.close();
}
Deno.exit(exitCode);
