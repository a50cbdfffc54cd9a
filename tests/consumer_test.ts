/**
 * The module as a consumer meets it: a fresh project whose deno.json maps `@cretoai/network` to
 * JSR and links it to this checkout (a `links` entry stands in for the registry, which these
 * machines cannot reach), an empty Deno cache, Deno's own resolver, and the program of README's
 * "Use it in your project" run by two processes with the flags README gives.
 *
 * @module
 */

import assert from "node:assert/strict";
import { readLines } from "./_lines.ts";

const ROOT = new URL("../", import.meta.url);
/** First run: Deno fetches the npm packages into the empty cache. */
const FIRST_RUN_MS = 180_000;
const RUN_MS = 60_000;

/** The first ```ts block after README's "## Use it in your project" heading. */
async function readmeProgram(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const section = readme.slice(readme.indexOf("## Use it in your project"));
  const match = section.match(/```ts\n([\s\S]*?)```/);
  assert.ok(match, "README has no program under 'Use it in your project'");
  return match[1];
}

/** A consumer project in a temporary directory with its own empty Deno cache. */
async function consumerProject() {
  const dir = await Deno.makeTempDir({ prefix: "cretoai_consumer_" });
  const project = `${dir}/project`;
  const denoDir = `${dir}/deno_dir`;
  await Deno.mkdir(project);
  await Deno.writeTextFile(
    `${project}/deno.json`,
    JSON.stringify({
      links: [decodeURIComponent(ROOT.pathname)],
      imports: { "@cretoai/network": "jsr:@cretoai/network@^0.1.0" },
    }),
  );
  await Deno.writeTextFile(`${project}/main.ts`, await readmeProgram());
  const addonDir = `${denoDir}/npm/registry.npmjs.org/@matrixai/quic-linux-x64`;
  const run = (flags: string[], args: string[], timeoutMs: number) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, "main.ts", ...args],
      cwd: project,
      env: { DENO_DIR: denoDir, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    });
  return { dir, project, addonDir, run };
}

Deno.test({
  name: "consumer: linked JSR import, empty cache, two nodes, narrow flags, no node_modules",
  ignore: Deno.build.os !== "linux" || Deno.build.arch !== "x86_64",
  async fn(t) {
    const { dir, project, addonDir, run } = await consumerProject();
    const flags = ["--unstable-net", "--allow-net=127.0.0.1", `--allow-ffi=${addonDir}`];
    try {
      await t.step("two nodes exchange a message", async () => {
        const listener = run(flags, [], FIRST_RUN_MS).spawn();
        const stderr = listener.stderr.text();
        const lines = readLines(listener.stdout);
        let said = "";
        try {
          const first = await lines.next();
          assert.ok(!first.done && first.value.startsWith("listening on "), "listener started");
          const address = first.value.slice("listening on ".length);
          const sender = await run(flags, [address], RUN_MS).output();
          said = new TextDecoder().decode(sender.stdout) + new TextDecoder().decode(sender.stderr);
          assert.ok(sender.success, `sender exit ${sender.code}`);
          assert.match(said, /^delivered to [a-z2-7]{52}\n/);
          const got = await lines.next();
          assert.match(got.value ?? "", /^[a-z2-7]{52}: hello$/);
        } catch (e) {
          listener.kill("SIGKILL");
          await listener.status;
          throw new Error(`${(e as Error).message}\nsender: ${said}\nlistener: ${await stderr}`, {
            cause: e,
          });
        }
        listener.kill("SIGTERM");
        await listener.status;
        await stderr;
        for await (const _ of lines); // what is left of its output
      });

      await t.step("each missing flag gives an error that names it", async () => {
        const cases: [string, string[], RegExp][] = [
          [
            "--allow-ffi",
            ["--unstable-net", "--allow-net=127.0.0.1"],
            /ERR_PERMISSION_DENIED|Cannot load quiche: the addon needs --allow-ffi/,
          ],
          [
            "--allow-net",
            ["--unstable-net", `--allow-ffi=${addonDir}`],
            /Requires net access to "127\.0\.0\.1:0", run again with the --allow-net flag/,
          ],
          [
            "--unstable-net",
            ["--allow-net=127.0.0.1", `--allow-ffi=${addonDir}`],
            /Deno\.listenDatagram needs --unstable-net/,
          ],
        ];
        for (const [missing, without, expected] of cases) {
          const out = await run(without, [], RUN_MS).output();
          const stderr = new TextDecoder().decode(out.stderr);
          assert.ok(!out.success, `ran without ${missing}`);
          assert.match(stderr, expected, `without ${missing}`);
        }
      });

      await t.step("no node_modules was created", async () => {
        await assert.rejects(Deno.stat(`${project}/node_modules`), Deno.errors.NotFound);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
