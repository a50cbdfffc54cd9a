/**
 * Runs fuzz campaigns in a worker and watches it: a decoder stuck in a synchronous loop cannot
 * be interrupted from its own thread, so the supervisor terminates the worker when its input
 * counter stops moving, records the input it was on as a hang, and goes on with the next
 * target in a new worker.
 *
 * @module
 */

import type { Finding, TargetReport } from "./_campaign.ts";
import { toHex } from "./_mutate.ts";

/** Int32 slots before the input bytes: counter, target index, iteration, input length. */
export const HEADER_INTS = 4;
/** Largest input the shared buffer holds (targets stay below it). */
const MAX_SHARED_INPUT = 64 * 1024;

/** What the supervisor asks a worker to run. */
export interface WorkerJob {
  seed: number;
  names: string[];
  /** First iteration of the first target (after a hang, the input after the one that hung). */
  start: number;
  /** Inputs per target; each target's `quickInputs` when absent. */
  inputs?: number;
  durationMs?: number;
  maxMsPerInput: number;
  shared: SharedArrayBuffer;
}

/** Records the input about to run (called by the worker). */
export function writeProgress(
  header: Int32Array,
  body: Uint8Array,
  targetIndex: number,
  iteration: number,
  input: Uint8Array,
): void {
  const n = Math.min(input.byteLength, body.byteLength);
  body.set(input.subarray(0, n));
  header[1] = targetIndex;
  header[2] = iteration;
  header[3] = n;
  Atomics.add(header, 0, 1);
}

/** Options of {@linkcode superviseCampaign}. */
export interface CampaignOptions {
  seed: number;
  /** Target names in order. */
  names: readonly string[];
  /** Inputs per target; each target's `quickInputs` when absent (with no `durationMs`). */
  inputs?: number;
  /** Time per target in milliseconds. */
  durationMs?: number;
  /** An input slower than this is a finding. @default {1000} */
  maxMsPerInput?: number;
  /** No new input for this long is a hang. @default {15000} */
  hangMs?: number;
  /** Called with each target's report as it completes. */
  onReport?: (report: TargetReport) => void;
}

/** Runs the targets in workers, one report per target, hangs included. */
export async function superviseCampaign(options: CampaignOptions): Promise<TargetReport[]> {
  const { seed, inputs, durationMs, maxMsPerInput = 1000, hangMs = 15_000, onReport } = options;
  // Loading the targets in a new worker can take long on a cold module cache.
  const firstInputMs = Math.max(hangMs, 120_000);
  const reports: TargetReport[] = [];
  let names = [...options.names];
  let start = 0;
  while (names.length > 0) {
    const shared = new SharedArrayBuffer(HEADER_INTS * 4 + MAX_SHARED_INPUT);
    const header = new Int32Array(shared, 0, HEADER_INTS);
    const worker = new Worker(new URL("./_worker.ts", import.meta.url), { type: "module" });
    const finished: TargetReport[] = [];
    const outcome = await new Promise<"done" | "hang" | Error>((resolve) => {
      let last = -1;
      let lastChange = performance.now();
      const poll = setInterval(() => {
        const counter = Atomics.load(header, 0);
        if (counter !== last) {
          last = counter;
          lastChange = performance.now();
        } else if (performance.now() - lastChange > (counter === 0 ? firstInputMs : hangMs)) {
          clearInterval(poll);
          resolve("hang");
        }
      }, 100);
      worker.onmessage = (e: MessageEvent<TargetReport>) => {
        finished.push(e.data);
        onReport?.(e.data);
        lastChange = performance.now();
        if (finished.length === names.length) {
          clearInterval(poll);
          resolve("done");
        }
      };
      worker.onerror = (e) => {
        e.preventDefault();
        clearInterval(poll);
        resolve(new Error(`fuzz worker failed: ${e.message}`));
      };
      worker.postMessage({ seed, names, start, inputs, durationMs, maxMsPerInput, shared });
    });
    worker.terminate();
    reports.push(...finished);
    if (outcome instanceof Error) throw outcome;
    if (outcome === "done") break;
    // The target after the last finished one hung on the input in the shared buffer.
    const hung = names[finished.length];
    const iteration = header[2];
    const body = new Uint8Array(shared, HEADER_INTS * 4, header[3]);
    const finding: Finding = {
      target: hung,
      kind: "hang",
      detail: Atomics.load(header, 0) === 0
        ? `no first input within ${firstInputMs} ms (loading or making seeds): the worker was terminated`
        : `no new input for ${hangMs} ms: the worker was terminated`,
      seed,
      iteration,
      inputHex: toHex(body),
    };
    const report: TargetReport = {
      target: hung,
      inputs: iteration - (finished.length === 0 ? start : 0),
      refused: 0,
      accepted: 0,
      maxMs: hangMs,
      heapGrowthBytes: 0,
      findings: [finding],
    };
    reports.push(report);
    onReport?.(report);
    names = names.slice(finished.length + 1);
    start = 0;
  }
  return reports;
}
