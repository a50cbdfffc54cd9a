/**
 * A bounded fuzz campaign over every decoder of untrusted bytes (a few seconds in all): seeded
 * mutations of valid encodings and random bytes. Each target may only refuse input with the
 * project's typed errors, must not hang or be slow, and must keep memory flat. The same seed
 * gives the same inputs; `deno task fuzz --minutes N` runs the long campaign.
 *
 * @module
 */

import assert from "node:assert/strict";
import { superviseCampaign } from "./_supervisor.ts";
import { allTargets } from "./_targets.ts";
import { Prng } from "../_prng.ts";

const SEED = 0x17_0008;

Deno.test("fuzz: every decoder refuses mutated and random input with typed errors only", async () => {
  const reports = await superviseCampaign({
    seed: SEED,
    names: allTargets.map((t) => t.name),
    maxMsPerInput: 2000,
    hangMs: 20_000,
  });
  const table = reports.map((r) =>
    `${r.target.padEnd(28)} ${String(r.inputs).padStart(6)} inputs, ${
      String(r.refused).padStart(6)
    } refused, max ${r.maxMs} ms, heap +${Math.round(r.heapGrowthBytes / 1024)} KiB`
  );
  console.log(table.join("\n"));
  assert.deepEqual(reports.map((r) => r.target), allTargets.map((t) => t.name));
  for (const r of reports) assert.ok(r.inputs > 0, `${r.target} ran no input`);
  const findings = reports.flatMap((r) => r.findings);
  assert.deepEqual(findings, [], JSON.stringify(findings, null, 2));
});

Deno.test("fuzz: every target accepts its own seeds (so mutations start from valid input)", async () => {
  for (const target of allTargets) {
    for (const [i, seed] of (await target.seeds()).entries()) {
      try {
        await target.run(seed, new Prng(i));
      } catch (e) {
        assert.fail(`${target.name} refused seed ${i}: ${e}`);
      }
    }
  }
});
