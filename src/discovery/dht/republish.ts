/**
 * When to republish records before they expire. Pure bookkeeping: the node asks which items
 * are due and when the next one is, and runs the publishing itself.
 *
 * @module
 */

import { requirePositiveFinite } from "../../_validate.ts";
import { InvalidConfigError } from "../../errors.ts";

/** Options of a {@linkcode RepublishSchedule}. */
export interface RepublishScheduleOptions {
  /**
   * Republish after this fraction of the time left until expiry, so a failed attempt leaves
   * time for another.
   *
   * @default {0.5}
   */
  fraction?: number;
  /**
   * Republish at least this many milliseconds before expiry, whatever the fraction says.
   *
   * @default {60_000}
   */
  minLeadMs?: number;
}

/**
 * Tracks, per item id, when the item must be republished.
 *
 * @example
 * ```ts
 * import { RepublishSchedule } from "@cretoai/network/dht";
 *
 * const schedule = new RepublishSchedule({ fraction: 0.5, minLeadMs: 0 });
 * schedule.schedule("self", 0, 1000);
 * console.assert(schedule.nextDueAt() === 500);
 * console.assert(schedule.due(499).length === 0);
 * console.assert(schedule.due(500)[0] === "self");
 * ```
 */
export class RepublishSchedule {
  readonly #fraction: number;
  readonly #minLeadMs: number;
  readonly #dueAt = new Map<string, number>();

  /**
   * Creates an empty schedule.
   *
   * @param options When, relative to expiry, to republish.
   * @throws {InvalidConfigError} If `fraction` is not in (0, 1] or `minLeadMs` is negative.
   */
  constructor(options: RepublishScheduleOptions = {}) {
    const { fraction = 0.5, minLeadMs = 60_000 } = options;
    requirePositiveFinite("fraction", fraction);
    if (fraction > 1) throw new InvalidConfigError("fraction", "in (0, 1]", fraction);
    if (!Number.isFinite(minLeadMs) || minLeadMs < 0) {
      throw new InvalidConfigError("minLeadMs", "a non-negative number", minLeadMs);
    }
    this.#fraction = fraction;
    this.#minLeadMs = minLeadMs;
  }

  /**
   * Schedules (or reschedules) an item published at `now` that expires at `expiresAt`.
   *
   * @example
   * ```ts
   * import { RepublishSchedule } from "@cretoai/network/dht";
   *
   * const at = new RepublishSchedule({ minLeadMs: 600 }).schedule("k", 0, 1000);
   * console.assert(at === 400);
   * ```
   *
   * @param id The item.
   * @param now Current clock time.
   * @param expiresAt When the published record expires.
   * @returns The time the item becomes due.
   */
  schedule(id: string, now: number, expiresAt: number): number {
    const byFraction = now + (expiresAt - now) * this.#fraction;
    const at = Math.max(now, Math.min(byFraction, expiresAt - this.#minLeadMs));
    this.#dueAt.set(id, at);
    return at;
  }

  /**
   * Removes the items due at `now` and returns them, earliest first.
   *
   * @example
   * ```ts
   * import { RepublishSchedule } from "@cretoai/network/dht";
   *
   * console.assert(new RepublishSchedule().due(0).length === 0);
   * ```
   *
   * @param now Current clock time.
   * @returns The ids of the due items; reschedule each after republishing it.
   */
  due(now: number): string[] {
    const out: [string, number][] = [];
    for (const [id, at] of this.#dueAt) if (at <= now) out.push([id, at]);
    out.sort((a, b) => a[1] - b[1]);
    for (const [id] of out) this.#dueAt.delete(id);
    return out.map(([id]) => id);
  }

  /**
   * Returns when the earliest item becomes due.
   *
   * @example
   * ```ts
   * import { RepublishSchedule } from "@cretoai/network/dht";
   *
   * console.assert(new RepublishSchedule().nextDueAt() === undefined);
   * ```
   *
   * @returns A clock time, or `undefined` if nothing is scheduled.
   */
  nextDueAt(): number | undefined {
    let next: number | undefined;
    for (const at of this.#dueAt.values()) if (next === undefined || at < next) next = at;
    return next;
  }

  /**
   * Stops tracking an item.
   *
   * @example
   * ```ts
   * import { RepublishSchedule } from "@cretoai/network/dht";
   *
   * const schedule = new RepublishSchedule();
   * schedule.schedule("k", 0, 10_000_000);
   * console.assert(schedule.cancel("k") && schedule.nextDueAt() === undefined);
   * ```
   *
   * @param id The item.
   * @returns Whether it was scheduled.
   */
  cancel(id: string): boolean {
    return this.#dueAt.delete(id);
  }
}
