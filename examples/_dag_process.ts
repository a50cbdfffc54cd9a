/**
 * `examples/dag_node.ts` as a child process with `--json`: the permissions and flags it is
 * started with, and its JSON events. `dag_demo.ts` and the tests start their nodes with it.
 *
 * @module
 */

import { quicheAddonPath } from "../src/quic/_quiche.ts";
import { readLines } from "./_lines.ts";

const ROOT = new URL("..", import.meta.url);

/** One JSON event line of a DAG node. */
export type DagEvent = Record<string, unknown>;

/** How a `dag_node.ts` child is started. */
export interface DagNodeOptions {
  /** Size of the committee (`--committee`). */
  committee: number;
  /** The node's place in the committee (`--index`). */
  index: number;
  /** Rounds to build (`--rounds`). */
  rounds: number;
  /** Its store (`--data-dir`); the only place it may write. */
  dataDir: string;
  /** How long it may run before it gives up (`--timeout-ms`). */
  timeoutMs: number;
  /**
   * Its UDP port (`--port`).
   *
   * @default {0} any free port
   */
  port?: number;
  /**
   * `HOST:PORT` addresses it dials at start (`--peer`, repeated).
   *
   * @default {[]}
   */
  peers?: string[];
  /**
   * Where its standard error goes.
   *
   * @default {"inherit"}
   */
  stderr?: "inherit" | "null";
}

/** A running `dag_node.ts`. */
export interface DagNodeProcess {
  child: Deno.ChildProcess;
  /** Resolves once its standard output ended (every event delivered). */
  reading: Promise<void>;
}

/**
 * Starts a `dag_node.ts` child; `onEvent` sees each JSON line it prints (other lines are
 * skipped).
 *
 * @param options How it is started.
 * @param onEvent Called with each event, in order.
 * @returns The child and the end of its output.
 */
export function spawnDagNode(
  options: DagNodeOptions,
  onEvent: (event: DagEvent) => void,
): DagNodeProcess {
  const { committee, index, rounds, dataDir, timeoutMs, port = 0, peers = [] } = options;
  const { stderr = "inherit" } = options;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      `--allow-ffi=${quicheAddonPath()}`,
      "--allow-read",
      `--allow-write=${dataDir}`,
      "examples/dag_node.ts",
      ...["--committee", String(committee), "--index", String(index), "--port", String(port)],
      ...peers.flatMap((peer) => ["--peer", peer]),
      ...["--data-dir", dataDir, "--rounds", String(rounds), "--json"],
      ...["--timeout-ms", String(timeoutMs)],
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr,
  }).spawn();
  const reading = (async () => {
    for await (const line of readLines(child.stdout)) {
      let event: DagEvent;
      try {
        event = JSON.parse(line);
      } catch {
        continue; // not a JSON line
      }
      onEvent(event);
    }
  })();
  return { child, reading };
}
