/**
 * `examples/quic_node.ts` as a child process with `--json`: its events, the peers it holds, and
 * waiting for a condition on them (re-checked at each event, bounded in time).
 *
 * @module
 */

import { readLines } from "../_lines.ts";
import { quicheAddonPath } from "../../src/quic/_quiche.ts";

const ROOT = new URL("../../", import.meta.url);
const PERMISSIONS = ["--allow-net=127.0.0.1", `--allow-ffi=${quicheAddonPath()}`];

/** One JSON event line of the node. */
// deno-lint-ignore no-explicit-any
export type NodeLine = Record<string, any> & { event: string };

/** A running `quic_node.ts`. */
export class NodeProcess implements AsyncDisposable {
  readonly name: string;
  readonly events: NodeLine[] = [];
  /** Connected peers by id, with the `connected` event that reported each. */
  readonly peers = new Map<string, NodeLine>();
  readonly #child: Deno.ChildProcess;
  readonly #changes = new EventTarget();
  readonly #reading: Promise<void>;
  #stderr = "";
  #exited = false;
  readonly status: Promise<Deno.CommandStatus>;

  /**
   * Starts a node.
   *
   * @param name For messages.
   * @param args Flags of `quic_node.ts` (`--json` is added).
   * @param dataDir A directory the node may read and write (for `--data-dir`).
   */
  constructor(name: string, args: string[], dataDir?: string) {
    this.name = name;
    const files = dataDir === undefined
      ? []
      : [`--allow-read=${dataDir}`, `--allow-write=${dataDir}`];
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, ...files, "examples/quic_node.ts", "--json", ...args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.status = child.status.finally(() => {
      this.#exited = true;
      this.#changed();
    });
    (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += text;
      }
    })();
    this.#reading = (async () => {
      for await (const line of readLines(child.stdout)) {
        const event = JSON.parse(line) as NodeLine;
        this.events.push(event);
        if (event.event === "connected") this.peers.set(event.peerId, event);
        if (event.event === "disconnected") this.peers.delete(event.peerId);
        this.#changed();
      }
    })();
  }

  /** The `listening` event's address. */
  get address(): string {
    return this.events.find((e) => e.event === "listening")!.address;
  }

  /** The node's peer id. */
  get peerId(): string {
    return this.events.find((e) => e.event === "listening")!.peerId;
  }

  /**
   * Resolves once `ready()` holds; rejects when the node exits first or `ms` pass.
   *
   * @param what For the error message.
   * @param ready Checked now and at each event.
   * @param ms Upper bound.
   */
  until(what: string, ready: () => boolean, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (ready()) done(undefined);
        else if (this.#exited) {
          done(new Error(`${this.name} exited before ${what}:\n${this.#stderr}`));
        }
      };
      const timer = setTimeout(
        () => done(new Error(`${this.name}: not ${what} within ${ms} ms`)),
        ms,
      );
      const done = (error: Error | undefined) => {
        clearTimeout(timer);
        this.#changes.removeEventListener("change", check);
        if (error === undefined) resolve();
        else reject(error);
      };
      this.#changes.addEventListener("change", check);
      check();
    });
  }

  /** Resolves once the node listens. */
  listening(ms = 30_000): Promise<void> {
    return this.until("listening", () => this.events.some((e) => e.event === "listening"), ms);
  }

  /**
   * Kills the node.
   *
   * @param signal `SIGTERM` lets it close its connections; `SIGKILL` does not.
   */
  async kill(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch (e) {
        if (!(e instanceof TypeError)) throw e; // it exited meanwhile
      }
    }
    await this.status;
    await this.#reading.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("SIGKILL");
  }

  #changed(): void {
    this.#changes.dispatchEvent(new Event("change"));
  }
}
