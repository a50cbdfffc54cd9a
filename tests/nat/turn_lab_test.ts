/**
 * Issue 9 in the NAT lab: two nodes behind symmetric NATs (where hole punching cannot work)
 * connect through coturn in `pub` with QUIC over the relay, 20 times in a row, each time with
 * fresh allocations, and echo 10 MiB intact. Prints throughput and RTT through the relay.
 */
import assert from "node:assert/strict";
import { LAB, labSkipReason, NatLab } from "../_netlab.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";

const ignore = labSkipReason() !== undefined;
const CHILD = new URL("./_relay_child.ts", import.meta.url).pathname;
const TRIES = 20;
const BYTES = 10 * 1024 * 1024;

/** A `_relay_child.ts` in a namespace, spoken to one JSON line at a time. */
class ChildNode implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  #stderr = "";

  constructor(ns: string) {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", "--unstable-net", CHILD],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = lineReader(child.stdout);
    (async () => {
      for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += s;
      }
    })();
  }

  /** Sends a command and waits for its answer line, at most `timeoutMs`. */
  async request(command: Record<string, unknown>, timeoutMs = 30_000): Promise<
    Record<string, unknown>
  > {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) =>
      timer = setTimeout(
        () => reject(new Error(`no answer to ${command.cmd} in ${timeoutMs} ms: ${this.#stderr}`)),
        timeoutMs,
      )
    );
    try {
      const next = await Promise.race([this.#lines.next(), timeout]);
      if (next.done) throw new Error(`child exited during ${command.cmd}: ${this.#stderr}`);
      const answer = JSON.parse(next.value);
      if (answer.error) throw new Error(`${command.cmd} failed in the child: ${answer.error}`);
      return answer;
    } finally {
      clearTimeout(timer);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<"grace">((r) => timer = setTimeout(() => r("grace"), 5000));
    if (await Promise.race([this.#child.status, grace]) === "grace") {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited in between
      }
    }
    clearTimeout(timer);
    await this.#child.status;
  }
}

async function* lineReader(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
}

Deno.test({
  name: `NAT lab (sym/sym): QUIC through TURN, ${TRIES} of ${TRIES} tries, 10 MiB intact`,
  ignore,
  fn: async () => {
    await using lab = await NatLab.create({ modeA: "sym", modeB: "sym" });
    await lab.startCoturn();
    const server: UdpAddress = { hostname: LAB.server1, port: 3478 };
    await using a = new ChildNode(lab.ns.hA);
    await using b = new ChildNode(lab.ns.hB);
    const results = [];
    for (let i = 0; i < TRIES; i++) {
      const rb = await b.request({ cmd: "alloc", server });
      const ra = await a.request({ cmd: "alloc", server });
      // The server sees each node at its router's WAN address: both are behind NAT.
      assert.equal((ra.mapped as UdpAddress).hostname, LAB.rAWan);
      assert.equal((rb.mapped as UdpAddress).hostname, LAB.rBWan);
      await b.request({ cmd: "peer", peer: ra.relayed });
      const r = await a.request({ cmd: "connect", peer: rb.relayed, bytes: BYTES, rtts: 50 });
      assert.equal(r.path, "relay");
      assert.equal(r.intact, true, `try ${i + 1}: 10 MiB not intact`);
      results.push(r as { connectMs: number; echoMs: number; rttP50: number; rttP99: number });
      await a.request({ cmd: "close" });
      await b.request({ cmd: "close" });
    }
    const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const mbps = results.map((r) => (2 * 8 * BYTES) / (r.echoMs / 1000) / 1e6);
    console.log(
      `[turn lab] ${results.length}/${TRIES} connected over relay, 10 MiB echo intact each; ` +
        `connect median ${median(results.map((r) => r.connectMs)).toFixed(1)} ms; echo ` +
        `median ${median(mbps).toFixed(0)} Mbit/s both ways (min ${
          Math.min(...mbps).toFixed(0)
        }, max ${Math.max(...mbps).toFixed(0)}); 256 B RTT p50 median ${
          median(results.map((r) => r.rttP50)).toFixed(2)
        } ms, p99 median ${median(results.map((r) => r.rttP99)).toFixed(2)} ms`,
    );
    assert.equal(results.length, TRIES);
  },
});
