/**
 * The transport's rules for a connection that finished its identity handshake, without I/O:
 * simultaneous dials (the `keepOutbound` tie-break), a peer that dials again, migrations from
 * both sides at once, and the pool (eviction, idleness). The transport feeds it what happens
 * (dials starting and ending, handshakes finishing, connections closing) and acts on its
 * decisions; time comes from an injected clock, so every race is a sequence a test can list.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { PoolPolicy } from "../pool/pool_policy.ts";
import { keepOutbound } from "../pool/tie_break.ts";
import { BanList } from "./ban_list.ts";
import type { ConnectionDirection } from "./events.ts";

/** Options of {@linkcode AdmissionPolicy}. */
export interface AdmissionPolicyOptions {
  /** This node's peer id, for the tie-break. */
  localPeerId: string;
  /**
   * Most peers kept; see {@linkcode PoolPolicy}.
   * @default {100}
   */
  maxConnections?: number;
  /**
   * Milliseconds without use after which an unprotected peer is idle; `Infinity` never.
   * @default {Infinity}
   */
  idleTimeoutMs?: number;
  /**
   * Milliseconds after which a peer counts as long-lived and is evicted only after younger
   * ones; see `PoolPolicyOptions.settleMs`.
   * @default {60000}
   */
  settleMs?: number;
  /**
   * The only peer ids admitted, in either direction (a permissioned committee); anyone else
   * is refused with `"not-allowed"`.
   * @default {undefined} (every peer the gate lets through)
   */
  allowedPeers?: Iterable<string>;
  /**
   * Decides by peer id and address before a peer is registered; `false` refuses it with
   * `"not-allowed"`. Called after the allowlist.
   * @default {undefined} (every peer)
   */
  gate?: (candidate: AdmissionCandidate) => boolean;
  /**
   * Bans held at once; see {@linkcode BanList}.
   * @default {10000}
   */
  maxBans?: number;
  /**
   * This process's incarnation: a number chosen at start, larger for a later start of the same
   * identity (the transport takes the start time; see {@linkcode OpenSignal.incarnation}). A
   * connection from a peer's higher incarnation replaces its lower one's, never the reverse.
   * @default {0n}
   */
  incarnation?: bigint;
  /**
   * Source of the current time.
   * @default {systemClock}
   */
  clock?: Clock;
}

/** A connection whose identity handshake finished, as {@linkcode AdmissionPolicy.admit} sees it. */
export interface AdmissionCandidate {
  /** The authenticated peer id. */
  peer: string;
  /** The peer's address on this connection, `HOST:PORT`. */
  address: string;
  /** Whether this node dialed. */
  direction: ConnectionDirection;
  /** The dialer said this connection replaces its current one (a migration). */
  replace: boolean;
  /**
   * The connection's generation, from the dialer's open signal (see
   * {@linkcode AdmissionPolicy.opening}): 0 for a first connection, one more than the
   * replaced connection's for a migration.
   * @default {0}
   */
  generation?: number;
  /**
   * The peer's incarnation: from its open signal on an inbound connection, from its ready
   * frame on an outbound one.
   * @default {0n}
   */
  incarnation?: bigint;
  /**
   * This connection's id, the same on both ends and unique (the transport takes it from the
   * handshake transcript); a first connection's id names its lineage, which its migrations
   * keep.
   * @default {undefined} (lineages are not compared)
   */
  link?: string;
  /** A migration: the lineage it moves, from the open signal. */
  lineage?: string;
  /** A first connection: the lineage the dialer held last with this node, from the open signal. */
  lastHeld?: string;
  /** The dialer's number for this dial, from the open signal ({@linkcode OpenSignal.dial}). */
  dial?: number;
  /** The dialer had no other dial to this node in flight ({@linkcode OpenSignal.alone}). */
  alone?: boolean;
  /**
   * The peer's process as this connection's handshake showed it, before any frame (the
   * transport: the hash of the peer's certificate, made anew by each run).
   * @default {undefined} (runs are not compared)
   */
  run?: string;
}

