/**
 * A two-namespace link for mDNS tests, so nothing is ever sent on the host network:
 *
 * ```
 * nsA: lo, vA 10.77.0.1/24 ===veth=== vB 10.77.0.2/24, lo :nsB
 * ```
 *
 * Both ends have multicast on and a route for 224.0.0.0/4. Every process the lab starts is a
 * child of the test, killed and waited on in `close()` (PID 1 here does not reap orphans), and
 * the namespaces get names unique to the run. Waits are driven by the children's output lines
 * and bounded by a deadline.
 *
 * @module
 */

import { PeerId } from "../../src/identity/peer_id.ts";
import { deleteNamespace, runRoot, skipReason } from "../_netlab.ts";

/** Addresses of the lab's two ends. */
export const ADDR = Object.freeze({ a: "10.77.0.1", b: "10.77.0.2" });

const DENO = Deno.execPath();
const NODE_SCRIPT = new URL("./_mdns_node.ts", import.meta.url).pathname;
const GARBAGE_SCRIPT = new URL("./_mdns_garbage.ts", import.meta.url).pathname;
const REFLECT_SCRIPT = new URL("./_mdns_reflect.ts", import.meta.url).pathname;
/** An address of B's end outside the link's subnet (TEST-NET-1), routed back from A. */
const OFF_LINK_ADDRESS = "192.0.2.2";
const TOOLS = ["ip", "avahi-daemon", "avahi-browse", "avahi-publish", "dbus-daemon", "dbus-send"];
const AVAHI_PID_FILE = "/run/avahi-daemon/pid";
/** Where `dbus-daemon --system` listens (Debian's system.conf); it leaves the file behind. */
const SYSTEM_BUS_DIR = "/run/dbus";
const SYSTEM_BUS_SOCKET = `${SYSTEM_BUS_DIR}/system_bus_socket`;

let labCounter = 0;

/**
 * Why the namespace tests cannot run here, or `undefined` when they can.
 *
 * @returns The reason to skip.
 */
export function labSkip(): string | undefined {
  if (Deno.build.os !== "linux") return `network namespaces need Linux, this is ${Deno.build.os}`;
  return skipReason({ root: true, tools: TOOLS });
}

/**
 * Why Avahi cannot be started here (another avahi-daemon owns the bus name and PID file), or
 * `undefined`.
 *
 * @returns The reason to skip.
 */
export function avahiSkip(): string | undefined {
  try {
    const pid = Deno.readTextFileSync(AVAHI_PID_FILE).trim();
    const state = Deno.readTextFileSync(`/proc/${pid}/stat`).split(" ")[2];
    if (state !== "Z") {
      return `another avahi-daemon (PID ${pid}) is running; only one can own the D-Bus name`;
    }
  } catch {
    // No PID file, or its process is gone.
  }
  return undefined;
}

/** A child process whose output is collected line by line. */
export class LabChild {
  /** Every stdout line so far. */
  readonly lines: string[] = [];
  /** Every stderr line so far. */
  readonly errLines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #waiters = new Set<() => void>();
  readonly #pumps: Promise<void>[];
  #exited = false;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;

