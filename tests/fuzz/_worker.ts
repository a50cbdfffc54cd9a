/**
 * Worker side of a supervised campaign (see `_supervisor.ts`): runs the targets it is given
 * and, before each input, writes the input into the shared buffer, so that the supervisor can
 * name the input of a hang after terminating this worker.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { runTarget } from "./_campaign.ts";
import { HEADER_INTS, type WorkerJob, writeProgress } from "./_supervisor.ts";

// The targets are imported here, not at the top: some make their fixtures with a top-level
// await, and a job posted while this module still evaluated would reach no handler.
self.onmessage = async (e: MessageEvent<WorkerJob>) => {
  const { allTargets } = await import("./_targets.ts");
  const { seed, names, start, inputs, durationMs, maxMsPerInput, shared } = e.data;
  const header = new Int32Array(shared, 0, HEADER_INTS);
  const body = new Uint8Array(shared, HEADER_INTS * 4);
  for (const [i, name] of names.entries()) {
    const target = allTargets.find((t) => t.name === name)!;
    const report = await runTarget(target, seed, {
      inputs: inputs ?? (durationMs === undefined ? target.quickInputs ?? 800 : Infinity),
      durationMs,
      maxMsPerInput,
      onInput: (iteration, input) => writeProgress(header, body, i, iteration, input),
    }, i === 0 ? start : 0);
    self.postMessage(report);
  }
  self.close();
};
