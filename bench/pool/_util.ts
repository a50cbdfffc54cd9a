// Helpers of the pool benchmarks: transports on loopback with any config, percentiles, and a
// tiny report printer. These are scripts run with `deno run`, not timed unit tests.
import { Identity, type NetworkConfig, QuicTransport } from "../../mod.ts";

/** A bound transport on 127.0.0.1 with a free port and the given config. */
export async function node(config: NetworkConfig = {}): Promise<QuicTransport> {
  const transport = new QuicTransport({
    identity: Identity.generate(),
    config: { listenAddr: "127.0.0.1", quicPort: 0, ...config },
  });
  await transport.bindAndListen();
  return transport;
}

/** `HOST:PORT` of a bound transport. */
export function addr(t: QuicTransport): string {
  return `127.0.0.1:${t.localAddr.port}`;
}

/** Takes every message a node receives and drops it. */
export function drain(transport: QuicTransport): Promise<void> {
  return (async () => {
    for await (const _ of transport.messages());
  })();
}

/** The `p`-th percentile (nearest rank) of the samples. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** p50/p99/max of latency samples in milliseconds, rounded to 0.01 ms. */
export function summary(samples: number[]): { n: number; p50: number; p99: number; max: number } {
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: samples.length,
    p50: r(percentile(samples, 50)),
    p99: r(percentile(samples, 99)),
    max: r(Math.max(...samples)),
  };
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A benchmark node or attacker in a child process (see `_child.ts`). */
export interface Child {
  /** The child's port and peer id (node mode only). */
  port: number;
  peerId: string;
  /** Everything the child printed after `READY`. */
  output: Promise<string>;
  /** Closes the child's stdin and waits for it to exit. */
  close(): Promise<void>;
}

/** Starts `_child.ts` with a JSON argument; in node mode waits for its `READY` line. */
export async function child(options: Record<string, unknown>): Promise<Child> {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./_child.ts", import.meta.url).pathname, JSON.stringify(options)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let port = 0;
  let peerId = "";
  if (options.attack === undefined) {
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("child exited before READY");
      buffered += value;
    }
    const [line, ...rest] = buffered.split("\n");
    [, port, peerId] = line.split(" ").map((x, i) => (i === 1 ? Number(x) : x)) as [
      string,
      number,
      string,
    ];
    buffered = rest.join("\n");
  }
  const output = (async () => {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) return buffered;
      buffered += value;
    }
  })();
  return {
    port,
    peerId,
    output,
    async close() {
      await process.stdin.close().catch(() => {});
      await process.status;
      await output;
    },
  };
}