  constructor(readonly label: string, cmd: string, args: string[], stdin: boolean) {
    this.#child = new Deno.Command(cmd, {
      args,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = stdin ? this.#child.stdin.getWriter() : undefined;
    this.#pumps = [
      this.#pump(this.#child.stdout, this.lines),
      this.#pump(this.#child.stderr, this.errLines),
    ];
    this.status = this.#child.status.then((s) => {
      this.#exited = true;
      this.#wake();
      return s;
    });
  }

  /** Writes one command line to the child's stdin. */
  async send(line: string): Promise<void> {
    await this.#writer!.write(new TextEncoder().encode(line + "\n"));
  }

  /**
   * Waits for a stdout or stderr line that matches, scanning from line `from` of stdout.
   * Rejects when the child exits first or `timeoutMs` passes, with its output for the report.
   */
  async waitLine(
    match: (line: string) => boolean,
    timeoutMs: number,
    what: string,
    { from = 0, stderr = false }: { from?: number; stderr?: boolean } = {},
  ): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const source = stderr ? this.errLines : this.lines;
    let i = stderr ? 0 : from;
    while (true) {
      for (; i < source.length; i++) if (match(source[i])) return source[i];
      if (this.#exited) await Promise.all(this.#pumps);
      if (this.#exited && i >= source.length) {
        throw new Error(`${this.label} exited before ${what}:\n${this.dump()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${this.label}: no ${what} within ${timeoutMs} ms:\n${this.dump()}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.add(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Waits for a JSON line whose fields include all of `fields`, and returns it parsed. */
  async waitEvent(
    fields: Record<string, unknown>,
    timeoutMs: number,
    from = 0,
  ): Promise<Record<string, unknown>> {
    const line = await this.waitLine(
      (l) => {
        const o = parseJson(l);
        return o !== undefined && Object.entries(fields).every(([k, v]) => o[k] === v);
      },
      timeoutMs,
      JSON.stringify(fields),
      { from },
    );
    return parseJson(line)!;
  }

  /** Waits for the child to exit by itself; rejects (without killing it) after `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        this.status,
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () =>
              reject(
                new Error(`${this.label} did not exit within ${timeoutMs} ms:\n${this.dump()}`),
              ),
            timeoutMs,
          )
        ),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stdout and stderr, for failure messages. */
  dump(): string {
    return `--- stdout\n${this.lines.join("\n")}\n--- stderr\n${this.errLines.join("\n")}`;
  }

  /** Terminates the child (SIGTERM, then SIGKILL after 3 s) and waits for it. */
  async stop(): Promise<Deno.CommandStatus> {
    await this.#writer?.close().catch(() => {});
    if (!this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = await Promise.race([
        this.status.then(() => false),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), 3000)),
      ]);
      clearTimeout(timer);
      if (killed) {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
    const status = await this.status;
    await Promise.all(this.#pumps);
    return status;
  }

  async #pump(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        into.push(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        this.#wake();
      }
    }
    if (buffered) into.push(buffered);
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }
}

/** The lab: two namespaces joined by a veth pair, and the children started in them. */
export class MdnsLab {
  readonly #children: LabChild[] = [];
  #tmp: string | undefined;
  /**
   * What the lab's own system bus made, removed in close(): its socket (known by inode, so a
   * socket another bus made after ours is left alone) and the directory if it was missing.
   */
  #bus: { socketInode: number | null; madeDir: boolean } | undefined;

  private constructor(
    readonly nsA: string,
    readonly nsB: string,
    readonly devA: string,
    readonly devB: string,
  ) {}

