/**
 * Runs fuzz targets in this thread: generates inputs from a seed, feeds them to a target, and
 * records every input that broke the rule. The rule: a decoder of untrusted bytes may only throw
 * the project's typed errors (`NetworkError` and its subclasses), must settle within
 * `maxMsPerInput`, and must not grow memory while it runs. Hangs of synchronous code cannot be
 * caught from the same thread; `_supervisor.ts` runs campaigns in a worker for that.
 *
 * @module
 */

import { NetworkError } from "../../src/errors.ts";
import { Prng } from "../_prng.ts";
import { hashBytes, mutate, randomInput, toHex } from "./_mutate.ts";

/** One decoder (or a small pipeline of them) under test. */
export interface FuzzTarget {
  /** `area/what`, for example `"transport/message"`. */
  name: string;
  /** Valid encodings to mutate; made once per campaign. */
  seeds(): Uint8Array[] | Promise<Uint8Array[]>;
  /** Largest input generated. */
  maxInputBytes: number;
  /**
   * Feeds one input. Throws a `NetworkError` for input it refuses (allowed), a
   * {@linkcode InvariantError} when the decoder broke one of its own promises.
   *
   * @param rng Seeded from the input alone, for choices such as chunk sizes.
   */
  run(input: Uint8Array, rng: Prng): unknown;
  /** Inputs of the bounded campaign in the test suite (slow targets use fewer). @default {800} */
  quickInputs?: number;
  /**
   * A structure-aware mutation of one seed (DER trees, for example), used for half of the
   * mutated inputs; the generic byte mutations of `_mutate.ts` make the other half.
   */
  mutate?: Mutator;
}

/** Makes one input from `seed`, bounded by `maxBytes`; `others` are further seeds to splice. */
export type Mutator = (
  rng: Prng,
  seed: Uint8Array,
  others: readonly Uint8Array[],
  maxBytes: number,
) => Uint8Array;

/** A decoder broke a promise of its own (a bound, a round trip), not just refused input. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

/** An input that broke the rule. */
export interface Finding {
  target: string;
  kind: "untyped-error" | "invariant" | "slow" | "hang" | "memory";
  /** The error's name and message, or what was seen. */
  detail: string;
  /** The first frames of the stack, where the error was thrown. */
  where?: string;
  /** Campaign seed and input number that made the input. */
  seed: number;
  iteration: number;
  /** The input, as lowercase hex. */
  inputHex: string;
}

/** What one target's campaign did. */
export interface TargetReport {
  target: string;
  inputs: number;
  /** Inputs the target refused with a typed error. */
  refused: number;
  /** Inputs the target accepted. */
  accepted: number;
  /** Slowest input, in milliseconds. */
  maxMs: number;
  /** Growth of the heap from after the warm-up to its peak, in bytes. */
  heapGrowthBytes: number;
  findings: Finding[];
}

/** Limits of a campaign. */
export interface CampaignLimits {
  /** Stop after this many inputs. */
  inputs?: number;
  /** Stop after this many milliseconds. */
  durationMs?: number;
  /** An input that takes longer is a finding. @default {1000} */
  maxMsPerInput?: number;
  /**
   * Heap growth over the campaign that is a finding: retained bytes after collections when
   * `gc` is exposed, else the peak between them. @default {64 MiB}
   */
  maxHeapGrowthBytes?: number;
  /** Findings kept per target (the first ones). @default {20} */
  maxFindings?: number;
  /** Called before each input, so a supervisor can tell which input hung. */
  onInput?: (iteration: number, input: Uint8Array) => void;
}

/** Most bytes of an input a finding keeps (inputs are small; this bounds a report). */
const MAX_FINDING_INPUT = 64 * 1024;

/**
 * Input `iteration` of a campaign: 15 % random bytes, the rest mutated seeds (half of them by
 * `structured`, when given).
 */
export function makeInput(
  rng: Prng,
  seeds: readonly Uint8Array[],
  maxBytes: number,
  structured?: Mutator,
): Uint8Array {
  if (seeds.length === 0 || rng.next() < 0.15) return randomInput(rng, maxBytes);
  // Now and then a seed as it is: the valid path must stay clean too.
  const seed = rng.pick(seeds);
  if (rng.next() < 0.03) return seed.slice();
  // Drawn only for targets that have one, so other targets' inputs stay what they were.
  if (structured !== undefined && rng.next() < 0.5) {
    const out = structured(rng, seed, seeds, maxBytes);
    // Sometimes byte mutations on top, so that both kinds of damage meet.
    return rng.next() < 0.25 ? mutate(rng, out, seeds, maxBytes) : out;
  }
  return mutate(rng, seed, seeds, maxBytes);
}