/** A dial whose handshake finished, as {@linkcode AdmissionPolicy.opening} sees it. */
export interface OpeningDial {
  /** The peer id the handshake authenticated. */
  peer: string;
  /** The address dialed, `HOST:PORT`. */
  address: string;
  /** Whether this dial is a migration ({@linkcode AdmissionPolicy.migrationStarted}). */
  migrate: boolean;
  /** The peer's run on this connection ({@linkcode AdmissionCandidate.run}). */
  run?: string;
}

/** What a dialer tells the listener before it admits the connection. */
export interface OpenSignal {
  /** The connection replaces the dialer's current one (a migration). */
  replace: boolean;
  /** 0 for a first connection; for a migration, the replaced connection's plus one. */
  generation: number;
  /** The dialer's incarnation ({@linkcode AdmissionPolicyOptions.incarnation}). */
  incarnation: bigint;
  /** A migration: the lineage of the connection it replaces. */
  lineage?: string;
  /**
   * A first connection: the lineage the dialer held last with the listener in this
   * incarnation (it lost it since), absent when none. It tells a redial after a loss the
   * listener has not seen yet (replace) from a dial opened before the dialer got the
   * connection the listener holds (refuse).
   */
  lastHeld?: string;
  /**
   * The dialer's number for this dial: every open signal of a policy gets a larger one, so
   * the listener can tell which of two dials from one process opened later. Always set by
   * {@linkcode AdmissionPolicy.opening}; absent from a peer of an earlier version.
   */
  dial?: number;
  /**
   * Present (`true`) on a first connection when the dialer had no other open signal in flight
   * to the listener: it holds no connection to it and waits for none, so a connection it
   * dialed earlier and the listener still holds is one it gave up on (a dial that timed out
   * after its open went out) or lost, and this one replaces it.
   */
  alone?: true;
}

/** Why {@linkcode AdmissionPolicy.admit} refused a connection. */
export type AdmissionRefusal =
  /** The peer is banned. */
  | "banned"
  /** The allowlist or the gate refused the peer. */
  | "not-allowed"
  /** Another connection to the peer is kept (the tie-break of simultaneous dials). */
  | "duplicate"
  /**
   * A move that loses to this side's own move from the same connection, or that does not
   * come from the connection this side holds (see {@linkcode OpenSignal.generation}).
   */
  | "duplicate-migration"
  /** The pool holds `maxConnections` protected peers. */
  | "pool-full"
  /** The peer's connection comes from an older incarnation than the one connected. */
  | "stale-incarnation";

/** A peer and its connection, as the policy returns them for the caller to close. */
export interface PeerConnectionRef<C> {
  /** The peer id. */
  peer: string;
  /** The connection the caller registered with {@linkcode AdmissionPolicy.admit}. */
  connection: C;
}

/** The answer of {@linkcode AdmissionPolicy.admit}. */
export type AdmissionDecision<C> =
  | {
    /** The connection is now the peer's. */
    admitted: true;
    /**
     * The peer's previous connection: close it as a duplicate, or, with `migrate`, let the
     * new one follow it (it drains, then closes).
     */
    previous: C | undefined;
    /** The dialer moves the peer to this connection from `previous`. */
    migrate: boolean;
    /**
     * The peer starts over on this connection, replacing `previous`: a later process of it (a
     * higher incarnation), or a redial after it lost `previous` (its `lastHeld`) or gave up its
     * dial of it (`alone`). Its side forgot what went over `previous`, so this side reports a
     * disconnect and a connect.
     */
    restart: boolean;
    /** Peers evicted to make room; close their connections with `APP_ERROR_EVICTED`. */
    evict: PeerConnectionRef<C>[];
  }
  | {
    /** Close this connection; the peer keeps its current one, if any. */
    admitted: false;
    /** Why. */
    reason: AdmissionRefusal;
  };

