/**
 * Option checks shared by the DHT's modules.
 *
 * @module
 */

import { InvalidConfigError } from "../../errors.ts";

/** Throws unless `value` is an integer of at least 1. */
export function positiveInteger(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidConfigError(field, "a positive integer", value);
  }
}

/** Throws unless `value` is a finite number greater than 0. */
export function positiveNumber(field: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new InvalidConfigError(field, "a finite number greater than 0", value);
  }
}
