/**
 * Runs the JSDoc examples of the public API: `deno test --doc` on every entry point of
 * deno.json's `"exports"` (`mod.ts` and the sub-paths such as `./quic`), the area `mod.ts`
 * files they re-export, and every file that declares a symbol an entry point exports (found
 * with `deno doc --json ENTRY`). Internal modules are left out: their examples could not
 * import what they show. Arguments are passed to `deno test` (permission flags).
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

const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))) as {
  exports: string | Record<string, string>;
};
const entries =
  (typeof config.exports === "string" ? [config.exports] : Object.values(config.exports)).map((e) =>
    e.replace(/^\.\//, "")
  );
const targets = new Set<string>(entries);
for (const entry of entries) {
  const doc = await run(["doc", "--json", entry]);
  for (const match of doc.matchAll(/"filename":\s*"([^"]+)"/g)) {
    const path = local(match[1]);
    if (path !== undefined) targets.add(path);
  }
  const info = JSON.parse(await run(["info", "--json", entry])) as {
    modules: { specifier: string }[];
  };
  for (const { specifier } of info.modules) {
    const path = local(specifier);
    if (path !== undefined && path.endsWith("/mod.ts")) targets.add(path);
  }
}

const files = [...targets].sort();
console.log(`doc tests: ${files.length} modules`);
const status = await new Deno.Command(deno, {
  args: ["test", "--doc", ...Deno.args, ...files],
  cwd: root,
}).spawn().status;
Deno.exit(status.code);
