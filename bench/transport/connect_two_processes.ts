/**
 * Connection set-up as `connect_rounds.ts` measures it, with the accepting side (QUIC alone's
 * server, the reconnects' listener, the new peers' target) in a second process, as a real peer
 * is: its work then runs on its own event loop, beside the dialer's instead of between it, and a
 * listener's work after its reply is no longer on the dialer's clock. `connect_rounds.ts` (both
 * sides on one event loop) is what issue 16's goal lines judge; this one says how much of a
 * ratio is the two sides sharing a thread. On a machine with fewer than two free cores the
 * processes take turns and the figures say little.
 *
 * Run: `deno run -A bench/transport/connect_two_processes.ts [--rounds 3] [--connects 100]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatAddress, parseAddress, QuicEndpoint } from "../../src/quic/mod.ts";
import { node } from "./_nodes.ts";
import {
  type Acceptors,
  CONNECT_CASES,
  CONNECT_GOALS,
  connectRounds,
  emptied,
  roundsArgs,
} from "./_connect_rounds.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    connects: { type: "string", default: "100" },
    // Internal: run as the accepting process (addresses on stdout, requests on stdin).
    acceptors: { type: "boolean", default: false },
  },
});

if (values.acceptors) await serveAcceptors();
else await measure();

/**
 * The child: prints `server listener target` as `HOST:PORT`s on one line, then answers each
 * `empty listener` or `empty target` line on stdin with `emptied` once that transport dropped
 * every peer; closes when stdin ends.
 */
async function serveAcceptors(): Promise<void> {
  const server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  const accepting = (async () => {
    for (;;) await server.accept();
  })().catch(() => {});
  const transports = { listener: await node(), target: await node() };
  const out = (line: string) => Deno.stdout.write(new TextEncoder().encode(line + "\n"));
  await out(
    [server.localAddr, transports.listener.localAddr, transports.target.localAddr]
      .map(formatAddress).join(" "),
  );
  try {
    for await (const line of lines(Deno.stdin.readable)) {
      const which = line.replace(/^empty /, "");
      if (which !== "listener" && which !== "target") throw new Error(`Unknown request: ${line}`);
      await emptied(transports[which]);
      await out("emptied");
    }
  } finally {
    await Promise.all([transports.listener.close(), transports.target.close()]);
    await server.close();
    await accepting;
  }
}

/** The parent: starts the child, runs the rounds against it, prints the figures. */
async function measure(): Promise<void> {
  const { rounds, connects } = roundsArgs(values);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--acceptors"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const replies = lines(child.stdout)[Symbol.asyncIterator]();
  const writer = child.stdin.getWriter();
  const next = async () => {
    const { value, done } = await replies.next();
    if (done) throw new Error("The accepting process ended early");
    return value;
  };
  try {
    const [server, listener, target] = (await next()).split(" ").map((a) => parseAddress(a));
    const acceptors: Acceptors = {
      server,
      listener,
      target,
      emptied: async (which) => {
        await writer.write(new TextEncoder().encode(`empty ${which}\n`));
        const reply = await next();
        if (reply !== "emptied") throw new Error(`Unexpected reply: ${reply}`);
      },
    };
    const figures = await connectRounds({
      rounds,
      connects,
      acceptors,
      onRound: (line) => console.log(line),
    });
    console.log(
      `\nthe accepting side in another process; medians of ${rounds} rounds (p50 of each ` +
        `round; ${connects} reconnects and ${Math.ceil(connects / 5)} new peers per round):`,
    );
    for (const name of CONNECT_CASES) {
      console.log(`- ${name}: ${figures.p50Ms[name].toFixed(2)} ms`);
    }
    console.log(
      `- reconnect ${figures.reconnectRatio.toFixed(2)}x QUIC alone in blocks, ` +
        `${figures.reconnectRatioOneByOne.toFixed(2)}x one by one ` +
        `(issue 16's goal, judged in one process: <= ${CONNECT_GOALS.reconnect}x)\n` +
        `- new peer ${figures.newPeerRatio.toFixed(2)}x in blocks, ` +
        `${figures.newPeerRatioOneByOne.toFixed(2)}x one by one, ` +
        `${figures.newPeerLikeForLike.toFixed(2)}x QUIC alone from a new endpoint ` +
        `(goal <= ${CONNECT_GOALS.newPeer}x)`,
    );
  } finally {
    await writer.close().catch(() => {});
    const status = await child.status;
    if (!status.success) console.error(`The accepting process exited with ${status.code}`);
  }
}

/** The lines of a byte stream, without their newlines. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
      yield buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
    }
  }
}
