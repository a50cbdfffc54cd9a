/**
 * Up-front checks of options and arguments, so every module reports a bad value the same way:
 * which field, the rule, and the value seen.
 *
 * @module
 */

import { describe, InvalidConfigError } from "./errors.ts";

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

/**
 * Throws `InvalidConfigError` unless `value` is a safe integer from `min` to `max`.
 *
 * @param field Name of the option.
 * @param value The value seen.
 * @param min Smallest allowed value.
 * @param max Largest allowed value; without it, only `min` is stated in the rule.
 */
export function requireInteger(
  field: string,
  value: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (!(Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max)) {
    const rule = max !== Number.MAX_SAFE_INTEGER
      ? `an integer from ${min} to ${max}`
      : min === 1
      ? "a positive integer"
      : min === 0
      ? "a non-negative integer"
      : `an integer of at least ${min}`;
    throw new InvalidConfigError(field, rule, value);
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
