/**
 * Progress lines of `quic_node.ts` in human mode: the DHT bootstrap, the relay allocation on a
 * real coturn and NAT discovery against it say when they start, while they run and how they end.
 */
import assert from "node:assert/strict";
import { readLines } from "../_lines.ts";
import { quicheAddonPath } from "../../src/quic/_quiche.ts";
import { startTurnServer, TURN_USER, turnSkipReason } from "../nat/_turn_server.ts";
import { NodeChild } from "./_status_lab.ts";

const ROOT = new URL("../../", import.meta.url);

/** Runs a human-mode node until it printed `last` (or exited), and returns its lines. */
async function humanLines(args: string[], last: RegExp): Promise<string[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      `--allow-ffi=${quicheAddonPath()}`,
      "examples/quic_node.ts",
      "--port",
      "0",
      "--listen",
      "127.0.0.1",
      "--no-mdns",
      "--stats-interval",
      "0",
      "--duration",
      "30",
      ...args,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: string[] = [];
  try {
    for await (const line of readLines(child.stdout)) {
      lines.push(line);
      if (last.test(line)) break;
    }
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited already
    }
    await child.status;
  }
  return lines;
}

Deno.test("progress: the DHT bootstrap and a NAT discovery nobody answers", async () => {
  await using hub = new NodeChild([]);
  const address = (await hub.event("listening")).address as string;
  // A UDP port with nobody behind it: discovery retransmits, then fails.
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const stun = `127.0.0.1:${(silent.addr as Deno.NetAddr).port}`;
  try {
    const lines = await humanLines(["--peer", address, "--stun", stun], /NAT: failed/);
    const text = lines.join("\n");
    assert.match(text, new RegExp(`DHT: bootstrapping through ${address}…`));
    assert.match(text, /DHT: joined with 1 contact after \d+\.\d s/);
    assert.match(text, new RegExp(`NAT: discovering the NAT type with STUN ${stun}…`));
    assert.match(text, /NAT: still working \(\d+\.\d s\)…/);
    assert.match(text, /NAT: failed: .*did not answer.* after \d+\.\d s/);
    // In order: the bootstrap line before its result.
    const at = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l));
    assert.ok(at(/DHT: bootstrapping/) < at(/DHT: joined/));
  } finally {
    silent.close();
  }
});

Deno.test({
  name: "progress: a relay allocation and NAT discovery on coturn",
  ignore: turnSkipReason() !== undefined,
  async fn() {
    await using turn = await startTurnServer();
    const server = `127.0.0.1:${turn.address.port}`;
    const lines = await humanLines(
      [
        "--no-dht",
        "--turn",
        `turn:${TURN_USER.username}:${TURN_USER.password}@${server}`,
        "--stun",
        server,
      ],
      /NAT: (found|failed)/,
    );
    const text = lines.join("\n");
    assert.match(text, new RegExp(`relay: allocating a relayed address on TURN ${server}…`));
    assert.match(text, /relay: allocated 127\.0\.0\.1:\d+ after \d+\.\d s/);
    assert.match(text, /NAT: found \S+ after \d+\.\d s/);
    assert.doesNotMatch(text, /DHT:/, "no DHT lines with --no-dht");
  },
});
