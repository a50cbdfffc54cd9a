/**
 * A node with `--status` and peers that broadcast to it, all `examples/quic_node.ts`
 * processes, and headless Chromium pointed at its status page.
 *
 * @module
 */
import { readLines } from "../_lines.ts";
import { quicheAddonPath } from "../../src/quic/_quiche.ts";

const ROOT = new URL("../../", import.meta.url);

/** One JSON event line of a node. */
// deno-lint-ignore no-explicit-any
export type NodeLine = Record<string, any> & { event: string };

/** A `quic_node.ts --json` child and its events. */
export class NodeChild implements AsyncDisposable {
  readonly events: NodeLine[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #changes = new EventTarget();
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<string>;
  #exited = false;

  constructor(args: string[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        `--allow-ffi=${quicheAddonPath()}`,
        "examples/quic_node.ts",
        "--json",
        "--port",
        "0",
        "--listen",
        "127.0.0.1",
        "--no-mdns",
        "--stats-interval",
        "0",
        "--keepalive",
        "1",
        ...args,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#stderr = new Response(child.stderr).text();
    this.#reading = (async () => {
      for await (const line of readLines(child.stdout)) {
        this.events.push(JSON.parse(line));
        this.#changes.dispatchEvent(new Event("change"));
      }
    })().finally(() => {
      this.#exited = true;
      this.#changes.dispatchEvent(new Event("change"));
    });
  }

  /** The first event named `name`, once there is one. */
  event(name: string, ms = 30_000): Promise<NodeLine> {
    return this.until(name, () => this.events.find((e) => e.event === name), ms);
  }

  /** Resolves with `ready()`'s first truthy answer, re-checked at each event; bounded. */
  until<T>(what: string, ready: () => T | undefined | false, ms: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = ready();
        if (value) {
          done();
          resolve(value);
        } else if (this.#exited) {
          done();
          this.#stderr.then((err) => reject(new Error(`node exited before ${what}: ${err}`)));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`not ${what} within ${ms} ms`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.#changes.removeEventListener("change", check);
      };
      this.#changes.addEventListener("change", check);
      check();
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // exited already
    }
    await this.#child.status;
    await this.#reading.catch(() => {});
    await this.#stderr;
  }
}

/** A node with `--status` on a free loopback port, and `count` peers broadcasting to it. */
export async function statusLab(count: number): Promise<
  AsyncDisposable & { url: string; hub: NodeChild; peers: NodeChild[] }
> {
  const hub = new NodeChild(["--status", "127.0.0.1:0"]);
  const peers: NodeChild[] = [];
  const dispose = async () => {
    await Promise.all(peers.map((p) => p[Symbol.asyncDispose]()));
    await hub[Symbol.asyncDispose]();
  };
  try {
    const address = (await hub.event("listening")).address as string;
    const url = (await hub.event("status")).url as string;
    for (let i = 0; i < count; i++) {
      peers.push(
        new NodeChild([
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
