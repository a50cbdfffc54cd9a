/**
 * Progress lines of `quic_node.ts` in human mode: the DHT bootstrap, the relay allocation on a
 * real coturn and NAT discovery against it say when they start, while they run and how they end.
 */
import assert from "node:assert/strict";
import { startTurnServer, TURN_USER, turnSkipReason } from "../nat/_turn_server.ts";
import { LOOPBACK_FLAGS, NodeProcess } from "../node/_node_process.ts";

/** Runs a human-mode node until it printed `last`, and returns its lines. */
async function humanLines(args: string[], last: RegExp): Promise<string[]> {
  await using node = new NodeProcess("human-mode node", [
    ...LOOPBACK_FLAGS,
    "--duration",
    "30",
    ...args,
  ], { json: false });
  await node.until(`printing ${last}`, () => node.lines.some((l) => last.test(l)), 30_000);
  return node.lines;
}

Deno.test("progress: the DHT bootstrap and a NAT discovery nobody answers", async () => {
  await using hub = new NodeProcess("hub", LOOPBACK_FLAGS);
  const address = (await hub.listening()).address as string;
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
