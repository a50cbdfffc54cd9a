/**
 * A three-node cluster on loopback, as three processes: `examples/quic_node.ts --json` on free
 * ports; node 2 joins node 1, node 3 joins nodes 1 and 2. Each node broadcasts consensus
 * messages to both others once it has two peers; the demo checks that every node received
 * every message and every broadcast was acknowledged, prints a table (peers, RTT p50/p99 of
 * keep-alive pings, messages sent/received) and exits 0, or exits 1 saying what failed. The
 * children are stopped (SIGTERM, then SIGKILL) and waited on in every case.
 *
 * Run: `deno task demo` (or `npx --yes deno@2.9.6 task demo`), which is
 * `deno run --allow-run examples/demo.ts [--messages 100]`. The children run with
 * `--allow-net=127.0.0.1 --allow-ffi=ADDON`, ADDON being the quiche addon in Deno's npm cache.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { readLines } from "./_lines.ts";
import { spawnQuicNode } from "./_quic_node_process.ts";

/** Whole run, from the first spawn to all messages received. */
const DEADLINE_MS = 60_000;
/** Time a child gets to exit after SIGTERM before SIGKILL. */
const EXIT_GRACE_MS = 5_000;

/** What the demo learned about one child from its JSON lines. */
interface NodeState {
  name: string;
  child: Deno.ChildProcess;
  address?: string;
  peerId?: string;
  peers: Set<string>;
  received: number;
  broadcasts: number;
  acked: number;
  failures: string[];
  /** Latest `stats` line per peer. */
  stats: Map<string, { rttP50Ms: number; rttP99Ms: number; sent: number; received: number }>;
  /** Time of the latest `stats` line. */
  statsAt: number;
  exit: Promise<Deno.CommandStatus>;
  stderr: string;
}

function spawnNode(name: string, args: string[], onChange: () => void): NodeState {
  const child = spawnQuicNode(["--json", ...args]);
  const node: NodeState = {
    name,
    child,
    peers: new Set(),
    received: 0,
    broadcasts: 0,
    acked: 0,
    failures: [],
    stats: new Map(),
    statsAt: 0,
    exit: child.status,
    stderr: "",
  };
  (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      node.stderr += text;
    }
  })();
  (async () => {
    for await (const line of readLines(child.stdout)) {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        node.failures.push(`not JSON: ${line}`);
        continue;
      }
      apply(node, event);
      onChange();
    }
  })();
  return node;
}

/** Folds one event line of a child into its state. */
// deno-lint-ignore no-explicit-any
function apply(node: NodeState, e: any): void {
  switch (e.event) {
    case "listening":
      node.address = e.address;
      node.peerId = e.peerId;
      break;
    case "connected":
      node.peers.add(e.peerId);
      break;
    case "message":
      node.received++;
      break;
    case "broadcast":
      node.broadcasts++;
      node.acked += e.ok;
      if (e.failed > 0) node.failures.push(...e.errors);
      break;
    case "stats":
      node.stats.set(e.peerId, {
        rttP50Ms: e.rttP50Ms,
        rttP99Ms: e.rttP99Ms,
        sent: e.messagesSent,
        received: e.messagesReceived,
      });
      node.statsAt = performance.now();
      break;
  }
}

/** Resolves when `ready()` holds, re-checked on every child event; rejects on `failed()`. */
function until(
  what: string,
  ready: () => boolean,
  failed: () => string | undefined,
  deadline: number,
  changes: EventTarget,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const failure = failed();
      if (failure !== undefined) return finish(new Error(`${what}: ${failure}`));
      if (ready()) return finish();
      if (performance.now() > deadline) finish(new Error(`${what}: timed out`));
    };
    const timer = setInterval(check, 100);
    const finish = (error?: Error) => {
      clearInterval(timer);
      changes.removeEventListener("change", check);
      error ? reject(error) : resolve();
    };
    changes.addEventListener("change", check);
    check();
  });
}

async function stop(nodes: NodeState[]): Promise<string[]> {
  const problems: string[] = [];
  await Promise.all(nodes.map(async (node) => {
    try {
      node.child.kill("SIGTERM");
    } catch {
      // already exited
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      node.exit,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), EXIT_GRACE_MS)),
    ]);
    clearTimeout(timer);
    if (status === undefined) {
      problems.push(`${node.name} did not exit within ${EXIT_GRACE_MS} ms of SIGTERM; killed`);
      node.child.kill("SIGKILL");
      await node.exit;
    } else if (!status.success) {
      problems.push(`${node.name} exited with code ${status.code}${status.signal ?? ""}`);
    }
  }));
  return problems;
}

