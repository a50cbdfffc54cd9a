/**
 * NAT lab for tests: network namespaces `hA - rA(NAT) - pub - rB(NAT) - hB`, coturn as a real STUN/TURN server, and child processes run
 * inside namespaces. Everything a lab starts is a child of the test, killed and waited on
 * teardown; namespaces get unique names per lab so parallel runs and leftovers of crashed
 * runs do not collide.
 *
 * ```
 * hA 10.1.0.2 -- lan|rA|wan 10.200.0.11 --+
 *                                         +-- br0 in pub: 10.200.0.1 + 10.200.0.2 (servers)
 * hB 10.2.0.2 -- lan|rB|wan 10.200.0.12 --+
 * ```
 *
 * @example
 * ```ts ignore
 * Deno.test({ name: "...", ignore: labSkipReason() !== undefined, fn: async () => {
 *   await using lab = await NatLab.create({ modeA: "sym" });
 *   await using turn = await lab.startCoturn();
 *   const r = await lab.run(lab.ns.hA, ["turnutils_natdiscovery", "-m", LAB.server1]);
 * }});
 * ```
 *
 * @module
 */

import { createSocket } from "node:dgram";

/** NAT behaviour of a lab router. */
export type NatMode = "eim" | "sym";

/** Fixed addresses of every lab (namespaces isolate labs from each other). */
export const LAB = Object.freeze({
  /** Primary server address in `pub`. */
  server1: "10.200.0.1",
  /** Second server address in `pub` (RFC 5780 alternate IP). */
  server2: "10.200.0.2",
  /** WAN (public) address of router A. */
  rAWan: "10.200.0.11",
  /** WAN (public) address of router B. */
  rBWan: "10.200.0.12",
  /** Host behind router A. */
  hA: "10.1.0.2",
  /** Host behind router B. */
  hB: "10.2.0.2",
});

/** Exit status and full output of a finished child. */
export interface ChildResult {
  /** Exit code (128 + signal number when killed). */
  code: number;
  /** The signal that ended it, if any. */
  signal: Deno.Signal | null;
  /** Everything it wrote to stdout. */
  stdout: string;
  /** Everything it wrote to stderr. */
  stderr: string;
}

/**
 * Why tests that run real components cannot run here (no `--allow-run`, not root when
 * `root` is asked for, a tool missing), printed once per reason; `undefined` when they can.
 *
 * @param options `root`: needs uid 0 (namespaces, iptables); `tools`: executables on PATH.
 * @returns The reason, or `undefined`.
 */
export function skipReason(
  options: { root?: boolean; tools?: readonly string[] } = {},
): string | undefined {
  const { root = false, tools = [] } = options;
  let reason: string | undefined;
  try {
    if (Deno.permissions.querySync({ name: "run" }).state !== "granted") {
      reason = "no --allow-run permission";
    } else if (root && Deno.uid() !== 0) reason = `not root (uid ${Deno.uid()})`;
    else {
      const missing = tools.filter((t) => findExecutable(t) === undefined);
      if (missing.length > 0) reason = `missing tools: ${missing.join(", ")}`;
    }
  } catch (e) {
    reason = `cannot check permissions/tools: ${String(e)}`;
  }
  if (reason !== undefined && !printedSkips.has(reason)) {
    printedSkips.add(reason);
    console.warn(`[netlab] skipping tests: ${reason}`);
  }
  return reason;
}

/**
 * Why NAT lab tests cannot run here: {@link skipReason} with root and `ip`, `iptables`,
 * `turnserver` plus `tools`.
 *
 * @param tools Extra executables the test needs.
 * @returns The reason, or `undefined`.
 */
export function labSkipReason(tools: readonly string[] = []): string | undefined {
  return skipReason({ root: true, tools: ["ip", "iptables", "turnserver", ...tools] });
}

const printedSkips = new Set<string>();

