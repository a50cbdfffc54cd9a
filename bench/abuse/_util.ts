/**
 * Helpers of the abuse benchmarks: the victim and the attackers run in child processes
 * (`_child.ts`), so that the victim's memory is its own and the attack does not share the
 * measuring peer's event loop. Scripts run with `deno run`, not timed unit tests.
 *
 * @module
 */

/** A child process of `_child.ts`. */
export interface AbuseChild extends AsyncDisposable {
  pid: number;
  /** The first line the child printed (`READY ...` or a JSON object). */
  ready: string;
  /** Everything it printed after its first line, once it exited. */
  output: Promise<string>;
  /** Closes its stdin (it stops) and waits for it to exit. */
  close(): Promise<void>;
}

/**
 * `--cpu-prof` flags when `ABUSE_CPU_PROF=DIR` names a directory and `mode` is the victim's: its
 * profile is written there when it exits (open it in Chrome's DevTools).
 */
function profileFlags(mode: string): string[] {
  const dir = Deno.env.get("ABUSE_CPU_PROF");
  return dir === undefined || mode !== "victim" ? [] : ["--cpu-prof", `--cpu-prof-dir=${dir}`];
}

/** Starts `_child.ts` in `mode` with JSON options; resolves once it printed its first line. */
export async function abuseChild(mode: string, options: unknown = {}): Promise<AbuseChild> {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...profileFlags(mode),
      new URL("./_child.ts", import.meta.url).pathname,
      mode,
      JSON.stringify(options),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${mode} child exited before its first line`);
    buffered += value;
  }
  const [ready, ...rest] = buffered.split("\n");
  const output = (async () => {
    let out = rest.join("\n");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return out;
      out += value;
    }
  })();
  const close = async () => {
    await process.stdin.close().catch(() => {});
    await process.status;
    await output;
  };
  return { pid: process.pid, ready, output, close, [Symbol.asyncDispose]: close };
}

/** `[port, peerId]` from a victim's `READY <port> <peerId>` line. */
export function victimAddress(child: AbuseChild): { port: number; peerId: string } {
  const [, port, peerId] = child.ready.split(" ");
  return { port: Number(port), peerId };
}

/** Resident set size of a process, from `/proc/<pid>/status`, in bytes. */
export async function rssOf(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kib * 1024;
}

/** Clock ticks per second of `/proc/<pid>/stat` times (Linux's USER_HZ, 100 on every arch). */
const USER_HZ = 100;

/** CPU time (user plus system) a process used so far, from `/proc/<pid>/stat`, in ms. */
export async function cpuMsOf(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/** Prints a result line: the figure, its goal and whether it was met, then the JSON. */
export function report(
  bench: string,
  rows: { what: string; figure: string; goal: string; met: boolean }[],
  detail: Record<string, unknown>,
): void {
  console.log(`\n${bench}`);
  for (const r of rows) {
    console.log(`  ${r.met ? "MET " : "MISS"} ${r.what}: ${r.figure} (goal: ${r.goal})`);
  }
  console.log(JSON.stringify({ bench, rows, ...detail }));
}