  /** Creates the namespaces and the link; on failure removes whatever was made. */
  static async create(): Promise<MdnsLab> {
    const id = `${Deno.pid.toString(36)}${(labCounter++).toString(36)}`;
    const vA = `vma${id}`.slice(0, 15);
    const vB = `vmb${id}`.slice(0, 15);
    const lab = new MdnsLab(`mdnsA-${id}`, `mdnsB-${id}`, vA, vB);
    try {
      await ip("netns", "add", lab.nsA);
      await ip("netns", "add", lab.nsB);
      await ip(
        "link",
        "add",
        vA,
        "netns",
        lab.nsA,
        "type",
        "veth",
        "peer",
        "name",
        vB,
        "netns",
        lab.nsB,
      );
      for (const [ns, dev, addr] of [[lab.nsA, vA, ADDR.a], [lab.nsB, vB, ADDR.b]]) {
        await ip("-n", ns, "link", "set", "lo", "up");
        await ip("-n", ns, "addr", "add", `${addr}/24`, "dev", dev);
        await ip("-n", ns, "link", "set", dev, "multicast", "on", "up");
        await ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev);
      }
      lab.#tmp = await Deno.makeTempDir({ prefix: "mdns-lab-" });
    } catch (e) {
      await lab.close();
      throw e;
    }
    return lab;
  }

  /** Starts a command inside a namespace. */
  spawn(ns: string, label: string, cmd: string[], { stdin = false } = {}): LabChild {
    const child = new LabChild(label, "ip", ["netns", "exec", ns, ...cmd], stdin);
    this.#children.push(child);
    return child;
  }

  /**
   * Starts a Deno script of this folder inside a namespace, allowed only the network, and with
   * `sys` the interface list.
   */
  spawnDeno(
    ns: string,
    label: string,
    script: string,
    args: string[],
    { stdin = true, sys = false }: { stdin?: boolean; sys?: boolean } = {},
  ): LabChild {
    return this.spawn(
      ns,
      label,
      // The service needs nothing more than --allow-net when interfaces are given as addresses.
      [
        DENO,
        "run",
        "--quiet",
        "--allow-net",
        ...(sys ? ["--allow-sys=networkInterfaces"] : []),
        script,
        ...args,
      ],
      { stdin },
    );
  }

  /**
   * Starts one discovery node and waits until it announced itself. With `sys` it may list the
   * interfaces, so it knows its subnet.
   */
  async startNode(
    ns: string,
    peerId: string,
    port: number,
    ttl?: number,
    { sys = false }: { sys?: boolean } = {},
  ): Promise<LabChild> {
    const addr = ns === this.nsA ? ADDR.a : ADDR.b;
    const args = [peerId, String(port), addr, ...(ttl === undefined ? [] : [String(ttl)])];
    const node = this.spawnDeno(ns, `node ${peerId}`, NODE_SCRIPT, args, { sys });
    await node.waitEvent({ event: "ready" }, 20_000);
    return node;
  }

  /** Asks a node for its stats and returns them. */
  async stats(node: LabChild): Promise<Record<string, unknown>> {
    const from = node.lines.length;
    await node.send("stats");
    return await node.waitEvent({ event: "stats" }, 5000, from);
  }

  /**
   * Sends the hostile packets of `_mdns_garbage.ts` from B's end and waits until the sender
   * is done.
   *
   * @returns Its `sent` line: how many packets of each kind (`malformed`, `oversized`,
   * `invalid`) went out.
   * @throws {Error} If the sender did not report or did not exit with 0 (with its output).
   */
  async sendGarbage(): Promise<Record<string, unknown>> {
    const garbage = this.spawnDeno(this.nsB, "garbage", GARBAGE_SCRIPT, [
      ADDR.b,
      testPeerId(9),
    ], { stdin: false });
    const sent = await garbage.waitEvent({ event: "sent" }, 15_000);
    const { code } = await garbage.waitExit(5000);
    if (code !== 0) throw new Error(`the garbage sender exited with ${code}:\n${garbage.dump()}`);
    return sent;
  }

  /**
   * Runs `_mdns_reflect.ts` from B's end against the node at A (see there): it first gives B's
   * end an address outside the link's subnet, with a route back from A.
   *
   * @returns Its `result` line.
   * @throws {Error} If the probe did not report or did not exit with 0 (with its output).
   */
  async probeReflection(peerId: string): Promise<Record<string, unknown>> {
    await ip("-n", this.nsB, "addr", "add", `${OFF_LINK_ADDRESS}/32`, "dev", this.devB);
    await ip("-n", this.nsA, "route", "add", `${OFF_LINK_ADDRESS}/32`, "dev", this.devA);
    const probe = this.spawnDeno(this.nsB, "reflect", REFLECT_SCRIPT, [
      ADDR.a,
      ADDR.b,
      OFF_LINK_ADDRESS,
      peerId,
    ], { stdin: false });
    const result = await probe.waitEvent({ event: "result" }, 15_000);
    const { code } = await probe.waitExit(5000);
    if (code !== 0) throw new Error(`the reflection probe exited with ${code}:\n${probe.dump()}`);
    return result;
  }

  /**
   * Runs `deno test --allow-all` on a test file inside A's namespace, with `MDNS_TEST_ADDR`
   * set to A's address, and waits (at most 60 s) for it to end.
   *
   * @param script Path of the test file.
   * @returns Its exit status, and the run for its output.
   */
  async testInside(script: string): Promise<{ status: Deno.CommandStatus; run: LabChild }> {
    const run = this.spawn(this.nsA, "deno test", [
      "env",
      `MDNS_TEST_ADDR=${ADDR.a}`,
      "NO_COLOR=1",
      DENO,
      "test",
      "--quiet",
      // Reading /proc/net/udp (the leftover-socket check) needs --allow-all in Deno 2.
      "--allow-all",
      script,
    ]);
    return { status: await run.waitExit(60_000), run };
  }

  /**
   * Starts dbus (if no system bus answers) and an avahi-daemon confined to the veth of `ns`,
   * and waits until it reports startup complete.
   */
  async startAvahi(ns: string): Promise<LabChild> {
    if (!(await busAnswers())) {
      this.#bus = { socketInode: null, madeDir: (await inodeOf(SYSTEM_BUS_DIR)) === null };
      await Deno.mkdir(SYSTEM_BUS_DIR, { recursive: true });
      const bus = this.spawn(ns, "dbus-daemon", [
        "dbus-daemon",
        "--system",
        "--nofork",
        "--nopidfile",
        "--print-address",
      ]);
      await bus.waitLine((l) => l.startsWith("unix:"), 10_000, "bus address");
      this.#bus.socketInode = await inodeOf(SYSTEM_BUS_SOCKET);
    }
    const conf = `${this.#tmp}/avahi-${ns}.conf`;
    await Deno.writeTextFile(
      conf,
      [
        "[server]",
        "use-ipv4=yes",
        "use-ipv6=no",
        `allow-interfaces=${ns === this.nsA ? this.devA : this.devB}`,
        "ratelimit-interval-usec=1000000",
        "ratelimit-burst=1000",
        "[wide-area]",
        "enable-wide-area=no",
        "[publish]",
        "publish-hinfo=no",
        "publish-workstation=no",
        "",
      ].join("\n"),
    );
    const avahi = this.spawn(ns, "avahi-daemon", [
      "avahi-daemon",
      "--no-drop-root",
      "--no-chroot",
      "--no-rlimits",
      "-f",
      conf,
    ]);
    await avahi.waitLine((l) => l.includes("Server startup complete"), 15_000, "avahi startup", {
      stderr: true,
    });
    return avahi;
  }

  /**
   * Stops every child (last started first), then removes the namespaces and files, and the
   * system bus socket and directory if the lab's own bus made them: a socket left behind
   * refuses connections, so the next user of the system bus would fail.
   */
  async close(): Promise<void> {
    for (const child of this.#children.reverse()) await child.stop();
    this.#children.length = 0;
    for (const ns of [this.nsA, this.nsB]) await deleteNamespace(ns);
    if (this.#tmp) await Deno.remove(this.#tmp, { recursive: true }).catch(() => {});
    const bus = this.#bus;
    this.#bus = undefined;
    if (bus?.socketInode != null && (await inodeOf(SYSTEM_BUS_SOCKET)) === bus.socketInode) {
      await Deno.remove(SYSTEM_BUS_SOCKET).catch(() => {});
    }
    // Only if empty: anything in it now is someone else's.
    if (bus?.madeDir) await Deno.remove(SYSTEM_BUS_DIR).catch(() => {});
  }

  /** Closes the lab, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A valid peer id (the project's 52-character form) made from one repeated byte. */
export function testPeerId(n: number): string {
  return PeerId.fromBytes(new Uint8Array(32).fill(n)).toString();
}

/** Parses a JSON object line, or returns `undefined`. */
export function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(line);
    return typeof v === "object" && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}

async function ip(...args: string[]): Promise<void> {
  await runRoot(["ip", ...args]);
}

/** The inode of a path (not following a symlink), or null when nothing is there. */
async function inodeOf(path: string): Promise<number | null> {
  try {
    return (await Deno.lstat(path)).ino;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function busAnswers(): Promise<boolean> {
  const out = await new Deno.Command("dbus-send", {
    args: [
      "--system",
      "--print-reply",
      "--dest=org.freedesktop.DBus",
      "/",
      "org.freedesktop.DBus.GetId",
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}
