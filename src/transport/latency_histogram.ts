/**
 * A fixed-size log-scale histogram of round-trip times: constant memory per peer, percentiles
 * within about 3% of the true value.
 *
 * @module
 */

import { describe } from "../errors.ts";

/** Smallest latency told apart from zero, in milliseconds (1 µs). */
const MIN_MS = 0.001;
/** Buckets per doubling: bucket bounds grow by 2^(1/16), about 4.4%. */
const PER_OCTAVE = 16;
/** Octaves from 1 µs to about 18 minutes. */
const OCTAVES = 30;
const BUCKETS = PER_OCTAVE * OCTAVES + 1;

/**
 * Records latency samples and answers mean and percentiles. Sample `i` lands in a bucket
 * whose bounds are a factor 2^(1/16) apart; a percentile is reported as the geometric middle
 * of its bucket, clamped to the smallest and largest sample seen.
 *
 * @example
 * ```ts
 * import { LatencyHistogram } from "@cretoai/network/transport";
 *
 * const histogram = new LatencyHistogram();
 * for (const ms of [1, 2, 3, 4, 100]) histogram.record(ms);
 * console.assert(histogram.count === 5);
 * console.assert(Math.abs(histogram.percentile(50) - 3) < 0.1);
 * console.assert(Math.abs(histogram.percentile(99) - 100) < 3);
 * ```
 */
export class LatencyHistogram {
  #counts = new Uint32Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = 0;

  /**
   * Number of samples recorded.
   *
   * @returns The count.
   */
  get count(): number {
    return this.#count;
  }

  /**
   * Mean of the samples, in milliseconds; 0 with no samples.
   *
   * @returns The mean.
   */
  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /**
   * Adds a sample.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@cretoai/network/transport";
   *
   * const histogram = new LatencyHistogram();
   * histogram.record(0.25);
   * console.assert(histogram.mean === 0.25);
   * ```
   *
   * @param ms The latency in milliseconds.
   * @throws {RangeError} when `ms` is negative or not finite.
   */
  record(ms: number): void {
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw new RangeError(
        `Cannot record a latency as 'ms' must be a finite number of at least 0: current value ` +
          `is ${describe(ms)}`,
      );
    }
    this.#counts[bucketOf(ms)]++;
    this.#count++;
    this.#sum += ms;
    this.#min = Math.min(this.#min, ms);
    this.#max = Math.max(this.#max, ms);
  }

  /**
   * The latency below which `p` percent of the samples fall.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@cretoai/network/transport";
   *
   * const histogram = new LatencyHistogram();
   * console.assert(histogram.percentile(99) === 0);
   * ```
   *
   * @param p The percentile, from 0 to 100.
   * @returns Milliseconds; 0 with no samples.
   * @throws {RangeError} when `p` is outside 0-100.
   */
  percentile(p: number): number {
    if (typeof p !== "number" || !(p >= 0 && p <= 100)) {
      throw new RangeError(
        `Cannot compute a percentile as 'p' must be a number from 0 to 100: current value is ${
          describe(p)
        }`,
      );
    }
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i];
      // The last bucket also holds everything beyond the range: only the maximum is known.
      if (seen >= rank && i === BUCKETS - 1) return this.#max;
      if (seen >= rank) return Math.min(this.#max, Math.max(this.#min, middleOf(i)));
    }
    return this.#max;
  }
}

function bucketOf(ms: number): number {
  if (ms < MIN_MS) return 0;
  const index = 1 + Math.floor(Math.log2(ms / MIN_MS) * PER_OCTAVE);
  return Math.min(BUCKETS - 1, index);
}

function middleOf(bucket: number): number {
  if (bucket === 0) return 0;
  return MIN_MS * 2 ** ((bucket - 1 + 0.5) / PER_OCTAVE);
}