/**
 * Decides which connection each peer keeps. Connections are opaque values of type `C` (the
 * transport's peer connections; strings in tests), compared by identity.
 *
 * The rules (the listener decides, the dialer follows its `ready` frame): when both sides
 * dial at once, both keep the connection dialed by the smaller peer id (`keepOutbound`); a
 * listener whose own dial to the same address is in flight and will win refuses the inbound
 * one before the dialer hears `ready`. Our own dial of a connected peer is dropped before its
 * open signal ({@linkcode AdmissionPolicy.opening}). A connection from a higher incarnation
 * of the peer (it restarted) replaces the old process's on both sides, one from a lower is
 * refused. Within one incarnation, a first connection replaces the one held only when the
 * dialer names that one's lineage as the one it lost (`lastHeld`), or when the one held is an
 * earlier dial of the dialer's and the new one is `alone` (the dialer gave that one up);
 * otherwise the dialer opened it before it got the one held, and it is refused. A migration
 * (`replace`) carries the lineage and generation (the replaced connection's plus one) it
 * moves: a listener takes it only from the connection it holds, and when both sides move from
 * the same connection at once, the tie-break picks one move. Every order of these events ends
 * with both sides on one connection. New peers go through the {@linkcode PoolPolicy}.
 *
 * @example Simultaneous dials: both sides keep the connection the smaller id dialed
 * ```ts
 * import { AdmissionPolicy } from "@cretoai/network/transport";
 *
 * const a = new AdmissionPolicy<string>({ localPeerId: "A" });
 * const b = new AdmissionPolicy<string>({ localPeerId: "B" });
 * // Both handshakes finished: each dialer sends its open signal.
 * const x = a.opening({ peer: "B", address: "b:1", migrate: false })!;
 * const y = b.opening({ peer: "A", address: "a:1", migrate: false })!;
 * // B accepts A's connection X; A refuses B's connection Y, its own dial X wins.
 * const atB = b.admit({ peer: "A", address: "a:1", direction: "inbound", ...x }, "X");
 * const atA = a.admit({ peer: "B", address: "b:1", direction: "inbound", ...y }, "Y");
 * console.assert(atB.admitted && !atA.admitted);
 * a.dialEnded("b:1");
 * const done = a.admit({ peer: "B", address: "b:1", direction: "outbound", replace: false }, "X");
 * console.assert(done.admitted && a.connection("B") === "X" && b.connection("A") === "X");
 * ```
 */
export class AdmissionPolicy<C> {
  /** The pool: eviction, idleness and protection tags. */
  readonly pool: PoolPolicy;
  /** The banned peers, refused first. */
  readonly bans: BanList;
  readonly #local: string;
  readonly #clock: Clock;
  readonly #allowed: ReadonlySet<string> | undefined;
  readonly #gate: ((candidate: AdmissionCandidate) => boolean) | undefined;
  readonly #incarnation: bigint;
  #connected = new Map<string, Held<C>>();
  /** The lineage last held with each peer not connected now, oldest first; bounded. */
  #lastHeld = new Map<string, string>();
  #dials = new Map<string, number>();
  /** Own open signals in flight, by peer, until {@linkcode AdmissionPolicy.openEnded}. */
  #opens = new Map<string, number>();
  /** The number of the last own open signal ({@linkcode OpenSignal.dial}). */
  #lastDial = 0;
  #migrations = new Map<string, number>();
  /** The address of each own migration that opened as a first connection (see `opening`). */
  #migrationDials = new Map<string, string>();
  /** The generation each in-flight own migration announced, by peer. */
  #announced = new Map<string, number>();

  /**
   * Creates a policy with no peers.
   *
   * @param options Local peer id, pool limits and clock.
   * @throws {InvalidConfigError} for an invalid pool limit.
   */
  constructor(options: AdmissionPolicyOptions) {
    const {
      localPeerId,
      maxConnections = 100,
      idleTimeoutMs = Infinity,
      settleMs = 60_000,
      allowedPeers,
      gate,
      maxBans = 10_000,
      incarnation = 0n,
      clock = systemClock,
    } = options;
    this.#incarnation = incarnation;
    this.bans = new BanList({ maxBans, clock });
    this.#local = localPeerId;
    this.#clock = clock;
    this.#allowed = allowedPeers === undefined ? undefined : new Set(allowedPeers);
    this.#gate = gate;
    this.pool = new PoolPolicy({ maxConnections, idleTimeoutMs, settleMs });
  }

  /**
   * The connection a peer holds now.
   *
   * @param peer The peer id.
   * @returns The connection given to {@linkcode AdmissionPolicy.admit}, or `undefined`.
   */
  connection(peer: string): C | undefined {
    return this.#connected.get(peer)?.connection;
  }