/** The campaign seed of one target: the same seed and name give the same inputs. */
export function targetSeed(seed: number, name: string): number {
  return (seed ^ hashBytes(new TextEncoder().encode(name))) >>> 0;
}

/**
 * Runs one target until `limits.inputs` or `limits.durationMs` is reached.
 *
 * @param start The first iteration (a supervisor resumes after a hang with the next one).
 */
export async function runTarget(
  target: FuzzTarget,
  seed: number,
  limits: CampaignLimits,
  start = 0,
): Promise<TargetReport> {
  const {
    inputs = Infinity,
    durationMs = Infinity,
    maxMsPerInput = 1000,
    maxHeapGrowthBytes = 64 * 1024 * 1024,
    maxFindings = 20,
    onInput,
  } = limits;
  const report: TargetReport = {
    target: target.name,
    inputs: 0,
    refused: 0,
    accepted: 0,
    maxMs: 0,
    heapGrowthBytes: 0,
    findings: [],
  };
  const finding = (kind: Finding["kind"], iteration: number, input: Uint8Array, e?: unknown) => {
    if (report.findings.length >= maxFindings) return;
    const error = e instanceof Error ? e : undefined;
    report.findings.push({
      target: target.name,
      kind,
      detail: error === undefined ? String(e) : `${error.name}: ${error.message}`.slice(0, 500),
      where: error?.stack?.split("\n").slice(1, 4).map((l) => l.trim()).join(" < "),
      seed,
      iteration,
      inputHex: toHex(input.subarray(0, MAX_FINDING_INPUT)),
    });
  };
  const seeds = await target.seeds();
  const rng = new Prng(targetSeed(seed, target.name));
  // Replay the generator up to `start`, so that iteration numbers name the same inputs.
  for (let i = 0; i < start; i++) makeInput(rng, seeds, target.maxInputBytes, target.mutate);
  const began = performance.now();
  const warmUp = Math.min(200, Math.floor((inputs === Infinity ? 2000 : inputs) / 10));
  let heapBase = Infinity;
  let heapPeak = 0;
  // With --v8-flags=--expose-gc the heap is measured after collections: retained growth.
  // Without, its peak between collections: an upper bound that includes garbage.
  const gc = (globalThis as { gc?: () => void }).gc;
  const heapNow = () => {
    gc?.();
    return Deno.memoryUsage().heapUsed;
  };
  for (let i = start; i < start + inputs && performance.now() - began < durationMs; i++) {
    const input = makeInput(rng, seeds, target.maxInputBytes, target.mutate);
    onInput?.(i, input);
    const t0 = performance.now();
    try {
      const result = target.run(input, new Prng(hashBytes(input)));
      if (result instanceof Promise) await settleWithin(result, maxMsPerInput * 10);
      report.accepted++;
    } catch (e) {
      if (e instanceof NetworkError) report.refused++;
      else if (e instanceof InvariantError) finding("invariant", i, input, e);
      else if (e instanceof HangError) finding("hang", i, input, e);
      else finding("untyped-error", i, input, e);
    }
    const ms = performance.now() - t0;
    report.maxMs = Math.max(report.maxMs, ms);
    // Once more before it counts: on a shared machine a pause of the process is not the input.
    if (ms > maxMsPerInput) {
      const again = await timeOnce(target, input, maxMsPerInput);
      if (again > maxMsPerInput) {
        finding("slow", i, input, `took ${ms.toFixed(1)} ms, then ${again.toFixed(1)} ms`);
      }
    }
    report.inputs++;
    if (report.inputs === warmUp) heapBase = heapNow();
    if (report.inputs > warmUp && report.inputs % (gc === undefined ? 64 : 8192) === 0) {
      heapPeak = Math.max(heapPeak, heapNow());
    }
  }
  if (report.inputs > warmUp) heapPeak = Math.max(heapPeak, heapNow());
  report.heapGrowthBytes = Math.max(0, heapPeak - heapBase);
  if (report.heapGrowthBytes > maxHeapGrowthBytes) {
    finding(
      "memory",
      report.inputs,
      new Uint8Array(0),
      `heap grew by ${report.heapGrowthBytes} bytes over ${report.inputs} inputs`,
    );
  }
  report.maxMs = Math.round(report.maxMs * 100) / 100;
  return report;
}

/** Milliseconds one more run of `input` takes, whatever its outcome. */
async function timeOnce(target: FuzzTarget, input: Uint8Array, maxMs: number): Promise<number> {
  const t0 = performance.now();
  try {
    const result = target.run(input, new Prng(hashBytes(input)));
    if (result instanceof Promise) await settleWithin(result, maxMs * 10);
  } catch {
    // Only the time counts here; the first run classified the outcome.
  }
  return performance.now() - t0;
}

/** A promise a target returned did not settle in time. */
class HangError extends Error {
  override name = "HangError";
}

async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HangError(`not settled within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
