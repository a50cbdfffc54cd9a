import assert from "node:assert/strict";
import {
  compareDistance,
  contentKey,
  type DhtContact,
  type DhtKey,
  iterativeLookup,
  type LookupReply,
  makeContact,
} from "../../../src/discovery/dht/mod.ts";
import { NetworkError } from "../../../src/errors.ts";
import { SimulationClock } from "./_simulator.ts";

const target = contentKey("target");
const byDistance = (t: DhtKey) => (a: DhtContact, b: DhtContact) =>
  compareDistance(t, a.key, b.key);

/** `n` contacts sorted closest to `target` first. */
function population(n: number): DhtContact[] {
  return Array.from({ length: n }, (_, i) => makeContact(`node-${i}`)).sort(byDistance(target));
}

/** Every node answers with the `k` closest nodes it "knows" from a fixed per-node view. */
function fullKnowledge(all: DhtContact[], k: number) {
  return (c: DhtContact): LookupReply<never> => ({
    closer: all.filter((x) => x.id !== c.id).sort(byDistance(target)).slice(0, k),
  });
}

Deno.test("lookup converges on the k closest and stops once they all answered", async () => {
  const clock = new SimulationClock();
  const all = population(100);
  const asked: string[] = [];
  const answer = fullKnowledge(all, 5);
  const result = await clock.run(iterativeLookup<never>(target, all.slice(60, 63), (c) => {
    asked.push(c.id);
    return new Promise<LookupReply<never>>((resolve) =>
      clock.schedule(() => resolve(answer(c)), 10)
    );
  }, { clock, k: 5, alpha: 3 }));
  assert.deepEqual(result.closest.map((c) => c.id), all.slice(0, 5).map((c) => c.id));
  // 3 seeds, then the 5 closest; nobody beyond the k closest known gets a query.
  assert.equal(new Set(asked).size, asked.length);
  assert.equal(result.stats.queried, 8);
  assert.equal(result.stats.failed, 0);
  assert.equal(result.stats.hops, 2);
  assert.equal(result.values.length, 0);
});

Deno.test("lookup keeps at most alpha queries in flight", async () => {
  const clock = new SimulationClock();
  const all = population(60);
  let inFlight = 0, peak = 0;
  const answer = fullKnowledge(all, 20);
  await clock.run(iterativeLookup<never>(target, all.slice(40), (c) => {
    peak = Math.max(peak, ++inFlight);
    return new Promise<LookupReply<never>>((resolve) =>
      clock.schedule(() => {
        inFlight--;
        resolve(answer(c));
      }, 5 + (c.key[0] % 7))
    );
  }, { clock, k: 20, alpha: 3 }));
  assert.equal(peak, 3);
});

Deno.test("a query that never answers times out on the virtual clock and is replaced", async () => {
  const clock = new SimulationClock();
  const all = population(30);
  const dead = new Set([all[0].id, all[2].id]);
  const failures: string[] = [];
  const answer = fullKnowledge(all, 10);
  const started = clock.now();
  const result = await clock.run(iterativeLookup<never>(target, all.slice(20), (c) => {
    if (dead.has(c.id)) return new Promise<never>(() => {}); // vanished: never answers
    return new Promise<LookupReply<never>>((resolve) =>
      clock.schedule(() => resolve(answer(c)), 20)
    );
  }, {
    clock,
    k: 4,
    alpha: 2,
    requestTimeoutMs: 500,
    onFailure: (c, error) => {
      assert.ok(error instanceof NetworkError && error.code === "ERR_TIMEOUT");
      failures.push(c.id);
    },
  }));
  assert.deepEqual(failures.sort(), [...dead].sort());
  assert.equal(result.stats.failed, 2);
  assert.deepEqual(
    result.closest.map((c) => c.id),
    all.filter((c) => !dead.has(c.id)).slice(0, 4).map((c) => c.id),
  );
  assert.ok(clock.now() - started >= 500, "the lookup waited for the timeout");
  assert.equal(clock.pending, 0, "no timers left behind");
});

Deno.test("rejections count as failures; the lookup ends when nobody is left", async () => {
  const clock = new SimulationClock();
  const seeds = population(3);
  const result = await clock.run(
    iterativeLookup<never>(target, seeds, () => Promise.reject(new Error("refused")), { clock }),
  );
  assert.deepEqual(result.closest, []);
  assert.equal(result.stats.failed, 3);
  assert.equal(result.stats.hops, 0);
  const empty = await clock.run(iterativeLookup<never>(target, [], () => {
    throw new Error("never called");
  }, { clock }));
  assert.equal(empty.stats.queried, 0);
});

Deno.test("a value ends the lookup early; hops count the depth it was found at", async () => {
  const clock = new SimulationClock();
  // A chain: a -> b -> c -> d, each only knowing the next; d holds the value.
  const chain = ["a", "b", "c", "d"].map((id) => makeContact(id));
  const queried: string[] = [];
  const result = await clock.run(iterativeLookup<string>(target, [chain[0]], (c) => {
    queried.push(c.id);
    const i = chain.findIndex((x) => x.id === c.id);
    return Promise.resolve({
      closer: i + 1 < chain.length ? [chain[i + 1]] : [],
      values: c.id === "d" ? ["value"] : [],
    });
  }, { clock, enough: (v) => v.length > 0 }));
  assert.deepEqual(result.values, ["value"]);
  assert.equal(result.stats.hops, 4);
  assert.deepEqual(queried, ["a", "b", "c", "d"]);
});

Deno.test("the local node is never queried, even when others name it", async () => {
  const clock = new SimulationClock();
  const me = makeContact("me");
  const other = makeContact("other");
  const asked: string[] = [];
  await clock.run(iterativeLookup<never>(target, [other, me], (c) => {
    asked.push(c.id);
    return Promise.resolve({ closer: [me] });
  }, { clock, selfId: "me" }));
  assert.deepEqual(asked, ["other"]);
});

Deno.test("late answers after a timeout are ignored", async () => {
  const clock = new SimulationClock();
  const [slow, fast] = population(2);
  const extra = makeContact("extra");
  const result = await clock.run(
    iterativeLookup<never>(
      target,
      [slow, fast],
      (c) =>
        new Promise<LookupReply<never>>((resolve) =>
          clock.schedule(
            () => resolve({ closer: c.id === slow.id ? [extra] : [] }),
            c.id === slow.id ? 300 : 10,
          )
        ),
      { clock, requestTimeoutMs: 100 },
    ),
  );
  await clock.advance(1000);
  assert.deepEqual(result.closest.map((c) => c.id), [fast.id]);
  assert.equal(result.stats.queried, 2);
});

Deno.test("options are validated", () => {
  const clock = new SimulationClock();
  assert.throws(
    () => iterativeLookup<never>(target, [], () => Promise.reject(), { clock, alpha: 0 }),
    {
      name: "InvalidConfigError",
    },
  );
});
