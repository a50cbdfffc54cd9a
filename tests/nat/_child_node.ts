/**
 * A Deno child process inside a lab namespace, spoken to one JSON line at a time over
 * stdin/stdout (the lab tests' nodes): {@link ChildNode} is the parent's side, `await using`
 * ends its input and waits for it, killing it after a grace period; {@link answerCommands} is
 * the child's side.
 *
 * @module
 */

import { readLines } from "../_lines.ts";

/** One answer line of a child. */
export type ChildAnswer = Record<string, unknown>;

/** A child Deno script run with `ip netns exec NS deno run -A --unstable-net SCRIPT`. */
export class ChildNode implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  #stderr = "";

  /**
   * Starts the script.
   *
   * @param ns Namespace to run in.
   * @param script Path of the script.
   */
  constructor(ns: string, script: string) {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", "--unstable-net", script],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = readLines(child.stdout);
    (async () => {
      for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += s;
      }
    })();
  }

  /**
   * Sends a command and returns its answer line as it is (an `error` field included), waiting
   * at most `timeoutMs`.
   */
  async send(command: Record<string, unknown>, timeoutMs = 30_000): Promise<ChildAnswer> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) =>
      timer = setTimeout(
        () => reject(new Error(`no answer to ${command.cmd} in ${timeoutMs} ms: ${this.#stderr}`)),
        timeoutMs,
      )
    );
    try {
      // Lines that are not JSON objects (a library's stray console.log) are kept for messages.
      for (;;) {
        const next = await Promise.race([this.#lines.next(), timeout]);
        if (next.done) throw new Error(`child exited during ${command.cmd}: ${this.#stderr}`);
        if (next.value.startsWith("{")) return JSON.parse(next.value);
        this.#stderr += `[stdout] ${next.value}\n`;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like {@link send}, but an answer with an `error` field throws. */
  async request(command: Record<string, unknown>, timeoutMs = 30_000): Promise<ChildAnswer> {
    const answer = await this.send(command, timeoutMs);
    if (answer.error) throw new Error(`${command.cmd} failed in the child: ${answer.error}`);
    return answer;
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

/** A lab child's commands by name: each gets its command line and returns the answer. */
export type ChildCommands = Record<string, (command: Record<string, unknown>) => unknown>;

/**
 * The child's side: answers each JSON command line on stdin with one JSON line on stdout,
 * what `commands[cmd]` returns, or `{"error","code"}` when it throws or there is no such
 * command (`code` when the error has one). `{"cmd":"close"}` runs `close` and answers `{}`;
 * the end of input runs `close` too. Commands are handled one at a time, in order.
 *
 * @param commands The child's commands, `close` aside.
 * @param close Closes what the commands opened.
 * @returns Resolves at the end of input, once closed.
 */
export async function answerCommands(
  commands: ChildCommands,
  close: () => Promise<void>,
): Promise<void> {
  const encoder = new TextEncoder();
  const reply = (o: unknown) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(o) + "\n"));
  const run = async (command: Record<string, unknown>) => {
    if (command.cmd === "close") {
      await close();
      return {};
    }
    const handler = Object.hasOwn(commands, String(command.cmd))
      ? commands[String(command.cmd)]
      : undefined;
    if (handler === undefined) throw new Error(`unknown command ${JSON.stringify(command.cmd)}`);
    return await handler(command);
  };
  for await (const line of readLines(Deno.stdin.readable)) {
    try {
      reply(await run(JSON.parse(line)));
    } catch (e) {
      reply({ error: String(e), code: (e as { code?: unknown } | undefined)?.code });
    }
  }
  await close();
}

/**
 * State a child's commands wait on: whoever changes it calls `notify()`, and `until(test,
 * timeoutMs)` re-checks `test` on each change until it holds or the time is up (no polling).
 */
export class Changes {
  readonly #waiters = new Set<() => void>();

  /** Wakes every waiter to re-check its condition. */
  notify(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /**
   * Waits until `test()` holds, re-checked on every `notify()`, for at most `timeoutMs`.
   *
   * @returns Whether it held in time.
   */
  async until(test: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    // Bounded by the deadline: every round waits for a change or the time left.
    while (!test()) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      let wake = () => {};
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        this.#waiters.add(wake);
        timer = setTimeout(resolve, left);
      });
      this.#waiters.delete(wake);
      clearTimeout(timer);
    }
    return true;
  }
}
