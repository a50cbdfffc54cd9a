/**
 * `examples/quic_node.ts` as a child process: the permissions it runs with (loopback, the quiche
 * addon, its data directory). `demo.ts` and the tests' `NodeProcess` start their nodes with it.
 *
 * @module
 */

import { quicheAddonPath } from "../src/quic/_quiche.ts";

const ROOT = new URL("..", import.meta.url);

/** How a `quic_node.ts` child is started. */
export interface QuicNodeSpawnOptions {
  /**
   * A directory the node may read and write (for `--data-dir`).
   *
   * @default {undefined} no file access
   */
  dataDir?: string;
  /**
   * Variables added to the node's environment (e.g. `OTEL_*`).
   *
   * @default {{}}
   */
  env?: Record<string, string>;
}

/**
 * Starts `quic_node.ts` with `args` on loopback; its standard output and error are piped, its
 * standard input is closed.
 *
 * @param args Flags of `quic_node.ts`.
 * @param options Files and environment.
 * @returns The child.
 */
export function spawnQuicNode(
  args: readonly string[],
  options: QuicNodeSpawnOptions = {},
): Deno.ChildProcess {
  const { dataDir, env = {} } = options;
  const files = dataDir === undefined
    ? []
    : [`--allow-read=${dataDir}`, `--allow-write=${dataDir}`];
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      `--allow-ffi=${quicheAddonPath()}`,
      ...files,
      "examples/quic_node.ts",
      ...args,
    ],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
