/**
 * Up-front checks of options and arguments, so every module reports a bad value the same way:
 * which field, the rule, and the value seen.
 *
 * @module
 */

import { describe, InvalidConfigError } from "../errors.ts";

/** Throws `InvalidConfigError` unless `value` is a number above 0; `Infinity` passes. */
export function requirePositive(field: string, value: number): void {
  if (!(typeof value === "number" && value > 0)) {
    throw new InvalidConfigError(field, "a number greater than 0", value);
  }
}

/** Throws `InvalidConfigError` unless `value` is a finite number above 0. */
export function requirePositiveFinite(field: string, value: number): void {
  if (!(typeof value === "number" && value > 0 && Number.isFinite(value))) {
    throw new InvalidConfigError(field, "a finite number greater than 0", value);
  }
}

/** Throws `InvalidConfigError` unless `value` is an integer of 1 or more, or `Infinity`. */
export function requireLimit(field: string, value: number): void {
  if (!(value === Infinity || (Number.isSafeInteger(value) && value >= 1))) {
    throw new InvalidConfigError(field, "an integer of at least 1, or Infinity", value);
  }
}

/** Throws `RangeError` unless a per-call byte count is a non-negative safe integer. */
export function requireByteCount(field: string, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    throw new RangeError(
      `Invalid argument: '${field}' must be a non-negative integer: current value is ${
        describe(value)
      }`,
    );
  }
}
