/**
 * A process's incarnation: the number a transport tells its peers (in `open` and `ready`
 * frames) so that they tell a restart of the same identity from the process they knew. A
 * later start gets a larger number, so a peer keeps the newest process's connection.
 *
 * @module
 */

/** Random low bits: two processes of one identity started in the same millisecond differ. */
const RANDOM_BITS = 16n;
let last = 0n;

/**
 * A new incarnation: the wall-clock start time in milliseconds, shifted left by 16 bits, plus
 * 16 random bits (a u64 until the year 10889); within one process each call returns more
 * than the one before, even when the clock steps back.
 */
export function newIncarnation(): bigint {
  const random = BigInt(crypto.getRandomValues(new Uint16Array(1))[0]);
  const fromClock = (BigInt(Date.now()) << RANDOM_BITS) | random;
  last = fromClock > last ? fromClock : last + 1n;
  return last;
}
