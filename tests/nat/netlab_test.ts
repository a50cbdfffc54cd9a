/** The NAT lab harness itself: teardown on failure, loss rules, unique names. */
import assert from "node:assert/strict";
import { LAB, labSkipReason, NatLab } from "../_netlab.ts";

const ignore = labSkipReason() !== undefined;

async function namespaces(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]);
}

function alive(pid: number): boolean {
  try {
    // A zombie still has /proc/PID; its state letter is Z.
    return !/\) Z /.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

Deno.test({
  name: "netlab: a failing test still kills its processes and deletes its namespaces",
  ignore,
  fn: async () => {
    let prefix = "";
    let pid = 0;
    await assert.rejects(async () => {
      await using lab = await NatLab.create();
      prefix = lab.prefix;
      pid = lab.spawn(lab.ns.hA, ["sleep", "60"]).pid;
      assert.ok(alive(pid));
      throw new Error("test body failed");
    }, /test body failed/);
    assert.equal(alive(pid), false, `sleep ${pid} survived the teardown`);
    assert.deepEqual((await namespaces()).filter((n) => n.startsWith(prefix)), []);
  },
});

Deno.test({
  name: "netlab: two labs at once have distinct namespaces; NAT, routes and loss rules are set",
  ignore,
  fn: async () => {
    await using a = await NatLab.create({ lossA: 25 });
    await using b = await NatLab.create({ modeB: "sym" });
    assert.notEqual(a.prefix, b.prefix);
    const rules = await a.exec(a.ns.rA, ["iptables", "-S", "FORWARD"]);
    assert.match(rules, /netlab-loss.*--probability 0\.25.* -j DROP/);
    await a.setLoss("A", 0);
    assert.doesNotMatch(await a.exec(a.ns.rA, ["iptables", "-S", "FORWARD"]), /netlab-loss/);
    const nat = await b.exec(b.ns.rB, ["iptables", "-t", "nat", "-S", "POSTROUTING"]);
    assert.match(nat, /MASQUERADE --random-fully/);
    // hB routes to the public servers through its router (traffic is tested in nat_lab_test).
    const route = await b.exec(b.ns.hB, ["ip", "route", "get", LAB.server1]);
    assert.match(route, /via 10\.2\.0\.1 dev eth0/);
  },
});

Deno.test({
  name: "netlab: a leftover of a dead run is removed, a live run's lab is not",
  ignore,
  fn: async () => {
    // pid 999999999 is above any pid_max: its creator is certainly gone.
    const stale = "cnl-999999999-zz-pub";
    await new Deno.Command("ip", { args: ["netns", "add", stale] }).output();
    await using live = await NatLab.create();
    await using other = await NatLab.create();
    const names = await namespaces();
    assert.ok(!names.includes(stale), "stale namespace survived");
    assert.ok(names.includes(live.ns.pub), "a live lab's namespace was removed");
    assert.ok(names.includes(other.ns.pub));
  },
});
