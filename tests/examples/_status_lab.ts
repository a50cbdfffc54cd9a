/**
 * A node with `--status` and peers that broadcast to it, all `examples/quic_node.ts`
 * processes, and headless Chromium pointed at its status page.
 *
 * @module
 */
import { LOOPBACK_FLAGS, NodeProcess } from "../node/_node_process.ts";

/** Loopback nodes that ping their peers every second (RTT figures for the page). */
const FLAGS = [...LOOPBACK_FLAGS, "--keepalive", "1"];

/** A node with `--status` on a free loopback port, and `count` peers broadcasting to it. */
export async function statusLab(count: number): Promise<
  AsyncDisposable & { url: string; hub: NodeProcess; peers: NodeProcess[] }
> {
  const hub = new NodeProcess("hub", [...FLAGS, "--status", "127.0.0.1:0"]);
  const peers: NodeProcess[] = [];
  const dispose = async () => {
    await Promise.all(peers.map((p) => p[Symbol.asyncDispose]()));
    await hub[Symbol.asyncDispose]();
  };
  try {
    const address = (await hub.listening()).address as string;
    const url = (await hub.event("status")).url as string;
    for (let i = 0; i < count; i++) {
      peers.push(
        new NodeProcess(`peer ${i}`, [
          ...FLAGS,
          "--peer",
          address,
          "--wait-peers",
          "1",
          "--broadcast",
          "1000",
          "--interval",
          String(40 + 30 * i),
          "--size",
          String(256 << i),
        ]),
      );
    }
    // Each peer connected, and a few seconds of traffic for the charts.
    await hub.until(
      `${count} peers with traffic`,
      () => {
        const from = new Map<string, number>();
        for (const e of hub.events) {
          if (e.event === "message") from.set(e.from, (from.get(e.from) ?? 0) + 1);
        }
        return from.size === count && [...from.values()].every((n) => n >= 40);
      },
      60_000,
    );
    return { url, hub, peers, [Symbol.asyncDispose]: dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/** Runs headless Chromium with the flags a throwaway profile needs, plus `args`. */
export async function chromium(args: string[]): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "status-chromium-" });
  try {
    const { code, stdout, stderr } = await new Deno.Command("chromium", {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const out = new TextDecoder().decode(stdout);
    if (code !== 0) {
      throw new Error(`chromium exited with ${code}: ${new TextDecoder().decode(stderr)}`);
    }
    return out;
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
}
