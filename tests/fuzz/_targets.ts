/**
 * Every fuzz target, by name: one per decoder of untrusted bytes.
 *
 * @module
 */

import type { FuzzTarget } from "./_campaign.ts";
import { certificateTargets } from "./_targets_certificate.ts";
import { coreTargets } from "./_targets_core.ts";
import { serviceTargets } from "./_targets_services.ts";

/** The targets in campaign order. */
export const allTargets: readonly FuzzTarget[] = [
  ...coreTargets,
  ...certificateTargets,
  ...serviceTargets,
];
