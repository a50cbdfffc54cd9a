/**
 * The few assertions the tests need, over `node:assert` (JSR, home of `@std/assert`, is not
 * reachable from this environment).
 *
 * @module
 */

import nodeAssert from "node:assert/strict";

export function assert(value: unknown, message?: string): asserts value {
  if (message === undefined) nodeAssert.ok(value);
  else nodeAssert.ok(value, message);
}

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Asserts that `fn` throws an instance of `type` whose message contains `includes`. */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  type: abstract new (...args: never[]) => E,
  includes = "",
): E {
  try {
    fn();
  } catch (e) {
    assert(e instanceof type, `expected ${type.name}, got ${e}`);
    assert(e.message.includes(includes), `expected ${JSON.stringify(includes)} in: ${e.message}`);
    return e;
  }
  throw new Error(`expected ${type.name} to be thrown`);
}

/** Like {@linkcode assertThrows} for a promise. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: abstract new (...args: never[]) => E,
  includes = "",
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof type, `expected ${type.name}, got ${e}`);
    assert(e.message.includes(includes), `expected ${JSON.stringify(includes)} in: ${e.message}`);
    return e;
  }
  throw new Error(`expected ${type.name} to be rejected`);
}