/** Absolute path of an executable on PATH, or `undefined`. */
export function findExecutable(name: string): string | undefined {
  const path = Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin";
  for (const dir of path.split(":")) {
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * A child process whose stdout and stderr are collected as they arrive. `stop()` (or
 * `await using`) kills it (SIGTERM, then SIGKILL after a grace period) and waits for it.
 */
export class LabProcess implements AsyncDisposable {
  /** The command line, for messages. */
  readonly command: string;
  /** Process id. */
  readonly pid: number;
  /** Resolves when the process exits. */
  readonly status: Promise<Deno.CommandStatus>;
  #stdout = "";
  #stderr = "";
  #exited = false;
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>;
  #wake: () => void = () => {};

  /**
   * Starts `argv` with piped output.
   *
   * @param argv Program and arguments.
   */
  constructor(argv: readonly string[]) {
    this.command = argv.join(" ");
    this.#child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.#pumps = Promise.all([
      this.#pump(this.#child.stdout, (s) => this.#stdout += s),
      this.#pump(this.#child.stderr, (s) => this.#stderr += s),
    ]).then(() => {});
    this.status = this.#child.status.then((s) => {
      this.#exited = true;
      this.#wake();
      return s;
    });
  }

  /** Output so far. */
  get stdout(): string {
    return this.#stdout;
  }

  /** Error output so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /**
   * Waits until `test` holds for the stdout+stderr seen so far, re-checked whenever output
   * arrives.
   *
   * @param test Predicate on all output so far.
   * @param timeoutMs Upper bound.
   * @param what Description for the error message.
   * @throws {Error} On timeout or exit before the predicate held, with the output seen.
   */
  async waitForOutput(
    test: (output: string) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    // Bounded by the deadline: each round waits for new output, exit, or the remaining time.
    while (!test(this.#stdout + this.#stderr)) {
      const left = deadline - performance.now();
      if (this.#exited || left <= 0) {
        throw new Error(
          `${this.#exited ? "Exited" : `Timed out after ${timeoutMs} ms`} before ${what}: ` +
            `${this.command}\n--- output ---\n${(this.#stdout + this.#stderr).slice(-3000)}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /**
   * Waits for the process to exit on its own, killing it after `timeoutMs`.
   *
   * @param timeoutMs Upper bound.
   * @returns Exit status and output.
   */
  async wait(timeoutMs: number): Promise<ChildResult> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((r) =>
      timer = setTimeout(() => r("timeout"), timeoutMs)
    );
    const first = await Promise.race([this.status, timedOut]);
    clearTimeout(timer);
    if (first === "timeout") {
      const result = await this.stop();
      throw new Error(
        `Timed out after ${timeoutMs} ms: ${this.command}\n--- stdout ---\n${result.stdout}` +
          `\n--- stderr ---\n${result.stderr}`,
      );
    }
    await this.#pumps;
    return this.#result(first);
  }

  /**
   * Kills the process if it runs (SIGTERM, SIGKILL after `graceMs`) and waits for it.
   *
   * @param graceMs Time between SIGTERM and SIGKILL.
   * @returns Exit status and output.
   */
  async stop(graceMs = 2000): Promise<ChildResult> {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // exited in between
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<"grace">((r) => timer = setTimeout(() => r("grace"), graceMs));
      const first = await Promise.race([this.status, grace]);
      clearTimeout(timer);
      if (first === "grace") {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // exited in between
        }
      }
    }
    const status = await this.status;
    await this.#pumps;
    return this.#result(status);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #result(status: Deno.CommandStatus): ChildResult {
    return {
      code: status.code,
      signal: status.signal,
      stdout: this.#stdout,
      stderr: this.#stderr,
    };
  }

  async #pump(stream: ReadableStream<Uint8Array>, append: (s: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      append(decoder.decode(chunk, { stream: true }));
      this.#wake();
    }
  }
}

/** Options of {@link startCoturn}. */
export interface CoturnOptions {
  /** Network namespace to run in; `undefined` runs in the test's own namespace. */
  netns?: string;
  /**
   * The listening IPs, the first also the relay IP: two for a STUN server with RFC 5780
   * (OTHER-ADDRESS, CHANGE-REQUEST; coturn also listens on port + 1), or one for TURN alone
   * (RFC 5780 off, one listener).
   */
  listen: readonly [string, string] | readonly [string];
  /** Primary port. 0 picks a free pair on the listening IPs. */
  port?: number;
  /** TURN long-term credentials as `[user, password]`. Default `["test", "secret"]`. */
  user?: readonly [string, string];
  /** Realm. Default `"example.org"`. */
  realm?: string;
  /** How long to wait for its UDP listeners. Default 5000 ms. */
  readyTimeoutMs?: number;
  /** More coturn flags, for example `["--max-allocate-lifetime", "4"]`. Default none. */
  extraArgs?: readonly string[];
}

/** A running coturn: where it listens, and how to stop it. */
export interface Coturn extends AsyncDisposable {
  /** The listening IPs. */
  readonly ips: readonly string[];
  /** Primary port (alternate, with two IPs, is port + 1). */
  readonly port: number;
  /** The process, for its log. */
  readonly process: LabProcess;
  /** Kills coturn, waits for it, removes its temporary files. */
  stop(): Promise<void>;
}

/**
 * Starts coturn as STUN/TURN server, on two IPs (RFC 5780: OTHER-ADDRESS, CHANGE-REQUEST) or
 * on one (TURN alone), and resolves once its UDP listeners (two IPs x two ports, or the one)
 * are open, read from its log.
 *
 * @param options Where and how.
 * @returns The running server.
 * @throws {Error} If coturn did not open its listeners in time (with its log).
 */
export async function startCoturn(options: CoturnOptions): Promise<Coturn> {
  const {
    netns,
    listen,
    user = ["test", "secret"],
    realm = "example.org",
    readyTimeoutMs = 5000,
    extraArgs = [],
  } = options;
  const rfc5780 = listen.length === 2;
  const port = options.port || await freeUdpPortPair(listen);
  const dir = await Deno.makeTempDir({ prefix: "cretoai-coturn-" });
  // A random relay range: concurrent coturns on loopback would otherwise reach for the same.
  const minRelay = 50000 + Math.floor(Math.random() * 700) * 20;
  const argv = [
    ...(netns === undefined ? [] : ["ip", "netns", "exec", netns]),
    findExecutable("turnserver") ?? "turnserver",
    "-n",
    "--no-cli",
    "--log-file",
    "stdout",
    "--simple-log",
    "-v",
    ...listen.flatMap((ip) => ["-L", ip]),
    "--relay-ip",
    listen[0],
    "-p",
    String(port),
    // Without a second IP there is no RFC 5780 alternate port: one listener is all TURN needs.
    ...(rfc5780 ? [] : ["--no-rfc5780"]),
    "--min-port",
    String(minRelay),
    "--max-port",
    String(minRelay + 19),
    "--no-tls",
    "--no-dtls",
    "--fingerprint",
    "--lt-cred-mech",
    "--user",
    `${user[0]}:${user[1]}`,
    "--realm",
    realm,
    "--pidfile",
    `${dir}/turnserver.pid`,
    "--userdb",
    `${dir}/turndb`,
    ...(listen[0].startsWith("127.") ? ["--allow-loopback-peers"] : []),
    ...extraArgs,
  ];
  const process = new LabProcess(argv);
  const stop = async () => {
    await process.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const wanted = listen.flatMap((ip) =>
    rfc5780 ? [`${ip}:${port}`, `${ip}:${port + 1}`] : [`${ip}:${port}`]
  );
  try {
    await process.waitForOutput(
      (out) => wanted.every((a) => out.includes(`UDP listener opened on: ${a}`)),
      readyTimeoutMs,
      `coturn opened UDP listeners ${wanted.join(", ")}`,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { ips: [...listen], port, process, stop, [Symbol.asyncDispose]: stop };
}

/**
 * A port P such that P and P + 1 are free for UDP on every given IP. coturn binds with
 * SO_REUSEPORT and would silently share a port with another coturn, so it is checked here.
 */
async function freeUdpPortPair(ips: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const p = await bindUdp(ips[0], 0);
    if (p === undefined || p >= 65535) continue;
    let free = true;
    for (const ip of ips) {
      for (const port of [p, p + 1]) {
        if ((await bindUdp(ip, port)) === undefined) free = false;
      }
    }
    if (free) return p;
  }
  throw new Error(`No free UDP port pair on ${ips.join(", ")} after 20 attempts`);
}

/** Binds and closes a UDP socket; the bound port, or `undefined` if the bind failed. */
function bindUdp(ip: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    s.once("error", () => s.close(() => resolve(undefined)));
    s.bind(port, ip, () => {
      const bound = s.address().port;
      s.close(() => resolve(bound));
    });
  });
}

/** Options of {@link NatLab.create}. */
export interface NatLabOptions {
  /** NAT of router A. Default `"eim"`. */
  modeA?: NatMode;
  /** NAT of router B. Default `"eim"`. */
  modeB?: NatMode;
  /** Random UDP loss in router A, percent per packet (0 = none). Default 0. */
  lossA?: number;
  /** Random UDP loss in router B, percent per packet (0 = none). Default 0. */
  lossB?: number;
}

// The xtables lock is one file for all namespaces: wait for it rather than fail when another
// lab (or another test suite) runs iptables at the same moment.
const IPTABLES = ["iptables", "-w", "10"];

let labCounter = 0;
// `cnl-<creator pid in decimal>-<unique>-`: the pid field has its own delimiters, so a stale
// lab's owner is read back exactly (a base-36 pid would run into the random part).
const PREFIX_PATTERN = /^cnl-(\d+)-[0-9a-z]+-/;

/**
 * A NAT lab of five namespaces with unique names. Create with {@link NatLab.create}; tear
 * down with `await using` (or `close()` in `finally`), which kills every process the lab
 * started or that still lives in its namespaces, and deletes the namespaces.
 */
export class NatLab implements AsyncDisposable {
  /** Namespace name prefix, unique to this lab. */
  readonly prefix: string;
  /** Namespace names. */
  readonly ns: Readonly<{ pub: string; rA: string; rB: string; hA: string; hB: string }>;
  readonly #processes = new Set<LabProcess>();
  readonly #cleanups: (() => Promise<void>)[] = [];
  #closed = false;

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.ns = {
      pub: `${prefix}pub`,
      rA: `${prefix}rA`,
      rB: `${prefix}rB`,
      hA: `${prefix}hA`,
      hB: `${prefix}hB`,
    };
  }

  /**
   * Builds a lab. On failure, whatever was built is torn down before the error is thrown.
   *
   * @param options NAT modes and loss.
   * @returns The lab.
   */
  static async create(options: NatLabOptions = {}): Promise<NatLab> {
    const { modeA = "eim", modeB = "eim", lossA = 0, lossB = 0 } = options;
    await removeStaleLabs();
    const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
    const lab = new NatLab(`cnl-${Deno.pid}-${(labCounter++).toString(36)}${rand}-`);
    try {
      await lab.#build();
      await lab.setNat("A", modeA);
      await lab.setNat("B", modeB);
      if (lossA) await lab.setLoss("A", lossA);
      if (lossB) await lab.setLoss("B", lossB);
    } catch (e) {
      await lab.close();
      throw e;
    }
    return lab;
  }

  /**
   * Switches a router's NAT behaviour and forgets its old mappings.
   *
   * @param router `"A"` or `"B"`.
   * @param mode `eim` (MASQUERADE) or `sym` (MASQUERADE --random-fully).
   */
  async setNat(router: "A" | "B", mode: NatMode): Promise<void> {
    const ns = router === "A" ? this.ns.rA : this.ns.rB;
    await this.exec(ns, [...IPTABLES, "-t", "nat", "-F", "POSTROUTING"]);
    const extra = mode === "sym" ? ["--random-fully"] : [];
    await this.exec(ns, [
      ...IPTABLES,
      "-t",
      "nat",
      "-A",
      "POSTROUTING",
      "-o",
      "wan",
      "-j",
      "MASQUERADE",
      ...extra,
    ]);
    if (findExecutable("conntrack") !== undefined) {
      // Exit code 1 when the table was already empty.
      await this.run(ns, ["conntrack", "-F"], { timeoutMs: 5000 });
    }
  }

  /**
   * Sets how long a router's conntrack keeps a UDP flow without packets, which is how long
   * its NAT mapping lives: both the timeout of a new flow (Linux: 30 s) and that of a flow
   * with traffic both ways for over 2 s (120 s). The setting is the router namespace's own.
   *
   * @param router `"A"` or `"B"`.
   * @param seconds Timeout in whole seconds, at least 1.
   */
  async setUdpTimeout(router: "A" | "B", seconds: number): Promise<void> {
    if (!(Number.isInteger(seconds) && seconds >= 1)) {
      throw new RangeError(`UDP timeout must be a whole number of seconds >= 1: got ${seconds}`);
    }
    const ns = router === "A" ? this.ns.rA : this.ns.rB;
    for (const name of ["nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"]) {
      await this.exec(ns, ["sysctl", "-qw", `net.netfilter.${name}=${seconds}`]);
    }
  }

  /**
   * Sets random UDP loss in a router (both directions), replacing the previous setting.
   *
   * @param router `"A"` or `"B"`.
   * @param percent Drop probability in percent, 0 for none.
   */
  async setLoss(router: "A" | "B", percent: number): Promise<void> {
    if (!(percent >= 0 && percent <= 100)) {
      throw new RangeError(`Loss must be 0-100 percent: current value is ${percent}`);
    }
    const ns = router === "A" ? this.ns.rA : this.ns.rB;
    const rule = ["FORWARD", "-p", "udp", "-m", "comment", "--comment", "netlab-loss"];
    await this.#removeRules(ns, "netlab-loss");
    if (percent > 0) {
      await this.exec(ns, [
        ...IPTABLES,
        "-I",
        ...rule.slice(0, 1),
        "1",
        ...rule.slice(1),
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        (percent / 100).toFixed(4),
        "-j",
        "DROP",
      ]);
    }
  }

  /**
   * Blocks or opens the direct path between the two NATs: UDP between the routers' public
   * addresses ({@link LAB.rAWan} <-> {@link LAB.rBWan}), dropped in both routers' FORWARD
   * chains (rules tagged `netlab-no-direct`, ahead of the conntrack accept). Hosts behind the
   * NATs then reach each other only through servers in `pub` (coturn, a rendezvous node).
   * Idempotent: the rules are replaced, not added twice.
   *
   * Conntrack: a packet dropped in FORWARD never reaches the confirmation step, so punches
   * sent while blocked leave no mapping behind in either router; a flow that existed before
   * the block is dead while it lasts (the drop comes first), and blocking also forgets the
   * routers' entries between the two public addresses (with `conntrack`, when installed), so
   * opening again starts as if the hosts had never met directly.
   *
   * @param open `true` lets the NATs' UDP through (as built), `false` blocks it.
   */
  async setDirectPath(open: boolean): Promise<void> {
    const routers = [[this.ns.rA, LAB.rBWan], [this.ns.rB, LAB.rAWan]] as const;
    for (const [ns, other] of routers) {
      await this.#removeRules(ns, "netlab-no-direct");
      if (open) continue;
      for (const match of [["-s", other], ["-d", other]]) {
        await this.exec(ns, [
          ...IPTABLES,
          "-I",
          "FORWARD",
          "1",
          "-p",
          "udp",
          ...match,
          "-m",
          "comment",
          "--comment",
          "netlab-no-direct",
          "-j",
          "DROP",
        ]);
      }
      if (findExecutable("conntrack") !== undefined) {
        // Exit code 1 when there was no such entry.
        for (const dir of ["--orig-dst", "--orig-src"]) {
          await this.run(ns, ["conntrack", "-D", "-p", "udp", dir, other], { timeoutMs: 5000 });
        }
      }
    }
  }

  /**
   * The routers' conntrack entries between the two public addresses (router A's to
   * {@link LAB.rBWan}, router B's to {@link LAB.rAWan}), as `conntrack -L` prints them: what
   * a direct flow between the NATs left behind. Needs `conntrack`.
   *
   * @returns One line per entry, router A's first.
   */
  async directPathEntries(): Promise<string[]> {
    const routers = [[this.ns.rA, LAB.rBWan], [this.ns.rB, LAB.rAWan]] as const;
    const lines: string[] = [];
    for (const [ns, other] of routers) {
      for (const dir of ["--orig-dst", "--orig-src"]) {
        const r = await this.run(ns, ["conntrack", "-L", "-p", "udp", dir, other]);
        if (r.code !== 0) throw new Error(`conntrack -L failed in ${ns}: ${r.stderr}`);
        lines.push(...r.stdout.split("\n").filter((l) => l.trim() !== ""));
      }
    }
    return lines;
  }

  /** Deletes a router's FORWARD rules whose comment is `tag` (bounded: ten rules at most). */
  async #removeRules(ns: string, tag: string): Promise<void> {
    for (let i = 0; i < 10; i++) {
      const listed = await this.run(ns, [...IPTABLES, "-S", "FORWARD"], { timeoutMs: 5000 });
      const line = listed.stdout.split("\n").find((l) => l.includes(`--comment ${tag}`));
      if (line === undefined) return;
      await this.exec(ns, [...IPTABLES, ...line.replace(/^-A /, "-D ").split(" ")]);
    }
    throw new Error(`More than ten ${tag} rules in ${ns}`);
  }

  /**
   * Starts coturn in `pub` on 10.200.0.1 and 10.200.0.2, ports 3478 and 3479; stopped by
   * the lab's teardown if not before.
   *
   * @param options Credentials and readiness timeout.
   * @returns The running server.
   */
  async startCoturn(
    options: Omit<CoturnOptions, "netns" | "listen" | "port"> = {},
  ): Promise<Coturn> {
    const coturn = await startCoturn({
      ...options,
      netns: this.ns.pub,
      listen: [LAB.server1, LAB.server2],
      port: 3478,
    });
    this.#cleanups.push(() => coturn.stop());
    return coturn;
  }

  /**
   * Starts a command inside a namespace; it is killed by the lab's teardown if still running.
   *
   * @param ns Namespace name (one of {@link NatLab.ns}).
   * @param argv Program and arguments.
   * @returns The running process.
   */
  spawn(ns: string, argv: readonly string[]): LabProcess {
    if (this.#closed) throw new Error(`Lab ${this.prefix} is closed: cannot run ${argv[0]}`);
    const p = new LabProcess(["ip", "netns", "exec", ns, ...argv]);
    this.#processes.add(p);
    p.status.then(() => this.#processes.delete(p));
    return p;
  }

  /**
   * Runs a command inside a namespace to completion.
   *
   * @param ns Namespace name.
   * @param argv Program and arguments.
   * @param options `timeoutMs` (default 10000) after which it is killed and the call throws.
   * @returns Exit status and output (a non-zero exit does not throw).
   */
  run(ns: string, argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<
    ChildResult
  > {
    return this.spawn(ns, argv).wait(options.timeoutMs ?? 10_000);
  }

  /**
   * Runs a command inside a namespace and throws if it fails.
   *
   * @param ns Namespace name.
   * @param argv Program and arguments.
   * @returns Its stdout.
   */
  async exec(ns: string, argv: readonly string[]): Promise<string> {
    const r = await this.run(ns, argv);
    if (r.code !== 0) {
      throw new Error(`Failed (exit ${r.code}) in ${ns}: ${argv.join(" ")}\n${r.stderr}`);
    }
    return r.stdout;
  }

  /** Tears the lab down; idempotent, and never throws for what was already gone. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#cleanups.splice(0).reverse()) await c().catch(() => {});
    await Promise.all([...this.#processes].map((p) => p.stop()));
    for (const ns of Object.values(this.ns)) await deleteNamespace(ns);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #build(): Promise<void> {
    const root = (argv: string[]) => runRoot(argv);
    for (const ns of Object.values(this.ns)) {
      await root(["ip", "netns", "add", ns]);
      await root(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    const { pub } = this.ns;
    await root(["ip", "-n", pub, "link", "add", "br0", "type", "bridge"]);
    await root(["ip", "-n", pub, "link", "set", "br0", "up"]);
    await root(["ip", "-n", pub, "addr", "add", `${LAB.server1}/24`, "dev", "br0"]);
    await root(["ip", "-n", pub, "addr", "add", `${LAB.server2}/24`, "dev", "br0"]);
    for (const r of ["A", "B"] as const) {
      const rns = r === "A" ? this.ns.rA : this.ns.rB;
      const hns = r === "A" ? this.ns.hA : this.ns.hB;
      const lan = r === "A" ? "10.1.0" : "10.2.0";
      const wan = r === "A" ? LAB.rAWan : LAB.rBWan;
      // Created directly in the namespaces: names only need to be unique inside each one.
      await root(vethPair("wan", rns, `r${r}`, pub));
      await root(["ip", "-n", pub, "link", "set", `r${r}`, "master", "br0"]);
      await root(["ip", "-n", pub, "link", "set", `r${r}`, "up"]);
      await root(["ip", "-n", rns, "addr", "add", `${wan}/24`, "dev", "wan"]);
      await root(["ip", "-n", rns, "link", "set", "wan", "up"]);
      await root(vethPair("lan", rns, "eth0", hns));
      await root(["ip", "-n", rns, "addr", "add", `${lan}.1/24`, "dev", "lan"]);
      await root(["ip", "-n", rns, "link", "set", "lan", "up"]);
      await root(["ip", "-n", hns, "addr", "add", `${lan}.2/24`, "dev", "eth0"]);
      await root(["ip", "-n", hns, "link", "set", "eth0", "up"]);
      await root(["ip", "-n", hns, "route", "add", "default", "via", `${lan}.1`]);
      await this.exec(rns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      // A home router: forward outbound, let in only what conntrack knows.
      const ipt = (...args: string[]) => this.exec(rns, [...IPTABLES, ...args]);
      await ipt("-P", "FORWARD", "DROP");
      await ipt("-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT");
      await ipt(
        "-A",
        "FORWARD",
        "-i",
        "wan",
        "-o",
        "lan",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
      );
      await ipt(
        "-A",
        "INPUT",
        "-i",
        "wan",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
      );
      await ipt("-A", "INPUT", "-i", "wan", "-j", "DROP");
    }
  }
}

/** Runs a command in the test's own namespace; throws with its stderr if it fails. */
export async function runRoot(argv: readonly string[]): Promise<string> {
  const r = await new LabProcess(argv).wait(10_000);
  if (r.code !== 0) throw new Error(`Failed (exit ${r.code}): ${argv.join(" ")}\n${r.stderr}`);
  return r.stdout;
}

/** Kills what still runs in a namespace (only lab namespaces come here), then deletes it. */
export async function deleteNamespace(ns: string): Promise<void> {
  const pids = await new LabProcess(["ip", "netns", "pids", ns]).wait(5000).catch(() => undefined);
  for (const pid of (pids?.stdout ?? "").split(/\s+/).filter(Boolean).map(Number)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await new LabProcess(["ip", "netns", "del", ns]).wait(5000).catch(() => undefined);
}

/** Deletes lab namespaces whose creating process is gone (a crashed or killed test run). */
async function removeStaleLabs(): Promise<void> {
  const listed = await new LabProcess(["ip", "netns", "list"]).wait(5000);
  for (const line of listed.stdout.split("\n")) {
    const name = line.split(" ")[0];
    const m = PREFIX_PATTERN.exec(name);
    if (m === null) continue;
    const owner = Number(m[1]);
    let alive = true;
    try {
      Deno.statSync(`/proc/${owner}`);
    } catch {
      alive = false;
    }
    if (!alive) await deleteNamespace(name);
  }
}

/** The `ip` command that creates a veth pair with each end directly in its namespace. */
function vethPair(name: string, ns: string, peer: string, peerNs: string): string[] {
  return [
    "ip",
    "link",
    "add",
    name,
    "netns",
    ns,
    "type",
    "veth",
    "peer",
    "name",
    peer,
    "netns",
    peerNs,
  ];
}
