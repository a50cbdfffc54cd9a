/**
 * `examples/quic_node.ts` as a child process: its output lines (parsed as events with `--json`),
 * the peers it holds, and waiting for a condition on them (re-checked at each line, bounded in
 * time).
 *
 * @module
 */

import { readLines } from "../_lines.ts";
import { type QuicNodeSpawnOptions, spawnQuicNode } from "../../examples/_quic_node_process.ts";

/** Flags of a node on a free loopback port, without mDNS or periodic stats lines. */
export const LOOPBACK_FLAGS: readonly string[] = [
  "--listen",
  "127.0.0.1",
  "--port",
  "0",
  "--no-mdns",
  "--stats-interval",
  "0",
];

/** One JSON event line of the node. */
// deno-lint-ignore no-explicit-any
export type NodeLine = Record<string, any> & { event: string };

/** How a {@linkcode NodeProcess} is started. */
export interface NodeProcessOptions extends QuicNodeSpawnOptions {
  /**
   * Adds `--json` and parses each line into `events`; `false` keeps the human output in `lines`.
   *
   * @default {true}
   */
  json?: boolean;
}

/** A running `quic_node.ts`. */
export class NodeProcess implements AsyncDisposable {
  readonly name: string;
  /** Every line of its standard output, in order. */
  readonly lines: string[] = [];
  /** Its JSON events (with `json`). */
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
   * @param args Flags of `quic_node.ts` (`--json` is added unless `json` is `false`).
   * @param options How it is started.
   */
  constructor(name: string, args: readonly string[], options: NodeProcessOptions = {}) {
    const { json = true } = options;
    this.name = name;
    const child = spawnQuicNode(json ? ["--json", ...args] : args, options);
    this.#child = child;
    this.status = child.status;
    const stderr = (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += text;
      }
    })();
    this.#reading = (async () => {
      for await (const line of readLines(child.stdout)) {
        this.lines.push(line);
        if (json) this.#parse(line);
        this.#changed();
      }
    })();
    // Exited once its last line is read too: a condition its last lines meet still holds.
    Promise.allSettled([child.status, stderr, this.#reading]).then(() => {
      this.#exited = true;
      this.#changed();
    });
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
   * Resolves with `ready()`'s first truthy answer; rejects when the node exits first or `ms`
   * pass.
   *
   * @param what For the error message.
   * @param ready Checked now and at each line.
   * @param ms Upper bound.
   */
  until<T>(what: string, ready: () => T | undefined | false, ms: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = ready();
        if (value) done(undefined, value);
        else if (this.#exited) {
          done(new Error(`${this.name} exited before ${what}:\n${this.#stderr}`));
        }
      };
      const timer = setTimeout(
        () => done(new Error(`${this.name}: not ${what} within ${ms} ms`)),
        ms,
      );
      const done = (error: Error | undefined, value?: T) => {
        clearTimeout(timer);
        this.#changes.removeEventListener("change", check);
        if (error === undefined) resolve(value!);
        else reject(error);
      };
      this.#changes.addEventListener("change", check);
      check();
    });
  }

  /** Resolves with the first event named `name`, once there is one. */
  event(name: string, ms = 30_000): Promise<NodeLine> {
    return this.until(name, () => this.events.find((e) => e.event === name), ms);
  }

  /** Resolves with the `listening` event once the node listens. */
  listening(ms = 30_000): Promise<NodeLine> {
    return this.event("listening", ms);
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

  #parse(line: string): void {
    const event = JSON.parse(line) as NodeLine;
    this.events.push(event);
    if (event.event === "connected") this.peers.set(event.peerId, event);
    if (event.event === "disconnected") this.peers.delete(event.peerId);
  }

  #changed(): void {
    this.#changes.dispatchEvent(new Event("change"));
  }
}