  /**
   * Whether a peer is not banned and the allowlist and the gate let it in; {@linkcode AdmissionPolicy.admit} asks
   * this first, a dialer may ask before dialing a peer it knows.
   *
   * @example A committee of two
   * ```ts
   * import { AdmissionPolicy } from "@cretoai/network/transport";
   *
   * const policy = new AdmissionPolicy({ localPeerId: "A", allowedPeers: ["B", "C"] });
   * const candidate = { address: "192.0.2.1:9001", direction: "inbound", replace: false } as const;
   * console.assert(policy.allows({ ...candidate, peer: "B" }));
   * console.assert(!policy.allows({ ...candidate, peer: "M" }));
   * ```
   *
   * @param candidate The peer, its address and the direction.
   * @returns `false` to refuse.
   */
  allows(candidate: AdmissionCandidate): boolean {
    if (this.bans.get(candidate.peer) !== undefined) return false;
    if (this.#allowed !== undefined && !this.#allowed.has(candidate.peer)) return false;
    return this.#gate === undefined || this.#gate(candidate) === true;
  }

  /**
   * Notes that a dial of `address` ended, admitted or not, opened or not.
   *
   * @param address `HOST:PORT`, as given to {@linkcode AdmissionPolicy.opening}.
   */
  dialEnded(address: string): void {
    decrement(this.#dials, address);
  }

  /**
   * Notes that a dial whose open signal {@linkcode AdmissionPolicy.opening} returned ended:
   * admitted, refused or given up. Until then, this node's next first connection to the peer
   * is not {@linkcode OpenSignal.alone}.
   *
   * @param peer The peer id given to {@linkcode AdmissionPolicy.opening}.
   */
  openEnded(peer: string): void {
    decrement(this.#opens, peer);
  }

  /**
   * Notes that this node started moving `peer` to a new connection.
   *
   * @param peer The peer id.
   */
  migrationStarted(peer: string): void {
    this.#migrations.set(peer, (this.#migrations.get(peer) ?? 0) + 1);
  }

  /**
   * Notes that this node's move of `peer` ended.
   *
   * @param peer The peer id.
   */
  migrationEnded(peer: string): void {
    decrement(this.#migrations, peer);
    const address = this.#migrationDials.get(peer);
    if (address !== undefined) {
      this.#migrationDials.delete(peer);
      decrement(this.#dials, address);
    }
    if (!this.#migrations.has(peer)) this.#announced.delete(peer);
  }

  /**
   * What this node's dial tells the peer once the handshake named it, just before the
   * listener decides: a migration replaces the current connection and carries its lineage
   * and generation plus one; any other dial is a first connection, and is dropped
   * (`undefined`) when the peer is connected already (to the same process), so the listener
   * never admits a redundant dial. A first connection that opens counts as this node's dial
   * of `address` in flight until {@linkcode AdmissionPolicy.dialEnded} (for a migration whose
   * peer was lost meanwhile, {@linkcode AdmissionPolicy.migrationEnded}): an inbound first
   * connection from that address meanwhile loses the tie-break if this node's id is the
   * smaller.
   *
   * @param dial The peer the handshake named, the address dialed, whether it migrates, and
   * the peer's run.
   * @returns The signal to send, or `undefined` to close the dial and keep the current connection.
   */
  opening(dial: OpeningDial): OpenSignal | undefined {
    const { peer, address, migrate, run } = dial;
    const existing = this.#connected.get(peer);
    const incarnation = this.#incarnation;
    if (existing !== undefined && migrate) {
      const generation = nextGeneration(existing.generation);
      if (this.#migrations.has(peer)) this.#announced.set(peer, generation);
      const { lineage } = existing;
      const number = this.#opened(peer);
      return { replace: true, generation, incarnation, ...lineage && { lineage }, dial: number };
    }
    if (existing !== undefined) {
      // A dial to another process of the peer (it restarted, or this is its old one) is not
      // redundant: the incarnations in open and ready decide which one both keep.
      const otherRun = run !== undefined && existing.run !== undefined && run !== existing.run;
      if (!otherRun) return undefined;
    }
    // A migration of a peer lost meanwhile is a first connection too, and counts as a dial
    // in flight until the migration ends.
    if (migrate) this.#migrationDials.set(peer, address);
    this.#dials.set(address, (this.#dials.get(address) ?? 0) + 1);
    // Only a peer not connected has one (admitting it forgets it).
    const lastHeld = this.#lastHeld.get(peer);
    // Another dial of ours in flight to the peer may be one the listener admits.
    const alone = existing === undefined && !this.#opens.has(peer);
    const number = this.#opened(peer);
    return {
      replace: false,
      generation: 0,
      incarnation,
      ...lastHeld && { lastHeld },
      dial: number,
      ...alone && { alone },
    };
  }

  /** Counts an open signal to `peer` as in flight; returns its number. */
  #opened(peer: string): number {
    this.#opens.set(peer, (this.#opens.get(peer) ?? 0) + 1);
    return ++this.#lastDial;
  }

  /**
   * Decides about a connection whose handshake finished; an admitted one is the peer's from
   * now on.
   *
   * @param candidate The peer, its address, the direction and whether it migrates.
   * @param connection The caller's handle of the connection.
   * @returns Whether to keep it, and what to close.
   */
  admit(candidate: AdmissionCandidate, connection: C): AdmissionDecision<C> {
    const { peer, address, direction, replace, generation = 0, incarnation = 0n } = candidate;
    if (this.bans.get(peer) !== undefined) return { admitted: false, reason: "banned" };
    if (!this.allows(candidate)) return { admitted: false, reason: "not-allowed" };
    const existing = this.#connected.get(peer);
    // A migration keeps its lineage (both ends take the dialer's word for it, so that they
    // name it alike); a first connection starts one.
    const held: Held<C> = {
      connection,
      direction,
      generation,
      incarnation,
      lineage: replace ? candidate.lineage ?? candidate.link : candidate.link,
      run: candidate.run,
      dial: direction === "inbound" ? candidate.dial : undefined,
    };
    if (existing !== undefined) {
      if (incarnation < existing.incarnation) {
        // The old process of a restarted peer: the new one's connection stays.
        return { admitted: false, reason: "stale-incarnation" };
      }
      if (incarnation > existing.incarnation) {
        // The peer restarted: the old process's connection is dead to it, close it; unless
        // our own dial to the new process opened and wins the tie-break, as below.
        if (direction === "inbound" && !replace && this.#winningDial(peer, address)) {
          return { admitted: false, reason: "duplicate" };
        }
        return this.#replace(peer, existing, held, false, true);
      }
      if (direction === "outbound") {
        // Our dial got ready: its listener took it (moved to it), so we follow.
        return this.#replace(peer, existing, held, replace, false);
      }
      if (replace) {
        // The listener decides; the dialer follows its ready frame. A move must replace the
        // connection this side holds: another lineage, or a higher generation, means the
        // dialer already took our own move (its ready frame is on the way), a lower one that
        // it has not seen ours.
        const concurrent = keepOutbound(this.#local, peer) &&
          this.#announced.get(peer) === generation;
        if (
          held.lineage !== existing.lineage ||
          generation !== nextGeneration(existing.generation) || concurrent
        ) {
          return { admitted: false, reason: "duplicate-migration" };
        }
        return this.#replace(peer, existing, held, true, false);
      }
      // A first connection opened while the dialer held none: it replaces ours only when the
      // dialer lost ours (a close we have not seen yet), or gave up its dial of ours (it has
      // no other in flight, and this one opened later); otherwise the dialer opened it
      // before it got ours, and follows ours.
      const lost = existing.lineage !== undefined && candidate.lastHeld === existing.lineage;
      const givenUp = candidate.alone === true && existing.dial !== undefined &&
        candidate.dial !== undefined && candidate.dial > existing.dial;
      if (!lost && !givenUp) return { admitted: false, reason: "duplicate" };
      return this.#replace(peer, existing, held, false, true);
    }
    if (direction === "inbound" && this.#dials.has(address)) {
      // Our own dial to this address is in flight. A move from a connection we do not hold
      // yet comes from that dial, whose ready frame is on the way (the dialer took it, then
      // moved): we keep that one, as the dialer does. A first connection, when our dial will
      // win the tie: refusing it now, before the ready frame, keeps both sides from ever
      // using the losing connection.
      if (replace) return { admitted: false, reason: "duplicate-migration" };
      if (this.#winningDial(peer, address)) return { admitted: false, reason: "duplicate" };
    }
    const decision = this.pool.admit(peer, this.#clock.now());
    if (!decision.admitted) return { admitted: false, reason: "pool-full" };
    const evict: PeerConnectionRef<C>[] = [];
    for (const key of decision.evict) {
      const entry = this.#connected.get(key);
      this.#connected.delete(key);
      if (entry !== undefined) {
        this.#remember(key, entry);
        evict.push({ peer: key, connection: entry.connection });
      }
    }
    this.#connected.set(peer, held);
    this.#lastHeld.delete(peer);
    return { admitted: true, previous: undefined, migrate: false, restart: false, evict };
  }

  /** Whether our own first connection to `address` opened and wins over the peer's dial. */
  #winningDial(peer: string, address: string): boolean {
    return this.#dials.has(address) && keepOutbound(this.#local, peer);
  }

  #replace(
    peer: string,
    existing: Held<C>,
    held: Held<C>,
    migrate: boolean,
    restart: boolean,
  ): AdmissionDecision<C> {
    this.#connected.set(peer, held);
    this.pool.touch(peer, this.#clock.now());
    return { admitted: true, previous: existing.connection, migrate, restart, evict: [] };
  }

  /** Keeps the lineage of a peer's connection that is gone, for the next dial's `lastHeld`. */
  #remember(peer: string, entry: Held<C>): void {
    if (entry.lineage === undefined) return;
    this.#lastHeld.delete(peer);
    this.#lastHeld.set(peer, entry.lineage);
    if (this.#lastHeld.size > MAX_REMEMBERED_LINEAGES) {
      this.#lastHeld.delete(this.#lastHeld.keys().next().value!);
    }
  }

  /**
   * Notes that a connection closed; forgets the peer if it was the peer's current one.
   *
   * @param peer The peer id.
   * @param connection The connection that closed.
   * @returns Whether the peer is gone (`false` when a newer connection replaced this one).
   */
  closed(peer: string, connection: C): boolean {
    const entry = this.#connected.get(peer);
    if (entry?.connection !== connection) return false;
    this.#connected.delete(peer);
    this.#remember(peer, entry);
    this.pool.remove(peer);
    return true;
  }

  /**
   * Marks a peer as used now (a message or a request), for eviction and idleness.
   *
   * @param peer The peer id.
   */
  touch(peer: string): void {
    this.pool.touch(peer, this.#clock.now());
  }

  /**
   * Removes the unprotected peers unused for `idleTimeoutMs`, for the caller to close with
   * `APP_ERROR_IDLE_TIMEOUT`.
   *
   * @returns The idle peers and their connections.
   */
  collectIdle(): PeerConnectionRef<C>[] {
    const idle: PeerConnectionRef<C>[] = [];
    for (const peer of this.pool.collectIdle(this.#clock.now())) {
      const entry = this.#connected.get(peer);
      this.#connected.delete(peer);
      if (entry !== undefined) {
        this.#remember(peer, entry);
        idle.push({ peer, connection: entry.connection });
      }
    }
    return idle;
  }

  /**
   * When the next unprotected peer turns idle, on the policy's clock.
   *
   * @returns The time in milliseconds, or `undefined` when none can idle.
   */
  nextIdleAt(): number | undefined {
    return this.pool.nextIdleAt();
  }
}

/**
 * Peers whose last lineage a policy remembers after they disconnected. A peer forgotten sooner
 * redials without `lastHeld`; if the listener still holds the lost connection then, the dial
 * is refused until that connection's close (at worst its idle timeout) reaches the listener.
 */
const MAX_REMEMBERED_LINEAGES = 4096;

/** A peer's connection and what the policy knows of it. */
interface Held<C> {
  connection: C;
  direction: ConnectionDirection;
  generation: number;
  /** The peer's incarnation on this connection. */
  incarnation: bigint;
  /** The link of the lineage's first connection. */
  lineage: string | undefined;
  /** The peer's run ({@linkcode AdmissionCandidate.run}). */
  run: string | undefined;
  /** The peer's number for its dial, when it dialed ({@linkcode OpenSignal.dial}). */
  dial: number | undefined;
}

/** Generations count modulo 2^32, the width of the open signal's field. */
function nextGeneration(generation: number): number {
  return (generation + 1) >>> 0;
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
