/**
 * {@linkcode readLines} for the tests; it lives with the examples, which may not import tests.
 *
 * @module
 */

export { readLines } from "../examples/_lines.ts";
