/**
 * NAT discovery through real NATs: the lab's router A in `eim` (MASQUERADE) and `sym`
 * (MASQUERADE --random-fully) mode, coturn in `pub` on two IPs, our discovery run by Deno
 * inside `hA`, and coturn's `turnutils_natdiscovery` run in the same namespace for comparison.
 */
import assert from "node:assert/strict";
import type { NatBehavior, NatDiscoveryResult } from "../../src/nat/mod.ts";
import { type ChildResult, LAB, labSkipReason, NatLab, type NatMode } from "../_netlab.ts";

const ignore = labSkipReason(["turnutils_natdiscovery"]) !== undefined;
const CHILD = new URL("./_discover_child.ts", import.meta.url).pathname;
const SERVER = `${LAB.server1}:3478`;

/** Runs our discovery in hA; the child gets --unstable-net for Deno.listenDatagram itself. */
async function ourDiscovery(lab: NatLab, extra: string[] = []): Promise<NatDiscoveryResult> {
  const r = await lab.run(
    lab.ns.hA,
    [Deno.execPath(), "run", "-A", "--unstable-net", CHILD, ...extra, SERVER],
    { timeoutMs: 40_000 },
  );
  assert.equal(r.code, 0, `discovery child failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

/** Parses `turnutils_natdiscovery -m -f` output into RFC 4787 behaviours. */
function parseNatDiscovery(r: ChildResult): { mapping: NatBehavior; filtering: NatBehavior } {
  const phrase = (kind: "Mapping" | "Filtering"): NatBehavior => {
    const m = new RegExp(
      `(Endpoint Independent|Address and Port Dependent|Address Dependent) ${kind}`,
    ).exec(r.stdout);
    if (m === null) return "unknown";
    return m[1] === "Endpoint Independent"
      ? "endpoint-independent"
      : m[1] === "Address Dependent"
      ? "address-dependent"
      : "address-and-port-dependent";
  };
  return { mapping: phrase("Mapping"), filtering: phrase("Filtering") };
}

async function namespacesWithPrefix(prefix: string): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.startsWith(prefix));
}

const expected: Record<NatMode, { type: string; mapping: NatBehavior }> = {
  eim: { type: "Cone", mapping: "endpoint-independent" },
  sym: { type: "Symmetric", mapping: "address-and-port-dependent" },
};

for (const mode of ["eim", "sym"] as const) {
  Deno.test({
    name: `NAT lab (${mode}): our discovery matches the mode and turnutils_natdiscovery`,
    ignore,
    fn: async () => {
      const t0 = performance.now();
      let prefix = "";
      {
        await using lab = await NatLab.create({ modeA: mode });
        prefix = lab.prefix;
        await lab.startCoturn();
        const tReady = performance.now();
        // Both at once, from different sockets of hA: they do not share NAT mappings.
        const [ours, theirs] = await Promise.all([
          ourDiscovery(lab),
          lab.run(lab.ns.hA, ["turnutils_natdiscovery", "-m", "-f", LAB.server1], {
            timeoutMs: 40_000,
          }),
        ]);
        const reference = parseNatDiscovery(theirs);
        console.log(
          `[${mode}] lab+coturn ${(tReady - t0).toFixed(0)} ms, our discovery ` +
            `${(ours as NatDiscoveryResult & { ms: number }).ms.toFixed(0)} ms, both done ` +
            `${(performance.now() - tReady).toFixed(0)} ms; ours: ${ours.type}/${ours.mapping}/` +
            `${ours.filtering}; natdiscovery: ${reference.mapping}/${reference.filtering}`,
        );
        assert.equal(ours.type, expected[mode].type, ours.reasons.join("\n"));
        assert.equal(ours.mapping, expected[mode].mapping, ours.reasons.join("\n"));
        assert.equal(ours.behindNat, true);
        assert.equal(ours.publicAddress?.hostname, LAB.rAWan);
        assert.equal(ours.rfc5780, true);
        assert.equal(ours.mapping, reference.mapping, theirs.stdout);
        assert.equal(ours.filtering, reference.filtering, theirs.stdout);
        // A home router's conntrack firewall lets in only the exact peer.
        assert.equal(ours.filtering, "address-and-port-dependent");
      }
      assert.deepEqual(await namespacesWithPrefix(prefix), [], "lab namespaces left behind");
      console.log(`[${mode}] total with teardown ${(performance.now() - t0).toFixed(0)} ms`);
    },
  });
}

Deno.test({
  name: "NAT lab (eim, 10% loss in router A): retransmissions still find the cone",
  ignore,
  fn: async () => {
    const t0 = performance.now();
    await using lab = await NatLab.create({ modeA: "eim", lossA: 10 });
    await lab.startCoturn();
    // Rc 7: a transaction fails only if all 7 exchanges are lost, about 0.19^7 = 1e-5.
    const ours = await ourDiscovery(lab, [
      "--rto",
      "50",
      "--rc",
      "7",
      "--rm",
      "4",
      "--no-filtering",
    ]);
    assert.equal(ours.type, "Cone", ours.reasons.join("\n"));
    assert.equal(ours.mapping, "endpoint-independent");
    assert.equal(ours.filtering, "unknown");
    console.log(`[eim+loss] ${(performance.now() - t0).toFixed(0)} ms`);
  },
});
