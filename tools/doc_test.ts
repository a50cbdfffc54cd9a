/**
 * Runs the JSDoc examples of the public API: `deno test --doc` on mod.ts, the area `mod.ts`
 * files it re-exports, and every file that declares a symbol mod.ts exports (found with
 * `deno doc --json mod.ts`). Internal modules are left out: their examples could not import
 * from "@cretoai/network". Arguments are passed to `deno test` (permission flags).
 *
 * Run: `deno run --allow-run --allow-read tools/doc_test.ts [deno test flags]`
 *
 * @module
 */
const root = new URL("../", import.meta.url);
const deno = Deno.execPath();

async function run(args: string[]): Promise<string> {
  const out = await new Deno.Command(deno, { args, cwd: root, stdout: "piped" }).output();
  if (!out.success) throw new Error(`deno ${args.join(" ")} failed (exit ${out.code})`);
  return new TextDecoder().decode(out.stdout);
}

const prefix = new URL("./", root).href;
const local = (url: string) => url.startsWith(prefix) ? url.slice(prefix.length) : undefined;

const targets = new Set<string>(["mod.ts"]);
const doc = await run(["doc", "--json", "mod.ts"]);
for (const match of doc.matchAll(/"filename":\s*"([^"]+)"/g)) {
  const path = local(match[1]);
  if (path !== undefined) targets.add(path);
}
const info = JSON.parse(await run(["info", "--json", "mod.ts"])) as {
  modules: { specifier: string }[];
};
for (const { specifier } of info.modules) {
  const path = local(specifier);
  if (path !== undefined && path.endsWith("/mod.ts")) targets.add(path);
}

const files = [...targets].sort();
console.log(`doc tests: ${files.length} modules`);
const status = await new Deno.Command(deno, {
  args: ["test", "--doc", ...Deno.args, ...files],
  cwd: root,
}).spawn().status;
Deno.exit(status.code);
