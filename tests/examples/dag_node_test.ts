/**
 * The DAG example with real processes: 10 `examples/dag_node.ts` nodes on loopback build 20
 * rounds while one of them is killed (SIGKILL) at round 8 and restarted with its data
 * directory; at the end every node reports the same digest for every round.
 * `examples/dag_demo.ts` runs and cleans up the children; this test runs the demo.
 */
import { assert, assertEquals } from "../_assert.ts";

Deno.test("dag_node: 10 processes, 20 rounds, one killed and restarted: every node has the same DAG", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-run",
      "--allow-read",
      "--allow-write",
      "--allow-net=127.0.0.1",
      "examples/dag_demo.ts",
      ...["--nodes", "10", "--rounds", "20", "--kill", "4", "--kill-at", "8", "--json"],
      ...["--timeout-ms", "400000"],
    ],
    cwd: new URL("../..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const line = stdout.split("\n").find((l) => l.includes('"dag-demo"'));
  assert(line !== undefined, `no summary; stderr:\n${new TextDecoder().decode(output.stderr)}`);
  const summary = JSON.parse(line);
  console.log(line);
  assertEquals(summary.errors, []);
  assertEquals(summary.exitCodes, Array(10).fill(0));
  assert(summary.restoredAfterRestart > 0, "the restarted node continued from its store");
  assertEquals(summary.verticesPerNode, Array(10).fill(200));
  assert(summary.allEqual, "every node reports the same per-round digests");
  // Honest nodes refuse nothing: a vertex whose parents could not be fetched (its sender was
  // killed or restarted) is deferred, not refused, so nobody is penalized or banned for it.
  assertEquals(summary.refused, 0);
  assertEquals(output.code, 0);
});
