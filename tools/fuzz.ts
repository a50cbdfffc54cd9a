/**
 * The long fuzz campaign: every decoder of untrusted bytes (tests/fuzz/) for `--minutes`,
 * shared equally between the targets, then a JSON and a markdown report with the inputs per
 * target and each finding with its seed, iteration and input as hex. Exits 1 when there are
 * findings.
 *
 * Run: `deno task fuzz --minutes 10 [--seed 1234] [--targets dht,nat/stun] [--out DIR]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { TargetReport } from "../tests/fuzz/_campaign.ts";
import { superviseCampaign } from "../tests/fuzz/_supervisor.ts";
import { allTargets } from "../tests/fuzz/_targets.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "1" },
    seed: { type: "string" },
    targets: { type: "string" },
    out: { type: "string", default: "bench/results" },
  },
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  throw new RangeError(`'--minutes' must be positive: current value is ${values.minutes}`);
}
const seed = values.seed === undefined ? Date.now() >>> 0 : Number(values.seed) >>> 0;
const filters = values.targets?.split(",").filter((f) => f.length > 0) ?? [];
const names = allTargets.map((t) => t.name).filter((n) =>
  filters.length === 0 || filters.some((f) => n.includes(f))
);
if (names.length === 0) throw new RangeError(`No target matches '--targets ${values.targets}'`);

const durationMs = Math.floor((minutes * 60_000) / names.length);
console.log(`fuzz: seed ${seed}, ${names.length} targets, ${durationMs} ms each`);
const started = new Date();
const reports = await superviseCampaign({
  seed,
  names,
  durationMs,
  onReport: (r) =>
    console.log(
      `${r.target.padEnd(28)} ${
        String(r.inputs).padStart(9)
      } inputs  ${r.findings.length} findings`,
    ),
});

const findings = reports.flatMap((r) => r.findings);
const stamp = started.toISOString().slice(0, 16).replace(":", "");
const base = `${values.out}/fuzz-${stamp}`;
await Deno.mkdir(values.out, { recursive: true });
const summary = {
  seed,
  started: started.toISOString(),
  minutes,
  deno: Deno.version.deno,
  inputs: reports.reduce((n, r) => n + r.inputs, 0),
  targets: reports.map(({ findings, ...rest }) => ({ ...rest, findings: findings.length })),
  findings,
};
await Deno.writeTextFile(`${base}.json`, JSON.stringify(summary, null, 2) + "\n");
await Deno.writeTextFile(`${base}.md`, markdown(reports));
console.log(`${summary.inputs} inputs, ${findings.length} findings; wrote ${base}.json and .md`);
Deno.exit(findings.length === 0 ? 0 : 1);

function markdown(reports: TargetReport[]): string {
  const lines = [
    `# Fuzz campaign ${started.toISOString()}`,
    "",
    `Seed ${seed}, ${minutes} min, Deno ${Deno.version.deno}. Replay: ` +
    `\`deno task fuzz --minutes ${minutes} --seed ${seed}${
      values.targets === undefined ? "" : ` --targets ${values.targets}`
    }\` (same inputs in the same order; ` +
    "how many fit in the time varies).",
    "",
    "| target | inputs | refused (typed error) | slowest ms | heap growth KiB | findings |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...reports.map((r) =>
      `| ${r.target} | ${r.inputs} | ${r.refused} | ${r.maxMs} | ${
        Math.round(r.heapGrowthBytes / 1024)
      } | ${r.findings.length} |`
    ),
    "",
    "## Findings",
    "",
  ];
  if (findings.length === 0) lines.push("None.");
  for (const f of findings) {
    lines.push(
      `- **${f.target}** ${f.kind}, iteration ${f.iteration}: ${f.detail}`,
      `  - where: ${f.where ?? "-"}`,
      `  - input (${f.inputHex.length / 2} bytes): \`${f.inputHex}\``,
    );
  }
  return lines.join("\n") + "\n";
}