function table(nodes: NodeState[], messages: number): string {
  const rows = nodes.map((n) => {
    const stats = [...n.stats.values()];
    const worst = (key: "rttP50Ms" | "rttP99Ms") => Math.max(...stats.map((s) => s[key]));
    const sum = (key: "sent" | "received") => stats.reduce((a, s) => a + s[key], 0);
    return [
      n.name,
      `${n.address}`,
      `${n.peers.size}`,
      worst("rttP50Ms").toFixed(2),
      worst("rttP99Ms").toFixed(2),
      `${sum("sent")}`,
      `${sum("received")}`,
    ];
  });
  const head = ["node", "address", "peers", "RTT p50 ms", "RTT p99 ms", "sent", "received"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
  return [
    line(head),
    ...rows.map(line),
    "",
    `RTT: keep-alive pings every 50 ms, worst peer of each node; sent: messages the peers ` +
    `acknowledged; each node broadcast ${messages} messages of 64 B to its 2 peers.`,
  ].join("\n");
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { messages: { type: "string", default: "100" } } });
  const messages = Number(values.messages);
  if (!Number.isInteger(messages) || messages < 1) {
    console.error(`Invalid '--messages': must be a positive integer: got ${values.messages}`);
    return 2;
  }
  const changes = new EventTarget();
  const changed = () => changes.dispatchEvent(new Event("change"));
  const interrupted = new AbortController();
  const onSignal = () => interrupted.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  interrupted.signal.addEventListener("abort", changed);

  const common = [
    "--no-mdns", // the nodes join each other by address; mDNS would need more permissions
    "--listen",
    "127.0.0.1",
    "--port",
    "0",
    "--keepalive",
    "0.05",
    "--stats-interval",
    "0.5",
    "--broadcast",
    `${messages}`,
    "--interval",
    "20",
    "--wait-peers",
    "2",
  ];
  const deadline = performance.now() + DEADLINE_MS;
  const nodes: NodeState[] = [];
  const failed = () => {
    if (interrupted.signal.aborted) return "interrupted";
    for (const n of nodes) {
      if (n.failures.length > 0) return `${n.name}: ${n.failures[0]}`;
    }
    return undefined;
  };
  const exited = new Set<NodeState>();
  const earlyExit = () => {
    for (const n of nodes) {
      if (exited.has(n)) {
        return `${n.name} exited early${n.stderr ? `:\n${n.stderr.trim()}` : ""}`;
      }
    }
    return failed();
  };
  const spawn = async (name: string, peers: NodeState[]) => {
    const args = [...common, ...peers.flatMap((p) => ["--peer", p.address!])];
    const node = spawnNode(name, args, changed);
    node.exit.then(() => {
      exited.add(node);
      changed();
    });
    nodes.push(node);
    await until(
      `${name} listening`,
      () => node.address !== undefined,
      earlyExit,
      deadline,
      changes,
    );
    console.log(`${name} listening on ${node.address} as ${node.peerId}`);
    return node;
  };

  let ok = false;
  try {
    const started = performance.now();
    const n1 = await spawn("node1", []);
    const n2 = await spawn("node2", [n1]);
    await spawn("node3", [n1, n2]);
    const expected = 2 * messages;
    await until(
      "all messages delivered",
      () => nodes.every((n) => n.received >= expected && n.acked >= expected),
      earlyExit,
      deadline,
      changes,
    );
    const delivered = performance.now();
    console.log(
      `all ${nodes.length * expected} messages delivered and acknowledged in ${
        ((delivered - started) / 1000).toFixed(1)
      } s (from the first spawn)`,
    );
    // One more statistics line from each node, so the table's counters are final.
    await until(
      "final statistics",
      () => nodes.every((n) => n.statsAt > delivered && n.stats.size === 2),
      earlyExit,
      deadline + 5000,
      changes,
    );
    ok = true;
  } catch (e) {
    console.error(`demo FAILED: ${(e as Error).message}`);
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    const problems = await stop(nodes);
    for (const p of problems) console.error(`demo: ${p}`);
    if (problems.length > 0) ok = false;
  }
  if (!ok) {
    for (const n of nodes) {
      if (n.stderr.trim() !== "") console.error(`--- ${n.name} stderr:\n${n.stderr.trim()}`);
    }
    return 1;
  }
  console.log();
  console.log(table(nodes, messages));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
