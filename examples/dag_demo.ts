/**
 * A cluster of `examples/dag_node.ts` processes on loopback: `--nodes` nodes (node i dials
 * nodes i-1, i-2 and i-3) build a DAG of `--rounds` rounds; with `--kill I`, node I is
 * killed (SIGKILL) once it created round `--kill-at` and restarted with its data directory.
 * Prints a summary: rounds, vertices per node, whether every node's DAG is the same (per-round
 * digests), vertex propagation p50/p99 and the vertex rate; `--json` prints it as one JSON
 * line. Exits 0 when all DAGs are equal, 1 otherwise. Children are killed and waited on in
 * every case; their data directories live in a temporary directory removed at the end.
 *
 * Run: `deno task dag-demo`, or
 * `deno run --allow-run --allow-read --allow-write --allow-env --allow-net=127.0.0.1 examples/dag_demo.ts
 * [--nodes 4] [--rounds 10] [--kill 1] [--kill-at 4] [--json]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type DagEvent, spawnDagNode } from "./_dag_process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "4" },
    rounds: { type: "string", default: "10" },
    kill: { type: "string" },
    "kill-at": { type: "string" },
    json: { type: "boolean", default: false },
    "timeout-ms": { type: "string", default: "300000" },
  },
});
const nodes = Number(values.nodes);
const rounds = Number(values.rounds);
const victim = values.kill === undefined ? undefined : Number(values.kill);
const killAt = Number(values["kill-at"] ?? Math.ceil(rounds / 2));
const timeoutMs = Number(values["timeout-ms"]);

/** What one node reported. */
interface NodeReport {
  digests: Map<number, string>;
  summary?: Record<string, number | null>;
  restored: number;
  refused: number;
  deferred: number;
  errors: string[];
}

const dir = await Deno.makeTempDir({ prefix: "dag-demo-" });
const children = new Set<Deno.ChildProcess>();
const reports: NodeReport[] = Array.from({ length: nodes }, () => ({
  digests: new Map(),
  restored: 0,
  refused: 0,
  deferred: 0,
  errors: [],
}));

/** Free UDP ports on loopback (bound and released; nothing else here takes them meanwhile). */
function freePorts(count: number): number[] {
  const sockets = Array.from(
    { length: count },
    () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
  );
  const ports = sockets.map((s) => (s.addr as Deno.NetAddr).port);
  for (const s of sockets) s.close();
  return ports;
}

const ports = freePorts(nodes);

/** Starts node `i`; `onEvent` sees each JSON line it prints; `exit` resolves with its code. */
function run(
  i: number,
  onEvent: (event: DagEvent) => void,
): { child: Deno.ChildProcess; exit: Promise<number> } {
  const { child, reading } = spawnDagNode({
    committee: nodes,
    index: i,
    rounds,
    dataDir: `${dir}/node${i}`,
    timeoutMs,
    port: ports[i],
    peers: [1, 2, 3].filter((d) => i - d >= 0).map((d) => `127.0.0.1:${ports[i - d]}`),
  }, onEvent);
  children.add(child);
  const status = child.status.finally(() => children.delete(child));
  const exit = Promise.all([status, reading]).then(([s]) => s.code);
  return { child, exit };
}

function record(i: number, event: DagEvent): void {
  const r = reports[i];
  if (event.event === "dag") r.digests.set(event.round as number, event.digest as string);
  if (event.event === "summary") r.summary = event as Record<string, number | null>;
  if (event.event === "listening") r.restored = event.restored as number;
  if (event.event === "refused") r.refused++;
  if (event.event === "deferred") r.deferred++;
  if (event.event === "error") r.errors.push(String(event.message));
}

const started = performance.now();
const timer = setTimeout(() => {
  for (const child of children) child.kill("SIGKILL");
}, timeoutMs + 30_000);
let codes: number[] = [];
try {
  codes = await Promise.all(
    Array.from({ length: nodes }, async (_, i) => {
      if (i !== victim) return await run(i, (e) => record(i, e)).exit;
      let killed = false;
      const first = run(i, (e) => {
        if (killed || e.event !== "created" || (e.round as number) < killAt) return;
        killed = true;
        first.child.kill("SIGKILL");
      });
      const code = await first.exit;
      if (!killed) return code;
      return await run(i, (e) => record(i, e)).exit;
    }),
  );
} finally {
  clearTimeout(timer);
  for (const child of children) child.kill("SIGKILL");
  await Promise.all([...children].map((c) => c.status));
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

const reference = reports[0].digests;
const equal = reports.every((r) =>
  r.digests.size === rounds &&
  [...reference].every(([round, digest]) => r.digests.get(round) === digest)
);
const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1] ?? null;
const summary = {
  event: "dag-demo",
  nodes,
  rounds,
  killed: victim ?? null,
  restoredAfterRestart: victim === undefined ? null : reports[victim].restored,
  verticesPerNode: reports.map((r) => r.summary?.vertices ?? null),
  allEqual: equal,
  exitCodes: codes,
  refused: reports.reduce((n, r) => n + r.refused, 0),
  deferred: reports.reduce((n, r) => n + r.deferred, 0),
  propagationP50Ms: median(reports.flatMap((r) => r.summary?.propagationP50Ms ?? [])),
  propagationP99Ms: median(reports.flatMap((r) => r.summary?.propagationP99Ms ?? [])),
  verticesPerSecond: median(reports.flatMap((r) => r.summary?.verticesPerSecond ?? [])),
  seconds: Math.round((performance.now() - started) / 100) / 10,
  errors: reports.flatMap((r, i) => r.errors.map((e) => `node ${i}: ${e}`)),
};
if (values.json) console.log(JSON.stringify(summary));
else {
  console.log(
    `${nodes} nodes, ${rounds} rounds in ${summary.seconds} s` +
      (victim === undefined
        ? ""
        : `; node ${victim} killed at round ${killAt}, restarted with ${summary.restoredAfterRestart} stored vertices`),
  );
  console.log(`vertices per node: ${summary.verticesPerNode.join(", ")}`);
  console.log(`all DAGs equal: ${equal ? "yes" : "NO"} (per-round digests of ${rounds} rounds)`);
  console.log(
    `vertex propagation p50 ${summary.propagationP50Ms} ms, p99 ${summary.propagationP99Ms} ms ` +
      `(medians over nodes); ${summary.verticesPerSecond?.toFixed(1)} vertices/s stored per node`,
  );
  for (const e of summary.errors) console.log(e);
}
Deno.exit(equal && codes.every((c) => c === 0) ? 0 : 1);
